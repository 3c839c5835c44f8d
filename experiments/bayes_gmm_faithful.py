"""Bayesian GMM on Old Faithful: the sparse Dirichlet prior decides how many clusters (PRML Fig. 10.6).

Standardised Old Faithful, K_max components, symmetric Dirichlet(alpha0) on the weights and the
default Normal-inverse-Wishart prior (:func:`jaxgen.models.bayes_gmm.default_prior`). For each
alpha0, closed-form variational Bayes: posterior mean weights, the posterior over the number of
occupied clusters, predictive contours. With alpha0 = 1e-3 two components keep non-zero weight
(Bishop); with alpha0 = 1 the extra components keep a small weight and the posterior gives a third
cluster some probability; alpha0 = 10 keeps all six. NUTS (assignments marginalised), with
ArviZ R-hat / ESS on label-invariant quantities (at alpha0 = 1, see the config).
"""
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner
from jaxgen.data import load_faithful
from jaxgen.models import bayes_gmm as bg

DESCRIPTION = "Bayesian GMM on Old Faithful: alpha0 = 1e-3 leaves two clusters, alpha0 = 10 keeps all six (PRML Fig. 10.6)."

QUICK = {"nuts.enabled": False}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "n_components": runner.positive(), "alpha0s": runner.positive(), "max_iter": runner.positive(),
    "tol": runner.positive(), "weight_threshold": runner.fraction(), "nuts.alpha0": runner.positive(),
    "nuts.num_warmup": runner.positive(), "nuts.num_samples": runner.positive(), "nuts.num_chains": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_components = 6
    c.alpha0s = (1e-3, 1.0, 10.0)
    c.max_iter = 2000
    c.tol = 1e-6  # largest change of an expected cluster size N_k, relative to N
    c.weight_threshold = 0.01  # a component "is used" when its posterior mean weight exceeds this
    # NUTS at alpha0 = 1: with alpha0 = 1e-3 the empty components' weights live at scale exp(-1/alpha0) and
    # HMC diverges on that geometry (most transitions); VB is the method for the sparsest prior.
    c.nuts = ml_collections.ConfigDict(dict(enabled=True, alpha0=1.0, num_warmup=500, num_samples=500, num_chains=2))
    return c


