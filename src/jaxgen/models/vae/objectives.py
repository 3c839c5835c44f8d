"""VAE bounds and estimators of log p(x), and the training loss.

* :func:`elbo`: ``E_q[log p(x|z)] - beta KL(q(z|x) || p(z))`` with one reparameterised sample; the
  KL is analytic for the standard normal prior and a one-sample Monte Carlo term otherwise.
* :func:`iwae_bound`: ``E[log (1/k) sum_i p(x, z_i) / q(z_i | x)]`` (Burda et al. 2016), one draw of
  the k samples; ``iwae_bound(k=1)`` is the ELBO with Monte Carlo KL, and the bound tightens with k.
* :func:`log_prob`: the k-sample importance-sampling estimate of log p(x) (Burda et al.'s test
  protocol, k = 5000), chunked over data and over samples with a running logsumexp so that memory
  is bounded by ``batch_size * k_chunk * D`` however large k is.
* :func:`loss_fn`: ``(params, batch, key) -> (loss, metrics)`` for :mod:`jaxgen.train`: negative
  ELBO / beta-ELBO with linear KL warm-up / IWAE(k) / beta-TCVAE, averaged over the batch, with
  dynamic binarisation inside (a fresh Bernoulli draw of the pixels per step from the step key).
* :func:`tc_decomposition`: the KL term of the ELBO split into index-code mutual information,
  total correlation and dimension-wise KL (Chen et al. 2018) with the minibatch-weighted sampling
  estimator: the beta-TCVAE's penalty.

All values are in nats per example; ``log_prob`` is a log-likelihood (negative number for
binarised MNIST), report ``-log_prob`` as the NLL.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxgen.models.vae.model import (VAEParams, _decode_raw, _encode, _log_likelihood, _prior_log_prob, check_shape,
                                     check_values, prepare)
from jaxgen.models.vae.priors import diag_normal_log_prob

_LOG_2PI = math.log(2.0 * math.pi)
from jaxgen.validation import check_choice, check_positive_float, check_positive_int

__all__ = ["OBJECTIVES", "Objective", "elbo", "elbo_terms", "iwae_bound", "log_prob", "kl_weight", "loss_fn",
           "tc_decomposition"]

OBJECTIVES = ("elbo", "iwae", "beta_tcvae")


def _kl_normal(mean, log_var):
    """KL(N(mean, diag exp(log_var)) || N(0, I)), summed over the last axis."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def _elbo_terms(params: VAEParams, x, key):
    """``(log p(x|z) (N,), KL (N,))`` with one reparameterised sample z."""
    mean, log_var = _encode(params, x)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * eps
    rec = _log_likelihood(params, x, _decode_raw(params, z))
    if params.config.prior == "normal":
        kl = _kl_normal(mean, log_var)
    else:  # no closed form for a mixture prior: the single-sample estimate log q(z|x) - log p(z)
        kl = diag_normal_log_prob(z, mean, log_var) - _prior_log_prob(params, z)
    return rec, kl


def _log_weights(params: VAEParams, x, mean, log_var, eps):
    """``log p(x, z) - log q(z | x)`` for ``z = mean + std * eps``, ``eps (k, N, q)`` -> ``(k, N)``."""
    z = mean + jnp.exp(0.5 * log_var) * eps
    log_q = diag_normal_log_prob(z, mean, log_var)
    return _log_likelihood(params, x, _decode_raw(params, z)) + _prior_log_prob(params, z) - log_q


def _iwae(params: VAEParams, x, key, k: int):
    mean, log_var = _encode(params, x)
    eps = jax.random.normal(key, (k, *mean.shape), mean.dtype)
    return jax.nn.logsumexp(_log_weights(params, x, mean, log_var, eps), axis=0) - math.log(k)


@jax.jit
def _elbo_jit(params, x, key, beta):
    rec, kl = _elbo_terms(params, x, key)
    return rec - beta * kl


