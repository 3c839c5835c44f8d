"""compare_all: every family on binarised MNIST in one run; the dequantisation bound; bad configs.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2 (the quick run in this file); the tolerances allow float differences
between CPUs, not a differently trained model or another test image set.
"""
import functools
import math

import jax
import numpy as np
import pytest
from scipy import stats

from jaxgen import keys, runner
from jaxgen.models import gan, gmm

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_run_folder

FAMILIES = ("ppca", "gmm", "vae", "iwae", "pixelcnn", "pixelvae", "gan")
PIN = {"pixelcnn_nll": 497.956, "ppca_nll": 363.7629}  # the quick run (see the module docstring)
mnist = pytest.mark.needs_data("mnist")


def _module():
    return runner.load_experiment("compare_all", EXPERIMENTS).module


# ------------------------------------------------------------------ the dequantisation bound


def test_dequantised_nll_bounds_the_exact_discrete_nll_of_two_binary_pixels():
    """A factorised Gaussian on R^2 (a one-component diagonal GMM): its discrete model
    P(x) = prod_i [Phi((x_i + 1 - m_i) / s_i) - Phi((x_i - m_i) / s_i)] on {0, 1}^2 is exact, and so
    is E_u[-log p(x + u)] = sum_i log(s_i sqrt(2 pi)) + ((x_i - m_i)^2 + (x_i - m_i) + 1/3) / (2 s_i^2)."""
    m, s = np.array([0.7, 1.3]), np.array([0.4, 0.9])
    params = gmm.GMMParams.from_covariances(np.ones(1), m[None], (s**2)[None], covariance_type="diag")
    points = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    n = 20_000
    x = np.repeat(points, n, axis=0)
    nll = _module().dequantized_nll(functools.partial(gmm.log_prob, params), x, jax.random.key(0)).reshape(4, n)
    d = points - m
    expected = np.sum(np.log(s * np.sqrt(2 * np.pi)) + (d**2 + d + 1 / 3) / (2 * s**2), axis=1)
    exact = -np.sum(np.log(stats.norm.cdf((points + 1 - m) / s) - stats.norm.cdf((points - m) / s)), axis=1)
    sem = nll.std(1) / np.sqrt(n)
    # the Monte Carlo mean is the closed form: a shifted noise (U[-1/2, 1/2)) would be off by > 30 sem here
    np.testing.assert_array_less(np.abs(nll.mean(1) - expected), 4 * sem)
    assert np.all(expected > exact + 0.01)  # Jensen: strictly, p is not constant on the unit squares
    assert np.exp(-exact).sum() < 1.0  # the discrete model loses the mass outside [0, 2)^2


def test_to_binary_is_floor_clipped():
    y = np.array([[-0.3, 0.0, 0.99, 1.0, 1.7, 2.5]], np.float32)
    np.testing.assert_array_equal(np.asarray(_module()._to_binary(y)), [[0, 0, 0, 1, 1, 1]])


def test_gan_trainer_from_config_is_the_explicit_trainer():
    settings = {"objective": "hinge", "latent_dim": 16, "conv_base": 8, "g_lr": 1e-3, "d_lr": 2e-3,
                "betas": [0.0, 0.9], "ema_decay": 0.9}
    t = gan.GANTrainer.from_config(settings, architecture="dcgan", data_shape=(28, 28, 1))
    assert t == gan.GANTrainer(objective="hinge", architecture="dcgan", data_shape=(28, 28, 1), latent_dim=16,
                               conv_base=8, g_lr=1e-3, d_lr=2e-3, betas=(0.0, 0.9), ema_decay=0.9)
    with pytest.raises(ValueError, match=r"not GANTrainer settings: \['steps'\]"):
        gan.GANTrainer.from_config({**settings, "steps": 10})


# ------------------------------------------------------------------ bad configs


