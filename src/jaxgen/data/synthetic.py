"""Synthetic data sets with known ground truth, and mini-batching.

Every generator takes an explicit ``jax.random`` key, so the same key gives the same data, and
returns JAX arrays in the compute dtype (float32, or float64 under ``jax_enable_x64``); labels are
int32. Arguments are validated up front with clear ``ValueError``s.

* :func:`make_blobs` -- isotropic Gaussian clusters (mixture-model tests).
* :func:`make_subspace` -- a low-dimensional linear subspace plus isotropic noise, optionally with
  gross outliers (PPCA / Student-t PCA).
* :func:`make_ring`, :func:`make_grid` -- the 2-D mixtures of the GAN mode-collapse literature
  (VEEGAN, PacGAN): 8 modes on a circle, 25 modes on a grid.
* :func:`batches`, :func:`epoch_batches` -- shuffled mini-batches of aligned arrays.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from functools import partial

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.validation import check_choice, check_data, check_positive_float, check_positive_int, float_dtype

__all__ = [
    "SubspaceData",
    "batches",
    "epoch_batches",
    "grid_modes",
    "make_blobs",
    "make_grid",
    "make_ring",
    "make_subspace",
    "ring_modes",
]


# ----------------------------------------------------------------------------------------- blobs
def _counts(n: int, weights: np.ndarray) -> np.ndarray:
    """Exact per-cluster counts summing to ``n``: floor of ``n * w``, remainder to the largest fractions."""
    raw = n * weights
    counts = np.floor(raw).astype(np.int64)
    short = n - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


@jax.jit
def _blobs(key, centers, stds, sorted_labels):
    k_perm, k_noise = jax.random.split(key)
    labels = jax.random.permutation(k_perm, sorted_labels)
    eps = jax.random.normal(k_noise, (labels.shape[0], centers.shape[1]), centers.dtype)
    return centers[labels] + stds[labels, None] * eps, labels


def make_blobs(
    key,
    n_samples: int,
    centers=3,
    n_features: int | None = None,
    cluster_std=1.0,
    weights=None,
    center_box: tuple[float, float] = (-10.0, 10.0),
):
    """Isotropic Gaussian clusters with exact cluster proportions.

    Args:
      key: ``jax.random`` key.
      n_samples: N >= 1.
      centers: number of clusters K (centres drawn uniformly in ``center_box``), or a (K, D) array.
      n_features: D when ``centers`` is an int (default 2); must match the array's D if both are given.
      cluster_std: one standard deviation, or K of them (all > 0).
      weights: (K,) mixing proportions (non-negative, summing to 1); default equal. Cluster sizes
        are ``n_samples * weights`` rounded so that they sum to N (largest remainders), not sampled.
      center_box: (low, high) bounds for random centres.

    Returns:
      ``(X, labels)``: X (N, D) float, labels (N,) int32 in [0, K), in random order.
    """
    n = check_positive_int(n_samples, "n_samples")
    dtype = float_dtype()
    k_centers, k_data = jax.random.split(key)
    if isinstance(centers, numbers.Integral) and not isinstance(centers, bool):
        n_clusters = check_positive_int(centers, "centers")
        d = 2 if n_features is None else check_positive_int(n_features, "n_features")
        lo, hi = (float(b) for b in center_box)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"center_box must be (low, high) with low < high, got {center_box!r}.")
        centers_arr = jax.random.uniform(k_centers, (n_clusters, d), dtype, lo, hi)
    else:
        centers_np = check_data(centers, name="centers", dtype=dtype)
        n_clusters, d = centers_np.shape
        if n_features is not None and check_positive_int(n_features, "n_features") != d:
            raise ValueError(f"n_features={n_features} does not match centers of shape {centers_np.shape}.")
        centers_arr = jnp.asarray(centers_np)
    stds = np.asarray(cluster_std, dtype=np.float64)
    if stds.ndim == 0:
        stds = np.full(n_clusters, float(stds))
    if stds.shape != (n_clusters,) or not np.all(np.isfinite(stds)) or np.any(stds <= 0):
        raise ValueError(
            f"cluster_std must be a positive number or {n_clusters} positive numbers, got {cluster_std!r}."
        )
    if weights is None:
        w = np.full(n_clusters, 1.0 / n_clusters)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_clusters,) or not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-6:
            raise ValueError(f"weights must be {n_clusters} non-negative numbers summing to 1, got {weights!r}.")
    sorted_labels = np.repeat(np.arange(n_clusters, dtype=np.int32), _counts(n, w / w.sum()))
    return _blobs(k_data, centers_arr, jnp.asarray(stds, dtype), jnp.asarray(sorted_labels))


# -------------------------------------------------------------------------- subspace + outliers
@flax.struct.dataclass
class SubspaceData:
    """Points near a linear subspace, with the ground truth used to generate them.

    Attributes:
      X: (N, D) observations.
      is_outlier: (N,) bool, True for the gross outliers.
      mu: (D,) true mean.
      W: (D, q) true loading matrix: orthogonal columns with norms ``scales`` (the PPCA ``W`` up to
        rotation; its column space is the true subspace).
      sigma2: () true isotropic noise variance ``noise_std ** 2``.
    """

    X: jax.Array
    is_outlier: jax.Array
    mu: jax.Array
    W: jax.Array
    sigma2: jax.Array


@partial(jax.jit, static_argnames=("n_samples", "n_outliers", "orthogonal"))
def _subspace(key, mu, W, Q_perp, noise_std, half_width, *, n_samples, n_outliers, orthogonal):
    d, q = W.shape
    k_z, k_eps, k_pos, k_out = jax.random.split(key, 4)
    z = jax.random.normal(k_z, (n_samples, q), W.dtype)
    eps = jax.random.normal(k_eps, (n_samples, d), W.dtype)
    X = mu + z @ W.T + noise_std * eps
    # Replace a random subset of exactly n_outliers points.
    where = jax.random.permutation(k_pos, n_samples)[:n_outliers]
    is_outlier = jnp.zeros(n_samples, bool).at[where].set(True)
    if orthogonal:  # keep the in-subspace position, add a gross error in the orthogonal complement
        u = jax.random.uniform(k_out, (n_outliers, Q_perp.shape[1]), W.dtype, -half_width, half_width)
        gross = X[where] + u @ Q_perp.T
    else:  # uniform in a cube around mu
        gross = mu + jax.random.uniform(k_out, (n_outliers, d), W.dtype, -half_width, half_width)
    return X.at[where].set(gross), is_outlier


def make_subspace(
    key,
    n_samples: int,
    n_features: int,
    n_components: int,
    *,
    noise_std: float = 0.1,
    scales=None,
    outlier_fraction: float = 0.0,
    outlier_scale: float = 10.0,
    outlier_kind: str = "orthogonal",
    mean=None,
) -> SubspaceData:
    """Draw ``x = mu + W z + eps`` (``z ~ N(0, I_q)``, ``eps ~ N(0, noise_std^2 I_D)``), then add outliers.

    The PPCA generative model (Tipping & Bishop 1999). ``W = Q diag(scales)`` with ``Q`` a random
    orthonormal (D, q) basis. A fraction ``outlier_fraction`` of the points (exactly
    ``round(outlier_fraction * N)``, at random positions) is replaced by gross outliers. With
    ``s = sqrt(max(scales)^2 + noise_std^2)`` the clean data's largest standard deviation and
    ``a = outlier_scale * s``:

    * ``"orthogonal"`` (default): the point keeps its position along the subspace and gets a gross
      error uniform in ``[-a, a]`` along each direction of the orthogonal complement (needs q < D).
      The outliers add variance ``fraction * a^2 / 3`` off the subspace, which exceeds the smallest
      in-subspace variance, so Gaussian PCA swaps a true direction for an outlier one: with
      10 % outliers (2-D subspace in 3-D) its subspace is off by about 90 degrees for every key.
    * ``"box"``: uniform in the cube ``mu +- a``. Isotropic on average, these tilt Gaussian PCA
      only through sampling fluctuations (a few outliers dominate the sample covariance): with the
      defaults and 10 % outliers, > 20 degrees for about 85 % of keys at N = 300, 80 % at N = 1000.

    The clean points alone give Gaussian PCA about 1 degree: the setting of Student-t PCA
    (Archambeau et al. 2006).

    Args:
      key: ``jax.random`` key.
      n_samples: N >= 1.
      n_features: D >= 1.
      n_components: q, 1 <= q <= D.
      noise_std: isotropic noise standard deviation (>= 0; 0 puts the points exactly on the subspace).
      scales: (q,) positive column norms of W; default ``linspace(2, 1, q)`` (distinct, so the
        principal directions are identifiable).
      outlier_fraction: in [0, 1).
      outlier_scale: outlier half-width in units of the clean data's largest std (> 0).
      outlier_kind: ``"orthogonal"`` or ``"box"`` (see above).
      mean: (D,) true mean; default zeros.

    Returns:
      :class:`SubspaceData` with X (N, D), is_outlier (N,), mu (D,), W (D, q), sigma2 ().
    """
    n = check_positive_int(n_samples, "n_samples")
    d = check_positive_int(n_features, "n_features")
    q = check_positive_int(n_components, "n_components")
    if q > d:
        raise ValueError(f"n_components must be <= n_features, got n_components={q} > n_features={d}.")
    noise_std = check_positive_float(noise_std, "noise_std", allow_zero=True)
    outlier_scale = check_positive_float(outlier_scale, "outlier_scale")
    check_choice(outlier_kind, "outlier_kind", ("orthogonal", "box"))
    if isinstance(outlier_fraction, bool) or not isinstance(outlier_fraction, numbers.Real) \
            or not 0.0 <= outlier_fraction < 1.0:
        raise ValueError(f"outlier_fraction must be a number in [0, 1), got {outlier_fraction!r}.")
    n_outliers = int(round(outlier_fraction * n))
    if outlier_kind == "orthogonal" and n_outliers and q == d:
        raise ValueError("outlier_kind='orthogonal' needs n_components < n_features (the subspace has no "
                         "orthogonal complement); use outlier_kind='box'.")
    dtype = float_dtype()
    if scales is None:
        scales_np = np.linspace(2.0, 1.0, q)
    else:
        scales_np = np.asarray(scales, dtype=np.float64)
        if scales_np.shape != (q,) or not np.all(np.isfinite(scales_np)) or np.any(scales_np <= 0):
            raise ValueError(f"scales must be {q} positive numbers (one per component), got {scales!r}.")
    if mean is None:
        mu = np.zeros(d)
    else:
        mu = check_data(mean, name="mean", ndim=1, dtype=dtype)
        if mu.shape != (d,):
            raise ValueError(f"mean must have shape ({d},), got {mu.shape}.")
    k_basis, k_data = jax.random.split(key)
    # QR of a Gaussian matrix gives a uniformly random orthonormal basis once R's diagonal is made
    # positive; its first q columns span the subspace, the rest its orthogonal complement.
    Q, R = jnp.linalg.qr(jax.random.normal(k_basis, (d, d), dtype))
    Q = Q * jnp.where(jnp.diag(R) < 0, -1.0, 1.0).astype(dtype)
    W = Q[:, :q] * jnp.asarray(scales_np, dtype)
    half_width = outlier_scale * math.sqrt(float(scales_np.max()) ** 2 + noise_std**2)
    X, is_outlier = _subspace(
        k_data, jnp.asarray(mu, dtype), W, Q[:, q:], jnp.asarray(noise_std, dtype),
        jnp.asarray(half_width, dtype),
        n_samples=n, n_outliers=n_outliers, orthogonal=outlier_kind == "orthogonal",
    )
    return SubspaceData(X=X, is_outlier=is_outlier, mu=jnp.asarray(mu, dtype), W=W,
                        sigma2=jnp.asarray(noise_std**2, dtype))


# -------------------------------------------------------------------------------- ring and grid
def ring_modes(n_modes: int = 8, radius: float = 1.0) -> jax.Array:
    """(n_modes, 2) means ``radius * (cos t_i, sin t_i)`` with ``t_i = 2 pi i / n_modes``, i = 0..n_modes-1.

    (Not ``linspace(0, 2 pi, n_modes)``, which puts the last mode on top of the first.)
    """
    n_modes = check_positive_int(n_modes, "n_modes")
    radius = check_positive_float(radius, "radius")
    t = 2.0 * np.pi * np.arange(n_modes) / n_modes
    return jnp.asarray(radius * np.stack([np.cos(t), np.sin(t)], axis=1), float_dtype())


def grid_modes(side: int = 5, spacing: float = 2.0) -> jax.Array:
    """(side**2, 2) means on a centred square grid; the defaults give {-4, -2, 0, 2, 4}^2.

    Row-major order: mode ``i * side + j`` sits at ``(c_i, c_j)`` with ``c_k = spacing * (k - (side - 1) / 2)``.
    """
    side = check_positive_int(side, "side")
    spacing = check_positive_float(spacing, "spacing")
    c = spacing * (np.arange(side) - (side - 1) / 2.0)
    gx, gy = np.meshgrid(c, c, indexing="ij")
    return jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), float_dtype())


@partial(jax.jit, static_argnames=("n_samples",))
def _mixture_of_modes(key, modes, std, *, n_samples):
    k_mode, k_noise = jax.random.split(key)
    mode = jax.random.randint(k_mode, (n_samples,), 0, modes.shape[0], dtype=jnp.int32)
    return modes[mode] + std * jax.random.normal(k_noise, (n_samples, modes.shape[1]), modes.dtype), mode


def make_ring(key, n_samples: int, n_modes: int = 8, radius: float = 1.0, std: float = 0.01):
    """Equal-weight mixture of isotropic Gaussians at :func:`ring_modes` (VEEGAN/PacGAN: 8 modes, std 0.01).

    Returns:
      ``(X, mode)``: X (N, 2) float, mode (N,) int32 index of the generating mode (uniform).
    """
    n = check_positive_int(n_samples, "n_samples")
    std = check_positive_float(std, "std")
    modes = ring_modes(n_modes, radius)
    return _mixture_of_modes(key, modes, jnp.asarray(std, modes.dtype), n_samples=n)


def make_grid(key, n_samples: int, side: int = 5, spacing: float = 2.0, std: float = 0.05):
    """Equal-weight mixture of isotropic Gaussians at :func:`grid_modes` (PacGAN: 25 modes, std 0.05).

    Returns:
      ``(X, mode)``: X (N, 2) float, mode (N,) int32 index into :func:`grid_modes` (uniform).
    """
    n = check_positive_int(n_samples, "n_samples")
    std = check_positive_float(std, "std")
    modes = grid_modes(side, spacing)
    return _mixture_of_modes(key, modes, jnp.asarray(std, modes.dtype), n_samples=n)


# ------------------------------------------------------------------------------------- batching
def _leading_dim(arrays) -> int:
    leaves = jax.tree.leaves(arrays)
    if not leaves:
        raise ValueError("arrays must contain at least one array.")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes:
        raise ValueError("every array must have a leading (sample) axis; got a scalar.")
    if len(sizes) != 1:
        raise ValueError(f"arrays must share their leading dimension, got sizes {sorted(sizes)}.")
    return sizes.pop()


def batches(key, arrays, batch_size: int, *, drop_remainder: bool = True, shuffle: bool = True) -> Iterator:
    """Iterate over aligned mini-batches of a pytree of arrays (one pass = one epoch).

    Args:
      key: ``jax.random`` key for the permutation (may be None when ``shuffle`` is False).
      arrays: an array, or a tuple/dict/pytree of arrays sharing their leading dimension N.
        NumPy leaves stay NumPy, JAX leaves stay JAX.
      batch_size: B >= 1.
      drop_remainder: skip the last incomplete batch (keeps shapes static for ``jit``).
      shuffle: visit the samples in a random order.

    Yields:
      Pytrees with the structure of ``arrays`` whose leaves have leading dimension B (the last may
      be smaller when ``drop_remainder`` is False).
    """
    n = _leading_dim(arrays)
    b = check_positive_int(batch_size, "batch_size")
    if drop_remainder and b > n:
        raise ValueError(f"batch_size={b} exceeds the {n} samples, so no complete batch exists; "
                         "lower batch_size or pass drop_remainder=False.")
    if shuffle:
        if key is None:
            raise ValueError("shuffle=True needs a jax.random key.")
        order = np.asarray(jax.random.permutation(key, n))
    else:
        order = np.arange(n)
    stop = (n // b) * b if drop_remainder else n
    for start in range(0, stop, b):
        idx = order[start:start + b]
        yield jax.tree.map(lambda a, idx=idx: a[idx], arrays)


def epoch_batches(key, arrays, batch_size: int, *, shuffle: bool = True):
    """One epoch as stacked batches, for a ``jax.lax.scan`` over batches.

    The remainder (N mod B samples) is dropped; with ``shuffle`` a different remainder each epoch.

    Args:
      key: ``jax.random`` key (may be None when ``shuffle`` is False).
      arrays: an array or pytree of arrays sharing their leading dimension N.
      batch_size: B, 1 <= B <= N.

    Returns:
      The pytree with every leaf as a JAX array of shape (N // B, B, ...).
    """
    n = _leading_dim(arrays)
    b = check_positive_int(batch_size, "batch_size")
    if b > n:
        raise ValueError(f"batch_size={b} exceeds the {n} samples; lower batch_size.")
    if shuffle and key is None:
        raise ValueError("shuffle=True needs a jax.random key.")
    n_batches = n // b
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    idx = order[: n_batches * b]
    return jax.tree.map(lambda a: jnp.asarray(a)[idx].reshape((n_batches, b) + jnp.shape(a)[1:]), arrays)
