"""The estimators' dtype rule: float64 data are computed and returned in float64, the rest in float32.

The pure functions follow JAX's global setting (float32 unless ``jax_enable_x64``); an estimator
given float64 data instead runs its whole computation under ``jax.enable_x64`` locally, as a
scikit-learn user expects (float32 stays the fast path for float32 / integer input). Every method
of a fitted estimator runs in the dtype it was fitted in.
"""
from __future__ import annotations

import contextlib

import jax
import numpy as np

__all__ = ["input_dtype", "computing_in"]


def input_dtype(X) -> np.dtype:
    """float64 when ``X`` holds float64 numbers (NumPy, JAX, or a list of Python floats), else float32."""
    dt = getattr(X, "dtype", None)
    if dt is None:
        dt = np.asarray(X).dtype
    try:
        dt = np.dtype(dt)
    except TypeError:
        return np.dtype(np.float32)
    return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)


@contextlib.contextmanager
def computing_in(dtype):
    """Run the block with float64 enabled when ``dtype`` is float64 (else unchanged)."""
    if np.dtype(dtype) == np.float64:
        with jax.enable_x64(True):
            yield
    else:
        yield
