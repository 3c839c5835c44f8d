"""Convolutional encoder trunk and transposed-convolution decoder for small images (Flax linen).

Images are ``(N, H, W, C)`` (NHWC). Each encoder layer is a 4x4 convolution with
stride 2 ('SAME' padding), so the spatial size halves per layer; the decoder mirrors it with 4x4
stride-2 transposed convolutions starting from ``ceil(H / 2^L) x ceil(W / 2^L)`` and crops the
result to ``H x W`` (so odd sizes such as Frey's 28 x 20 or 8 x 8 digits work). The layers are
:mod:`jaxgen.nn.convolution`'s (Flax's, with gradients XLA:CPU runs fast inside ``lax.scan``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax

from jaxgen.nn.convolution import Conv, ConvTranspose
from jaxgen.nn.mlp import get_activation

__all__ = ["ConvEncoder", "ConvDecoder"]


class ConvEncoder(nn.Module):
    """Strided convolutions, flatten, then a dense layer: ``(N, H, W, C) -> (N, dense)``.

    Attributes:
      features: channels of each stride-2 conv layer, e.g. ``(32, 64)``.
      dense: width of the final dense layer (activated); ``0`` to return the flattened feature map.
      activation: name in :data:`jaxgen.nn.mlp.ACTIVATIONS` or a callable.
    """

    features: Sequence[int] = (32, 64)
    dense: int = 256
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"ConvEncoder expects images (N, H, W, C), got shape {x.shape}.")
        act = get_activation(self.activation)
        for i, f in enumerate(self.features):
            x = act(Conv(int(f), (4, 4), strides=(2, 2), padding="SAME", name=f"conv_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        if self.dense:
            x = act(nn.Dense(int(self.dense), name="dense")(x))
        return x


class ConvDecoder(nn.Module):
    """Dense to a small feature map, stride-2 transposed convolutions, crop: ``(N, q) -> (N, H, W, C)``.

    Attributes:
      image_shape: output ``(H, W, C)``.
      features: channels of the transposed-conv layers in decoding order, e.g. ``(64, 32)``; the
        feature map starts at ``ceil(H / 2^L) x ceil(W / 2^L)`` with ``features[0]`` channels.
      dense: width of a hidden dense layer before the reshape (``0`` for none).
      activation: name in :data:`jaxgen.nn.mlp.ACTIVATIONS` or a callable.

    The last layer is a linear 3x3 convolution to ``C`` channels (logits or means).
    """

    image_shape: Sequence[int]
    features: Sequence[int] = (64, 32)
    dense: int = 256
    activation: str | Callable = "relu"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        H, W, C = (int(s) for s in self.image_shape)
        act = get_activation(self.activation)
        L = len(self.features)
        h0, w0 = math.ceil(H / 2**L), math.ceil(W / 2**L)
        c0 = int(self.features[0]) if L else C
        x = z
        if self.dense:
            x = act(nn.Dense(int(self.dense), name="dense")(x))
        x = act(nn.Dense(h0 * w0 * c0, name="project")(x)).reshape(z.shape[0], h0, w0, c0)
        for i, f in enumerate(self.features):
            x = act(ConvTranspose(int(f), (4, 4), strides=(2, 2), padding="SAME", name=f"deconv_{i}")(x))
        x = Conv(C, (3, 3), padding="SAME", name="out")(x)
        return x[:, :H, :W, :]
