"""The one training loop for every gradient-trained model (VAE, GAN, PixelCNN).

A model provides a *trainer* (:mod:`.trainer`): ``init(key, batch) -> state`` (any pytree: one or
two parameter sets, optax states, an EMA of weights) and ``update(state, batch, key) -> (state,
metrics)``; :func:`fit_trainer` does the rest. A model with one loss and one optimizer uses
:func:`fit`, the adapter::

    state, history = jaxgen.train.fit(vae.loss_fn("elbo", beta=4), params,
                                      jaxgen.train.optimizer("adam", lr=1e-3), x_train,
                                      key=jax.random.key(0), epochs=10, batch_size=100,
                                      run_dir=run.dir, eval_fn=eval_fn)
    loop_state, history = jaxgen.train.fit_trainer(gan_trainer, x_train, key=key, steps=20_000,
                                                   batch_size=64, log_every=500, run_dir=run.dir)

* **State** (:mod:`.state`): :class:`LoopState` = the trainer's state, the step and the key;
  ``fit`` returns a :class:`TrainState` (params, opt_state, step, key).
* **Randomness**: ``key`` is the parent of the named streams ``"state"``, ``"shuffle"``, ``"eval"``
  and ``"init"`` (:func:`jaxgen.keys.streams`); step t uses ``fold_in(state, t)``, epoch e's order
  ``fold_in(shuffle, e)``.
* **Log periods** (:mod:`.step`): each period (an epoch by default, or ``log_every`` steps) is one
  jitted ``lax.scan`` of updates, each gathering its batch from the device-resident data (or, with
  ``use_scan=False``, one jitted step per batch fed from host memory), the state donated;
  ``shuffle=False`` keeps the data's order every epoch. Evaluation and checkpoints every so many
  epochs or steps (:class:`TrainConfig`).
* **Checks before any work**: the data (device arrays on the device), the trainer's
  ``check_train_data``, the update traced once on one batch's shapes.
* **Data parallel**: batches are sharded over the ``"data"`` axis of the mesh, the state is
  replicated, and XLA's SPMD partitioner averages the gradients. Multi-host: call
  ``jax.distributed.initialize()`` in every process first; ``data_mesh()`` over ``jax.devices()``
  then spans all hosts. With ``use_scan=True`` every process passes the full data set (it is
  replicated); for per-process shards, build each batch with
  ``jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local_rows)``.
* **Checkpoints and resume** (:mod:`.checkpoint`): orbax, ``<run_dir>/checkpoints/<step>/{state,meta}``;
  a run started again in the same folder continues from the latest checkpoint and ends with the same
  numbers as an uninterrupted run. It is refused when the folder holds another run: another trainer
  fingerprint, batch size, data (a hash computed on the device), key or model arrays; the message
  names each differing setting (``trainer.loss.beta was 1.0, now 8.0``).
* **The fingerprint** (:mod:`.described`): for :func:`fit`, the loss's settings (objective, beta,
  warm-up, k, binarisation: what ``vae.loss_fn`` / ``pixelcnn.loss_fn`` / ``pixelvae.loss_fn``
  record), the whole optimizer's (:func:`optimizer`: name, learning rate, every hyperparameter, the
  schedule over its full length, clipping) and the parameters' static settings (a VAE's config:
  prior and its sizes, likelihood); a GAN's, VAE-GAN's or FactorVAE's trainer fingerprints all its
  fields. Hand-built losses and optax chains are described with :func:`describe`; a run whose
  settings are unknown trains and checkpoints, but resuming it is refused with a message that says
  what to describe.
* **Logs** (:mod:`.logs`): ``<run_dir>/metrics.jsonl``, TensorBoard when installed, a tqdm bar. Under
  ``jaxgen run`` each log period is also one line in the run's ``log.txt`` and on stdout as it
  happens (metrics, examples/s, time so far, ETA), and a resumed fit says ``resumed from step N``.
  :func:`train_seconds` is a fit's wall time over all the sessions of a resumed run.
* **Interrupts** (:mod:`jaxgen.interrupts`): under ``jaxgen run``, SIGINT / SIGTERM let the log
  period in flight finish, write a checkpoint at that step and raise ``RunInterrupted``; the same
  command resumes.
* **Divergence**: a non-finite metric or state raises :class:`TrainingDiverged` naming the step;
  finiteness is checked on the host once per log period, never inside the scan.
"""
from jaxgen.train.checkpoint import Checkpointer
from jaxgen.train.config import TrainConfig
from jaxgen.train.described import DescribedTransformation, UnknownSettings, describe, settings_of
from jaxgen.train.logs import TIMING_KEYS, MetricsLog
from jaxgen.train.loop import TrainingDiverged, fit, fit_trainer, train_seconds
from jaxgen.train.optimizers import optimizer
from jaxgen.train.state import LoopState, TrainState, create_train_state
from jaxgen.train.step import make_chunk_fn, make_train_step
from jaxgen.train.trainer import LossTrainer, ParamsState, split_batch

__all__ = [
    "fit",
    "fit_trainer",
    "train_seconds",
    "optimizer",
    "describe",
    "settings_of",
    "UnknownSettings",
    "DescribedTransformation",
    "TrainConfig",
    "LoopState",
    "TrainState",
    "LossTrainer",
    "ParamsState",
    "TrainingDiverged",
    "create_train_state",
    "make_train_step",
    "make_chunk_fn",
    "split_batch",
    "Checkpointer",
    "MetricsLog",
    "TIMING_KEYS",
]
