"""VAE model: configuration, encoder/decoder networks, parameters, and the pure functions over them.

Generative model ``z ~ p(z)`` (see :mod:`.priors`), ``x | z ~ p(x | z)`` with a Bernoulli
(logits; binarised images) or Gaussian (per-pixel learned, or fixed, variance) likelihood; the
inference network is ``q(z | x) = N(mean(x), diag(exp(log_var(x))))``. Networks are MLPs or
conv/transposed-conv stacks (:mod:`jaxgen.nn`). Data are flat ``(N, D)`` rows with
``D = prod(config.image_shape)``; image-shaped input ``(N, *image_shape)`` (or ``(N, H, W)`` when
``C = 1``) is flattened. uint8 input is scaled by 1/255 (documented convenience for MNIST bytes).

Parameters are a :class:`VAEParams` pytree (encoder, decoder, prior) that carries its
:class:`VAEConfig` as static metadata, so every function takes just ``params``.
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

from jaxgen.models._latent import latent_path
from jaxgen.models.vae import priors
from jaxgen.nn import ACTIVATIONS, MLP, ConvDecoder, ConvEncoder
from jaxgen.validation import (check_choice, check_data, check_int_tuple, check_key, check_positive_float,
                               check_positive_int, float_dtype)

__all__ = [
    "LIKELIHOODS",
    "ARCHITECTURES",
    "VARIANCES",
    "VAEConfig",
    "VAEParams",
    "init",
    "num_params",
    "prepare",
    "check_shape",
    "check_values",
    "encode",
    "decode",
    "decode_mean",
    "log_likelihood",
    "prior_log_prob",
    "sample",
    "reconstruct",
    "interpolate",
    "inpaint",
    "attribute_vector",
    "apply_attribute",
]

LIKELIHOODS = ("bernoulli", "gaussian")
ARCHITECTURES = ("mlp", "conv")
VARIANCES = ("learned", "fixed")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """What the VAE is made of (hashable: it is static metadata of :class:`VAEParams`).

    Attributes:
      image_shape: ``(H, W, C)`` of one datum (an MLP only uses ``D = H * W * C``; a flat vector
        of length D can be declared as ``(D, 1, 1)``).
      latent_dim: ``q``.
      architecture: ``"mlp"`` or ``"conv"``.
      hidden: MLP hidden widths of the encoder; the decoder uses them reversed. ``()`` makes both
        networks affine (a linear Gaussian decoder with the normal prior is PPCA).
      activation: name in :data:`jaxgen.nn.ACTIVATIONS`.
      conv_features: channels of the conv encoder layers (the decoder mirrors them).
      conv_dense: width of the dense layer after the conv encoder / before the decoder.
      likelihood: ``"bernoulli"`` (decoder outputs logits, data in [0, 1]) or ``"gaussian"``.
      variance: Gaussian only: ``"learned"`` (one log-variance per pixel, not depending on z) or
        ``"fixed"`` (``obs_var`` for every pixel).
      obs_var: the fixed variance, or the initial value of the learned one.
      min_obs_var: floor of the learned variance (a per-pixel variance otherwise collapses on
        constant pixels, e.g. image borders, and the likelihood diverges).
      prior: ``"normal"``, ``"mog"`` or ``"vamp"`` (see :mod:`jaxgen.models.vae.priors`).
      n_components: mixture components (MoG) or pseudo-inputs (VampPrior).
    """

    image_shape: tuple = (28, 28, 1)
    latent_dim: int = 50
    architecture: str = "mlp"
    hidden: tuple = (200, 200)
    activation: str = "tanh"
    conv_features: tuple = (32, 64)
    conv_dense: int = 256
    likelihood: str = "bernoulli"
    variance: str = "learned"
    obs_var: float = 1.0
    min_obs_var: float = 1e-3
    prior: str = "normal"
    n_components: int = 10

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)

        set_("image_shape", check_int_tuple(self.image_shape, "image_shape"))
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {self.image_shape}.")
        set_("hidden", check_int_tuple(self.hidden, "hidden"))
        set_("conv_features", check_int_tuple(self.conv_features, "conv_features"))
        check_positive_int(self.latent_dim, "latent_dim")
        check_positive_int(self.conv_dense, "conv_dense", minimum=0)
        check_positive_int(self.n_components, "n_components")
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        check_choice(self.variance, "variance", VARIANCES)
        check_choice(self.prior, "prior", priors.PRIORS)
        check_choice(self.activation, "activation", ACTIVATIONS)
        check_positive_float(self.obs_var, "obs_var")
        check_positive_float(self.min_obs_var, "min_obs_var", allow_zero=True)
        if self.likelihood == "gaussian" and self.variance == "learned" and self.obs_var < self.min_obs_var:
            raise ValueError(f"obs_var ({self.obs_var}) must be >= min_obs_var ({self.min_obs_var}).")

    @property
    def data_dim(self) -> int:
        """``D``, the length of a flattened datum."""
        return int(np.prod(self.image_shape))


@flax.struct.dataclass
class VAEParams:
    """VAE parameters: Flax param dicts of the two networks, the prior's arrays, and the static config."""

    encoder: dict
    decoder: dict
    prior: dict
    config: VAEConfig = flax.struct.field(pytree_node=False)


