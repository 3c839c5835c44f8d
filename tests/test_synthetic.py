"""Tests for jaxgen.data.synthetic: generators (shapes, modes, statistics, determinism) and batching."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from jaxgen import data as D

KEY = jax.random.key(0)


def _max_angle_deg(A, B) -> float:
    return float(np.degrees(subspace_angles(np.asarray(A, np.float64), np.asarray(B, np.float64)).max()))


# ------------------------------------------------------------------------------------ blobs
def test_blobs_statistics_and_exact_counts():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X, labels = D.make_blobs(KEY, 3001, centers=centers, cluster_std=[0.5, 1.0, 2.0], weights=[0.2, 0.3, 0.5])
    X, labels = np.asarray(X), np.asarray(labels)
    assert X.shape == (3001, 2) and X.dtype == np.float32 and labels.dtype == np.int32
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 3001 and np.all(np.abs(counts - 3001 * np.array([0.2, 0.3, 0.5])) < 1)
    for k, std in enumerate([0.5, 1.0, 2.0]):
        pts = X[labels == k]
        se = std / np.sqrt(len(pts))
        np.testing.assert_allclose(pts.mean(0), centers[k], atol=5 * se)
        np.testing.assert_allclose(pts.std(0), std, rtol=0.1)
    assert not np.all(np.diff(labels) >= 0)  # shuffled, not sorted by cluster


def test_blobs_random_centers_and_determinism():
    X1, l1 = D.make_blobs(KEY, 50, centers=4, n_features=3, center_box=(-5.0, 5.0))
    X2, l2 = D.make_blobs(KEY, 50, centers=4, n_features=3, center_box=(-5.0, 5.0))
    X3, _ = D.make_blobs(jax.random.key(1), 50, centers=4, n_features=3)
    assert X1.shape == (50, 3) and set(np.unique(l1)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.allclose(X1, X3)
    # The largest remainder goes first: 10 * (0.25, 0.25, 0.5) -> (3, 2, 5).
    _, lab = D.make_blobs(KEY, 10, centers=3, weights=[0.25, 0.25, 0.5])
    np.testing.assert_array_equal(np.bincount(np.asarray(lab)), [3, 2, 5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "n_samples"),
        (dict(centers=0), "centers"),
        (dict(cluster_std=-1.0), "cluster_std"),
        (dict(cluster_std=[1.0, 2.0]), "cluster_std"),
        (dict(weights=[0.5, 0.6, -0.1]), "weights"),
        (dict(weights=[0.5, 0.5]), "weights"),
        (dict(centers=np.zeros((3, 2)), n_features=4), "n_features"),
        (dict(center_box=(1.0, 1.0)), "center_box"),
    ],
)
def test_blobs_bad_arguments(kwargs, match):
    args = dict(n_samples=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        D.make_blobs(KEY, **args)


# ------------------------------------------------------------------------------------ subspace
def test_subspace_ground_truth_and_covariance():
    data = D.make_subspace(KEY, 20_000, 5, 2, noise_std=0.3, mean=np.arange(5.0))
    X, W = np.asarray(data.X, np.float64), np.asarray(data.W, np.float64)
    assert X.shape == (20_000, 5) and W.shape == (5, 2) and not bool(data.is_outlier.any())
    np.testing.assert_allclose(W.T @ W, np.diag([4.0, 1.0]), atol=1e-5)  # orthogonal columns, norms (2, 1)
    np.testing.assert_allclose(float(data.sigma2), 0.09, rtol=1e-6)
    np.testing.assert_allclose(X.mean(0), np.arange(5.0), atol=0.05)
    # The PPCA marginal covariance W W^T + sigma^2 I.
    np.testing.assert_allclose(np.cov(X.T), W @ W.T + 0.09 * np.eye(5), atol=0.1)


def test_outliers_drag_gaussian_pca_off_the_subspace():
    data = D.make_subspace(KEY, 300, 3, 2, outlier_fraction=0.1)
    X, out = np.asarray(data.X), np.asarray(data.is_outlier)
    assert out.sum() == 30
    truth = np.asarray(data.W)
    assert _max_angle_deg(truth, PCA(2).fit(X).components_.T) > 20.0
    assert _max_angle_deg(truth, PCA(2).fit(X[~out]).components_.T) < 3.0
    # Orthogonal gross errors: the outliers' offsets from the subspace are large, the inliers' small.
    normal = np.linalg.svd(truth)[0][:, 2]
    assert np.median(np.abs(X[out] @ normal)) > 10 * np.median(np.abs(X[~out] @ normal))


def test_box_outliers():
    data = D.make_subspace(KEY, 400, 3, 2, outlier_fraction=0.25, outlier_kind="box", outlier_scale=5.0)
    X, out = np.asarray(data.X), np.asarray(data.is_outlier)
    half = 5.0 * np.sqrt(4.0 + 0.01)
    assert out.sum() == 100 and np.all(np.abs(X[out]) <= half)
    # Uniform on [-a, a]: mean |x| = a / 2 per coordinate.
    np.testing.assert_allclose(np.abs(X[out]).mean(), half / 2, rtol=0.1)


def test_subspace_determinism_and_x64(x64):
    a = D.make_subspace(jax.random.key(3), 40, 4, 1, outlier_fraction=0.2)
    b = D.make_subspace(jax.random.key(3), 40, 4, 1, outlier_fraction=0.2)
    assert a.X.dtype == jnp.float64
    for leaf_a, leaf_b in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(leaf_a, leaf_b)
    assert int(a.is_outlier.sum()) == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_components=4), "n_components must be <= n_features"),
        (dict(outlier_fraction=1.0), "outlier_fraction"),
        (dict(outlier_fraction=-0.1), "outlier_fraction"),
        (dict(n_components=3, outlier_fraction=0.1), "orthogonal complement"),
        (dict(outlier_kind="gaussian"), "outlier_kind"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(scales=[1.0]), "scales"),
        (dict(mean=np.zeros(2)), "mean"),
        (dict(n_samples=0), "n_samples"),
    ],
)
def test_subspace_bad_arguments(kwargs, match):
    args = dict(n_samples=10, n_features=3, n_components=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        D.make_subspace(KEY, **args)


# ------------------------------------------------------------------------------------ ring, grid
def test_ring_modes_are_distinct_and_on_the_circle():
    modes = np.asarray(D.ring_modes(8, radius=2.0), np.float64)
    assert modes.shape == (8, 2)
    np.testing.assert_allclose(modes[0], [2.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 2.0, rtol=1e-6)
    dists = [np.linalg.norm(a - b) for a, b in itertools.combinations(modes, 2)]
    np.testing.assert_allclose(min(dists), 2 * 2.0 * np.sin(np.pi / 8), rtol=1e-5)  # neighbours, none repeated


def test_make_ring_samples():
    X, mode = D.make_ring(KEY, 4000)
    X, mode = np.asarray(X), np.asarray(mode)
    modes = np.asarray(D.ring_modes())
    assert X.shape == (4000, 2) and mode.shape == (4000,) and set(np.unique(mode)) == set(range(8))
    resid = X - modes[mode]
    np.testing.assert_allclose(resid.std(), 0.01, rtol=0.05)
    # Nearest mode is the generating one; counts are close to uniform (binomial sd ~ 21).
    assert np.all(np.argmin(((X[:, None] - modes[None]) ** 2).sum(-1), axis=1) == mode)
    assert np.all(np.abs(np.bincount(mode) - 500) < 100)


def test_grid_modes_and_samples():
    modes = np.asarray(D.grid_modes())
    assert modes.shape == (25, 2)
    assert {tuple(m) for m in modes.round(6)} == set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    X, mode = D.make_grid(KEY, 2500)
    resid = np.asarray(X) - modes[np.asarray(mode)]
    assert np.abs(resid).max() < 6 * 0.05 and set(np.unique(np.asarray(mode))) == set(range(25))
    np.testing.assert_array_equal(D.make_grid(KEY, 2500)[0], X)


@pytest.mark.parametrize(
    "fn, kwargs, match",
    [
        (D.make_ring, dict(n_modes=0), "n_modes"),
        (D.make_ring, dict(std=0.0), "std"),
        (D.make_grid, dict(side=0), "side"),
        (D.make_grid, dict(spacing=-1.0), "spacing"),
        (D.make_grid, dict(n_samples=2.5), "n_samples"),
    ],
)
def test_ring_grid_bad_arguments(fn, kwargs, match):
    args = dict(n_samples=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fn(KEY, **args)


# ------------------------------------------------------------------------------------ batching
def test_batches_cover_every_sample_once_and_stay_aligned():
    X = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    got = list(D.batches(KEY, (X, y), 5, drop_remainder=False))
    assert [len(b[1]) for b in got] == [5, 5, 5, 5, 3]
    seen = np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(np.sort(seen), y)
    assert not np.array_equal(seen, y)  # shuffled
    for bx, by in got:
        np.testing.assert_array_equal(bx, X[by])
        assert isinstance(bx, np.ndarray)  # NumPy in, NumPy out
    full = list(D.batches(KEY, {"x": jnp.asarray(X), "y": y}, 5))
    assert len(full) == 4 and all(b["x"].shape == (5, 2) for b in full)
    assert isinstance(full[0]["x"], jax.Array)
    ordered = list(D.batches(None, y, 10, shuffle=False))
    np.testing.assert_array_equal(np.concatenate(ordered), y[:20])


def test_epoch_batches_for_scan():
    X = jnp.arange(22 * 3, dtype=jnp.float32).reshape(22, 3)
    y = jnp.arange(22)
    bx, by = D.epoch_batches(KEY, (X, y), 4)
    assert bx.shape == (5, 4, 3) and by.shape == (5, 4)
    np.testing.assert_array_equal(bx, X[by])
    assert len(np.unique(np.asarray(by))) == 20
    total, _ = jax.lax.scan(lambda c, b: (c + b.sum(), None), jnp.float32(0), bx)
    np.testing.assert_allclose(total, X[by.ravel()].sum())


def test_batching_bad_arguments():
    with pytest.raises(ValueError, match="leading dimension"):
        list(D.batches(KEY, (np.zeros(3), np.zeros(4)), 2))
    with pytest.raises(ValueError, match="needs a jax.random key"):
        list(D.batches(None, np.zeros(4), 2))
    with pytest.raises(ValueError, match="no complete batch"):
        list(D.batches(KEY, np.zeros(4), 5))
    with pytest.raises(ValueError, match="batch_size"):
        D.epoch_batches(KEY, np.zeros(4), 0)
    with pytest.raises(ValueError, match="at least one array"):
        D.epoch_batches(KEY, (), 2)
