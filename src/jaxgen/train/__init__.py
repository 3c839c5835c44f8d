"""The one training loop for every gradient-trained model (VAE, GAN, PixelCNN).

A model provides ``loss_fn(params, batch, key) -> (loss, metrics)`` (a scalar mean over the batch
and a dict of scalars) and initial ``params``; :func:`fit` does the rest::

    state, history = jaxgen.train.fit(loss_fn, params, optax.adam(1e-3), x_train,
                                      key=jax.random.key(0), epochs=10, batch_size=100,
                                      run_dir=run.dir, eval_fn=eval_fn)

* **State** (:mod:`.state`): :class:`TrainState` pytree of params, optimizer state, step and key.
* **Randomness**: ``key`` is the parent of the named streams ``"state"``, ``"shuffle"`` and
  ``"eval"`` (:func:`jaxgen.keys.streams`); step t uses ``fold_in(state, t)``, epoch e's order
  ``fold_in(shuffle, e)``.
* **Step and epoch** (:mod:`.step`): ``train_step(state, batch)`` uses ``fold_in(key, step)``;
  an epoch is one jitted ``lax.scan`` over device-resident, on-device-shuffled batches (or, with
  ``use_scan=False``, one jitted step per batch fed from host memory), the state donated;
  ``shuffle=False`` keeps the data's order every epoch.
* **Checks before any work**: the data (device arrays on the device), the loss traced once on one
  batch's shapes, and the loss's own ``check_train_data(params, train_data)`` when it has one.
* **Data parallel**: batches are sharded over the ``"data"`` axis of the mesh
  (``NamedSharding(mesh, P(None, "data"))`` for the (n_batches, B, ...) epoch array), the state is
  replicated, and XLA's SPMD partitioner averages the gradients. Multi-host: call
  ``jax.distributed.initialize()`` in every process first; ``data_mesh()`` over ``jax.devices()``
  then spans all hosts. With ``use_scan=True`` every process passes the full data set (it is
  replicated); for per-process shards, build each batch with
  ``jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local_rows)``.
* **Checkpoints and resume** (:mod:`.checkpoint`): orbax, ``<run_dir>/checkpoints/<step>/{state,meta}``;
  a run started again in the same folder continues from the latest checkpoint and ends with the same
  numbers as an uninterrupted run.
* **Logs** (:mod:`.logs`): ``<run_dir>/metrics.jsonl``, TensorBoard when installed, a tqdm bar.
* **Divergence**: a non-finite loss raises :class:`TrainingDiverged` naming the step and epoch;
  finiteness is checked on the host once per epoch, never inside the scan.
"""
from jaxgen.train.checkpoint import Checkpointer
from jaxgen.train.config import TrainConfig
from jaxgen.train.logs import TIMING_KEYS, MetricsLog
from jaxgen.train.loop import TrainingDiverged, fit
from jaxgen.train.state import TrainState, create_train_state
from jaxgen.train.step import make_epoch_fn, make_train_step

__all__ = [
    "fit",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "create_train_state",
    "make_train_step",
    "make_epoch_fn",
    "Checkpointer",
    "MetricsLog",
    "TIMING_KEYS",
]
