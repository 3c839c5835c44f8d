"""FactorVAE (Kim & Mnih 2018): a VAE with a total-correlation penalty estimated by a discriminator.

The VAE maximises ``ELBO - gamma * TC(z)``, ``TC(z) = KL(q(z) || prod_j q(z_j))``, estimated by the
density-ratio trick: a discriminator ``D`` is trained to tell codes ``z ~ q(z)`` (one sample of
q(z|x) per image) from codes whose dimensions were permuted independently across a batch (samples
of ``prod_j q(z_j)``), and ``TC ~ E_q(z)[log D(z) / (1 - D(z))]``, the mean of D's logit on the
VAE's codes (D outputs one logit here; the paper's two softmax outputs are the same family).

:class:`FactorVAETrainer` is a frozen dataclass of settings implementing the trainer contract of
:mod:`jaxgen.train.trainer` (see :func:`jaxgen.train.fit_trainer`):

* ``init(key, batch) -> FactorVAEState``: VAE parameters (:class:`~jaxgen.models.vae.VAEParams`),
  discriminator parameters, both Adam states.
* ``update(state, batch, key, step=None) -> (state, metrics)``: Kim & Mnih's Algorithm 2 on a batch of
  ``2 B`` images split in two halves with :func:`jaxgen.train.split_batch` (rows 0, 2, 4, ... and
  1, 3, 5, ...): one VAE update on the first half (loss ``-ELBO + gamma * TC``, D held fixed), then
  one discriminator update on the first half's codes (label "joint") and the permuted codes of the
  second half (label "product of marginals"), the VAE held fixed (its codes under ``stop_gradient``).
* ``fingerprint()``, ``check_train_data(train_data)``, ``from_config(settings, **fixed)``.

**Paper settings** (Kim & Mnih 2018, Appendix / Sec. 4, dSprites): VAE Adam lr 1e-4, betas
(0.9, 0.999); discriminator Adam lr 1e-4, betas (0.5, 0.9); D an MLP of 6 hidden layers of 1000
units with leaky ReLU (slope 0.2); batch 64 for the VAE; 3e5 updates. ``gamma = 35`` is the default
here: the value of the paper's 2D Shapes (dSprites) traversals as we recall it; the paper could not
be consulted offline to confirm it. Other values in use: Locatello et al. (2019) sweep gamma in
{10, 20, 30, 40, 50, 100}; a widely used PyTorch re-implementation defaults to 6.4 for dSprites. Set
``gamma`` explicitly when it matters. The defaults below are the paper's except ``d_hidden``
(the paper's 6 x 1000 is ``d_hidden=(1000,) * 6``; the default 3 x 256 is for CPU runs).

**Keys.** The step key is the parent of the streams ``"binarize"`` (split in two, one per half),
``"vae"`` (the reparameterisation noise of the first half), ``"codes"`` (noise of the second half's
codes) and ``"permute"`` (one independent permutation per latent dimension).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxgen import keys
from jaxgen.models.vae.model import VAEConfig, VAEParams, _decode_raw, _encode, _log_likelihood, check_values, init
from jaxgen.models.vae.objectives import _kl_normal
from jaxgen.train import split_batch
from jaxgen.validation import check_int_tuple, check_positive_float

__all__ = ["FactorVAEState", "FactorVAETrainer", "LatentDiscriminator", "permute_dims"]


class LatentDiscriminator(nn.Module):
    """``(M, q) -> (M,)`` logits ``log D(z) / (1 - D(z))``: an MLP with leaky ReLU (Kim & Mnih's D)."""

    hidden: tuple
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, z):
        h = z
        for i, width in enumerate(self.hidden):
            h = nn.leaky_relu(nn.Dense(width, name=f"dense_{i}")(h), self.negative_slope)
        return nn.Dense(1, name="logit")(h)[:, 0]


def permute_dims(key: jax.Array, z: jax.Array) -> jax.Array:
    """``z (M, q)`` with each column permuted independently across the M rows (Kim & Mnih's
    Algorithm 1): every marginal's values are kept, the dependence between dimensions is broken,
    so the rows are samples of ``prod_j q(z_j)``. ``key`` is the parent of an indexed family (one
    permutation per dimension)."""
    cols = jax.vmap(lambda k, c: jax.random.permutation(k, c))(jax.random.split(key, z.shape[1]), z.T)
    return cols.T


@flax.struct.dataclass
class FactorVAEState:
    """Everything that changes during training (a pytree).

    Attributes:
      vae: the VAE's :class:`~jaxgen.models.vae.VAEParams`.
      d_params: the discriminator's parameters.
      vae_opt, d_opt: the two optax (Adam) states.
    """

    vae: VAEParams
    d_params: dict
    vae_opt: optax.OptState
    d_opt: optax.OptState


