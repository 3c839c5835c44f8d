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

A run folder is never damaged by a second run (see :func:`run_experiment`): a rerun of the same
experiment and config resumes an unfinished run or reports a finished one without changing it; a
run of other settings is refused before anything is written (``--fresh`` discards the old run).
SIGINT and SIGTERM stop a run at the next safe point (:mod:`jaxgen.interrupts`): the training loop
finishes its log period and writes a checkpoint, ``run.json`` says ``"interrupted"``, and the same
command resumes it.
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
    "read_description",
    "load_experiment",
    "sibling_module",
    "seed_summary",
    "resolve_config",
    "check_config",
    "apply_overrides",
    "flatten_config",
    "default_out",
    "run_experiment",
    "active_run",
    "RunFolderConflict",
    "interrupt_message",
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


def read_description(path: Path) -> str:
    """The ``DESCRIPTION`` of the experiment file ``path``, read without importing it when it is a
    string literal (what ``jaxgen list`` needs: importing every experiment means importing JAX and
    every model family, seconds instead of milliseconds); else the file is imported."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DESCRIPTION" for t in node.targets):
            try:
                return str(ast.literal_eval(node.value)).strip()
            except ValueError:  # computed: import the file
                break
    path = Path(path)
    return load_experiment(path.stem, path.parent).description


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

    def __init__(self, name: str, directory: Path, config: ml_collections.ConfigDict, *, quick: bool, echo: bool = True,
                 append: bool = False):
        import jax

        self.name = name
        self.dir = Path(directory)
        self.config = config
        self.quick = quick
        self.key = jax.random.key(int(config.seed))
        self.figures: list[str] = []
        self._echo = echo
        self._log = open(self.dir / "log.txt", "a" if append else "w", encoding="utf-8")

    def log(self, *parts, sep: str = " ") -> None:
        """Print a line and append it to ``log.txt`` (written through at once: ``tail -f`` follows it).

        Also the place where a pending SIGINT / SIGTERM stops the run (see :mod:`jaxgen.interrupts`).
        """
        from jaxgen import interrupts

        interrupts.check()
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
        from jaxgen import interrupts

        try:
            for item in iterable:
                interrupts.check()
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
        from jaxgen import interrupts, plotting

        interrupts.check()
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


class RunFolderConflict(ExperimentError):
    """The run folder holds another run (other settings, another experiment or model, or foreign files).

    Raised before anything in the folder is changed; the command line prints it as one message and
    exits with status 2.
    """


@dataclasses.dataclass(frozen=True)
class _Folder:
    """What ``--out`` holds before a run: ``kind`` is "new" (missing or empty), "finished" or "resume"."""

    kind: str
    info: dict


def _clean_json(value):
    """``value`` as it reads back from a JSON file (tuples as lists, non-finite floats as None)."""
    return json.loads(json.dumps(to_jsonable(value)))


def _config_differences(saved: Mapping, now: Mapping) -> list[str]:
    """``["train.lr: 0.005 in the folder, 0.001 now", ...]`` for the leaves that differ, sorted by key."""
    a, b = flatten_config(saved), flatten_config(now)
    missing = "(not set)"
    return [f"{k}: {a.get(k, missing)!r} in the folder, {b.get(k, missing)!r} now".replace("'(not set)'", missing)
            for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _inspect_folder(out: Path, exp: Experiment, config: ml_collections.ConfigDict, fresh: bool) -> _Folder:
    """Decide what to do with ``out`` before writing anything into it.

    Raises:
      RunFolderConflict: ``out`` is a file, holds files that are not a jaxgen run, holds a run of
        another experiment or with other settings (without ``fresh``), or a live process is writing it.
    """
    if out.exists() and not out.is_dir():
        raise RunFolderConflict(f"The run folder {out} exists and is not a directory; choose another --out.")
    if not out.exists():
        return _Folder("new", {})
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as e:
        raise RunFolderConflict(f"Cannot read the run folder {out}: {e.strerror or e}; choose another --out.") from None
    if not entries:
        return _Folder("new", {})
    hint = f"Choose another folder with --out (e.g. --out {default_out(exp.name)})"
    if not {"config.json", "run.json"} <= set(entries):
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RunFolderConflict(f"The folder {out} is not empty ({shown}) and holds no jaxgen run (no config.json and "
                                f"run.json), so it is left alone. {hint}.")
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunFolderConflict(f"The run folder {out} has an unreadable config.json or run.json ({e}). {hint}, "
                                "or repair or delete that folder.") from None
    status = info.get("status")
    if status == "running" and info.get("host") == platform.node() and _pid_alive(info.get("pid")) \
            and int(info.get("pid")) != os.getpid():
        raise RunFolderConflict(f"The run folder {out} is being written by another jaxgen process (pid {info['pid']}, "
                                f"started {info.get('started')}); wait for it or stop it. {hint}.")
    other = info.get("experiment") != exp.name
    problems = ([f"experiment: {info.get('experiment')!r} in the folder, {exp.name!r} now"] if other
                else _config_differences(saved, _clean_json(config.to_dict())))
    if problems and not fresh:
        status_text = {"completed": "finished", "interrupted": "interrupted", "failed": "failed"}.get(status, str(status))
        raise RunFolderConflict(
            f"The run folder {out} holds a {status_text} run of {info.get('experiment')} with other settings:\n  "
            + "\n  ".join(problems)
            + f"\nNothing was changed. {hint}, rerun with the folder's settings to "
            + ("see it" if status == "completed" else "resume it")
            + ", or add --fresh to discard that run and start over in this folder.")
    if fresh:
        return _Folder("fresh", info)
    return _Folder("finished" if status == "completed" else "resume", info)


def _clear_folder(out: Path) -> None:
    """Delete everything inside the run folder ``out`` (``--fresh``), keeping the folder itself."""
    for p in out.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _make_run_dir(out: Path) -> Path | None:
    """Create ``out`` (and missing parents); return the topmost folder created, None if ``out`` existed.

    Raises:
      ExperimentError: the folder cannot be created (no permission, read-only file system, a file
        in the way), with the reason.
    """
    if out.is_dir():
        return None
    top = out
    while not top.parent.exists():
        top = top.parent
    try:
        out.mkdir(parents=True)
    except OSError as e:
        raise ExperimentError(f"Cannot create the run folder {out} (in {top.parent}): {e.strerror or e}; choose "
                              "another --out.") from None
    return top


def _remove_created(out: Path, top: Path) -> None:
    """Remove the run folder ``out`` and the now empty parents created with it, up to ``top``."""
    shutil.rmtree(out, ignore_errors=True)
    folder = out.parent
    while folder != top.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


_ACTIVE: list[Run] = []  # the run being executed (a stack: an experiment may run another in-process)


def active_run() -> Run | None:
    """The :class:`Run` of the experiment executing now (its ``log`` is where the training loop
    writes its per-period lines), or None outside :func:`run_experiment`."""
    return _ACTIVE[-1] if _ACTIVE else None


def run_experiment(
    experiment: str | Experiment,
    *,
    quick: bool = False,
    overrides=(),
    out: Path | str | None = None,
    echo: bool = True,
    directory: Path | None = None,
    fresh: bool = False,
) -> RunResult:
    """Resolve the config, create the run folder, run the experiment and write its outputs.

    What happens depends on what ``out`` holds, and is decided before anything is written:

    * nothing (missing or empty folder): a new run;
    * a finished run of the same experiment and config: nothing is run or changed; the result is
      read back from ``metrics.json`` (``wall_time_s`` is the recorded one);
    * an interrupted, failed or killed run of the same experiment and config: it resumes (the
      training loop continues from its checkpoints; ``log.txt`` is appended to, ``run.json`` keeps
      the first start, counts the sessions and accumulates ``wall_time_s``);
    * anything else (other settings, another experiment, files that are not a run, a live process
      writing it): :class:`RunFolderConflict` naming the differing settings, the folder untouched;
      ``fresh=True`` instead deletes the old run's files and starts over (never a folder that is not
      a jaxgen run).

    Args:
      experiment: an experiment name (looked up in ``directory`` / :func:`experiments_dir`) or a loaded one.
      quick: apply the experiment's ``QUICK`` settings.
      overrides: ``["key=value", ...]`` or ``{"key": value}``, applied after ``QUICK``.
      out: run folder; default :func:`default_out`. Created with its missing parents (after every config
        check; ``log.txt`` says which were created) and removed again if the run fails having written
        nothing beyond the runner's own files.
      echo: print log lines and show progress bars (bars only when stderr is a terminal).
      fresh: discard a run of other settings held in ``out`` (see above).

    Returns:
      :class:`RunResult` with the metrics the experiment returned (also in ``metrics.json``).

    Raises:
      ExperimentError: a bad config or run folder (:class:`RunFolderConflict`), before any change.
      jaxgen.interrupts.RunInterrupted: SIGINT / SIGTERM stopped the run (``run.json`` says
        ``"interrupted"`` and the step; a rerun resumes).
    """
    from jaxgen import interrupts

    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, directory)
    config = resolve_config(exp, quick=quick, overrides=overrides)  # every check before any folder exists
    out = Path(out) if out is not None else default_out(exp.name)
    folder = _inspect_folder(out, exp, config, fresh)  # refusals before anything is written
    if folder.kind == "finished":
        return _finished(exp, out, config, echo)
    import jax

    info = {
        "experiment": exp.name,
        "file": str(exp.path),
        "file_sha256": _sha256(exp.path),
        "quick": quick,
        "overrides": list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides),
        "status": "running",
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "pid": os.getpid(),
        **provenance(),
    }
    resumed = folder.kind == "resume"
    if resumed:  # keep how the run began; count the sessions; the wall time accumulates (see below)
        info["started"] = folder.info.get("started", info["started"])
        info["sessions"] = int(folder.info.get("sessions", 1)) + 1
    previous_wall = float(folder.info.get("wall_time_s") or 0.0) if resumed else 0.0
    snapshot = _snapshot(out) if resumed else {}
    if folder.kind == "fresh":
        _clear_folder(out)
    created = _make_run_dir(out)
    if not resumed:
        _write_json(out / "config.json", config.to_dict())
    _write_json(out / "run.json", info)  # written now too, so that a killed run still says how it ran
    run = Run(exp.name, out, config, quick=quick, echo=echo, append=resumed)
    run.log(f"== {exp.name}{' (quick)' if quick else ''}: {exp.description}")
    if resumed:
        run.log(f"run folder: {out} (resuming its {folder.info.get('status', 'unfinished')} run, session "
                f"{info['sessions']}; the training loops continue from their checkpoints)")
    elif created is not None and created != out:
        run.log(f"run folder: {out} (created, with its missing parent folder {created})")
    else:
        run.log(f"run folder: {out}")
    start = time.perf_counter()
    _ACTIVE.append(run)
    try:
        with interrupts.handled():
            x64 = bool(config.get("x64", False))
            with jax.enable_x64(x64):
                metrics = exp.module.run(config, run)
            if not isinstance(metrics, Mapping):
                raise ExperimentError(f"Experiment {exp.name!r}: run() must return a dict of metrics, "
                                      f"got {type(metrics).__name__}.")
            with interrupts.deferred():  # a signal now must not cut metrics.json short or undo "completed"
                wall = time.perf_counter() - start + previous_wall
                metrics = to_jsonable(metrics)
                _write_json(out / "metrics.json", metrics)
                info.update(status="completed", wall_time_s=round(wall, 3), figures=run.figures)
                _write_json(out / "run.json", info)
                run.log(f"metrics written to {out / 'metrics.json'} ({wall:.1f} s"
                        + (f" over {info['sessions']} sessions)" if resumed else ")"))
            late = interrupts.requested()
            if late is not None:  # arrived as the run finished (or was dropped by a gc callback): the results are whole
                interrupts.clear()
                run.log(f"({late} received as the run finished; its results are complete and written)")
    except BaseException as e:
        if info.get("status") == "completed":  # e.g. a second Ctrl-C after the results were written
            raise
        if isinstance(e, KeyboardInterrupt):
            e.run_dir = out  # for the command line's one-line message
        if isinstance(e, RunFolderConflict) and resumed:
            run.close()
            _restore(out, snapshot)  # a refusal changes nothing
        else:
            _record_failure(run, info, e, start, created, previous_wall)
        raise
    finally:
        _ACTIVE.remove(run)
        run.close()
    return RunResult(exp.name, out, config, metrics, run.figures, wall)


def _finished(exp: Experiment, out: Path, config, echo: bool) -> RunResult:
    """The result of the finished run in ``out`` (same experiment and config), read back; nothing is written."""
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunFolderConflict(f"The run folder {out} says its run finished but its metrics.json cannot be read "
                                f"({e}); add --fresh to run it again from scratch.") from None
    if echo:
        print(f"{out} already holds this finished run of {exp.name} (started {info.get('started')}, "
              f"{info.get('wall_time_s', 0):.1f} s); nothing was run or changed. Add --fresh to run it again from "
              "scratch." + _code_changed(exp, info), flush=True)
    return RunResult(exp.name, out, config, metrics, list(info.get("figures", [])), float(info.get("wall_time_s", 0)))


def _code_changed(exp: Experiment, info: dict) -> str:
    """A warning when the experiment file or jaxgen's commit differ from those that made the run in ``info``."""
    changed = []
    if info.get("file_sha256") and info["file_sha256"] != _sha256(exp.path):
        changed.append(f"the experiment file {exp.path.name} has changed")
    import jaxgen

    then = (info.get("git") or {}).get("commit")
    now = (_git_state(Path(jaxgen.__file__).resolve().parent) or {}).get("commit")
    if then and now and then != now:
        changed.append(f"jaxgen is at commit {now[:10]}, the run was made at {then[:10]}")
    return f" Note: {'; '.join(changed)} since that run." if changed else ""


