"""Benchmark: full-covariance EM, jaxgen vs scikit-learn, same data, same start, same iterations.

Each implementation runs in its own child process (so that peak memory is its own): the child
builds the data from the seed, takes the same initial parameters (uniform weights, K random rows
as means, the inverse data covariance as every precision), runs EM once to warm up (jaxgen: jit
compilation; scikit-learn: caches/BLAS threads), then ``--repeats`` timed runs of exactly
``--iters`` iterations (tol=0). Reported: median and best wall time, the ratio, the final lower
bound (mean per-sample log-likelihood of the last E-step) of each, and memory:

* ``peak RSS`` = the child's ``ru_maxrss`` (whole-process high-water mark, includes the Python
  interpreter, the libraries and the data);
* ``peak - baseline`` = that high-water mark minus the RSS measured after the data were built and
  the libraries imported, i.e. what fitting added at its peak (XLA buffers included -- tracemalloc
  would not see them).

Usage: ``python scripts/bench_gmm.py [--n 200000 --d 16 --k 16 --iters 20 --dtype float32]``,
``--quick`` for a tiny smoke setting.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _problem(n, d, k, dtype, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    mix = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    labels = rng.integers(0, k, size=n)
    X = rng.standard_normal((n, d))
    for j in range(k):  # per component, so that generating the data never needs (N, D, D)
        rows = labels == j
        X[rows] = centres[j] + X[rows] @ mix[j]
    X = X.astype(dtype)
    weights = np.full(k, 1.0 / k)
    means = X[rng.choice(n, k, replace=False)].astype(np.float64)
    prec = np.linalg.inv(np.cov(X.T.astype(np.float64)))
    precisions = np.stack([prec] * k)
    return X, weights, means, precisions


def _child(args) -> dict:
    import warnings

    X, w0, m0, p0 = _problem(args.n, args.d, args.k, args.dtype, args.seed)
    if args.impl == "jaxgen":
        import jax
        import jax.numpy as jnp

        if args.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        from jaxgen.models import gmm as G

        Xd = jnp.asarray(X)
        params0 = G.GMMParams.from_precisions(w0.astype(X.dtype), m0.astype(X.dtype), p0.astype(X.dtype), "full")

        def run():
            params, info = G.fit_em(Xd, params0, max_iter=args.iters, tol=0.0, chunk_size=args.chunk_size)
            jax.block_until_ready(params)
            return float(info.lower_bound), int(info.n_iter)
    else:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        def run():
            g = GaussianMixture(args.k, covariance_type="full", max_iter=args.iters, tol=0.0,
                                weights_init=w0, means_init=m0, precisions_init=p0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                g.fit(X)
            return float(g.lower_bound_), int(g.n_iter_)

    baseline = _rss_mb()
    t0 = time.perf_counter()
    run()  # warm-up (jaxgen: includes compilation)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        lb, n_iter = run()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"impl": args.impl, "times": times, "first_call": warm, "lower_bound": lb, "n_iter": n_iter,
            "peak_rss_mb": peak, "baseline_rss_mb": baseline}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=None, help="jaxgen rows per block (default: automatic)")
    ap.add_argument("--quick", action="store_true", help="tiny setting: n=5000, d=4, k=3, iters=5")
    ap.add_argument("--impl", choices=["jaxgen", "sklearn"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.k, args.iters, args.repeats = 5000, 4, 3, 5, 2
    if args.impl:  # child process
        print(json.dumps(_child(args)))
        return
    passthrough = [f"--n={args.n}", f"--d={args.d}", f"--k={args.k}", f"--iters={args.iters}", f"--dtype={args.dtype}",
                   f"--repeats={args.repeats}", f"--seed={args.seed}"]
    if args.chunk_size:
        passthrough.append(f"--chunk-size={args.chunk_size}")
    res = {}
    for impl in ("jaxgen", "sklearn"):
        out = subprocess.run([sys.executable, __file__, f"--impl={impl}", *passthrough],
                             capture_output=True, text=True, check=True)
        res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
    import numpy as np

    print(f"full-covariance EM: N={args.n} D={args.d} K={args.k} {args.dtype}, {args.iters} iterations (tol=0), "
          f"{args.repeats} timed runs after one warm-up, {os.cpu_count()} CPU cores")
    print(f"{'':9s}{'median s':>10s}{'best s':>9s}{'s/iter':>9s}{'1st call s':>11s}{'peak RSS MB':>13s}{'peak-base MB':>14s}{'lower bound':>16s}")
    for impl, r in res.items():
        t = np.asarray(r["times"])
        print(f"{impl:9s}{np.median(t):10.3f}{t.min():9.3f}{np.median(t) / args.iters:9.4f}{r['first_call']:11.2f}"
              f"{r['peak_rss_mb']:13.0f}{r['peak_rss_mb'] - r['baseline_rss_mb']:14.0f}{r['lower_bound']:16.6f}")
    ratio = np.median(res["sklearn"]["times"]) / np.median(res["jaxgen"]["times"])
    best_ratio = min(res["sklearn"]["times"]) / min(res["jaxgen"]["times"])
    dlb = abs(res["sklearn"]["lower_bound"] - res["jaxgen"]["lower_bound"])
    print(f"speed-up jaxgen vs scikit-learn: {ratio:.1f}x (median), {best_ratio:.1f}x (best)")
    print(f"|lower bound difference| = {dlb:.2e} (iterations: jaxgen {res['jaxgen']['n_iter']}, sklearn {res['sklearn']['n_iter']})")


if __name__ == "__main__":
    main()
