"""Losses and optimizers that carry the settings that built them: what a resumed run is checked against.

An optax optimizer is a pair of closures and a loss a function: neither can be read back. So the
resume check of :func:`jaxgen.train.fit` compares *descriptions* instead: a JSON-able dict of the
resolved settings, held in the object's ``settings`` attribute.

* jaxgen's builders describe what they build: :func:`jaxgen.train.optimizer` (name, learning
  rate, every hyperparameter, the schedule over its whole length, clipping),
  ``jaxgen.models.vae.loss_fn`` (objective, k, beta, warm-up, binarisation, ...),
  ``pixelcnn.loss_fn`` and ``pixelvae.loss_fn``.
* :func:`describe` attaches settings to anything else (a hand-built optax chain, a hand-written
  loss): whatever changes the numbers must be in them.
* :func:`settings_of` reads them back (``None``: unknown); :func:`static_settings` collects the
  static (non-array) fields of a parameter pytree, e.g. a VAE's :class:`VAEConfig` (prior,
  likelihood, sizes), which the checkpoint's array signature does not see.

A loss or optimizer without a description still trains; only resuming it is refused
(:class:`UnknownSettings`), since nothing can tell whether the checkpoint in the folder was
written by the same run.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import optax

__all__ = ["describe", "settings_of", "static_settings", "UnknownSettings", "DescribedTransformation"]


class UnknownSettings(ValueError):
    """The settings of a trainer (its loss or optimizer) cannot be known, so a run in a folder that
    already holds a checkpoint cannot be checked against it; the message says what is missing."""


class DescribedTransformation(optax.GradientTransformationExtraArgs):
    """An optax transformation (``init``, ``update``) with its ``settings``: a read-only dict.

    Built by :func:`jaxgen.train.optimizer` or :func:`describe`; used wherever optax takes a
    ``GradientTransformation`` (it is one).
    """
    # No __slots__: instances get a __dict__, which holds ``settings``.


def _jsonable(value, name: str):
    """``value`` as plain JSON types (tuples as lists, NumPy scalars as Python ones), or ``ValueError``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"setting {name} must be finite, got {value}.")
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{name}.{k}") for k, v in value.items()}
    raise ValueError(
        f"setting {name} is a {type(value).__name__}; a description holds numbers, strings, booleans, None and "
        "lists / dicts of them. Describe a schedule or a function by the numbers that build it (e.g. "
        "schedule='cosine', decay_steps=1000)."
    )


def describe(obj, **settings):
    """``obj`` (an optax optimizer or a loss function) carrying ``settings`` as its description.

    Args:
      obj: an ``optax.GradientTransformation`` (returned as a :class:`DescribedTransformation`
        with the same ``init`` and ``update``), or a loss function ``loss_fn(params, batch, key[,
        step=])`` (returned as a wrapper that calls it, with its signature and attributes such as
        ``check_train_data``). ``obj`` itself is not modified.
      **settings: everything that changes the numbers it produces, as JSON-able values (numbers,
        strings, booleans, None, lists and dicts of them), e.g. ``describe(tx, name="adam",
        lr=1e-3, b1=0.9, schedule="stages", rates=[...], boundaries=[...])``. They replace any
        earlier description. What is left out is not checked when a run resumes.

    Returns:
      the described object; ``settings_of(result)`` gives the settings back.
    """
    described = MappingProxyType({k: _jsonable(v, k) for k, v in settings.items()})
    if callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None)):
        tx = optax.with_extra_args_support(obj)
        out = DescribedTransformation(tx.init, tx.update)
        out.settings = described
        return out
    if not callable(obj):
        raise ValueError(f"describe() takes an optax optimizer or a loss function, got {type(obj).__name__}.")

    @functools.wraps(obj)  # keeps the signature (a ``step`` argument) and attributes (check_train_data)
    def loss(*args, **kwargs):
        return obj(*args, **kwargs)

    loss.settings = described
    return loss


def settings_of(obj) -> dict | None:
    """The description of a loss or optimizer (a dict), or ``None`` when it has none."""
    settings = getattr(obj, "settings", None)
    return dict(settings) if isinstance(settings, Mapping) else None


def static_settings(tree: Any) -> dict:
    """The static (non-array) fields of the dataclasses in a pytree, by path, JSON-able.

    For a :class:`jaxgen.models.vae.VAEParams`: ``{"config": {...the VAEConfig's fields...}}``
    (prior, likelihood, variance, sizes); ``{}`` for a plain dict of arrays. Fields are flax
    ``struct`` fields with ``pytree_node=False``; a value that is neither a dataclass nor JSON-able
    is recorded by its type name (its ``repr`` may hold a memory address).
    """
    out = {}
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        for f in dataclasses.fields(tree):
            value = getattr(tree, f.name)
            if f.metadata.get("pytree_node", True) is False:
                out[f.name] = _static_value(value)
            elif sub := static_settings(value):
                out[f.name] = sub
    elif isinstance(tree, Mapping):
        out = {str(k): sub for k, v in tree.items() if (sub := static_settings(v))}
    elif isinstance(tree, (list, tuple)):
        out = {str(i): sub for i, v in enumerate(tree) if (sub := static_settings(v))}
    return out


def _static_value(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return _jsonable(value, "static")
    except ValueError:
        return f"<{type(value).__qualname__}>"


def unknown_reason(loss_fn: Callable, optimizer) -> str | None:
    """Why a loss / optimizer pair cannot be checked against a checkpoint (``None``: both described)."""
    missing = []
    if settings_of(loss_fn) is None:
        missing.append(
            "The loss function has no description (it was not built by a jaxgen loss builder such as "
            "jaxgen.models.vae.loss_fn, pixelcnn.loss_fn or pixelvae.loss_fn): describe it with "
            "jaxgen.train.describe(loss_fn, **settings).")
    if settings_of(optimizer) is None:
        missing.append(
            "The optimizer has no description (a plain optax transformation cannot be read back: its learning rate, "
            "schedule and clipping live in closures): build it with jaxgen.train.optimizer(...) or describe it with "
            "jaxgen.train.describe(optimizer, **settings).")
    return " ".join(missing) or None
