"""Metrics for generative models.

Mode coverage on mixtures with known modes (VEEGAN / PacGAN protocol), :mod:`jaxgen.metrics.modes`:
  :func:`mode_metrics` (samples (N, D), modes (K, D), std) -> dict(modes, high_quality_pct,
  reverse_kl, histogram (K,), n_modes, n_samples); :func:`nearest_mode`; :func:`reverse_kl_to_uniform`.
"""
from jaxgen.metrics.modes import mode_metrics, nearest_mode, reverse_kl_to_uniform

__all__ = ["mode_metrics", "nearest_mode", "reverse_kl_to_uniform"]
