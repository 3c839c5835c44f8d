"""The pixelcnn_mnist experiment: a quick MNIST run with its metrics checked and its seeded values
pinned, the class-conditional path on the digits, the accelerator and tour settings, bad settings
refused before a run folder exists.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2; the tolerances allow float differences between CPUs, not a differently
trained model (the quick run's NLL moves by about 300 nats over its 32 steps).
"""
import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from jaxgen import keys, runner, tour
from jaxgen.data import load_mnist
from jaxgen.models import pixelcnn

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_resumable, _check_run_folder

NAME = "pixelcnn_mnist"


@pytest.fixture(scope="module")
def exp():
    return runner.load_experiment(NAME, EXPERIMENTS)


@pytest.mark.needs_data("mnist")
def test_quick_run(tmp_path):
    with keys.recording(all_derivations=True) as rec:
        r = runner.run_experiment(NAME, quick=True, out=tmp_path / "q", echo=False, directory=EXPERIMENTS)
    _check_run_folder(r)
    _check_resumable(r)
    m = r.metrics
    files = {p.name for p in r.dir.iterdir()}
    assert {"samples.png", "inpainting.png", "training_curve.png", "samples.npy", "metrics.jsonl"} <= files
    assert "samples_by_class.png" not in files and m["conditional"] is False
    samples = np.load(r.dir / "samples.npy")
    assert samples.shape == (6, 28, 28, 1) and set(np.unique(samples)) <= {0, 1}
    # the exact NLL: nats and bits per pixel agree; better than coin flips (784 ln 2 = 543.4 nats)
    assert m["test_n"] == 200 and m["n_train"] == 512
    assert m["test_bits_per_dim"] == pytest.approx(m["test_nll_nats"] / (784 * math.log(2)), rel=1e-12)
    assert m["test_nll_nats"] < 784 * math.log(2) - 200
    # the curve is the training log's: 2 epochs, 2 records each (8 steps of 32 images), a monitor NLL each
    lines = [json.loads(x) for x in (r.dir / "metrics.jsonl").read_text().splitlines()]
    assert m["history"]["epoch"] == [0.5, 1.0, 1.5, 2.0] == [x["epoch"] for x in lines]
    assert m["history"]["monitor_test_nll"] == [x["eval/test_nll"] for x in lines]
    assert m["history"]["train_nll"][-1] < m["history"]["train_nll"][0] - 100
    # progress as it happens (issue 17): the loop logged each period (with an ETA) before the test NLL was computed
    log = (r.dir / "log.txt").read_text().splitlines()
    periods = [i for i, line in enumerate(log) if line.startswith("train: step ")]
    assert len(periods) == 4 and "ETA" in log[periods[0]]
    assert periods[-1] < next(i for i, line in enumerate(log) if line.startswith("test NLL"))
    assert m["n_params"] == 6393 and 0 < m["receptive_field_coverage"] < 1 and not m["receptive_field_covers_image"]
    assert m["vae"]["gibbs_iters"] == 5 and m["protocol_differences"][0].startswith("budget: 2 epochs over 512")
    # Pinned to the seeded quick run (see the module docstring).
    assert m["test_nll_nats"] == pytest.approx(PIN["test_nll_nats"], rel=2e-3)
    assert m["final_train_nll"] == pytest.approx(PIN["final_train_nll"], rel=2e-3)
    assert m["vae"]["test_elbo_nats"] == pytest.approx(PIN["vae_test_elbo_nats"], rel=2e-3)
    keys.assert_distinct(rec)


@pytest.mark.needs_data("mnist")
def test_test_set_is_vae_mnists(exp):
    """The binarised test images are those of vae_mnist for the same key (its draw, written out)."""
    x = load_mnist("test")[0][:50]
    key = jax.random.key(3)
    ours = exp.module.binarized_test_set(x, key)
    theirs = np.asarray(jax.random.bernoulli(key, x.reshape(-1, 784).astype(np.float32) / 255.0), np.float32)
    assert ours.shape == (50, 28, 28, 1)
    np.testing.assert_array_equal(ours.reshape(50, 784), theirs)


def test_conditional_on_digits(tmp_path):
    """model.n_classes=10: labels enter the model, one row of samples per class; vae.epochs=0: no VAE."""
    r = runner.run_experiment(NAME, quick=True, out=tmp_path / "c", echo=False, directory=EXPERIMENTS,
                              overrides={"data": "digits", "model.n_classes": 10, "vae.epochs": 0,
                                         "train.epochs": 1, "eval.n_samples": 4})
    m = r.metrics
    assert {"samples_by_class.png", "inpainting.png"} <= set(r.figures)
    assert m["conditional"] is True and "vae" not in m and m["reference_nll_nats"] is None
    assert m["test_n"] == 200 and m["n_train"] == 512  # digits: 1500 train / 297 test, both capped by the config
    assert m["receptive_field_covers_image"]  # 3 layers of 7/5 kernels cover an 8 x 8 image
    assert 0 < m["test_nll_nats"] < 64 * math.log(2)
    assert m["test_nll_nats"] == pytest.approx(PIN["conditional_digits_nll"], rel=2e-3)  # seeded, as above


BAD = [({"model.likelihood": "poisson"}, "model.likelihood"),
       ({"model.kernel_size": 4}, "kernel_size must be an odd integer"),
       ({"model.first_kernel": 1}, "first_kernel must be >= 3"),
       ({"model.n_classes": 5}, "model.n_classes"),
       ({"data": "digits", "n_train": 2000}, "n_train <= 1500"),
       ({"train.batch_size": 1024}, "exceeds n_train"),
       ({"data": "cifar"}, "data")]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_settings_are_refused_before_a_folder_exists(tmp_path, overrides, message):
    assert_refused_before_folder(NAME, overrides, message, tmp_path)


def test_accelerator_config_covers_the_image_and_is_documented(exp):
    mod = exp.module
    config = runner.resolve_config(exp, overrides=mod.ACCELERATOR)
    # the receptive field depends on the layers and kernels only: check it on a narrow copy
    narrow = dataclasses.replace(mod.model_config(config), features=4, out_features=4)
    assert pixelcnn.receptive_field(pixelcnn.init(jax.random.key(0), narrow)).reshape(-1)[:-1].all()
    command = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in mod.ACCELERATOR.items())
    assert f"jaxgen run pixelcnn_mnist {command}" in " ".join(mod.__doc__.split())


def test_tour_section_settings_resolve(exp):
    section = next(s for s in tour.SECTIONS if s.experiment == NAME)
    config = runner.resolve_config(exp, overrides=section.overrides)
    assert config.data == "digits"  # runs without the MNIST file


PIN = {"test_nll_nats": 231.96233, "final_train_nll": 242.74246, "vae_test_elbo_nats": -218.0495,
       "conditional_digits_nll": 38.186248}
