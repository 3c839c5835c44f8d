"""Benchmark the Bayesian models against the references a user would otherwise pick, in one run.

1. Bayesian GMM, variational Bayes: jaxgen ``fit_vb`` (jit, warm) vs scikit-learn's
   ``BayesianGaussianMixture`` (Dirichlet-distribution prior, same hyperparameters), both started
   from the same initial responsibilities (scikit-learn's k-means labels, computed once, outside
   the timing) and run for the same number of iterations (tol = 0): the two follow the same path
   (the same updates in the same order), so the ratio is per equal work; agreement of the weights.
2. Bayesian GMM, NUTS (NumPyro, assignments marginalised): chains started from over-dispersed
   points (one independent draw each from a widened VB posterior, see
   ``bayes_gmm.dispersed_init_params``) so that R-hat compares chains that began apart; timed
   warm (the same compiled sampler run again with new keys and new starting points), the
   compilation reported separately (first run minus warm run); effective samples per second
   (minimum bulk ESS over label-invariant quantities, ArviZ).
3. Student-t PCA EM vs Gaussian PPCA (closed form), both jaxgen and warm, on the same data.

Prints the machine, devices and library versions (``scripts/_machine.py``) first. Default run:
about a minute on 2 CPU cores. Usage: ``python scripts/bench_bayes.py [--quick] [--n N] [--d D] [--k K]``.
"""
from __future__ import annotations

import os

