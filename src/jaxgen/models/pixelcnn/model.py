"""PixelCNN: configuration, networks, parameters and the exact log-likelihood.

``p(x) = prod_i p(x_i | x_<i)`` over the pixels in raster order (row by row, left to right), each
conditional given by one pass of a causal convolutional network over the whole image
(:mod:`jaxgen.nn.masked`):

* ``architecture="gated"`` (default; van den Oord et al. 2016b, "Conditional Image Generation with
  PixelCNN Decoders"): a vertical and a horizontal stack, gated units ``tanh(a) * sigmoid(b)``,
  the vertical stack feeding the horizontal one through a down-shifted 1 x 1 convolution,
  residual connections on the horizontal stack. No blind spot: with enough layers the last pixel
  sees every earlier one (:func:`receptive_field`).
* ``architecture="masked"`` (van den Oord et al. 2016a): a ``k0 x k0`` mask-A convolution, then
  residual blocks of mask-B convolutions. It has the blind spot; kept as the baseline.

Both end in two 1 x 1 layers to the outputs. ``likelihood="bernoulli"``: one logit per pixel, for
binary images; ``"categorical"``: 256 logits per pixel, for 8-bit images. With ``n_classes > 0``
the model is class-conditional: a learned per-class bias on every gate (the paper's ``V^T h``
with a one-hot ``h``).

Single-channel images (``C = 1``): colour images would also need an order over the channels of a
pixel, which these networks do not model (:class:`PixelCNNConfig` refuses ``C > 1``).

Data: images ``(N, H, W, 1)``, ``(N, H, W)`` or flat ``(N, H * W)``. Bernoulli: values in {0, 1}
(bool, integer or float); categorical: integers 0..255 (uint8 or integer-valued). Parameters are a
:class:`PixelCNNParams` pytree that carries its config as static metadata.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn.convolution import Conv
from jaxgen.nn.masked import HorizontalConv, MaskedConv, VerticalConv, down_shift
from jaxgen.validation import check_choice, check_positive_int, float_dtype

__all__ = [
    "ARCHITECTURES",
    "LIKELIHOODS",
    "PixelCNNConfig",
    "PixelCNNParams",
    "PixelCNN",
    "init",
    "num_params",
    "prepare",
    "prepare_labels",
    "prepare_context",
    "logits",
    "log_prob",
    "bits_per_dim",
    "receptive_field",
]

ARCHITECTURES = ("gated", "masked")
LIKELIHOODS = ("bernoulli", "categorical")
_N_LEVELS = {"bernoulli": 2, "categorical": 256}


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
    """What the PixelCNN is made of (hashable: static metadata of :class:`PixelCNNParams`).

    Attributes:
      image_shape: ``(H, W, 1)``.
      likelihood: ``"bernoulli"`` (binary pixels) or ``"categorical"`` (256 levels).
      architecture: ``"gated"`` or ``"masked"``.
      features: channels of every hidden layer (``p`` of the gated paper; the gates have ``2p``).
      n_layers: causal layers, the first included.
      first_kernel: odd ``k0`` of the first (mask A) layer.
      kernel_size: odd ``k`` of the later layers (the vertical stack's window is ``(k//2 + 1) x k``).
      out_features: width of the hidden 1 x 1 layer of the output head.
      n_classes: ``0`` for an unconditional model, else the number of class labels.
      context_channels: ``0``, or ``K`` for a model conditioned on a pixel-aligned context map
        ``(N, H, W, K)`` that does not depend on the image (e.g. a latent code decoded to a feature
        map: the PixelVAE's decoder); a 1 x 1 convolution of it enters every gate.
    """

    image_shape: tuple = (28, 28, 1)
    likelihood: str = "bernoulli"
    architecture: str = "gated"
    features: int = 32
    n_layers: int = 8
    first_kernel: int = 7
    kernel_size: int = 5
    out_features: int = 64
    n_classes: int = 0
    context_channels: int = 0

    def __post_init__(self):
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
            raise ValueError(f"image_shape must be (H, W, C) of positive integers, got {self.image_shape!r}.")
        if shape[2] != 1:
            raise ValueError(f"the PixelCNN models single-channel images (C = 1), got image_shape {shape}: colour "
                             "images need an order over each pixel's channels, which these networks do not model.")
        object.__setattr__(self, "image_shape", tuple(int(s) for s in shape))
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        for name in ("features", "n_layers", "out_features"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.n_classes, "n_classes", minimum=0)
        check_positive_int(self.context_channels, "context_channels", minimum=0)
        for name in ("first_kernel", "kernel_size"):
            k = getattr(self, name)
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be an odd integer >= 1, got {k!r}.")
        if self.first_kernel < 3:
            raise ValueError(f"first_kernel must be >= 3 (a 1 x 1 mask-A layer sees no pixel), got {self.first_kernel}.")

    @property
    def n_pixels(self) -> int:
        """``D = H * W``."""
        return self.image_shape[0] * self.image_shape[1]

    @property
    def n_levels(self) -> int:
        """Values a pixel takes: 2 (Bernoulli) or 256 (categorical)."""
        return _N_LEVELS[self.likelihood]


@flax.struct.dataclass
class PixelCNNParams:
    """Network parameters (a Flax param dict) and the static config."""

    net: dict
    config: PixelCNNConfig = flax.struct.field(pytree_node=False)


# --------------------------------------------------------------------------------------------
# networks


def _gate(a: jax.Array) -> jax.Array:
    t, s = jnp.split(a, 2, axis=-1)
    return jnp.tanh(t) * jax.nn.sigmoid(s)


class PixelCNN(nn.Module):
    """The network: inputs ``(N, H, W, 1)`` (scaled to [-1, 1]), labels ``(N,)`` or None and a
    context ``(N, H, W, K)`` or None -> logits ``(N, H, W, 1)`` (Bernoulli) or ``(N, H, W, 1, 256)``
    (categorical).

    The gated network is split in two so that a sampler can reuse it: :meth:`links` runs the
    vertical stack and returns, per layer, what reaches the horizontal stack at each pixel (it
    depends only on rows strictly above); :meth:`horizontal` runs the horizontal stack on any rows
    given those links (row by row: no computation mixes rows).
    """

    config: PixelCNNConfig

    def setup(self):
        c = self.config
        p, L = c.features, c.n_layers
        if c.architecture == "gated":
            self.v_convs = [VerticalConv(2 * p, c.first_kernel if i == 0 else c.kernel_size) for i in range(L)]
            self.h_convs = [HorizontalConv(2 * p, c.first_kernel if i == 0 else c.kernel_size, "A" if i == 0 else "B")
                            for i in range(L)]
            self.v_links = [Conv(2 * p, (1, 1)) for _ in range(L)]
            self.h_outs = [Conv(p, (1, 1)) for _ in range(L)]
        else:
            self.first = MaskedConv(2 * p, c.first_kernel, "A")
            self.blocks = [(Conv(p, (1, 1)), MaskedConv(p, c.kernel_size, "B"), Conv(2 * p, (1, 1)))
                           for _ in range(L - 1)]
        if c.n_classes:
            # per layer, one bias per class for each stack's gate (zero at init: starts unconditional)
            self.class_bias = self.param("class_bias", nn.initializers.zeros, (L, 2, c.n_classes, 2 * p))
        if c.context_channels:  # per layer, one 1 x 1 projection for each stack's gate
            self.context_proj = [(Conv(2 * p, (1, 1)), Conv(2 * p, (1, 1))) for _ in range(L)]
        self.head = (Conv(c.out_features, (1, 1)), Conv(c.n_levels if c.likelihood == "categorical" else 1, (1, 1)))

    def _bias(self, y, context, layer: int, stack: int):
        """What the labels and the context add to a gate: ``(N, 1, 1, 2p)``, ``(N, H, W, 2p)`` or 0."""
        out = 0.0
        if self.config.n_classes:
            out = out + self.class_bias[layer, stack][y][:, None, None, :]
        if self.config.context_channels:
            out = out + self.context_proj[layer][stack](context)
        return out

    def links(self, x: jax.Array, y=None, context=None) -> list:
        """Gated only: per layer, ``(N, H, W, 2p)``: everything that reaches the horizontal gate
        besides the horizontal stack itself (the vertical stack, the labels, the context) at every
        pixel; row ``i`` depends on input rows ``< i``."""
        out, v = [], x
        for i, (conv, link) in enumerate(zip(self.v_convs, self.v_links)):
            a = conv(v) + self._bias(y, context, i, 0)
            out.append(link(down_shift(a)) + self._bias(y, context, i, 1))
            v = _gate(a)
        return out

    def horizontal(self, x: jax.Array, links: list) -> jax.Array:
        """Gated only: the horizontal stack and the head on rows of ``x (N, R, W, 1)`` with their
        ``links`` (each ``(N, R, W, 2p)``); every row is computed independently."""
        h = None
        for i, (conv, out) in enumerate(zip(self.h_convs, self.h_outs)):
            g = out(_gate(conv(x if i == 0 else h) + links[i]))
            h = g if i == 0 else h + g
        return self._head(h)

    def vertical_step(self, x_rows, v_rows: list, y, ctx_prev, ctx_row, first):
        """Incremental sampling (gated only): the vertical stack's row ``r - 1`` and the links of row ``r``.

        Args:
          x_rows: ``(N, c_0 + 1, W, 1)``: rows ``r - 1 - c_0 .. r - 1`` of the scaled image (zeros above it),
            with ``c_l`` the half-width ``k_l // 2`` of layer l's kernel.
          v_rows: for layers ``l = 1 .. L - 1``, ``(N, c_l, W, p)``: rows ``r - 1 - c_l .. r - 2`` of layer
            ``l - 1``'s output (zeros above the image).
          y, ctx_prev, ctx_row: labels, and the context's rows ``r - 1`` and ``r`` ``(N, 1, W, K)`` (or None).
          first: True at ``r = 0`` (traced), where row ``r - 1`` does not exist (the down-shift brings zeros).

        Returns:
          ``(rows, links)``: row ``r - 1`` of every layer's output but the last, ``(N, 1, W, p)`` each, and
          the links of row ``r``, ``(N, 1, W, 2p)`` per layer, as :meth:`links` computes them on the whole image.
        """
        rows, links, inp = [], [], x_rows
        for i, (conv, link) in enumerate(zip(self.v_convs, self.v_links)):
            if i:
                inp = jnp.concatenate([v_rows[i - 1], rows[i - 1]], axis=1)
            a = jnp.where(first, 0.0, conv(inp, window=True) + self._bias(y, ctx_prev, i, 0))
            links.append(link(a) + self._bias(y, ctx_row, i, 1))
            rows.append(_gate(a))
        return rows[:-1], links

    def horizontal_step(self, x_cols, h_cols: list, links_col: list):
        """Incremental sampling (gated only): the horizontal stack and head at pixel ``(r, j)``.

        Args:
          x_cols: ``(N, 1, c_0, 1)``: columns ``j - c_0 .. j - 1`` of row ``r`` of the scaled image (zeros
            left of it).
          h_cols: for layers ``l = 1 .. L - 1``, ``(N, 1, c_l, p)``: columns ``j - c_l .. j - 1`` of layer
            ``l - 1``'s output on row ``r``.
          links_col: per layer, ``(N, 1, 1, 2p)``: the links at ``(r, j)``.

        Returns:
          ``(cols, logits)``: column ``j`` of every layer's output but the last, ``(N, 1, 1, p)`` each, and
          the logits at ``(r, j)``, ``(N, 1, 1, 1)`` or ``(N, 1, 1, 1, 256)``.
        """
        cols, h = [], None
        for i, (conv, out) in enumerate(zip(self.h_convs, self.h_outs)):
            inp = x_cols if i == 0 else jnp.concatenate([h_cols[i - 1], h], axis=2)
            g = out(_gate(conv(inp, window=True) + links_col[i]))
            h = g if i == 0 else h + g
            cols.append(h)
        return cols[:-1], self._head(h)

    def _head(self, h):
        a, b = self.head
        out = b(nn.relu(a(nn.relu(h))))
        if self.config.likelihood == "categorical":
            return out[..., None, :]  # (..., 1, 256): the channel axis, then the levels
        return out

    def __call__(self, x: jax.Array, y=None, context=None) -> jax.Array:
        if self.config.architecture == "gated":
            return self.horizontal(x, self.links(x, y, context))
        h = self.first(x) + self._bias(y, context, 0, 0)  # (N, H, W, 2p)
        for i, (down, masked, up) in enumerate(self.blocks, start=1):  # van den Oord et al. 2016a's residual block
            h = h + up(nn.relu(masked(nn.relu(down(nn.relu(h)))))) + self._bias(y, context, i, 0)
        return self._head(h)


def init(key: jax.Array, config: PixelCNNConfig) -> PixelCNNParams:
    """Random initial parameters (Flax defaults: LeCun-normal kernels, zero biases) in the compute
    dtype (float32, or float64 under ``jax_enable_x64``)."""
    if not isinstance(config, PixelCNNConfig):
        raise ValueError(f"config must be a PixelCNNConfig, got {type(config).__name__}.")
    dtype = float_dtype()
    x0 = jnp.zeros((1, *config.image_shape), dtype)
    y0 = jnp.zeros((1,), jnp.int32) if config.n_classes else None
    ctx0 = jnp.zeros((1, *config.image_shape[:2], config.context_channels), dtype) if config.context_channels else None
    net = PixelCNN(config).init(key, x0, y0, ctx0)["params"]
    return PixelCNNParams(net=jax.tree.map(lambda a: a.astype(dtype), net), config=config)


def num_params(params: PixelCNNParams) -> int:
    """The number of parameters."""
    return int(sum(np.prod(a.shape) for a in jax.tree.leaves(params.net)))


# --------------------------------------------------------------------------------------------
# input checks (before any work)


def _dtype(params: PixelCNNParams):
    return jax.tree.leaves(params.net)[0].dtype


def _as_images(config: PixelCNNConfig, shape, name: str) -> tuple:
    H, W, C = config.image_shape
    ok = [(H, W, C), (H, W), (H * W,)]
    if len(shape) < 2 or tuple(shape[1:]) not in ok:
        raise ValueError(f"{name} must have shape (N, {H}, {W}, 1), (N, {H}, {W}) or (N, {H * W}) for this PixelCNN "
                         f"(image_shape={config.image_shape}), got {tuple(shape)}.")
    return (shape[0], H, W, C)


def _levels_error(config: PixelCNNConfig, name: str, detail: str) -> ValueError:
    if config.likelihood == "bernoulli":
        return ValueError(f"{name} must be binary (0 or 1) for the Bernoulli PixelCNN, {detail}. Binarise grey "
                          "images first (jaxgen.data.binarize, or x > 0.5), or train with dynamic binarisation "
                          "(pixelcnn.loss_fn(binarize=True)).")
    return ValueError(f"{name} must hold integer levels 0..255 for the categorical PixelCNN, {detail}. Pass 8-bit "
                      "images (uint8), not values scaled to [0, 1].")


def prepare(params: PixelCNNParams, x, *, name: str = "x") -> jax.Array:
    """Validate images for ``params`` and return them as ``(N, H, W, 1)`` pixel values in the params'
    dtype (0/1, or 0..255). Raises ``ValueError`` for a wrong shape, an empty batch, non-finite
    values, non-binary values for the Bernoulli model, non-integers or values outside 0..255 for
    the categorical one. Under ``jit`` (a tracer) only the shape is checked."""
    c = params.config
    shape = _as_images(c, np.shape(x), name)
    dtype = _dtype(params)
    if isinstance(x, jax.core.Tracer):
        return x.reshape(shape).astype(dtype)
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images); pass at least one image.")
    arr = x if isinstance(x, jax.Array) else np.asarray(x)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
    xp = jnp if isinstance(arr, jax.Array) else np
    if np.issubdtype(arr.dtype, np.integer):  # integers are finite and whole: only the range to check
        stats = xp.stack([xp.min(arr), xp.max(arr)]).astype(xp.float32)
        n_frac = 0
        lo, hi = (float(s) for s in jax.device_get(stats))
    else:  # reductions where the data live; a few scalars come back
        n_bad = int(xp.sum(~xp.isfinite(arr)))
        if n_bad:
            raise ValueError(f"{name} contains {n_bad} NaN or inf value(s); all entries must be finite.")
        stats = xp.stack([xp.sum(arr != xp.round(arr)), xp.min(arr), xp.max(arr)]).astype(xp.float32)
        n_frac, lo, hi = (float(s) for s in jax.device_get(stats))
    if n_frac or lo < 0 or hi > c.n_levels - 1:
        detail = (f"got {int(n_frac)} non-integer value(s) and " if n_frac else "got ") + f"range [{lo:g}, {hi:g}]"
        raise _levels_error(c, name, detail)
    return jnp.asarray(arr).reshape(shape).astype(dtype)


def prepare_labels(params: PixelCNNParams, y, n: int, *, name: str = "y"):
    """Check class labels against the model: ``None`` for an unconditional model; integers in
    ``[0, n_classes)`` of shape ``(n,)`` for a conditional one. Returns an int32 array or None."""
    k = params.config.n_classes
    if not k:
        if y is not None:
            raise ValueError(f"this PixelCNN is unconditional (n_classes=0): pass {name}=None, or build a "
                             "class-conditional model with PixelCNNConfig(n_classes=...).")
        return None
    if y is None:
        raise ValueError(f"this PixelCNN is class-conditional (n_classes={k}): pass the labels {name} of shape ({n},).")
    if isinstance(y, jax.core.Tracer):
        if y.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {y.shape}.")
        return y.astype(jnp.int32)
    arr = np.asarray(jax.device_get(y))
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per image), got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"{name} must lie in [0, {k}) for n_classes={k}, got range [{arr.min()}, {arr.max()}].")
    return jnp.asarray(arr, jnp.int32)


def prepare_context(params: PixelCNNParams, context, n: int, *, name: str = "context"):
    """Check a context map against the model: ``None`` unless ``context_channels > 0``, then a
    finite ``(n, H, W, K)`` array. Returns it in the params' dtype, or None."""
    c = params.config
    K = c.context_channels
    if not K:
        if context is not None:
            raise ValueError(f"this PixelCNN takes no context (context_channels=0): pass {name}=None.")
        return None
    want = (n, *c.image_shape[:2], K)
    if context is None:
        raise ValueError(f"this PixelCNN is conditioned on a context map (context_channels={K}): pass {name} of "
                         f"shape {want}.")
    if tuple(np.shape(context)) != want:
        raise ValueError(f"{name} must have shape {want}, got {tuple(np.shape(context))}.")
    context = jnp.asarray(context, _dtype(params))
    if not isinstance(context, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(context))):
        raise ValueError(f"{name} contains NaN or inf value(s); all entries must be finite.")
    return context


# --------------------------------------------------------------------------------------------
# the likelihood


def _scale(config: PixelCNNConfig, x: jax.Array) -> jax.Array:
    """Pixel values -> the network's input in [-1, 1]."""
    return 2.0 * x / (config.n_levels - 1) - 1.0


def _logits(params: PixelCNNParams, x: jax.Array, y=None, context=None) -> jax.Array:
    return PixelCNN(params.config).apply({"params": params.net}, _scale(params.config, x), y, context)


def _pixel_log_probs(config: PixelCNNConfig, out: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x_i | x_<i) per pixel, ``(N, H, W, 1)``, from the network's output."""
    if config.likelihood == "bernoulli":
        return x * out - jax.nn.softplus(out)
    logp = jax.nn.log_softmax(out, axis=-1)
    return jnp.take_along_axis(logp, x.astype(jnp.int32)[..., None], axis=-1)[..., 0]


def _log_prob(params: PixelCNNParams, x: jax.Array, y=None, context=None) -> jax.Array:
    """Unchecked ``log p(x)``, ``(N,)`` nats, for prepared ``x (N, H, W, 1)``."""
    return jnp.sum(_pixel_log_probs(params.config, _logits(params, x, y, context), x), axis=(1, 2, 3))


@jax.jit
def _logits_jit(params, x, y, context):
    return _logits(params, x, y, context)


def logits(params: PixelCNNParams, x, y=None, *, context=None) -> jax.Array:
    """The network's output for images ``x``: ``(N, H, W, 1)`` logits of ``p(x_i = 1 | x_<i)``
    (Bernoulli) or ``(N, H, W, 1, 256)`` logits over the levels (categorical)."""
    x = prepare(params, x)
    n = x.shape[0]
    return _logits_jit(params, x, prepare_labels(params, y, n), prepare_context(params, context, n))


@functools.partial(jax.jit, static_argnames=("batch_size",))
def _log_prob_batched(params, x, y, context, batch_size):
    n = x.shape[0]
    pad = (-n) % batch_size

    def batches(a):
        return None if a is None else jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape(
            -1, batch_size, *a.shape[1:])

    out = jax.lax.map(lambda b: _log_prob(params, *b), (batches(x), batches(y), batches(context)))
    return out.reshape(-1)[:n]


def log_prob(params: PixelCNNParams, x, y=None, *, context=None, batch_size: int = 256) -> jax.Array:
    """The exact ``log p(x) = sum_i log p(x_i | x_<i)`` of each image (given labels ``y (N,)`` and a
    context ``(N, H, W, K)`` when the model takes them), ``(N,)`` nats: one network pass per batch of
    ``batch_size`` images, ``lax.map`` over batches, so memory is bounded."""
    x = prepare(params, x)
    n = x.shape[0]
    y, context = prepare_labels(params, y, n), prepare_context(params, context, n)
    return _log_prob_batched(params, x, y, context, min(check_positive_int(batch_size, "batch_size"), n))


def bits_per_dim(params: PixelCNNParams, x, y=None, *, context=None, batch_size: int = 256) -> jax.Array:
    """``-log2 p(x) / D`` of each image, ``(N,)``: the negative log-likelihood in bits per pixel."""
    return -log_prob(params, x, y, context=context, batch_size=batch_size) / (params.config.n_pixels * math.log(2.0))


def receptive_field(params: PixelCNNParams, pixel: tuple[int, int] | None = None) -> np.ndarray:
    """Which input pixels the prediction of ``pixel`` (default: the last one) depends on:
    ``(H, W)`` bool, True where the gradient of its logits with respect to the input is non-zero
    at some of 8 random inputs: one input could hide a path behind ReLUs that are all off there).
    For a causal model every True lies before ``pixel``; with no
    blind spot every pixel before it is True."""
    c = params.config
    H, W, _ = c.image_shape
    i, j = (H - 1, W - 1) if pixel is None else (int(pixel[0]), int(pixel[1]))
    if not (0 <= i < H and 0 <= j < W):
        raise ValueError(f"pixel must lie in the {H} x {W} image, got {(i, j)}.")
    n = 8
    x0 = jax.random.uniform(jax.random.key(0), (n, H, W, 1), _dtype(params), -1.0, 1.0)
    y0 = jnp.arange(n, dtype=jnp.int32) % c.n_classes if c.n_classes else None
    ctx0 = jax.random.normal(jax.random.key(1), (n, H, W, c.context_channels), x0.dtype) if c.context_channels else None

    return np.asarray(_receptive_field(params, x0, y0, ctx0, jnp.int32(i), jnp.int32(j)))


@jax.jit
def _receptive_field(params, x0, y0, ctx0, i, j):
    def out(x):  # images are independent: the gradient of the batch sum is each image's own
        o = PixelCNN(params.config).apply({"params": params.net}, x, y0, ctx0)
        o = jax.lax.dynamic_index_in_dim(jax.lax.dynamic_index_in_dim(o, i, 1, False), j, 1, False)
        return jnp.sum(o * jnp.linspace(1.0, 2.0, o[0].size).reshape(o.shape[1:]))  # every output counts

    return jnp.any(jax.grad(out)(x0)[..., 0] != 0, axis=0)
