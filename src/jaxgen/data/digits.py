"""The UCI optical handwritten digits (8 x 8, 1797 images), from scikit-learn's bundled copy (no network)."""
from __future__ import annotations

import numpy as np

__all__ = ["load_digits"]


def load_digits(*, as_images: bool = False):
    """Load the 1797 digits shipped with scikit-learn.

    Pixels keep their raw scale: integer counts 0..16 (each pixel counts set bits in a 4 x 4 block
    of the original 32 x 32 bitmap), stored as float64. Divide by 16 for [0, 1].

    Args:
      as_images: return ``X`` as (1797, 8, 8) images instead of (1797, 64) row-major vectors.

    Returns:
      ``(X, y)``: ``X`` float64 (1797, 64) or (1797, 8, 8) with values in 0..16, ``y`` int64 (1797,)
      labels 0..9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # imported lazily: sklearn is slow to import

    X, y = _sk_load_digits(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if as_images:
        X = X.reshape(-1, 8, 8)
    return X, y
