"""Latent-space usage: active units (Burda, Grosse & Salakhutdinov 2016, Sec. 5.2).

A latent dimension u is *active* when its posterior mean moves with the data:
``A_u = Cov_x(E_{u ~ q(u|x)}[u]) > threshold`` (Burda et al. use 10^-2), i.e. the variance over the
data set of the encoder's mean for that dimension. An inactive unit is one the model ignores: its
posterior stays at the same place whatever x is (typically collapsed onto the prior).

* :func:`active_units` (means (N, q), threshold) -> dict(n_active, variances (q,), active (q,)).
* :func:`posterior_means` (encode, x (N, ...), batch_size) -> (N, q) NumPy array: the encoder's
  means over a data set in batches (any encoder returning ``mean`` or ``(mean, ...)``).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["BURDA_THRESHOLD", "active_units", "posterior_means"]

BURDA_THRESHOLD = 1e-2


def active_units(means, threshold: float = BURDA_THRESHOLD) -> dict:
    """Burda et al.'s active units from the posterior means of a data set.

    Args:
      means: ``(N, q)`` posterior means ``E_q[u | x_n]``, one row per datum (N >= 2).
      threshold: a unit is active when the variance of its mean over the N data is strictly
        greater than this (finite, >= 0; Burda et al.: 0.01).

    Returns:
      ``{"n_active": int, "variances": (q,) float64 (the population variance over rows, ddof 0,
      as NumPy's ``var``), "active": (q,) bool}``.

    Raises:
      ValueError: ``means`` not 2-D, fewer than 2 rows, no columns, non-finite or non-numeric
        entries; a negative or non-finite ``threshold``.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0 (Burda et al. use 0.01), got {threshold!r}.")
    arr = np.asarray(means)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"means must be a numeric (N, q) array of posterior means, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"means must be a 2-D (N, q) array (one row of posterior means per datum), got shape "
                         f"{arr.shape}; reshape to (N, q).")
    n, q = arr.shape
    if n < 2 or q < 1:
        raise ValueError(f"means needs at least 2 rows (data) and 1 column (latent), got shape {arr.shape}: a "
                         "variance over the data needs several data.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"means contains {int(np.sum(~np.isfinite(arr)))} NaN or inf value(s); all must be finite.")
    variances = arr.var(axis=0)
    active = variances > float(threshold)
    return {"n_active": int(active.sum()), "variances": variances, "active": active}


def posterior_means(encode: Callable, x, batch_size: int = 1000) -> np.ndarray:
    """The encoder's means over a data set, computed ``batch_size`` rows at a time.

    Args:
      encode: ``x_batch -> mean`` or ``-> (mean, ...)`` with ``mean (B, q)`` (e.g.
        ``functools.partial(jaxgen.models.vae.encode, params)``).
      x: ``(N, ...)`` data (any array the encoder accepts), N >= 1.
      batch_size: rows per call (bounds memory; the result does not depend on it).

    Returns:
      ``(N, q)`` float NumPy array.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if not callable(encode):
        raise ValueError(f"encode must be a function x -> mean or (mean, ...), got {type(encode).__name__}.")
    n = len(x)
    if n < 1:
        raise ValueError("x is empty: posterior means need at least one datum.")
    out = []
    for i in range(0, n, batch_size):
        res = encode(x[i: i + batch_size])
        out.append(np.asarray(res[0] if isinstance(res, (tuple, list)) else res))
    return np.concatenate(out)
