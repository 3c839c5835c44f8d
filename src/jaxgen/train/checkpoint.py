"""Checkpoints of a training run with orbax: the state plus a JSON record of where the run stands.

Layout (one folder per saved step, the last ``keep`` kept)::

    <run_dir>/checkpoints/<step>/state/   the TrainState arrays (orbax StandardSave)
    <run_dir>/checkpoints/<step>/meta/    JSON: epoch, step, history, settings, state signature

Orbax writes each step to a temporary folder and renames it when complete, so a process killed
mid-save leaves the previous checkpoints intact and the partial one is ignored (and cleaned up).
Saves are synchronous: the state is small next to an epoch's compute, and a finished ``save``
means the checkpoint is on disk (which the divergence and SIGKILL guarantees rely on).
"""
from __future__ import annotations

from pathlib import Path

import jax
from jax.sharding import Sharding, SingleDeviceSharding

from jaxgen.train.state import TrainState, signature_mismatch, state_signature

__all__ = ["Checkpointer"]


class Checkpointer:
    """Save and restore :class:`TrainState` plus metadata under ``directory``.

    Args:
      directory: the checkpoint folder (created), usually ``<run_dir>/checkpoints``.
      keep: how many of the latest checkpoints to keep (>= 1).
    """

    def __init__(self, directory, keep: int = 3):
        import orbax.checkpoint as ocp  # late: a third of a second, paid only by runs that checkpoint

        self._args = ocp.args
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state: TrainState, meta: dict) -> int:
        """Save ``state`` and ``meta`` (JSON-able dict) at ``state.step``; returns that step."""
        step = int(state.step)
        meta = dict(meta, signature=state_signature(state))
        self._manager.save(
            step, args=self._args.Composite(state=self._args.StandardSave(state), meta=self._args.JsonSave(meta)), force=True
        )
        self._manager.wait_until_finished()
        return step

    def restore_meta(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        return dict(self._manager.restore(step, args=self._args.Composite(meta=self._args.JsonRestore())).meta)

    def restore(self, like: TrainState, sharding: Sharding | None = None, step: int | None = None) -> tuple[TrainState, dict]:
        """Restore the checkpoint at ``step`` (default latest) into the structure of ``like``.

        Args:
          like: a state of the current model and optimizer (only its structure, shapes and dtypes are
            used).
          sharding: where the restored arrays go (e.g. replicated over the data mesh), which may differ
            from the sharding they were saved with; default: the first device.

        Returns:
          ``(state, meta)``.

        Raises:
          ValueError: the checkpoint was written for another model or optimizer (different arrays,
            shapes or dtypes).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"No checkpoint in {self.directory}.")
        meta = self.restore_meta(step)
        problem = signature_mismatch(meta.get("signature", []), state_signature(like))
        if problem:
            raise ValueError(
                f"The checkpoint {self.directory / str(step)} was written by a different model or optimizer "
                f"(pytree structure/shape mismatch: {problem}). Use a new run folder, or delete the old one "
                "to start over."
            )
        sharding = SingleDeviceSharding(jax.devices()[0]) if sharding is None else sharding
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), like)
        restored = self._manager.restore(step, args=self._args.Composite(state=self._args.StandardRestore(abstract)))
        return restored.state, meta

    def close(self) -> None:
        self._manager.close()
