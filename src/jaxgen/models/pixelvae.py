"""PixelVAE (Gulrajani et al. 2017): a VAE whose decoder is a small PixelCNN.

``z ~ N(0, I)``; a deconvolutional network maps ``z`` to a context map ``(H, W, K)``; a gated
PixelCNN conditioned on that map (:mod:`jaxgen.models.pixelcnn`, ``context_channels = K``) gives
``p(x | z) = prod_i p(x_i | x_<i, z)`` exactly. The latent code carries the global structure, the
few autoregressive layers the local detail; decoding is sampling the PixelCNN given ``z``, so two
images can be interpolated through their codes with an autoregressive decoder.

Inference network and context network: :mod:`jaxgen.models.vae`'s convolutional encoder and
:class:`jaxgen.nn.ConvDecoder`. Binary images (Bernoulli PixelCNN); training on the ELBO with
dynamic binarisation (:func:`loss_fn`), test log-likelihood by importance sampling
(:func:`log_prob`, the IWAE estimate with the exact ``log p(x | z)``).

Data: ``(N, H, W, 1)``, ``(N, H, W)`` or ``(N, H * W)`` binary images, as for the PixelCNN.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import keys
from jaxgen.models import pixelcnn
from jaxgen.models._latent import PATHS, latent_path
from jaxgen.models.pixelcnn.model import _log_prob as _pixel_log_prob
from jaxgen.models.pixelcnn.objectives import check_grey
from jaxgen.models.pixelcnn.sampling import _fill
from jaxgen.models.vae import Encoder, VAEConfig
from jaxgen.nn import ConvDecoder
from jaxgen.validation import check_choice, check_int_tuple, check_key, check_positive_int, float_dtype

__all__ = ["PixelVAEConfig", "PixelVAEParams", "init", "num_params", "encode", "decode", "sample", "elbo",
           "log_prob", "interpolate", "loss_fn"]


@dataclasses.dataclass(frozen=True)
class PixelVAEConfig:
    """What the PixelVAE is made of.

    Attributes:
      image_shape: ``(H, W, 1)``.
      latent_dim: ``q``.
      conv_features: channels of the encoder's stride-2 convolutions (the context network mirrors them).
      conv_dense: width of the dense layer after the encoder / before the context network.
      context_channels: ``K``, channels of the context map that conditions the PixelCNN.
      features, n_layers, first_kernel, kernel_size, out_features: the PixelCNN decoder's
        (:class:`jaxgen.models.pixelcnn.PixelCNNConfig`); a few layers suffice, the latent carries
        the rest.
    """

    image_shape: tuple = (28, 28, 1)
    latent_dim: int = 16
    conv_features: tuple = (32, 64)
    conv_dense: int = 256
    context_channels: int = 8
    features: int = 32
    n_layers: int = 3
    first_kernel: int = 7
    kernel_size: int = 5
    out_features: int = 64

    def __post_init__(self):
        object.__setattr__(self, "conv_features", check_int_tuple(self.conv_features, "conv_features"))
        check_positive_int(self.context_channels, "context_channels")
        self.pixelcnn  # noqa: B018  (validates the decoder's settings)
        self.encoder  # noqa: B018

    @property
    def pixelcnn(self) -> pixelcnn.PixelCNNConfig:
        return pixelcnn.PixelCNNConfig(image_shape=tuple(self.image_shape), likelihood="bernoulli", architecture="gated",
                                       features=self.features, n_layers=self.n_layers, first_kernel=self.first_kernel,
                                       kernel_size=self.kernel_size, out_features=self.out_features,
                                       context_channels=self.context_channels)

    @property
    def encoder(self) -> VAEConfig:
        return VAEConfig(image_shape=tuple(self.image_shape), latent_dim=self.latent_dim, architecture="conv",
                         conv_features=self.conv_features, conv_dense=self.conv_dense, activation="relu")


@flax.struct.dataclass
class PixelVAEParams:
    """Encoder, context network and PixelCNN parameters, and the static config."""

    encoder: dict
    context: dict
    decoder: pixelcnn.PixelCNNParams
    config: PixelVAEConfig = flax.struct.field(pytree_node=False)


def _context_net(config: PixelVAEConfig) -> ConvDecoder:
    H, W, _ = config.image_shape
    return ConvDecoder((H, W, config.context_channels), tuple(reversed(config.conv_features)), config.conv_dense, "relu")


def init(key: jax.Array, config: PixelVAEConfig) -> PixelVAEParams:
    """Random initial parameters (the streams ``encoder``, ``context``, ``decoder``)."""
    if not isinstance(config, PixelVAEConfig):
        raise ValueError(f"config must be a PixelVAEConfig, got {type(config).__name__}.")
    k = keys.streams(key, "encoder", "context", "decoder")
    dtype = float_dtype()
    D = int(np.prod(config.image_shape))
    cast = functools.partial(jax.tree.map, lambda a: a.astype(dtype))
    enc = cast(Encoder(config.encoder).init(k["encoder"], jnp.zeros((1, D), dtype))["params"])
    ctx = cast(_context_net(config).init(k["context"], jnp.zeros((1, config.latent_dim), dtype))["params"])
    return PixelVAEParams(encoder=enc, context=ctx, decoder=pixelcnn.init(k["decoder"], config.pixelcnn), config=config)


def num_params(params: PixelVAEParams) -> dict:
    """Parameter counts ``{"encoder", "context", "decoder", "total"}``."""
    count = lambda t: int(sum(np.prod(a.shape) for a in jax.tree.leaves(t)))  # noqa: E731
    out = {"encoder": count(params.encoder), "context": count(params.context), "decoder": count(params.decoder.net)}
    out["total"] = sum(out.values())
    return out


# --------------------------------------------------------------------------------------------
# unchecked pieces (x: prepared (N, H, W, 1) binary images)


def _encode(params: PixelVAEParams, x):
    return Encoder(params.config.encoder).apply({"params": params.encoder}, x.reshape(x.shape[0], -1))


def _context(params: PixelVAEParams, z):
    return _context_net(params.config).apply({"params": params.context}, z)


def _elbo_terms(params: PixelVAEParams, x, key):
    mean, log_var = _encode(params, x)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)
    rec = _pixel_log_prob(params.decoder, x, None, _context(params, z))
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)
    return rec, kl


def _normal_log_prob(z, mean, log_var):
    return -0.5 * jnp.sum(math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


# --------------------------------------------------------------------------------------------
# public functions


def _prepare(params: PixelVAEParams, x, name: str = "x"):
    return pixelcnn.prepare(params.decoder, x, name=name)


def encode(params: PixelVAEParams, x) -> tuple[jax.Array, jax.Array]:
    """``q(z | x) = N(mean, diag(exp(log_var)))`` for binary images ``x``: ``(mean, log_var)``, each ``(N, q)``."""
    return jax.jit(_encode)(params, _prepare(params, x))


def _check_z(params: PixelVAEParams, z) -> jax.Array:
    q = params.config.latent_dim
    z = jnp.asarray(z, float_dtype())
    if z.ndim != 2 or z.shape[1] != q:
        raise ValueError(f"z must have shape (M, {q}) for this PixelVAE (latent_dim={q}), got {z.shape}.")
    if not bool(jnp.all(jnp.isfinite(z))):
        raise ValueError("z contains NaN or inf value(s); all entries must be finite.")
    return z


@functools.partial(jax.jit, static_argnames=("shared",))
def _decode(params, key, z, shared: bool = False):
    H, W, C = params.config.image_shape
    context = _context(params, z)

    def fill(ctx):
        m = ctx.shape[0]
        return _fill(params.decoder, key, jnp.zeros((m, H, W, C), z.dtype), jnp.zeros((m, H, W), bool), None, ctx,
                     "cached")

    if shared:  # one image per call, all with the same key: the same uniforms for every row
        return jax.vmap(lambda ctx: fill(ctx[None])[0])(context)
    return fill(context)


def decode(key: jax.Array, params: PixelVAEParams, z, *, shared_noise: bool = False) -> jax.Array:
    """Sample ``x ~ p(x | z)`` with the autoregressive decoder for each row of ``z (M, q)``:
    ``(M, H, W, 1)`` binary images. ``shared_noise=True`` gives every row the same random numbers
    (common random numbers: rows then differ only through their codes, as along a latent path)."""
    return _decode(params, check_key(key), _check_z(params, z), bool(shared_noise))


def sample(key: jax.Array, params: PixelVAEParams, n: int) -> tuple[jax.Array, jax.Array]:
    """``z ~ N(0, I)`` then ``x ~ p(x | z)``: ``(images (n, H, W, 1), z (n, q))`` (streams ``z``, ``x``)."""
    k = keys.streams(check_key(key), "z", "x")
    n = check_positive_int(n, "n")
    z = jax.random.normal(k["z"], (n, params.config.latent_dim), float_dtype())
    return _decode(params, k["x"], z), z


@jax.jit
def _elbo(params, x, key):
    rec, kl = _elbo_terms(params, x, key)
    return rec - kl


def elbo(params: PixelVAEParams, x, key: jax.Array) -> jax.Array:
    """The single-sample ELBO ``log p(x | z) - KL(q(z | x) || p(z))`` per image, ``(N,)`` nats."""
    return _elbo(params, _prepare(params, x), check_key(key))


@functools.partial(jax.jit, static_argnames=("k", "batch_size"))
def _log_prob(params, x, key, k, batch_size):
    n = x.shape[0]
    pad = (-n) % batch_size
    xb = jnp.pad(x, ((0, pad), (0, 0), (0, 0), (0, 0))).reshape(-1, batch_size, *x.shape[1:])

    def one_batch(args):
        xs, kb = args
        mean, log_var = _encode(params, xs)

        def draw(i):  # one importance sample for the whole batch: (batch,)
            z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.fold_in(kb, i), mean.shape, mean.dtype)
            log_p = _pixel_log_prob(params.decoder, xs, None, _context(params, z)) + _normal_log_prob(
                z, jnp.zeros_like(z), jnp.zeros_like(z))
            return log_p - _normal_log_prob(z, mean, log_var)

        lw = jax.lax.map(draw, jnp.arange(k))  # (k, batch): one PixelCNN pass per sample, memory bounded
        return jax.nn.logsumexp(lw, axis=0) - math.log(k)

    keys = jax.random.split(key, xb.shape[0])
    return jax.lax.map(one_batch, (xb, keys)).reshape(-1)[:n]


def log_prob(params: PixelVAEParams, x, key: jax.Array, k: int = 100, *, batch_size: int = 100) -> jax.Array:
    """Importance-sampled ``log p(x)`` with ``k`` samples of ``q(z | x)`` per image, ``(N,)`` nats
    (the IWAE estimate: a lower bound in expectation that tightens as ``k`` grows)."""
    x = _prepare(params, x)
    k = check_positive_int(k, "k")
    return _log_prob(params, x, check_key(key), k, min(check_positive_int(batch_size, "batch_size"), x.shape[0]))


def interpolate(key: jax.Array, params: PixelVAEParams, x0, x1, n: int = 8, method: str = "linear") -> jax.Array:
    """Decode ``n`` points on the latent path between the posterior means of ``x0`` and ``x1``
    (paired rows), each with the autoregressive decoder and the same random numbers (so what
    changes along a row comes from the code): ``(M, n, H, W, 1)`` binary images."""
    key = check_key(key)
    n = check_positive_int(n, "n", minimum=2)
    check_choice(method, "method", PATHS)
    x0, x1 = _prepare(params, x0, "x0"), _prepare(params, x1, "x1")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must hold the same number of images, got {x0.shape[0]} and {x1.shape[0]}.")
    z0, z1 = encode(params, x0)[0], encode(params, x1)[0]
    z = latent_path(z0, z1, jnp.linspace(0.0, 1.0, n, dtype=z0.dtype), method)  # (M, n, q)
    M = z.shape[0]
    return _decode(params, key, z.reshape(M * n, -1), True).reshape(M, n, *params.config.image_shape)


def loss_fn(binarize: bool = True):
    """The training loss ``(params, batch, key) -> (loss, metrics)``: the negative single-sample ELBO
    averaged over the batch (``metrics``: ``elbo``, ``recon``, ``kl``). ``binarize=True``: ``batch``
    holds grey values (uint8 or floats in [0, 1]) binarised afresh each step (streams ``binarize``,
    ``z``); else binary images. ``check_train_data(params, data)`` validates the data once; ``settings``
    describes the loss for the resume check of :func:`jaxgen.train.fit`."""
    def loss(params: PixelVAEParams, batch, key):
        k = keys.streams(key, "binarize", "z")
        x = batch.reshape(batch.shape[0], *params.config.image_shape)
        dtype = jax.tree.leaves(params.encoder)[0].dtype
        if binarize:
            probs = x.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else x.astype(dtype)
            x = jax.random.bernoulli(k["binarize"], probs).astype(dtype)
        else:
            x = x.astype(dtype)
        rec, kl = _elbo_terms(params, x, k["z"])
        elbo_ = jnp.mean(rec - kl)
        return -elbo_, {"elbo": elbo_, "recon": jnp.mean(rec), "kl": jnp.mean(kl)}

    def check_train_data(params: PixelVAEParams, train_data) -> None:
        """Grey images (``binarize=True``) or binary ones, as the PixelCNN's loss checks them."""
        if binarize:
            check_grey(params.decoder, train_data)
        else:
            pixelcnn.prepare(params.decoder, train_data, name="train_data")

    loss.check_train_data = check_train_data
    loss.settings = {"builder": "pixelvae.loss_fn", "binarize": bool(binarize)}  # for jaxgen.train.fit's resume check
    return loss
