"""Sampling and inpainting with a PixelCNN: one jit-compiled loop over the pixels in raster order.

Both functions fill a canvas pixel by pixel; pixel ``p = i * W + j`` draws its value with the key
``fold_in(key, p)`` (``key`` is the parent of that indexed family), so the two methods below give
the same images for the same key (up to float round-off in the logits):

* ``method="naive"``: every pixel reruns the whole network on the whole canvas
  (``H * W`` full passes);
* ``method="cached"`` (gated architecture; Ramachandran et al. 2017's idea for this network):
  every layer's output is kept. When row ``i`` starts, rows above it are final, so each layer's
  vertical stack computes just its row ``i - 1``, from the ``k // 2 + 1`` rows its kernel sees;
  within the row each new pixel adds one column to each layer of the horizontal stack, from the
  ``k // 2 + 1`` columns its kernel sees. About ``k // 2 + 2`` full passes of work in all instead of
  ``H * W`` (measured in ``scripts/bench_pixelcnn.py``).

Inpainting keeps the observed pixels and samples the others in raster order, each from
``p(x_i | x_<i)``. When every observed pixel comes before every missing one (e.g. the upper half
given, the lower half completed) this is exact sampling from ``p(missing | observed)``; for other
masks the observed pixels after a missing one do not inform it (the model cannot condition on the
future), so the completion is only an approximation.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.pixelcnn.model import (PixelCNN, PixelCNNParams, _dtype, _scale, prepare, prepare_context,
                                          prepare_labels)
from jaxgen.validation import check_choice, check_key, check_positive_int

__all__ = ["METHODS", "sample", "inpaint"]

METHODS = ("naive", "cached")


def _draw(params: PixelCNNParams, out: jax.Array, key: jax.Array) -> jax.Array:
    """One pixel per image from its logits ``(N, 1)`` (Bernoulli) or ``(N, 1, 256)``: values ``(N, 1)``."""
    dtype = out.dtype
    if params.config.likelihood == "bernoulli":
        return (jax.random.uniform(key, out.shape, dtype) < jax.nn.sigmoid(out)).astype(dtype)
    return jax.random.categorical(key, out, axis=-1).astype(dtype)


def _at(a: jax.Array, i, axis: int) -> jax.Array:
    return jax.lax.dynamic_index_in_dim(a, i, axis, keepdims=False)


@functools.partial(jax.jit, static_argnames=("method",))
def _fill(params: PixelCNNParams, key, canvas, observed, y, context, method: str):
    """Sample every pixel of ``canvas (N, H, W, 1)`` where ``observed (N, H, W)`` is False, in raster
    order, starting at the first row with a missing pixel."""
    c = params.config
    H, W = c.image_shape[:2]
    net = PixelCNN(c)
    variables = {"params": params.net}
    first_row = jnp.where(jnp.any(~observed), jnp.argmax(jnp.any(~observed, axis=(0, 2))), H)

    def put(row, p, col, out):
        """Pixel ``col`` of ``row (N, W, 1)``: keep it where observed, else draw it from ``out``."""
        keep = _at(_at(observed, p // W, 1), col, 1)[:, None]
        return row.at[:, col].set(jnp.where(keep, row[:, col], _draw(params, out, jax.random.fold_in(key, p))))

    if method == "naive":
        def pixel(p, canvas):
            i, j = p // W, p % W
            out = _at(_at(net.apply(variables, _scale(c, canvas), y, context), i, 1), j, 1)
            row = put(_at(canvas, i, 1), p, j, out)
            return jax.lax.dynamic_update_index_in_dim(canvas, row, i, 1)

        return jax.lax.fori_loop(first_row * W, H * W, pixel, canvas)

    return _fill_incremental(params, key, canvas, observed, y, context, first_row, put)


def _fill_incremental(params: PixelCNNParams, key, canvas, observed, y, context, first_row, put):
    """The cached sampler: every layer's output is kept, and each step computes only the new row
    of the vertical stack (once per image row) and the new column of the horizontal stack (once
    per pixel), each from the few rows or columns its kernel sees (the module docstring)."""
    c = params.config
    H, W = c.image_shape[:2]
    net = PixelCNN(c)
    variables = {"params": params.net}
    L, p = c.n_layers, c.features
    half = [c.first_kernel // 2] + [c.kernel_size // 2] * (L - 1)
    N, dtype = canvas.shape[0], canvas.dtype
    ctx_row = (lambda r: None) if context is None else (lambda r: jax.lax.dynamic_slice_in_dim(context, r, 1, 1))

    def row_step(i, state):
        canvas, v_cache = state
        # the vertical stack's row i - 1 (rows < i are final) and the links of row i
        x_pad = jnp.pad(_scale(c, canvas), ((0, 0), (half[0], 0), (0, 0), (0, 0)))
        x_rows = jax.lax.dynamic_slice_in_dim(x_pad, i - 1 + (i == 0), half[0] + 1, 1)
        v_rows = [jax.lax.dynamic_slice_in_dim(v_cache[l], jnp.maximum(i - 1, 0), half[l + 1], 1) for l in range(L - 1)]
        rows, links = net.apply(variables, x_rows, v_rows, y, ctx_row(jnp.maximum(i - 1, 0)), ctx_row(i), i == 0,
                                method=PixelCNN.vertical_step)
        v_cache = [jnp.where(i == 0, v, jax.lax.dynamic_update_slice_in_dim(v, r, i - 1 + half[l + 1], 1))
                   for l, (v, r) in enumerate(zip(v_cache, rows))]

        def col_step(j, state):
            row, h_cache = state  # row (N, W, 1) pixel values; h_cache[l] (N, 1, half[l+1] + W, p)
            x_pad = jnp.pad(_scale(c, row)[:, None], ((0, 0), (0, 0), (half[0], 0), (0, 0)))
            x_cols = jax.lax.dynamic_slice_in_dim(x_pad, j, half[0], 2)
            h_cols = [jax.lax.dynamic_slice_in_dim(h_cache[l], j, half[l + 1], 2) for l in range(L - 1)]
            links_col = [jax.lax.dynamic_slice_in_dim(a, j, 1, 2) for a in links]
            cols, out = net.apply(variables, x_cols, h_cols, links_col, method=PixelCNN.horizontal_step)
            h_cache = [jax.lax.dynamic_update_slice_in_dim(h, col, j + half[l + 1], 2)
                       for l, (h, col) in enumerate(zip(h_cache, cols))]
            return put(row, i * W + j, j, out[:, 0, 0]), h_cache

        h_cache = [jnp.zeros((N, 1, half[l + 1] + W, p), dtype) for l in range(L - 1)]
        n_cols = jnp.where(i >= first_row, W, 0)  # rows before the first missing pixel: observed, nothing to draw
        row, _ = jax.lax.fori_loop(0, n_cols, col_step, (_at(canvas, i, 1), h_cache))
        return jax.lax.dynamic_update_index_in_dim(canvas, row, i, 1), v_cache

    v_cache = [jnp.zeros((N, half[l + 1] + H, W, p), dtype) for l in range(L - 1)]
    return jax.lax.fori_loop(0, H, row_step, (canvas, v_cache))[0]


def _method(params: PixelCNNParams, method: str) -> str:
    check_choice(method, "method", METHODS)
    if method == "cached" and params.config.architecture != "gated":
        raise ValueError("method='cached' needs the gated architecture (its vertical stack is what is cached); "
                         "use method='naive' for architecture='masked'.")
    return method


def sample(key: jax.Array, params: PixelCNNParams, n: int, y=None, *, context=None,
           method: str = "cached") -> jax.Array:
    """Draw ``n`` images ``x ~ p(x)`` (or ``p(x | y, context)`` with labels ``y (n,)`` and a context
    ``(n, H, W, K)`` when the model takes them). Returns ``(n, H, W, 1)`` pixel values (0/1 or
    0..255) in the params' dtype."""
    key = check_key(key)
    n = check_positive_int(n, "n")
    method = _method(params, method)
    y, context = prepare_labels(params, y, n), prepare_context(params, context, n)
    H, W, C = params.config.image_shape
    canvas = jnp.zeros((n, H, W, C), _dtype(params))
    return _fill(params, key, canvas, jnp.zeros((n, H, W), bool), y, context, method)


