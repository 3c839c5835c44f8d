"""2-D convolutions whose gradients XLA's CPU backend runs fast inside loops.

XLA:CPU runs a convolution fast only in the canonical NHWC / HWIO layout. Outside loops it
rewrites the convolutions of JAX's VJPs (weight gradients, input gradients with a reversed kernel)
into that layout; inside a ``while`` loop (``lax.scan``: the training core's log period, a GAN's
``n_critic`` loop) it does not, and its generic emitter runs them 30-60x slower (measured by
``scripts/bench_gan.py --diagnose``); a whole MNIST classifier trained 5.5x slower inside a scan
than step by step. The weight gradient of a transposed convolution is slow even outside loops.

:func:`conv_general_dilated` is ``lax.conv_general_dilated`` (a drop-in, also for Flax's
``nn.Conv(conv_general_dilated=...)``) whose VJP, on the CPU backend, is written as convolutions
in the canonical layout with explicit transposes, which XLA keeps:

* input gradient: the convolution of the output gradient with the spatially flipped kernel (I and
  O swapped), strided by the input dilation, over the output gradient dilated by the strides;
* weight gradient: a canonical convolution with the batch and channel axes of the input swapped
  (the output gradient as the kernel, dilated by the strides), or, for a transposed convolution
  (input dilation d > 1, stride 1), one GEMM per kernel tap over the input's nonzero rows only.

The forward pass is ``lax.conv_general_dilated`` itself, so values are identical; gradients equal
JAX's own to float round-off (tested, also under ``lax.scan`` and for gradients of gradients, as
WGAN-GP and R1 take). Other backends, and layouts or options outside this case (grouped or
kernel-dilated convolutions), use ``lax.conv_general_dilated`` unchanged.

:func:`Conv` and :func:`ConvTranspose` build Flax ``nn.Conv`` modules on it; ``ConvTranspose`` is
``nn.ConvTranspose(..., transpose_kernel=False)`` as a convolution over the stride-dilated input,
with the same parameters (``kernel`` (kh, kw, in, out), ``bias``) and the same outputs.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Conv", "ConvTranspose", "conv_general_dilated", "transpose_padding"]

_NHWC = ("NHWC", "HWIO", "NHWC")


def _forward(x, w, strides, pads, lhs_dil, precision):
    return lax.conv_general_dilated(x, w, strides, pads, lhs_dilation=lhs_dil, dimension_numbers=_NHWC,
                                    precision=precision)


def _tap_weight_grad(x, g, pads, lhs_dil, k, precision):
    """dW (kh, kw, I, O) of a stride-1 convolution over the ``lhs_dil``-dilated, padded ``x``: kernel
    tap (a, b) meets the output rows t with ``t + a - lo`` divisible by d, at input row
    ``(t + a - lo) / d``; one GEMM over those rows per tap (the zeros of the dilation skipped)."""
    n, m = x.shape[1:3], g.shape[1:3]
    per_dim = []
    for i in range(2):
        d, lo = lhs_dil[i], pads[i][0]
        taps = []
        for a in range(k[i]):
            r = (lo - a) % d  # the first output row that meets a nonzero input row
            taps.append((r, (r + a - lo) // d, len(range(r, m[i], d))))  # (first output row, its input row, count)
        per_dim.append(taps)
    lo_pad = [max(0, -min(c for _, c, _ in taps)) for taps in per_dim]
    hi_pad = [max(0, max(c + cnt for _, c, cnt in per_dim[i]) - n[i]) for i in range(2)]
    xp = jnp.pad(x, ((0, 0), (lo_pad[0], hi_pad[0]), (lo_pad[1], hi_pad[1]), (0, 0)))
    rows = []
    for r0, c0, n0 in per_dim[0]:
        cols = []
        for r1, c1, n1 in per_dim[1]:
            gs = g[:, r0::lhs_dil[0], r1::lhs_dil[1]][:, :n0, :n1]
            xs = xp[:, c0 + lo_pad[0]:c0 + lo_pad[0] + n0, c1 + lo_pad[1]:c1 + lo_pad[1] + n1]
            cols.append(jnp.einsum("nhwi,nhwo->io", xs, gs, precision=precision))
        rows.append(jnp.stack(cols))
    return jnp.stack(rows)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _canonical(x, w, strides, pads, lhs_dil, precision):
    return _forward(x, w, strides, pads, lhs_dil, precision)


def _canonical_fwd(x, w, strides, pads, lhs_dil, precision):
    return _forward(x, w, strides, pads, lhs_dil, precision), (x, w)


def _canonical_bwd(strides, pads, lhs_dil, precision, res, g):
    x, w = res
    n, k, m = x.shape[1:3], w.shape[0:2], g.shape[1:3]
    dilated = [(a - 1) * d + 1 for a, d in zip(n, lhs_dil)]  # extent of the dilated input
    reach = [(a - 1) * s + 1 for a, s in zip(m, strides)]  # extent of the stride-dilated output gradient
    pad_x = [(k[i] - 1 - pads[i][0], dilated[i] - reach[i] + pads[i][0]) for i in range(2)]
    pad_w = [(pads[i][0], k[i] - 1 + reach[i] - dilated[i] - pads[i][0]) for i in range(2)]
    w_flip = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = lax.conv_general_dilated(g, w_flip, lhs_dil, pad_x, lhs_dilation=strides, dimension_numbers=_NHWC,
                                  precision=precision)
    if lhs_dil == (1, 1):
        dw = lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1), pad_w,
                                      rhs_dilation=strides, dimension_numbers=_NHWC,
                                      precision=precision).transpose(1, 2, 0, 3)
    else:  # a transposed convolution: stride 1 (checked by conv_general_dilated)
        dw = _tap_weight_grad(x, g, pads, lhs_dil, k, precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_canonical.defvjp(_canonical_fwd, _canonical_bwd)


def _ones(v, n: int = 2) -> tuple:
    return (1,) * n if v is None else tuple(int(a) for a in v)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """``lax.conv_general_dilated`` with, on the CPU backend, the canonical-layout VJP of the module
    docstring (2-D NHWC / HWIO convolutions without groups or kernel dilation, and with either
    strides or an input dilation). Same arguments, same values."""
    strides, lhs_dil, rhs_dil = _ones(window_strides), _ones(lhs_dilation), _ones(rhs_dilation)
    canonical = (
        jax.default_backend() == "cpu" and lhs.ndim == 4 and rhs.ndim == 4 and len(strides) == 2
        and dimension_numbers is not None
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
        and feature_group_count == 1 and batch_group_count == 1 and rhs_dil == (1, 1)
        and (lhs_dil == (1, 1) or strides == (1, 1)) and preferred_element_type is None
        and not (isinstance(padding, str) and lhs_dil != (1, 1))
    )
    if not canonical:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                                        precision=precision, preferred_element_type=preferred_element_type)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[0:2], strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _canonical(lhs, rhs, strides, pads, lhs_dil, precision)


def transpose_padding(kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """The explicit padding of the stride-dilated input that makes a convolution equal a transposed
    convolution with ``padding`` "SAME" (output = input * stride) or "VALID" (JAX's rule)."""
    if padding == "SAME":
        total = kernel + stride - 2
        before = kernel - 1 if stride > kernel - 1 else math.ceil(total / 2)
    elif padding == "VALID":
        total = kernel + stride - 2 + max(kernel - stride, 0)
        before = kernel - 1
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
    return before, total - before


def Conv(features: int, kernel_size: Sequence[int], *, strides: Sequence[int] | int = 1, padding="SAME",
         name: str | None = None, **kwargs) -> nn.Conv:
    """``flax.linen.Conv`` on :func:`conv_general_dilated` (same parameters, same outputs)."""
    return nn.Conv(features, tuple(kernel_size), strides=strides, padding=padding,
                   conv_general_dilated=conv_general_dilated, name=name, **kwargs)


def ConvTranspose(features: int, kernel_size: Sequence[int], *, strides: Sequence[int], padding: str = "SAME",
                  name: str | None = None, **kwargs) -> nn.Conv:
    """``flax.linen.ConvTranspose(features, kernel_size, strides, padding)`` (``transpose_kernel=False``)
    as a convolution over the input dilated by ``strides``: the same parameters (``kernel``
    ``(kh, kw, in, out)``, ``bias``), the same outputs, the canonical-layout gradients."""
    kernel_size, strides = tuple(kernel_size), tuple(strides)
    pads = [transpose_padding(k, s, padding) for k, s in zip(kernel_size, strides)]
    return nn.Conv(features, kernel_size, strides=1, padding=pads, input_dilation=strides,
                   conv_general_dilated=conv_general_dilated, name=name, **kwargs)
