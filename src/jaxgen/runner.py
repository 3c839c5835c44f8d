"""Experiment runner: find experiment files, resolve their config, run them in a run folder.

An experiment is one Python file ``experiments/<name>.py`` that defines

* ``DESCRIPTION``: one line saying what it shows;
* ``get_config() -> ml_collections.ConfigDict``: the full settings, including ``seed``;
* ``QUICK``: a dict of (dotted) keys to values that turn the full settings into a seconds-long run;
* ``run(config, run) -> dict``: does the work and returns the metrics, where ``run`` is a :class:`Run`;

and optionally

* ``CHECKS``: a dict of (dotted) keys to rules (:func:`interval`, :func:`positive`,
  :func:`non_negative`, :func:`fraction`, :func:`one_of`) that the resolved values must satisfy;
  ``seed`` must be a non-negative integer in every experiment;
* ``check_config(config)``: constraints between keys; raises ``ValueError`` with a clear message.

Config resolution is always: ``get_config()`` -> ``QUICK`` (with ``--quick``) -> ``key=value``
overrides -> ``CHECKS`` and ``check_config`` -> locked; all of it happens before the run folder is
created, so a rejected command line writes nothing. A config key ``x64`` (bool), when present, runs the experiment under
``jax.enable_x64``. Each run folder receives ``config.json`` (the resolved config), ``metrics.json``,
the PNG figures, ``log.txt`` (everything :meth:`Run.log` printed) and ``run.json`` (how it was run:
status, git commit, library versions, device).

A run that fails (an exception, Ctrl-C) removes the folder it created if the experiment wrote
nothing into it beyond ``config.json``, ``log.txt`` and ``run.json``; a folder that holds more
(figures, ``metrics.jsonl``, checkpoints to resume from) or that existed before is kept, with the
traceback at the end of ``log.txt`` and ``"status": "failed"`` and the error in ``run.json``.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as _dt
import difflib
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import ml_collections
import numpy as np

__all__ = [
    "EXPERIMENTS_ENV",
    "CACHE_ENV",
    "enable_compilation_cache",
    "ExperimentError",
    "Experiment",
    "Check",
    "interval",
    "positive",
    "non_negative",
    "fraction",
    "one_of",
    "provenance",
    "Run",
    "RunResult",
    "experiments_dir",
    "list_experiments",
    "experiment_names",
    "load_experiment",
    "sibling_module",
    "seed_summary",
    "resolve_config",
    "check_config",
    "apply_overrides",
    "flatten_config",
    "default_out",
    "run_experiment",
    "to_jsonable",
    "stderr_is_terminal",
]

EXPERIMENTS_ENV = "JAXGEN_EXPERIMENTS_DIR"
CACHE_ENV = "JAXGEN_COMPILATION_CACHE"


class ExperimentError(ValueError):
    """A user-facing problem: unknown experiment, bad override or value, missing experiments folder."""


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` (or ``'x' or 'y'``) for close matches of ``word``, else ``""``.

    Dotted keys also match by their last part, so ``outlier_fraction`` suggests
    ``subspace.outlier_fraction`` and ``blobs.outlier_fraction``.
    """
    candidates = list(candidates)
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    leaf = word.rsplit(".", 1)[-1]
    leaves = {c: c.rsplit(".", 1)[-1] for c in candidates}
    close_leaves = set(difflib.get_close_matches(leaf, sorted(set(leaves.values())), n=3, cutoff=0.75))
    close += [c for c in candidates if leaves[c] in close_leaves and c not in close]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close[:4]) + "?)"


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
        raise ExperimentError(f"Unknown experiment {name!r}{_did_you_mean(name, list(files))}. "
                              f"Available experiments in {directory}: {available}.")
    return Experiment(name, files[name], _import_file(name, files[name]))


def sibling_module(file: str | Path, name: str):
    """The module ``<name>.py`` in the folder of ``file`` (an experiment's ``__file__``), imported once.

    Experiment files are loaded by path, not as a package, so the code they share (``_gan2d.py``,
    ``_mnist_baselines.py``, or another experiment's file) is imported through this: it is kept in
    ``sys.modules`` as ``jaxgen_experiments.<name>`` so every experiment gets the same module object.
    """
    module_name = f"jaxgen_experiments.{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, Path(file).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(module_name, None)
            raise
    return sys.modules[module_name]