def elbo(params: VAEParams, x, key: jax.Array, *, beta: float = 1.0) -> jax.Array:
    """Per-example (beta-)ELBO, ``(N,)`` nats, one reparameterised sample (``beta=1`` is the ELBO)."""
    beta = check_positive_float(beta, "beta")
    return _elbo_jit(params, prepare(params, x), key, beta)


_elbo_terms_jit = jax.jit(_elbo_terms)
_iwae_jit = jax.jit(_iwae, static_argnames="k")


def elbo_terms(params: VAEParams, x, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(reconstruction log p(x|z) (N,), KL (N,))`` of :func:`elbo`, one sample."""
    return _elbo_terms_jit(params, prepare(params, x), key)


def iwae_bound(params: VAEParams, x, key: jax.Array, k: int) -> jax.Array:
    """Per-example IWAE bound with ``k`` importance samples, ``(N,)`` nats (all k at once: use
    :func:`log_prob` for large k)."""
    k = check_positive_int(k, "k")
    return _iwae_jit(params, prepare(params, x), key, k)


@functools.partial(jax.jit, static_argnames=("k", "k_chunk"))
def _log_prob_batched(params, xb, key, k: int, k_chunk: int):
    """``xb (B, bs, D)`` -> ``(B, bs)``: per batch, scan over ceil(k / k_chunk) sample chunks."""
    n_chunks = -(-k // k_chunk)

    def one_batch(args):
        x, kb = args
        mean, log_var = _encode(params, x)
        bs = x.shape[0]

        def body(carry, i):
            m, s = carry
            eps = jax.random.normal(jax.random.fold_in(kb, i), (k_chunk, *mean.shape), mean.dtype)
            lw = _log_weights(params, x, mean, log_var, eps)
            valid = (i * k_chunk + jnp.arange(k_chunk)) < k  # the last chunk may overhang k
            lw = jnp.where(valid[:, None], lw, -jnp.inf)
            m_new = jnp.maximum(m, jnp.max(lw, axis=0))
            s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(lw - m_new), axis=0)
            return (m_new, s), None

        init = (jnp.full((bs,), -jnp.inf, mean.dtype), jnp.zeros((bs,), mean.dtype))
        (m, s), _ = jax.lax.scan(body, init, jnp.arange(n_chunks))
        return m + jnp.log(s) - math.log(k)

    keys = jax.random.split(key, xb.shape[0])
    return jax.lax.map(one_batch, (xb, keys))


def log_prob(
    params: VAEParams, x, key: jax.Array, k: int = 5000, *, batch_size: int = 100, k_chunk: int | None = None
) -> jax.Array:
    """Importance-sampled estimate of ``log p(x)`` with ``k`` samples from q(z|x), ``(N,)`` nats.

    ``log (1/k) sum_i p(x, z_i) / q(z_i | x)``: the IWAE bound with k samples, a consistent
    estimate of log p(x) (it converges from below as k grows). Memory is bounded: the data go
    through in batches of ``batch_size`` rows (``lax.map``) and the samples in chunks of ``k_chunk``
    (``lax.scan`` with a running logsumexp); the default chunk keeps the decoder's numbers for
    ``batch_size * k_chunk`` samples near 2^24 (``D`` per sample for an MLP, ``D * sum(conv_features)``
    for a conv decoder). The random draws depend on ``batch_size`` and ``k_chunk`` (the estimate's
    distribution does not). The test NLL of the literature is ``-mean(log_prob(..., k=5000))``.
    """
    k = check_positive_int(k, "k")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = prepare(params, x)
    N, D = x.shape
    bs = min(batch_size, N)
    if k_chunk is None:
        # numbers held per decoded sample: the image for an MLP; every layer's feature map for a conv decoder
        # (about D * sum(features): at 28 x 28 with (32, 64) channels, 75k, not 784; budgeting 784 took 13 GB)
        c = params.config
        per_sample = max(D, c.latent_dim) if c.architecture == "mlp" else D * max(1, sum(c.conv_features))
        k_chunk = max(1, min(k, (1 << 24) // (bs * per_sample)))
    k_chunk = min(check_positive_int(k_chunk, "k_chunk"), k)
    pad = (-N) % bs
    xp = jnp.concatenate([x, jnp.zeros((pad, D), x.dtype)]) if pad else x  # zero rows: valid data, dropped below
    out = _log_prob_batched(params, xp.reshape(-1, bs, D), key, k, k_chunk)
    return out.reshape(-1)[:N]


# --------------------------------------------------------------------------------------------
# total-correlation decomposition (beta-TCVAE)


def _tc_terms(z, mean, log_var, log_p_z, dataset_size: int):
    """Minibatch-weighted sampling (MWS) estimate of Chen et al.'s (2018) KL decomposition.

    ``z, mean, log_var (M, q)``: one sample ``z_i ~ q(z | x_i)`` per example of a minibatch of M
    drawn from a data set of N = ``dataset_size``; ``log_p_z (M,)``. With
    ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M)`` and the same per dimension for the
    marginals ``q(z_id)``, returns ``(mi, tc, dwkl)``, each ``(M,)``:

    * ``mi = log q(z_i | x_i) - log q(z_i)``: index-code mutual information I(x; z);
    * ``tc = log q(z_i) - sum_d log q(z_id)``: total correlation of the aggregate posterior;
    * ``dwkl = sum_d log q(z_id) - log p(z_i)``: dimension-wise KL to the prior.

    The three telescope: ``mi + tc + dwkl = log q(z_i | x_i) - log p(z_i)``, the one-sample estimate
    of KL(q(z|x_i) || p(z)), whatever the estimator's bias in each term. The ``- log(N M)`` of each
    log-density puts constants on the terms (``tc`` carries ``(q - 1) log N`` more than the batch's own
    estimate with ``- log M``; with N = 50 000 and q = 10 about 97 nats): they shift the reported
    values, not the gradients.
    """
    # log q(z_id | x_j) for every pair (i, j) and dimension d: (M, M, q)
    per_dim = -0.5 * (_LOG_2PI + log_var[None] + (z[:, None] - mean[None]) ** 2 * jnp.exp(-log_var[None]))
    log_nm = math.log(dataset_size * z.shape[0])
    log_q_zx = jnp.sum(jnp.diagonal(per_dim, axis1=0, axis2=1).T, axis=-1)  # log q(z_i | x_i)
    log_q_z = jax.nn.logsumexp(jnp.sum(per_dim, axis=-1), axis=1) - log_nm
    log_prod_q = jnp.sum(jax.nn.logsumexp(per_dim, axis=1) - log_nm, axis=-1)
    return log_q_zx - log_q_z, log_q_z - log_prod_q, log_prod_q - log_p_z


def _check_tc_batch(params: VAEParams, batch_size: int, dataset_size: int) -> None:
    """Static checks of the beta-TCVAE's estimator (also under jit)."""
    if params.config.prior != "normal":
        raise ValueError(f"beta_tcvae needs a factorised prior (prior='normal'), got prior={params.config.prior!r}: "
                         "the dimension-wise KL compares each marginal q(z_d) with p(z_d).")
    if batch_size > dataset_size:
        raise ValueError(f"beta_tcvae: the batch ({batch_size} examples) is larger than dataset_size={dataset_size}; "
                         "set dataset_size to the number of training examples.")