# --------------------------------------------------------------------------------------------
# networks


class Encoder(nn.Module):
    """``(N, D) -> (mean (N, q), log_var (N, q))``: a trunk (MLP or conv) and two linear heads."""

    config: VAEConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        if c.architecture == "mlp":
            h = MLP(c.hidden, c.activation, activate_final=True, name="trunk")(x)
        else:
            h = ConvEncoder(c.conv_features, c.conv_dense, c.activation, name="trunk")(x.reshape(-1, *c.image_shape))
        return nn.Dense(c.latent_dim, name="mean")(h), nn.Dense(c.latent_dim, name="log_var")(h)


class Decoder(nn.Module):
    """``(M, q) -> (M, D)`` logits (Bernoulli) or means (Gaussian); a learned per-pixel log-variance
    lives here as the parameter ``log_var (D,)``."""

    config: VAEConfig

    @nn.compact
    def __call__(self, z):
        c = self.config
        if c.architecture == "mlp":
            out = MLP((*reversed(c.hidden), c.data_dim), c.activation, name="net")(z)
        else:
            out = ConvDecoder(c.image_shape, tuple(reversed(c.conv_features)), c.conv_dense, c.activation,
                              name="net")(z).reshape(z.shape[0], -1)
        if c.likelihood == "gaussian" and c.variance == "learned":
            self.param("log_var", nn.initializers.constant(math.log(c.obs_var)), (c.data_dim,))
        return out


def init(key: jax.Array, config: VAEConfig) -> VAEParams:
    """Random initial parameters (Flax defaults: LeCun-normal kernels, zero biases) in the compute
    dtype (float32, or float64 under ``jax_enable_x64``)."""
    if not isinstance(config, VAEConfig):
        raise ValueError(f"config must be a VAEConfig, got {type(config).__name__}.")
    dtype = float_dtype()
    ke, kd, kp = jax.random.split(key, 3)
    x0 = jnp.zeros((1, config.data_dim), dtype)
    z0 = jnp.zeros((1, config.latent_dim), dtype)
    cast = functools.partial(jax.tree.map, lambda a: a.astype(dtype))
    enc = cast(Encoder(config).init(ke, x0)["params"])
    dec = cast(Decoder(config).init(kd, z0)["params"])
    pri = priors.init_prior(kp, config.prior, config.latent_dim, config.n_components, config.data_dim, dtype)
    return VAEParams(encoder=enc, decoder=dec, prior=pri, config=config)


