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
* optionally ``fingerprint() -> dict``: JSON-able settings that change the numbers (learning
  rates, objective, sizes); stored with checkpoints and compared when a run resumes.
* optionally ``check_train_data(train_data)``: raise ``ValueError`` for values the model cannot use
  (called once, before any work).

:class:`LossTrainer` is the trainer of one loss and one optax optimizer (what
:func:`jaxgen.train.fit` runs); its fingerprint probes the optimizer with a few fixed gradients,
so that a run resumed with another learning rate or schedule is refused.
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

__all__ = ["LossTrainer", "ParamsState", "split_batch", "accepts_step", "checked_loss", "optimizer_probe",
           "data_fingerprint"]


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
        batch and a dict of scalars; optional attribute ``check_train_data(params, train_data)``.
      params: the initial parameters (not modified: :meth:`init` copies them).
      optimizer: any ``optax.GradientTransformation``.
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
        return {"optimizer": optimizer_probe(self.optimizer, self.params)}

    def check_train_data(self, train_data) -> None:
        check = getattr(self.loss_fn, "check_train_data", None)
        if callable(check):
            check(self.params, train_data)


def optimizer_probe(optimizer: optax.GradientTransformation, params, steps: int = 3) -> list[float]:
    """What ``optimizer`` does to ``params`` under fixed pseudo-gradients: ``steps`` numbers.

    An optax optimizer is a pair of closures whose hyperparameters cannot be read back, but its
    updates reveal them: step t feeds the gradient ``sin(0.7 i + t + 1)`` (i the flat index in each
    leaf) and records the sum of ``|update|`` weighted by ``1.5 + cos(0.3 i)`` (positive weights: a
    sum without cancellation, so its round-off stays near float32's 1e-7 whatever the device or the
    order of the sum). Another learning rate, another optimizer or another schedule over the first
    ``steps`` steps gives other numbers. The ``steps`` updates run as one jitted program (eager
    optax costs seconds per call for a network's many leaves). The fingerprints are compared with a
    relative tolerance of 1e-4.
    """
    floats = [x for x in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    if not floats:
        return []

    def pattern(x, freq, phase):
        i = jnp.arange(x.size, dtype=jnp.float32)
        return jnp.sin(freq * i + phase).reshape(x.shape).astype(x.dtype)

    @jax.jit
    def run(params):
        p, opt_state, out = params, optimizer.init(params), []
        for t in range(steps):
            grads = jax.tree.map(lambda x: pattern(x, 0.7, t + 1.0), p)
            updates, opt_state = optimizer.update(grads, opt_state, p)
            p = optax.apply_updates(p, updates)
            out.append(sum(jnp.sum(jnp.abs(u.astype(jnp.float32)) * (1.5 + pattern(u, 0.3, jnp.pi / 2)))
                           for u in jax.tree.leaves(updates)))
        return jnp.stack(out)

    return [float(v) for v in run(params)]


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
