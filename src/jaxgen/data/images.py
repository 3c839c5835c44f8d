"""Image preprocessing shared by MNIST and Frey: scaling to [0, 1] and dynamic binarisation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.validation import float_dtype

__all__ = ["binarize", "to_float"]


def to_float(images, dtype=np.float32) -> np.ndarray:
    """Scale uint8 images to [0, 1] (``pixel / 255``) and flatten each image.

    Args:
      images: uint8 array (N, H, W) (or (N, P), already flat).
      dtype: output float dtype; float32 by default (a 50k MNIST training set is 157 MB in float32).

    Returns:
      NumPy array (N, H * W) of ``dtype`` with values in [0, 1].
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 with pixels 0..255, got dtype {images.dtype}.")
    if images.ndim < 2:
        raise ValueError(f"images must have shape (N, H, W) or (N, P), got {images.shape}.")
    return (images.reshape(images.shape[0], -1) / np.asarray(255, dtype)).astype(dtype, copy=False)


@jax.jit
def _bernoulli(key, probs):
    return jax.random.bernoulli(key, probs).astype(probs.dtype)


def binarize(images, key) -> jax.Array:
    """Dynamic binarisation: each pixel becomes 1 with probability equal to its intensity.

    Draw a fresh binarisation every epoch (new key) as in Burda et al.'s IWAE protocol.

    Args:
      images: uint8 pixels 0..255 (probability ``pixel / 255``) or floats already in [0, 1]
        (e.g. from :func:`to_float`); any shape.
      key: a ``jax.random`` key.

    Returns:
      JAX array of the same shape with values in {0, 1}, in the compute dtype
      (:func:`jaxgen.validation.float_dtype`: float32, or float64 under ``jax_enable_x64``).
    """
    arr = np.asarray(images) if not isinstance(images, jax.Array) else images
    if jnp.issubdtype(arr.dtype, jnp.integer):
        if arr.dtype != jnp.uint8:
            raise ValueError(f"integer images must be uint8 (0..255), got dtype {arr.dtype}.")
        probs = jnp.asarray(arr, float_dtype()) / 255.0
    elif jnp.issubdtype(arr.dtype, jnp.floating):
        probs = jnp.asarray(arr, float_dtype(arr.dtype))
        lo, hi = (float(jnp.min(probs)), float(jnp.max(probs))) if probs.size else (0.0, 0.0)
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(f"float images must lie in [0, 1] (probabilities), got range [{lo}, {hi}].")
    else:
        raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {arr.dtype}.")
    return _bernoulli(key, probs)
