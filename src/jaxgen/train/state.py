"""The training state: parameters, optimizer state, step counter and PRNG key as one pytree.

The key is stored as raw key data (``uint32``) with the key implementation's name as a static
field, because typed keys (``jax.random.key``) do not round-trip through orbax's array handlers;
:attr:`TrainState.rng` wraps it back into a typed key.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LoopState", "TrainState", "create_train_state", "as_typed_key", "state_signature", "signature_mismatch"]


class _KeyedState:
    """The step key of a state with fields ``step``, ``key`` (raw key data) and ``key_impl``."""

    @property
    def rng(self) -> jax.Array:
        """The training key as a typed key (``jax.random.key``-style)."""
        return jax.random.wrap_key_data(self.key, impl=self.key_impl)

    def step_key(self) -> jax.Array:
        """The key of the current step: ``fold_in(rng, step)``, independent of how steps are grouped."""
        return jax.random.fold_in(self.rng, self.step)


@flax.struct.dataclass
class LoopState(_KeyedState):
    """What :func:`jaxgen.train.fit_trainer` carries from step to step and checkpoints.

    Attributes:
      model: the trainer's state (any pytree: parameters, optax states, EMA weights, ...).
      step: int32 scalar, the number of updates done so far.
      key: raw key data of the run's ``"state"`` stream; step t's key is ``fold_in(key, t)``.
      key_impl: name of the key implementation (static), e.g. ``"threefry2x32"``.
    """

    model: Any
    step: jax.Array
    key: jax.Array
    key_impl: str = flax.struct.field(pytree_node=False, default="threefry2x32")


@flax.struct.dataclass
class TrainState(_KeyedState):
    """Everything that changes during training by :func:`jaxgen.train.fit` (one loss, one optimizer).

    Attributes:
      params: the model's parameter pytree.
      opt_state: ``optimizer.init(params)`` and its updates (schedules count steps in here).
      step: int32 scalar, the number of optimizer updates done so far.
      key: raw key data of the run's training key (``jax.random.key_data``), e.g. uint32 (2,).
      key_impl: name of the key implementation (static), e.g. ``"threefry2x32"``.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    key_impl: str = flax.struct.field(pytree_node=False, default="threefry2x32")


def as_typed_key(key) -> jax.Array:
    """A typed PRNG key from ``key`` (typed ``jax.random.key`` or raw uint32 ``PRNGKey`` data)."""
    if isinstance(key, (int, np.integer)) or key is None:
        raise ValueError(f"key must be a JAX PRNG key such as jax.random.key(0), got {key!r}.")
    arr = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if jax.dtypes.issubdtype(arr.dtype, jax.dtypes.prng_key):
        if arr.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a key array of shape {arr.shape}.")
        return arr
    if arr.dtype != jnp.uint32 or arr.ndim != 1:
        raise ValueError(
            f"key must be a JAX PRNG key such as jax.random.key(0), got an array of dtype {arr.dtype} "
            f"and shape {arr.shape}."
        )
    return jax.random.wrap_key_data(arr)


def create_train_state(key, params, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh :class:`TrainState` at step 0.

    Args:
      key: typed or raw PRNG key; the per-step keys are ``fold_in(key, step)``.
      params: parameter pytree (arrays).
      optimizer: any ``optax.GradientTransformation``.
    """
    key = as_typed_key(key)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=jax.random.key_data(key),
        key_impl=str(jax.random.key_impl(key)),
    )


def state_signature(state) -> list[list]:
    """``[[path, shape, dtype], ...]`` of every array in ``state``: what a checkpoint must match.

    JSON-friendly (lists and strings), so that it can be stored next to a checkpoint and compared
    before restoring, giving a readable error instead of orbax's.
    """
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return [[jax.tree_util.keystr(path), list(np.shape(x)), str(jnp.result_type(x))] for path, x in leaves]


def signature_mismatch(saved: list, current: list) -> str | None:
    """A sentence describing how two :func:`state_signature` results differ, or None if equal."""
    saved = [[p, list(s), d] for p, s, d in saved]
    if saved == current:
        return None
    saved_by_path = {p: (s, d) for p, s, d in saved}
    current_by_path = {p: (s, d) for p, s, d in current}
    missing = [p for p in current_by_path if p not in saved_by_path]
    extra = [p for p in saved_by_path if p not in current_by_path]
    parts = [] if len(saved) == len(current) else [
        f"the checkpoint holds {len(saved)} arrays, this model and optimizer {len(current)}"]
    if missing:
        parts.append(f"absent from the checkpoint: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if extra:
        parts.append(f"only in the checkpoint: {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    for p, (s, d) in current_by_path.items():
        if p in saved_by_path and saved_by_path[p] != (s, d):
            ss, sd = saved_by_path[p]
            parts.append(f"{p} is {sd}{tuple(ss)} in the checkpoint but {d}{tuple(s)} here")
            break
    return "; ".join(parts)
