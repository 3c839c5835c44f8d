"""The GAN trainer: generator and discriminator updates for :func:`jaxgen.train.fit_trainer`.

:class:`GANTrainer` is a frozen (hashable) dataclass of settings implementing the trainer contract:

* ``init(key, batch) -> GANState``: parameters of both networks, both Adam states, the EMA copy
  of the generator's variables.
* ``update(state, batch, key, step=None) -> (state, metrics)``: ``n_critic`` discriminator updates,
  each on its own real sub-batch of ``S = len(batch) / n_critic`` samples (:func:`jaxgen.train.split_batch`:
  sub-batch i holds rows i, i + k, ..., so no row leaves its device) and ``S`` fresh fakes, both
  packed into ``S / pack`` discriminator inputs, then one generator update on ``S`` fresh latents
  (``S / pack`` packed inputs), then the EMA update. Pure and jit-able.
* ``data_rows(d_batch)``: the rows of data one update takes when every discriminator update sees
  ``d_batch`` packed inputs: ``n_critic * pack * d_batch``.
* ``fingerprint()``: every setting (JSON-able). ``check_train_data(train_data)``: shape, dtype and
  range checks with a clear ``ValueError``.

**Data.** ``architecture="mlp"``: float rows ``(N, D)`` (``data_shape=(D,)``, default ``(2,)``).
``architecture="dcgan"``: float images ``(N, H, W, C)`` with values in [0, 1] (``data_shape=(H, W, C)``,
default ``(28, 28, 1)``; H and W divisible by 4). Integer images (e.g. MNIST's uint8 bytes) are
rejected with the hint to scale them by 1/255; ``(N, H, W)`` without a channel axis is rejected
with the hint to add one.

**Packing** (PacGAN, Lin et al. 2018, as their released code does it): each discriminator input
concatenates ``pack`` independent samples, and the discriminator keeps its batch of inputs, so a
step with ``d_batch`` inputs per critic update draws ``pack * d_batch`` real and as many fake
samples (and the generator step ``pack * d_batch`` latents). Feed batches of ``data_rows(d_batch)``
rows to get this; a batch of ``n_critic * d_batch`` rows instead gives the discriminator only
``d_batch / pack`` inputs (jaxgen's convention before issue 16).

**Keys.** The step key is the parent of the streams ``"d"`` (an indexed family: critic update i uses
``fold_in(d, i)``, itself the parent of ``"z"`` and ``"gp"``) and ``"g"`` (the generator's latents).

**EMA.** After each generator update ``ema <- decay * ema + (1 - decay) * G`` over all the
generator's variables (parameters and batch-norm running averages), via
``optax.incremental_update``; ``ema_decay=0`` makes the EMA the current generator.
:meth:`GANTrainer.sample` uses the EMA generator unless ``ema=False``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import keys
from jaxgen.train import split_batch
from jaxgen.models.gan import networks
from jaxgen.models.gan.objectives import (
    OBJECTIVES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from jaxgen.train.state import LoopState
from jaxgen.validation import check_choice, check_int_tuple, check_positive_float, check_positive_int

__all__ = ["ARCHITECTURES", "GANState", "GANTrainer", "ema_samples"]

ARCHITECTURES = ("mlp", "dcgan")


@flax.struct.dataclass
class GANState:
    """Everything that changes during training (a pytree).

    Attributes:
      g_vars: generator variables ``{"params": ..., ["batch_stats": ...]}``.
      d_params: discriminator parameters.
      g_opt, d_opt: the two optax (Adam) states; ``count`` says how many updates each network had.
      ema_vars: exponential moving average of ``g_vars`` (same structure).
    """

    g_vars: Any
    d_params: Any
    g_opt: Any
    d_opt: Any
    ema_vars: Any


@dataclasses.dataclass(frozen=True)
class GANTrainer:
    """A GAN's settings and its training update (see the module docstring).

    Attributes:
      objective: one of :data:`~jaxgen.models.gan.OBJECTIVES` (``minimax``, ``non_saturating``,
        ``wgan_gp``, ``hinge``).
      architecture: ``"mlp"`` (flat data) or ``"dcgan"`` (images).
      data_shape: shape of one datum; default ``(2,)`` (mlp) or ``(28, 28, 1)`` (dcgan).
      latent_dim: q; default 2 (mlp, as PacGAN's 2-D runs) or 64 (dcgan). latent: ``"normal"`` or ``"uniform"``.
      g_hidden, d_hidden, activation, d_maxout: MLP widths, activation and maxout pieces of D
        (1 = plain activation).
      conv_base: channels of the first DCGAN layer (the other has twice as many).
      g_lr, d_lr, betas: Adam learning rates and ``(b1, b2)``: ``(0.5, 0.999)`` as DCGAN,
        ``(0.0, 0.9)`` as WGAN-GP.
      decay_steps, decay_start: ``decay_steps=0`` keeps the learning rates constant; otherwise both
        stay constant for ``decay_start`` generator updates, then follow a cosine decay to
        ``final_lr_fraction`` of their value over ``decay_steps`` more, then stay there (the
        discriminator's schedule counts its own updates: ``n_critic`` times as many).
      n_critic: discriminator updates per generator update (each on its own real sub-batch).
      pack: PacGAN's packing degree m (1 = no packing); see **Packing** in the module docstring.
      gp_weight: lambda of the WGAN-GP gradient penalty (``wgan_gp`` only).
      r1_gamma: weight gamma of the R1 penalty on real data (0 = off; any objective).
      ema_decay: decay of the generator's EMA, in [0, 1).
    """

    objective: str = "non_saturating"
    architecture: str = "mlp"
    data_shape: tuple | None = None
    latent_dim: int | None = None
    latent: str = "normal"
    g_hidden: tuple = (400, 400, 400, 400)
    d_hidden: tuple = (400, 400, 400, 400)
    activation: str = "relu"
    d_maxout: int = 1
    conv_base: int = 64
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    betas: tuple = (0.5, 0.999)
    decay_steps: int = 0
    decay_start: int = 0
    final_lr_fraction: float = 0.0
    n_critic: int = 1
    pack: int = 1
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    ema_decay: float = 0.999

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        check_choice(self.objective, "objective", OBJECTIVES)
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.latent, "latent", networks.LATENTS)
        mlp = self.architecture == "mlp"
        default_shape = (2,) if mlp else (28, 28, 1)
        set_("data_shape", check_int_tuple(self.data_shape if self.data_shape is not None else default_shape,
                                           "data_shape"))
        if mlp and len(self.data_shape) != 1:
            raise ValueError(f"architecture='mlp' takes flat data: data_shape must be (D,), got {self.data_shape}.")
        if not mlp and (len(self.data_shape) != 3 or self.data_shape[0] % 4 or self.data_shape[1] % 4):
            raise ValueError("architecture='dcgan' takes images: data_shape must be (H, W, C) with H and W divisible "
                             f"by 4, e.g. (28, 28, 1), got {self.data_shape}.")
        set_("latent_dim", check_positive_int(self.latent_dim if self.latent_dim is not None else (2 if mlp else 64),
                                              "latent_dim"))
        set_("g_hidden", check_int_tuple(self.g_hidden, "g_hidden"))
        set_("d_hidden", check_int_tuple(self.d_hidden, "d_hidden"))
        from jaxgen.nn import get_activation

        get_activation(self.activation)
        check_positive_int(self.d_maxout, "d_maxout")
        check_positive_int(self.conv_base, "conv_base")
        check_positive_float(self.g_lr, "g_lr")
        check_positive_float(self.d_lr, "d_lr")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1) (Adam's b1, b2), got {self.betas!r}.")
        set_("betas", betas)
        check_positive_int(self.decay_steps, "decay_steps", minimum=0)
        check_positive_int(self.decay_start, "decay_start", minimum=0)
        if not (isinstance(self.final_lr_fraction, (int, float)) and 0.0 <= self.final_lr_fraction <= 1.0):
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction!r}.")
        check_positive_int(self.n_critic, "n_critic")
        check_positive_int(self.pack, "pack")
        check_positive_float(self.gp_weight, "gp_weight", allow_zero=True)
        check_positive_float(self.r1_gamma, "r1_gamma", allow_zero=True)
        if not (isinstance(self.ema_decay, (int, float)) and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}.")

    @classmethod
    def from_config(cls, settings, **fixed) -> "GANTrainer":
        """A trainer from an experiment's config group (a mapping, e.g. ``config.model``) whose keys
        are fields of this class, plus ``fixed`` fields the experiment does not expose (e.g.
        ``architecture="dcgan", data_shape=(28, 28, 1)``); ``fixed`` wins over ``settings``. A key
        that is not a field raises ``ValueError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {**dict(settings), **fixed}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"not GANTrainer settings: {unknown}; the fields are {sorted(fields)}.")
        return cls(**values)

    # ------------------------------------------------------------------------------ networks
    @property
    def generator(self):
        """The generator module (an :class:`~jaxgen.models.gan.MLPGenerator` or ``DCGANGenerator``)."""
        if self.architecture == "mlp":
            return networks.MLPGenerator(out_dim=self.data_shape[0], hidden=self.g_hidden, activation=self.activation,
                                         latent_dim=self.latent_dim, latent=self.latent)
        return networks.DCGANGenerator(image_shape=self.data_shape, base=self.conv_base, latent_dim=self.latent_dim,
                                       latent=self.latent)

    @property
    def discriminator(self):
        """The discriminator module; it takes packed inputs (see :func:`~jaxgen.models.gan.pack`)."""
        if self.architecture == "mlp":
            return networks.MLPDiscriminator(hidden=self.d_hidden, activation=self.activation, maxout=self.d_maxout)
        return networks.DCGANDiscriminator(base=self.conv_base)

    def _optimizers(self):
        b1, b2 = self.betas

        def lr(value, updates_per_step):
            if not self.decay_steps:
                return value
            cosine = optax.cosine_decay_schedule(value, self.decay_steps * updates_per_step, self.final_lr_fraction)
            if not self.decay_start:
                return cosine
            return optax.join_schedules([optax.constant_schedule(value), cosine], [self.decay_start * updates_per_step])

        return optax.adam(lr(self.g_lr, 1), b1, b2), optax.adam(lr(self.d_lr, self.n_critic), b1, b2)

    # ---------------------------------------------------------------------------- contract
    def fingerprint(self) -> dict:
        """Every setting, JSON-able (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def check_train_data(self, train_data) -> None:
        """Raise ``ValueError`` unless ``train_data`` is one float array of shape ``(N, *data_shape)``
        (images: values in [0, 1]) with at least ``pack * n_critic`` rows."""
        self._check_array(train_data, "train_data", values=True)
        if train_data.shape[0] < self.pack * self.n_critic:
            raise ValueError(f"train_data has {train_data.shape[0]} rows; one update needs at least "
                             f"pack * n_critic = {self.pack * self.n_critic}.")

    def data_rows(self, d_batch: int) -> int:
        """Rows of data one :meth:`update` takes when each of its ``n_critic`` discriminator updates
        sees ``d_batch`` packed inputs (``pack`` samples each): ``n_critic * pack * d_batch``."""
        return self.n_critic * self.pack * check_positive_int(d_batch, "d_batch")

    def _check_array(self, x, name: str, *, values: bool) -> None:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"{name} must be one array of shape (N, {', '.join(map(str, self.data_shape))}), "
                             f"got {type(x).__name__}.")
        shape, want = tuple(x.shape), self.data_shape
        if self.architecture == "dcgan" and len(shape) == 3 and want[-1] == 1 and shape[1:] == want[:2]:
            raise ValueError(f"{name} has shape {shape}: images need a channel axis, (N, H, W, C) = (N, *{want}); "
                             "use x[..., None].")
        if len(shape) != 1 + len(want) or shape[1:] != want:
            raise ValueError(f"{name} must have shape (N, {', '.join(map(str, want))}) for this GANTrainer "
                             f"(architecture={self.architecture!r}, data_shape={want}), got {shape}.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            hint = " (for uint8 images: x.astype('float32') / 255)" if self.architecture == "dcgan" else ""
            raise ValueError(f"{name} must be a float array{hint}, got dtype {x.dtype}.")
        if values and not isinstance(x, jax.core.Tracer):
            lo, hi = (float(v) for v in jax.device_get((jnp.min(x), jnp.max(x))))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"{name} contains NaN or infinite values.")
            if self.architecture == "dcgan" and (lo < 0.0 or hi > 1.0):
                raise ValueError(f"{name} images must have values in [0, 1] (the generator's output range), got "
                                 f"[{lo:g}, {hi:g}]; scale them, e.g. x / 255 for bytes.")

    def _check_batch(self, batch) -> int:
        self._check_array(batch, "batch", values=False)
        B = batch.shape[0]
        if B % (self.pack * self.n_critic):
            raise ValueError(f"the batch size {B} must be divisible by pack * n_critic = {self.pack} * {self.n_critic}"
                             f" = {self.pack * self.n_critic}: each of the n_critic sub-batches is packed in groups "
                             "of pack.")
        return B // self.n_critic

    def init(self, key: jax.Array, batch) -> GANState:
        """Initial state; ``batch`` (one training batch) fixes shapes and is checked.

        ``key`` is the parent of the streams ``"generator"`` and ``"discriminator"``.
        """
        B = self._check_batch(batch)
        k_g, k_d = keys.streams(key, "generator", "discriminator").values()
        G, D = self.generator, self.discriminator
        z = jnp.zeros((B, self.latent_dim), batch.dtype)
        g_vars = dict(G.init(k_g, z, train=False))
        x = networks.pack(jnp.zeros((B, *self.data_shape), batch.dtype), self.pack)
        d_params = D.init(k_d, x)["params"]
        g_tx, d_tx = self._optimizers()
        return GANState(g_vars=g_vars, d_params=d_params, g_opt=g_tx.init(g_vars["params"]),
                        d_opt=d_tx.init(d_params), ema_vars=jax.tree.map(jnp.copy, g_vars))

    def _fake(self, g_vars, z):
        """G(z) in training mode (batch statistics); returns ``(x, new batch_stats or None)``."""
        G = self.generator
        if "batch_stats" in g_vars:
            x, upd = G.apply(g_vars, z, train=True, mutable=["batch_stats"])
            return x, upd["batch_stats"]
        return G.apply(g_vars, z, train=True), None

    def _d_loss(self, d_params, real, fake, key):
        """Discriminator loss on packed real / fake inputs, with its parts as metrics."""
        D = self.discriminator

        def d_fn(v):
            return D.apply({"params": d_params}, v)

        r, f = d_fn(real), d_fn(fake)
        loss = discriminator_loss(self.objective, r, f)
        metrics = {"d_objective": loss, "d_real": jnp.mean(r), "d_fake": jnp.mean(f)}
        if self.objective == "wgan_gp":
            gp = gradient_penalty(d_fn, real, fake, key, self.gp_weight)
            loss, metrics["gp"] = loss + gp, gp
        if self.r1_gamma > 0:
            r1 = r1_penalty(d_fn, real, self.r1_gamma)
            loss, metrics["r1"] = loss + r1, r1
        metrics["d_loss"] = loss
        return loss, metrics

    def update(self, state: GANState, batch, key: jax.Array, step=None) -> tuple[GANState, dict]:
        """One training step: ``n_critic`` discriminator updates, one generator update, the EMA.

        Args:
          state: a :class:`GANState`. batch: ``(n_critic * S, *data_shape)`` real data, S divisible
            by ``pack`` (``S = pack * d_batch`` for ``d_batch`` discriminator inputs per critic update,
            see :meth:`data_rows`). key: this step's key. step: unused (accepted for the loop's contract).

        Returns:
          ``(state, metrics)``: metrics ``d_loss`` (with penalties), ``d_objective``, ``d_real`` and
          ``d_fake`` (mean logits), ``gp`` / ``r1`` when used (means over the critic updates), and
          ``g_loss``.
        """
        B = self._check_batch(batch)
        k_d, k_g = keys.streams(key, "d", "g").values()
        g_tx, d_tx = self._optimizers()
        m = self.pack
        reals = split_batch(batch, self.n_critic)  # (n_critic, B, ...): rows i, i + k, ... stay on their device

        def critic_step(carry, inp):
            d_params, d_opt = carry
            real, i = inp
            k_z, k_gp = keys.streams(jax.random.fold_in(k_d, i), "z", "gp").values()
            z = networks.latent_sample(k_z, B, self.latent_dim, self.latent, batch.dtype)
            fake = jax.lax.stop_gradient(self._fake(state.g_vars, z)[0])
            grads, metrics = jax.grad(self._d_loss, has_aux=True)(
                d_params, networks.pack(real, m), networks.pack(fake, m), k_gp)
            updates, d_opt = d_tx.update(grads, d_opt, d_params)
            return (optax.apply_updates(d_params, updates), d_opt), metrics

        (d_params, d_opt), d_metrics = jax.lax.scan(critic_step, (state.d_params, state.d_opt),
                                                    (reals, jnp.arange(self.n_critic)))
        metrics = jax.tree.map(jnp.mean, d_metrics)

        z = networks.latent_sample(k_g, B, self.latent_dim, self.latent, batch.dtype)
        D = self.discriminator

        def g_loss_fn(g_params):
            x, stats = self._fake({**state.g_vars, "params": g_params}, z)
            return generator_loss(self.objective, D.apply({"params": d_params}, networks.pack(x, m))), stats

        (g_loss, stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_vars["params"])
        updates, g_opt = g_tx.update(g_grads, state.g_opt, state.g_vars["params"])
        g_vars = {**state.g_vars, "params": optax.apply_updates(state.g_vars["params"], updates)}
        if stats is not None:
            g_vars["batch_stats"] = stats
        ema_vars = optax.incremental_update(g_vars, state.ema_vars, 1.0 - self.ema_decay)
        metrics["g_loss"] = g_loss
        return GANState(g_vars=g_vars, d_params=d_params, g_opt=g_opt, d_opt=d_opt, ema_vars=ema_vars), metrics

    # ------------------------------------------------------------------------------ sampling
    def sample(self, state: GANState | LoopState, key: jax.Array, n: int, *,
               ema: bool = True) -> tuple[jax.Array, jax.Array]:
        """``(x (n, *data_shape), z (n, q))`` from the EMA generator (``ema=False``: the current one),
        batch norm in evaluation mode. ``state``: a :class:`GANState`, or the :class:`LoopState` that
        :func:`jaxgen.train.fit_trainer` returns (its ``model`` is the GANState)."""
        state = _gan_state(state)
        return networks.sample(self.generator, state.ema_vars if ema else state.g_vars, key, n)


def _gan_state(state) -> GANState:
    if isinstance(state, LoopState):  # fit_trainer's state: the trainer's state is its model
        state = state.model
    if not isinstance(state, GANState):
        raise ValueError(f"state must be a GANState (GANTrainer.init) or the LoopState of fit_trainer, whose .model "
                         f"is one; got {type(state).__name__}.")
    return state


@functools.partial(jax.jit, static_argnums=(0, 3))
def ema_samples(trainer: GANTrainer, state: GANState | LoopState, key: jax.Array, n: int) -> jax.Array:
    """``n`` samples ``(n, *data_shape)`` of the EMA generator, one compiled program per (trainer, n).

    ``state``: a :class:`GANState` or the :class:`LoopState` of :func:`jaxgen.train.fit_trainer`."""
    return trainer.sample(state, key, n)[0]
