"""The loop's settings, validated in one place (unknown keys and bad values raise ``ValueError``)."""
from __future__ import annotations

import dataclasses
from typing import Mapping

from jaxgen.validation import check_positive_int

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`jaxgen.train.fit`.

    Attributes:
      epochs: total number of epochs of the run (a resumed run continues up to this number).
      batch_size: examples per step, 1 <= batch_size <= N, divisible by the number of devices in the
        mesh. Each epoch has N // batch_size steps (the remainder of a shuffled epoch is dropped).
      checkpoint_every: save a checkpoint every this many epochs (and always after the last one).
      keep_checkpoints: how many of the latest checkpoints to keep.
      eval_every: call ``eval_fn`` every this many epochs (epochs counted from 1).
      use_scan: True: the data lives on the device and each epoch is one ``lax.scan`` program.
        False: the data stays on the host and each step is one call of the jitted step (the path for
        data that does not fit on the device).
      shuffle: reshuffle the examples every epoch (False: every epoch visits the batches in the
        data's order, as some papers' released code does).
      progress: show a tqdm progress bar.
      tensorboard: also write TensorBoard scalars when tensorboardX or torch is installed.
    """

    epochs: int
    batch_size: int
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    eval_every: int = 1
    use_scan: bool = True
    shuffle: bool = True
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every", "keep_checkpoints", "eval_every"):
            check_positive_int(getattr(self, name), name)
        for name in ("use_scan", "shuffle", "progress", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @classmethod
    def from_dict(cls, config: Mapping | None = None, **overrides) -> "TrainConfig":
        """Build from a mapping (a dict or an ``ml_collections.ConfigDict``) plus keyword overrides.

        Raises:
          ValueError: an unknown key (the message lists the valid ones), a missing ``epochs`` or
            ``batch_size``, or a bad value.
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
        values.update(overrides)
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in values if k not in fields)
        if unknown:
            raise ValueError(f"Unknown training setting(s) {unknown}; valid settings: {fields}.")
        missing = [name for name in ("epochs", "batch_size") if name not in values]
        if missing:
            raise ValueError(f"Training settings need {missing}.")
        return cls(**values)
