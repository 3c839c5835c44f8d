"""Mode coverage of samples from a mixture with known modes: the VEEGAN / PacGAN protocol.

Protocol (Srivastava et al., VEEGAN, NeurIPS 2017, Sec. 5.1; reused by Lin et al., PacGAN,
NeurIPS 2018, Sec. 5.1 / Table 1): on the ring of 8 (std 0.01) and the grid of 25 (std 0.05)
isotropic Gaussians, draw 2 500 generated samples and assign each to its **nearest mode**
(Euclidean distance to the mode means).

* A sample is **high quality** (HQ) if its distance to its nearest mode is at most
  ``n_sigma * std`` (3 standard deviations).
* A mode is **captured** if it is the nearest mode of at least ``min_count`` HQ samples
  (``min_count=1``: PacGAN's rule, "at least one high-quality sample is assigned to it").
* **Reverse KL** ``KL(p || u) = sum_k p_k log(K p_k)`` of the histogram ``p`` of the HQ samples
  over the K modes (their nearest-mode counts, normalised) to the uniform ``u_k = 1/K``; empty modes
  contribute ``0 log 0 = 0``. It is 0 for a perfectly balanced histogram and ``log K`` when every
  HQ sample sits at one mode. With no HQ sample at all (no mode found) there is no histogram and the
  reverse KL is **undefined**: ``None`` (``null`` in ``metrics.json``; tables say "undefined (no HQ
  sample)" and average over the seeds where it is defined, saying how many were left out), never a
  number that a mean over seeds could absorb.

Calibration: for samples from the true mixture, the squared distance to the generating mode over
``std**2`` is chi-square with D degrees of freedom; in 2-D a 3-sigma ball holds
``1 - exp(-4.5) = 98.89 %`` of the mass, the HQ percentage of perfect samples. The reverse KL of a
perfect sampler is not 0 either: ``2 n KL`` is the G-test statistic, asymptotically chi-square
with K - 1 degrees of freedom, so ``E[KL] ~ (K - 1) / (2 n)`` (0.0014 for K = 8, n ~ 2 472).

All computation is on the host in float64 (N x K distances; 2 500 x 25 is trivial).
"""
from __future__ import annotations

import numpy as np

from jaxgen.validation import check_data, check_positive_float, check_positive_int

__all__ = ["mode_metrics", "nearest_mode", "reverse_kl_to_uniform"]


def _as_points(samples, modes):
    X, M = np.asarray(samples), np.asarray(modes)
    check_data(X, name="samples", ndim=2)  # validation only: it would round float64 input to float32 without x64
    check_data(M, name="modes", ndim=2)
    X, M = X.astype(np.float64), M.astype(np.float64)
    if X.shape[1] != M.shape[1]:
        raise ValueError(
            f"samples have {X.shape[1]} coordinates but modes have {M.shape[1]}: both must be (N, D) and (K, D) "
            "with the same D (e.g. D = 2 for jaxgen.data.ring_modes / grid_modes).")
    return X, M


def nearest_mode(samples, modes, *, chunk_size: int = 65_536):
    """The nearest mode of every sample and the distance to it.

    Args:
      samples: (N, D) points (NumPy or JAX; copied to the host).
      modes: (K, D) mode means (e.g. :func:`jaxgen.data.ring_modes`).
      chunk_size: rows per block of the (rows, K) distance matrix (bounds memory for large N).

    Returns:
      ``(index, distance)``: int64 (N,) index in 0..K-1 of the nearest mode (ties: the lowest index),
      float64 (N,) Euclidean distance to it.
    """
    X, M = _as_points(samples, modes)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    index = np.empty(len(X), np.int64)
    dist = np.empty(len(X), np.float64)
    for start in range(0, len(X), chunk_size):
        d2 = ((X[start:start + chunk_size, None, :] - M[None, :, :]) ** 2).sum(-1)  # exact differences, not the expanded form
        i = d2.argmin(axis=1)
        index[start:start + chunk_size] = i
        dist[start:start + chunk_size] = np.sqrt(d2[np.arange(len(i)), i])
    return index, dist


def reverse_kl_to_uniform(counts) -> float | None:
    """``KL(p || uniform) = sum_k p_k log(K p_k)`` of the histogram ``p = counts / counts.sum()``, in nats.

    Args:
      counts: (K,) non-negative counts (or weights) per mode; empty modes contribute 0 (``0 log 0 = 0``).

    Returns:
      float in ``[0, log K]``; ``None`` (undefined) when every count is 0: there is no histogram.
    """
    c = np.asarray(counts, np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array of per-mode counts, got shape {c.shape}.")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("counts must be finite and non-negative.")
    total = c.sum()
    if total == 0:
        return None
    p = c[c > 0] / total
    return float(max(np.sum(p * np.log(p * c.size)), 0.0))  # clip the -1e-17 rounding of a uniform histogram


def mode_metrics(samples, modes, std, *, n_sigma: float = 3.0, min_count: int = 1) -> dict:
    """VEEGAN / PacGAN mode-collapse metrics of ``samples`` against a mixture with means ``modes``.

    Args:
      samples: (N, D) generated points (the protocol uses N = 2 500, D = 2).
      modes: (K, D) true mode means (:func:`jaxgen.data.ring_modes` / :func:`jaxgen.data.grid_modes`).
      std: the true modes' isotropic standard deviation (ring 0.01, grid 0.05).
      n_sigma: a sample is high quality within ``n_sigma * std`` of its nearest mode (3).
      min_count: HQ samples a mode needs to count as captured (1: PacGAN's rule).

    Returns:
      dict with
        ``modes``: int, number of captured modes (0..K);
        ``high_quality_pct``: float, percentage (0..100) of samples that are high quality;
        ``reverse_kl``: float, ``KL(p_HQ || uniform)`` in nats; ``None`` (undefined) if no HQ sample;
        ``histogram``: int64 (K,) count of HQ samples per nearest mode;
        ``n_modes``: K; ``n_samples``: N.

    Raises:
      ValueError: samples/modes of the wrong rank or mismatched D, non-finite values, std <= 0.
    """
    std = check_positive_float(std, "std")
    n_sigma = check_positive_float(n_sigma, "n_sigma")
    min_count = check_positive_int(min_count, "min_count")
    index, dist = nearest_mode(samples, modes)
    k = np.asarray(modes).shape[0]
    hq = dist <= n_sigma * std
    hist = np.bincount(index[hq], minlength=k).astype(np.int64)
    return {
        "modes": int(np.sum(hist >= min_count)),
        "high_quality_pct": float(100.0 * hq.mean()),
        "reverse_kl": reverse_kl_to_uniform(hist),
        "histogram": hist,
        "n_modes": int(k),
        "n_samples": int(len(dist)),
    }
