"""The pure programs of the loop: one update, and a log period as a ``lax.scan`` of updates.

Both are plain functions of the state and the data; :mod:`jaxgen.train.loop` jits them with the
state donated. Sharding is expressed with constraints only (batches split over the mesh's ``"data"``
axis, the state replicated); XLA's SPMD partitioner inserts the gradient all-reduce, since the
loss is a mean over the batch.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax  # noqa: F401  (type of make_train_step's optimizer)
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen.sharding import DATA_AXIS
from jaxgen.train.state import LoopState, TrainState
from jaxgen.train.trainer import LossTrainer, ParamsState, accepts_step

__all__ = ["LossFn", "make_train_step", "make_loop_step", "epoch_permutation", "make_chunk_fn", "tree_all_finite"]

LossFn = Callable[..., tuple]
"""``loss_fn(params, batch, key[, step=]) -> (loss, metrics)``: scalar loss, dict of scalar metrics;
``step`` (the global step, int32 array) is passed when the function accepts it."""


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
    trainer = LossTrainer(loss_fn, None, optimizer)

    def train_step(state: TrainState, batch):
        model, metrics = trainer.update(ParamsState(state.params, state.opt_state), batch, state.step_key(), state.step)
        return state.replace(params=model.params, opt_state=model.opt_state, step=state.step + 1), metrics

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


def make_loop_step(update, mesh: Mesh):
    """The loop's step ``step(state: LoopState, batch) -> (state, metrics)`` around a trainer's
    ``update``: the key ``fold_in(state.key, state.step)``, the step count, the batch split over the
    mesh's ``"data"`` axis."""
    with_step = accepts_step(update)
    batch_sharding = NamedSharding(mesh, P(DATA_AXIS))

    def step(state: LoopState, batch):
        batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding), batch)
        key = state.step_key()
        model, metrics = update(state.model, batch, key, step=state.step) if with_step else update(state.model, batch, key)
        return state.replace(model=model, step=state.step + 1), metrics

    return step


def make_chunk_fn(loop_step, mesh: Mesh):
    """A log period as a single program: ``lax.scan`` of ``loop_step`` over batch indices.

    Returns ``run_chunk(state, data, idx) -> (state, metrics, state_finite)`` where ``data`` is the
    device-resident data pytree with leaves (N, ...) (replicated), ``idx`` the (L, B) example
    indices of the period's L steps (each step gathers its batch from ``data``: no copy of the
    data set per epoch), ``metrics`` maps names to per-step values of shape (L,), and
    ``state_finite`` is a boolean scalar over every floating leaf of the trainer's state. The
    metrics come back per step so that the host can name the first non-finite step without
    syncing inside the scan.
    """
    replicated = NamedSharding(mesh, P())

    def run_chunk(state: LoopState, data, idx):
        def body(s, rows):
            return loop_step(s, jax.tree.map(lambda x: x[rows], data))

        state, metrics = jax.lax.scan(body, state, idx)
        state = jax.lax.with_sharding_constraint(state, replicated)
        return state, metrics, tree_all_finite(state.model)

    return run_chunk
