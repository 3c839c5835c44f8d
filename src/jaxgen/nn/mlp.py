"""Multi-layer perceptron with a configurable activation (Flax linen)."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "get_activation", "MLP"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "softplus": nn.softplus,
    "swish": nn.swish,
    "leaky_relu": nn.leaky_relu,
    "sigmoid": nn.sigmoid,
    "identity": lambda x: x,
}


def get_activation(activation: str | Callable) -> Callable[[jax.Array], jax.Array]:
    """An activation by name (one of :data:`ACTIVATIONS`) or a callable passed through."""
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or a callable, got {activation!r}.")
    return ACTIVATIONS[activation]


class MLP(nn.Module):
    """Dense layers ``features[0], ..., features[-1]``, the activation after each but (by default) the last.

    Input ``(..., D_in)`` -> output ``(..., features[-1])``; with ``features == ()`` it is the identity.
    Kernels use LeCun-normal init (Flax's default), biases zero.
    """

    features: Sequence[int]
    activation: str | Callable = "tanh"
    activate_final: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        for i, f in enumerate(self.features):
            x = nn.Dense(int(f), name=f"dense_{i}")(x)
            if i < len(self.features) - 1 or self.activate_final:
                x = act(x)
        return x
