"""Bayesian GMM on blobs with a known number of clusters, side by side with scikit-learn.

Synthetic 2-D Gaussian blobs with ``true_k`` clusters, fitted with K_max components and a sparse
Dirichlet prior. Reported: the clusters found (components with weight > threshold, and the mode
of the posterior over occupied clusters), the adjusted Rand index against the true labels, the
held-out log predictive density and the fit time, for jaxgen VB, jaxgen NUTS and scikit-learn's
``BayesianGaussianMixture`` (same prior, Dirichlet-distribution weights). Figure: predictive
contours, assignments, the co-clustering matrix P(z_i = z_j).

The centres are uniform in [-8, 8]^2, the most spread of 16 draws (largest smallest pairwise
distance): with a single draw, two blobs can overlap (seed 0 once put two centres 1.9 apart at
cluster_std 1), and then "K found" measures the draw, not the model.
"""
import time

import jax
import ml_collections
import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture as SkBGM

from jaxgen import BayesianGaussianMixture, keys, plotting, runner
from jaxgen.data import make_blobs

DESCRIPTION = "Bayesian GMM on blobs of known K: clusters recovered, ARI, held-out density, vs scikit-learn."

QUICK = {"n_train": 400, "n_test": 400, "nuts.enabled": False}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "true_k": runner.positive(), "n_train": runner.positive(), "n_test": runner.positive(),
    "cluster_std": runner.positive(), "n_components": runner.positive(), "alpha0": runner.positive(),
    "weight_threshold": runner.fraction(), "nuts.num_warmup": runner.positive(), "nuts.num_samples": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.true_k = 4
    c.n_train = 1000
    c.n_test = 1000
    c.cluster_std = 1.0
    c.n_components = 10  # K_max
    c.alpha0 = 1e-3
    c.weight_threshold = 0.01
    c.nuts = ml_collections.ConfigDict(dict(enabled=True, num_warmup=300, num_samples=300))
    return c


def _timed_fit(est, X):
    est.fit(X)  # the first fit compiles; time a second one (what a user fitting repeatedly sees)
    t0 = time.perf_counter()
    est.fit(X)
    return est, time.perf_counter() - t0


def run(config, run) -> dict:
    k_data, k_centers = keys.streams(run.key, "data", "centers").values()
    draws = np.asarray(jax.random.uniform(k_centers, (16, config.true_k, 2), minval=-8.0, maxval=8.0))
    gaps = [np.min(np.linalg.norm(c[:, None] - c[None], axis=-1) + np.diag(np.full(len(c), np.inf))) for c in draws]
    centers = draws[int(np.argmax(gaps))]
    X, y = make_blobs(k_data, config.n_train + config.n_test, centers, cluster_std=config.cluster_std)
    X, y = np.asarray(X, np.float64), np.asarray(y)
    X_train, X_test, y_test = X[: config.n_train], X[config.n_train:], y[config.n_train:]
    K, a0 = config.n_components, config.alpha0
    models = {
        "jaxgen VB": BayesianGaussianMixture(K, weight_concentration_prior=a0, random_state=config.seed,
                                             weight_concentration_prior_type="dirichlet_distribution", max_iter=1000),
        "jaxgen NUTS": None if not config.nuts.enabled else BayesianGaussianMixture(K, weight_concentration_prior=a0, inference="nuts",
                                               weight_concentration_prior_type="dirichlet_distribution",
                                               num_warmup=config.nuts.num_warmup, num_samples=config.nuts.num_samples,
                                               random_state=config.seed),
        "scikit-learn VB": SkBGM(n_components=K, weight_concentration_prior_type="dirichlet_distribution",
                                 weight_concentration_prior=a0, max_iter=1000, random_state=config.seed),
    }
    models = {name: est for name, est in models.items() if est is not None}
    table = {}
    for name, est in run.progress(models.items(), "fit"):
        if name == "jaxgen NUTS":  # NUTS is timed once: a second run would double a long fit
            t0 = time.perf_counter()
            est.fit(X_train)
            seconds = time.perf_counter() - t0
        else:
            est, seconds = _timed_fit(est, X_train)
        used = int(np.sum(est.weights_ > config.weight_threshold))
        row = {
            "clusters_found": used,
            "ari_test": float(adjusted_rand_score(y_test, est.predict(X_test))),
            "heldout_log_predictive_per_point": float(np.mean(est.score_samples(X_test))),
            "fit_seconds": seconds,
        }
        if hasattr(est, "n_occupied_probs_"):
            row["p_occupied_true_k"] = float(est.n_occupied_probs_[config.true_k])
            row["mode_occupied"] = int(est.n_clusters_)
        table[name] = row
        run.log(f"{name}: {used} clusters (true {config.true_k}), ARI {row['ari_test']:.3f}, held-out "
                f"log p {row['heldout_log_predictive_per_point']:.3f}/point, {seconds:.2f} s")

    vb = models["jaxgen VB"]
    order = np.argsort(y_test, kind="stable")
    lo, hi = X.min(0) - 1.0, X.max(0) + 1.0
    with run.figure("bayes_gmm_blobs", 1, 3, figsize=(15, 4.8)) as (fig, axes):
        ax = axes[0]
        plotting.density_contours(ax, lambda P: vb.score_samples(P), (lo[0], hi[0]), (lo[1], hi[1]), levels=8,
                                  cmap="Greys", linewidths=0.7)
        ax.scatter(*X_test.T, s=5, c=vb.predict(X_test), cmap="tab10", vmin=0, vmax=9, zorder=3)
        ax.set_title(f"jaxgen VB: {table['jaxgen VB']['clusters_found']} of K_max={K} components used "
                     f"(true {config.true_k})")
        ax.set_xlabel("x1")  # synthetic data: no units
        ax.set_ylabel("x2")
        ax = axes[1]
        ax.bar(np.arange(K), np.sort(vb.weights_)[::-1], color=plotting.COLORS[0], label="jaxgen VB")
        ax.plot(np.arange(K), np.sort(models["scikit-learn VB"].weights_)[::-1], "o", color=plotting.COLORS[1],
                label="scikit-learn VB")
        if "jaxgen NUTS" in models:
            ax.plot(np.arange(K), np.sort(models["jaxgen NUTS"].weights_)[::-1], "x", color=plotting.COLORS[3],
                    label="jaxgen NUTS (posterior mean)")
        ax.set_xlabel("component (sorted by weight)")
        ax.set_ylabel("posterior mean weight")
        ax.legend()
        ax.set_title("weights: the sparse prior switches components off")
        ax = axes[2]
        C = vb.co_clustering(X_test[order])
        im = ax.imshow(C, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8, label="P(z_i = z_j)")
        ax.set_title("co-clustering matrix of the test points")
        ax.set_xlabel("test point j (sorted by true label)")
        ax.set_ylabel("test point i (sorted by true label)")
        ax.grid(False)
    return {"table": table, "true_k": config.true_k}