def _betas(value, name: str) -> tuple:
    betas = tuple(float(b) for b in value)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{name} must be two numbers in [0, 1) (Adam's b1, b2), got {value!r}.")
    return betas


@dataclasses.dataclass(frozen=True)
class FactorVAETrainer:
    """FactorVAE's settings and its training update (see the module docstring).

    Attributes:
      vae: the :class:`~jaxgen.models.vae.VAEConfig` (normal prior: the ELBO's KL is analytic).
      gamma: weight of the total-correlation penalty, >= 0 (0: a plain VAE plus an idle D).
      d_hidden: the discriminator's hidden widths (paper: ``(1000,) * 6``).
      d_negative_slope: leaky-ReLU slope of D (paper: 0.2).
      vae_lr, vae_betas: the VAE's Adam (paper: 1e-4, (0.9, 0.999)).
      d_lr, d_betas: the discriminator's Adam (paper: 1e-4, (0.5, 0.9)).
      binarize: draw ``x ~ Bernoulli(pixels)`` afresh every step (off: the sprites are binary already).
    """

    vae: VAEConfig = VAEConfig(image_shape=(64, 64, 1), latent_dim=10)
    gamma: float = 35.0
    d_hidden: tuple = (256, 256, 256)
    d_negative_slope: float = 0.2
    vae_lr: float = 1e-4
    vae_betas: tuple = (0.9, 0.999)
    d_lr: float = 1e-4
    d_betas: tuple = (0.5, 0.9)
    binarize: bool = False

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if not isinstance(self.vae, VAEConfig):
            raise ValueError(f"vae must be a VAEConfig, got {type(self.vae).__name__}.")
        if self.vae.prior != "normal":
            raise ValueError(f"FactorVAE uses the normal prior (an analytic KL), got prior={self.vae.prior!r}.")
        set_("gamma", check_positive_float(self.gamma, "gamma", allow_zero=True))
        set_("d_hidden", check_int_tuple(self.d_hidden, "d_hidden"))
        set_("d_negative_slope", check_positive_float(self.d_negative_slope, "d_negative_slope", allow_zero=True))
        set_("vae_lr", check_positive_float(self.vae_lr, "vae_lr"))
        set_("d_lr", check_positive_float(self.d_lr, "d_lr"))
        set_("vae_betas", _betas(self.vae_betas, "vae_betas"))
        set_("d_betas", _betas(self.d_betas, "d_betas"))
        if not isinstance(self.binarize, bool):
            raise ValueError(f"binarize must be True or False, got {self.binarize!r}.")

    @classmethod
    def from_config(cls, settings, **fixed) -> "FactorVAETrainer":
        """A trainer from a config group (a mapping whose keys are fields of this class) plus ``fixed``
        fields (e.g. ``vae=VAEConfig(...)``); ``fixed`` wins. An unknown key raises ``ValueError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {**dict(settings), **fixed}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"not FactorVAETrainer settings: {unknown}; the fields are {sorted(fields)}.")
        return cls(**values)

    @property
    def discriminator(self) -> LatentDiscriminator:
        return LatentDiscriminator(hidden=self.d_hidden, negative_slope=self.d_negative_slope)

    def _optimizers(self):
        return optax.adam(self.vae_lr, *self.vae_betas), optax.adam(self.d_lr, *self.d_betas)

    # ---------------------------------------------------------------------------- contract
    def fingerprint(self) -> dict:
        """Every setting, JSON-able (tuples as lists, the VAE config as a dict)."""
        out = {}
        for k, v in dataclasses.asdict(self).items():
            if isinstance(v, dict):
                v = {a: (list(b) if isinstance(b, tuple) else b) for a, b in v.items()}
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def _dummy_params(self, dtype=jnp.float32) -> VAEParams:
        """Parameters with no weights but this config and dtype: enough for the VAE's data checks."""
        return VAEParams(encoder={"dtype": jnp.zeros((), dtype)}, decoder={}, prior={}, config=self.vae)

    def check_train_data(self, train_data) -> None:
        """Raise ``ValueError`` unless ``train_data`` is one array of images this VAE takes (shape
        ``(N, D)`` or ``(N, *image_shape)``; uint8 bytes, or floats in [0, 1] for Bernoulli) with at
        least 2 rows (the update splits each batch in two)."""
        if not hasattr(train_data, "shape"):
            raise ValueError(f"train_data must be one array of images, got {type(train_data).__name__}.")
        check_values(self._dummy_params(), train_data, name="train_data")
        if train_data.shape[0] < 2:
            raise ValueError("train_data needs at least 2 rows: each batch is split in two halves.")

    def _check_batch(self, batch) -> None:
        if batch.shape[0] % 2:
            raise ValueError(f"FactorVAE splits each batch in two halves (the VAE's and the permuted codes'): the "
                             f"batch size must be even, got {batch.shape[0]}.")

    def init(self, key: jax.Array, batch) -> FactorVAEState:
        """Initial state; ``batch`` (one training batch, even size) is checked. ``key`` is the parent of
        the streams ``"vae"`` and ``"discriminator"``."""
        self._check_batch(batch)
        k_vae, k_d = keys.streams(key, "vae", "discriminator").values()
        params = init(k_vae, self.vae)
        dtype = jax.tree.leaves(params.encoder)[0].dtype
        d_params = self.discriminator.init(k_d, jnp.zeros((1, self.vae.latent_dim), dtype))["params"]
        vae_tx, d_tx = self._optimizers()
        return FactorVAEState(vae=params, d_params=d_params, vae_opt=vae_tx.init(params), d_opt=d_tx.init(d_params))

    def _prepare(self, x, key, dtype):
        x = x.reshape(x.shape[0], -1)
        x = x.astype(dtype) / 255.0 if x.dtype == jnp.uint8 else x.astype(dtype)
        return jax.random.bernoulli(key, x).astype(dtype) if self.binarize else x

    def _codes(self, params: VAEParams, x, key):
        mean, log_var = _encode(params, x)
        return mean, log_var, mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)

    def vae_loss(self, params: VAEParams, d_params, x, key):
        """``(-ELBO + gamma * TC, (metrics, z))`` on flat data ``x (B, D)`` in [0, 1]; ``z (B, q)``."""
        mean, log_var, z = self._codes(params, x, key)
        rec = jnp.mean(_log_likelihood(params, x, _decode_raw(params, z)))
        kl = jnp.mean(_kl_normal(mean, log_var))
        tc = jnp.mean(self.discriminator.apply({"params": d_params}, z))
        elbo = rec - kl
        return -elbo + self.gamma * tc, ({"elbo": elbo, "recon": rec, "kl": kl, "tc": tc}, z)

    def d_loss(self, d_params, z_joint, z_perm):
        """Logistic loss of D: codes of q(z) labelled 1, permuted codes labelled 0; ``(loss, accuracy)``."""
        D = self.discriminator
        lj, lp = D.apply({"params": d_params}, z_joint), D.apply({"params": d_params}, z_perm)
        loss = 0.5 * (jnp.mean(optax.sigmoid_binary_cross_entropy(lj, jnp.ones_like(lj)))
                      + jnp.mean(optax.sigmoid_binary_cross_entropy(lp, jnp.zeros_like(lp))))
        accuracy = 0.5 * (jnp.mean(lj > 0) + jnp.mean(lp < 0))
        return loss, accuracy

    def update(self, state: FactorVAEState, batch, key: jax.Array, step=None) -> tuple[FactorVAEState, dict]:
        """One FactorVAE step (see the module docstring).

        Args:
          batch: ``(2 B, D)`` or ``(2 B, *image_shape)`` images (uint8 bytes or floats in [0, 1]).
          key: this step's key. step: unused (accepted for the loop's contract).

        Returns:
          ``(state, metrics)``: ``loss`` (the VAE's ``-ELBO + gamma TC``), ``elbo``, ``recon``, ``kl``,
          ``tc`` (D's estimate, before the updates), ``d_loss`` and ``d_accuracy`` (before D's update).
        """
        self._check_batch(batch)
        dtype = jax.tree.leaves(state.vae.encoder)[0].dtype
        k_bin, k_z, k_codes, k_perm = keys.streams(key, "binarize", "vae", "codes", "permute").values()
        k_bin1, k_bin2 = jax.random.split(k_bin)
        halves = split_batch(batch, 2)
        x1, x2 = self._prepare(halves[0], k_bin1, dtype), self._prepare(halves[1], k_bin2, dtype)
        vae_tx, d_tx = self._optimizers()

        vae_grad = jax.value_and_grad(self.vae_loss, has_aux=True)  # w.r.t. the VAE only: D is fixed here
        (loss, (metrics, z1)), grads = vae_grad(state.vae, state.d_params, x1, k_z)
        updates, vae_opt = vae_tx.update(grads, state.vae_opt, state.vae)
        params = optax.apply_updates(state.vae, updates)

        z2 = self._codes(params, x2, k_codes)[2]
        z_joint, z_perm = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(permute_dims(k_perm, z2))
        (d_loss, d_acc), d_grads = jax.value_and_grad(self.d_loss, has_aux=True)(state.d_params, z_joint, z_perm)
        d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)
        metrics = {"loss": loss, **metrics, "d_loss": d_loss, "d_accuracy": d_acc}
        return FactorVAEState(vae=params, d_params=d_params, vae_opt=vae_opt, d_opt=d_opt), metrics
