"""The VAE-GAN of Larsen, Sønderby, Larochelle & Winther (ICML 2016): a VAE whose reconstruction
error is measured in a discriminator's features, trained jointly with that discriminator.

Networks (images ``(N, H, W, C)`` in [0, 1]):

* **encoder** q(z|x): the conv VAE's encoder (:class:`jaxgen.models.vae.model.Encoder`: 4x4 stride-2
  convolutions ``conv_features``, a dense layer ``conv_dense``, linear heads ``mean`` and
  ``log_var``);
* **decoder = generator** Dec(z): the conv VAE's decoder (dense, transposed 4x4 stride-2
  convolutions, a 3x3 output convolution) with a sigmoid, so images lie in (0, 1). No batch norm:
  each image depends on its own z only;
* **discriminator** Dis(x) -> ``(logit (N,), features (N, k))``: 4x4 stride-2 convolutions
  ``d_features`` with leaky ReLU(0.2), a dense layer ``d_dense``, a dense logit; ``features`` are the
  pre-activation outputs of conv layer ``feature_layer`` (the paper's l-th layer; their code takes a
  convolution's output before its batch norm and ReLU), flattened.

Losses (means over the batch; Alg. 1 of the paper):

* ``L_prior = KL(q(z|x) || N(0, I))``;
* ``L_llike = -log N(Dis_l(x); Dis_l(x~), I) = 0.5 ||Dis_l(x) - Dis_l(x~)||^2 + k/2 log(2 pi)``, with
  ``x~ = Dec(z)``, ``z ~ q(z|x)`` (one reparameterised draw);
* ``L_GAN = log D(x) + log(1 - D(x~)) + log(1 - D(Dec(z_p)))``, ``z_p ~ N(0, I)``.

Updates, each network from its own loss only (:meth:`VAEGANTrainer.gradients`: one forward pass,
then each loss's cotangent pulled back to its own network; the other networks' parameters are
constants in each loss): the encoder on ``L_prior + L_llike``; the decoder on
``gamma * L_llike + L_dec_GAN``; the discriminator on ``L_dis``:

* ``L_dis = real_weight * (-log D(x)) + (1 - real_weight) * mean(-log(1 - D(x~)), -log(1 - D(x_p)))``.
  The paper's ``-L_GAN`` weighs the three terms equally (``real_weight = 1/3``, times 3); the
  released code (andersbll/autoencoding_beyond_pixels, ``model/aegan.py``) has ``real_vs_gen_weight``,
  0.5 by default (0.66 for CelebA), and splits the fake weight over the two fake batches, as here.
* ``L_dec_GAN``: ``decoder_gan="non_saturating"`` (default): ``-log D(x~) - log D(x_p)``;
  ``"minimax"``: ``log(1 - D(x~)) + log(1 - D(x_p))``, i.e. ``-L_GAN`` of the paper's text. **What
  the released code does**: the decoder's GAN gradient is the discriminator's gradient reversed
  (a shared copy of the decoder's parameters with weight ``-(1 - w)``), which is the minimax
  (saturating) form; its decoder gradient is ``w * grad(L_llike) + (1 - w) * grad(L_dec_GAN)`` with
  ``w = recon_vs_gan_weight`` (1e-5 for CelebA, on sums over the batch and 16384 features), i.e.
  ``gamma = w / (1 - w)`` here up to the feature count. The non-saturating form is the default
  because the saturating one gives the decoder no gradient while D wins, which on MNIST is early.
* **Equilibrium** (the released code's ``GradientDescent``, not in the paper): with the costs of
  the current step ``real = -log D(x)`` and ``fake = mean(-log(1 - D(x~)), -log(1 - D(x_p)))``, the
  discriminator's update is skipped when either is below ``equilibrium - margin`` (D too strong)
  and the decoder's whole update when either is above ``equilibrium + margin`` (D too weak); when
  both would be skipped, both run. Their values: equilibrium 0.68 (about log 2), margin 0.35.
  A skipped update leaves the parameters and the optimizer state unchanged. ``balance=False``
  turns it off.
* **Optimizer**: RMSProp (decay 0.9), learning rate 3e-4 for all three networks, batch size 64 (the
  paper's text; the code anneals the rate from 3.1e-4 to 1.6e-7 over 150 epochs, ``lr / batch_size``
  with per-batch sums; here it is constant). ``optimizer="adam"`` uses Adam (0.5, 0.999) instead.

**Data**: float images ``(N, *image_shape)`` in [0, 1], or uint8 bytes (scaled by 1/255 inside, so
that MNIST can stay on the device as bytes).

**Keys**: ``init``'s key is the parent of ``"encoder"``, ``"decoder"``, ``"discriminator"``;
``update``'s key the parent of ``"eps"`` (the reparameterisation noise) and ``"prior"`` (z_p).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import keys
from jaxgen.models._latent import PATHS, latent_path
from jaxgen.models.vae.model import Decoder, Encoder, VAEConfig
from jaxgen.nn.convolution import Conv
from jaxgen.validation import check_choice, check_positive_float, check_positive_int

__all__ = ["DECODER_GAN", "OPTIMIZERS", "Discriminator", "VAEGANState", "VAEGANTrainer", "encode", "reconstruct",
           "sample", "interpolate", "feature_nll"]

DECODER_GAN = ("non_saturating", "minimax")
OPTIMIZERS = ("rmsprop", "adam")
_LOG_2PI = math.log(2.0 * math.pi)


class Discriminator(nn.Module):
    """``images (N, H, W, C) -> (logit (N,), features (N, k))``; see the module docstring."""

    features: Sequence[int] = (32, 64)
    dense: int = 256
    feature_layer: int = -1

    @nn.compact
    def __call__(self, x):
        layer = self.feature_layer % len(self.features)
        feats = None
        for i, f in enumerate(self.features):
            x = Conv(int(f), (4, 4), strides=(2, 2), padding="SAME", name=f"conv_{i}")(x)
            if i == layer:
                feats = x.reshape(x.shape[0], -1)
            x = nn.leaky_relu(x, 0.2)
        x = nn.leaky_relu(nn.Dense(int(self.dense), name="dense")(x.reshape(x.shape[0], -1)), 0.2)
        return nn.Dense(1, name="logit")(x)[..., 0], feats


def feature_nll(f_x, f_rec):
    """``-log N(f_x; f_rec, I)`` per example: ``0.5 sum_j (f_x - f_rec)_j^2 + k/2 log(2 pi)``; inputs ``(N, k)``,
    output ``(N,)``."""
    return 0.5 * jnp.sum(jnp.square(f_x - f_rec), axis=-1) + 0.5 * f_x.shape[-1] * _LOG_2PI


@flax.struct.dataclass
class VAEGANState:
    """Everything that changes in training (a pytree), plus the settings (static) for the pure functions.

    Attributes:
      enc, dec, dis: parameters of the encoder, decoder and discriminator.
      enc_opt, dec_opt, dis_opt: their optax states.
      trainer: the :class:`VAEGANTrainer` (not a leaf).
    """

    enc: Any
    dec: Any
    dis: Any
    enc_opt: Any
    dec_opt: Any
    dis_opt: Any
    trainer: Any = flax.struct.field(pytree_node=False, default=None)


def _ints(value, name: str) -> tuple:
    seq = (value,) if isinstance(value, (int, np.integer)) else value
    try:
        return tuple(check_positive_int(int(v), f"{name} entries") for v in seq)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}.") from None


@dataclasses.dataclass(frozen=True)
class VAEGANTrainer:
    """A VAE-GAN's settings and its training update (the contract of :func:`jaxgen.train.fit_trainer`).

    Attributes:
      image_shape: ``(H, W, C)``, H and W divisible by ``2 ** len(conv_features)``.
      latent_dim: q. conv_features, conv_dense: the encoder's conv channels and dense width (the
        decoder mirrors them), as :class:`~jaxgen.models.vae.VAEConfig`.
      d_features, d_dense, feature_layer: the discriminator's conv channels, dense width and the
        index of the conv layer whose output is Dis_l (negative counts from the end).
      gamma: the weight of ``L_llike`` in the decoder's loss (> 0).
      decoder_gan: ``"non_saturating"`` or ``"minimax"`` (see the module docstring).
      real_weight: weight of the real term in the discriminator's loss, in (0, 1).
      balance, equilibrium, margin: the released code's equilibrium rule.
      optimizer, lr: ``"rmsprop"`` (decay 0.9) or ``"adam"`` (0.5, 0.999); one rate for all networks.
    """

    image_shape: tuple = (28, 28, 1)
    latent_dim: int = 16
    conv_features: tuple = (32, 64)
    conv_dense: int = 256
    d_features: tuple = (32, 64)
    d_dense: int = 256
    feature_layer: int = -1
    gamma: float = 1e-2
    decoder_gan: str = "non_saturating"
    real_weight: float = 0.5
    balance: bool = True
    equilibrium: float = 0.68
    margin: float = 0.35
    optimizer: str = "rmsprop"
    lr: float = 3e-4

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("image_shape", _ints(self.image_shape, "image_shape"))
        set_("conv_features", _ints(self.conv_features, "conv_features"))
        set_("d_features", _ints(self.d_features, "d_features"))
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), e.g. (28, 28, 1), got {self.image_shape}.")
        check_positive_int(self.latent_dim, "latent_dim")
        check_positive_int(self.conv_dense, "conv_dense")
        check_positive_int(self.d_dense, "d_dense")
        n = len(self.d_features)
        if isinstance(self.feature_layer, bool) or not isinstance(self.feature_layer, (int, np.integer)) \
                or not -n <= self.feature_layer < n:
            raise ValueError(f"feature_layer must index one of the {n} conv layers of the discriminator "
                             f"({-n}..{n - 1}), got {self.feature_layer!r}.")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)) or not (
                math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma (the weight of the feature-space reconstruction loss in the decoder's loss) "
                             f"must be a finite number > 0, got {self.gamma!r}.")
        check_choice(self.decoder_gan, "decoder_gan", DECODER_GAN)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        if not (isinstance(self.real_weight, (int, float)) and 0.0 < self.real_weight < 1.0):
            raise ValueError(f"real_weight must be in (0, 1), got {self.real_weight!r}.")
        check_positive_float(self.equilibrium, "equilibrium")
        check_positive_float(self.margin, "margin", allow_zero=True)
        check_positive_float(self.lr, "lr")

    @classmethod
    def from_config(cls, settings, **fixed) -> "VAEGANTrainer":
        """A trainer from a config group (a mapping of field names) plus ``fixed`` fields (which win);
        an unknown key raises ``ValueError`` naming the valid ones."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {**dict(settings), **fixed}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"not VAEGANTrainer settings: {unknown}; the fields are {sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    # ------------------------------------------------------------------------------ networks
    @property
    def vae_config(self) -> VAEConfig:
        """The conv VAE whose encoder and decoder networks this model uses."""
        return VAEConfig(image_shape=self.image_shape, latent_dim=self.latent_dim, architecture="conv",
                         conv_features=self.conv_features, conv_dense=self.conv_dense, activation="relu",
                         likelihood="bernoulli")

    @property
    def discriminator(self) -> Discriminator:
        return Discriminator(self.d_features, self.d_dense, self.feature_layer)

    def encoder_apply(self, enc, x):
        """``x (N, H, W, C) -> (mean (N, q), log_var (N, q))``."""
        return Encoder(self.vae_config).apply({"params": enc}, x.reshape(x.shape[0], -1))

    def decoder_apply(self, dec, z):
        """``z (N, q) -> images (N, H, W, C)`` in (0, 1)."""
        return jax.nn.sigmoid(Decoder(self.vae_config).apply({"params": dec}, z)).reshape(z.shape[0],
                                                                                          *self.image_shape)

    def discriminator_apply(self, dis, x):
        """``x (N, H, W, C) -> (logit (N,), features (N, k))``."""
        return self.discriminator.apply({"params": dis}, x)

    def _optimizer(self):
        if self.optimizer == "rmsprop":
            return optax.rmsprop(self.lr, decay=0.9)
        return optax.adam(self.lr, 0.5, 0.999)

    # ---------------------------------------------------------------------------- contract
    def fingerprint(self) -> dict:
        """Every setting, JSON-able."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def check_train_data(self, train_data) -> None:
        """``ValueError`` unless ``train_data`` is ``(N, *image_shape)`` floats in [0, 1] or uint8, all finite."""
        self._check_array(train_data, "train_data", values=True)

    def _check_array(self, x, name: str, *, values: bool) -> None:
        want = self.image_shape
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"{name} must be one array of shape (N, {', '.join(map(str, want))}), got "
                             f"{type(x).__name__}.")
        shape = tuple(x.shape)
        if len(shape) == 3 and want[-1] == 1 and shape[1:] == want[:2]:
            raise ValueError(f"{name} has shape {shape}: images need a channel axis, (N, *{want}); use x[..., None].")
        if len(shape) != 4 or shape[1:] != want:
            raise ValueError(f"{name} must have shape (N, {', '.join(map(str, want))}) (image_shape={want}), "
                             f"got {shape}.")
        if x.dtype == jnp.uint8:
            return
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name} must be floats in [0, 1] or uint8 bytes, got dtype {x.dtype}.")
        if values and not isinstance(x, jax.core.Tracer):
            lo, hi = (float(v) for v in jax.device_get((jnp.min(x), jnp.max(x))))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"{name} contains NaN or infinite values.")
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"{name} images must have values in [0, 1] (the decoder's sigmoid range), got "
                                 f"[{lo:g}, {hi:g}]; scale bytes by 1/255 (or pass them as uint8).")

    def _images(self, batch):
        self._check_array(batch, "batch", values=False)
        dtype = jnp.float32 if batch.dtype == jnp.uint8 else batch.dtype
        return batch.astype(dtype) / 255.0 if batch.dtype == jnp.uint8 else batch

    def init(self, key: jax.Array, batch) -> VAEGANState:
        """Initial state; ``batch`` fixes the dtype and is checked. ``key``: parent of the streams
        ``"encoder"``, ``"decoder"``, ``"discriminator"``."""
        x = self._images(batch)[:1]
        k_e, k_d, k_s = keys.streams(key, "encoder", "decoder", "discriminator").values()
        cfg = self.vae_config
        enc = Encoder(cfg).init(k_e, x.reshape(1, -1))["params"]
        dec = Decoder(cfg).init(k_d, jnp.zeros((1, self.latent_dim), x.dtype))["params"]
        dis = self.discriminator.init(k_s, x)["params"]
        tx = self._optimizer()
        return VAEGANState(enc=enc, dec=dec, dis=dis, enc_opt=tx.init(enc), dec_opt=tx.init(dec),
                           dis_opt=tx.init(dis), trainer=self)

    # ------------------------------------------------------------------------------ losses
    def loss_terms(self, enc, dec, dis, x, eps, z_p) -> dict:
        """All loss terms (batch means) at the given parameters.

        Args:
          enc, dec, dis: parameters. x: ``(B, *image_shape)`` floats in [0, 1]. eps: ``(B, q)`` the
            reparameterisation noise. z_p: ``(B, q)`` prior draws.

        Returns:
          dict: ``prior``, ``llike``, ``gan`` (L_GAN), ``dis`` (L_dis), ``dec_gan``, ``enc`` (L_prior +
          L_llike), ``dec`` (gamma L_llike + dec_gan), ``real_cost``, ``fake_cost``, ``recon_mse``.
        """
        mean, log_var = self.encoder_apply(enc, x)
        x_rec = self.decoder_apply(dec, self._z(mean, log_var, eps))
        x_p = self.decoder_apply(dec, z_p)
        return self._heads(mean, log_var, *self._dis3(dis, x, x_rec, x_p), x, x_rec)

    @staticmethod
    def _z(mean, log_var, eps):
        return mean + jnp.exp(0.5 * log_var) * eps

    def _dis3(self, dis, x, x_rec, x_p):
        """Dis on ``[x, x~, x_p]`` in one batch: ``(logits (3B,), features (3B, k))``."""
        return self.discriminator_apply(dis, jnp.concatenate([x, x_rec, x_p]))

    def _heads(self, mean, log_var, logits, feats, x, x_rec) -> dict:
        """The loss terms from the networks' outputs (see :meth:`loss_terms`)."""
        B = x.shape[0]
        l_x, l_rec, l_p = logits[:B], logits[B:2 * B], logits[2 * B:]
        prior = jnp.mean(0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1))
        llike = jnp.mean(feature_nll(feats[:B], feats[B:2 * B]))
        # -log D = softplus(-l), -log(1 - D) = softplus(l): stable forms of the cross-entropies
        real_cost = jnp.mean(jax.nn.softplus(-l_x))
        fake_rec, fake_p = jnp.mean(jax.nn.softplus(l_rec)), jnp.mean(jax.nn.softplus(l_p))
        fake_cost = 0.5 * (fake_rec + fake_p)
        if self.decoder_gan == "non_saturating":
            dec_gan = jnp.mean(jax.nn.softplus(-l_rec)) + jnp.mean(jax.nn.softplus(-l_p))
        else:
            dec_gan = -(fake_rec + fake_p)
        return {"prior": prior, "llike": llike, "gan": -(real_cost + fake_rec + fake_p),
                "dis": self.real_weight * real_cost + (1.0 - self.real_weight) * fake_cost,
                "dec_gan": dec_gan, "enc": prior + llike, "dec": self.gamma * llike + dec_gan,
                "real_cost": real_cost, "fake_cost": fake_cost,
                "recon_mse": jnp.mean(jnp.square(jax.lax.stop_gradient(x_rec) - x))}

    def _noise(self, key, x):
        k_eps, k_p = keys.streams(key, "eps", "prior").values()
        shape = (x.shape[0], self.latent_dim)
        return jax.random.normal(k_eps, shape, x.dtype), jax.random.normal(k_p, shape, x.dtype)

    def gradients(self, state: VAEGANState, batch, key: jax.Array):
        """Each network's gradient of its own loss: ``(g_enc, g_dec, g_dis, terms)``, with the noise of
        ``key`` as in :meth:`update`: ``g_enc`` of ``L_prior + L_llike`` w.r.t. the encoder, ``g_dec`` of
        ``gamma L_llike + L_dec_GAN`` w.r.t. the decoder, ``g_dis`` of ``L_dis`` w.r.t. the
        discriminator; the other networks are constants in each (equal to ``jax.grad`` of
        :meth:`loss_terms` w.r.t. one network at a time, tested).

        One forward pass serves the three: each network's pullback (``jax.vjp``) is applied to each
        loss's cotangent, and XLA drops the gradients nobody uses (the discriminator's parameter
        gradient of the decoder's loss, ...).
        """
        x = self._images(batch)
        eps, z_p = self._noise(key, x)
        (mean, log_var), enc_vjp = jax.vjp(lambda p: self.encoder_apply(p, x), state.enc)
        z, z_vjp = jax.vjp(lambda m, lv: self._z(m, lv, eps), mean, log_var)
        x_rec, rec_vjp = jax.vjp(self.decoder_apply, state.dec, z)
        x_p, p_vjp = jax.vjp(lambda p: self.decoder_apply(p, z_p), state.dec)
        (logits, feats), dis_vjp = jax.vjp(lambda p, a, b: self._dis3(p, x, a, b), state.dis, x_rec, x_p)
        outs = (mean, log_var, logits, feats)
        terms = self._heads(*outs, x, x_rec)

        def cotangent(name):  # d loss / d (mean, log_var, logits, feats)
            return jax.grad(lambda o: self._heads(*o, x, x_rec)[name])(outs)

        # encoder: L_prior + L_llike, through z = mean + sigma eps, the decoder's input and Dis_l's input
        c = cotangent("enc")
        _, d_rec, _ = dis_vjp((c[2], c[3]))
        dm, dlv = z_vjp(rec_vjp(d_rec)[1])
        g_enc = enc_vjp((c[0] + dm, c[1] + dlv))[0]
        # decoder: gamma L_llike + its GAN term, through the discriminator's inputs
        c = cotangent("dec")
        _, d_rec, d_p = dis_vjp((c[2], c[3]))
        g_dec = jax.tree.map(jnp.add, rec_vjp(d_rec)[0], p_vjp(d_p)[0])
        # discriminator: L_dis, its own parameters only
        c = cotangent("dis")
        g_dis = dis_vjp((c[2], c[3]))[0]
        return g_enc, g_dec, g_dis, terms

    def update(self, state: VAEGANState, batch, key: jax.Array, step=None) -> tuple[VAEGANState, dict]:
        """One step: the three updates from the same batch and noise, at the parameters before the step.

        Args:
          state: a :class:`VAEGANState`. batch: ``(B, *image_shape)`` floats in [0, 1] or uint8.
          key: parent of ``"eps"`` and ``"prior"``. step: unused.

        Returns:
          ``(state, metrics)``: ``prior``, ``llike``, ``gan``, ``dis``, ``dec_gan``, ``enc``, ``dec``,
          ``real_cost``, ``fake_cost``, ``recon_mse`` (see :meth:`loss_terms`), and ``dec_updated``,
          ``dis_updated`` (1 or 0: the equilibrium rule's decisions).
        """
        g_enc, g_dec, g_dis, terms = self.gradients(state, batch, key)
        tx = self._optimizer()

        def step_(params, grads, opt):
            updates, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt

        enc, enc_opt = step_(state.enc, g_enc, state.enc_opt)
        dec, dec_opt = step_(state.dec, g_dec, state.dec_opt)
        dis, dis_opt = step_(state.dis, g_dis, state.dis_opt)
        if self.balance:
            lo, hi = self.equilibrium - self.margin, self.equilibrium + self.margin
            real, fake = terms["real_cost"], terms["fake_cost"]
            dis_on = ~((real < lo) | (fake < lo))  # D too strong: let the decoder catch up
            dec_on = ~((real > hi) | (fake > hi))  # D too weak: let it catch up
            neither = ~(dis_on | dec_on)
            dis_on, dec_on = dis_on | neither, dec_on | neither
            pick = lambda on, new, old: jax.tree.map(lambda a, b: jnp.where(on, a, b), new, old)  # noqa: E731
            dec, dec_opt = pick(dec_on, (dec, dec_opt), (state.dec, state.dec_opt))
            dis, dis_opt = pick(dis_on, (dis, dis_opt), (state.dis, state.dis_opt))
        else:
            dis_on = dec_on = jnp.array(True)
        metrics = {**terms, "dec_updated": dec_on.astype(jnp.float32), "dis_updated": dis_on.astype(jnp.float32)}
        return VAEGANState(enc=enc, dec=dec, dis=dis, enc_opt=enc_opt, dec_opt=dec_opt, dis_opt=dis_opt,
                           trainer=self), metrics