@functools.partial(jax.jit, static_argnames="dataset_size")
def _tc_jit(params, x, key, dataset_size: int):
    mean, log_var = _encode(params, x)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)
    return _tc_terms(z, mean, log_var, _prior_log_prob(params, z), dataset_size)


def tc_decomposition(params: VAEParams, x, key: jax.Array, *, dataset_size: int) -> dict:
    """The beta-TCVAE's decomposition of the KL term on the minibatch ``x (M, D)``, one sample each.

    Args:
      dataset_size: N, the size of the data set the minibatch was drawn from (>= M).

    Returns:
      ``{"mi", "tc", "dwkl"}``, each ``(M,)`` nats (see :func:`_tc_terms`); they sum to the
      one-sample KL estimate ``log q(z|x) - log p(z)``.
    """
    dataset_size = check_positive_int(dataset_size, "dataset_size")
    x = prepare(params, x)
    _check_tc_batch(params, x.shape[0], dataset_size)
    mi, tc, dwkl = _tc_jit(params, x, key, dataset_size)
    return {"mi": mi, "tc": tc, "dwkl": dwkl}


# --------------------------------------------------------------------------------------------
# training objective


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the training loss optimises.

    Attributes:
      name: ``"elbo"`` (with ``beta`` and warm-up: beta-VAE / KL annealing), ``"iwae"`` or
        ``"beta_tcvae"`` (Chen et al. 2018: ``E[log p(x|z)] - (mi + beta tc + dwkl)``, see
        :func:`tc_decomposition`; normal prior only).
      k: importance samples for ``"iwae"`` (``k=1`` is the ELBO with a Monte Carlo KL).
      beta: > 0; final KL weight of the ELBO, or the weight of the total correlation for
        ``"beta_tcvae"`` (``beta=1`` is the ELBO with a one-sample KL).
      warmup_steps: KL warm-up: the weight rises linearly from 0 to ``beta`` over this many steps
        (0 = no warm-up; for ``"beta_tcvae"`` the whole penalty is ramped). Needs the step: see
        :func:`loss_fn`.
      binarize: dynamic binarisation, i.e. each step draws ``x ~ Bernoulli(pixels)`` afresh.
      dataset_size: N, the number of training examples, for ``"beta_tcvae"``'s minibatch-weighted
        estimator (required there, >= the batch size; ignored otherwise).
    """

    name: str = "elbo"
    k: int = 1
    beta: float = 1.0
    warmup_steps: int = 0
    binarize: bool = False
    dataset_size: int | None = None

    def __post_init__(self):
        check_choice(self.name, "objective", OBJECTIVES)
        check_positive_int(self.k, "k")
        check_positive_float(self.beta, "beta")
        check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.name == "beta_tcvae":
            if self.dataset_size is None:
                raise ValueError("objective 'beta_tcvae' needs dataset_size=N, the number of training examples (its "
                                 "minibatch-weighted estimator of log q(z) weights the batch by 1/N).")
            check_positive_int(self.dataset_size, "dataset_size")
        elif self.dataset_size is not None:
            check_positive_int(self.dataset_size, "dataset_size")


def kl_weight(step, beta: float, warmup_steps: int):
    """KL weight at ``step``: ``beta * min(1, step / warmup_steps)`` (``beta`` without warm-up), an
    ``optax.linear_schedule`` from 0 to ``beta`` over ``warmup_steps``."""
    if warmup_steps <= 0:
        return jnp.asarray(beta)
    if step is None:
        raise ValueError(f"KL warm-up over {warmup_steps} steps needs the training step: pass step= (jaxgen.train.fit "
                         "does), or set warmup_steps=0.")
    return optax.linear_schedule(0.0, beta, warmup_steps)(step)


def _as_objective(objective) -> Objective:
    if objective is None:
        return Objective()
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        return Objective(name=objective)
    if isinstance(objective, Mapping) or hasattr(objective, "to_dict"):
        d = dict(objective.to_dict() if hasattr(objective, "to_dict") else objective)
        fields = {f.name for f in dataclasses.fields(Objective)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown objective setting(s) {sorted(unknown)}; valid: {sorted(fields)}.")
        return Objective(**d)
    raise ValueError(f"objective must be an Objective, a name, a mapping or None, got {type(objective).__name__}.")


def _batch_x(batch: Any):
    if isinstance(batch, Mapping):
        for name in ("x", "image", "images"):
            if name in batch:
                return batch[name], batch.get("step")
        raise ValueError(f"batch dict needs an 'x' (or 'image') entry, got keys {sorted(batch)}.")
    return batch, None


def loss_fn(objective: Objective | str | Mapping | None = None, **kwargs):
    """The training loss ``(params, batch, key, step=None) -> (loss, metrics)`` for an :class:`Objective`.

    Args:
      objective: an :class:`Objective`, an objective name (``"elbo"``, ``"iwae"``), a mapping /
        ConfigDict with its fields, or None (ELBO); keyword arguments override fields, e.g.
        ``loss_fn("iwae", k=5, binarize=True)``.

    The returned function takes ``batch``: an ``(B, D)`` array or a dict with ``"x"`` (uint8 bytes
    are scaled by 1/255; for dynamic binarisation the values are pixel probabilities) and, for KL
    warm-up, the global step as ``step=`` or ``batch["step"]``. Its attribute
    ``check_train_data(params, train_data)`` (called by :func:`jaxgen.train.fit` before training)
    rejects data of the wrong shape and, for the Bernoulli likelihood, values outside [0, 1] (the
    0..16 pixels of scikit-learn's digits, say) with a ``ValueError``. ``loss`` is the negative bound
    averaged over the batch; ``metrics`` holds scalar means: ``elbo``, ``recon`` (log p(x|z)),
    ``kl`` and ``kl_weight`` for the ELBO, ``iwae`` for IWAE, ``elbo``, ``recon``, ``mi``, ``tc``,
    ``dwkl`` and ``kl_weight`` (the warm-up ramp) for beta-TCVAE (``elbo`` with the one-sample KL
    ``mi + tc + dwkl``). Its attribute ``settings`` describes it for the resume check of
    :func:`jaxgen.train.fit`: ``builder``, ``objective`` and every other :class:`Objective` field.
    """
    if isinstance(objective, str) and kwargs:  # one construction: e.g. beta_tcvae needs its dataset_size at once
        obj = Objective(**{"name": objective, **kwargs})
    else:
        obj = _as_objective(objective)
        if kwargs:
            obj = dataclasses.replace(obj, **kwargs)

    def loss(params: VAEParams, batch, key: jax.Array, step=None):
        x, batch_step = _batch_x(batch)
        step = batch_step if step is None else step
        check_shape(params, x.shape, name="batch")  # static: also under jit
        dtype = jax.tree.leaves(params.encoder)[0].dtype
        if x.dtype == jnp.uint8:
            x = x.astype(dtype) / 255.0
        x = x.reshape(x.shape[0], -1).astype(dtype)
        kb, ks = jax.random.split(key)
        if obj.binarize:
            x = jax.random.bernoulli(kb, x).astype(dtype)
        if obj.name == "iwae":
            bound = _iwae(params, x, ks, obj.k)
            return -jnp.mean(bound), {"iwae": jnp.mean(bound)}
        if obj.name == "beta_tcvae":
            _check_tc_batch(params, x.shape[0], obj.dataset_size)
            mean, log_var = _encode(params, x)
            z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(ks, mean.shape, mean.dtype)
            rec = jnp.mean(_log_likelihood(params, x, _decode_raw(params, z)))
            mi, tc, dwkl = (jnp.mean(t) for t in _tc_terms(z, mean, log_var, _prior_log_prob(params, z),
                                                           obj.dataset_size))
            w = kl_weight(step, 1.0, obj.warmup_steps).astype(dtype)
            metrics = {"elbo": rec - (mi + tc + dwkl), "recon": rec, "mi": mi, "tc": tc, "dwkl": dwkl, "kl_weight": w}
            return -(rec - w * (mi + obj.beta * tc + dwkl)), metrics
        rec, kl = _elbo_terms(params, x, ks)
        w = kl_weight(step, obj.beta, obj.warmup_steps).astype(dtype)
        metrics = {"elbo": jnp.mean(rec - kl), "recon": jnp.mean(rec), "kl": jnp.mean(kl), "kl_weight": w}
        return -jnp.mean(rec - w * kl), metrics

    def check_train_data(params: VAEParams, train_data) -> None:
        """What :func:`jaxgen.train.fit` calls once on the concrete data before training (inside the
        jitted loss the values cannot be checked): shape, finiteness, [0, 1] for Bernoulli."""
        check_values(params, _batch_x(train_data)[0], name="train_data")

    loss.objective = obj
    loss.check_train_data = check_train_data
    # its description, compared when jaxgen.train.fit resumes a run (the prior and likelihood are the params' config)
    loss.settings = {"builder": "vae.loss_fn", "objective": obj.name,
                     **{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "name"}}
    return loss
