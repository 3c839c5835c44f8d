"""GAN objectives on discriminator logits, and the two gradient penalties.

With ``r = D(x_real)`` and ``f = D(G(z))`` the discriminator's raw outputs (logits; for the
Wasserstein and hinge objectives the critic's value), averaged over the batch:

================  =========================================  ======================================
objective         discriminator loss                          generator loss
================  =========================================  ======================================
minimax           ``-log s(r) - log(1 - s(f))``               ``log(1 - s(f))`` (saturating; Goodfellow et al. 2014)
non_saturating    same                                        ``-log s(f)``
wgan_gp           ``f - r`` (+ gradient penalty)              ``-f``  (Gulrajani et al. 2017)
hinge             ``relu(1 - r) + relu(1 + f)``               ``-f``  (Miyato et al. 2018)
================  =========================================  ======================================

``s`` is the logistic sigmoid; ``-log s(r) = softplus(-r)`` and ``-log(1 - s(f)) = softplus(f)``
are computed stably. At ``s = 1/2`` everywhere the minimax discriminator loss is ``2 log 2``; the
optimal discriminator is ``p / (p + q)``, i.e. logit ``log p - log q``.

Penalties (``d_fn`` maps a batch of discriminator inputs to ``(N,)`` logits, each depending on its
own input only, so ``grad sum d_fn`` gives every per-example gradient at once):

* :func:`gradient_penalty`: ``lambda * E (|grad D(x_hat)| - 1)^2`` at ``x_hat = e x + (1 - e) x~``,
  ``e ~ U(0, 1)`` per input (WGAN-GP).
* :func:`r1_penalty`: ``gamma / 2 * E |grad D(x)|^2`` on real inputs (Mescheder et al. 2018).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["OBJECTIVES", "discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty"]

OBJECTIVES = ("minimax", "non_saturating", "wgan_gp", "hinge")


def _check(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}.")


def discriminator_loss(objective: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """The discriminator's loss (to minimise), a scalar: see the module table.

    Args:
      real_logits: ``(N,)`` D outputs on real inputs; fake_logits: ``(M,)`` on generated ones.
    """
    _check(objective)
    if objective in ("minimax", "non_saturating"):
        return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    if objective == "wgan_gp":
        return jnp.mean(fake_logits) - jnp.mean(real_logits)
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def generator_loss(objective: str, fake_logits: jax.Array) -> jax.Array:
    """The generator's loss (to minimise), a scalar: see the module table.

    The saturating ``log(1 - s(f)) = -softplus(f)`` has gradient ``-s(f)`` in ``f``, which vanishes
    when the discriminator confidently rejects the samples (``f -> -inf``); the non-saturating
    ``softplus(-f)`` has gradient ``-(1 - s(f)) -> -1`` there.
    """
    _check(objective)
    if objective == "minimax":
        return -jnp.mean(jax.nn.softplus(fake_logits))
    if objective == "non_saturating":
        return jnp.mean(jax.nn.softplus(-fake_logits))
    return -jnp.mean(fake_logits)


def _grad_sq_norms(d_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """``(N,)`` squared norms of ``grad_x d_fn(x)[i]`` per input (inputs are independent)."""
    g = jax.grad(lambda v: jnp.sum(d_fn(v)))(x)
    return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def gradient_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array, key: jax.Array,
                     weight: float = 10.0) -> jax.Array:
    """WGAN-GP penalty ``weight * E (|grad D(x_hat)|_2 - 1)^2``, a scalar.

    Args:
      d_fn: discriminator inputs ``(N, ...) -> (N,)``; real, fake: ``(N, ...)`` inputs (packed alike).
      key: draws one ``e ~ U(0, 1)`` per input for ``x_hat = e * real + (1 - e) * fake``.
      weight: lambda (10 in Gulrajani et al.).
    """
    e = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = e * real + (1.0 - e) * fake
    # sqrt of a tiny floor keeps the gradient of the norm finite where grad D = 0
    norms = jnp.sqrt(_grad_sq_norms(d_fn, x_hat) + 1e-12)
    return weight * jnp.mean(jnp.square(norms - 1.0))


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array, gamma: float) -> jax.Array:
    """R1 penalty ``gamma / 2 * E |grad_x D(x)|^2`` on real inputs ``(N, ...)``, a scalar."""
    return 0.5 * gamma * jnp.mean(_grad_sq_norms(d_fn, real))
