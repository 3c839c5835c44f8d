"""What a model hands the loop: a *trainer*, and the adapter for a plain loss.

A trainer is any object with

* ``init(key, batch) -> state``: the model's training state, any pytree of arrays (one or two
  parameter sets, their optax states, batch statistics, an EMA of weights). ``batch`` is one
  concrete batch of the training data (its pytree, leading axis ``batch_size``).
* ``update(state, batch, key[, step=]) -> (state, metrics)``: one update, pure and jit-able;
  ``metrics`` is a dict of scalar arrays (averaged over each log period). ``key`` is the step's
  own key; ``step`` (int32 scalar, the global step) is passed when ``update`` accepts it. Several
  inner updates per step (a GAN's ``n_critic`` discriminator steps) split the batch with
  :func:`split_batch`.
* ``fingerprint() -> dict``: JSON-able settings that change the numbers (objective, learning
  rates and their schedules, sizes); stored with checkpoints and compared when a run resumes. It
  may raise :class:`~jaxgen.train.described.UnknownSettings` (a trainer without the method is
  treated the same): the run trains, but a run folder that already holds a checkpoint is refused,
  since nothing can tell whether it was written by the same run.
* optionally ``check_train_data(train_data)``: raise ``ValueError`` for values the model cannot use
  (called once, before any work).

:class:`LossTrainer` is the trainer of one loss and one optax optimizer (what
:func:`jaxgen.train.fit` runs); its fingerprint is the description of both (see
:mod:`jaxgen.train.described`) and the static settings of the parameters (e.g. a VAE's config).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.train.described import UnknownSettings, settings_of, static_settings, unknown_reason

__all__ = ["LossTrainer", "ParamsState", "split_batch", "accepts_step", "checked_loss", "data_fingerprint"]


def accepts_step(fn) -> bool:
    """Whether ``fn`` takes a ``step`` keyword (schedules inside a loss, e.g. KL warm-up)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "step" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def checked_loss(loss_fn: Callable):
    """``loss_fn`` with its output checked at trace time, so a wrong return type fails clearly.

    The wrapper always takes the step; it is passed on as ``step=`` when ``loss_fn`` accepts it.
    """
    with_step = accepts_step(loss_fn)

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


def split_batch(batch, k: int):
    """A batch pytree with leading axis B as leading axes ``(k, B // k)``, for k inner updates.

    Row r of the batch goes to sub-batch ``r % k``, so each device's contiguous block of rows
    (the batch is sharded over the data axis) splits into k blocks on the same device: no data
    moves between devices. ``B`` must be divisible by ``k`` (and, on several devices, ``B /
    n_devices`` too, which the loop already requires of the batch size).
    """
    def split(x):
        if x.shape[0] % k:
            raise ValueError(f"a batch of {x.shape[0]} examples cannot be split into {k} equal sub-batches; "
                             f"use a batch size that is a multiple of {k}.")
        return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)

    return jax.tree.map(split, batch)


@flax.struct.dataclass
class ParamsState:
    """The state of :class:`LossTrainer`: parameters and their optimizer state."""

    params: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class LossTrainer:
    """Minimise ``loss_fn`` over ``params`` with one optax optimizer: the trainer behind :func:`fit`.

    Args:
      loss_fn: ``loss_fn(params, batch, key[, step=]) -> (loss, metrics)``, a scalar mean over the
        batch and a dict of scalars; optional attributes ``check_train_data(params, train_data)``
        and ``settings`` (its description: jaxgen's loss builders set it, :func:`jaxgen.train.describe`
        adds it).
      params: the initial parameters (not modified: :meth:`init` copies them).
      optimizer: any ``optax.GradientTransformation``; described ones (built by
        :func:`jaxgen.train.optimizer` or :func:`jaxgen.train.describe`) make the run resumable.
    """

    loss_fn: Callable
    params: Any
    optimizer: optax.GradientTransformation
    name = "loss_fn"  # how error messages call the model's code

    def init(self, key, batch) -> ParamsState:
        params = jax.tree.map(jnp.copy, self.params)  # the loop donates its state: never the caller's arrays
        return ParamsState(params=params, opt_state=self.optimizer.init(params))

    def update(self, state: ParamsState, batch, key, step):
        """One gradient step; metrics are ``loss`` and the loss's own, at the parameters before it."""
        (loss, metrics), grads = jax.value_and_grad(checked_loss(self.loss_fn), has_aux=True)(
            state.params, batch, key, step)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return ParamsState(params=params, opt_state=opt_state), {"loss": loss, **metrics}

    def fingerprint(self) -> dict:
        """``{"loss", "optimizer", "model"}``: the descriptions of the loss and of the optimizer
        (:func:`~jaxgen.train.described.settings_of`) and the parameters' static settings.

        Raises:
          UnknownSettings: the loss or the optimizer has no description.
        """
        reason = unknown_reason(self.loss_fn, self.optimizer)
        if reason is not None:
            raise UnknownSettings(reason)
        return {"loss": settings_of(self.loss_fn), "optimizer": settings_of(self.optimizer),
                "model": static_settings(self.params)}

    def check_train_data(self, train_data) -> None:
        check = getattr(self.loss_fn, "check_train_data", None)
        if callable(check):
            check(self.params, train_data)


_MIX = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)


@jax.jit
def _leaf_hash(x: jax.Array) -> jax.Array:
    """Two uint32 words hashing the bits of ``x`` and their positions (wrapping integer sums: the
    same on every device and for any reduction order)."""
    size = x.dtype.itemsize
    if x.dtype == jnp.bool_:
        bits = x.astype(jnp.uint32)
    elif size in (1, 2):
        bits = jax.lax.bitcast_convert_type(x, {1: jnp.uint8, 2: jnp.uint16}[size]).astype(jnp.uint32)
    else:  # 4 bytes: one word; 8 bytes: two words (a trailing axis of 2)
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    v = bits.reshape(-1)
    i = jax.lax.iota(jnp.uint32, v.shape[0])
    h = v * jnp.uint32(_MIX[0]) + i * jnp.uint32(_MIX[1])
    h = h ^ (h >> 15)
    h = h * jnp.uint32(_MIX[2])
    h = h ^ (h >> 13)
    return jnp.stack([jnp.sum(h, dtype=jnp.uint32), jnp.sum((h ^ i) * jnp.uint32(_MIX[3]), dtype=jnp.uint32)])


def data_fingerprint(leaves) -> str:
    """A short hex string identifying the training data (shapes, dtypes and every value).

    Computed where the arrays live (a reduction on the device, two words per array come back), so
    the data are never copied to the host; another data set of the same size gives another string.
    """
    parts = []
    for x in leaves:
        words = np.asarray(_leaf_hash(jnp.asarray(x) if not isinstance(x, jax.Array) else x))
        parts.append(f"{'x'.join(map(str, x.shape))}:{np.dtype(x.dtype).name}:{int(words[0]):08x}{int(words[1]):08x}")
    return ";".join(parts)
