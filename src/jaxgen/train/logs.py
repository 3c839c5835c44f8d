"""Where the loop's numbers go: ``metrics.jsonl`` in the run folder, TensorBoard if installed, tqdm.

``metrics.jsonl`` holds one JSON object per line: one per epoch (``epoch``, ``step``, ``loss``, the
model's metrics averaged over the epoch, ``eval/<name>`` when evaluated, the timing fields of
:data:`TIMING_KEYS`), plus event lines (``{"event": "diverged", ...}``). When a run resumes, the file
is rewritten from the history stored in the checkpoint, so it always agrees with the state the run
continues from (lines written after the last checkpoint by a killed process are dropped).
"""
from __future__ import annotations

import importlib.util

import json
import sys
from pathlib import Path

from jaxgen.runner import to_jsonable

__all__ = ["TIMING_KEYS", "MetricsLog", "progress_bar"]

TIMING_KEYS = ("examples_per_s", "epoch_time_s", "compile_time_s")
"""Record fields that depend on the machine's speed (everything else is reproducible)."""


def _tensorboard_writer(directory: Path):
    """A ``SummaryWriter`` from tensorboardX or torch when one is installed, else None."""
    if importlib.util.find_spec("tensorboardX") is not None:
        from tensorboardX import SummaryWriter
    elif importlib.util.find_spec("tensorboard") is not None and importlib.util.find_spec("torch") is not None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package too
    else:  # checked first: importing torch only to fail would cost seconds per run
        return None
    return SummaryWriter(str(directory))


class MetricsLog:
    """Append-only JSON-lines log of a run (a no-op without a run folder).

    Args:
      run_dir: the run folder, or None to log nothing.
      history: records already done (restored from a checkpoint); the file is rewritten with them.
      tensorboard: also write scalars to ``<run_dir>/tensorboard`` when a writer is installed.
    """

    def __init__(self, run_dir, history=(), *, tensorboard: bool = True):
        self.path = None if run_dir is None else Path(run_dir) / "metrics.jsonl"
        self._file = None
        self._tb = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")
        for record in history:
            self._file.write(json.dumps(to_jsonable(record)) + "\n")
        self._file.flush()
        if tensorboard:
            self._tb = _tensorboard_writer(self.path.parent / "tensorboard")

    def write(self, record: dict) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(to_jsonable(record)) + "\n")
        self._file.flush()
        if self._tb is not None and "step" in record:
            for name, value in record.items():
                if name not in ("step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(name, value, record["step"])
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar over epochs on stderr (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="epoch", leave=False, dynamic_ncols=True,
                file=sys.stderr, disable=not enabled)
