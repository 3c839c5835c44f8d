"""The one training loop: ``fit_trainer`` for any trainer, ``fit`` for one loss and one optimizer.

The loop owns everything but the update (:mod:`jaxgen.train.trainer`): the step counter and the
keys, the batches (shuffled per epoch, sharded over the mesh), the scan of updates over
device-resident data, the finiteness checks of the metrics and of the whole state, checkpoints
and evaluation every so many steps or epochs, logs, and resuming a killed run bit-exactly.

Randomness (the rule of :mod:`jaxgen.keys`): ``key`` is the parent of four named streams,
``"state"`` (stored in the state; step t uses ``fold_in(state, t)``), ``"shuffle"`` (epoch e,
counted from 0, is shuffled with ``fold_in(shuffle, e)``), ``"eval"`` (the evaluation after the k-th
log record, counted from 1, gets ``fold_in(eval, k)``) and ``"init"`` (the trainer's ``init``).
Every random number is thus a function of (key, step), (key, epoch) or (key, record), which is
what makes a resumed run identical to an uninterrupted one.

Checks before any work: the data (finite floats; device arrays are checked on the device, never
copied to the host), the trainer's own ``check_train_data``, and its update traced once on one
batch's shapes (a shape mismatch between data and model becomes a ``ValueError``).
"""
from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen import interrupts, keys
from jaxgen.runner import ExperimentError, RunFolderConflict, active_run, to_jsonable
from jaxgen.sharding import DATA_AXIS, data_mesh
from jaxgen.train.checkpoint import Checkpointer
from jaxgen.train.config import Schedule, TrainConfig
from jaxgen.train.described import UnknownSettings
from jaxgen.train.logs import MetricsLog, PeriodLines, progress_bar
from jaxgen.train.state import LoopState, TrainState, as_typed_key
from jaxgen.train.step import epoch_permutation, make_chunk_fn, make_loop_step, tree_all_finite
from jaxgen.train.trainer import LossTrainer, accepts_step, data_fingerprint
from jaxgen.validation import check_data

__all__ = ["TrainingDiverged", "TrainSettingsError", "fit", "fit_trainer", "train_seconds"]


class TrainSettingsError(ExperimentError):
    """Training settings the data cannot satisfy (a batch larger than the data set, or one the devices
    cannot split): a ``ValueError`` raised before any work, which ``jaxgen run`` reports as a user
    error (one line, exit status 2)."""


class TrainingDiverged(FloatingPointError):
    """A metric or the training state became non-finite.

    Attributes:
      step: the first step (counted from 1) with a non-finite metric, or the last step of the log
        period whose state became non-finite.
      epoch: the epoch (counted from 1) that step belongs to.
      checkpoint_step: the step of the last good checkpoint on disk (None if there is none).
    """

    def __init__(self, message: str, *, step: int, epoch: int, checkpoint_step: int | None):
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.checkpoint_step = checkpoint_step


