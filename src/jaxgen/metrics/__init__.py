"""Metrics for generative models.

Mode coverage on mixtures with known modes (VEEGAN / PacGAN protocol), :mod:`jaxgen.metrics.modes`:
  :func:`mode_metrics` (samples (N, D), modes (K, D), std) -> dict(modes, high_quality_pct,
  reverse_kl, histogram (K,), n_modes, n_samples); :func:`nearest_mode`; :func:`reverse_kl_to_uniform`.

Frechet distance of Gaussians fitted to features, :mod:`jaxgen.metrics.frechet`:
  :func:`frechet_distance` (mu1 (D,), cov1 (D, D), mu2, cov2) -> float; :func:`frechet_distance_features`
  ((N1, D), (N2, D) arrays or iterables of batches) -> float; :func:`sqrtm_psd` ((D, D) -> (D, D));
  :class:`FeatureStats` / :func:`feature_statistics` (streamed float64 mean (D,) and covariance (D, D));
  :func:`frechet_bias` (expected FD of two finite samples of one Gaussian).
"""
from jaxgen.metrics.frechet import (
    FeatureStats,
    feature_statistics,
    frechet_bias,
    frechet_distance,
    frechet_distance_features,
    sqrtm_psd,
)
from jaxgen.metrics.modes import mode_metrics, nearest_mode, reverse_kl_to_uniform

__all__ = [
    "FeatureStats",
    "feature_statistics",
    "frechet_bias",
    "frechet_distance",
    "frechet_distance_features",
    "mode_metrics",
    "nearest_mode",
    "reverse_kl_to_uniform",
    "sqrtm_psd",
]
