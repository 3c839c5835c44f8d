"""What the benchmarks share: the machine, device and versions they print beside their ratios, a
median timer, and jaxgen's training loop driven one log period at a time (:func:`core_rounds`)."""
from __future__ import annotations

import os
import platform
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_lines(extra_packages=()) -> list[str]:
    """Lines describing the CPU (model, cores usable by this process), the JAX devices and versions.

    ``extra_packages``: distribution names to add to the version line (e.g. "scikit-learn", "torch").
    """
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    names = ["jax", "jaxlib", "flax", "optax", "numpyro", *extra_packages]
    versions = ", ".join(f"{n} {v}" for n in names if (v := _version(n)))
    return [
        f"machine: {_cpu_model()}, {cores} cores usable ({os.cpu_count()} online), {platform.system()} {platform.machine()}",
        f"devices: {len(devs)} x {', '.join(kinds)} (backend {jax.default_backend()})",
        f"versions: Python {platform.python_version()}, {versions}",
    ]


def median_time(f, *args, repeats: int = 5) -> float:
    """Median wall time in seconds of ``f(*args)`` over ``repeats`` calls after one warm-up call,
    waiting for JAX results (``jax.block_until_ready``)."""
    import statistics
    import time

    import jax

    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def core_rounds(trainer, x, batch: int, steps: int, seed: int = 0, metrics=("loss",)):
    """jaxgen's training loop for benchmarking, as ``fit_trainer`` runs one log period.

    ``trainer``: a jaxgen trainer (``init``, ``update``); ``x``: the training data ``(N, ...)``;
    ``steps`` updates per round, each gathering its ``batch`` rows inside one jitted ``lax.scan``
    from the device-resident data. Returns ``(fresh, run_round, state0)``: ``fresh()`` is a private
    copy of the initial loop state on the mesh (the scan donates its state), ``run_round(state, r)``
    runs round r (its own shuffle) and returns ``(state, (mean of each name in metrics, ...))``;
    ``state0`` is the trainer's initial state (for parameter counts and weight copies).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxgen import keys
    from jaxgen.sharding import data_mesh
    from jaxgen.train import LoopState, make_chunk_fn
    from jaxgen.train.step import epoch_permutation, make_loop_step

    mesh = data_mesh(jax.devices()[:1])
    replicated = NamedSharding(mesh, P())
    streams = keys.streams(jax.random.key(seed), "state", "shuffle", "init")
    state0 = trainer.init(streams["init"], jnp.asarray(x[:batch]))
    data = jax.device_put(jnp.asarray(x), replicated)
    chunk = jax.jit(make_chunk_fn(make_loop_step(trainer.update, mesh), mesh), donate_argnums=0)
    n_batches = len(x) // batch
    perm = jax.jit(epoch_permutation, static_argnums=(1, 2, 3))

    def fresh():
        state = LoopState(model=state0, step=jnp.zeros((), jnp.int32), key=jax.random.key_data(streams["state"]),
                          key_impl=str(jax.random.key_impl(streams["state"])))
        return jax.device_put(jax.tree.map(jnp.copy, state), replicated)

    def run_round(state, r):
        idx = perm(jax.random.fold_in(streams["shuffle"], r), len(x), n_batches, batch)[:steps]
        state, values, ok = chunk(state, data, idx)
        values = jax.device_get(values)
        assert bool(ok), "non-finite jaxgen state"
        return state, tuple(float(np.mean(values[name])) for name in metrics)

    return fresh, run_round, state0


def print_machine(extra_packages=()) -> None:
    """Print :func:`machine_lines`."""
    for line in machine_lines(extra_packages):
        print(line)


if __name__ == "__main__":
    print_machine(["scikit-learn", "torch"])
