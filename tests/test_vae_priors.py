"""Active units (Burda et al. 2016): the variance of the posterior means over the data, thresholded."""
import numpy as np
import pytest

from jaxgen.metrics import active_units
from jaxgen.metrics.latents import BURDA_THRESHOLD, posterior_means


def test_hand_built_means_with_known_variances():
    # column u takes the values +-a_u in equal numbers: its population variance is exactly a_u^2
    n = 1000
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    amps = np.array([0.0, 0.05, 0.099, 0.101, 0.5, 2.0])  # variances 0, .0025, .009801, .010201, .25, 4
    means = signs[:, None] * amps[None, :] + np.array([3.0, -1.0, 0.0, 5.0, 0.0, -2.0])  # offsets do not matter
    out = active_units(means)
    np.testing.assert_allclose(out["variances"], amps**2, rtol=1e-12, atol=1e-15)
    assert out["active"].tolist() == [False, False, False, True, True, True]
    assert out["n_active"] == 3 and isinstance(out["n_active"], int)
    assert BURDA_THRESHOLD == 0.01


def test_threshold_is_strict_and_configurable():
    means = np.array([[0.0, 0.0], [2.0, 0.2]])  # population variances 1.0 and 0.01 exactly
    out = active_units(means, threshold=0.01)
    np.testing.assert_allclose(out["variances"], [1.0, 0.01], rtol=1e-12)
    # 0.01 is computed as 0.010000000000000002 in float64: a variance exactly at the threshold
    v = out["variances"][1]
    assert active_units(means, threshold=float(v))["active"].tolist() == [True, False]  # equal: inactive
    assert active_units(means, threshold=float(np.nextafter(v, 0)))["active"].tolist() == [True, True]
    assert active_units(means, threshold=0.0)["n_active"] == 2
    assert active_units(means, threshold=1.0)["n_active"] == 0  # variance 1.0 is not > 1.0
    assert active_units(np.ones((5, 3)), threshold=0)["n_active"] == 0  # constant means: nothing active


def test_matches_numpy_var_on_random_means():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(500, 20)) * np.geomspace(1e-3, 1.0, 20)
    out = active_units(means.astype(np.float32))
    ref = np.var(means.astype(np.float32).astype(np.float64), axis=0)
    np.testing.assert_allclose(out["variances"], ref, rtol=1e-12)
    assert out["active"].tolist() == (ref > 0.01).tolist()
    assert out["variances"].shape == (20,) and out["active"].dtype == bool


@pytest.mark.parametrize("means, match", [
    (np.zeros(10), "2-D"),
    (np.zeros((2, 3, 4)), "2-D"),
    (np.zeros((1, 3)), "at least 2 rows"),
    (np.zeros((4, 0)), "at least 2 rows"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), "NaN or inf"),
    (np.array([["a", "b"], ["c", "d"]]), "numeric"),
])
def test_bad_means(means, match):
    with pytest.raises(ValueError, match=match):
        active_units(means)


@pytest.mark.parametrize("threshold", [-0.01, float("nan"), float("inf"), "0.01", None, True])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        active_units(np.zeros((3, 2)), threshold=threshold)


def test_posterior_means_in_batches():
    x = np.arange(21, dtype=np.float64).reshape(7, 3)
    calls = []

    def encode(xb):  # returns (mean, log_var) like vae.encode
        calls.append(len(xb))
        return 2.0 * xb[:, :2], np.zeros((len(xb), 2))

    np.testing.assert_array_equal(posterior_means(encode, x, batch_size=3), 2.0 * x[:, :2])
    assert calls == [3, 3, 1]
    np.testing.assert_array_equal(posterior_means(lambda xb: xb, x, batch_size=100), x)  # a bare mean
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        posterior_means(encode, x, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        posterior_means(encode, x[:0])
    with pytest.raises(ValueError, match="encode must be a function"):
        posterior_means("vae", x)