def run(config, run) -> dict:
    X = load_faithful()
    X = (X - X.mean(0)) / X.std(0)
    Xj = jnp.asarray(X, jnp.float32)
    K = config.n_components
    k_vb, k_count, k_nuts, k_count_nuts = keys.streams(run.key, "vb", "count", "nuts", "count_nuts").values()
    fits, metrics = {}, {"vb": {}}
    for a0 in run.progress(config.alpha0s, "VB per alpha0"):
        prior = bg.default_prior(X, alpha0=a0, n_components=K)
        t0 = time.perf_counter()
        post, info = bg.fit_vb(k_vb, X, K, prior, max_iter=config.max_iter, tol=config.tol)
        jax.block_until_ready(post)
        seconds = time.perf_counter() - t0
        w = np.asarray(bg.expected_weights(post))
        occ = np.asarray(bg.occupied_clusters_vb(k_count, post, Xj))
        n_iter = int(info.n_iter)
        fits[a0] = (post, w, occ)
        metrics["vb"][f"alpha0={a0:g}"] = {
            "weights": np.sort(w)[::-1], "n_components_used": int(np.sum(w > config.weight_threshold)),
            "p_occupied": occ, "mode_occupied": int(np.argmax(occ)), "elbo": float(np.asarray(info.elbo)[n_iter - 1]),
            "iterations": n_iter, "converged": bool(info.converged), "seconds": seconds,
            "train_log_predictive": float(jnp.sum(bg.predictive_log_prob(post, Xj))),
        }
        run.log(f"alpha0={a0:g}: weights {np.round(np.sort(w)[::-1], 3)}, components used "
                f"{int(np.sum(w > config.weight_threshold))}, ELBO {metrics['vb'][f'alpha0={a0:g}']['elbo']:.2f} "
                f"({n_iter} iterations)")

    lim = (-2.6, 2.6)
    with run.figure("bayes_gmm_faithful", 2, len(config.alpha0s), figsize=(4.3 * len(config.alpha0s), 7.8)) as (fig, axes):
        for j, a0 in enumerate(config.alpha0s):
            post, w, occ = fits[a0]
            ax = axes[0, j]
            plotting.density_contours(ax, lambda P, post=post: bg.predictive_log_prob(post, jnp.asarray(P, jnp.float32)),
                                      lim, lim, levels=7, cmap="Greys", linewidths=0.7)
            ax.scatter(*X.T, s=6, c=np.asarray(jnp.argmax(bg.vb_responsibilities(post, Xj), -1)), cmap="tab10",
                       vmin=0, vmax=9, zorder=3)
            W = np.asarray(post.W_chol @ jnp.swapaxes(post.W_chol, -1, -2))
            for k in np.flatnonzero(w > config.weight_threshold):
                plotting.ellipse(ax, np.asarray(post.m[k]), np.linalg.inv(W[k]) / float(post.nu[k]),
                                 color=plotting.COLORS[k % 10], lw=1.5)
            ax.set_title(f"alpha0 = {a0:g}: {int(np.sum(w > config.weight_threshold))} components used")
            ax.set_xlabel("eruption duration (standardised)")
            ax.set_ylabel("waiting time (standardised)")
            ax.set_aspect("equal")
            ax = axes[1, j]
            ax.bar(np.arange(K), w, color=[plotting.COLORS[k % 10] for k in range(K)])
            ax.set_xlabel("component")
            ax.set_ylabel("posterior mean weight E[pi_k]")
            ax.set_ylim(0, 1)
            ax.set_title("occupied clusters: " + ", ".join(f"P({n}) = {p:.2f}" for n, p in enumerate(occ) if p > 0.005),
                         fontsize=8)

    # ---- NUTS, diagnosed on label-invariant quantities
    c = config.nuts
    if not c.enabled:
        return metrics
    prior = bg.default_prior(X, alpha0=c.alpha0, n_components=K)
    t0 = time.perf_counter()
    draws, mcmc = bg.fit_nuts(k_nuts, X, K, prior, num_warmup=c.num_warmup, num_samples=c.num_samples,
                              num_chains=c.num_chains)
    seconds = time.perf_counter() - t0
    diag = bg.label_invariant_diagnostics(mcmc, Xj)
    occ = np.asarray(bg.occupied_clusters_draws(k_count_nuts, draws, Xj))
    n_draws = c.num_samples * c.num_chains
    metrics["nuts"] = {
        "alpha0": c.alpha0, "p_occupied": occ, "mode_occupied": int(np.argmax(occ)), "seconds": seconds,
        "r_hat_max": float(diag["r_hat"].max()), "ess_bulk_min": float(diag["ess_bulk"].min()),
        "ess_bulk_per_second": float(diag["ess_bulk"].min() / seconds),
        "divergences": int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"]))),
        "draws": n_draws, "train_log_predictive": float(jnp.sum(bg.draws_log_prob(draws, Xj))),
        "diagnostics": {row: {k: float(v) for k, v in diag.loc[row, ["r_hat", "ess_bulk", "ess_tail"]].items()}
                        for row in diag.index},
    }
    run.log(f"NUTS alpha0={c.alpha0:g}: P(occupied) {np.round(occ, 3)}, max R-hat {metrics['nuts']['r_hat_max']:.3f}, "
            f"min bulk ESS {metrics['nuts']['ess_bulk_min']:.0f} ({metrics['nuts']['ess_bulk_per_second']:.1f}/s), "
            f"{metrics['nuts']['divergences']} divergences, {seconds:.1f} s")
    return metrics
