"""Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): three MNIST digits as the RGB channels of one image.

Each image is ``(28, 28, 3)``: channel c holds an MNIST digit ``d_c``, so the data has
``10^3 = 1000`` modes, mode id ``100 d_0 + 10 d_1 + d_2``.

Two ways to draw the three digits:

* ``balanced=True`` (default): the digit triple is uniform over the 1000 modes, then each channel
  is a uniformly chosen image of its digit. The mode distribution is exactly uniform, the reference
  of the KL-to-uniform metric.
* ``balanced=False``: the literature's construction (three independently sampled MNIST images),
  whose mode probabilities are products of MNIST's digit frequencies (ones are 11 %, fives 9 %), so
  not exactly uniform.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxgen import keys
from jaxgen.validation import check_key, check_positive_int

__all__ = ["N_STACKED_MODES", "make_stacked_mnist", "stack_digits", "stacked_mode_id"]

N_STACKED_MODES = 1000


def stacked_mode_id(digits) -> np.ndarray:
    """Mode ids ``100 d0 + 10 d1 + d2`` (int64 (N,), 0..999) of digit triples ``digits`` (N, 3) in 0..9."""
    d = np.asarray(digits)
    if d.ndim != 2 or d.shape[1] != 3:
        raise ValueError(f"digits must be (N, 3) digit triples, got shape {d.shape}.")
    if not np.issubdtype(d.dtype, np.integer) or d.size and (d.min() < 0 or d.max() > 9):
        raise ValueError("digits must be integers in 0..9.")
    return (100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]).astype(np.int64)


def stack_digits(key, n_samples: int, images, labels, *, balanced: bool = True):
    """Stacked MNIST from given single-digit images (deterministic from ``key``).

    Args:
      key: ``jax.random`` key.
      n_samples: number of stacked images N.
      images: (M, 28, 28) single-digit images (any dtype, e.g. uint8 from :func:`jaxgen.data.load_mnist`).
      labels: (M,) digits 0..9; with ``balanced`` every digit must occur.
      balanced: draw the digit triple uniformly over the 1000 modes (see the module docstring).

    Returns:
      ``(stacked, digits)``: (N, 28, 28, 3) with the dtype of ``images``, int64 (N, 3) digit of each channel.
    """
    key = check_key(key)
    n = check_positive_int(n_samples, "n_samples")
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int64)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"images must be (M, H, W) with labels (M,), got {images.shape} and {labels.shape}.")
    if labels.size == 0 or labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels must be digits 0..9 (and at least one image is needed).")
    ks = keys.streams(key, "digits", "images")
    if balanced:
        counts = np.bincount(labels, minlength=10)
        if counts.min() == 0:
            raise ValueError(f"balanced stacking needs every digit 0..9 among the images; counts {counts.tolist()}.")
        order = np.argsort(labels, kind="stable")  # the images of digit d are order[offset[d]:offset[d] + counts[d]]
        offset = np.concatenate([[0], np.cumsum(counts)[:-1]])
        digits = np.asarray(jax.random.randint(ks["digits"], (n, 3), 0, 10))
        within = np.asarray(jax.random.randint(ks["images"], (n, 3), 0, counts[digits]))
        index = order[offset[digits] + within]
    else:
        index = np.asarray(jax.random.randint(ks["images"], (n, 3), 0, len(labels)))
        digits = labels[index]
    return np.stack([images[index[:, c]] for c in range(3)], axis=-1), digits.astype(np.int64)


def make_stacked_mnist(key, n_samples: int, split: str = "train", *, balanced: bool = True, data_dir=None):
    """Stacked MNIST built from one MNIST split (:func:`jaxgen.data.load_mnist`).

    Returns:
      ``(images, digits)``: uint8 (N, 28, 28, 3) pixels 0..255, int64 (N, 3) digits per channel
      (mode id: :func:`stacked_mode_id`).
    """
    from jaxgen.data.mnist import load_mnist

    x, y = load_mnist(split, data_dir=data_dir)
    return stack_digits(key, n_samples, x, y, balanced=balanced)
