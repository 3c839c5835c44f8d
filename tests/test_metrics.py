"""Tests for jaxgen.metrics: mode coverage (VEEGAN/PacGAN), Frechet distance, MNIST classifier metrics, stacked MNIST."""
import jax
import numpy as np
import pytest
from scipy import stats

from jaxgen import data as D
from jaxgen import metrics as M

KEY = jax.random.key(0)


# ------------------------------------------------------------------------------ modes (VEEGAN / PacGAN)
def test_three_sigma_ball_mass_in_2d():
    # the HQ percentage of perfect samples: P(chi2_2 <= 9) = 1 - exp(-4.5)
    assert stats.chi2(2).cdf(9.0) == pytest.approx(0.988891, abs=1e-6)
    assert stats.chi2(2).cdf(9.0) == pytest.approx(1 - np.exp(-4.5), rel=1e-12)


@pytest.mark.parametrize("which", ["ring", "grid"])
def test_true_samples_capture_every_mode(which):
    n = 2500
    if which == "ring":
        X, _ = D.make_ring(KEY, n)
        modes, std = D.ring_modes(), 0.01
    else:
        X, _ = D.make_grid(KEY, n)
        modes, std = D.grid_modes(), 0.05
    k = modes.shape[0]
    out = M.mode_metrics(X, modes, std)
    assert out["modes"] == k and out["n_modes"] == k and out["n_samples"] == n
    p = stats.chi2(2).cdf(9.0)
    se = np.sqrt(p * (1 - p) / n)  # binomial standard error of the HQ fraction: 0.21 %
    assert abs(out["high_quality_pct"] / 100 - p) < 4 * se
    n_hq = int(out["histogram"].sum())
    assert n_hq == round(out["high_quality_pct"] * n / 100)
    # 2 n_hq KL is the G statistic of a uniform multinomial: chi2(K - 1); its 99.9 % quantile bounds KL
    bound = stats.chi2(k - 1).ppf(0.999) / (2 * n_hq)  # 0.0049 (ring), 0.0105 (grid)
    assert 0 <= out["reverse_kl"] < bound


def test_collapsed_and_far_samples():
    modes = D.ring_modes()
    X, _ = D.make_ring(KEY, 2500, n_modes=1)  # every sample at mode 0 = (1, 0)
    out = M.mode_metrics(X, modes, 0.01)
    assert out["modes"] == 1 and out["histogram"][0] == out["histogram"].sum() > 2400
    assert out["reverse_kl"] == pytest.approx(np.log(8), rel=1e-12)
    far = M.mode_metrics(np.asarray(X) + 0.5, modes, 0.01)  # off the ring, between modes
    assert far["high_quality_pct"] == 0.0 and far["modes"] == 0 and np.isnan(far["reverse_kl"])
    assert far["histogram"].sum() == 0


def test_mode_rule_threshold_and_kl_convention():
    modes = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # 3 HQ samples at mode 0, 1 HQ at mode 1, one sample at mode 2 just outside 3 std (0.031 > 0.03)
    X = np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.029], [1.0, 0.0], [0.0, 1.031]])
    out = M.mode_metrics(X, modes, 0.01)
    np.testing.assert_array_equal(out["histogram"], [3, 1, 0, 0])
    assert out["modes"] == 2 and out["high_quality_pct"] == pytest.approx(80.0)
    p = np.array([0.75, 0.25])
    assert out["reverse_kl"] == pytest.approx(np.sum(p * np.log(4 * p)), rel=1e-12)  # empty modes add 0
    assert M.mode_metrics(X, modes, 0.01, min_count=2)["modes"] == 1
    assert M.mode_metrics(X, modes, 0.01, n_sigma=3.2)["modes"] == 3
    idx, dist = M.nearest_mode(X, modes, chunk_size=2)
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 2])
    np.testing.assert_allclose(dist, [0, 0.01, 0.029, 0, 0.031], atol=1e-12)
    assert M.reverse_kl_to_uniform([5, 5, 5]) == 0.0
    assert np.isnan(M.reverse_kl_to_uniform([0, 0]))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.zeros((4, 3)), np.zeros((8, 2)), 0.01), {}, "same D"),
        ((np.zeros(4), np.zeros((8, 2)), 0.01), {}, "2-D"),
        ((np.full((4, 2), np.nan), np.zeros((8, 2)), 0.01), {}, "NaN"),
        ((np.zeros((4, 2)), np.zeros((8, 2)), 0.0), {}, "std"),
        ((np.zeros((4, 2)), np.zeros((8, 2)), 0.01), {"min_count": 0}, "min_count"),
    ],
)
def test_mode_metrics_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.mode_metrics(*args, **kwargs)
    with pytest.raises(ValueError, match="counts"):
        M.reverse_kl_to_uniform([[1, 2]])


