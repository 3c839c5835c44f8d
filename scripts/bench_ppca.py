"""Benchmark: jaxgen PPCA closed-form fit vs scikit-learn's default PCA(), side by side.

    python scripts/bench_ppca.py                 # N=100000, D=64, q=8, float32
    python scripts/bench_ppca.py --quick         # small sizes, a few seconds
    python scripts/bench_ppca.py --dtype float64 # runs JAX with jax_enable_x64
    python scripts/bench_ppca.py --threads 1     # one BLAS/XLA thread each: steadier on a shared machine

The reference is what a user gets by default: ``PCA(n_components=q)``, whose ``svd_solver="auto"``
picks ``covariance_eigh`` for tall data (N >= 10 D, D <= 1000): one X^T X GEMM and an eigh of the
D x D covariance, the same algorithm as jaxgen's closed form (the script prints the solver chosen).

What is measured
  * time: wall-clock of ``PPCA(q).fit(X)`` (input checks, host->JAX copy, fit, fitted attributes)
    and of ``PCA(q).fit(X)`` on the same NumPy array, both warm (one untimed call
    first, so JAX's compile is excluded), repeats interleaved (jaxgen, sklearn, jaxgen, ...) so that
    load from other processes hits both alike; we report the median and the min. The jitted kernel
    behind ``models.ppca.fit_ml`` on a JAX array is reported too (no validation, no copies).
  * score_samples throughput (rows/s) of the fitted models on X.
  * peak memory: each library runs alone in a fresh child process that imports it, loads X from a
    .npy file, resets its RSS high-water mark (``/proc/self/clear_refs``) and runs one cold and two
    warm fits. We report the high-water mark ``VmHWM`` during the fits (the process's peak resident
    memory: interpreter, library runtime, X and the fits' temporaries), that minus the RSS just
    before the fits (the extra memory the fits needed; for jaxgen this includes JIT compilation),
    and the same for the warm fits alone (high-water mark reset after the cold fit). Linux only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import print_machine  # noqa: E402


def make_data(n: int, d: int, q: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Low-rank-plus-noise data with a non-zero mean (so centring matters in float32)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q)) * np.linspace(3.0, 1.0, q)
    X = rng.normal(size=(n, q)) @ W.T + 0.5 * rng.normal(size=(n, d)) + 10.0
    return X.astype(dtype)


def limit_threads(n: int) -> None:
    """Cap BLAS threads here (threadpoolctl, numpy is already loaded) and, via the environment, in
    XLA (read when JAX starts, later) and in the memory children."""
    from threadpoolctl import threadpool_limits

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    threadpool_limits(limits=n)


def _setup_jax(dtype: str):
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return jax


def _timeit(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run_timing(args) -> dict:
    jax = _setup_jax(args.dtype)
    from sklearn.decomposition import PCA

    from jaxgen import PPCA
    from jaxgen.models import ppca

    X = make_data(args.n, args.d, args.q, args.dtype)
    Xj = jax.numpy.asarray(X)

    def fit_jax():
        return PPCA(args.q).fit(X)

    def fit_sk():
        return PCA(n_components=args.q).fit(X)

    def fit_kernel():
        return jax.block_until_ready(ppca._fit_ml(Xj, args.q, 0))  # the jitted kernel alone

    ours, ref = fit_jax(), fit_sk()  # warm-up (compiles the jitted kernels)
    fit_kernel()
    ours.score_samples(X), ref.score_samples(X)
    t_jax, t_sk, t_kernel, s_jax, s_sk = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved so that background load hits both alike
        t_jax += _timeit(fit_jax, 1)
        t_sk += _timeit(fit_sk, 1)
        t_kernel += _timeit(fit_kernel, 1)
        s_jax += _timeit(lambda: ours.score_samples(X), 1)
        s_sk += _timeit(lambda: ref.score_samples(X), 1)
    # agreement on the same data (ddof: sklearn divides by N-1, jaxgen's default by N)
    ours1 = PPCA(args.q, ddof=1).fit(X)
    Xd = X.astype(np.float64)
    ref64 = PCA(n_components=args.q, svd_solver="full").fit(Xd)  # the exact reference for agreement
    err = float(np.max(np.abs(ours1.score_samples(X) - ref64.score_samples(Xd))))
    ang = float(np.max(np.asarray(ppca.principal_angles(ours1.components_.T, ref64.components_.T))))
    med = statistics.median
    return {
        "fit_jaxgen_s": med(t_jax), "fit_jaxgen_min_s": min(t_jax),
        "fit_sklearn_s": med(t_sk), "fit_sklearn_min_s": min(t_sk),
        "fit_kernel_s": med(t_kernel),
        "score_jaxgen_rows_per_s": args.n / med(s_jax), "score_sklearn_rows_per_s": args.n / med(s_sk),
        "max_abs_logprob_diff_vs_sklearn_float64": err, "max_principal_angle_deg": ang,
        "jax_backend": jax.default_backend(), "sklearn_solver": ref._fit_svd_solver,
    }


def _proc_kib(field: str) -> int:
    """A ``Vm*`` line of /proc/self/status in KiB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child(args) -> None:
    """Run one library alone on the saved data and print its memory figures (KiB) as JSON."""
    if args.child == "jaxgen":
        _setup_jax(args.dtype)
        from jaxgen import PPCA as Est

        make = lambda: Est(args.q)  # noqa: E731
    else:
        from sklearn.decomposition import PCA as Est

        make = lambda: Est(n_components=args.q)  # noqa: E731
    X = np.load(args.data, allow_pickle=False)
    def reset_hwm() -> int:
        with open("/proc/self/clear_refs", "w") as f:  # high-water mark := current RSS
            f.write("5")
        return _proc_kib("VmRSS")

    before = reset_hwm()
    make().fit(X)  # cold (jaxgen: includes JIT compilation)
    peak_cold = _proc_kib("VmHWM")
    before_warm = reset_hwm()
    for _ in range(2):
        make().fit(X)
    peak_warm = _proc_kib("VmHWM")
    print(json.dumps({"rss_before_kib": before, "peak_kib": max(peak_cold, peak_warm),
                      "warm_extra_kib": peak_warm - before_warm}))