def _snapshot(out: Path) -> dict[str, bytes | None]:
    """The runner's own files in ``out`` (bytes, None if absent), to put back if a resume is refused."""
    return {name: (out / name).read_bytes() if (out / name).is_file() else None for name in _BOOKKEEPING}


def _restore(out: Path, snapshot: dict[str, bytes | None]) -> None:
    for name, data in snapshot.items():
        if data is None:
            (out / name).unlink(missing_ok=True)
        else:
            (out / name).write_bytes(data)


def _record_failure(run: Run, info: dict, error: BaseException, start: float, created: Path | None,
                    previous_wall: float = 0.0) -> None:
    """Remove a run folder this run created and left with nothing useful; otherwise record the failure in it.

    An interrupt (SIGINT / SIGTERM) is recorded as ``"status": "interrupted"`` with the step and one
    line in ``log.txt``; anything else as ``"failed"`` with its traceback in ``log.txt``.
    """
    from jaxgen.interrupts import RunInterrupted

    out = run.dir
    useful = [p.name for p in out.iterdir() if p.name not in _BOOKKEEPING] if out.is_dir() else []
    if created is not None and not useful:
        run.close()
        _remove_created(out, created)
        return
    interrupted = isinstance(error, KeyboardInterrupt)
    info.update(status="interrupted" if interrupted else "failed",
                error=f"{type(error).__name__}: {error}",
                wall_time_s=round(time.perf_counter() - start + previous_wall, 3), figures=run.figures)
    if isinstance(error, RunInterrupted) and error.step is not None:
        info["interrupted_at_step"] = error.step
    try:
        _write_json(out / "run.json", info)
        if interrupted:
            run._log.write(interrupt_message(error, out) + "\n")
        else:
            run._log.write("".join(traceback.format_exception(error)))
        run._log.flush()
    except (OSError, ValueError):  # a full disk or a closed log must not hide the original error
        pass


def interrupt_message(error: BaseException, out: Path | None = None) -> str:
    """The one line an interrupted run ends with: where it stopped and what a rerun does."""
    step = getattr(error, "step", None)
    name = getattr(error, "signal_name", "SIGINT")
    where = f"interrupted at step {step}" if step is not None else "interrupted"
    if getattr(error, "checkpoint", None) is not None or (
            out is not None and out.is_dir() and any(out.rglob("checkpoints"))):
        return f"{where} ({name}); rerun the same command to resume"
    return f"{where} ({name}); no checkpoint was kept: rerun the same command to start again"
