"""``fit``: the one training loop (epochs, data parallelism, checkpoints and resume, logging, divergence).

Randomness (the rule of :mod:`jaxgen.keys`): ``key`` is the parent of three named streams,
``"state"`` (stored in the state; step t uses ``fold_in(state, t)``), ``"shuffle"`` (epoch e,
counted from 0, is shuffled with ``fold_in(shuffle, e)``) and ``"eval"`` (``eval_fn`` after epoch e,
counted from 1, gets ``fold_in(eval, e)``). Every random number is thus a function of (key, step)
or (key, epoch), which is what makes a resumed run identical to an uninterrupted one.

Checks before any work: the data (finite floats; device arrays are checked on the device, never
copied to the host), the loss traced once on one batch's shapes (a shape mismatch between data
and model becomes a ``ValueError``), and, when ``loss_fn`` has a ``check_train_data(params,
train_data)`` attribute (the VAE's loss does), the model's own checks of the concrete values.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen import keys
from jaxgen.runner import to_jsonable
from jaxgen.sharding import DATA_AXIS, data_mesh
from jaxgen.train.checkpoint import Checkpointer
from jaxgen.train.config import TrainConfig
from jaxgen.train.logs import MetricsLog, progress_bar
from jaxgen.train.state import TrainState, as_typed_key, create_train_state
from jaxgen.train.step import _checked_loss, epoch_permutation, make_epoch_fn, make_train_step, tree_all_finite
from jaxgen.validation import check_data

__all__ = ["TrainingDiverged", "fit"]


class TrainingDiverged(FloatingPointError):
    """The loss (or the parameters) became non-finite.

    Attributes:
      step: the first step (counted from 1) with a non-finite loss, or the last step of the epoch
        whose parameters became non-finite.
      epoch: the epoch (counted from 1) it happened in.
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


def _check_loss_on_batch(loss_fn, params, leaves, treedef, batch_size: int, key) -> None:
    """Trace ``loss_fn`` once on the shapes of one batch (no computation), so that data that do not
    fit the model (e.g. a wrong number of features) fail with a ``ValueError`` before any work."""
    batch = treedef.unflatten([jax.ShapeDtypeStruct((batch_size,) + tuple(a.shape[1:]), a.dtype) for a in leaves])
    try:
        jax.eval_shape(_checked_loss(loss_fn), params, batch, key, jnp.zeros((), jnp.int32))
    except ValueError:
        raise  # already says what is wrong (our checks, or the model's own)
    except Exception as e:  # Flax's ScopeParamShapeError, jnp's TypeError on mismatched dot shapes, ...
        shapes = ", ".join(f"{tuple(a.shape[1:])}" for a in leaves)
        raise ValueError(
            f"loss_fn fails on a batch of train_data (per-example shape(s) {shapes}): {type(e).__name__}: {e} "
            "Check that the data have the shape the model was built for (e.g. its number of features)."
        ) from e