def run_memory(args) -> dict:
    """Peak RSS of a fresh child per library (see the module docstring)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X.npy")  # children load X: no generator temporaries in their peak
        np.save(path, make_data(args.n, args.d, args.q, args.dtype))
        for lib in ("jaxgen", "sklearn"):
            cmd = [sys.executable, __file__, "--child", lib, "--data", path, "--q", str(args.q), "--dtype", args.dtype]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"memory child for {lib} failed:\n{proc.stderr[-2000:]}")
            mem = json.loads(proc.stdout.strip().splitlines()[-1])
            out[f"peak_rss_{lib}_mib"] = mem["peak_kib"] / 1024
            out[f"fit_extra_rss_{lib}_mib"] = (mem["peak_kib"] - mem["rss_before_kib"]) / 1024
            out[f"warm_fit_extra_rss_{lib}_mib"] = mem["warm_extra_kib"] / 1024
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="number of samples")
    p.add_argument("--d", type=int, default=64, help="number of features")
    p.add_argument("--q", type=int, default=8, help="latent dimension")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeats", type=int, default=9, help="timed repeats (median reported)")
    p.add_argument("--quick", action="store_true", help="N=20000, D=32, q=4, 5 repeats")
    p.add_argument("--threads", type=int, default=None,
                   help="cap BLAS (OpenBLAS/MKL/OpenMP) and XLA to this many threads in both libraries; "
                        "default: each library's own default")
    p.add_argument("--no-memory", action="store_true", help="skip the child-process memory measure")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--child", choices=["jaxgen", "sklearn"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.d, args.q, args.repeats = 20_000, 32, 4, 5
    if args.threads:
        limit_threads(args.threads)
    if args.child:
        return child(args)
    res = {"n": args.n, "d": args.d, "q": args.q, "dtype": args.dtype, "repeats": args.repeats,
           "threads": args.threads}
    if not args.no_memory:  # first, while this process is small: a child's ru_maxrss counts the RSS
        res.update(run_memory(args))  # it had when forked from here
    res.update(run_timing(args))
    print_machine(["scikit-learn", "numpy", "threadpoolctl"])
    print(f"PPCA fit, N={args.n} D={args.d} q={args.q} {args.dtype}, median of {args.repeats} "
          f"(backend {res['jax_backend']}, {os.cpu_count()} CPUs, threads {args.threads or 'default'})")
    print(f"  jaxgen PPCA.fit          {res['fit_jaxgen_s'] * 1e3:9.2f} ms  (min {res['fit_jaxgen_min_s'] * 1e3:.2f})")
    print(f"  jaxgen fit_ml kernel     {res['fit_kernel_s'] * 1e3:9.2f} ms  (jitted, JAX array in)")
    print(f"  sklearn PCA().fit        {res['fit_sklearn_s'] * 1e3:9.2f} ms  "
          f"(min {res['fit_sklearn_min_s'] * 1e3:.2f}; solver {res['sklearn_solver']!r})")
    print(f"  fit speed-up jaxgen vs sklearn {res['fit_sklearn_s'] / res['fit_jaxgen_s']:6.2f} x (ratio of medians)")
    print(f"  score_samples  jaxgen {res['score_jaxgen_rows_per_s']:.3g} rows/s, sklearn "
          f"{res['score_sklearn_rows_per_s']:.3g} rows/s "
          f"({res['score_jaxgen_rows_per_s'] / res['score_sklearn_rows_per_s']:.2f} x)")
    print(f"  agreement (ddof=1 vs sklearn on float64 data): max |log p diff| "
          f"{res['max_abs_logprob_diff_vs_sklearn_float64']:.2e}, largest principal angle "
          f"{res['max_principal_angle_deg']:.2e} deg")
    if not args.no_memory:
        print("  peak RSS (VmHWM) of a fresh child running 3 fits of only that library; "
              "extra = peak - RSS before the fits (cold + warm):")
        for lib in ("jaxgen", "sklearn"):
            peak, extra = res[f"peak_rss_{lib}_mib"], res[f"fit_extra_rss_{lib}_mib"]
            warm = res[f"warm_fit_extra_rss_{lib}_mib"]
            print(f"    {lib:8s} peak {peak:8.1f} MiB   extra {extra:8.1f} MiB   extra of a warm fit {warm:8.1f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