# ------------------------------------------------------------------------------ Frechet distance
def _random_spd(rng, d, jitter=0.1):
    A = rng.normal(size=(d, d))
    return A @ A.T / d + jitter * np.eye(d)


def test_sqrtm_psd_matches_scipy_and_handles_singular():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    S = _random_spd(rng, 12)
    R = M.sqrtm_psd(S)
    np.testing.assert_allclose(R, np.real(sqrtm(S)), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(R, R.T, atol=0)
    B = rng.normal(size=(6, 2))
    P = B @ B.T  # rank 2 of 6: scipy's Schur method is unreliable here; check R @ R = P and PSD
    R = M.sqrtm_psd(P)
    np.testing.assert_allclose(R @ R, P, atol=1e-10)
    assert np.linalg.eigvalsh(R).min() > -1e-7


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    d = 7
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mean_term = np.sum((mu1 - mu2) ** 2)
    # diagonal covariances: sum (sqrt a - sqrt b)^2
    fd = M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert fd == pytest.approx(mean_term + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-12)
    # commuting covariances (shared eigenvectors): the same in the rotated basis
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    fd = M.frechet_distance(mu1, Q @ np.diag(a) @ Q.T, mu2, Q @ np.diag(b) @ Q.T)
    assert fd == pytest.approx(mean_term + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-10)
    # general (non-commuting) covariances: the textbook tr sqrtm(S1 S2) form, via scipy
    from scipy.linalg import sqrtm

    S1, S2 = _random_spd(rng, d), _random_spd(rng, d)
    ref = mean_term + np.trace(S1 + S2 - 2 * np.real(sqrtm(S1 @ S2)))
    fd12 = M.frechet_distance(mu1, S1, mu2, S2)
    assert fd12 == pytest.approx(ref, rel=1e-9)
    assert M.frechet_distance(mu2, S2, mu1, S1) == pytest.approx(fd12, rel=1e-10)  # symmetric
    assert M.frechet_distance(mu1, S1, mu1, S1) == pytest.approx(0.0, abs=1e-12)
    # 1-D: the Wasserstein-2 distance of two normals squared, (m1 - m2)^2 + (s1 - s2)^2
    assert M.frechet_distance([1.0], [[4.0]], [-1.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)


def test_frechet_bias_of_plugin_estimator_matches_monte_carlo():
    # two samples of n = 100 from one 4-D Gaussian: mean FD over 1000 repetitions, measured 0.1441 +- 0.0019
    # against the second-order formula's 0.1456
    rng = np.random.default_rng(0)
    d, n = 4, 100
    S = _random_spd(rng, d)
    L = np.linalg.cholesky(S)
    fds = [M.frechet_distance_features(rng.normal(size=(n, d)) @ L.T, rng.normal(size=(n, d)) @ L.T)
           for _ in range(1000)]
    assert np.mean(fds) == pytest.approx(M.frechet_bias(S, n, n), rel=0.05)
    assert M.frechet_bias(np.eye(64), 5000, 5000) == pytest.approx(2 * 64 / 5000 + 64 * 65 / (2 * 4999), rel=1e-12)


def test_streamed_feature_statistics_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1003, 5)) * 100 + 1e4  # large offset: the naive sum-of-squares would cancel
    mu, cov = M.feature_statistics(x, batch_size=64)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9)
    mu2, cov2 = M.feature_statistics(iter([x[:10], x[10:11], x[11:]]))  # an iterable of uneven batches
    np.testing.assert_allclose(cov2, cov, rtol=1e-10)
    a, b = M.FeatureStats(5).update(x[:500]), M.FeatureStats(5).update(x[500:])
    np.testing.assert_allclose(a.merge(b).cov(ddof=0), np.cov(x, rowvar=False, ddof=0), rtol=1e-9)
    y = rng.normal(size=(800, 5))
    ref = M.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert M.frechet_distance_features(x, y, batch_size=100) == pytest.approx(ref, rel=1e-10)
    assert M.frechet_distance_features(jax.numpy.asarray(y), y) < 1e-4  # JAX input (float32) accepted


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "same dimension"),
        (lambda: M.frechet_distance(np.zeros(3), np.eye(2), np.zeros(2), np.eye(2)), "mu1 has 3"),
        (lambda: M.frechet_distance(np.zeros(2), [[1.0, 0.5], [0.0, 1.0]], np.zeros(2), np.eye(2)), "symmetric"),
        (lambda: M.frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2)), "semi-definite"),
        (lambda: M.sqrtm_psd(np.ones((2, 3))), "square"),
        (lambda: M.feature_statistics(np.ones((1, 3))), "more than 1"),
        (lambda: M.feature_statistics(np.ones(3)), r"\(N, D\)"),
        (lambda: M.FeatureStats(3).update(np.ones((4, 2))), "features"),
        (lambda: M.FeatureStats(3).mean, "no features"),
    ],
)
def test_frechet_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
