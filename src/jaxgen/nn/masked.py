"""Causal convolutions for autoregressive image models (PixelCNN), in raster order.

Pixel ``(i, j)`` may depend only on the pixels before it: rows above, and the pixels to its left
on its own row. Two ways to build such layers live here:

* :class:`MaskedConv`: a ``k x k`` convolution whose kernel is multiplied by a fixed mask
  (van den Oord et al. 2016a). Mask ``"A"`` (the first layer) zeroes the centre tap and everything
  after it, so the output at ``(i, j)`` never sees input ``(i, j)``; mask ``"B"`` (later layers)
  keeps the centre tap, as the layer's input at ``(i, j)`` already excludes pixel ``(i, j)``.
  Stacking these leaves a *blind spot* (pixels above and to the right that no path reaches).
* The two stacks of the gated PixelCNN (van den Oord et al. 2016b), which have no blind spot:
  :class:`VerticalConv` sees a ``(k // 2 + 1) x k`` window of the rows up to and including the
  current one (the half of a masked kernel that is not zero, so no multiply is wasted), and its
  output reaches the horizontal stack only through :func:`down_shift`, i.e. from the rows strictly
  above; :class:`HorizontalConv` sees ``k // 2`` pixels to the left on the same row, plus the
  pixel itself for mask ``"B"``.

Images are ``(N, H, W, C)``. The layers run on :mod:`jaxgen.nn.convolution` (Flax's convolution,
with gradients that XLA:CPU runs fast inside ``lax.scan``).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn.convolution import Conv, conv_general_dilated

__all__ = ["MASK_TYPES", "causal_mask", "MaskedConv", "VerticalConv", "HorizontalConv", "down_shift"]

MASK_TYPES = ("A", "B")


def _check_mask_type(mask_type) -> str:
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' (first layer: excludes the centre pixel) or 'B' (later layers: "
                         f"includes it), got {mask_type!r}.")
    return mask_type


def _check_odd(kernel_size, name: str = "kernel_size") -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 \
            or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1 (the kernel is centred on the pixel), got "
                         f"{kernel_size!r}.")
    return int(kernel_size)


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
    """The ``(k, k)`` 0/1 mask of a raster-order masked convolution: every row above the centre,
    and on the centre row the taps left of the centre (``"A"``) or up to and including it (``"B"``)."""
    k, mask_type = _check_odd(kernel_size), _check_mask_type(mask_type)
    c = k // 2
    mask = np.zeros((k, k), np.float32)
    mask[:c] = 1.0
    mask[c, : c + (mask_type == "B")] = 1.0
    return mask


class MaskedConv(nn.Module):
    """A ``k x k`` convolution with a raster-order causal mask: ``(N, H, W, C) -> (N, H, W, features)``.

    Attributes:
      features: output channels.
      kernel_size: odd ``k``.
      mask_type: ``"A"`` or ``"B"`` (see :func:`causal_mask`). Single-channel images: the mask acts
        on positions only (no ordering of colour channels).
    """

    features: int
    kernel_size: int
    mask_type: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = _check_odd(self.kernel_size)
        mask = jnp.asarray(causal_mask(k, self.mask_type), x.dtype)[:, :, None, None]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = conv_general_dilated(x, (kernel * mask).astype(x.dtype), (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias.astype(x.dtype)


class VerticalConv(nn.Module):
    """The gated PixelCNN's vertical stack: output ``(i, j)`` sees input rows ``i - k//2 .. i`` and
    columns ``j - k//2 .. j + k//2``. Shape-preserving ``(N, H, W, C) -> (N, H, W, features)``.

    Row ``i`` of the output depends on row ``i`` of the input, so it must reach pixel ``(i, j)``'s
    prediction only through :func:`down_shift`.

    ``window=True`` (incremental sampling): ``x`` holds just the ``k//2 + 1`` input rows that one
    output row sees, ``(N, k//2 + 1, W, C) -> (N, 1, W, features)``, with the same parameters.
    """

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x: jax.Array, window: bool = False) -> jax.Array:
        k = _check_odd(self.kernel_size)
        c = k // 2
        return Conv(self.features, (c + 1, k), padding=((0 if window else c, 0), (c, c)), name="conv")(x)


class HorizontalConv(nn.Module):
    """The gated PixelCNN's horizontal stack: output ``(i, j)`` sees input ``(i, j - k//2 .. j - 1)``
    (mask ``"A"``) or ``(i, j - k//2 .. j)`` (mask ``"B"``). ``(N, H, W, C) -> (N, H, W, features)``.

    ``window=True`` (incremental sampling): ``x`` holds just the columns that one output sees,
    ``k//2`` (A) or ``k//2 + 1`` (B) of them: ``(N, R, cols, C) -> (N, R, 1, features)``."""

    features: int
    kernel_size: int
    mask_type: str = "B"

    @nn.compact
    def __call__(self, x: jax.Array, window: bool = False) -> jax.Array:
        k, mask_type = _check_odd(self.kernel_size), _check_mask_type(self.mask_type)
        c = k // 2
        if mask_type == "B":
            return Conv(self.features, (1, c + 1), padding=((0, 0), (0 if window else c, 0)), name="conv")(x)
        if c == 0:  # a 1 x 1 "A" kernel sees nothing of its own row: only the bias remains
            shape = (*x.shape[:2], 1 if window else x.shape[2], self.features)
            return jnp.broadcast_to(self.param("bias", nn.initializers.zeros, (self.features,), x.dtype), shape)
        conv = Conv(self.features, (1, c), padding="VALID", name="conv")
        if window:
            return conv(x)
        # output j sees input columns j - c .. j - 1: pad c zero columns on the left, drop the last one
        return conv(jnp.pad(x, ((0, 0), (0, 0), (c, 0), (0, 0)))[:, :, :-1])


def down_shift(x: jax.Array) -> jax.Array:
    """Move every row one down (row 0 becomes zeros, the last row drops): ``(N, H, W, C)``."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