def _check_train_data(data):
    """Validate the data pytree; returns (leaves, treedef, N).

    NumPy (host) leaves are checked and converted by :func:`jaxgen.validation.check_data`; JAX
    arrays stay where they are (a GPU's data is not copied to the host): their finiteness is one
    reduction on the device.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(data)
    if not flat:
        raise ValueError("train_data is empty: pass an array of shape (N, ...) or a pytree of such arrays.")
    leaves, n = [], None
    for path, leaf in flat:
        name = "train_data" + jax.tree_util.keystr(path)
        arr = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
        if arr.ndim < 1:
            raise ValueError(f"{name} must have a leading example axis, got a scalar.")
        if arr.shape[0] < 1:
            raise ValueError(f"{name} has 0 samples.")
        if not (jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == bool):
            # floats: finiteness and the dtype rule of the whole package (JAX arrays on their device)
            arr = check_data(arr, name=name, ndim=arr.ndim)
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"All train_data arrays must have the same number of rows; {name} has {arr.shape[0]}, not {n}.")
        n = arr.shape[0]
        leaves.append(arr)
    return leaves, treedef, n


def _check_update_on_batch(trainer, model_state, leaves, treedef, batch_size: int, key) -> None:
    """Trace the trainer's update once on the shapes of one batch (no computation), so that data
    that do not fit the model (e.g. a wrong number of features) fail with a ``ValueError`` before
    any work."""
    batch = treedef.unflatten([jax.ShapeDtypeStruct((batch_size,) + tuple(a.shape[1:]), a.dtype) for a in leaves])
    step = jnp.zeros((), jnp.int32)
    update = trainer.update
    call = (lambda s, b, k, t: update(s, b, k, step=t)) if accepts_step(update) else (lambda s, b, k, t: update(s, b, k))
    shapes = ", ".join(f"{tuple(a.shape[1:])}" for a in leaves)
    who = getattr(trainer, "name", f"{type(trainer).__name__}.update")
    try:
        _, metrics = jax.eval_shape(call, model_state, batch, key, step)
    except ValueError as e:  # the model's own check, or jnp's (e.g. shapes that do not broadcast): keep its words
        raise ValueError(f"{who} fails on a batch of train_data (per-example shape(s) {shapes}): {e}") from e
    except Exception as e:  # Flax's ScopeParamShapeError, jnp's TypeError on mismatched dot shapes, ...
        raise ValueError(
            f"{who} fails on a batch of train_data (per-example shape(s) {shapes}): {type(e).__name__}: {e} "
            "Check that the data have the shape the model was built for (e.g. its number of features)."
        ) from e
    if not isinstance(metrics, Mapping) or any(jnp.shape(v) != () for v in metrics.values()):
        raise ValueError(f"{type(trainer).__name__}.update must return (state, metrics) with a dict of scalar metrics.")


_ABSENT = object()


def _differences(saved, now, name: str) -> list[str]:
    """``"<name>.<key> was <saved>, now <now>"`` for every setting that differs (nested dicts by
    dotted names; the values went through JSON, so equality is exact)."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        keys_ = list(saved) + [k for k in now if k not in saved]
        return [d for k in keys_
                for d in _differences(saved.get(k, _ABSENT), now.get(k, _ABSENT), f"{name}.{k}" if name else str(k))]
    if saved == now:
        return []
    show = lambda v: "not recorded" if v is _ABSENT else repr(v)  # noqa: E731
    return [f"{name} was {show(saved)}, now {show(now)}"]


def _trainer_settings(trainer) -> tuple[Any, str | None]:
    """``(fingerprint, None)``, or ``(None, why)`` when the trainer's settings cannot be known."""
    fingerprint = getattr(trainer, "fingerprint", None)
    if not callable(fingerprint):
        return None, (f"{type(trainer).__name__} has no fingerprint() method, so the settings that change its numbers "
                      "cannot be compared with the checkpoint's; give it one that returns them (a JSON-able dict).")
    try:
        return to_jsonable(fingerprint()), None
    except UnknownSettings as e:
        return None, str(e)


