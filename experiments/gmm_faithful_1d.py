"""A Gaussian mixture on the 1-D Old Faithful eruption durations (272 eruptions, minutes).

Fit K components by EM (best of ``n_init`` k-means++ starts), draw new eruptions from the model,
and compare K = 1..``k_max`` by BIC. Components are reported sorted by their mean, a label-invariant
summary (EM's component order is arbitrary).

The BIC range goes to K = 6 (quick: 5) so that the chosen K is inside it, not at its edge: with
seed 0, K = 2, 3 and 4 are within 4 units of each other and K = 4 is lowest (its extra components
refine the two peaks, one of them narrow: ``best_k_min_std``), while K = 5 and 6 are clearly
worse (``best_k_interior`` says whether the minimum is inside the range).
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from jaxgen import keys, plotting, runner
from jaxgen.data import load_faithful
from jaxgen.models import gmm

DESCRIPTION = "GMM on 1-D Old Faithful eruption durations: K=2 density, components, samples, BIC over K."

QUICK = {"n_init": 2, "k_max": 5, "n_generated": 1000}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "n_components": runner.positive(), "n_init": runner.positive(), "max_iter": runner.positive(),
    "tol": runner.positive(), "k_max": runner.positive(), "n_generated": runner.positive(), "bins": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_components = 2
    c.n_init = 5
    c.max_iter = 500
    c.tol = 1e-7  # on the mean log-likelihood per point
    c.k_max = 6  # BIC over K = 1..k_max: the minimum (K = 4) must lie inside the range
    c.n_generated = 5000
    c.bins = 30
    c.x64 = True
    return c


def _components(params) -> dict:
    """Weights, means and standard deviations of a 1-D mixture, sorted by mean."""
    order = np.argsort(np.asarray(params.means[:, 0]))
    stds = np.sqrt(np.asarray(params.covariances).reshape(params.n_components, -1)[:, 0])
    return {"weights": np.asarray(params.weights)[order], "means": np.asarray(params.means[:, 0])[order],
            "stds": stds[order]}


def run(config, run) -> dict:
    X = load_faithful()[:, :1]  # eruption durations, (272, 1)
    k_fit, k_bic, k_gen = keys.streams(run.key, "fit", "bic", "generate").values()
    fit = lambda key, k: gmm.fit(key, X, k, "full", n_init=config.n_init, max_iter=config.max_iter,  # noqa: E731
                                 tol=config.tol)
    params, info = fit(k_fit, config.n_components)
    loglik = float(jnp.sum(gmm.log_prob(params, X)))
    comps = _components(params)
    run.log(f"K={config.n_components}: log-likelihood {loglik:.3f} after {int(info.n_iter)} EM iterations")

    bic, aic, fits = {}, {}, {}
    for k in run.progress(range(1, config.k_max + 1), "BIC over K"):
        p_k = params if k == config.n_components else fit(jax.random.fold_in(k_bic, k), k)[0]
        bic[k], aic[k], fits[k] = gmm.bic(p_k, X), gmm.aic(p_k, X), p_k
    best_k = min(bic, key=bic.get)
    run.log("BIC: " + ", ".join(f"K={k}: {v:.1f}" for k, v in bic.items()) + f" -> K={best_k}")

    X_gen, _ = gmm.sample(k_gen, params, config.n_generated)
    x, x_gen = np.asarray(X[:, 0]), np.asarray(X_gen[:, 0])
    metrics = {
        "loglik_total": loglik,
        "loglik_mean": loglik / X.shape[0],
        "em_n_iter": int(info.n_iter),
        **{k: v.tolist() for k, v in comps.items()},
        "bic": {str(k): v for k, v in bic.items()},
        "aic": {str(k): v for k, v in aic.items()},
        "best_k_bic": best_k,
        "best_k_aic": min(aic, key=aic.get),
        # the minimum must lie inside K = 1..k_max: at the edge, a wider range could move it
        "best_k_interior": 1 < best_k < config.k_max,
        "best_k_min_std": float(np.min(_components(fits[best_k])["stds"])),  # minutes
        # Two-sample Kolmogorov-Smirnov statistic between data and generated eruptions (0 = identical).
        "generated_ks": float(stats.ks_2samp(x, x_gen).statistic),
    }

    grid = np.linspace(x.min() - 0.5, x.max() + 0.5, 400)
    with run.figure("faithful_1d_fit", 1, 3, figsize=(13, 4.6)) as (fig, (ax0, ax1, ax2)):
        plotting.hist(ax0, x, bins=config.bins, color="0.6", label="data")
        for i, (w, m, s) in enumerate(zip(comps["weights"], comps["means"], comps["stds"])):
            ax0.fill_between(grid, w * stats.norm.pdf(grid, m, s), color=plotting.COLORS[i], alpha=0.3, lw=0,
                             label=f"component {i + 1}: w={w:.2f}, mean={m:.2f}, sd={s:.2f}")
        ax0.plot(grid, np.exp(np.asarray(gmm.log_prob(params, grid[:, None]))), "k", lw=1.8, label="mixture density")
        ax0.set_title(f"K={config.n_components} mixture (log-likelihood {loglik:.1f})")
        ax0.set_xlabel("eruption duration (min)")
        ax0.set_ylabel("density (1/min)")
        plotting.legend_outside(ax0, "below", ncol=1)

        bins = np.linspace(grid[0], grid[-1], config.bins + 1)
        plotting.hist(ax1, x, bins=bins, color="0.6", label=f"data (n={x.size})")
        plotting.hist(ax1, x_gen, bins=bins, color=plotting.COLORS[1], label=f"generated (n={x_gen.size})")
        ax1.set_title(f"samples from the model (KS distance {metrics['generated_ks']:.3f})")
        ax1.set_xlabel("eruption duration (min)")
        ax1.set_ylabel("density (1/min)")
        plotting.legend_outside(ax1, "below")

        # Differences from the minimum on a symlog axis (as for the 2-D data): K=1 is hundreds of
        # units worse, the close competitors are a few units apart.
        ks = list(bic)
        ax2.plot(ks, [bic[k] - bic[best_k] for k in ks], "o-", label=f"BIC - {bic[best_k]:.1f}")
        best_aic = metrics["best_k_aic"]
        ax2.plot(ks, [aic[k] - aic[best_aic] for k in ks], "s--", label=f"AIC - {aic[best_aic]:.1f}")
        ax2.axvline(best_k, color="0.5", ls=":", label=f"best K by BIC = {best_k}")
        ax2.set_yscale("symlog", linthresh=10.0)
        ax2.set_ylim(-1.0, 2.0 * max(max(bic.values()) - bic[best_k], max(aic.values()) - aic[best_aic], 10.0))
        ax2.set_xticks(ks)
        ax2.set_xlabel("number of components K")
        ax2.set_ylabel("criterion - its minimum (symlog)")
        ax2.set_title("model selection (lower is better)")
        plotting.legend_outside(ax2, "below")
    return metrics
