"""2-D convolutions whose gradients XLA's CPU backend runs fast inside loops.

XLA:CPU runs a convolution fast only in the canonical NHWC / HWIO layout. Outside loops it
rewrites the convolutions of JAX's VJPs (weight gradients, input gradients with a reversed kernel)
into that layout; inside a ``while`` loop (``lax.scan``: the training core's log period, a GAN's
``n_critic`` loop) it does not, and its generic emitter runs them 30-60x slower (measured by
``scripts/bench_gan.py --diagnose``); a whole MNIST classifier trained 5.5x slower inside a scan
than step by step. The weight gradient of a transposed convolution is slow even outside loops.

XLA:CPU is also slow, at any place, on input-dilated convolutions once the map reaches 32x32
(a transposed convolution's forward, a strided convolution's input gradient: 8x at 64x64).

:func:`conv_general_dilated` is ``lax.conv_general_dilated`` (a drop-in, also for Flax's
``nn.Conv(conv_general_dilated=...)``) that, on the CPU backend, writes the convolution and its VJP
as convolutions in the canonical layout with explicit transposes, which XLA keeps:

* an input-dilated convolution (a transposed convolution's forward, a strided convolution's input
  gradient) by phases: one stride-1 convolution of the undilated input per output phase with the
  kernel taps that reach it, interleaved (the dilation's zeros skipped); when the dilation does not
  divide the output size, ``lax`` with ``lhs_dilation``;
* input gradient: the convolution of the output gradient with the spatially flipped kernel (I and
  O swapped), strided by the input dilation, over the output gradient dilated by the strides;
* weight gradient: a canonical convolution with the batch and channel axes of the input swapped
  (the output gradient as the kernel, dilated by the strides), or, for a transposed convolution
  (input dilation d > 1, stride 1) and for a stride-1 convolution to fewer channels (an output
  layer), one GEMM of the input with the stacked kernel-tap shifts of the output gradient, in
  equal batch chunks (``lax.scan``) of stacks of at most the larger of the input and the output
  gradient (and at most 4 MB for a transposed convolution); where one sample's stack exceeds that,
  one canonical weight-gradient convolution per output phase instead (no stack). The gradient's compiled temporaries stay
  within 2x ``lax``'s on the tested shapes and 2.5x on a wider grid of 163 (a 7x7 convolution
  from 128 to 64 channels on a (64, 64, 64, 128) batch: 6.4 GiB before the bound, 264 MiB now,
  ``lax`` 256 MiB).

Reverse mode is a ``jax.custom_vjp`` (``jax.grad``, ``jax.vjp``, and ``jax.hessian``, whose inner
``jacrev`` differentiates the VJP). A ``custom_vjp`` refuses forward mode, so where the convolution
is traced for forward mode (its inputs are ``jax.jvp`` tracers: ``jax.jvp``, ``jax.jacfwd``, the
``jvp`` of a gradient) it switches automatically to a ``jax.custom_jvp`` of the same forward whose
tangent is ``jax.linear_transpose`` of the same hand-written VJP (linear in the output gradient).
Reverse mode could use that form too (JAX transposes the tangent back into the same convolutions
and GEMMs, tested equal), but in a whole training step it ran the 64 x 64 conv VAE a third slower
on XLA:CPU, so reverse mode keeps the ``custom_vjp``. The switch sees only the tracer at the
convolution: forward mode applied from outside a ``jax.jit``, ``jax.vmap`` or ``lax.scan`` that
contains the convolution (``jax.jvp(jax.jit(f))``), and ``jax.linearize`` (traced like ``jax.grad``,
then the tangent evaluated), meet the ``custom_vjp`` and fail on CPU; put ``jax.jvp`` inside the
``jit`` / ``vmap`` / ``scan`` instead (``jax.jit(lambda z: jax.jvp(f, ...))`` works), or use
``jax.jvp`` for ``jax.linearize``. Making :func:`conv_general_dilated` always call
``_canonical_jvp_conv`` gives forward mode everywhere at that cost in speed.

Values and derivatives equal JAX's own to float round-off, not bit for bit, as the summation order
differs (tested: first and second order, under ``lax.scan``, gradients of gradients as WGAN-GP and
R1 take, and forward mode through the layers and a conv model). Other backends, and layouts or
options outside this case (grouped or kernel-dilated convolutions), use ``lax.conv_general_dilated``
unchanged.

:func:`Conv` and :func:`ConvTranspose` build Flax ``nn.Conv`` modules on it; ``ConvTranspose`` is
``nn.ConvTranspose(..., transpose_kernel=False)`` as a convolution over the stride-dilated input,
with the same parameters (``kernel`` (kh, kw, in, out), ``bias``) and the same outputs (to float round-off).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.interpreters import ad

__all__ = ["Conv", "ConvTranspose", "conv_general_dilated", "transpose_padding"]

_NHWC = ("NHWC", "HWIO", "NHWC")


def _forward(x, w, strides, pads, lhs_dil, precision):
    if lhs_dil != (1, 1):
        return _dilated_conv(x, w, pads, lhs_dil, precision)
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


def _dilated_conv(x, w, pads, d, precision):
    """The stride-1 convolution of ``w`` over ``x`` dilated by ``d`` and padded by ``pads``, by phases.

    Output row ``t = d q + p`` meets only the kernel taps ``a = a0 + d r`` with ``a0 = (lo - p) mod d``,
    at input row ``q + r + e0``: each of the ``d0 d1`` phases is a stride-1 convolution of the
    undilated ``x`` with a kernel slice, and the output interleaves them (sub-pixel convolution).
    XLA:CPU runs input-dilated convolutions slowly once the map reaches 32x32 (8x at 64x64); the
    phases skip the zeros. When ``d`` does not divide the output size, ``lax`` with ``lhs_dilation``."""
    n, k = x.shape[1:3], w.shape[0:2]
    m = [(n[i] - 1) * d[i] + 1 + pads[i][0] + pads[i][1] - k[i] + 1 for i in range(2)]
    if any(m[i] % d[i] for i in range(2)):
        return lax.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=d, dimension_numbers=_NHWC,
                                        precision=precision)
    phases = []  # per spatial dim, per phase p: (kernel slice, padding of x), or None without taps
    for i in range(2):
        lo, per = pads[i][0], []
        for p in range(d[i]):
            a0 = (lo - p) % d[i]
            n_taps = len(range(a0, k[i], d[i]))
            e0 = (p + a0 - lo) // d[i]  # input row of output q = 0, tap r = 0 (exact division)
            per.append(None if n_taps == 0 else
                       (slice(a0, k[i], d[i]), (-e0, m[i] // d[i] + n_taps - 1 - n[i] + e0)))
        phases.append(per)
    shape = (x.shape[0], m[0] // d[0], m[1] // d[1], w.shape[3])
    rows = []
    for p0 in phases[0]:
        cols = [jnp.zeros(shape, x.dtype) if p0 is None or p1 is None else
                lax.conv_general_dilated(x, w[p0[0], p1[0]], (1, 1), (p0[1], p1[1]), dimension_numbers=_NHWC,
                                         precision=precision)
                for p1 in phases[1]]
        rows.append(jnp.stack(cols, 3))  # (N, m0/d0, m1/d1, d1, O)
    return jnp.stack(rows, 2).reshape(x.shape[0], m[0], m[1], w.shape[3])  # rows q d0 + p0, columns q d1 + p1


_CHUNK_BYTES = 4 << 20  # batch chunk of the stacked output-gradient shifts: large stacks ran 3.5x slower


def _stack_budget(x, g, transposed: bool) -> int:
    """Bytes allowed for one batch chunk of stacked shifts: at most the larger of ``x`` and ``g`` (which
    any form of the gradient holds), so that the gradient's memory stays within a small factor of
    ``lax``'s whatever the shapes (a 7x7 kernel stacks 49 shifts of ``g``); for a transposed
    convolution also at most ``_CHUNK_BYTES`` (faster). An output layer's stack stays whole when it
    fits: chunking the 64x64 VAE's 3x3 output layer cost the conv VAE step a third of its speed."""
    cap = max(x.size * x.dtype.itemsize, g.size * g.dtype.itemsize)
    return min(_CHUNK_BYTES, cap) if transposed else cap


