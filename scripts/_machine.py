"""What every benchmark prints beside its ratios: the machine, the device kind and library versions."""
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


def print_machine(extra_packages=()) -> None:
    """Print :func:`machine_lines`."""
    for line in machine_lines(extra_packages):
        print(line)


if __name__ == "__main__":
    print_machine(["scikit-learn", "torch"])