def _resume(ckpt: Checkpointer, state: LoopState, sharding, fingerprint: dict, sched: Schedule, steps_per_epoch: int):
    """Restore the latest checkpoint: ``(state, history)``, after checking that it belongs to this
    run (same trainer settings, batch size, data and key; then the same model arrays)."""
    saved = ckpt.restore_meta().get("settings", {})
    run_dir = ckpt.directory.parent
    if "trainer" in saved and saved["trainer"] is None:
        raise RunFolderConflict(
            f"The run folder {run_dir} holds a checkpoint of a run whose loss, optimizer or trainer had no description "
            "(its settings were not recorded), so nothing can tell whether this run is the same one; resuming it is "
            "refused. Use a new run folder, or delete the old one to start over (jaxgen run: --out elsewhere, or --fresh)."
        )
    problems = _differences(saved, fingerprint, "")
    if problems:
        raise RunFolderConflict(
            f"The run folder {run_dir} holds a run with other settings ({'; '.join(problems)}); resuming it "
            "would not reproduce that run. Use a new run folder, or delete the old one to start over (jaxgen run: --out "
            "elsewhere, or --fresh)."
        )
    state, meta = ckpt.restore(state, sharding)
    done = int(meta["step"])
    if done > sched.total:
        held, asked = (done // steps_per_epoch, sched.total // steps_per_epoch) if sched.unit == "epochs" else (done, sched.total)
        raise RunFolderConflict(f"The run folder {run_dir} already holds {held} {sched.unit}, more than "
                                f"{sched.unit}={asked}.")
    return state, list(meta["history"])


def fit_trainer(
    trainer,
    train_data: Any,
    *,
    key,
    config: TrainConfig | Mapping | None = None,
    run_dir=None,
    eval_fn: Callable | None = None,
    mesh: Mesh | None = None,
    **settings,
) -> tuple[LoopState, list[dict]]:
    """Train with ``trainer`` (see :mod:`jaxgen.train.trainer`) over ``train_data``.

    Args:
      trainer: an object with ``init(key, batch) -> state`` and ``update(state, batch, key[, step=])
        -> (state, metrics)``, ``fingerprint()`` (the settings that change its numbers; without it,
        or when it raises :class:`~jaxgen.train.UnknownSettings`, the run trains and checkpoints but
        cannot be resumed) and optionally ``check_train_data(train_data)``.
      train_data: array of shape (N, ...) or a pytree (tuple, dict) of arrays sharing N. Floating
        arrays must be finite (float32, or float64 under ``jax_enable_x64``); integer arrays are kept.
      key: ``jax.random.key(seed)`` (or raw ``PRNGKey`` data): all randomness of the run.
      config: a :class:`TrainConfig` or a mapping of its fields; ``settings`` given as keywords
        override it. Needs ``batch_size`` and the length, ``epochs`` or ``steps``.
      run_dir: run folder for ``checkpoints/`` and ``metrics.jsonl``; when it already holds a
        checkpoint of this run, training resumes from the latest one. "This run" means the same
        trainer fingerprint (named settings compared one by one), batch size, number of examples,
        data (a hash computed on the device), key and shuffling, then the same model arrays. None:
        nothing is written.
      eval_fn: optional ``eval_fn(model_state, key) -> dict of scalars`` (``model_state`` is the
        trainer's state), called every ``eval_every``; logged as ``eval/<name>``.
      mesh: device mesh with a ``"data"`` axis (default: :func:`jaxgen.sharding.data_mesh` over all
        devices). Batches are split over it and the state is replicated.
      **settings: fields of :class:`TrainConfig`.

    Returns:
      ``(state, history)``: the final :class:`LoopState` (``state.model`` is the trainer's state)
      and one record per log period (the dicts written to ``metrics.jsonl``, including those
      restored from the checkpoint): ``epoch`` (epochs done, fractional for a period that ends
      inside an epoch), ``step``, each metric averaged over the period's steps, ``eval/<name>``,
      and the timings ``examples_per_s``, ``time_s`` (and ``compile_time_s`` in the first record
      of a process) and ``train_s`` (the fit's wall time up to the record, over every session of a
      resumed run: :func:`train_seconds`).

    Under ``jaxgen run`` (:func:`jaxgen.runner.active_run`), each log period is also logged as one
    line (``log.txt`` and stdout, as it happens, with an ETA) instead of the progress bar, and
    SIGINT / SIGTERM stop the loop after the period in flight: a checkpoint is written at that
    step (with ``run_dir``) and :class:`jaxgen.interrupts.RunInterrupted` is raised.

    Each epoch has N // batch_size steps over a fresh shuffle; a log period may end inside an
    epoch, and the next continues that epoch's order. Checkpoints are written at the end of every
    ``checkpoint_every`` and of the last step (a resumed run repeats at most the steps since).

    Raises:
      ValueError: bad settings (unknown key, batch size < 1, > N or not divisible by the number of
        devices, a length < 1, a cadence that is not a multiple of ``log_every``), non-finite
        data, data whose shape the update cannot take, values ``check_train_data`` rejects, a run
        folder holding a checkpoint of another model or of a run with other settings (the message
        lists each differing setting by name, e.g. ``trainer.loss.beta was 1.0, now 8.0``), or any
        checkpoint at all when this trainer's settings are unknown (or were when it was written);
        the run-folder refusals are :class:`jaxgen.runner.RunFolderConflict` and the impossible
        batch sizes :class:`TrainSettingsError` (both ``ValueError``; ``jaxgen run`` prints them
        as one line and exits 2).
      TrainingDiverged: a metric or the state became non-finite; the message names the step, and
        the checkpoints on disk are the finite ones written before.
    """
    cfg = TrainConfig.from_dict(config, **settings)
    for method in ("init", "update"):
        if not callable(getattr(trainer, method, None)):
            raise ValueError(f"trainer must have init(key, batch) and update(state, batch, key) methods; "
                             f"{type(trainer).__name__} has no {method}.")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"eval_fn must be callable or None, got {type(eval_fn).__name__}.")
    leaves, treedef, n = _check_train_data(train_data)
    if cfg.batch_size > n:
        raise TrainSettingsError(f"batch_size must be <= the number of examples N={n}, got {cfg.batch_size}; "
                                 "lower the batch size (or train on more examples).")
    mesh = data_mesh() if mesh is None else mesh
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, got axes {mesh.axis_names}.")
    n_dev = mesh.shape[DATA_AXIS]
    if cfg.batch_size % n_dev:
        raise TrainSettingsError(
            f"batch_size={cfg.batch_size} is not divisible by the {n_dev} devices of the mesh; use a multiple "
            f"of {n_dev} or a smaller mesh (mesh=jaxgen.sharding.data_mesh(jax.devices()[:k]))."
        )
    n_batches = n // cfg.batch_size
    sched = cfg.schedule(n_batches)

    root = as_typed_key(key)
    check_values = getattr(trainer, "check_train_data", None)
    if callable(check_values):
        check_values(treedef.unflatten(leaves))
    streams = keys.streams(root, "state", "shuffle", "eval", "init")
    first = treedef.unflatten([a[: cfg.batch_size] for a in leaves])
    model_state = trainer.init(streams["init"], first)
    _check_update_on_batch(trainer, model_state, leaves, treedef, cfg.batch_size, streams["state"])
    replicated = NamedSharding(mesh, P())
    # A copy on the mesh: the state is donated to every step, which must not delete the caller's arrays.
    # (device_put alone may alias a single-device array into the replicated one, so copy first.)
    state = LoopState(model=model_state, step=jnp.zeros((), jnp.int32), key=jax.random.key_data(streams["state"]),
                      key_impl=str(jax.random.key_impl(root)))
    state = jax.device_put(jax.tree.map(jnp.copy, state), replicated)
    fingerprint = {
        "batch_size": cfg.batch_size,
        "n_examples": n,
        **({} if cfg.shuffle else {"shuffle": False}),
        "key": np.asarray(jax.random.key_data(root)).tolist(),
        "key_impl": str(jax.random.key_impl(root)),
        "data": data_fingerprint(leaves),
    }
    fingerprint["trainer"], unknown = _trainer_settings(trainer)  # None, and why, when they cannot be known

    history: list[dict] = []
    with contextlib.ExitStack() as closing:  # closes whatever was opened, in reverse order, even on errors
        ckpt = None
        if run_dir is not None:
            ckpt = Checkpointer(Path(run_dir) / "checkpoints", cfg.keep_checkpoints)
            closing.callback(ckpt.close)
        if ckpt is not None and ckpt.latest_step() is not None:
            if unknown is not None:
                raise RunFolderConflict(
                    f"The run folder {Path(run_dir).absolute()} holds a checkpoint (step {ckpt.latest_step()}), but "
                    f"this run's settings cannot be compared with it: {unknown} Resuming blindly could continue a run "
                    "with other settings, so it is refused: do as said, or use another run folder (or delete this one "
                    "to start over).")
            state, history = _resume(ckpt, state, replicated, fingerprint, sched, n_batches)
        elif ckpt is not None and unknown is not None:
            warnings.warn(f"The checkpoints of this run in {Path(run_dir).absolute()} cannot be resumed: {unknown}",
                          UserWarning, stacklevel=_caller_level())
        done = int(state.step)
        log = MetricsLog(run_dir, history, tensorboard=cfg.tensorboard)
        closing.callback(log.close)
        n_records = -(-sched.total // sched.log)
        unit = "epoch" if sched.log == n_batches else f"x{sched.log} steps"
        run = active_run()  # inside `jaxgen run`: one line per log period into log.txt and stdout
        lines = None if run is None else PeriodLines(run.log, _fit_name(run, run_dir), sched.total, n_batches, sched.unit)
        if lines is not None and done:
            lines.say(f"resumed from step {done} of {sched.total}" + (" (finished)" if done >= sched.total else ""))
        bar = progress_bar(n_records, len(history), cfg.progress and done < sched.total and lines is None, unit=unit)
        closing.callback(bar.close)
        if done >= sched.total:
            return state, history
        # the training time of this fit over all its sessions: what the checkpoint's history recorded, then this session
        t_session = time.perf_counter()
        seconds_before = train_seconds(history)

        t0 = time.perf_counter()
        loop_step = make_loop_step(trainer.update, mesh)
        order = _EpochOrder(streams["shuffle"], n, n_batches, cfg.batch_size, cfg.shuffle)
        if cfg.use_scan:
            data = jax.device_put(treedef.unflatten(leaves), replicated)
            chunk_fn = jax.jit(make_chunk_fn(loop_step, mesh), donate_argnums=0)
            compiled_length = min(sched.log, sched.total - done)
            compiled = chunk_fn.lower(state, data, order.indices(done, compiled_length)).compile()

            def run_period(state, start, length):
                fn = compiled if length == compiled_length else chunk_fn  # a shorter last period compiles anew
                return fn(state, data, order.indices(start, length))
        else:
            run_period = _host_period_fn(loop_step, state, leaves, treedef, mesh, cfg.batch_size, order)
        compile_s = time.perf_counter() - t0

        first_period = True
        start_step, t_periods = done, time.perf_counter()  # for the ETA: the pace of this session, compilation excluded
        # SIGINT / SIGTERM (under `jaxgen run`): the period in flight finishes, a checkpoint is written, then the
        # loop stops with RunInterrupted (jaxgen.interrupts); a second signal stops at once.
        with interrupts.deferred():
            while done < sched.total:
                if interrupts.requested():  # e.g. received during compilation, or dropped by a gc callback
                    raise _interrupted(ckpt, state, done, history, fingerprint)
                length = min(sched.log, sched.total - done)
                t0 = time.perf_counter()
                state, metrics, state_ok = run_period(state, done, length)
                metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
                state_ok = bool(state_ok)
                dt = time.perf_counter() - t0
                # "loss" first, then the other losses (a GAN's d_loss, g_loss), then the rest: the bar shows the first ones
                names = sorted(metrics, key=lambda k: (k != "loss", not k.endswith("loss"), k))
                bad = _first_non_finite(metrics, names)
                if bad is not None or not state_ok:
                    step = done + (bad[1] + 1 if bad is not None else length)
                    log.write({"event": "diverged", "epoch": (step - 1) // n_batches + 1, "step": step})
                    raise _diverged(metrics, bad, step, done, length, n_batches, ckpt)
                done += length
                record = {"epoch": _epochs(done, n_batches), "step": done}
                for name in names:
                    record[name] = float(np.mean(metrics[name], dtype=np.float64))
                if eval_fn is not None and (done % sched.eval == 0 or done == sched.total):
                    record.update(_evaluate(eval_fn, state.model, jax.random.fold_in(streams["eval"], len(history) + 1)))
                record["examples_per_s"] = length * cfg.batch_size / dt
                record["time_s"] = dt
                if first_period:
                    record["compile_time_s"] = compile_s
                    first_period = False
                record["train_s"] = seconds_before + time.perf_counter() - t_session
                record = to_jsonable(record)
                history.append(record)
                saved = ckpt is not None and (done % sched.checkpoint == 0 or done == sched.total)
                if saved:
                    ckpt.save(state, {"step": done, "history": history, "settings": fingerprint})
                log.write(record)
                if lines is not None:
                    lines.period(record, names, steps=done - start_step, seconds=time.perf_counter() - t_periods)
                bar.set_postfix(**{k: f"{record[k]:.4g}" for k in names[:2]}, ex_per_s=f"{record['examples_per_s']:.3g}")
                bar.update(1)
        return state, history


def train_seconds(history: list[dict]) -> float:
    """The wall time of a fit in seconds, over every session of a resumed run.

    Args:
      history: the records :func:`fit_trainer` / :func:`fit` returned.

    Returns:
      ``train_s`` of the last record (compilation, the periods, evaluations and checkpoints of
      each session); for records written before that field existed, the sum of the periods'
      ``time_s`` and ``compile_time_s``. Time the fit with this rather than a clock around the
      call: a resumed run's call only restores what earlier sessions did.
    """
    if not history:
        return 0.0
    if "train_s" in history[-1]:
        return float(history[-1]["train_s"])
    return float(sum(r.get("time_s", 0.0) + r.get("compile_time_s", 0.0) for r in history if "step" in r))


def _fit_name(run, run_dir) -> str:
    """How the period lines name a fit: ``train``, then its run folder relative to the experiment's
    (without a leading ``train/``: ``train vae_seed0``), if it has its own."""
    if run_dir is None:
        return "train"
    try:
        parts = Path(run_dir).resolve().relative_to(run.dir.resolve()).parts
    except ValueError:
        return f"train {run_dir}"
    parts = parts[1:] if parts[:1] == ("train",) else parts
    return " ".join(["train", "/".join(parts)]) if parts else "train"


def _interrupted(ckpt, state, done: int, history: list, fingerprint: dict) -> interrupts.RunInterrupted:
    """Write a checkpoint at step ``done`` (when the loop keeps them and it is not on disk yet) and
    return the :class:`~jaxgen.interrupts.RunInterrupted` to raise."""
    if ckpt is not None and done and ckpt.latest_step() != done:
        ckpt.save(state, {"step": done, "history": history, "settings": fingerprint})
    where = ckpt.directory / str(done) if ckpt is not None and ckpt.latest_step() == done else None
    return interrupts.RunInterrupted(interrupts.requested() or "SIGINT", step=done, checkpoint=where)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package (the user's call of ``fit`` or
    ``fit_trainer``), for a warning issued by the caller of this function."""
    here, level, frame = str(Path(__file__).parent), 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(here):
        frame, level = frame.f_back, level + 1
    return level


def _epochs(step: int, n_batches: int):
    """Epochs done after ``step`` steps: an int at an epoch's end, else a float."""
    q, r = divmod(step, n_batches)
    return q if r == 0 else round(step / n_batches, 6)


def _first_non_finite(metrics: dict, names: list[str]):
    """``(name, index)`` of the first step (then the first metric in ``names``) that is not finite."""
    first = None
    for name in names:
        bad = np.flatnonzero(~np.isfinite(metrics[name]))
        if bad.size and (first is None or bad[0] < first[1]):
            first = (name, int(bad[0]))
    return first


class _EpochOrder:
    """The example indices of any run of steps: step t takes row ``t % n_batches`` of epoch
    ``t // n_batches``'s permutation (``fold_in(shuffle, epoch)``), whatever the log periods."""

    def __init__(self, shuffle_root, n: int, n_batches: int, batch_size: int, shuffle: bool):
        self._root = shuffle_root
        self._n_batches = n_batches
        self._perm = jax.jit(epoch_permutation, static_argnums=(1, 2, 3, 4)).lower(
            shuffle_root, n, n_batches, batch_size, shuffle).compile()
        self._cache: dict[int, jax.Array] = {}

    def epoch(self, e: int) -> jax.Array:
        if e not in self._cache:
            self._cache = {e: self._perm(jax.random.fold_in(self._root, e))}  # one epoch held at a time
        return self._cache[e]

    def indices(self, start: int, length: int) -> jax.Array:
        """(length, batch_size) int32 indices of steps ``start .. start + length - 1``."""
        pieces, t = [], start
        while t < start + length:
            e, i = divmod(t, self._n_batches)
            take = min(self._n_batches - i, start + length - t)
            pieces.append(self.epoch(e)[i:i + take])
            t += take
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)


def _host_period_fn(loop_step, state, leaves, treedef, mesh, batch_size, order: _EpochOrder):
    """The per-step path: data stays in host memory, each step is one call of the compiled step.

    Returns ``run_period(state, start, length) -> (state, metrics, state_finite)`` like the scan
    path, with the same batches (the indices come from the same :class:`_EpochOrder`).
    """
    batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
    abstract_batch = treedef.unflatten(
        [jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], a.dtype, sharding=batch_sharding) for a in leaves])
    step_fn = jax.jit(loop_step, donate_argnums=0).lower(state, abstract_batch).compile()
    finite_fn = jax.jit(lambda s: tree_all_finite(s.model)).lower(state).compile()

    def run_period(state, start, length):
        idx = np.asarray(order.indices(start, length))
        per_step = []
        for rows in idx:
            batch = treedef.unflatten([jax.device_put(a[rows], batch_sharding) for a in leaves])
            state, metrics = step_fn(state, batch)
            per_step.append(metrics)  # stays on the device: no host sync inside the period
        metrics = {k: jnp.stack([m[k] for m in per_step]) for k in per_step[0]}
        return state, metrics, finite_fn(state)

    return run_period