def num_params(params: VAEParams) -> dict:
    """Parameter counts ``{"encoder", "decoder", "prior", "total"}``."""
    count = lambda t: int(sum(np.prod(a.shape) for a in jax.tree.leaves(t)))  # noqa: E731
    out = {"encoder": count(params.encoder), "decoder": count(params.decoder), "prior": count(params.prior)}
    out["total"] = sum(out.values())
    return out


# --------------------------------------------------------------------------------------------
# raw (jit-friendly, unchecked) pieces


def _encode(params: VAEParams, x: jax.Array):
    return Encoder(params.config).apply({"params": params.encoder}, x)


def _decode_raw(params: VAEParams, z: jax.Array) -> jax.Array:
    """Decoder output for ``z (..., q)`` -> ``(..., D)`` (leading axes flattened for the networks)."""
    lead = z.shape[:-1]
    out = Decoder(params.config).apply({"params": params.decoder}, z.reshape(-1, z.shape[-1]))
    return out.reshape(*lead, out.shape[-1])


def _obs_log_var(params: VAEParams, dtype) -> jax.Array:
    c = params.config
    if c.variance == "fixed":
        return jnp.full((c.data_dim,), math.log(c.obs_var), dtype)
    floor = math.log(c.min_obs_var) if c.min_obs_var > 0 else -jnp.inf
    return jnp.maximum(params.decoder["log_var"], floor)


def _log_likelihood(params: VAEParams, x: jax.Array, out: jax.Array) -> jax.Array:
    """log p(x | z) from decoder output ``out (..., D)`` and ``x`` broadcastable to it; ``(...)``."""
    if params.config.likelihood == "bernoulli":
        # x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l), stable for large |l|.
        return jnp.sum(x * out - jax.nn.softplus(out), axis=-1)
    lv = _obs_log_var(params, out.dtype)
    return -0.5 * jnp.sum(_LOG_2PI + lv + (x - out) ** 2 * jnp.exp(-lv), axis=-1)


def _prior_log_prob(params: VAEParams, z: jax.Array) -> jax.Array:
    return priors.prior_log_prob(params.config.prior, params.prior, z, lambda u: _encode(params, u))


