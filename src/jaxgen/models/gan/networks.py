"""Generator and discriminator networks (Flax linen), packing, sampling and latent interpolation.

Two families:

* **MLP** for flat data ``(N, D)`` (the 2-D mixtures): :class:`MLPGenerator` ``z (N, q) -> x (N, D)``
  (linear output) and :class:`MLPDiscriminator` ``(N', m * D) -> (N',)`` logits, with an optional
  maxout (``maxout > 1`` pieces per unit, as PacGAN's 2-D discriminator: 3 layers of 200 units
  with 5 pieces).
* **DCGAN** for images ``(N, H, W, C)`` in [0, 1] (H, W divisible by 4: 28 x 28 MNIST, C = 3
  stacked MNIST): :class:`DCGANGenerator` (dense -> (H/4, W/4) feature map -> two 4x4 stride-2
  transposed convolutions, batch norm + ReLU after each hidden layer, sigmoid output) and
  :class:`DCGANDiscriminator` (4x4 stride-2 convolutions + leaky ReLU(0.2), dense logit). The
  discriminator has **no batch norm**: each logit depends on its own input only, so the
  per-example input gradients of the gradient penalty and R1 are well defined.

**Packing** (PacGAN, Lin et al. 2018): :func:`pack` turns ``B`` samples into ``B / m`` discriminator
inputs; pack ``j`` holds samples ``j*m, ..., j*m + m - 1`` (consecutive rows), concatenated along
the feature axis for flat data and along the channel axis for images. Real and fake batches are
packed alike.

Generators carry their latent size and distribution, so :func:`sample` needs only the module, its
variables, a key and ``n``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models._latent import latent_path
from jaxgen.nn import MLP, get_activation
from jaxgen.nn.convolution import Conv, ConvTranspose
from jaxgen.validation import check_choice, check_positive_int

__all__ = [
    "LATENTS",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "pack",
    "unpack",
    "latent_sample",
    "generate",
    "sample",
    "interpolate",
]

LATENTS = ("normal", "uniform")  # z ~ N(0, I) or U(-1, 1)^q


# ------------------------------------------------------------------------------------ networks
class MLPGenerator(nn.Module):
    """``z (N, latent_dim) -> x (N, out_dim)``: ReLU (or ``activation``) hidden layers, linear output.

    Attributes:
      out_dim: D of the data. hidden: hidden widths (PacGAN's 2-D generator: 4 x 400).
      latent_dim, latent: the latent size q and distribution (one of :data:`LATENTS`).
    """

    out_dim: int = 2
    hidden: Sequence[int] = (400, 400, 400, 400)
    activation: str = "relu"
    latent_dim: int = 2
    latent: str = "normal"

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:  # ``train`` unused: no batch norm
        return MLP((*self.hidden, self.out_dim), self.activation, name="net")(z)


class MLPDiscriminator(nn.Module):
    """``x (N', F) -> (N',)`` logits; F = pack * D. Hidden layers are dense + activation, or
    maxout over ``maxout`` linear pieces when ``maxout > 1``."""

    hidden: Sequence[int] = (400, 400, 400, 400)
    activation: str = "relu"
    maxout: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        for i, f in enumerate(self.hidden):
            if self.maxout > 1:
                h = nn.Dense(int(f) * self.maxout, name=f"dense_{i}")(x)
                x = h.reshape(*h.shape[:-1], int(f), self.maxout).max(-1)
            else:
                x = act(nn.Dense(int(f), name=f"dense_{i}")(x))
        return nn.Dense(1, name="logit")(x)[..., 0]


class DCGANGenerator(nn.Module):
    """``z (N, latent_dim) -> images (N, H, W, C)`` in (0, 1).

    Dense to an ``(H/4, W/4, 2 * base)`` map, a 4x4 stride-2 transposed conv to ``base`` channels,
    another to ``C``; batch norm and ReLU after the dense layer and the first transposed conv,
    sigmoid at the output (data are in [0, 1]). ``train=True`` normalises with the batch's
    statistics and updates the running averages (``batch_stats``); ``train=False`` uses them.
    """

    image_shape: Sequence[int] = (28, 28, 1)
    base: int = 64
    latent_dim: int = 64
    latent: str = "normal"

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        H, W, C = (int(s) for s in self.image_shape)
        bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)  # noqa: E731
        x = nn.Dense((H // 4) * (W // 4) * 2 * self.base, name="project")(z)
        x = nn.relu(bn("bn_0")(x)).reshape(z.shape[0], H // 4, W // 4, 2 * self.base)
        x = ConvTranspose(self.base, (4, 4), strides=(2, 2), padding="SAME", name="deconv_0")(x)
        x = nn.relu(bn("bn_1")(x))
        x = ConvTranspose(C, (4, 4), strides=(2, 2), padding="SAME", name="deconv_1")(x)
        return nn.sigmoid(x)


class DCGANDiscriminator(nn.Module):
    """``images (N', H, W, pack * C) -> (N',)`` logits: 4x4 stride-2 convs with ``base`` and
    ``2 * base`` channels, leaky ReLU(0.2), no batch norm (see the module docstring), dense logit."""

    base: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.leaky_relu(Conv(self.base, (4, 4), strides=(2, 2), padding="SAME", name="conv_0")(x), 0.2)
        x = nn.leaky_relu(Conv(2 * self.base, (4, 4), strides=(2, 2), padding="SAME", name="conv_1")(x), 0.2)
        return nn.Dense(1, name="logit")(x.reshape(x.shape[0], -1))[..., 0]


# ------------------------------------------------------------------------------------- packing
def pack(x: jax.Array, m: int) -> jax.Array:
    """Group ``m`` consecutive samples into one discriminator input.

    Args:
      x: ``(B, D)`` flat samples or ``(B, H, W, C)`` images; B divisible by m.
      m: packing degree (1 returns ``x`` unchanged).

    Returns:
      ``(B / m, m * D)`` (row j = ``concat(x[j*m], ..., x[j*m + m - 1])``) or ``(B / m, H, W, m * C)``
      (the channels of the same m images, in order).
    """
    m = check_positive_int(m, "pack")
    B = x.shape[0]
    if B % m:
        raise ValueError(f"cannot pack {B} samples in groups of pack={m}: the batch must be divisible by pack.")
    if m == 1:
        return x
    if x.ndim == 2:
        return x.reshape(B // m, m * x.shape[1])
    if x.ndim == 4:
        _, H, W, C = x.shape
        return jnp.moveaxis(x.reshape(B // m, m, H, W, C), 1, 3).reshape(B // m, H, W, m * C)
    raise ValueError(f"pack expects (B, D) or (B, H, W, C) arrays, got shape {x.shape}.")


def unpack(x: jax.Array, m: int) -> jax.Array:
    """Inverse of :func:`pack`: ``(B / m, m * D) -> (B, D)``, ``(B / m, H, W, m * C) -> (B, H, W, C)``."""
    m = check_positive_int(m, "pack")
    if m == 1:
        return x
    if x.ndim == 2:
        return x.reshape(x.shape[0] * m, x.shape[1] // m)
    N, H, W, mC = x.shape
    return jnp.moveaxis(x.reshape(N, H, W, m, mC // m), 3, 1).reshape(N * m, H, W, mC // m)


# --------------------------------------------------------------------------- sampling and paths
def latent_sample(key: jax.Array, n: int, latent_dim: int, latent: str = "normal", dtype=jnp.float32) -> jax.Array:
    """``(n, latent_dim)`` draws of z: standard normal or uniform on [-1, 1]."""
    if latent == "normal":
        return jax.random.normal(key, (n, latent_dim), dtype)
    if latent == "uniform":
        return jax.random.uniform(key, (n, latent_dim), dtype, -1.0, 1.0)
    raise ValueError(f"latent must be one of {list(LATENTS)}, got {latent!r}.")


def generate(generator: nn.Module, variables: dict, z: jax.Array) -> jax.Array:
    """``G(z)`` in evaluation mode (batch norm from its running averages): ``(n, q) -> (n, ...)``."""
    return generator.apply(variables, z, train=False)


def sample(generator: nn.Module, variables: dict, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``n`` samples ``x = G(z)``, ``z`` from the generator's latent distribution.

    Args:
      generator: an :class:`MLPGenerator` or :class:`DCGANGenerator`.
      variables: its Flax variables ``{"params": ..., ["batch_stats": ...]}`` (e.g. the EMA ones
        of a trained :class:`~jaxgen.models.gan.GANTrainer` state).
      key: consumed by the latent draw. n: number of samples.

    Returns:
      ``(x (n, ...), z (n, q))``.
    """
    n = check_positive_int(n, "n")
    z = latent_sample(key, n, generator.latent_dim, generator.latent)
    return generate(generator, variables, z), z


def interpolate(z0, z1, ts, method: str = "linear") -> jax.Array:
    """Latent paths from ``z0`` to ``z1``.

    Args:
      z0, z1: ``(q,)`` or ``(M, q)`` latents of the same shape.
      ts: ``(T,)`` positions along the path (0 gives ``z0``, 1 gives ``z1``).
      method: ``"linear"`` (``(1 - t) z0 + t z1``) or ``"slerp"`` (spherical: ``sin((1-t) w) / sin w z0
        + sin(t w) / sin w z1`` with w the angle between them; keeps the norm when
        ``|z0| = |z1|``, which suits a Gaussian latent whose mass sits on a shell).

    Returns:
      ``(..., T, q)``: one path per row. Decode with :func:`generate` after reshaping to ``(-1, q)``.
    """
    check_choice(method, "method", ("linear", "slerp"))
    z0, z1, ts = jnp.asarray(z0), jnp.asarray(z1), jnp.asarray(ts, dtype=jnp.result_type(z0, float))
    if z0.shape != z1.shape or z0.ndim not in (1, 2):
        raise ValueError(f"z0 and z1 must have the same shape (q,) or (M, q), got {z0.shape} and {z1.shape}.")
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of positions, got shape {ts.shape}.")
    return latent_path(z0, z1, ts, method)
