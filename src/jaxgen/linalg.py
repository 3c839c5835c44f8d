"""Small linear-algebra helpers shared by the subspace models (PPCA, Student-t PCA, ...)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["principal_angles", "orthonormal_basis"]


def orthonormal_basis(A: jax.Array) -> jax.Array:
    """An orthonormal basis ``(D, k)`` of the column space of ``A (D, k)`` (thin QR; A full rank)."""
    Q, _ = jnp.linalg.qr(A, mode="reduced")
    return Q


@jax.jit
def principal_angles(A: jax.Array, B: jax.Array) -> jax.Array:
    """Principal angles, in degrees and ascending, between the column spaces of ``A`` and ``B``.

    Args:
      A: ``(D, ka)`` matrix; its columns span the first subspace (need not be orthonormal).
      B: ``(D, kb)`` matrix for the second subspace.

    Returns:
      ``(min(ka, kb),)`` angles in [0, 90], smallest first; the last one is the largest angle,
      the usual "how far apart are the subspaces" figure.

    Cosines come from the singular values of ``Qa^T Qb`` and sines from those of
    ``Qb - Qa Qa^T Qb``; small angles are read from the sines because ``arccos`` near 1 loses
    half the digits (in float32 it cannot resolve angles below ~0.03 degrees).
    """
    Qa, Qb = orthonormal_basis(A), orthonormal_basis(B)
    if Qa.shape[1] < Qb.shape[1]:  # static shapes: make B the smaller subspace
        Qa, Qb = Qb, Qa
    cross = Qa.T @ Qb
    cos = jnp.clip(jnp.linalg.svd(cross, compute_uv=False), 0.0, 1.0)  # descending -> angles ascending
    sin = jnp.clip(jnp.linalg.svd(Qb - Qa @ cross, compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    theta = jnp.where(cos**2 < 0.5, jnp.arccos(cos), jnp.arcsin(sin))
    return jnp.degrees(theta)