def seed_summary(per_seed: Sequence[Mapping]) -> dict:
    """Mean and standard deviation over replicates (seeds) of each metric, and the per-seed values.

    ``per_seed``: one dict per seed with the same keys. A number becomes ``name`` (mean) and
    ``name_std`` (sample standard deviation, ddof 1; 0.0 for one seed); a dict of numbers (e.g. a
    metric per factor) becomes two dicts of the same keys; ``None`` (a metric a model does not have)
    stays ``None``; anything else (arrays, strings) is only in ``per_seed``.
    """
    def is_number(v):
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    def mean_std(values):
        vals = np.asarray(values, float)
        return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0

    out: dict[str, Any] = {"per_seed": list(per_seed)}
    for name, value in per_seed[0].items():
        if is_number(value):
            out[name], out[f"{name}_std"] = mean_std([r[name] for r in per_seed])
        elif value is None:
            out[name] = None
        elif isinstance(value, Mapping) and value and all(is_number(v) for v in value.values()):
            stats = {k: mean_std([r[name][k] for r in per_seed]) for k in value}
            out[name] = {k: m for k, (m, _) in stats.items()}
            out[f"{name}_std"] = {k: sd for k, (_, sd) in stats.items()}
    return out


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
        keys = sorted(flatten_config(config))
        raise ExperimentError(f"Unknown config key {key!r}{_did_you_mean(key, keys)}. Valid keys: {', '.join(keys)}.")
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


@dataclasses.dataclass(frozen=True)
class Check:
    """A declarative rule for one config value, used in an experiment's ``CHECKS`` dict.

    Attributes:
      describe: what a valid value is, completing "must be ..." (e.g. ``"in [0, 1)"``).
      test: ``value -> bool``. A tuple or list value is valid when every element is; ``None``
        (a setting left unset) is always valid.
    """

    describe: str
    test: Callable[[Any], bool]

    def validate(self, key: str, value) -> None:
        """Raise :class:`ExperimentError` naming ``key``, the rule and the value unless it holds."""
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if v is None:
                continue
            try:
                ok = bool(self.test(v))
            except TypeError:  # e.g. a string where a number is required
                ok = False
            if not ok:
                what = "every element of" if isinstance(value, (tuple, list)) else ""
                raise ExperimentError(
                    f"Bad value for config key {key!r}: {what + ' ' if what else ''}the value must be "
                    f"{self.describe}, got {value!r}."
                )


