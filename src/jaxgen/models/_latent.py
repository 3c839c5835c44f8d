"""Paths in latent space, shared by every family with latents (VAE, GAN, PixelVAE)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["PATHS", "latent_path"]

PATHS = ("linear", "slerp")


def _slerp(z0, z1, t):
    n0, n1 = jnp.linalg.norm(z0, axis=-1, keepdims=True), jnp.linalg.norm(z1, axis=-1, keepdims=True)
    cos = jnp.sum(z0 * z1, -1, keepdims=True) / jnp.maximum(n0 * n1, jnp.finfo(z0.dtype).tiny)
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))[..., None, :]  # (..., 1, 1)
    so = jnp.sin(omega)
    small = so < 1e-6  # (anti)parallel or zero: the angle is undefined, fall back to the line
    safe = jnp.where(small, 1.0, so)
    t = t[:, None]
    w0 = jnp.where(small, 1.0 - t, jnp.sin((1.0 - t) * omega) / safe)
    w1 = jnp.where(small, t, jnp.sin(t * omega) / safe)
    return w0 * z0[..., None, :] + w1 * z1[..., None, :]


def latent_path(z0: jax.Array, z1: jax.Array, t: jax.Array, method: str = "linear") -> jax.Array:
    """Points ``(..., T, q)`` on the path from ``z0`` to ``z1`` (each ``(..., q)``) at positions ``t (T,)``
    (0 gives ``z0``, 1 gives ``z1``): ``"linear"``, ``(1 - t) z0 + t z1``, or ``"slerp"``, the great
    circle ``sin((1 - t) w) / sin w z0 + sin(t w) / sin w z1`` with ``w`` the angle between them
    (keeps the norm when ``|z0| = |z1|``, which suits a Gaussian latent whose mass sits on a shell).
    Unchecked (jit-friendly): callers validate ``method`` and shapes."""
    if method == "linear":
        tt = t[:, None]
        return (1.0 - tt) * z0[..., None, :] + tt * z1[..., None, :]
    return _slerp(z0, z1, t)
