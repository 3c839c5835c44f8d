"""Command line: ``jaxgen list | run | config | tour`` (also ``python -m jaxgen``).

Examples::

    jaxgen list
    jaxgen run gmm_faithful_2d --quick
    jaxgen run outliers --out runs/outliers n_train=2000 seed=3
    jaxgen config ppca_generative --quick      # print the resolved config (all valid keys)
    jaxgen tour --out runs/tour                # every example in order + report.md

Compiled XLA programs are cached on disk across runs (``$JAXGEN_COMPILATION_CACHE``, default
``~/.cache/jaxgen/xla``; set it to 0 to disable). Exit status: 0 on success, 2 on a usage error (unknown experiment, bad override), 1 when an
experiment itself fails.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from jaxgen import runner

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxgen",
        description="Run jaxgen experiments (files in the experiments/ folder) and the tour.",
        epilog=f"Experiments are found in ${runner.EXPERIMENTS_ENV}, else the repository's experiments/ folder, "
        "else ./experiments.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the experiments with a one-line description")

    r = sub.add_parser("run", help="run one experiment into a run folder")
    r.add_argument("name", help="experiment name (see `jaxgen list`)")
    r.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides (anywhere on the line); dotted keys, values parsed to the type "
                   "of the current value")
    r.add_argument("--quick", action="store_true", help="apply the experiment's QUICK settings (seconds on CPU)")
    r.add_argument("--out", default=None, help="run folder (default runs/<name>-<timestamp>)")

    c = sub.add_parser("config", help="print an experiment's resolved config as JSON")
    c.add_argument("name")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    c.add_argument("--quick", action="store_true")

    t = sub.add_parser("tour", help="run the examples in order and write report.md")
    t.add_argument("--out", default=None, help="output folder (default runs/tour-<timestamp>)")
    t.add_argument("--quick", action="store_true", help="each example's QUICK settings (a smoke test of the tour)")
    t.add_argument("--only", default=None, metavar="A,B",
                   help="comma-separated experiment names: run only these sections")
    return p


def _list() -> int:
    directory = runner.experiments_dir()
    names = runner.experiment_names(directory)
    width = max((len(n) for n in names), default=0)
    for name in names:
        try:  # one broken file must not hide the others
            description = runner.load_experiment(name, directory).description
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
        if args.command == "list":
            return _list()
        if args.command == "config":
            exp = runner.load_experiment(args.name)
            config = runner.resolve_config(exp, quick=args.quick, overrides=args.overrides)
            print(json.dumps(runner.to_jsonable(config.to_dict()), indent=2))
            return 0
        if args.command in ("run", "tour"):
            runner.enable_compilation_cache()
        if args.command == "run":
            exp = runner.load_experiment(args.name)
            runner.resolve_config(exp, quick=args.quick, overrides=args.overrides)  # fail before mkdir
            result = runner.run_experiment(exp, quick=args.quick, overrides=args.overrides, out=args.out)
            print(f"done: {result.dir}")
            return 0
        if args.command == "tour":
            from jaxgen import tour

            only = [s.strip() for s in args.only.split(",")] if args.only else None
            report, ok = tour.run_tour(args.out, quick=args.quick, only=only)
            print(f"report: {report}")
            return 0 if ok else 1
    except runner.ExperimentError as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
