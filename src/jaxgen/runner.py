"""Experiment runner: find experiment files, resolve their config, run them in a run folder.

An experiment is one Python file ``experiments/<name>.py`` that defines

* ``DESCRIPTION``: one line saying what it shows;
* ``get_config() -> ml_collections.ConfigDict``: the full settings, including ``seed``;
* ``QUICK``: a dict of (dotted) keys to values that turn the full settings into a seconds-long run;
* ``run(config, run) -> dict``: does the work and returns the metrics, where ``run`` is a :class:`Run`.

Config resolution is always: ``get_config()`` -> ``QUICK`` (with ``--quick``) -> ``key=value``
overrides -> locked. A config key ``x64`` (bool), when present, runs the experiment under
``jax.enable_x64``. Each run folder receives ``config.json`` (the resolved config), ``metrics.json``,
the PNG figures, ``log.txt`` (everything :meth:`Run.log` printed) and ``run.json`` (how it was run).
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as _dt
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import ml_collections
import numpy as np

__all__ = [
    "EXPERIMENTS_ENV",
    "CACHE_ENV",
    "enable_compilation_cache",
    "ExperimentError",
    "Experiment",
    "Run",
    "RunResult",
    "experiments_dir",
    "list_experiments",
    "experiment_names",
    "load_experiment",
    "resolve_config",
    "apply_overrides",
    "flatten_config",
    "default_out",
    "run_experiment",
    "to_jsonable",
]

EXPERIMENTS_ENV = "JAXGEN_EXPERIMENTS_DIR"
CACHE_ENV = "JAXGEN_COMPILATION_CACHE"


class ExperimentError(ValueError):
    """A user-facing problem: unknown experiment, bad override, missing experiments folder."""


# --------------------------------------------------------------------------- discovery


def experiments_dir() -> Path:
    """The folder holding the experiment files.

    Looked up in order: ``$JAXGEN_EXPERIMENTS_DIR``; the ``experiments/`` folder of the repository
    that the (editable) jaxgen install lives in; ``./experiments``.
    """
    env = os.environ.get(EXPERIMENTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ExperimentError(f"${EXPERIMENTS_ENV} is set to {env!r}, which is not a directory.")
        return path
    import jaxgen  # late: the runner itself must not need the package's heavy imports

    tried = []
    # src/jaxgen/__init__.py -> parents: src/jaxgen, src, <repo root>; stop at the first repo root.
    for parent in Path(jaxgen.__file__).resolve().parents[1:4]:
        candidate = parent / "experiments"
        tried.append(candidate)
        if candidate.is_dir():
            return candidate
    cwd = Path.cwd() / "experiments"
    tried.append(cwd)
    if cwd.is_dir():
        return cwd
    raise ExperimentError(
        "No experiments folder found. Looked in: " + ", ".join(str(p) for p in tried) + ". "
        f"Set ${EXPERIMENTS_ENV} to the folder holding the experiment files, run from the repository "
        "root, or install jaxgen in editable mode (pip install -e .) from a clone."
    )


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One loaded experiment file (see the module docstring for what the file defines)."""

    name: str
    path: Path
    module: Any

    @property
    def description(self) -> str:
        return str(getattr(self.module, "DESCRIPTION", "")).strip()

    @property
    def quick_overrides(self) -> dict:
        return dict(getattr(self.module, "QUICK", {}))


