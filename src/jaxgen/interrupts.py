"""Ctrl-C (SIGINT) and SIGTERM during a run: stop at a safe point, never lose or swallow the signal.

:func:`handled` (the runner wraps every experiment in it) installs handlers for both signals in the
main thread. What a signal does depends on where the run is:

* inside :func:`deferred` (the training loop's periods): the first signal only sets a flag; the loop
  finishes the log period it is in, writes a checkpoint and raises :class:`RunInterrupted` with the
  step. A second signal stops at once (``KeyboardInterrupt``), keeping the last checkpoint.
* anywhere else: ``KeyboardInterrupt`` at once, as Python's default handler does.

A ``KeyboardInterrupt`` raised while Python runs a garbage-collection callback is printed as
"Exception ignored" and dropped (JAX registers such a callback); the flag stays set, so the next
:func:`check` (every :meth:`jaxgen.runner.Run.log` line, progress item and figure, and every log
period of the loop) raises it again: a signal is never swallowed.

No jax import here: the module is imported by the runner before anything heavy.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["RunInterrupted", "handled", "deferred", "requested", "check", "clear"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending: str | None = None  # the name of the first signal not yet acted on
_depth = 0  # how many deferred() regions are open
_installed = 0  # how many handled() contexts are open


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM.

    Attributes:
      signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
      step: the training step the loop stopped after (None: outside a training loop).
      checkpoint: the checkpoint folder written at that step (None: the loop keeps none).
    """

    def __init__(self, signal_name: str = "SIGINT", step: int | None = None, checkpoint=None):
        where = f" at step {step}" if step is not None else ""
        super().__init__(f"{signal_name}{where}")
        self.signal_name = signal_name
        self.step = step
        self.checkpoint = checkpoint


def _handler(signum, frame):
    global _pending
    name = signal.Signals(signum).name
    if _depth > 0 and _pending is None:
        _pending = name
        # os.write: safe inside a signal handler (print may re-enter a half-written buffer)
        os.write(2, f"\njaxgen: {name} received; stopping after the current log period "
                    f"(send it again to stop at once)\n".encode())
        return
    _pending = name
    raise RunInterrupted(name)


@contextlib.contextmanager
def handled():
    """Handle SIGINT and SIGTERM as described in the module docstring while the block runs.

    Only in the main thread (signal handlers cannot be installed elsewhere; there the block runs
    with the handlers it finds). The previous handlers are restored on exit.
    """
    global _installed, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    if _installed == 0:
        _pending = None
    _installed += 1
    for s in _SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _installed -= 1
        for s, h in previous.items():
            signal.signal(s, h)
        if _installed == 0:
            _pending = None


@contextlib.contextmanager
def deferred():
    """Within the block, the first signal sets a flag (:func:`requested`) instead of raising."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def requested() -> str | None:
    """The name of a signal received and not yet acted on, else None."""
    return _pending


def check() -> None:
    """Raise :class:`RunInterrupted` if a signal arrived (outside :func:`deferred` regions)."""
    if _pending is not None and _depth == 0:
        raise RunInterrupted(_pending)


def clear() -> None:
    """Forget a pending signal (after it has been acted on)."""
    global _pending
    _pending = None
