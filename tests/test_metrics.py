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