def _experiment_files(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")}


def _import_file(name: str, path: Path):
    module_name = f"jaxgen_experiments.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    for attr in ("get_config", "run"):
        if not callable(getattr(module, attr, None)):
            raise ExperimentError(f"Experiment file {path} does not define {attr}(); see experiments/README.md.")
    return module


def load_experiment(name: str, directory: Path | None = None) -> Experiment:
    """Import ``<directory>/<name>.py``; unknown names raise an error listing the available ones."""
    directory = Path(directory) if directory is not None else experiments_dir()
    files = _experiment_files(directory)
    if name not in files:
        available = ", ".join(files) or "(none)"
        raise ExperimentError(f"Unknown experiment {name!r}. Available experiments in {directory}: {available}.")
    return Experiment(name, files[name], _import_file(name, files[name]))


def experiment_names(directory: Path | None = None) -> list[str]:
    """Names of the experiment files in the folder (``*.py`` not starting with ``_``), sorted."""
    directory = Path(directory) if directory is not None else experiments_dir()
    return list(_experiment_files(directory))


def list_experiments(directory: Path | None = None) -> list[Experiment]:
    """All experiments in the folder, loaded, sorted by name."""
    directory = Path(directory) if directory is not None else experiments_dir()
    return [load_experiment(name, directory) for name in _experiment_files(directory)]


# --------------------------------------------------------------------------- configs


def flatten_config(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (leaves only)."""
    out = {}
    for key, value in config.items():
        full = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            out.update(flatten_config(value, prefix=full + "."))
        else:
            out[full] = value
    return out


def _lookup(config: ml_collections.ConfigDict, key: str):
    """Return (parent ConfigDict, leaf name) for a dotted key, or raise listing the valid keys."""
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            node = None
            break
        node = node[part]
    if node is None or not isinstance(node, ml_collections.ConfigDict) or parts[-1] not in node:
        valid = ", ".join(sorted(flatten_config(config)))
        raise ExperimentError(f"Unknown config key {key!r}. Valid keys: {valid}.")
    if isinstance(node[parts[-1]], ml_collections.ConfigDict):
        sub = ", ".join(f"{key}.{k}" for k in sorted(flatten_config(node[parts[-1]])))
        raise ExperimentError(f"Config key {key!r} is a group; set one of its entries instead: {sub}.")
    return node, parts[-1]


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_value(key: str, text: str, current: Any) -> Any:
    """Parse ``text`` to the type of the existing config value ``current``."""

    def bad(expected: str) -> ExperimentError:
        return ExperimentError(
            f"Bad value for config key {key!r}: expected {expected} (the type of its current value "
            f"{current!r}), got {text!r}."
        )

    if isinstance(current, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad("a boolean (true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise bad("an integer") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise bad("a number") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            # "1,2,3" without brackets, or bare words "a,b".
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (tuple, list)):
            value = [value]
        if current:  # convert elements to the existing element type
            kind = type(current[0])
            try:
                value = [_parse_value(key, str(v), current[0]) if not isinstance(v, kind) else v for v in value]
            except ExperimentError:
                raise bad(f"a comma-separated list of {kind.__name__}") from None
        return type(current)(value)
    # None or other: a Python literal if it parses, else the string.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str] | Mapping[str, Any]) -> None:
    """Apply ``["a.b=3", ...]`` (strings, parsed to the existing type) or ``{"a.b": 3}`` in place."""
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
        parse = False
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ExperimentError(f"Override {item!r} is not of the form key=value.")
            k, v = item.split("=", 1)
            items.append((k.strip(), v))
        parse = True
    for key, value in items:
        node, leaf = _lookup(config, key)
        if parse:
            value = _parse_value(key, value, node[leaf])
        try:
            node[leaf] = value
        except TypeError as e:  # ConfigDict's own type safety (e.g. a str into an int field)
            raise ExperimentError(f"Bad value for config key {key!r}: {e}") from None


def resolve_config(experiment: Experiment, *, quick: bool = False, overrides=()) -> ml_collections.ConfigDict:
    """``get_config()``, then ``QUICK`` if ``quick``, then ``overrides``; returned locked."""
    config = experiment.module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config)
    if "seed" not in config:
        raise ExperimentError(f"Experiment {experiment.name!r}: get_config() must define 'seed'.")
    if quick:
        apply_overrides(config, experiment.quick_overrides)
    apply_overrides(config, overrides)
    config.lock()
    return config


# --------------------------------------------------------------------------- the run context


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache for this process (the CLI does this).

    The small experiments here spend most of their time compiling (one program per mixture size and
    covariance type), so a second ``jaxgen run``/``jaxgen tour`` is several times faster with the
    cache. Location: ``$JAXGEN_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/jaxgen/xla`` or
    ``~/.cache/jaxgen/xla``; ``JAXGEN_COMPILATION_CACHE=0`` disables it. A cache directory the user
    already configured in JAX is left alone.

    Returns:
      the cache directory in use, or None when disabled.
    """
    import jax

    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("", "0", "off", "false", "no", "none"):
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    if value:
        path = Path(value).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME")
        path = (Path(cache).expanduser() if cache else Path.home() / ".cache") / "jaxgen" / "xla"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home and the like: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def to_jsonable(value):
    """NumPy/JAX scalars and arrays -> Python floats/lists; non-finite floats -> None (valid JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.ndim:
            return to_jsonable(arr.tolist())
        value = arr.item()
        if isinstance(value, (bool, int, str)):
            return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


class Run:
    """What an experiment's ``run(config, run)`` receives.

    Attributes:
      name: experiment name.
      dir: the run folder (created).
      config: the resolved, locked config.
      key: ``jax.random.key(config.seed)``, the root of all randomness in the run.
      quick: whether the quick settings were applied.
    """

    def __init__(self, name: str, directory: Path, config: ml_collections.ConfigDict, *, quick: bool, echo: bool = True):
        import jax

        self.name = name
        self.dir = Path(directory)
        self.config = config
        self.quick = quick
        self.key = jax.random.key(int(config.seed))
        self.figures: list[str] = []
        self._echo = echo
        self._log = open(self.dir / "log.txt", "w", encoding="utf-8")

    def log(self, *parts, sep: str = " ") -> None:
        """Print a line and append it to ``log.txt``."""
        line = sep.join(str(p) for p in parts)
        if self._echo:
            print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def progress(self, iterable: Iterable, desc: str = "", total: int | None = None):
        """``iterable`` wrapped in a tqdm bar on stderr (the bar is not written to ``log.txt``)."""
        from tqdm import tqdm

        return tqdm(iterable, desc=f"{self.name}: {desc}" if desc else self.name, total=total,
                    leave=False, dynamic_ncols=True, file=sys.stderr, disable=not self._echo)

    def save_figure(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<run dir>/<name>.png`` and close it; returns the path."""
        from jaxgen import plotting

        path = self.dir / (name if name.endswith(".png") else f"{name}.png")
        plotting.save(fig, path)
        self.figures.append(path.name)
        self.log(f"saved figure {path.name}")
        return path

    @contextlib.contextmanager
    def figure(self, name: str, nrows: int = 1, ncols: int = 1, **subplots_kw):
        """``with run.figure("fit", 1, 2, figsize=(8, 4)) as (fig, axes): ...`` -> saved on exit."""
        from jaxgen import plotting

        fig, axes = plotting.subplots(nrows, ncols, **subplots_kw)
        try:
            yield fig, axes
        except BaseException:
            plotting.plt.close(fig)  # do not leak half-drawn figures
            raise
        self.save_figure(fig, name)

    def close(self) -> None:
        self._log.close()


@dataclasses.dataclass
class RunResult:
    """What :func:`run_experiment` returns."""

    name: str
    dir: Path
    config: ml_collections.ConfigDict
    metrics: dict
    figures: list[str]
    wall_time_s: float


def default_out(name: str, root: Path | str = "runs") -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    return Path(root) / f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def run_experiment(
    experiment: str | Experiment,
    *,
    quick: bool = False,
    overrides=(),
    out: Path | str | None = None,
    echo: bool = True,
    directory: Path | None = None,
) -> RunResult:
    """Resolve the config, create the run folder, run the experiment and write its outputs.

    Args:
      experiment: an experiment name (looked up in ``directory`` / :func:`experiments_dir`) or a loaded one.
      quick: apply the experiment's ``QUICK`` settings.
      overrides: ``["key=value", ...]`` or ``{"key": value}``, applied after ``QUICK``.
      out: run folder; default :func:`default_out`. Created if missing.
      echo: print log lines and show progress bars.

    Returns:
      :class:`RunResult` with the metrics the experiment returned (also in ``metrics.json``).
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, directory)
    config = resolve_config(exp, quick=quick, overrides=overrides)
    out = Path(out) if out is not None else default_out(exp.name)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", config.to_dict())
    import jax

    run = Run(exp.name, out, config, quick=quick, echo=echo)
    info = {
        "experiment": exp.name,
        "file": str(exp.path),
        "quick": quick,
        "overrides": list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }
    run.log(f"== {exp.name}{' (quick)' if quick else ''}: {exp.description}")
    run.log(f"run folder: {out}")
    start = time.perf_counter()
    try:
        x64 = bool(config.get("x64", False))
        with jax.enable_x64(x64):
            metrics = exp.module.run(config, run)
        if not isinstance(metrics, Mapping):
            raise ExperimentError(f"Experiment {exp.name!r}: run() must return a dict of metrics, got {type(metrics).__name__}.")
        wall = time.perf_counter() - start
        metrics = to_jsonable(metrics)
        _write_json(out / "metrics.json", metrics)
        info["wall_time_s"] = round(wall, 3)
        info["figures"] = run.figures
        _write_json(out / "run.json", info)
        run.log(f"metrics written to {out / 'metrics.json'} ({wall:.1f} s)")
    finally:
        run.close()
    return RunResult(exp.name, out, config, metrics, run.figures, wall)
