"""Benchmark the Bayesian models against the references a user would otherwise pick, in one run.

1. Bayesian GMM, variational Bayes: jaxgen ``fit_vb`` (jit, warm) vs scikit-learn's
   ``BayesianGaussianMixture`` (Dirichlet-distribution prior, same hyperparameters), both from
   the same k-means responsibilities (scikit-learn's, computed for both and timed for both), the
   same number of iterations; time ratio and agreement of the sorted weights (same path).
2. Bayesian GMM, NUTS: effective samples per second (minimum bulk ESS over label-invariant
   quantities, ArviZ) on standardised Old Faithful.
3. Student-t PCA EM vs Gaussian PPCA (closed form), both jaxgen and warm, on the same data.

Usage: ``python scripts/bench_bayes.py [--quick] [--n N] [--d D] [--k K]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_vb(n, d, k, true_k, repeats):
    """Same model, prior, initial responsibilities and stopping rule: the two follow the same path."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import BayesianGaussianMixture as SkBGM

    from jaxgen.data import make_blobs
    from jaxgen.models import bayes_gmm as bg

    centers = np.asarray(jax.random.uniform(jax.random.key(1), (true_k, d), minval=-6, maxval=6))
    X, _ = make_blobs(jax.random.key(0), n, centers)
    X = np.asarray(X, np.float32)
    # A fixed number of iterations from the same start (tol=0): a float32 ELBO of size ~1e5 cannot
    # resolve scikit-learn's default tol=1e-3 on the total bound, so "until converged" would stop
    # each library at a different point of the same slow drift.
    alpha0, max_iter, tol = 1e-2, 300, 0.0
    prior = bg.default_prior(X, alpha0=alpha0, n_components=k)

    def ours():
        # scikit-learn's own k-means initialisation, drawn the way BayesianGaussianMixture draws it
        labels = KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(0)).fit(X).labels_
        resp0 = np.eye(k, dtype=X.dtype)[labels]
        post, info = bg.fit_vb(jax.random.key(0), X, k, prior, tol=tol, max_iter=max_iter, init_resp=resp0)
        jax.block_until_ready(post)
        return post, info

    def sk():
        return SkBGM(n_components=k, weight_concentration_prior_type="dirichlet_distribution",
                     weight_concentration_prior=alpha0, tol=tol, max_iter=max_iter, random_state=0).fit(X)

    post, info = ours()  # compile
    est = sk()
    t_ours, t_sk = _median_time(ours, repeats), _median_time(sk, repeats)
    w_ours = np.sort(np.asarray(bg.expected_weights(post)))[::-1]
    w_sk = np.sort(est.weights_)[::-1]
    print(f"[VB] N={n} D={d} K_max={k} (true {true_k}), alpha0={alpha0}, float32, same k-means start, "
          f"{max_iter} iterations each")
    print(f"  jaxgen fit_vb        {t_ours * 1e3:9.1f} ms  ({int(info.n_iter)} iterations, converged={bool(info.converged)})")
    print(f"  scikit-learn BGM     {t_sk * 1e3:9.1f} ms  ({est.n_iter_} iterations, converged={est.converged_})")
    print(f"  ratio (sklearn / jaxgen) = {t_sk / t_ours:.2f}x; per iteration "
          f"{(t_sk / est.n_iter_) / (t_ours / int(info.n_iter)):.2f}x")
    print(f"  max |sorted weights difference| = {np.max(np.abs(w_ours - w_sk)):.2e}")


def bench_nuts(num_warmup, num_samples):
    from jaxgen.data import load_faithful
    from jaxgen.models import bayes_gmm as bg

    X = load_faithful()
    X = (X - X.mean(0)) / X.std(0)
    prior = bg.default_prior(X, alpha0=1.0, n_components=6)
    bg.fit_nuts(jax.random.key(0), X, 6, prior, num_warmup=20, num_samples=20)  # compile
    t0 = time.perf_counter()
    _, mcmc = bg.fit_nuts(jax.random.key(1), X, 6, prior, num_warmup=num_warmup, num_samples=num_samples, num_chains=2)
    seconds = time.perf_counter() - t0
    diag = bg.label_invariant_diagnostics(mcmc, jnp.asarray(X, jnp.float32))
    ess = float(diag["ess_bulk"].min())
    print(f"[NUTS] Old Faithful standardised, K_max=6, alpha0=1, 2 chains x ({num_warmup} warm-up + {num_samples})")
    print(f"  {seconds:.1f} s, min bulk ESS {ess:.0f} -> {ess / seconds:.1f} effective samples / s; "
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
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=4)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    if a.quick:
        a.n, a.repeats = 5000, 1
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPU cores")
    bench_vb(a.n, a.d, a.k, true_k=4, repeats=a.repeats)
    bench_nuts(*((100, 100) if a.quick else (500, 500)))
    bench_tpca(a.n, 10, 2, a.repeats)


if __name__ == "__main__":
    main()
