"""Benchmark: small data, where compilation is the cost -- jaxgen vs scikit-learn, cold and warm.

Two tasks on Old Faithful (272 x 2, float64):

* ``gridsearch``: ``GridSearchCV(GaussianMixture(), {"covariance_type": [4 types], "n_components":
  [1..5]}, cv=2)`` -- 40 fits and 40 scorings;
* ``fit``: one ``GaussianMixture(2, random_state=0).fit(X)``.

"cold" is the first call in a fresh Python process with JAX's persistent compilation cache off
(``JAXGEN_COMPILATION_CACHE=0``; jaxgen's estimators never turn it on, only the CLI does): for jaxgen
that is tracing and compiling every program the call needs; for scikit-learn its first-call
overheads. Imports are timed apart; "cold CPU" is the process's user + system time during the cold
call, the figure to compare on a loaded machine. "warm" is the median of ``--repeats`` further identical calls in
the same process. Each (library, task) gets its own child process, run one after another, each
pinned to the cores of ``--cpus`` (default: the first core, so that the ratio is not the load's).
jaxgen's column also counts the XLA compilations of the cold call and their summed time (from
``jax.monitoring``).

    python scripts/bench_small.py                  # both tasks, one core
    python scripts/bench_small.py --cpus 0,1       # two cores
    python scripts/bench_small.py --only fit --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import print_machine  # noqa: E402

GRID = {"covariance_type": ["full", "tied", "diag", "spherical"], "n_components": [1, 2, 3, 4, 5]}
TASKS = ("gridsearch", "fit")


def _child(lib: str, task: str, repeats: int) -> dict:
    """Runs in the fresh process: import, one cold call, ``repeats`` warm calls; returns the times."""
    import statistics
    import warnings

    t0 = time.perf_counter()
    compiles = {"n": 0, "s": 0.0}
    if lib == "jaxgen":
        import jax

        def listener(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                compiles["n"] += 1
                compiles["s"] += duration

        jax.monitoring.register_event_duration_secs_listener(listener)
        import jaxgen

        Estimator = jaxgen.GaussianMixture
    else:
        from sklearn.mixture import GaussianMixture as Estimator
    from sklearn.model_selection import GridSearchCV

    from jaxgen.data import load_faithful

    X = load_faithful()
    import_s = time.perf_counter() - t0

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the K=5 fits alike in both libraries
            if task == "gridsearch":
                return GridSearchCV(Estimator(), GRID, cv=2).fit(X).best_params_
            return Estimator(2, random_state=0).fit(X).lower_bound_

    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    t, c = time.perf_counter(), cpu()
    call()
    cold, cold_cpu = time.perf_counter() - t, cpu() - c
    cold_compiles = dict(compiles)
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        warm.append(time.perf_counter() - t)
    return {"import_s": import_s, "cold_s": cold, "cold_cpu_s": cold_cpu, "warm_s": statistics.median(warm),
            "compiles": cold_compiles["n"], "compile_s": cold_compiles["s"],
            "warm_compiles": compiles["n"] - cold_compiles["n"]}


def _run_child(lib: str, task: str, repeats: int, cpus: list[int]) -> dict:
    env = dict(os.environ, JAXGEN_COMPILATION_CACHE="0", JAX_ENABLE_COMPILATION_CACHE="false")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, task, "--repeats", str(repeats)]
    if cpus:  # taskset rather than a preexec_fn: no fork of this (JAX-threaded) process
        cmd = ["taskset", "-c", ",".join(map(str, cpus))] + cmd
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {lib} {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=TASKS, help="one task (default: both)")
    ap.add_argument("--repeats", type=int, default=5, help="warm calls (median reported)")
    ap.add_argument("--cpus", default="0", help="cores for each child, e.g. 0 or 0,1; 'all' for no pinning")
    ap.add_argument("--child", nargs=2, metavar=("LIB", "TASK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child, args.repeats)))
        return
    cpus = [] if args.cpus == "all" else [int(c) for c in args.cpus.split(",")]
    print_machine(["scikit-learn"])
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"children pinned to cores {cpus or 'any'}; compilation cache off; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []
    for task in ([args.only] if args.only else TASKS):
        r = {lib: _run_child(lib, task, args.repeats, cpus) for lib in ("jaxgen", "sklearn")}
        rows.append((task, r))
        j, s = r["jaxgen"], r["sklearn"]
        print(f"\n{task}: " + ("GridSearchCV, 4 covariance types x K=1..5 x cv=2 (40 fits)" if task == "gridsearch"
                                else "GaussianMixture(2).fit, full covariances"))
        print(f"  {'':8s} {'jaxgen':>10s} {'sklearn':>10s} {'ratio':>7s}")
        print(f"  {'cold':8s} {j['cold_s']:9.2f}s {s['cold_s']:9.2f}s {j['cold_s'] / s['cold_s']:6.1f}x")
        print(f"  {'cold CPU':8s} {j['cold_cpu_s']:9.2f}s {s['cold_cpu_s']:9.2f}s {j['cold_cpu_s'] / s['cold_cpu_s']:6.1f}x"
              "   (user + system time of the process: less sensitive to the machine's load)")
        print(f"  {'warm':8s} {j['warm_s']:9.3f}s {s['warm_s']:9.3f}s {j['warm_s'] / s['warm_s']:6.1f}x")
        print(f"  {'import':8s} {j['import_s']:9.2f}s {s['import_s']:9.2f}s")
        print(f"  jaxgen cold call: {j['compiles']} XLA compilations, {j['compile_s']:.2f} s compiling; "
              f"warm calls: {j['warm_compiles']} more")
    print(json.dumps({task: r for task, r in rows}))


if __name__ == "__main__":
    main()
