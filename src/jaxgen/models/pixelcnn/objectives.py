"""The PixelCNN's training loss: the exact negative log-likelihood, for :func:`jaxgen.train.fit`."""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.pixelcnn.model import (PixelCNNParams, _as_images, _log_prob, prepare, prepare_context,
                                          prepare_labels)

__all__ = ["loss_fn"]


def _split(batch: Any):
    if isinstance(batch, Mapping):
        if "x" not in batch:
            raise ValueError(f"a batch dict needs an 'x' entry (and 'y' for a conditional model), got keys {sorted(batch)}.")
        return batch["x"], batch.get("y"), batch.get("context")
    return batch, None, None


def loss_fn(binarize: bool = False):
    """The loss ``(params, batch, key) -> (loss, metrics)``: the mean negative log-likelihood in nats
    per image over the batch; ``metrics`` holds it as ``nll`` and in bits per pixel as ``bpd``.

    ``batch`` is images ``x`` (as for :func:`~jaxgen.models.pixelcnn.log_prob`) or a dict with ``"x"``
    and, when the model takes them, labels ``"y"`` and a ``"context"`` map. With ``binarize=True`` (Bernoulli only) ``x`` holds
    grey values (uint8 bytes or floats in [0, 1]) and every step draws a fresh binary image with
    pixel probabilities ``x`` (dynamic binarisation). The attribute ``check_train_data(params, data)``
    validates the concrete data once before training (:func:`jaxgen.train.fit` calls it); the
    attribute ``settings`` describes the loss for the resume check of :func:`jaxgen.train.fit`.
    """
    binarize = bool(binarize)

    def _images(params: PixelCNNParams, x, key):
        c = params.config
        dtype = jax.tree.leaves(params.net)[0].dtype
        x = x.reshape(x.shape[0], *c.image_shape)
        if not binarize:
            return x.astype(dtype)
        probs = x.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else x.astype(dtype)
        return jax.random.bernoulli(key, probs).astype(dtype)

    def loss(params: PixelCNNParams, batch, key: jax.Array):
        x, y, context = _split(batch)
        x = _images(params, x, key)
        lp = _log_prob(params, x, y, context)
        nll = -jnp.mean(lp)
        return nll, {"nll": nll, "bpd": nll / (params.config.n_pixels * math.log(2.0))}

    def check_train_data(params: PixelCNNParams, train_data) -> None:
        """Shape, values and labels of the concrete training data (a clear ``ValueError``)."""
        if binarize and params.config.likelihood != "bernoulli":
            raise ValueError("binarize=True needs likelihood='bernoulli'; the categorical PixelCNN trains on uint8 levels.")
        x, y, context = _split(train_data)
        if binarize:
            check_grey(params, x)
        else:
            prepare(params, x, name="train_data")
        prepare_labels(params, y, len(x), name="train_data['y']")
        prepare_context(params, context, len(x), name="train_data['context']")

    loss.check_train_data = check_train_data
    loss.binarize = binarize
    loss.settings = {"builder": "pixelcnn.loss_fn", "binarize": binarize}  # for jaxgen.train.fit's resume check
    return loss


def check_grey(params: PixelCNNParams, x) -> None:
    """Grey images for dynamic binarisation: uint8 bytes, or finite floats in [0, 1]."""
    _as_images(params.config, np.shape(x), "train_data")
    if np.shape(x)[0] == 0:
        raise ValueError("train_data is empty (0 images).")
    if x.dtype == np.uint8:
        return
    xp = jnp if isinstance(x, jax.Array) else np
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"train_data for dynamic binarisation must be uint8 bytes or floats in [0, 1], got dtype "
                         f"{x.dtype}.")
    n_bad = int(xp.sum(~xp.isfinite(x)))
    if n_bad:
        raise ValueError(f"train_data contains {n_bad} NaN or inf value(s); all entries must be finite.")
    lo, hi = (float(s) for s in jax.device_get(xp.stack([xp.min(x), xp.max(x)])))
    if lo < 0 or hi > 1:
        raise ValueError(f"train_data for dynamic binarisation must be pixel probabilities in [0, 1], got range "
                         f"[{lo:g}, {hi:g}]; scale 8-bit images by 1/255 or pass the uint8 bytes.")
