"""Where the loop's numbers go: ``metrics.jsonl`` in the run folder, TensorBoard if installed, tqdm.

``metrics.jsonl`` holds one JSON object per line: one per log period, an epoch by default (``epoch``,
``step``, the model's metrics averaged over the period, ``eval/<name>`` when evaluated, the timing fields of
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

__all__ = ["TIMING_KEYS", "MetricsLog", "PeriodLines", "progress_bar", "duration"]

TIMING_KEYS = ("examples_per_s", "time_s", "compile_time_s", "train_s")
"""Record fields that depend on the machine's speed (everything else is reproducible). ``train_s`` is the
wall time of the fit up to the record, summed over the sessions of a resumed run."""


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


class _PlainLines:
    """The progress of a run that is not on a terminal: plain lines on stderr, none redrawn.

    One line ``train: epoch e/E loss=... ex_per_s=...`` for the first and the last log period and
    at most one per ``interval_s`` seconds between them, so a log file gets at most a line per
    period (and far fewer in long runs). Same methods as the tqdm bar the loop uses.
    """

    def __init__(self, total: int, initial: int, interval_s: float, stream, unit: str = "epoch"):
        self.total, self.n, self.interval_s, self.stream, self.unit = total, initial, interval_s, stream, unit
        self._postfix = ""
        self._last = None  # monotonic time of the last line

    def set_postfix(self, **values) -> None:
        self._postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        import time

        self.n += n
        now = time.monotonic()
        if self._last is None or self.n >= self.total or now - self._last >= self.interval_s:
            self._last = now
            print(f"train: {self.unit} {self.n}/{self.total} {self._postfix}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        pass


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``: a duration for people."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    m, sec = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class PeriodLines:
    """One line per log period through ``say`` (a run's ``log``: ``log.txt`` and stdout, as it happens).

    ``train vae/seed0: epoch 3/20 loss=98.12 eval/test_nll=101.3 | 1.52e+04 ex/s, 12 s so far, ETA 57 s``:
    where the fit is (epochs for an epoch-length run, else steps), the first metrics and every
    evaluation, the speed, the fit's training time over all its sessions and the time left at this
    session's pace (compilation excluded).
    """

    def __init__(self, say, name: str, total_steps: int, steps_per_epoch: int, unit: str):
        self._say, self.name, self.total, self.per_epoch, self.unit = say, name, total_steps, steps_per_epoch, unit

    def say(self, text: str) -> None:
        self._say(f"{self.name}: {text}")

    def period(self, record: dict, names, *, steps: int, seconds: float) -> None:
        """Log ``record`` (a history record); ``steps`` and ``seconds``: done in this session so far."""
        step = int(record["step"])
        if self.unit == "epochs":
            where = f"epoch {record['epoch']:g}/{self.total // self.per_epoch}"
        else:
            where = f"step {step}/{self.total} (epoch {record['epoch']:.4g})"
        shown = list(names[:4]) + sorted(k for k in record if k.startswith("eval/"))
        values = " ".join(f"{k}={record[k]:.5g}" for k in shown if isinstance(record.get(k), (int, float)))
        eta = seconds / steps * (self.total - step) if steps else float("nan")
        left = f"ETA {duration(eta)}" if step < self.total else "done"
        self.say(f"{where} {values} | {record['examples_per_s']:.3g} ex/s, {duration(record['train_s'])} so far, {left}")


def progress_bar(total: int, initial: int, enabled: bool, *, interval_s: float = 30.0, unit: str = "epoch"):
    """Progress over log periods on stderr: a tqdm bar on a terminal, else plain lines (see :class:`_PlainLines`).

    A bar's redraws written to a file or pipe (``make tour > log``, CI) become hundreds of lines of
    carriage returns, so the bar is drawn only when stderr is a TTY. Nothing at all when ``enabled``
    is False.

    Args:
      total: log periods in the run.
      initial: log periods already done (a resumed run).
      enabled: show progress at all.
      interval_s: off a terminal, the least time between two lines (first and last period always print).
      unit: what a period is called ("epoch", or e.g. "x100 steps").

    Returns:
      an object with ``set_postfix(**values)``, ``update(n)`` and ``close()``.
    """
    from jaxgen.runner import stderr_is_terminal

    if enabled and not stderr_is_terminal():
        return _PlainLines(total, initial, interval_s, sys.stderr, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit=unit, leave=False, dynamic_ncols=True,
                file=sys.stderr, disable=not enabled)
