"""Test-suite set-up: four virtual CPU devices (for the sharding tests), fast compiles, data dir.

Environment must be set before JAX initialises its backends, hence at import time here.
"""
import os
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("MPLBACKEND", "Agg")
# hermetic: no user XLA cache (cli.main would otherwise enable ~/.cache/jaxgen/xla for the process)...
os.environ.setdefault("JAXGEN_COMPILATION_CACHE", "0")
# ...but one fresh cache per test session, shared by the xdist workers and every subprocess a test
# starts (inherited through the environment): the kill-and-resume and CLI tests compile the same
# programs in up to three processes (measured: test_train_resume.py 37 % less CPU time). XLA's compile
# options, the optimisation level included, are part of the cache key, so the fast-compile and
# optimised programs never stand in for each other.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="jaxgen-tests-xla-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # only the process that made it
_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "JAXGEN_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["JAXGEN_DATA_DIR"] = str(_shared)

import contextlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests are compile-bound: most XLA optimisations cost more compile time than they save.
if os.environ.get("JAXGEN_TEST_OPTIMIZE", "0") != "1":
    jax.config.update("jax_disable_most_optimizations", True)


@contextlib.contextmanager
def xla_optimizations(on: bool):
    """Compile with XLA's optimisations on (the program users run) or mostly off (the suite's fast
    setting) inside the block. The flag is read when a program is compiled, so it applies to every
    function first compiled in the block (``fit`` compiles its step and epoch anew on each call)."""
    old = jax.config.read("jax_disable_most_optimizations")
    # the flag is not part of jit's cache key: drop compiled programs on the way in and out so that
    # nothing compiled under one setting is reused under the other
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", not on)
    try:
        yield
    finally:
        jax.clear_caches()
        jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(params=[False, True], ids=["fast-compile", "xla-optimized"])
def optimized(request):
    """Run the test twice: with the suite's fast compile setting and with XLA's optimisations on."""
    with xla_optimizations(request.param):
        yield request.param


@pytest.fixture(scope="module", autouse=True)
def _drop_compiled_programs():
    """Free each test module's compiled programs when it ends: XLA's CPU executables stay mapped in
    memory while cached, and the whole suite in one process otherwise accumulates thousands of
    them (each with its own memory mappings)."""
    yield
    jax.clear_caches()


@pytest.fixture
def x64():
    """Run a test body with float64 enabled (``with jax.enable_x64(True)``)."""
    with jax.enable_x64(True):
        yield


def shared_data_dir() -> Path | None:
    d = os.environ.get("JAXGEN_DATA_DIR")
    return Path(d) if d and Path(d).is_dir() else None
