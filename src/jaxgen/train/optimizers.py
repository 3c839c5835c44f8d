"""The optimizer builder: an optax optimizer described by the resolved settings that built it.

``jaxgen.train.optimizer("adam", lr=2e-3, schedule="cosine", decay_steps=60_000, final_fraction=0.05)``
is ``optax.adam(optax.cosine_decay_schedule(2e-3, 60_000, alpha=0.05))`` (the same numbers) and
carries ``settings``: the name, the learning rate, every hyperparameter with its default filled in,
the schedule with its whole length, the clipping. Two optimizers with the same settings are the
same optimizer; :func:`jaxgen.train.fit` refuses to resume a run whose optimizer's settings differ
from the checkpoint's.
"""
from __future__ import annotations

import optax

from jaxgen.train.described import describe
from jaxgen.validation import check_choice, check_positive_float, check_positive_int

__all__ = ["optimizer", "OPTIMIZERS", "SCHEDULES"]

# each optimizer's hyperparameters and their defaults (optax's)
OPTIMIZERS = {
    "adam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
    "adamw": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4},
    "sgd": {"momentum": 0.0},
}
# each schedule's settings beyond ``lr`` (None: required)
SCHEDULES = {
    "constant": {},
    "cosine": {"decay_steps": None, "final_fraction": 0.0},
    "linear": {"decay_steps": None, "final_fraction": 0.0},
    "warmup_cosine": {"warmup_steps": None, "decay_steps": None, "final_fraction": 0.0},
}


def _unit(value, name: str) -> float:
    """A float in [0, 1) (a decay rate such as Adam's b1, b2 or SGD's momentum)."""
    value = check_positive_float(value, name, allow_zero=True)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")
    return value


def optimizer(name: str = "adam", lr: float = 1e-3, *, schedule: str = "constant", clip_norm: float | None = None,
              b1: float | None = None, b2: float | None = None, eps: float | None = None,
              weight_decay: float | None = None, momentum: float | None = None, decay_steps: int | None = None,
              warmup_steps: int | None = None, final_fraction: float | None = None) -> optax.GradientTransformation:
    """An optax optimizer with its resolved settings attached (``settings_of(result)``).

    Args:
      name: ``"adam"`` (``b1``, ``b2``, ``eps``), ``"adamw"`` (the same and ``weight_decay``,
        decoupled) or ``"sgd"`` (``momentum``, 0 = plain SGD). Hyperparameters left out take
        optax's defaults; one that does not belong to ``name`` is an error.
      lr: the (peak) learning rate, > 0.
      schedule: the learning rate over the steps (counted from 0):
        ``"constant"``; ``"cosine"``: from ``lr`` down to ``final_fraction * lr`` over
        ``decay_steps``, then constant (``optax.cosine_decay_schedule``); ``"linear"``: the same
        path, straight; ``"warmup_cosine"``: from 0 up to ``lr`` over ``warmup_steps``, then a
        cosine down to ``final_fraction * lr`` at step ``decay_steps`` (the warm-up included, as
        ``optax.warmup_cosine_decay_schedule``). ``final_fraction`` defaults to 0.
      clip_norm: clip the gradients to this global norm first (``optax.clip_by_global_norm``);
        None: no clipping.

    Returns:
      an ``optax.GradientTransformation`` (a
      :class:`~jaxgen.train.described.DescribedTransformation`) whose ``settings`` are ``name``,
      ``lr``, the optimizer's hyperparameters, ``schedule`` and its settings, and ``clip_norm``.

    Raises:
      ValueError: an unknown name or schedule, a setting that does not apply to them, a missing
        ``decay_steps`` / ``warmup_steps``, or a value out of range.
    """
    check_choice(name, "name", OPTIMIZERS)
    check_choice(schedule, "schedule", SCHEDULES)
    lr = check_positive_float(lr, "lr")
    given = dict(b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, momentum=momentum, decay_steps=decay_steps,
                 warmup_steps=warmup_steps, final_fraction=final_fraction)
    applies = {**OPTIMIZERS[name], **SCHEDULES[schedule]}
    for key, value in given.items():
        if value is not None and key not in applies:
            raise ValueError(f"{key} does not apply to name={name!r} with schedule={schedule!r}; its settings are "
                             f"{sorted(applies) or 'none'} (besides lr and clip_norm).")
    s = {key: default if given[key] is None else given[key] for key, default in applies.items()}
    for key in ("b1", "b2", "momentum"):
        if key in s:
            s[key] = _unit(s[key], key)
    for key in ("eps", "weight_decay"):
        if key in s:
            s[key] = check_positive_float(s[key], key, allow_zero=True)
    for key in ("decay_steps", "warmup_steps"):
        if key in s:
            if s[key] is None:
                raise ValueError(f"schedule={schedule!r} needs {key}.")
            s[key] = check_positive_int(s[key], key)
    if "final_fraction" in s:
        s["final_fraction"] = check_positive_float(s["final_fraction"], "final_fraction", allow_zero=True)
        if s["final_fraction"] > 1:
            raise ValueError(f"final_fraction must be in [0, 1], got {s['final_fraction']}.")
    if schedule == "warmup_cosine" and s["warmup_steps"] >= s["decay_steps"]:
        raise ValueError(f"warmup_steps ({s['warmup_steps']}) must be < decay_steps ({s['decay_steps']}): decay_steps "
                         "is the schedule's whole length, the warm-up included.")
    if clip_norm is not None:
        clip_norm = check_positive_float(clip_norm, "clip_norm")

    if schedule == "constant":
        rate = lr
    elif schedule == "cosine":
        rate = optax.cosine_decay_schedule(lr, s["decay_steps"], alpha=s["final_fraction"])
    elif schedule == "linear":
        rate = optax.linear_schedule(lr, lr * s["final_fraction"], s["decay_steps"])
    else:
        rate = optax.warmup_cosine_decay_schedule(0.0, lr, s["warmup_steps"], s["decay_steps"],
                                                  end_value=lr * s["final_fraction"])
    if name == "adam":
        tx = optax.adam(rate, b1=s["b1"], b2=s["b2"], eps=s["eps"])
    elif name == "adamw":
        tx = optax.adamw(rate, b1=s["b1"], b2=s["b2"], eps=s["eps"], weight_decay=s["weight_decay"])
    else:
        tx = optax.sgd(rate, momentum=s["momentum"] or None)
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    opt_settings = {k: s[k] for k in OPTIMIZERS[name]}
    sched_settings = {k: s[k] for k in SCHEDULES[schedule]}
    return describe(tx, name=name, lr=lr, **opt_settings, schedule=schedule, **sched_settings, clip_norm=clip_norm)