# ------------------------------------------------------------------------------- pure functions
def _state(state) -> VAEGANTrainer:
    if not isinstance(state, VAEGANState) or not isinstance(state.trainer, VAEGANTrainer):
        raise ValueError(f"state must be a VAEGANState from VAEGANTrainer.init / fit_trainer, got {type(state).__name__}.")
    return state.trainer


def _images(state, x, name="x"):
    t = _state(state)
    x = jnp.asarray(x)
    t._check_array(x, name, values=True)
    return t._images(x)


@jax.jit
def _encode(state, x):
    return state.trainer.encoder_apply(state.enc, x)


def encode(state: VAEGANState, x) -> tuple[jax.Array, jax.Array]:
    """q(z|x): ``(mean (N, q), log_var (N, q))`` of images ``x (N, *image_shape)`` (floats in [0, 1] or uint8)."""
    return _encode(state, _images(state, x))


@jax.jit
def _reconstruct(state, x):
    return state.trainer.decoder_apply(state.dec, state.trainer.encoder_apply(state.enc, x)[0])


def reconstruct(state: VAEGANState, x) -> jax.Array:
    """``Dec(E[z|x])``: ``(N, *image_shape)`` in (0, 1)."""
    return _reconstruct(state, _images(state, x))


@functools.partial(jax.jit, static_argnums=(2,))
def _sample(key, state, n):
    z = jax.random.normal(key, (n, state.trainer.latent_dim), jax.tree.leaves(state.dec)[0].dtype)
    return state.trainer.decoder_apply(state.dec, z), z