def interval(lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    """A number in ``[lo, hi]``; ``lo_open`` / ``hi_open`` exclude the end points, ``None`` means no bound.

    Example: ``interval(0, 1, hi_open=True)`` is ``[0, 1)``; ``interval(1)`` is ``>= 1``.
    """
    if lo is None and hi is None:
        raise ValueError("interval() needs at least one bound.")
    if lo is not None and hi is not None:
        text = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"{'<' if hi_open else '<='} {hi:g}"

    def test(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    return Check(text, test)


def positive() -> Check:
    """A number > 0 (a count, a size, a scale, a learning rate)."""
    return interval(0, lo_open=True)


def non_negative() -> Check:
    """A number >= 0 (a seed, an optional count where 0 means "skip")."""
    return interval(0)


def fraction() -> Check:
    """A number in [0, 1) (an outlier or test fraction: 1 would leave nothing of the other part)."""
    return interval(0, 1, hi_open=True)


def one_of(*choices) -> Check:
    """One of the given values (for string settings such as a protocol or a covariance type)."""
    return Check(f"one of {list(choices)}", lambda v: v in choices)


_SEED_CHECK = non_negative()


def check_config(experiment: Experiment, config: ml_collections.ConfigDict) -> None:
    """Apply the experiment's ``CHECKS`` (and ``seed >= 0``), then its ``check_config(config)`` hook.

    Raises:
      ExperimentError: a value breaks a rule (the message names the key, the rule and the value),
        ``CHECKS`` names a key that ``get_config()`` does not define, or the hook raised
        ``ValueError`` / ``TypeError`` (its message is kept).
    """
    checks = dict(getattr(experiment.module, "CHECKS", {}))
    checks.setdefault("seed", _SEED_CHECK)
    keys = flatten_config(config)
    for key, rule in checks.items():
        if key not in keys:
            raise ExperimentError(f"Experiment {experiment.name!r}: CHECKS names {key!r}, which get_config() "
                                  "does not define (a leaf key is needed).")
        if not isinstance(rule, Check):
            raise ExperimentError(f"Experiment {experiment.name!r}: CHECKS[{key!r}] must be a jaxgen.runner.Check "
                                  f"(interval, positive, non_negative, fraction, one_of), got {rule!r}.")
        rule.validate(key, keys[key])
    hook = getattr(experiment.module, "check_config", None)
    if callable(hook):
        try:
            hook(config)
        except ExperimentError:
            raise
        except (ValueError, TypeError) as e:
            raise ExperimentError(f"Bad config for experiment {experiment.name!r}: {e}") from None


def resolve_config(experiment: Experiment, *, quick: bool = False, overrides=()) -> ml_collections.ConfigDict:
    """``get_config()``, then ``QUICK`` if ``quick``, then ``overrides``, then the checks; returned locked.

    Raises:
      ExperimentError: an unknown key (with the closest valid ones), a value of the wrong type, or
        a value that breaks the experiment's ``CHECKS`` / ``check_config`` (see :func:`check_config`).
    """
    config = experiment.module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config)
    if "seed" not in config:
        raise ExperimentError(f"Experiment {experiment.name!r}: get_config() must define 'seed'.")
    if quick:
        apply_overrides(config, experiment.quick_overrides)
    apply_overrides(config, overrides)
    config.lock()
    check_config(experiment, config)
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


def stderr_is_terminal() -> bool:
    """Whether progress bars should be drawn: stderr is an interactive terminal (not a file or pipe)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


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
        """Iterate over ``iterable`` showing progress; yields its items.

        On a terminal (stderr is a TTY) a tqdm bar is drawn on stderr and never written to
        ``log.txt``; otherwise (a log file, a pipe, CI) there is no bar. Either way one line
        ``"<desc>: <n> items in <t> s"`` is logged when the loop ends, so ``log.txt`` and
        redirected output get one line per stage instead of hundreds of bar redraws.
        """
        label = desc or "loop"
        start, n = time.perf_counter(), 0
        if self._echo and stderr_is_terminal():
            from tqdm import tqdm

            iterable = tqdm(iterable, desc=f"{self.name}: {label}", total=total, leave=False,
                            dynamic_ncols=True, file=sys.stderr)
        try:
            for item in iterable:
                n += 1
                yield item
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        self.log(f"{label}: {n} items in {time.perf_counter() - start:.1f} s")

    def save_figure(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<run dir>/<name>.png`` and close it; returns the path.

        The figure is checked against :func:`jaxgen.plotting.check_figure` (labelled axes, legends
        off the data, well-formed titles, filled contour peaks) and saved either way; a problem
        raises :class:`jaxgen.plotting.FigureRuleError` in a quick run (the tests run every
        experiment quick) and is logged as a warning in a full run, whose results it must not lose.
        """
        from jaxgen import plotting

        path = self.dir / (name if name.endswith(".png") else f"{name}.png")
        problems = plotting.check_figure(fig)
        plotting.save(fig, path)
        self.figures.append(path.name)
        self.log(f"saved figure {path.name}")
        if problems:
            msg = f"figure {path.name} breaks the figure rules: " + "; ".join(problems)
            if self.quick:
                raise plotting.FigureRuleError(msg)
            self.log(f"warning: {msg}")
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


def _git_state(path: Path) -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path``; None outside one.

    ``dirty`` is True when tracked files differ from the commit or untracked, non-ignored files
    exist (``git status --porcelain`` prints anything).
    """
    def git(*args) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()

    try:
        if (path / "__init__.py").is_file():
            # A package installed into some repository's ignored folder (a .venv) is not that
            # repository's code: its files must be tracked for the commit to describe them.
            git("ls-files", "--error-unmatch", "__init__.py")
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):  # no git, not a checkout, no commit yet
        return None
    return {"commit": commit, "dirty": dirty}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict:
    """How this process runs: git state of jaxgen's source, library versions and JAX's devices.

    Returns:
      ``{"git": {"commit", "dirty"} | None, "versions": {"jaxgen", "jax", "jaxlib", "numpy",
      "python", ...}, "device": {"platform", "device_kind", "count"}, "backend"}``; recorded in
      every ``run.json``.
    """
    import jax

    import jaxgen

    devices = jax.devices()
    versions = {"jaxgen": jaxgen.__version__, "jax": jax.__version__, "jaxlib": _version("jaxlib")}
    for dist in ("flax", "optax", "numpyro", "numpy"):
        versions[dist] = _version(dist)
    versions["python"] = platform.python_version()
    return {
        "git": _git_state(Path(jaxgen.__file__).resolve().parent),
        "versions": versions,
        "device": {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "count": len(devices)},
        "backend": jax.default_backend(),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_BOOKKEEPING = {"config.json", "log.txt", "run.json"}  # what the runner itself writes into a run folder


def _make_run_dir(out: Path) -> Path | None:
    """Create ``out`` (and missing parents); return the topmost folder created, None if ``out`` existed."""
    if out.exists():
        if not out.is_dir():
            raise ExperimentError(f"The run folder {out} exists and is not a directory; choose another --out.")
        return None
    top = out
    while not top.parent.exists():
        top = top.parent
    out.mkdir(parents=True)
    return top


def _remove_created(out: Path, top: Path) -> None:
    """Remove the run folder ``out`` and the now empty parents created with it, up to ``top``."""
    shutil.rmtree(out, ignore_errors=True)
    folder = out.parent
    while folder != top.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


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
      out: run folder; default :func:`default_out`. Created (after every config check) if missing;
        removed again if the run fails having written nothing beyond the runner's own files.
      echo: print log lines and show progress bars (bars only when stderr is a terminal).

    Returns:
      :class:`RunResult` with the metrics the experiment returned (also in ``metrics.json``).
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, directory)
    config = resolve_config(exp, quick=quick, overrides=overrides)  # every check before any folder exists
    out = Path(out) if out is not None else default_out(exp.name)
    import jax

    info = {
        "experiment": exp.name,
        "file": str(exp.path),
        "file_sha256": _sha256(exp.path),
        "quick": quick,
        "overrides": list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides),
        "status": "running",
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        **provenance(),
    }
    created = _make_run_dir(out)
    _write_json(out / "config.json", config.to_dict())
    _write_json(out / "run.json", info)  # written now too, so that a killed run still says how it ran
    run = Run(exp.name, out, config, quick=quick, echo=echo)
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
        info.update(status="completed", wall_time_s=round(wall, 3), figures=run.figures)
        _write_json(out / "run.json", info)
        run.log(f"metrics written to {out / 'metrics.json'} ({wall:.1f} s)")
    except BaseException as e:
        _record_failure(run, info, e, start, created)
        raise
    finally:
        run.close()
    return RunResult(exp.name, out, config, metrics, run.figures, wall)


def _record_failure(run: Run, info: dict, error: BaseException, start: float, created: Path | None) -> None:
    """Remove a run folder this run created and left with nothing useful; otherwise record the failure in it."""
    out = run.dir
    useful = [p.name for p in out.iterdir() if p.name not in _BOOKKEEPING] if out.is_dir() else []
    if created is not None and not useful:
        run.close()
        _remove_created(out, created)
        return
    info.update(status="interrupted" if isinstance(error, KeyboardInterrupt) else "failed",
                error=f"{type(error).__name__}: {error}", wall_time_s=round(time.perf_counter() - start, 3),
                figures=run.figures)
    try:
        _write_json(out / "run.json", info)
        run._log.write("".join(traceback.format_exception(error)))
        run._log.flush()
    except (OSError, ValueError):  # a full disk or a closed log must not hide the original error
        pass
