"""Priors p(z) for the VAE: standard normal, a learnable mixture of Gaussians, the VampPrior.

Each prior is a plain dict of arrays inside :class:`jaxgen.models.vae.VAEParams` (``prior``):

* ``"normal"``: ``{}``; p(z) = N(0, I).
* ``"mog"``: ``{"means" (K, q), "log_scales" (K, q), "logits" (K,)}``;
  p(z) = sum_k softmax(logits)_k N(z; means_k, diag(exp(2 log_scales_k))).
* ``"vamp"`` (Tomczak & Welling 2018): ``{"pseudo_inputs" (K, D)}``;
  p(z) = (1/K) sum_k q(z | u_k): the encoder's posterior averaged over learnable pseudo-inputs, so
  the log-density needs the encoder (passed in as ``encode_fn``).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["PRIORS", "init_prior", "prior_log_prob", "prior_sample", "mixture_log_prob", "diag_normal_log_prob"]

PRIORS = ("normal", "mog", "vamp")

_LOG_2PI = math.log(2.0 * math.pi)

EncodeFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def diag_normal_log_prob(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(log_var))), summed over the last axis (broadcasting over the rest)."""
    return -0.5 * jnp.sum(_LOG_2PI + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


def mixture_log_prob(z: jax.Array, means: jax.Array, log_vars: jax.Array, log_weights: jax.Array) -> jax.Array:
    """log sum_k w_k N(z; means_k, diag(exp(log_vars_k))) for ``z (..., q)``, components ``(K, q)``.

    Returns ``(...)``. Computed as a logsumexp over components so that far-away z do not underflow.
    """
    comp = diag_normal_log_prob(z[..., None, :], means, log_vars)  # (..., K)
    return jax.nn.logsumexp(comp + log_weights, axis=-1)


def init_prior(key: jax.Array, name: str, latent_dim: int, n_components: int, data_dim: int, dtype) -> dict:
    """Initial prior parameters.

    MoG: means ~ N(0, I) (spread over the standard normal's bulk), unit scales, equal weights.
    VampPrior: pseudo-inputs ``0.5 + 0.05 N(0, 1)``, i.e. grey images inside [0, 1] where the encoder
    has seen data (Tomczak & Welling initialise them near the data mean in the same spirit).
    """
    if name == "normal":
        return {}
    if name == "mog":
        return {
            "means": jax.random.normal(key, (n_components, latent_dim), dtype),
            "log_scales": jnp.zeros((n_components, latent_dim), dtype),
            "logits": jnp.zeros((n_components,), dtype),
        }
    if name == "vamp":
        return {"pseudo_inputs": 0.5 + 0.05 * jax.random.normal(key, (n_components, data_dim), dtype)}
    raise ValueError(f"prior must be one of {sorted(PRIORS)}, got {name!r}.")


def _components(name: str, prior: dict, encode_fn: EncodeFn):
    """(means (K, q), log_vars (K, q), log_weights (K,)) of a mixture prior."""
    if name == "mog":
        return prior["means"], 2.0 * prior["log_scales"], jax.nn.log_softmax(prior["logits"])
    means, log_vars = encode_fn(prior["pseudo_inputs"])
    K = means.shape[0]
    return means, log_vars, jnp.full((K,), -math.log(K), means.dtype)


def prior_log_prob(name: str, prior: dict, z: jax.Array, encode_fn: EncodeFn) -> jax.Array:
    """log p(z) for ``z (..., q)``, returns ``(...)``."""
    if name == "normal":
        return -0.5 * jnp.sum(_LOG_2PI + z**2, axis=-1)
    return mixture_log_prob(z, *_components(name, prior, encode_fn))


def prior_sample(key: jax.Array, name: str, prior: dict, n: int, latent_dim: int, encode_fn: EncodeFn, dtype) -> jax.Array:
    """``n`` draws from p(z), ``(n, q)``: pick a component, then sample its Gaussian."""
    kc, kz = jax.random.split(key)
    eps = jax.random.normal(kz, (n, latent_dim), dtype)
    if name == "normal":
        return eps
    means, log_vars, log_w = _components(name, prior, encode_fn)
    idx = jax.random.categorical(kc, log_w, shape=(n,))
    return means[idx] + jnp.exp(0.5 * log_vars[idx]) * eps