# two host devices, so that the two NUTS chains run in parallel on a 2-core machine (before JAX starts)
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import print_machine  # noqa: E402


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_vb(n, d, k, true_k, repeats, iterations):
    """Same model, prior, initial responsibilities and number of iterations: the same path."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import BayesianGaussianMixture as SkBGM

    from jaxgen.data import make_blobs
    from jaxgen.models import bayes_gmm as bg

    centers = np.asarray(jax.random.uniform(jax.random.key(1), (true_k, d), minval=-6, maxval=6))
    X, _ = make_blobs(jax.random.key(0), n, centers)
    X = np.asarray(X, np.float32)
    alpha0 = 1e-2
    prior = bg.default_prior(X, alpha0=alpha0, n_components=k)
    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit(X).labels_
    resp0 = np.eye(k, dtype=X.dtype)[labels]

    class SkFromResp(SkBGM):  # scikit-learn started from the same responsibilities
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp0)

    def ours():
        post, info = bg.fit_vb(jax.random.key(0), X, k, prior, tol=0.0, max_iter=iterations, init_resp=resp0,
                               reg_covar=1e-6, criterion="lower_bound")
        jax.block_until_ready(post)
        return post, info

    def sk():
        return SkFromResp(n_components=k, weight_concentration_prior_type="dirichlet_distribution",
                          weight_concentration_prior=alpha0, tol=0.0, max_iter=iterations, random_state=0).fit(X)

    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)  # tol = 0: a fixed number of iterations on purpose
    post, info = ours()  # compile
    est = sk()
    t_ours, t_sk = _median_time(ours, repeats), _median_time(sk, repeats)
    w_ours = np.asarray(bg.expected_weights(post))
    print(f"[VB] N={n} D={d} K_max={k} (true {true_k}), alpha0={alpha0}, float32, same start (k-means labels), "
          f"{iterations} iterations each, median of {repeats}")
    print(f"  jaxgen fit_vb        {t_ours * 1e3:9.1f} ms  ({int(info.n_iter)} iterations)")
    print(f"  scikit-learn BGM     {t_sk * 1e3:9.1f} ms  ({est.n_iter_} iterations)")
    print(f"  ratio (scikit-learn / jaxgen) = {t_sk / t_ours:.2f}x")
    print(f"  max |weights difference| = {np.max(np.abs(w_ours - est.weights_)):.2e}, "
          f"lower bound {float(np.asarray(info.lower_bound)[int(info.n_iter) - 1]):.2f} vs {est.lower_bound_:.2f}")


def bench_nuts(num_warmup, num_samples, num_chains=2):
    from jaxgen.data import load_faithful
    from jaxgen.inference import run_nuts
    from jaxgen.keys import streams
    from jaxgen.models import bayes_gmm as bg

    X = load_faithful()
    X = jnp.asarray((X - X.mean(0)) / X.std(0), jnp.float32)
    K = 6
    prior = bg.default_prior(np.asarray(X), alpha0=1.0, n_components=K)
    s = streams(jax.random.key(0), "init_cold", "nuts_cold", "init_warm", "nuts_warm")
    args = (X, prior, K)
    kw = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains)
    t0 = time.perf_counter()
    init = bg.dispersed_init_params(s["init_cold"], X, prior, K, num_chains)
    mcmc = run_nuts(bg.numpyro_model, None, s["nuts_cold"], *args, init_params=init, **kw)
    jax.block_until_ready(mcmc.get_samples())
    cold = time.perf_counter() - t0
    # warm: the same MCMC object (its compiled sampler is cached) from new over-dispersed points
    t0 = time.perf_counter()
    init = bg.dispersed_init_params(s["init_warm"], X, prior, K, num_chains)
    mcmc.run(s["nuts_warm"], *args, init_params=init)
    jax.block_until_ready(mcmc.get_samples())
    warm = time.perf_counter() - t0
    diag = bg.label_invariant_diagnostics(mcmc, X)
    ess = float(diag["ess_bulk"].min())
    method = "in parallel" if num_chains <= jax.local_device_count() else "one after another"
    print(f"[NUTS] Old Faithful standardised, K_max={K}, alpha0=1, {num_chains} chains ({method}) x "
          f"({num_warmup} warm-up + {num_samples}), over-dispersed starts")
    print(f"  warm run {warm:.1f} s (warm-up + sampling); compilation {max(cold - warm, 0.0):.1f} s "
          f"(first run {cold:.1f} s)")
    print(f"  min bulk ESS {ess:.0f} -> {ess / warm:.1f} effective samples / s (warm); "
          f"max R-hat {float(diag['r_hat'].max()):.3f}; "
          f"{int(np.sum(np.asarray(mcmc.get_extra_fields()['diverging'])))} divergences")


def bench_tpca(n, d, q, repeats):
    from jaxgen.data import make_subspace
    from jaxgen.models import ppca, tpca

    data = make_subspace(jax.random.key(0), n, d, q, outlier_fraction=0.1)
    X = np.asarray(data.X, np.float32)
    fit_t = lambda: jax.block_until_ready(tpca.fit_em(X, q))  # noqa: E731
    fit_g = lambda: jax.block_until_ready(ppca.fit_ml(X, q))  # noqa: E731
    _, info = fit_t()
    fit_g()
    t_t, t_g = _median_time(fit_t, repeats), _median_time(fit_g, repeats)
    print(f"[Student-t PCA] N={n} D={d} q={q}, 10% outliers, float32")
    print(f"  Student-t EM  {t_t * 1e3:8.1f} ms ({int(info.n_iter)} iterations, {t_t / int(info.n_iter) * 1e3:.2f} ms each)")
    print(f"  PPCA closed   {t_g * 1e3:8.1f} ms")
    print(f"  ratio (Student-t / PPCA) = {t_t / t_g:.1f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--n", type=int, default=5_000)
    p.add_argument("--d", type=int, default=4)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    if a.quick:
        a.n, a.repeats, a.iterations = 2000, 1, 50
    print_machine(["scikit-learn", "arviz"])
    bench_vb(a.n, a.d, a.k, true_k=4, repeats=a.repeats, iterations=a.iterations)
    bench_nuts(*((100, 100) if a.quick else (200, 200)))
    bench_tpca(a.n, 10, 2, a.repeats)


if __name__ == "__main__":
    main()