def _diverged(metrics, bad, step, start, length, n_batches, ckpt) -> TrainingDiverged:
    """The error for a non-finite log period (``bad``: (metric, index) of the first non-finite value)."""
    epoch = (step - 1) // n_batches + 1
    if bad is not None:
        name, i = bad
        what = (f"non-finite {name} ({metrics[name][i]}) at step {step} "
                f"(epoch {epoch}, batch {(step - 1) % n_batches + 1} of {n_batches})")
    else:
        what = (f"the training state became non-finite in steps {start + 1}-{start + length} (epoch {epoch}) "
                "while the metrics stayed finite")
    last = ckpt.latest_step() if ckpt is not None else None
    if ckpt is None:
        where = "No checkpoint was kept (pass run_dir to keep one)."
    elif last is None:
        where = "No checkpoint had been written yet."
    else:
        where = f"The last good checkpoint, {ckpt.directory / str(last)} (step {last}), is kept."
    return TrainingDiverged(f"Training diverged: {what}. {where} Lower the learning rate or check the model's loss.",
                            step=step, epoch=epoch, checkpoint_step=last)


def _evaluate(eval_fn, model_state, key) -> dict:
    out = eval_fn(model_state, key)
    if not isinstance(out, Mapping):
        raise ValueError(f"eval_fn must return a dict of scalars, got {type(out).__name__}.")
    result = {}
    for name, value in out.items():
        value = np.asarray(value)
        if value.shape != ():
            raise ValueError(f"eval_fn's {name!r} must be a scalar, got shape {value.shape}.")
        result[f"eval/{name}"] = float(value)
    return result


