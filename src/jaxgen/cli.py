"""Command line: ``jaxgen list | run | config | tour | data`` (also ``python -m jaxgen``).

The ``jaxgen`` command lives in the virtual environment jaxgen is installed in: after ``make tour``
call it as ``.venv/bin/jaxgen`` or ``source .venv/bin/activate`` first.

Examples::

    jaxgen --version                           # jaxgen's version, and jax's / jaxlib's
    jaxgen list
    jaxgen run gmm_faithful_2d --quick
    jaxgen run outliers --out runs/outliers subspace.n_train=2000 seed=3
    jaxgen config ppca_generative --quick      # print the resolved config (all valid keys)
    jaxgen tour --out runs/tour                # every example in order + report.md
    jaxgen data list                           # each data set: its files, verified / missing / corrupted
    jaxgen data fetch mnist                    # download the four MNIST IDX files, sha256-verified

Compiled XLA programs are cached on disk across runs (``$JAXGEN_COMPILATION_CACHE``, default
``~/.cache/jaxgen/xla``; set it to 0 to disable).

Run folders are never damaged by a rerun: the same command in the same ``--out`` resumes an
unfinished run (from its checkpoints) or reports a finished one and changes nothing; other settings
are refused, naming each one (``train.lr: 0.005 in the folder, 0.001 now``), before anything is
written; ``--fresh`` discards the old run instead. Ctrl-C or SIGTERM stops a run at the end of the
current log period with a checkpoint and one line (``interrupted at step N; rerun the same command
to resume``); a second one stops at once.

Exit status: 0 on success (or a finished run found in ``--out``); 2 on a user error, printed as one
message without a traceback (unknown experiment or config key, a value out of range, a run folder
holding another run or that cannot be created, a missing or corrupted data file, training settings
the data cannot satisfy, a bad command line); 130 when interrupted (SIGINT or SIGTERM); 1 when an
experiment itself fails (with its traceback) or a tour section fails.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from jaxgen import runner

__all__ = ["main", "build_parser", "version_text"]


def version_text() -> str:
    """``"jaxgen X (jax Y, jaxlib Z, Python W)"``, read from the installed metadata (no jax import)."""
    import platform
    from importlib import metadata

    import jaxgen

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (f"jaxgen {jaxgen.__version__} (jax {version('jax')}, jaxlib {version('jaxlib')}, "
            f"Python {platform.python_version()})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxgen",
        description="Run jaxgen experiments (files in the experiments/ folder) and the tour; list and fetch data sets.",
        epilog=f"Experiments are found in ${runner.EXPERIMENTS_ENV}, else the repository's experiments/ folder, "
        "else ./experiments.",
    )
    p.add_argument("--version", action="version", version=version_text(),
                   help="print jaxgen's version and those of jax and jaxlib, then exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the experiments with a one-line description")

    r = sub.add_parser("run", help="run one experiment into a run folder")
    r.add_argument("name", help="experiment name (see `jaxgen list`)")
    r.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides (anywhere on the line); dotted keys, values parsed to the type "
                   "of the current value")
    r.add_argument("--quick", action="store_true", help="apply the experiment's QUICK settings (seconds on CPU)")
    r.add_argument("--out", default=None,
                   help="run folder (default runs/<name>-<timestamp>; missing parent folders are created). A folder "
                   "holding an unfinished run of the same config resumes it; a finished one is reported and left "
                   "unchanged; one of other settings is refused, unchanged")
    r.add_argument("--fresh", action="store_true",
                   help="discard the run held in --out (its files are deleted) and start over in that folder")

    c = sub.add_parser("config", help="print an experiment's resolved config as JSON")
    c.add_argument("name")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    c.add_argument("--quick", action="store_true")

    t = sub.add_parser("tour", help="run the examples in order and write report.md")
    t.add_argument("--out", default=None, help="output folder (default runs/tour-<timestamp>)")
    t.add_argument("--quick", action="store_true", help="each example's QUICK settings (a smoke test of the tour)")
    t.add_argument("--only", default=None, metavar="A,B",
                   help="comma-separated experiment names: run only these sections")

    d = sub.add_parser("data", help="data sets: what is present and verified, and downloading them")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="each data set with its files: verified / missing / corrupted, and the path")
    df = dsub.add_parser("fetch", help="download a data set's files and verify their sha256")
    df.add_argument("name", help="data set name (see `jaxgen data list`)")
    df.add_argument("--force", action="store_true", help="download even when the data set is already usable")
    for q in (dl, df):
        q.add_argument("--data-dir", default=None,
                       help="data folder (default $JAXGEN_DATA_DIR, else ~/.cache/jaxgen)")
    return p


def _data_list(directory) -> int:
    from jaxgen.data import files

    folder = files._resolve_dir(directory)
    print(f"data folder: {folder}" + ("" if folder.is_dir() else " (does not exist yet)"))
    for name in files.DATASETS:
        st = files.dataset_status(name, directory)
        print(f"\n{name}: {'ready' if st['ready'] else 'NOT READY'} - {st['description']}")
        for filename, status, path, detail in st["files"]:
            if st["ready"] and status == "missing":
                detail = "not needed"
            print(f"  {status:<9}  {filename:<28}  {path}" + (f"  ({detail})" if detail else ""))
        if not st["ready"] and any(files.REGISTRY[f].urls for f in files.DATASETS[name].files):
            print(f"  get it with: jaxgen data fetch {name}")
    return 0


def _data_fetch(name: str, directory, force: bool) -> int:
    from jaxgen.data import files

    if name not in files.DATASETS:
        try:
            files._dataset(name)  # the message with a "did you mean"
        except ValueError as e:
            raise runner.ExperimentError(str(e)) from None
    if files.DATASETS[name].bundled:
        print(f"{name} is bundled with jaxgen; nothing to fetch.")
        return 0
    fetched = files.fetch(name, directory, force=force)
    if not fetched:
        print(f"{name} is already present and verified in {files._resolve_dir(directory)}; nothing to fetch "
              "(--force downloads it anyway).")
    for path in fetched:
        print(f"verified  {path}")
    return 0


def _list() -> int:
    directory = runner.experiments_dir()
    names = runner.experiment_names(directory)
    width = max((len(n) for n in names), default=0)
    for name in names:
        try:  # one broken file must not hide the others
            description = runner.read_description(directory / f"{name}.py")
        except Exception as e:  # noqa: BLE001
            description = f"(cannot be loaded: {type(e).__name__}: {e})"
        print(f"{name:<{width}}  {description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    try:
        # key=value items may come after options (`run NAME --quick a=1`), which plain parse_args
        # rejects for a nargs="*" positional; collect such leftovers as overrides.
        args, extra = parser.parse_known_args(argv)
        bad = [e for e in extra if "=" not in e or e.startswith("-")]
        if bad or (extra and args.command not in ("run", "config")):
            parser.error(f"unrecognized arguments: {' '.join(bad or extra)} (config overrides have the form "
                         "key=value and are accepted by `run` and `config`)")
        if extra:
            args.overrides = [*args.overrides, *extra]
    except SystemExit as e:  # argparse already printed the message; keep in-process callers alive
        return int(e.code or 0)
    try:
        return _dispatch(args)
    except KeyboardInterrupt as e:  # SIGINT / SIGTERM (jaxgen.interrupts): one line, no traceback
        print(f"jaxgen: {runner.interrupt_message(e, getattr(e, 'run_dir', None))}", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # noqa: BLE001 - re-raised below unless it is an expected user error
        if not _is_user_error(e):
            raise
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 2


def _is_user_error(e: BaseException) -> bool:
    """A bad command line or config (:class:`runner.ExperimentError`) or a missing / corrupted data file.

    ``DataFileError`` is looked up only if jaxgen.data was imported: if it was not, none was raised
    (and ``jaxgen list`` / ``--version`` need not pay for importing JAX).
    """
    files = sys.modules.get("jaxgen.data.files")
    return isinstance(e, runner.ExperimentError) or (files is not None and isinstance(e, files.DataFileError))


def _dispatch(args) -> int:
    if args.command == "list":
        return _list()
    if args.command == "config":
        exp = runner.load_experiment(args.name)
        config = runner.resolve_config(exp, quick=args.quick, overrides=args.overrides)
        print(json.dumps(runner.to_jsonable(config.to_dict()), indent=2))
        return 0
    if args.command == "data":
        if args.data_command == "list":
            return _data_list(args.data_dir)
        return _data_fetch(args.name, args.data_dir, args.force)
    runner.enable_compilation_cache()
    if args.command == "run":
        # The config is resolved and checked inside run_experiment before the run folder is created.
        result = runner.run_experiment(args.name, quick=args.quick, overrides=args.overrides, out=args.out,
                                       fresh=args.fresh)
        print(f"done: {result.dir}")
        return 0
    assert args.command == "tour", args.command
    from jaxgen import tour

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    report, ok = tour.run_tour(args.out, quick=args.quick, only=only)
    print(f"report: {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
