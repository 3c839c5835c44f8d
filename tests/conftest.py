"""Test-suite set-up: four virtual CPU devices (for the sharding tests), fast compiles, data dir.

Environment must be set before JAX initialises its backends, hence at import time here.

Data sets: a test that needs one (``@pytest.mark.needs_data("mnist")``, or any test or fixture whose
loader raises ``DataFileError`` for a data set missing from the data folder) is skipped, with one
reason that names the command to get it (``make data``), when the data set is not in the data
folder; the run stays green on a fresh clone without network. ``make data`` (which ``make test``
runs first) downloads what is missing, sha256-verified.
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
# the workspace's copy next to the checkout (CI sets the variable itself; the Makefile's data step uses the same rule)
_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "JAXGEN_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["JAXGEN_DATA_DIR"] = str(_shared)

import contextlib  # noqa: E402
import functools  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxgen.data import files as _files  # noqa: E402

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


# ------------------------------------------------------------------------------ data sets
def _missing(name: str) -> bool:
    """Data set ``name`` is absent from the data folder: not usable, and none of its files is there
    but corrupted (a corrupted file is an error the test shows, never a skip). Checked once per
    process and folder."""
    return _missing_in(name, _files.data_dir().resolve())


@functools.cache
def _missing_in(name: str, folder: Path) -> bool:
    st = _files.dataset_status(name, folder)
    return not st["ready"] and all(status != "corrupted" for _, status, _, _ in st["files"])


def _missing_data_reason(name: str) -> str:
    return (f"data set {name!r} is not in the data folder {_files.data_dir()}: run `make data` to download it "
            f"(sha256-verified; or `jaxgen data fetch {name}`), or point {_files.DATA_DIR_ENV} at a folder that has it")


def _skip_missing(name: str):
    # every such skip is raised from this one line, so `-ra` folds them into one summary line per data set
    pytest.skip(_missing_data_reason(name))


def _skip_if_missing_data(err: BaseException) -> None:
    """Skip the test if ``err`` says a data set is missing from the data folder; otherwise return.

    Only a file of a known data set, looked for in the data folder itself, while that data set is
    not usable there: a loader pointed at another (e.g. a deliberately empty) folder still fails.
    """
    if not isinstance(err, _files.DataFileError) or err.actual is not None:
        return
    if err.path.parent.resolve() != _files.data_dir().resolve() or err.path.exists():
        return
    ds = _files._dataset_of(err.name)
    if ds is not None and not ds.bundled and _missing(ds.name):
        _skip_missing(ds.name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_data"):
        for name in mark.args:
            if _missing(name):
                _skip_missing(name)
    try:
        return (yield)  # fixtures: a module fixture that loads MNIST errors here for each of its tests
    except Exception as e:
        _skip_if_missing_data(e)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except Exception as e:
        _skip_if_missing_data(e)
        raise


def require_data(name: str) -> None:
    """Inside a test: skip it (the same reason as ``needs_data``) if data set ``name`` is not in the data folder."""
    if _missing(name):
        _skip_missing(name)