def fit(
    loss_fn: Callable,
    params: Any,
    optimizer,
    train_data: Any,
    *,
    key,
    config: TrainConfig | Mapping | None = None,
    run_dir=None,
    eval_fn: Callable | None = None,
    mesh: Mesh | None = None,
    **settings,
) -> tuple[TrainState, list[dict]]:
    """Train ``params`` by minimising ``loss_fn`` over ``train_data`` with ``optimizer``:
    :func:`fit_trainer` with a :class:`~jaxgen.train.trainer.LossTrainer`.

    Args:
      loss_fn: ``loss_fn(params, batch, key[, step=]) -> (loss, metrics)``; ``batch`` has the
        structure of ``train_data`` with leading axis ``batch_size``; ``loss`` is a scalar mean over
        the batch, ``metrics`` a dict of scalars (averaged over each log period). Optional
        attribute ``loss_fn.check_train_data(params, train_data)``: called once on the concrete
        data before training, to raise ``ValueError`` for values the model cannot use.
      params: initial parameter pytree (not modified; the loop works on a copy).
      optimizer: any ``optax.GradientTransformation`` (learning-rate schedules included), best
        built by :func:`jaxgen.train.optimizer`.
      eval_fn: optional ``eval_fn(params, key) -> dict of scalars``.
      train_data, key, config, run_dir, mesh, settings: as in :func:`fit_trainer`.

    Returns:
      ``(state, history)``: the final :class:`TrainState` (params, opt_state, step, key) and the
      records of :func:`fit_trainer`.

    The resume fingerprint holds the loss's and the optimizer's descriptions (their ``settings``:
    :func:`jaxgen.train.optimizer` and jaxgen's loss builders set them, :func:`jaxgen.train.describe`
    adds them to anything else) and the parameters' static settings (a VAE's config: prior,
    likelihood, sizes). Without a description of both, the run trains and checkpoints (with a
    warning when ``run_dir`` is given) but a rerun in the same folder is refused.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}.")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"eval_fn must be callable or None, got {type(eval_fn).__name__}.")
    on_params = None if eval_fn is None else (lambda model_state, k: eval_fn(model_state.params, k))
    state, history = fit_trainer(LossTrainer(loss_fn, params, optimizer), train_data, key=key, config=config,
                                 run_dir=run_dir, eval_fn=on_params, mesh=mesh, **settings)
    return TrainState(params=state.model.params, opt_state=state.model.opt_state, step=state.step, key=state.key,
                      key_impl=state.key_impl), history