def _resume(ckpt: Checkpointer, state: TrainState, sharding, fingerprint: dict, epochs: int):
    """Restore the latest checkpoint: ``(state, history, epochs done)``, after checking that it
    belongs to this run (same model and optimizer, batch size, data size and key)."""
    state, meta = ckpt.restore(state, sharding)
    saved = meta.get("settings", {})
    problems = [f"{k} was {saved.get(k)!r}, now {v!r}" for k, v in fingerprint.items() if saved.get(k) != v]
    run_dir = ckpt.directory.parent
    if problems:
        raise ValueError(
            f"The run folder {run_dir} holds a run with other settings ({'; '.join(problems)}); resuming it "
            "would not reproduce that run. Use a new run folder, or delete the old one to start over."
        )
    if meta["epoch"] > epochs:
        raise ValueError(f"The run folder {run_dir} already holds {meta['epoch']} epochs, more than epochs={epochs}.")
    return state, list(meta["history"]), int(meta["epoch"])


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
    """Train ``params`` by minimising ``loss_fn`` over ``train_data`` with ``optimizer``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, metrics)``; ``batch`` has the structure of
        ``train_data`` with leading axis ``batch_size``; ``loss`` is a scalar mean over the batch,
        ``metrics`` a dict of scalars (averaged over each epoch in the log). Optional attribute
        ``loss_fn.check_train_data(params, train_data)``: called once on the concrete data before
        training, to raise ``ValueError`` for values the model cannot use.
      params: initial parameter pytree (not modified; the loop works on a copy).
      optimizer: any ``optax.GradientTransformation`` (learning-rate schedules included).
      train_data: array of shape (N, ...) or a pytree (tuple, dict) of arrays sharing N. Floating
        arrays must be finite (float32, or float64 under ``jax_enable_x64``); integer arrays are kept.
      key: ``jax.random.key(seed)`` (or raw ``PRNGKey`` data): all randomness of the run.
      config: a :class:`TrainConfig` or a mapping of its fields (e.g. ``config.train`` of an
        experiment); ``settings`` given as keywords override it. Needs ``epochs`` and ``batch_size``.
      run_dir: run folder for ``checkpoints/`` and ``metrics.jsonl``; when it already holds a
        checkpoint of this run, training resumes from the latest one. None: nothing is written.
      eval_fn: optional ``eval_fn(params, key) -> dict of scalars``, called every ``eval_every``
        epochs; logged as ``eval/<name>``.
      mesh: device mesh with a ``"data"`` axis (default: :func:`jaxgen.sharding.data_mesh` over all
        devices). Batches are split over it and the state is replicated.
      **settings: fields of :class:`TrainConfig` (``epochs``, ``batch_size``, ``checkpoint_every``,
        ``keep_checkpoints``, ``eval_every``, ``use_scan``, ``shuffle``, ``progress``, ``tensorboard``).

    Returns:
      ``(state, history)``: the final :class:`TrainState` and one record per epoch (the dicts written
      to ``metrics.jsonl``, including those restored from the checkpoint).

    Checkpoints are taken at the end of every ``checkpoint_every``-th epoch and of the last one (a
    resumed run repeats at most the epochs since the last checkpoint). Each epoch has
    N // batch_size steps over a fresh shuffle; ``history[i]["step"]`` counts the updates done.

    Raises:
      ValueError: bad settings (unknown key, batch size < 1, > N or not divisible by the number of
        devices, epochs < 1), non-finite data, data whose shape the loss cannot take (e.g. the
        wrong number of features), values the loss's ``check_train_data`` rejects, a run folder
        holding a checkpoint of another model or of a run with other settings.
      TrainingDiverged: the loss or the parameters became non-finite; the message names the step and
        epoch, and the checkpoints on disk are the finite ones written before.
    """
    cfg = TrainConfig.from_dict(config, **settings)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"eval_fn must be callable or None, got {type(eval_fn).__name__}.")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}.")
    leaves, treedef, n = _check_train_data(train_data)
    if cfg.batch_size > n:
        raise ValueError(f"batch_size must be <= the number of examples N={n}, got {cfg.batch_size}.")
    mesh = data_mesh() if mesh is None else mesh
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have a {DATA_AXIS!r} axis, got axes {mesh.axis_names}.")
    n_dev = mesh.shape[DATA_AXIS]
    if cfg.batch_size % n_dev:
        raise ValueError(
            f"batch_size={cfg.batch_size} is not divisible by the {n_dev} devices of the mesh; use a multiple "
            f"of {n_dev} or a smaller mesh (mesh=jaxgen.sharding.data_mesh(jax.devices()[:k]))."
        )
    n_batches = n // cfg.batch_size

    root = as_typed_key(key)
    check_values = getattr(loss_fn, "check_train_data", None)
    if callable(check_values):
        check_values(params, treedef.unflatten(leaves))
    streams = keys.streams(root, "state", "shuffle", "eval")
    state_key, shuffle_root, eval_root = streams["state"], streams["shuffle"], streams["eval"]
    _check_loss_on_batch(loss_fn, params, leaves, treedef, cfg.batch_size, state_key)
    replicated = NamedSharding(mesh, P())
    # A copy on the mesh: the state is donated to every step, which must not delete the caller's arrays.
    # (device_put alone may alias a single-device array into the replicated one, so copy first.)
    state = jax.device_put(jax.tree.map(jnp.copy, create_train_state(state_key, params, optimizer)), replicated)
    fingerprint = {
        "batch_size": cfg.batch_size,
        "n_examples": n,
        **({} if cfg.shuffle else {"shuffle": False}),  # (absent when True: older run folders still resume)
        "key": np.asarray(jax.random.key_data(root)).tolist(),
        "key_impl": str(jax.random.key_impl(root)),
    }

    history: list[dict] = []
    start_epoch = 0
    with contextlib.ExitStack() as closing:  # closes whatever was opened, in reverse order, even on errors
        ckpt = None
        if run_dir is not None:
            ckpt = Checkpointer(Path(run_dir) / "checkpoints", cfg.keep_checkpoints)
            closing.callback(ckpt.close)
        if ckpt is not None and ckpt.latest_step() is not None:
            state, history, start_epoch = _resume(ckpt, state, replicated, fingerprint, cfg.epochs)
        log = MetricsLog(run_dir, history, tensorboard=cfg.tensorboard)
        closing.callback(log.close)
        bar = progress_bar(cfg.epochs, start_epoch, cfg.progress and start_epoch < cfg.epochs)
        closing.callback(bar.close)
        if start_epoch == cfg.epochs:
            return state, history

        t0 = time.perf_counter()
        train_step = make_train_step(loss_fn, optimizer)
        if cfg.use_scan:
            data = jax.device_put(treedef.unflatten(leaves), replicated)
            epoch_fn = jax.jit(make_epoch_fn(train_step, mesh, n_batches, cfg.batch_size, cfg.shuffle), donate_argnums=0)
            compiled = epoch_fn.lower(state, data, shuffle_root).compile()

            def run_epoch(state, shuffle_key):
                return compiled(state, data, shuffle_key)
        else:
            run_epoch = _host_epoch_fn(train_step, state, leaves, treedef, mesh, n_batches, cfg.batch_size, shuffle_root,
                                       cfg.shuffle)
        compile_s = time.perf_counter() - t0

        for epoch in range(start_epoch, cfg.epochs):
            start_step = epoch * n_batches
            shuffle_key = jax.block_until_ready(jax.random.fold_in(shuffle_root, epoch))
            t0 = time.perf_counter()
            state, metrics, params_ok = run_epoch(state, shuffle_key)
            metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
            params_ok = bool(params_ok)
            dt = time.perf_counter() - t0

            losses = metrics["loss"]
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size or not params_ok:
                step = start_step + (int(bad[0]) + 1 if bad.size else n_batches)
                log.write({"event": "diverged", "epoch": epoch + 1, "step": step})
                raise _diverged(losses, bad, step, epoch, n_batches, ckpt)

            record = {"epoch": epoch + 1, "step": start_step + n_batches}
            for name in ["loss", *sorted(k for k in metrics if k != "loss")]:
                record[name] = float(np.mean(metrics[name], dtype=np.float64))
            if eval_fn is not None and (epoch + 1) % cfg.eval_every == 0:
                record.update(_evaluate(eval_fn, state.params, jax.random.fold_in(eval_root, epoch + 1)))
            record["examples_per_s"] = n_batches * cfg.batch_size / dt
            record["epoch_time_s"] = dt
            if epoch == start_epoch:
                record["compile_time_s"] = compile_s
            record = to_jsonable(record)
            history.append(record)
            if ckpt is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs):
                ckpt.save(state, {"epoch": epoch + 1, "step": record["step"], "history": history, "settings": fingerprint})
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4g}", ex_per_s=f"{record['examples_per_s']:.3g}")
            bar.update(1)
        return state, history


