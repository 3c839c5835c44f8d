"""A small training run for the resume tests, importable and runnable as a script.

``python train_resume_helper.py RUN_DIR OUT.npz [--sleep S] [--gan]`` trains the problem of
:func:`problem` (or, with ``--gan``, the GAN of :func:`gan_problem`) in RUN_DIR (resuming when it holds a checkpoint), sleeping S seconds in the
evaluation hook of every epoch so that a test can kill it mid-run, and writes the final parameters
and the history (timing fields removed) to OUT.npz. It mirrors tests/conftest.py's JAX settings
(4 virtual CPU devices, most optimisations off) so that its numbers equal an in-process run.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxgen import train  # noqa: E402

if os.environ.get("JAXGEN_TEST_OPTIMIZE", "0") != "1":
    jax.config.update("jax_disable_most_optimizations", True)

EPOCHS = 8
N, D, BATCH = 160, 4, 16
LOSS_SETTINGS = {"name": "noisy_mlp_regression", "keep": 0.9}  # the description of problem()'s loss


def problem():
    """(loss_fn, params, optimizer, data, key, settings) of a noisy 2-layer MLP regression."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(D,))).astype(np.float32)[:, None]

    def loss_fn(p, batch, key):
        xb, yb = batch
        h = jnp.tanh(xb @ p["w1"] + p["b1"])
        # dropout-like noise: uses the per-step key, so the run depends on keys being restored right
        h = h * jax.random.bernoulli(key, 0.9, h.shape) / 0.9
        r = h @ p["w2"] - yb
        return jnp.mean(r**2), {"abs_err": jnp.mean(jnp.abs(r))}

    init = np.random.default_rng(2)
    params = {
        "w1": jnp.asarray(0.5 * init.normal(size=(D, 8)), jnp.float32),
        "b1": jnp.zeros(8, jnp.float32),
        "w2": jnp.asarray(0.5 * init.normal(size=(8, 1)), jnp.float32),
    }
    # a schedule, so that the optimizer's step count must be restored too
    optimizer = train.optimizer("adam", 3e-2, schedule="linear", decay_steps=EPOCHS * (N // BATCH), final_fraction=0.1)
    settings = dict(epochs=EPOCHS, batch_size=BATCH, keep_checkpoints=2, progress=False)
    loss_fn = train.describe(loss_fn, **LOSS_SETTINGS)  # what makes the run resumable
    return loss_fn, params, optimizer, (x, y), jax.random.key(7), settings


def gan_problem():
    """(trainer, data, key, settings) of a tiny 2-D GAN: WGAN-GP with packing 2 and 2 critic steps,
    an EMA; the same resume guarantees as for one loss."""
    from jaxgen.data.synthetic import make_ring
    from jaxgen.models.gan import GANTrainer

    x, _ = make_ring(jax.random.key(0), N)
    trainer = GANTrainer(objective="wgan_gp", g_hidden=(16, 16), d_hidden=(16, 16), pack=2, n_critic=2,
                         g_lr=1e-3, d_lr=1e-3, betas=(0.0, 0.9), ema_decay=0.9)
    settings = dict(steps=EPOCHS * 5, batch_size=BATCH * 2, log_every=5, keep_checkpoints=2, progress=False)
    return trainer, np.asarray(x), jax.random.key(9), settings


def gan_eval_fn_with_sleep(seconds: float):
    def eval_fn(state, key):
        time.sleep(seconds)
        return {"ema_norm": jnp.linalg.norm(jax.flatten_util.ravel_pytree(state.ema_vars)[0])}

    return eval_fn


def eval_fn_with_sleep(seconds: float):
    def eval_fn(params, key):
        time.sleep(seconds)
        return {"w1_norm": jnp.linalg.norm(params["w1"]), "noise": jax.random.normal(key)}

    return eval_fn


def run(run_dir, sleep: float = 0.0):
    from jaxgen.train import fit

    loss_fn, params, optimizer, data, key, settings = problem()
    return fit(loss_fn, params, optimizer, data, key=key, run_dir=run_dir, eval_fn=eval_fn_with_sleep(sleep), **settings)


def run_gan(run_dir, sleep: float = 0.0):
    from jaxgen.train import fit_trainer

    trainer, data, key, settings = gan_problem()
    return fit_trainer(trainer, data, key=key, run_dir=run_dir, eval_fn=gan_eval_fn_with_sleep(sleep), **settings)


def main(argv):
    from jaxgen.train import TIMING_KEYS

    run_dir, out = argv[0], argv[1]
    sleep = float(argv[argv.index("--sleep") + 1]) if "--sleep" in argv else 0.0
    if "--gan" in argv:
        state, history = run_gan(run_dir, sleep)
        tree = state.model
    else:
        state, history = run(run_dir, sleep)
        tree = state.params
    history = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]
    leaves = {f"p{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}
    np.savez(out, history=np.array(json.dumps(history)), **leaves)


if __name__ == "__main__":
    main(sys.argv[1:])
