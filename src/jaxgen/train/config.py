"""The loop's settings, validated in one place (unknown keys and bad values raise ``ValueError``)."""
from __future__ import annotations

import dataclasses
from typing import Mapping, NamedTuple

from jaxgen.validation import check_positive_int

__all__ = ["TrainConfig", "Schedule"]


class Schedule(NamedTuple):
    """A run's cadences in steps (see :meth:`TrainConfig.schedule`)."""

    total: int  # steps of the whole run
    log: int  # steps per log record (= per compiled call)
    eval: int  # steps between evaluations (a multiple of ``log``)
    checkpoint: int  # steps between checkpoints (a multiple of ``log``)
    unit: str  # "epochs" or "steps": the unit the settings were given in (for messages)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`jaxgen.train.fit_trainer` and :func:`jaxgen.train.fit`.

    The length of the run is given either in ``epochs`` or in ``steps`` (exactly one), and the
    cadences ``log_every``, ``eval_every`` and ``checkpoint_every`` count in the same unit: epochs
    for an epoch-length run (a checkpoint every 10 epochs), optimizer steps for a step-length run
    (a checkpoint every 1000 steps, whatever the epoch length: long GPU epochs stay safe).

    Attributes:
      epochs: total number of epochs of the run (a resumed run continues up to this number).
      steps: total number of steps (updates) of the run, instead of ``epochs``.
      batch_size: examples per step, 1 <= batch_size <= N, divisible by the number of devices in the
        mesh. Each epoch has N // batch_size steps (the remainder of a shuffled epoch is dropped).
      log_every: one log record (metrics averaged over its steps), one compiled program call and
        one finiteness check every this many epochs / steps. Default: 1 epoch; for a step-length
        run, one epoch's steps (at most ``steps``).
      eval_every: call ``eval_fn`` every this many epochs / steps (a multiple of ``log_every``;
        default: at every log record).
      checkpoint_every: save a checkpoint every this many epochs / steps (a multiple of
        ``log_every``; default: at every log record), and always after the last step.
      keep_checkpoints: how many of the latest checkpoints to keep.
      use_scan: True: the data lives on the device and each log period is one ``lax.scan`` program.
        False: the data stays on the host and each step is one call of the jitted step (the path for
        data that does not fit on the device).
      shuffle: reshuffle the examples every epoch (False: every epoch visits the batches in the
        data's order, as some papers' released code does).
      progress: show a tqdm progress bar.
      tensorboard: also write TensorBoard scalars when tensorboardX or torch is installed.
    """

    batch_size: int
    epochs: int | None = None
    steps: int | None = None
    log_every: int | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    use_scan: bool = True
    shuffle: bool = True
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("Give the length of the run as epochs or as steps (exactly one of them).")
        for name in ("epochs", "steps", "batch_size", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        for name in ("use_scan", "shuffle", "progress", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        log = self.log_every or 1
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value % log:
                raise ValueError(f"{name}={value} must be a multiple of log_every={log} (the loop stops only at log "
                                 "records); change one of them.")

    @property
    def unit(self) -> str:
        return "epochs" if self.epochs is not None else "steps"

    def schedule(self, steps_per_epoch: int) -> Schedule:
        """The cadences in steps, for epochs of ``steps_per_epoch`` steps."""
        if self.epochs is not None:
            per = steps_per_epoch
            total, log = self.epochs * per, (self.log_every or 1) * per
        else:
            per = 1
            total, log = self.steps, self.log_every or min(self.steps, steps_per_epoch)
        every = lambda value: log if value is None else value * per  # noqa: E731
        return Schedule(total, log, every(self.eval_every), every(self.checkpoint_every), self.unit)

    @classmethod
    def from_dict(cls, config: Mapping | None = None, **overrides) -> "TrainConfig":
        """Build from a mapping (a dict or an ``ml_collections.ConfigDict``) plus keyword overrides.

        Raises:
          ValueError: an unknown key (the message lists the valid ones), a missing ``batch_size``, a
            length given both or neither as ``epochs`` and ``steps``, or a bad value.
        """
        if config is None:
            values = {}
        elif isinstance(config, TrainConfig):
            values = dataclasses.asdict(config)
        elif hasattr(config, "to_dict"):  # ml_collections.ConfigDict
            values = dict(config.to_dict())
        elif isinstance(config, Mapping):
            values = dict(config)
        else:
            raise ValueError(f"config must be a mapping of training settings, got {type(config).__name__}.")
        if "epochs" in overrides or "steps" in overrides:  # a length given as a keyword replaces the config's
            values.pop("epochs", None)
            values.pop("steps", None)
        values.update(overrides)
        values = {k: v for k, v in values.items() if not (k in ("epochs", "steps") and v is None)}
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in values if k not in fields)
        if unknown:
            raise ValueError(f"Unknown training setting(s) {unknown}; valid settings: {fields}.")
        if "batch_size" not in values:
            raise ValueError("Training settings need ['batch_size'].")
        if "epochs" not in values and "steps" not in values:
            raise ValueError("Training settings need the length of the run: ['epochs'] or ['steps'].")
        return cls(**values)