def _shifted_weight_grad(x, g, k, pads, d, precision, budget=None):
    """dW (kh, kw, I, O) of a stride-1 convolution over ``x`` (N, n0, n1, I) dilated by ``d`` (1
    allowed) and padded by ``pads``, from its output gradient ``g`` (N, m0, m1, O):
    ``dW[a] = sum_j x[j] g[d j + lo - a]``. The strided shifts of ``g`` for the ``kh kw`` taps are
    stacked and met by ``x`` in one GEMM; with ``budget`` (bytes), in equal batch chunks of at most
    that many bytes of stacked shifts (the largest divisor of the batch that fits, one sample at
    least), summed in a ``lax.scan``."""
    n, m = x.shape[1:3], g.shape[1:3]
    lo = [pads[i][0] for i in range(2)]
    g_lo = [max(0, k[i] - 1 - lo[i]) for i in range(2)]  # zeros where d j + lo - a leaves g
    g_hi = [max(0, d[i] * (n[i] - 1) + lo[i] - (m[i] - 1)) for i in range(2)]

    def grad(g, x):
        gp = jnp.pad(g, ((0, 0), (g_lo[0], g_hi[0]), (g_lo[1], g_hi[1]), (0, 0)))
        shifts = []
        for a in range(k[0]):
            for b in range(k[1]):
                s = (lo[0] - a + g_lo[0], lo[1] - b + g_lo[1])
                shifts.append(lax.slice(gp, (0, s[0], s[1], 0), (gp.shape[0], s[0] + d[0] * (n[0] - 1) + 1,
                                                                 s[1] + d[1] * (n[1] - 1) + 1, gp.shape[3]),
                                        (1, d[0], d[1], 1)))
        # along the channel axis (no new axis): XLA:CPU then fuses the slices into the concatenation
        dw = jnp.einsum("nhwi,nhwc->ic", x, jnp.concatenate(shifts, 3), precision=precision)
        return dw.reshape(x.shape[3], len(shifts), g.shape[3]).transpose(1, 0, 2)

    batch = x.shape[0]
    per_sample = k[0] * k[1] * n[0] * n[1] * g.shape[3] * g.dtype.itemsize
    size = batch if budget is None else max(1, min(batch, budget // per_sample))
    while batch % size:  # equal chunks
        size -= 1
    if size == batch:
        dw = grad(g, x)
    else:
        # summed in the carry: lax.map's stack of per-chunk results would hold batch / size kernels
        dw = lax.scan(lambda acc, gx: (acc + grad(*gx), None),
                      jnp.zeros((k[0] * k[1], x.shape[3], g.shape[3]), jnp.result_type(x, g)),
                      (g.reshape(batch // size, size, *g.shape[1:]), x.reshape(batch // size, size, *x.shape[1:])))[0]
    return dw.reshape(k[0], k[1], x.shape[3], g.shape[3])


def _phase_weight_grad(x, g, k, pads, d, precision):
    """The same dW as :func:`_shifted_weight_grad` without a stack: per output phase ``p`` (see
    :func:`_dilated_conv`; ``g`` zero-padded to a multiple of ``d``), the taps ``a0 + d r`` meet
    ``g[p::d]`` through an undilated stride-1 convolution of ``x``, whose weight gradient is one
    canonical convolution (batch and channel axes of ``x`` swapped). For shapes whose stacked shifts
    of one sample exceed the budget; with ``d = 1``, the plain convolution's weight gradient."""
    n, m = x.shape[1:3], g.shape[1:3]
    mp = [-(-m[i] // d[i]) for i in range(2)]  # rows per output phase
    g = jnp.pad(g, ((0, 0), (0, d[0] * mp[0] - m[0]), (0, d[1] * mp[1] - m[1]), (0, 0)))
    x_t = x.transpose(3, 1, 2, 0)
    dw = jnp.zeros((*k, x.shape[3], g.shape[3]), jnp.result_type(x, g))
    for p0 in range(d[0]):
        for p1 in range(d[1]):
            taps, phase_pads = [], []
            for i, p in enumerate((p0, p1)):
                a0 = (pads[i][0] - p) % d[i]
                n_taps = len(range(a0, k[i], d[i]))
                e0 = (p + a0 - pads[i][0]) // d[i]  # input row of output q = 0, tap r = 0
                taps.append((slice(a0, k[i], d[i]), n_taps))
                phase_pads.append((-e0, mp[i] + n_taps - 1 - n[i] + e0))
            if taps[0][1] == 0 or taps[1][1] == 0:  # no taps reach this phase
                continue
            _, pad_w = _vjp_pads(n, (taps[0][1], taps[1][1]), mp, (1, 1), phase_pads, (1, 1))
            # negative paddings as an explicit crop: XLA:CPU got this convolution wrong with a negative one
            x_p = lax.pad(x_t, jnp.zeros((), x.dtype), [(0, 0, 0)] + [(min(lo, 0), min(hi, 0), 0) for lo, hi in pad_w]
                          + [(0, 0, 0)])
            dwp = lax.conv_general_dilated(x_p, g[:, p0::d[0], p1::d[1]].transpose(1, 2, 0, 3), (1, 1),
                                           [(max(lo, 0), max(hi, 0)) for lo, hi in pad_w], dimension_numbers=_NHWC,
                                           precision=precision)
            dw = dw.at[taps[0][0], taps[1][0]].set(dwp.transpose(1, 2, 0, 3))
    return dw


def _vjp_pads(n, k, m, strides, pads, lhs_dil):
    """Paddings of the input-gradient and weight-gradient convolutions (see :func:`_grad_x`, :func:`_grad_w`)."""
    dilated = [(a - 1) * d + 1 for a, d in zip(n, lhs_dil)]  # extent of the dilated input
    reach = [(a - 1) * s + 1 for a, s in zip(m, strides)]  # extent of the stride-dilated output gradient
    pad_x = [(k[i] - 1 - pads[i][0], dilated[i] - reach[i] + pads[i][0]) for i in range(2)]
    pad_w = [(pads[i][0], k[i] - 1 + reach[i] - dilated[i] - pads[i][0]) for i in range(2)]
    return pad_x, pad_w


def _grad_x(w, g, n, strides, pads, lhs_dil, precision):
    """dx (N, n0, n1, I), linear in the output gradient ``g``: the convolution of ``g`` with the flipped
    kernel (I and O swapped), strided by the input dilation, over ``g`` dilated by the strides."""
    pad_x, _ = _vjp_pads(n, w.shape[0:2], g.shape[1:3], strides, pads, lhs_dil)
    w_flip = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    if strides != (1, 1):  # over g dilated by the strides: by phases
        return _dilated_conv(g, w_flip, pad_x, strides, precision)
    return lax.conv_general_dilated(g, w_flip, lhs_dil, pad_x, dimension_numbers=_NHWC, precision=precision)


def _grad_w(x, g, k, strides, pads, lhs_dil, precision):
    """dW (kh, kw, I, O), linear in the output gradient ``g``."""
    if lhs_dil != (1, 1) or g.shape[3] < x.shape[3] and strides == (1, 1):
        # a transposed convolution (stride 1, checked by conv_general_dilated), or a stride-1 one to fewer
        # channels (e.g. a 3x3 output layer: 2.4x faster than the conv): from the stacked shifts of g
        budget = _stack_budget(x, g, lhs_dil != (1, 1))
        if k[0] * k[1] * x.shape[1] * x.shape[2] * g.shape[3] * g.dtype.itemsize <= budget:  # one sample's stack
            return _shifted_weight_grad(x, g, k, pads, lhs_dil, precision, budget)
        return _phase_weight_grad(x, g, k, pads, lhs_dil, precision)
    _, pad_w = _vjp_pads(x.shape[1:3], k, g.shape[1:3], strides, pads, lhs_dil)
    return lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1), pad_w,
                                    rhs_dilation=strides, dimension_numbers=_NHWC,
                                    precision=precision).transpose(1, 2, 0, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _canonical(x, w, strides, pads, lhs_dil, precision):
    """The convolution with the hand-written VJP: what ``jax.grad`` and friends run."""
    return _forward(x, w, strides, pads, lhs_dil, precision)


def _canonical_fwd(x, w, strides, pads, lhs_dil, precision):
    return _forward(x, w, strides, pads, lhs_dil, precision), (x, w)


def _canonical_bwd(strides, pads, lhs_dil, precision, res, g):
    x, w = res
    return (_grad_x(w, g, x.shape[1:3], strides, pads, lhs_dil, precision).astype(x.dtype),
            _grad_w(x, g, w.shape[0:2], strides, pads, lhs_dil, precision).astype(w.dtype))


_canonical.defvjp(_canonical_fwd, _canonical_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _canonical_jvp_conv(x, w, strides, pads, lhs_dil, precision):
    """The same convolution for forward mode (a ``custom_vjp`` refuses ``jax.jvp``)."""
    return _forward(x, w, strides, pads, lhs_dil, precision)


def _canonical_jvp(strides, pads, lhs_dil, precision, primals, tangents):
    """The tangent is the transpose of the hand-written VJP (``jax.linear_transpose`` of :func:`_grad_x`
    and :func:`_grad_w`, linear in the output gradient); reverse mode through it transposes it back
    into the VJP's convolutions and GEMMs. Zero tangents (e.g. of the data) are skipped."""
    x, w = primals
    y = _forward(x, w, strides, pads, lhs_dil, precision)
    out = jax.ShapeDtypeStruct(y.shape, y.dtype)
    terms = []
    if not isinstance(tangents[0], SymbolicZero):
        terms.append(jax.linear_transpose(
            lambda g: _grad_x(w, g, x.shape[1:3], strides, pads, lhs_dil, precision).astype(x.dtype), out)(
            tangents[0])[0])
    if not isinstance(tangents[1], SymbolicZero):
        terms.append(jax.linear_transpose(
            lambda g: _grad_w(x, g, w.shape[0:2], strides, pads, lhs_dil, precision).astype(w.dtype), out)(
            tangents[1])[0])
    return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


_canonical_jvp_conv.defjvp(_canonical_jvp, symbolic_zeros=True)


def _ones(v, n: int = 2) -> tuple:
    return (1,) * n if v is None else tuple(int(a) for a in v)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """``lax.conv_general_dilated`` with, on the CPU backend, the canonical-layout VJP of the module
    docstring (2-D NHWC / HWIO convolutions without groups or kernel dilation, and with either
    strides or an input dilation). Same arguments, the same values to float round-off."""
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
    # forward mode at this level (jax.jvp, jax.jacfwd): the custom_jvp form. Reverse mode (jax.grad, and
    # jax.hessian's inner jacrev) keeps the custom_vjp: in a whole training step the custom_jvp form,
    # although the same convolutions op by op, ran the conv VAE a third slower.
    if any(isinstance(a, ad.JVPTracer) for a in (lhs, rhs)):
        return _canonical_jvp_conv(lhs, rhs, strides, pads, lhs_dil, precision)
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
    ``(kh, kw, in, out)``, ``bias``), the same outputs (to float round-off), the canonical-layout gradients."""
    kernel_size, strides = tuple(kernel_size), tuple(strides)
    pads = [transpose_padding(k, s, padding) for k, s in zip(kernel_size, strides)]
    return nn.Conv(features, kernel_size, strides=1, padding=pads, input_dilation=strides,
                   conv_general_dilated=conv_general_dilated, name=name, **kwargs)
