"""The pixelvae_mnist experiment: a quick MNIST run (metrics, figures, a seeded value pinned), the
interpolation pairs, bad settings refused before a run folder exists.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2 (``pytest tests/test_pixelvae_experiments.py``); the tolerance allows
float differences between CPUs, not a differently trained model (the quick PixelVAE's training
loss falls by about 225 nats over its 16 steps).
"""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import keys, runner
from jaxgen.data import load_mnist
from jaxgen.models import pixelvae
from jaxgen.train import settings_of

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_resumable, _check_run_folder

NAME = "pixelvae_mnist"
GROUP_KEYS = {"test_nll_nats", "test_nll_sem", "test_nll_k", "test_elbo_nats", "kl_nats", "active_units", "n_params",
              "train_seconds", "train_images_per_s", "final_train_elbo", "history"}


@pytest.mark.needs_data("mnist")
def test_quick_run(tmp_path):
    with keys.recording(all_derivations=True) as rec:
        r = runner.run_experiment(NAME, quick=True, out=tmp_path / "q", echo=False, directory=EXPERIMENTS)
    _check_run_folder(r)
    _check_resumable(r)
    m = r.metrics
    assert {"interpolation.png", "samples.png", "training_curve.png"} <= set(r.figures)
    assert GROUP_KEYS <= set(m["pixelvae"]) and GROUP_KEYS <= set(m["vae"])
    assert m["test_n"] == 64 and m["n_train"] == 256 and m["path"] == "linear" and m["n_steps"] == 5
    pv, v = m["pixelvae"], m["vae"]
    assert (pv["test_nll_k"], v["test_nll_k"]) == (4, 16)
    # same encoder for both models: the parameter counts differ only in the decoders
    assert pv["n_params"]["encoder"] == v["n_params"]["encoder"]
    # the bounds: a KL is >= 0, and the k-sample estimate is at least as tight as the ELBO (on average;
    # separate draws, hence the slack of a few nats)
    for g in (pv, v):
        assert g["kl_nats"] >= 0 and 0 <= g["active_units"] <= 4
        assert g["test_nll_nats"] <= -g["test_elbo_nats"] + 3.0
        assert g["test_nll_nats"] < 784 * np.log(2)  # better than coin flips
    # the pairs hold different digits (the first of 0 and 1, of 2 and 3)
    assert m["pairs"]["digits"] == [[0, 1], [2, 3]]
    # Pinned to the seeded quick run (see the module docstring).
    assert pv["test_nll_nats"] == pytest.approx(PIN["pixelvae_nll"], rel=2e-3)
    assert v["test_nll_nats"] == pytest.approx(PIN["vae_nll"], rel=2e-3)
    keys.assert_distinct(rec)


@pytest.mark.needs_data("mnist")
def test_pairs_are_first_test_digits():
    mod = runner.load_experiment(NAME, EXPERIMENTS).module
    y = load_mnist("test")[1]
    idx = mod._pairs(y, 5)
    assert idx.shape == (5, 2)
    np.testing.assert_array_equal(y[idx], np.arange(10).reshape(5, 2))
    assert all(not np.any(y[: i] == y[i]) for i in idx.reshape(-1))  # each the first of its digit


def test_kl_warmup_weights_the_kl_term():
    """The PixelVAE's warmed loss: -recon at step 0, -(recon - KL / 2) half-way, -ELBO after the warm-up."""
    mod = runner.load_experiment(NAME, EXPERIMENTS).module

    def inner(params, batch, key):
        return 0.0, {"recon": jnp.asarray(-90.0), "kl": jnp.asarray(10.0), "elbo": jnp.asarray(-100.0)}

    inner.check_train_data = lambda params, data: None
    loss = mod.warmed_loss(inner, 10)
    assert loss.check_train_data is inner.check_train_data
    got = [float(loss(None, None, None, step=s)[0]) for s in (0, 5, 10, 50)]
    np.testing.assert_allclose(got, [90.0, 95.0, 100.0, 100.0], rtol=1e-6)
    assert float(loss(None, None, None, step=5)[1]["kl_weight"]) == pytest.approx(0.5)
    # described when the inner loss is (the warm-up added), so that a rerun in the run folder resumes
    assert settings_of(loss) is None
    assert settings_of(mod.warmed_loss(pixelvae.loss_fn(binarize=True), 10)) == {
        "builder": "pixelvae.loss_fn", "binarize": True, "kl_warmup_steps": 10}


BAD = [({"eval.path": "cubic"}, "eval.path"),
       ({"model.kernel_size": 4}, "kernel_size must be an odd integer"),
       ({"train.batch_size": 512}, "exceeds n_train"),
       ({"eval.n_pairs": 6}, "eval.n_pairs"),
       ({"eval.k_pixelvae": 0}, "eval.k_pixelvae"),
       ({"train.kl_warmup_epochs": -1.0}, "train.kl_warmup_epochs")]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_settings_are_refused_before_a_folder_exists(tmp_path, overrides, message):
    assert_refused_before_folder(NAME, overrides, message, tmp_path)


PIN = {"pixelvae_nll": 217.09927, "vae_nll": 278.97108}