@pytest.mark.parametrize("overrides, message", [
    ({"vae.batch_size": 1000}, "vae.batch_size=1000 is larger than n_train=256"),
    ({"gmm.covariance_type": "full"}, "gmm.covariance_type"),
    ({"pixelcnn.kernel_size": 4}, "kernel_size"),
    ({"eval.n_test": 20_000}, "eval.n_test"),
])
def test_bad_config_is_refused_before_a_run_folder(tmp_path, overrides, message):
    assert_refused_before_folder("compare_all", overrides, message, tmp_path)


# ------------------------------------------------------------------ the quick run


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with keys.recording(all_derivations=True) as rec:
        result = runner.run_experiment("compare_all", quick=True, out=tmp_path_factory.mktemp("ca") / "run",
                                       echo=False, directory=EXPERIMENTS)
    return result, rec


@mnist
def test_quick_run(quick):
    r, rec = quick
    _check_run_folder(r)
    keys.assert_distinct(rec)
    m, c = r.metrics, r.config
    assert {"samples.png", "table.md"} <= {p.name for p in r.dir.iterdir()}
    table = (r.dir / "table.md").read_text()
    assert all(f"| {name} |" in table for name in FAMILIES)
    assert m["n_test"] == c.eval.n_test and m["n_samples"] == c.eval.n_samples
    for name in FAMILIES:
        f = m[name]
        assert {"test_nll_nats", "nll_kind", "fid", "mnist_score", "classes", "train_time_s", "n_params"} <= set(f)
        assert sum(f["class_histogram"]) == c.eval.n_samples and 1 <= f["classes"] <= 10
        # tiny, briefly trained models: every family is far from real digits (the floor)
        assert f["fid"] > 5 * m["floors"]["fid_test_vs_test"] > 0
        assert f["train_time_s"] > 0 and f["n_params"] > 0
    # the kinds of NLL: the GAN has none; the VAE and the IWAE are estimated with the same k
    assert m["gan"]["test_nll_nats"] is None and m["gan"]["nll_kind"] is None and m["gan"]["fid_grey"] > 0
    assert m["vae"]["nll_kind"] == m["iwae"]["nll_kind"] == f"importance-sampled (k={c.eval.nll_k})"
    assert m["vae"]["nll_k"] == m["iwae"]["nll_k"] == c.eval.nll_k
    assert m["pixelvae"]["nll_kind"] == f"importance-sampled (k={c.pixelvae.nll_k})"
    assert m["pixelcnn"]["nll_kind"] == "exact"
    for name in ("ppca", "gmm"):  # finite bounds, above the NLL of a model that knew the data are binary
        assert m[name]["nll_kind"] == "dequantised upper bound"
        assert np.isfinite(m[name]["test_nll_nats"]) and m[name]["test_nll_nats"] > 0
    for name in ("vae", "iwae", "pixelcnn", "pixelvae"):  # a discrete NLL is positive
        assert 0 < m[name]["test_nll_nats"] < 784 * math.log(2) + 100
    # trained below the uniform distribution over binary images (784 log 2 = 543.4 nats)
    assert m["pixelcnn"]["test_nll_nats"] < 784 * math.log(2) - 20
    assert m["pixelcnn"]["test_bits_per_dim"] * 784 * math.log(2) == pytest.approx(m["pixelcnn"]["test_nll_nats"])
    # the same network for the VAE and the IWAE; the classic models' counts from their shapes
    assert m["vae"]["n_params"] == m["iwae"]["n_params"]
    q, k = c.ppca.n_components, c.gmm.n_components
    assert m["ppca"]["n_params"] == 784 * (q + 1) + 1
    assert m["gmm"]["n_params"] == 2 * k * 784 + k - 1
    # pins of the quick run (exact PixelCNN NLL: rel 1e-3 ~ 0.5 nats, far below the effect of one
    # more or one fewer training step; the PPCA bound is a closed-form fit: rel 1e-4)
    assert m["pixelcnn"]["test_nll_nats"] == pytest.approx(PIN["pixelcnn_nll"], rel=1e-3)
    assert m["ppca"]["test_nll_nats"] == pytest.approx(PIN["ppca_nll"], rel=1e-4)