def sample(key: jax.Array, state: VAEGANState, n: int) -> tuple[jax.Array, jax.Array]:
    """``(x (n, *image_shape), z (n, q))``: ``x = Dec(z)``, ``z ~ N(0, I)`` (``key`` consumed by the draw)."""
    _state(state)
    return _sample(key, state, check_positive_int(n, "n"))


def interpolate(state: VAEGANState, x0, x1, n: int = 8, method: str = "linear") -> tuple[jax.Array, jax.Array]:
    """Decode the path between the posterior means of ``x0`` and ``x1`` (each ``(M, *image_shape)``).

    Returns:
      ``(images (M, n, *image_shape), z (M, n, q))``, t from 0 to 1 (:func:`~jaxgen.models._latent.latent_path`).
    """
    check_choice(method, "method", PATHS)
    n = check_positive_int(n, "n", minimum=2)
    m0, m1 = encode(state, x0)[0], encode(state, x1)[0]
    if m0.shape != m1.shape:
        raise ValueError(f"x0 and x1 must hold as many images, got {m0.shape[0]} and {m1.shape[0]}.")
    z = latent_path(m0, m1, jnp.linspace(0.0, 1.0, n, dtype=m0.dtype), method)
    t = state.trainer
    return t.decoder_apply(state.dec, z.reshape(-1, t.latent_dim)).reshape(*z.shape[:2], *t.image_shape), z
