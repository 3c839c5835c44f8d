"""The Frechet distance between Gaussians fitted to two feature sets (FID's formula), computed stably.

    FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})

is the squared 2-Wasserstein distance between N(mu1, S1) and N(mu2, S2). The trace term uses the
symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}`` (same eigenvalues as ``S1 S2``, whose square root
``sqrtm(S1 S2)`` is what most FID code computes from a non-symmetric product and then has to strip
of spurious imaginary parts): two symmetric eigendecompositions, eigenvalues clipped at 0, all on
the host in float64.

Feature statistics can be streamed (:class:`FeatureStats`): per-batch means and centred scatters
merged with Chan et al.'s pairwise update, memory O(D^2) whatever the number of samples.

Bias of the plug-in estimator. Sample means and covariances make FD biased upwards: two samples
of sizes n1 and n2 from the *same* Gaussian N(mu, S) (eigenvalues l_i) have, to second order in
the sampling noise (:func:`frechet_bias`),

    E[FD] ~ tr(S) (1/n1 + 1/n2)
            + (1/(n1-1) + 1/(n2-1)) / 2 * (sum_ij l_i l_j / (l_i + l_j) + tr(S) / 2),

(the Bures metric's second-order form, ``sum_ij dS_ij^2 / (2 (l_i + l_j))``, averaged over Wishart
noise); for S = I_D and n1 = n2 = N: ``2 D / N + D (D + 1) / (2 (N - 1))``, e.g. 0.44 for D = 64,
N = 5 000, so the covariance term dominates and grows as D^2 / N. The test suite checks this against
a Monte Carlo estimate. FD values are comparable only at equal sample sizes and feature extractors.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from jaxgen.validation import check_data, check_positive_int

__all__ = ["FeatureStats", "feature_statistics", "frechet_bias", "frechet_distance", "frechet_distance_features",
           "sqrtm_psd"]


def _square(S, name: str) -> np.ndarray:
    S = np.asarray(S)
    check_data(S, name=name, ndim=2)  # numeric, finite; the float64 cast below keeps full precision
    S = S.astype(np.float64)
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"{name} must be a square (D, D) covariance matrix, got shape {S.shape}.")
    scale = max(float(np.abs(S).max()), 1e-300)
    if np.abs(S - S.T).max() > 1e-6 * scale:
        raise ValueError(f"{name} must be symmetric (a covariance matrix); max |S - S.T| = {np.abs(S - S.T).max():.3g}.")
    return (S + S.T) / 2


def _psd_eig(S: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of symmetric S with eigenvalues clipped at 0; large negative ones are an error."""
    w, V = np.linalg.eigh(S)
    tol = 1e-8 * max(float(np.abs(w).max()), 1e-300) * S.shape[0]
    if w.min() < -tol:
        raise ValueError(f"{name} is not positive semi-definite: smallest eigenvalue {w.min():.3g}.")
    return np.clip(w, 0.0, None), V


def sqrtm_psd(S) -> np.ndarray:
    """The symmetric PSD square root of a symmetric PSD matrix.

    Args:
      S: (D, D) symmetric positive semi-definite matrix (eigenvalues down to ``-1e-8 * D * max|eig|``
        are rounding and are clipped to 0).

    Returns:
      float64 (D, D) symmetric R with ``R @ R = S`` (``V diag(sqrt(w)) V^T`` from ``eigh``).

    Raises:
      ValueError: not square, not symmetric, not PSD, non-finite.
    """
    S = _square(S, "S")
    w, V = _psd_eig(S, "S")
    R = (V * np.sqrt(w)) @ V.T
    return (R + R.T) / 2


