"""The pure programs of the loop: one optimizer step, and one epoch as a ``lax.scan`` of steps.

Both are plain functions of ``(state, data)``; :mod:`jaxgen.train.loop` jits them with the state
donated. Sharding is expressed with constraints only (batches split over the mesh's ``"data"``
axis, the state replicated); XLA's SPMD partitioner inserts the gradient all-reduce, since the
loss is a mean over the batch.
"""
from __future__ import annotations

import inspect

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen.sharding import DATA_AXIS
from jaxgen.train.state import TrainState

__all__ = ["LossFn", "make_train_step", "epoch_permutation", "make_epoch_fn", "tree_all_finite"]

LossFn = Callable[..., tuple]
"""``loss_fn(params, batch, key[, step=]) -> (loss, metrics)``: scalar loss, dict of scalar metrics;
``step`` (the global step, int32 array) is passed when the function accepts it."""


def _accepts_step(loss_fn) -> bool:
    """Whether ``loss_fn`` takes a ``step`` keyword (schedules inside the loss, e.g. KL warm-up)."""
    try:
        params = inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):
        return False
    return "step" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _checked_loss(loss_fn: LossFn):
    """``loss_fn`` with its output checked at trace time, so a wrong return type fails clearly.

    The wrapper always takes the step; it is passed on as ``step=`` when ``loss_fn`` accepts it.
    """
    with_step = _accepts_step(loss_fn)

    def wrapped(params, batch, key, step):
        out = loss_fn(params, batch, key, step=step) if with_step else loss_fn(params, batch, key)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
            raise ValueError(
                "loss_fn(params, batch, key) must return (loss, metrics) with a scalar loss and a dict "
                f"of scalar metrics, got {type(out).__name__}."
            )
        loss, metrics = out
        if jnp.shape(loss) != ():
            raise ValueError(f"loss_fn must return a scalar loss, got shape {jnp.shape(loss)}.")
        for name, value in metrics.items():
            if not isinstance(name, str) or name == "loss":
                raise ValueError(f"metric names must be strings other than 'loss', got {name!r}.")
            if jnp.shape(value) != ():
                raise ValueError(f"metric {name!r} must be a scalar, got shape {jnp.shape(value)}.")
        return loss, dict(metrics)

    return wrapped


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation):
    """The pure step ``train_step(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, metrics)``; ``batch`` is the data pytree with
        leading axis B (the batch); the loss must be a mean over it (for data parallelism).
      optimizer: any ``optax.GradientTransformation``.

    Returns:
      ``train_step``: the key of step t is ``fold_in(state.rng, t)``, so the result does not depend on
      how steps are grouped into calls or epochs. ``metrics`` holds ``"loss"`` and the model's
      metrics, all scalars, evaluated at the parameters *before* the update.
    """
    checked = _checked_loss(loss_fn)
    grad_fn = jax.value_and_grad(checked, has_aux=True)

    def train_step(state: TrainState, batch):
        (loss, metrics), grads = grad_fn(state.params, batch, state.step_key(), state.step)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new_state, {"loss": loss, **metrics}

    return train_step


def epoch_permutation(key: jax.Array, n_examples: int, n_batches: int, batch_size: int,
                      shuffle: bool = True) -> jax.Array:
    """Indices (n_batches, batch_size) of one epoch: a permutation of ``n_examples`` drawn with
    ``key`` (``shuffle=False``: the original order, ``key`` unused), remainder dropped."""
    order = jax.random.permutation(key, n_examples) if shuffle else jnp.arange(n_examples)
    return order[: n_batches * batch_size].reshape(n_batches, batch_size)


def tree_all_finite(tree) -> jax.Array:
    """Boolean scalar: every floating entry of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_epoch_fn(train_step, mesh: Mesh, n_batches: int, batch_size: int, shuffle: bool = True):
    """One epoch as a single program: shuffle on device (unless ``shuffle=False``), then ``lax.scan``
    the step over the batches.

    Returns ``run_epoch(state, data, shuffle_key) -> (state, metrics, params_finite)`` where ``data``
    is the device-resident data pytree with leaves (N, ...) (replicated), ``metrics`` maps names to
    per-step values of shape (n_batches,), and ``params_finite`` is a boolean scalar. The loss values
    come back per step so that the host can name the first non-finite step without syncing inside
    the scan.
    """
    batch_sharding = NamedSharding(mesh, P(None, DATA_AXIS))
    replicated = NamedSharding(mesh, P())

    def run_epoch(state: TrainState, data, shuffle_key):
        n_examples = jax.tree.leaves(data)[0].shape[0]
        idx = epoch_permutation(shuffle_key, n_examples, n_batches, batch_size, shuffle)
        batches = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x[idx], batch_sharding), data)
        state, metrics = jax.lax.scan(train_step, state, batches)
        state = jax.lax.with_sharding_constraint(state, replicated)
        return state, metrics, tree_all_finite(state.params)

    return run_epoch
