"""The linear baselines of experiments/vae_continuous.py, the VAE's like-with-like comparisons.

Factor analysis (per-pixel noise variance, floored) is checked against scikit-learn's FactorAnalysis
where the floor is inactive, and against the properties the floor must give where it is active;
the per-pixel Gaussian against scipy.
"""
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import FactorAnalysis

from jaxgen import runner

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def exp():
    return runner.load_experiment("vae_continuous", EXPERIMENTS).module


def _fa_data(seed=0, n=400, d=6, q=2):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q))
    psi = rng.uniform(0.2, 1.0, d)  # distinct per-dimension noise: PPCA's shared variance would not fit
    return rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, d)) * np.sqrt(psi) + 3.0


def test_factor_analysis_matches_scikit_learn(exp):
    X = _fa_data()
    mu, W, psi, ll, n_iter = exp.factor_analysis(X, 2, 1e-12, tol=1e-12, max_iter=20000)
    sk = FactorAnalysis(2, tol=1e-12, max_iter=20000, random_state=0).fit(X)
    assert n_iter < 20000
    assert ll == pytest.approx(sk.score(X), abs=1e-6)  # the same maximum (mean log-likelihood per point)
    np.testing.assert_allclose(psi, sk.noise_variance_, rtol=1e-3)
    np.testing.assert_allclose(W @ W.T, sk.components_.T @ sk.components_, atol=1e-3)  # W up to rotation
    X_new = _fa_data(seed=1)
    # both stop within 1e-6 nats of the same maximum; the flat directions leave ~1e-3 of parameter difference
    # (measured: held-out log-densities differ by at most 7e-4)
    np.testing.assert_allclose(exp.factor_analysis_log_prob(mu, W, psi, X_new), sk.score_samples(X_new), atol=2e-3)


def test_factor_analysis_floors_the_noise_of_constant_pixels(exp):
    X = _fa_data()
    X[:, 0] = 0.0  # a constant pixel, as on the digits' borders: its ML variance is 0
    floor = 1e-3
    mu, W, psi, ll, _ = exp.factor_analysis(X, 2, floor)
    assert psi.min() >= floor and psi[0] == pytest.approx(floor)
    # FA contains the per-pixel Gaussian (W = 0): on its training data it is at least as good
    assert ll >= exp.diagonal_gaussian(X, X, floor).mean() - 1e-9
    assert np.isfinite(exp.factor_analysis_log_prob(mu, W, psi, X)).all()


def test_diagonal_gaussian_is_the_per_pixel_normal_with_floored_variances(exp):
    rng = np.random.default_rng(0)
    X_train, X_test = rng.normal(size=(50, 3)), rng.normal(size=(7, 3))
    X_train[:, 2] = 0.5  # constant: variance 0, floored to 0.01
    expected = (stats.norm.logpdf(X_test[:, :2], X_train[:, :2].mean(0), X_train[:, :2].std(0)).sum(1)
                + stats.norm.logpdf(X_test[:, 2], 0.5, 0.1))
    np.testing.assert_allclose(exp.diagonal_gaussian(X_train, X_test, 0.01), expected, rtol=1e-12)


def test_mnist_baselines_log_periods_tile_the_epoch_and_are_never_one_step():
    """Equal log periods near a tenth of an epoch (781 steps: 71); a prime step count gets one period
    per epoch instead of one per step (a checkpoint every step)."""
    base = runner.sibling_module(EXPERIMENTS / "vaegan_mnist.py", "_mnist_baselines")
    for per, expected in [(781, 71), (500, 50), (101, 101), (254, 127), (8, 8), (100, 50)]:
        assert base.log_every(per) == expected, per
        assert per % base.log_every(per) == 0