def _mean(mu, name: str, d: int | None = None) -> np.ndarray:
    mu = np.asarray(mu)
    check_data(mu, name=name, ndim=1)
    if d is not None and mu.shape[0] != d:
        raise ValueError(f"{name} has {mu.shape[0]} entries but the covariances are {d} x {d}.")
    return mu.astype(np.float64)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Frechet distance ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})`` of two Gaussians.

    Args:
      mu1, mu2: (D,) means.
      cov1, cov2: (D, D) symmetric PSD covariances.

    Returns:
      float >= 0 (rounding below 0 is clipped): the squared 2-Wasserstein distance of the Gaussians.

    Raises:
      ValueError: mismatched dimensions, non-symmetric / non-PSD covariances, non-finite entries.
    """
    S1, S2 = _square(cov1, "cov1"), _square(cov2, "cov2")
    if S1.shape != S2.shape:
        raise ValueError(f"cov1 is {S1.shape} but cov2 is {S2.shape}: both feature sets need the same dimension D.")
    d = S1.shape[0]
    m1, m2 = _mean(mu1, "mu1", d), _mean(mu2, "mu2", d)
    w1, V1 = _psd_eig(S1, "cov1")
    _psd_eig(S2, "cov2")  # validation only
    R1 = (V1 * np.sqrt(w1)) @ V1.T
    A = R1 @ S2 @ R1
    wa = np.linalg.eigvalsh((A + A.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(wa, 0.0, None)).sum())
    fd = float(np.sum((m1 - m2) ** 2)) + float(np.trace(S1) + np.trace(S2)) - 2.0 * tr_sqrt
    return max(fd, 0.0)


def frechet_bias(cov, n1: int, n2: int) -> float:
    """Expected FD, to second order, between plug-in statistics of two samples of one Gaussian N(mu, cov).

    ``tr(S)(1/n1 + 1/n2) + (1/(n1-1) + 1/(n2-1))/2 * (sum_ij l_i l_j/(l_i + l_j) + tr(S)/2)``
    with ``l`` the eigenvalues of ``cov`` (pairs with ``l_i + l_j = 0`` contribute 0).

    Args:
      cov: (D, D) covariance of the feature distribution.
      n1, n2: the two sample sizes (>= 2).

    Returns:
      float, the floor an FD between two finite samples of the same distribution sits at.
    """
    w, _ = _psd_eig(_square(cov, "cov"), "cov")
    n1, n2 = check_positive_int(n1, "n1", minimum=2), check_positive_int(n2, "n2", minimum=2)
    s = w[:, None] + w[None, :]
    pair = np.divide(w[:, None] * w[None, :], s, out=np.zeros_like(s), where=s > 0)
    tr = float(w.sum())
    return tr * (1 / n1 + 1 / n2) + 0.5 * (1 / (n1 - 1) + 1 / (n2 - 1)) * (float(pair.sum()) + tr / 2)


class FeatureStats:
    """Streamed mean and covariance of feature vectors: memory O(D^2), not O(N D).

    Each batch's mean and centred scatter are merged into the running ones with Chan, Golub &
    LeVeque's pairwise update (no ``sum x x^T - N mu mu^T`` cancellation), in float64 on the host::

        stats = FeatureStats(dim)
        for batch in batches:            # (B, D) arrays, NumPy or JAX
            stats.update(batch)
        mu, cov = stats.mean, stats.cov()

    Attributes:
      n: samples seen; ``mean``: (D,) float64 (after at least one sample).
    """

    def __init__(self, dim: int):
        self.dim = check_positive_int(dim, "dim")
        self.n = 0
        self._mean = np.zeros(self.dim, np.float64)
        self._scatter = np.zeros((self.dim, self.dim), np.float64)  # sum of (x - mean)(x - mean)^T

    def update(self, batch) -> "FeatureStats":
        """Add a (B, D) batch of features; returns ``self``."""
        x = np.asarray(batch)
        check_data(x, name="features", ndim=2, n_features=self.dim)
        x = x.astype(np.float64)
        nb = x.shape[0]
        mb = x.mean(axis=0)
        xc = x - mb
        self._merge(nb, mb, xc.T @ xc)
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Add the statistics of another :class:`FeatureStats` of the same dimension; returns ``self``."""
        if not isinstance(other, FeatureStats) or other.dim != self.dim:
            raise ValueError("merge needs a FeatureStats of the same dimension.")
        if other.n:
            self._merge(other.n, other._mean, other._scatter)
        return self

    def _merge(self, nb: int, mb: np.ndarray, scatter_b: np.ndarray) -> None:
        n = self.n + nb
        delta = mb - self._mean
        self._scatter += scatter_b + np.outer(delta, delta) * (self.n * nb / n)
        self._mean += delta * (nb / n)
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        if self.n == 0:
            raise ValueError("no features seen yet: call update(batch) first.")
        return self._mean.copy()

    def cov(self, ddof: int = 1) -> np.ndarray:
        """(D, D) float64 covariance, ``scatter / (n - ddof)`` (``ddof=1``: unbiased, ``np.cov``'s default)."""
        if self.n - ddof <= 0:
            raise ValueError(f"a covariance with ddof={ddof} needs more than {ddof} sample(s), got {self.n}.")
        return self._scatter / (self.n - ddof)


def feature_statistics(features, *, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (D,), covariance (D, D))`` in float64 of an (N, D) array, or of an iterable of (B, D) batches.

    An array is consumed ``batch_size`` rows at a time (device arrays are copied one block at a
    time), an iterable batch by batch; memory O(D^2 + batch_size D) either way. Covariance: ddof=1.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if hasattr(features, "shape"):
        if len(features.shape) != 2:
            raise ValueError(f"features must be an (N, D) array, got shape {tuple(features.shape)}.")
        it: Iterable = (features[i:i + batch_size] for i in range(0, features.shape[0], batch_size))
        dim = features.shape[1]
    else:
        it, dim = iter(features), None
    stats = None
    for batch in it:
        if stats is None:
            b = np.asarray(batch)
            if b.ndim != 2:
                raise ValueError(f"each batch of features must be (B, D), got shape {b.shape}.")
            stats = FeatureStats(dim or b.shape[1])
        stats.update(batch)
    if stats is None:
        raise ValueError("features is empty: at least 2 feature vectors are needed.")
    return stats.mean, stats.cov()


def frechet_distance_features(features1, features2, *, batch_size: int = 4096) -> float:
    """Frechet distance between Gaussians fitted (plug-in mean, ddof=1 covariance) to two feature sets.

    Args:
      features1, features2: (N1, D) and (N2, D) arrays, or iterables of (B, D) batches.

    Returns:
      float, :func:`frechet_distance` of the two fits (biased upwards at small N: :func:`frechet_bias`).
    """
    mu1, s1 = feature_statistics(features1, batch_size=batch_size)
    mu2, s2 = feature_statistics(features2, batch_size=batch_size)
    return frechet_distance(mu1, s1, mu2, s2)