def _host_epoch_fn(train_step, state, leaves, treedef, mesh, n_batches, batch_size, shuffle_root, shuffle=True):
    """The per-step path: data stays in host memory, each step is one call of the compiled step.

    Returns ``run_epoch(state, shuffle_key) -> (state, metrics, params_finite)`` like the scan path,
    with the same batch order (the permutation is computed by the same function on the device).
    """
    batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
    abstract_batch = treedef.unflatten(
        [jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], a.dtype, sharding=batch_sharding) for a in leaves])
    step_fn = jax.jit(train_step, donate_argnums=0).lower(state, abstract_batch).compile()
    n = leaves[0].shape[0]
    order_fn = jax.jit(epoch_permutation, static_argnums=(1, 2, 3, 4)).lower(shuffle_root, n, n_batches, batch_size,
                                                                             shuffle).compile()
    finite_fn = jax.jit(tree_all_finite).lower(state.params).compile()

    def run_epoch(state, shuffle_key):
        idx = np.asarray(order_fn(shuffle_key))
        per_step = []
        for i in range(n_batches):
            batch = treedef.unflatten([jax.device_put(a[idx[i]], batch_sharding) for a in leaves])
            state, metrics = step_fn(state, batch)
            per_step.append(metrics)  # stays on the device: no host sync inside the epoch
        metrics = {k: jnp.stack([m[k] for m in per_step]) for k in per_step[0]}
        return state, metrics, finite_fn(state.params)

    return run_epoch


def _diverged(losses, bad, step, epoch, n_batches, ckpt) -> TrainingDiverged:
    """The error for a non-finite epoch (``bad``: indices of its non-finite per-step losses)."""
    if bad.size:
        what = (f"non-finite loss ({losses[bad[0]]}) at step {step} "
                f"(epoch {epoch + 1}, batch {int(bad[0]) + 1} of {n_batches})")
    else:
        what = (f"the parameters became non-finite in epoch {epoch + 1} (steps {step - n_batches + 1}-{step}) "
                "while the loss stayed finite")
    last = ckpt.latest_step() if ckpt is not None else None
    if ckpt is None:
        where = "No checkpoint was kept (pass run_dir to keep one)."
    elif last is None:
        where = "No checkpoint had been written yet."
    else:
        where = f"The last good checkpoint, {ckpt.directory / str(last)} (step {last}), is kept."
    return TrainingDiverged(f"Training diverged: {what}. {where} Lower the learning rate or check the model's loss.",
                            step=step, epoch=epoch + 1, checkpoint_step=last)


def _evaluate(eval_fn, params, key) -> dict:
    out = eval_fn(params, key)
    if not isinstance(out, Mapping):
        raise ValueError(f"eval_fn must return a dict of scalars, got {type(out).__name__}.")
    result = {}
    for name, value in out.items():
        value = np.asarray(value)
        if value.shape != ():
            raise ValueError(f"eval_fn's {name!r} must be a scalar, got shape {value.shape}.")
        result[f"eval/{name}"] = float(value)
    return result