def _mean_image(params: VAEParams, out: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(out) if params.config.likelihood == "bernoulli" else out


# --------------------------------------------------------------------------------------------
# input checks (before any work; tracers pass through; device arrays stay on the device)


def _dtype(params: VAEParams):
    return jax.tree.leaves(params.encoder)[0].dtype


def check_shape(params: VAEParams, shape, *, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``shape`` is ``(N, D)``, ``(N, *image_shape)`` or, when ``C == 1``,
    ``(N, H, W)`` for this VAE. Works on static shapes, so also under ``jit``."""
    c = params.config
    shapes = [(c.data_dim,), tuple(c.image_shape)] + ([tuple(c.image_shape[:2])] if c.image_shape[2] == 1 else [])
    if len(shape) < 2 or tuple(shape[1:]) not in shapes:
        raise ValueError(
            f"{name} must have shape (N, {c.data_dim}) or (N, {', '.join(map(str, c.image_shape))}) for this VAE "
            f"(image_shape={c.image_shape}), got {tuple(shape)}."
        )


def _range_error(name: str, lo: float, hi: float) -> ValueError:
    return ValueError(
        f"{name} must lie in [0, 1] for the Bernoulli likelihood, got range [{lo:g}, {hi:g}]. Scale the data to [0, 1] "
        "(pixel / 255 for 8-bit images, e.g. jaxgen.data.to_float; / 16 for scikit-learn's digits), pass uint8 bytes "
        "(scaled by 1/255), or binarise them."
    )


def _check_device_values(params: VAEParams, x: jax.Array, name: str) -> None:
    """Finiteness (and [0, 1] for Bernoulli) of a concrete JAX array, by reductions on its device:
    only a few scalars come to the host, never the data."""
    if not jnp.issubdtype(x.dtype, jnp.number) and x.dtype != jnp.bool_:
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
    if x.dtype == jnp.uint8 or not jnp.issubdtype(x.dtype, jnp.inexact):
        lo_hi = None if x.dtype == jnp.uint8 else jnp.stack([jnp.min(x), jnp.max(x)]).astype(jnp.float32)
        n_bad = 0
    else:
        n_bad = int(jnp.sum(~jnp.isfinite(x)))
        lo_hi = jnp.stack([jnp.min(x), jnp.max(x)])
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} NaN or inf value(s); all entries must be finite.")
    if params.config.likelihood == "bernoulli" and lo_hi is not None:
        lo, hi = (float(v) for v in jax.device_get(lo_hi))
        if lo < 0.0 or hi > 1.0:
            raise _range_error(name, lo, hi)


def check_values(params: VAEParams, x, *, name: str = "x") -> None:
    """Check concrete data for this VAE without converting or copying it: shape (see
    :func:`check_shape`), finite values, and for the Bernoulli likelihood values in [0, 1] (uint8
    bytes are always valid: they are scaled by 1/255). NumPy input is checked on the host, JAX
    arrays on their device (a few scalars come back). Tracers are skipped: their values do not exist
    yet (under ``jit`` the check belongs to the caller, e.g. :func:`jaxgen.train.fit`).

    Raises:
      ValueError: what is wrong and how to fix it.
    """
    if isinstance(x, jax.core.Tracer):
        check_shape(params, x.shape, name=name)
        return
    arr = x if isinstance(x, jax.Array) else np.asarray(x)
    check_shape(params, arr.shape, name=name)
    if isinstance(arr, jax.Array):
        try:
            _check_device_values(params, arr, name)
        except jax.errors.ConcretizationTypeError:
            pass  # a concrete array closed over inside a jitted function: its reductions are traced too
        return
    if arr.dtype == np.uint8:
        return
    arr = check_data(arr.reshape(arr.shape[0], -1), name=name, dtype=_dtype(params))
    if params.config.likelihood == "bernoulli":
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise _range_error(name, lo, hi)


def prepare(params: VAEParams, x, *, name: str = "x") -> jax.Array:
    """Validate data for ``params`` and return it as a flat ``(N, D)`` JAX array in the params' dtype.

    Accepts ``(N, D)``, ``(N, H, W, C)`` = ``(N, *image_shape)``, or ``(N, H, W)`` when ``C == 1``.
    uint8 input is scaled by 1/255. For the Bernoulli likelihood every value must lie in [0, 1].
    A JAX array is checked and converted on its device (see :func:`check_values`).

    Raises:
      ValueError: wrong shape, non-finite values, values outside [0, 1] for the Bernoulli likelihood.
    """
    dtype = _dtype(params)
    if isinstance(x, jax.core.Tracer):  # under jit: no value checks, but the same shape check, scaling and dtype
        check_shape(params, x.shape, name=name)
        flat = x.reshape(x.shape[0], -1)
        return flat.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else flat.astype(dtype)
    if isinstance(x, jax.Array):
        check_values(params, x, name=name)
        flat = x.reshape(x.shape[0], -1)
        return flat.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else flat.astype(dtype)
    arr = np.asarray(x)
    check_shape(params, arr.shape, name=name)
    uint8 = arr.dtype == np.uint8
    arr = check_data(arr.reshape(arr.shape[0], -1), name=name, dtype=dtype)
    if uint8:
        arr = arr / np.asarray(255, arr.dtype)
    if params.config.likelihood == "bernoulli":
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise _range_error(name, lo, hi)
    return jnp.asarray(arr)


def _check_latent(params: VAEParams, z) -> jax.Array:
    if isinstance(z, jax.core.Tracer):
        return z
    q = params.config.latent_dim
    dtype = _dtype(params)
    if isinstance(z, jax.Array):  # checked on its device: one scalar comes back
        if z.ndim != 2 or z.shape[1] != q:
            raise ValueError(f"z must have shape (M, {q}) for this VAE (latent_dim={q}), got {z.shape}.")
        z = z.astype(dtype)
        if not bool(jnp.all(jnp.isfinite(z))):
            raise ValueError("z contains NaN or inf value(s); all entries must be finite.")
        return z
    return jnp.asarray(check_data(z, name="z", n_features=q, dtype=dtype))


# --------------------------------------------------------------------------------------------
# public pure functions


@jax.jit
def _encode_jit(params, x):
    return _encode(params, x)


def encode(params: VAEParams, x) -> tuple[jax.Array, jax.Array]:
    """The inference network: ``q(z | x) = N(mean, diag(exp(log_var)))``; returns ``(mean, log_var)``, each ``(N, q)``."""
    return _encode_jit(params, prepare(params, x))


@jax.jit
def _decode_jit(params, z):
    out = _decode_raw(params, z)
    if params.config.likelihood == "bernoulli":
        return {"logits": out}
    return {"mean": out, "log_var": jnp.broadcast_to(_obs_log_var(params, out.dtype), out.shape)}


def decode(params: VAEParams, z) -> dict:
    """Parameters of ``p(x | z)`` for ``z (M, q)``: ``{"logits" (M, D)}`` (Bernoulli) or
    ``{"mean" (M, D), "log_var" (M, D)}`` (Gaussian)."""
    return _decode_jit(params, _check_latent(params, z))


@jax.jit
def _decode_mean_jit(params, z):
    return _mean_image(params, _decode_raw(params, z))


def decode_mean(params: VAEParams, z) -> jax.Array:
    """``E[x | z]``, ``(M, D)``: pixel probabilities (Bernoulli) or means (Gaussian)."""
    return _decode_mean_jit(params, _check_latent(params, z))


@jax.jit
def _log_likelihood_jit(params, x, z):
    return _log_likelihood(params, x, _decode_raw(params, z))


def log_likelihood(params: VAEParams, x, z) -> jax.Array:
    """``log p(x | z)`` per row, ``(N,)``, for data ``x (N, D)`` and latents ``z (N, q)``."""
    return _log_likelihood_jit(params, prepare(params, x), _check_latent(params, z))


_prior_log_prob_jit = jax.jit(_prior_log_prob)


def prior_log_prob(params: VAEParams, z) -> jax.Array:
    """``log p(z)`` per row, ``(M,)``."""
    return _prior_log_prob_jit(params, _check_latent(params, z))


@functools.partial(jax.jit, static_argnames=("n", "mean"))
def _sample(key, params, n, mean):
    c = params.config
    dtype = jax.tree.leaves(params.encoder)[0].dtype
    kz, kx = jax.random.split(key)
    z = priors.prior_sample(kz, c.prior, params.prior, n, c.latent_dim, lambda u: _encode(params, u), dtype)
    out = _decode_raw(params, z)
    if mean:
        return _mean_image(params, out), z
    if c.likelihood == "bernoulli":
        return jax.random.bernoulli(kx, jax.nn.sigmoid(out)).astype(dtype), z
    return out + jnp.exp(0.5 * _obs_log_var(params, dtype)) * jax.random.normal(kx, out.shape, dtype), z


def sample(key: jax.Array, params: VAEParams, n: int, *, mean: bool = True) -> tuple[jax.Array, jax.Array]:
    """Draw ``n`` samples: ``z ~ p(z)``, then ``x = E[x | z]`` (``mean=True``, the usual image grid)
    or ``x ~ p(x | z)``. Returns ``(x (n, D), z (n, q))``."""
    return _sample(key, params, check_positive_int(n, "n"), bool(mean))


@jax.jit
def _reconstruct(params, x):
    return _mean_image(params, _decode_raw(params, _encode(params, x)[0]))


def reconstruct(params: VAEParams, x) -> jax.Array:
    """``E[x | z = mean(x)]``: decode the posterior mean, ``(N, D)``."""
    return _reconstruct(params, prepare(params, x))


@functools.partial(jax.jit, static_argnames=("n", "method"))
def _interpolate(params, x0, x1, n, method):
    z0, z1 = _encode(params, x0)[0], _encode(params, x1)[0]
    t = jnp.linspace(0.0, 1.0, n, dtype=z0.dtype)
    z = latent_path(z0, z1, t, method)
    return _mean_image(params, _decode_raw(params, z)), z


def interpolate(params: VAEParams, x0, x1, n: int = 8, method: str = "linear") -> tuple[jax.Array, jax.Array]:
    """Walk in latent space between the posterior means of ``x0`` and ``x1`` and decode.

    Args:
      x0, x1: ``(M, D)`` (or image-shaped) data, paired row by row.
      n: points per path, endpoints included (``n >= 2``).
      method: ``"linear"`` or ``"slerp"`` (great-circle path, keeps norms typical of a Gaussian prior).

    Returns:
      ``(images (M, n, D), z (M, n, q))``.
    """
    n = check_positive_int(n, "n", minimum=2)
    check_choice(method, "method", ("linear", "slerp"))
    x0, x1 = prepare(params, x0, name="x0"), prepare(params, x1, name="x1")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {x0.shape} and {x1.shape}.")
    return _interpolate(params, x0, x1, n, method)


def _draw_x(key, params: VAEParams, out: jax.Array) -> jax.Array:
    """``x ~ p(x | z)`` from decoder output ``out (..., D)``."""
    if params.config.likelihood == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(out)).astype(out.dtype)
    return out + jnp.exp(0.5 * _obs_log_var(params, out.dtype)) * jax.random.normal(key, out.shape, out.dtype)


@functools.partial(jax.jit, static_argnames=("n_iter",))
def _inpaint(key, params, x, observed, n_iter):
    c = params.config
    k_init, k_steps = jax.random.split(key)  # k_steps: the parent of the iterations' keys fold_in(k_steps, t)
    kz, kx = jax.random.split(k_init)
    z0 = priors.prior_sample(kz, c.prior, params.prior, x.shape[0], c.latent_dim, lambda u: _encode(params, u), x.dtype)
    x = jnp.where(observed, x, _draw_x(kx, params, _decode_raw(params, z0)))  # start from a draw of p(x)

    def step(t, x):
        kz, kx = jax.random.split(jax.random.fold_in(k_steps, t))
        mean, log_var = _encode(params, x)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(kz, mean.shape, mean.dtype)
        return jnp.where(observed, x, _draw_x(kx, params, _decode_raw(params, z)))

    return jax.lax.fori_loop(0, n_iter, step, x)


def inpaint(key: jax.Array, params: VAEParams, x, observed, *, n_samples: int = 1, n_iter: int = 50) -> jax.Array:
    """Fill in missing pixels by the pseudo-Gibbs chain of Rezende, Mohamed & Wierstra (2014).

    The missing pixels start from a draw of the model, ``x ~ p(x | z), z ~ p(z)``; each of the
    ``n_iter`` iterations then encodes the current image, draws ``z ~ q(z | x)``, draws a new image
    ``x' ~ p(x | z)`` and keeps ``x'`` at the missing pixels only. Observed pixels are never
    changed. With the exact posterior as ``q`` this is a Gibbs sampler of ``p(z, x_missing |
    x_observed)`` and the completions are draws of ``p(x_missing | x_observed)``; with an amortised
    ``q`` it is an approximation (the chain's stationary distribution is not exactly that).

    Args:
      key: the chain's randomness (the same key gives the same completions).
      x: ``(N, D)`` (or image-shaped) data as for :func:`encode`; the values at missing pixels are
        ignored but must be valid (e.g. in [0, 1] for the Bernoulli likelihood).
      observed: bool, True at observed pixels: one mask for every image, ``(D,)`` or
        ``image_shape`` (``(H, W)`` when ``C == 1``), or one per image, ``(N, D)`` or ``(N, *image_shape)``.
      n_samples: completions per image (independent chains).
      n_iter: iterations of the chain (0: the first draw of the model, untouched by the observed pixels).

    Returns:
      ``(N, n_samples, D)``: the completed images, ``x`` (as :func:`prepare` returns it) at the
      observed pixels, draws of ``p(x | z)`` (0/1 for the Bernoulli likelihood) elsewhere.
    """
    key = check_key(key)
    x = prepare(params, x)
    n_samples = check_positive_int(n_samples, "n_samples")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    N, D = x.shape
    c = params.config
    mask = observed if isinstance(observed, jax.Array) else np.asarray(observed)
    if mask.dtype != bool:
        raise ValueError(f"observed must be a boolean mask (True = observed pixel), got dtype {mask.dtype}.")
    one = [(D,), tuple(c.image_shape)] + ([tuple(c.image_shape[:2])] if c.image_shape[2] == 1 else [])
    if mask.shape in one:
        mask = jnp.broadcast_to(jnp.asarray(mask).reshape(D), (N, D))
    elif mask.shape in [(N, *s) for s in one]:
        mask = jnp.asarray(mask).reshape(N, D)
    else:
        raise ValueError(f"observed must have shape {' or '.join(map(str, one))} (one mask for every image) or "
                         f"(N, ...) of those with N = {N}, got {tuple(mask.shape)}.")
    rep = lambda a: jnp.repeat(a, n_samples, axis=0)  # noqa: E731  (sample s of image i is row i * n_samples + s)
    return _inpaint(key, params, rep(x), rep(mask), n_iter).reshape(N, n_samples, D)


def attribute_vector(params: VAEParams, x, labels, a, b) -> jax.Array:
    """Latent arithmetic: ``mean_{labels == b} mu(x) - mean_{labels == a} mu(x)``, ``(q,)``.

    Adding it to a latent mean moves an example "from attribute a towards attribute b"
    (e.g. a = thin, b = bold strokes; or two digit classes).
    """
    x = prepare(params, x)
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}.")
    for v, nm in ((a, "a"), (b, "b")):
        if not np.any(labels == v):
            raise ValueError(f"no example has label {nm}={v!r}; labels present: {sorted(np.unique(labels).tolist())}.")
    mu = encode(params, x)[0]  # stays on the device; only the masks come from the host
    return mu[jnp.asarray(labels == b)].mean(0) - mu[jnp.asarray(labels == a)].mean(0)


def apply_attribute(params: VAEParams, x, vector, alpha=1.0) -> jax.Array:
    """Decode ``mu(x) + alpha * vector``.

    Args:
      x: ``(N, D)`` data; vector: ``(q,)``; alpha: a scalar or ``(A,)`` strengths.

    Returns:
      ``(N, D)`` for a scalar alpha, ``(A, N, D)`` for a vector of them.
    """
    mu = encode(params, x)[0]
    if isinstance(vector, jax.Array):  # checked where it lives
        if vector.ndim != 1 or not bool(jnp.all(jnp.isfinite(vector))):
            raise ValueError(f"vector must be a finite 1-D array, got shape {vector.shape}.")
        v = vector.astype(mu.dtype)
    else:
        v = jnp.asarray(check_data(np.asarray(vector), name="vector", ndim=1), mu.dtype)
    if v.shape != (mu.shape[1],):
        raise ValueError(f"vector must have shape ({mu.shape[1]},), got {v.shape}.")
    al = np.asarray(alpha, dtype=float)
    if al.ndim > 1 or not np.all(np.isfinite(al)):
        raise ValueError(f"alpha must be a finite scalar or 1-D array, got {alpha!r}.")
    z = mu[None] + jnp.asarray(np.atleast_1d(al), mu.dtype)[:, None, None] * v
    out = decode_mean(params, z.reshape(-1, z.shape[-1])).reshape(z.shape[0], mu.shape[0], -1)
    return out[0] if al.ndim == 0 else out
