"""Benchmark: full-covariance EM, jaxgen vs scikit-learn, same data, same start, same iterations.

Two comparisons in one run: the path a user calls, ``jaxgen.GaussianMixture(K, max_iter=20, tol=0,
precisions_init=identity).fit(X)`` on a NumPy array against scikit-learn's ``GaussianMixture`` with
the same arguments (each runs its own k-means initialisation, its EM and its final E-step), and EM
alone from an identical start (``jaxgen.models.gmm.fit_em`` on a device array), which isolates the
EM kernels.

    python scripts/bench_gmm.py                      # N=200000 D=16 K=16 float32, 20 iterations
    python scripts/bench_gmm.py --quick              # tiny setting, seconds
    python scripts/bench_gmm.py --n 10000000 --no-sklearn   # accelerator figure (scikit-learn would take minutes)
    python scripts/bench_gmm.py --memory             # also peak RSS of each library in its own child

Both libraries get the same data (built from the seed), the same initial parameters (uniform
weights, K random rows as means, the inverse data covariance as every precision) and run exactly
``--iters`` iterations (tol=0). ``--threads 1`` gives each library one thread on one core: on a
shared machine OpenBLAS's default 2-thread pool can collapse under contention (measured with five
other jobs on 2 cores: scikit-learn at 1.4 to 7 s per iteration from one run to the next), which
would flatter jaxgen. Each runs once untimed (jaxgen: jit compilation, reported as
"1st call"; scikit-learn: caches, BLAS threads), then the timed runs alternate (jaxgen, sklearn,
jaxgen, ...) so that load from other processes hits both alike; reported are medians and minima
and the ratio of the medians. Both use the machine's default thread count (XLA's and the BLAS's).

Speed against the hardware: one EM iteration of a full-covariance mixture costs about
4 K D^2 N flops in two GEMM-shaped contractions (the E-step's whitening U_k^T (x - mu_k) for all k,
and the M-step's scatter sum r y y^T); the achieved GFLOP/s is that count over the measured time,
printed beside two matmul rates measured in the same run with jnp on the same device: a large
square float32 GEMM (what the chips can do) and a GEMM of the E-step's shape, (K D, D) x (D, chunk)
scanned over the data (what such thin GEMMs can do).

``--memory``: each library also runs one fit in a fresh child process; reported are the child's
peak RSS (``ru_maxrss``: interpreter, libraries, data) and that minus the RSS after the data were
built and the libraries imported (what fitting added at its peak, XLA buffers included).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import median_time, print_machine  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _problem(n, d, k, dtype, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    mix = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    labels = rng.integers(0, k, size=n)
    X = rng.standard_normal((n, d), dtype=np.float32 if dtype == "float32" else np.float64)
    for j in range(k):  # per component, so that generating the data never needs (N, D, D)
        rows = labels == j
        X[rows] = centres[j] + X[rows] @ mix[j]
    X = X.astype(dtype, copy=False)
    weights = np.full(k, 1.0 / k)
    means = X[rng.choice(n, k, replace=False)].astype(np.float64)
    prec = np.linalg.inv(np.cov(X[: min(n, 1_000_000)].T.astype(np.float64)))
    precisions = np.stack([prec] * k)
    return X, weights, means, precisions


def _jaxgen_runner(X, w0, m0, p0, args):
    import jax
    import jax.numpy as jnp

    from jaxgen.models import gmm as G

    Xd = jax.device_put(X)
    params0 = G.GMMParams.from_precisions(w0.astype(X.dtype), m0.astype(X.dtype), p0.astype(X.dtype), "full")

    def run():
        params, info = G.fit_em(Xd, params0, max_iter=args.iters, tol=0.0, chunk_size=args.chunk_size)
        jax.block_until_ready(params)
        return float(info.lower_bound), int(info.n_iter)

    chunk = G._chunk_for(params0, Xd, args.chunk_size)
    return run, chunk, jnp


def _sklearn_runner(X, w0, m0, p0, args):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    def run():
        g = GaussianMixture(args.k, covariance_type="full", max_iter=args.iters, tol=0.0,
                            weights_init=w0, means_init=m0, precisions_init=p0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            g.fit(X)
        return float(g.lower_bound_), int(g.n_iter_)

    return run


def _estimator_runners(X, args):
    """``GaussianMixture(K, max_iter, tol=0, precisions_init=I).fit(X)`` of both libraries on the
    NumPy array X: k-means init, EM and the final E-step, as a user calls them."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGMM

    from jaxgen import GaussianMixture

    prec = np.broadcast_to(np.eye(args.d, dtype=X.dtype), (args.k, args.d, args.d)).copy()

    def make(cls):
        def run():
            g = cls(args.k, covariance_type="full", max_iter=args.iters, tol=0.0, precisions_init=prec,
                    random_state=args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                g.fit(X)
            return float(g.lower_bound_), int(g.n_iter_)
        return run

    return {"jaxgen": make(GaussianMixture), "sklearn": make(SkGMM)}


def _timed(runs, repeats):
    """One untimed first call each (compilation, caches), then ``repeats`` interleaved timed calls."""
    res = {name: {"times": []} for name in runs}
    for name, run in runs.items():
        t0 = time.perf_counter()
        run()
        res[name]["first_call"] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            lb, n_iter = run()
            res[name]["times"].append(time.perf_counter() - t0)
            res[name]["lower_bound"], res[name]["n_iter"] = lb, n_iter
    return res


def _matmul_rates(jnp, dtype, d, k, chunk, n, repeats=5):
    """GFLOP/s of a square GEMM and of the E-step-shaped GEMM scanned over n rows, on the JAX device."""
    import jax
    import numpy as np

    rng = np.random.default_rng(0)
    s = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.device_put(rng.standard_normal((s, s)).astype(dtype))
    square = 2 * s**3 / median_time(jax.jit(lambda a: a @ a), a, repeats=repeats) / 1e9
    n_chunks = max(1, min(n, 200_000) // chunk)
    xs = jax.device_put(rng.standard_normal((n_chunks, chunk, d)).astype(dtype))
    ut = jax.device_put(rng.standard_normal((k * d, d)).astype(dtype))

    @jax.jit
    def thin(ut, xs):  # the output is consumed (summed) so that XLA cannot drop the GEMM
        return jax.lax.scan(lambda c, x: (c + jnp.sum(ut @ x.T), None), jnp.zeros((), ut.dtype), xs)[0]

    thin_rate = 2 * k * d * d * n_chunks * chunk / median_time(thin, ut, xs, repeats=repeats) / 1e9
    return square, s, thin_rate


def _one_thread() -> None:
    """One compute thread for XLA and the BLAS, the process pinned to one core (Linux)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def _child(args) -> dict:
    """--memory: one library alone in this process; peak RSS of one warm-up and one timed fit."""
    X, w0, m0, p0 = _problem(args.n, args.d, args.k, args.dtype, args.seed)
    if args.impl == "jaxgen":
        import jax

        if args.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        run = _jaxgen_runner(X, w0, m0, p0, args)[0]
    else:
        run = _sklearn_runner(X, w0, m0, p0, args)
    baseline = _rss_mb()
    run()
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"peak_rss_mb": peak, "baseline_rss_mb": baseline}


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
    ap.add_argument("--no-sklearn", action="store_true", help="jaxgen only (large N on an accelerator)")
    ap.add_argument("--memory", action="store_true", help="also peak RSS per library, each in a fresh child")
    ap.add_argument("--threads", type=int, default=0,
                    help="1: one compute thread each (XLA flags, BLAS via threadpoolctl, process pinned to one "
                         "core): steadier on a loaded machine; 0 (default): each library's default pool")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--impl", choices=["jaxgen", "sklearn"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.k, args.iters, args.repeats = 5000, 4, 3, 5, 2
    if args.threads == 1:  # before JAX starts (XLA reads its flags once); inherited by the memory children
        _one_thread()
    if args.impl:  # memory child
        print(json.dumps(_child(args)))
        return
    import jax
    import numpy as np

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    print_machine(["scikit-learn", "numpy", "threadpoolctl"])
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('num_threads')} threads" for i in threadpool_info())
        print(f"threads: numpy/scikit-learn BLAS: {blas or 'unknown'}; XLA: "
              + ("1 (intra_op_parallelism_threads=1, pinned to one core)" if args.threads == 1 else "its default pool"))
    except ImportError:
        pass
    X, w0, m0, p0 = _problem(args.n, args.d, args.k, args.dtype, args.seed)
    run_j, chunk, jnp = _jaxgen_runner(X, w0, m0, p0, args)
    runs = {"jaxgen": run_j}
    if not args.no_sklearn:
        runs["sklearn"] = _sklearn_runner(X, w0, m0, p0, args)
    est = None
    if not args.no_sklearn:
        # the estimator path first: its first call is the cold one a user meets (nothing compiled yet)
        est = _timed(_estimator_runners(X, args), args.repeats)
    res = _timed(runs, args.repeats)
    if args.memory:
        passthrough = [f"--n={args.n}", f"--d={args.d}", f"--k={args.k}", f"--iters={args.iters}",
                       f"--dtype={args.dtype}", f"--seed={args.seed}"]
        if args.chunk_size:
            passthrough.append(f"--chunk-size={args.chunk_size}")
        for impl in runs:
            out = subprocess.run([sys.executable, __file__, f"--impl={impl}", *passthrough],
                                 capture_output=True, text=True, check=True)
            res[impl].update(json.loads(out.stdout.strip().splitlines()[-1]))
    square, s, thin = _matmul_rates(jnp, args.dtype, args.d, args.k, chunk, args.n)

    if est is not None:
        print(f"estimator path: GaussianMixture({args.k}, max_iter={args.iters}, tol=0, precisions_init=I)"
              f".fit(X) on a NumPy array, N={args.n} D={args.d} {args.dtype} (k-means init, EM, final E-step)")
        print(f"{'':9s}{'median s':>10s}{'best s':>9s}{'cold s':>9s}{'lower bound':>16s}")
        for impl, r in est.items():
            t = np.asarray(r["times"])
            print(f"{impl:9s}{np.median(t):10.3f}{t.min():9.3f}{r['first_call']:9.2f}{r['lower_bound']:16.6f}")
        ratio = np.median(est["sklearn"]["times"]) / np.median(est["jaxgen"]["times"])
        cold = est["sklearn"]["first_call"] / est["jaxgen"]["first_call"]
        print(f"estimator speed-up jaxgen vs scikit-learn: {ratio:.1f}x warm (ratio of medians), "
              f"{min(est['sklearn']['times']) / min(est['jaxgen']['times']):.1f}x (best), {cold:.1f}x cold (first calls)")
        print()
    print(f"EM alone from the same start: N={args.n} D={args.d} K={args.k} {args.dtype}, {args.iters} iterations (tol=0), "
          f"{args.repeats} timed runs each (interleaved) after one warm-up; jaxgen rows per block {chunk}")
    head = f"{'':9s}{'median s':>10s}{'best s':>9s}{'s/iter':>9s}{'1st call s':>11s}{'lower bound':>16s}"
    if args.memory:
        head += f"{'peak RSS MB':>13s}{'peak-base MB':>14s}"
    print(head)
    for impl, r in res.items():
        t = np.asarray(r["times"])
        line = (f"{impl:9s}{np.median(t):10.3f}{t.min():9.3f}{np.median(t) / args.iters:9.4f}{r['first_call']:11.2f}"
                f"{r['lower_bound']:16.6f}")
        if args.memory:
            line += f"{r['peak_rss_mb']:13.0f}{r['peak_rss_mb'] - r['baseline_rss_mb']:14.0f}"
        print(line)
    flops = 4 * args.k * args.d**2 * args.n * args.iters
    gj = flops / np.median(res["jaxgen"]["times"]) / 1e9
    print(f"jaxgen achieved {gj:.1f} GFLOP/s (4 K D^2 N flops per iteration) = {gj / square:.0%} of the measured "
          f"{s}x{s} {args.dtype} matmul rate {square:.1f} GFLOP/s, {gj / thin:.0%} of the E-step-shaped GEMM rate "
          f"{thin:.1f} GFLOP/s ((K D, D) x (D, {chunk}) scanned over the rows)")
    out = {"n": args.n, "d": args.d, "k": args.k, "iters": args.iters, "dtype": args.dtype, "chunk": chunk,
           "results": res, "estimator": est, "gflops_jaxgen": gj, "matmul_square_gflops": square, "matmul_thin_gflops": thin}
    if "sklearn" in res:
        ratio = np.median(res["sklearn"]["times"]) / np.median(res["jaxgen"]["times"])
        best_ratio = min(res["sklearn"]["times"]) / min(res["jaxgen"]["times"])
        dlb = abs(res["sklearn"]["lower_bound"] - res["jaxgen"]["lower_bound"])
        print(f"speed-up jaxgen vs scikit-learn: {ratio:.1f}x (ratio of medians), {best_ratio:.1f}x (best)")
        print(f"|lower bound difference| = {dlb:.2e} (iterations: jaxgen {res['jaxgen']['n_iter']}, "
              f"sklearn {res['sklearn']['n_iter']})")
        out.update(ratio_median=ratio, ratio_best=best_ratio, lower_bound_diff=dlb)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