def inpaint(key: jax.Array, params: PixelCNNParams, x, observed, y=None, *, context=None, n_samples: int = 1,
            method: str = "cached") -> jax.Array:
    """Complete images: keep ``x`` where ``observed`` is True and sample the other pixels in raster
    order (exact when the observed pixels all precede the missing ones; see the module docstring).

    Args:
      x: images as for :func:`~jaxgen.models.pixelcnn.log_prob`, ``(N, H, W, 1)`` etc. (the values
        at unobserved pixels are ignored but must still be valid pixel values).
      observed: bool ``(H, W)`` (one mask for every image) or ``(N, H, W)``.
      y, context: labels ``(N,)`` and a context ``(N, H, W, K)`` when the model takes them.
      n_samples: completions per image.

    Returns:
      ``(N, n_samples, H, W, 1)`` completed images.
    """
    key = check_key(key)
    n_samples = check_positive_int(n_samples, "n_samples")
    method = _method(params, method)
    x = prepare(params, x)
    N, H, W, _ = x.shape
    y, context = prepare_labels(params, y, N), prepare_context(params, context, N)
    mask = observed if isinstance(observed, jax.Array) else np.asarray(observed)
    if mask.dtype != bool:
        raise ValueError(f"observed must be a boolean mask (True = observed pixel), got dtype {mask.dtype}.")
    if mask.shape == (H, W):
        mask = jnp.broadcast_to(jnp.asarray(mask), (N, H, W))
    elif mask.shape in ((N, H, W), (N, H, W, 1)):
        mask = jnp.asarray(mask).reshape(N, H, W)
    else:
        raise ValueError(f"observed must have shape ({H}, {W}) or ({N}, {H}, {W}) for {N} images of {H} x {W}, got "
                         f"{mask.shape}.")
    rep = lambda a: None if a is None else jnp.repeat(a, n_samples, axis=0)  # noqa: E731
    canvas = rep(jnp.where(mask[..., None], x, 0))
    out = _fill(params, key, canvas, rep(mask), rep(y), rep(context), method)
    return out.reshape(N, n_samples, H, W, 1)
