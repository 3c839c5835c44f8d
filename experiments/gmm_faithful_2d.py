"""A Gaussian mixture on the 2-D Old Faithful data (eruption duration, waiting time; raw minutes).

The maximum-likelihood K=2 full-covariance mixture has total log-likelihood -1130.26; EM with a few
k-means++ restarts reaches it. Then BIC and AIC compare K = 1..``k_max`` for each covariance type.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner
from jaxgen.data import load_faithful
from jaxgen.models import gmm

DESCRIPTION = "GMM on 2-D Old Faithful: K=2 full covariance reaches the known optimum -1130.26; BIC/AIC over K and covariance type."

QUICK = {"n_init": 3, "k_max": 2, "covariance_types": ("full", "diag")}

REFERENCE_LOGLIK = -1130.26  # K=2, full covariances, raw units (e.g. scikit-learn / mclust on R's faithful)
# The published value is rounded to 2 decimals (the optimum is -1130.264 to 3): a gap of up to half a
# unit in the last decimal (0.005) is agreement, not a shortfall. The metrics say so (gap_within_rounding).
REFERENCE_DECIMALS = 2


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "n_components": runner.positive(), "n_init": runner.positive(), "max_iter": runner.positive(),
    "tol": runner.positive(), "k_max": runner.positive(),
    "covariance_types": runner.one_of("full", "tied", "diag", "spherical"),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_components = 2
    c.n_init = 10
    c.max_iter = 1000
    c.tol = 1e-8  # on the mean log-likelihood per point: the optimum is wanted to ~1e-3 nats in total
    c.k_max = 6
    c.covariance_types = ("full", "tied", "diag", "spherical")
    c.x64 = True
    return c


def _min_variance(params) -> float:
    cov = np.asarray(params.covariances)
    if params.covariance_type in ("full", "tied"):
        return float(np.linalg.eigvalsh(cov).min())
    return float(cov.min())


def run(config, run) -> dict:
    X, names = load_faithful(return_names=True)  # (272, 2) float64, raw minutes
    k_fit, k_sel = keys.streams(run.key, "fit", "select").values()
    fit = lambda key, k, ct: gmm.fit(key, X, k, ct, n_init=config.n_init, max_iter=config.max_iter,  # noqa: E731
                                     tol=config.tol)[0]
    params = fit(k_fit, config.n_components, "full")
    loglik = float(jnp.sum(gmm.log_prob(params, X)))
    gap = loglik - REFERENCE_LOGLIK
    within = abs(gap) <= 0.5 * 10.0 ** -REFERENCE_DECIMALS + 1e-9
    run.log(f"K={config.n_components} full: total log-likelihood {loglik:.4f}; published {REFERENCE_LOGLIK} (rounded to "
            f"{REFERENCE_DECIMALS} decimals), gap {gap:+.4f}: " + ("within the rounding of the published value"
                                                                     if within else "larger than its rounding"))

    grid = [(ct, k) for ct in config.covariance_types for k in range(1, config.k_max + 1)]
    bic, aic, min_var = ({ct: [] for ct in config.covariance_types} for _ in range(3))
    for i, (ct, k) in enumerate(run.progress(grid, "BIC/AIC over K and covariance type")):
        p = params if (ct, k) == ("full", config.n_components) else fit(jax.random.fold_in(k_sel, i), k, ct)
        bic[ct].append(gmm.bic(p, X))
        aic[ct].append(gmm.aic(p, X))
        min_var[ct].append(_min_variance(p))

    def best(table):
        ct, i = min(((ct, i) for ct in table for i in range(len(table[ct]))), key=lambda t: table[t[0]][t[1]])
        return {"covariance_type": ct, "K": i + 1, "value": table[ct][i]}

    best_bic, best_aic = best(bic), best(aic)
    best_bic["bic"], best_aic["aic"] = best_bic.pop("value"), best_aic.pop("value")
    for ct in config.covariance_types:
        run.log(f"  BIC {ct:9s}: " + "  ".join(f"{v:8.1f}" for v in bic[ct]))
    run.log(f"best by BIC: {best_bic}; by AIC: {best_aic}")

    order = np.argsort(np.asarray(params.means[:, 0]))
    metrics = {
        "loglik_total": loglik,
        "reference_loglik": REFERENCE_LOGLIK,
        "reference_decimals": REFERENCE_DECIMALS,  # the published value is rounded to this many decimals
        "gap": gap,  # loglik_total - reference_loglik; |gap| <= 0.005 is the rounding of the published value
        "gap_within_rounding": within,
        "weights": np.asarray(params.weights)[order],
        "means": np.asarray(params.means)[order],
        "covariances": np.asarray(params.covariances)[order],
        "k_values": list(range(1, config.k_max + 1)),
        "bic": bic,
        "aic": aic,
        "best_bic": best_bic,
        "best_aic": best_aic,
        # The smallest variance along any direction of any component: ~reg_covar (1e-6) flags a
        # component collapsed onto tied values (the waiting times are whole minutes), where the
        # likelihood is unbounded and BIC/AIC are meaningless.
        "min_variance": min_var,
        "best_bic_min_variance": min_var[best_bic["covariance_type"]][best_bic["K"] - 1],
    }

    # ---- figures: the K=2 fit over the data; BIC/AIC curves
    Xn = np.asarray(X)
    labels = np.asarray(gmm.predict(params, X))
    pad = 0.1 * (Xn.max(0) - Xn.min(0))
    lo, hi = Xn.min(0) - pad, Xn.max(0) + pad
    with run.figure("faithful_2d_fit", figsize=(6, 4.6)) as (fig, ax):
        cs = plotting.density_contours(ax, lambda P: gmm.log_prob(params, P), (lo[0], hi[0]), (lo[1], hi[1]),
                                       levels=10, filled=True, alpha=0.55)
        fig.colorbar(cs, ax=ax, label="log density (density in 1/min²)", format="%.1f")
        for j, comp in enumerate(order):
            pts = Xn[labels == comp]
            ax.scatter(*pts.T, s=9, color=plotting.COLORS[j], edgecolor="white", lw=0.3,
                       label=f"component {j + 1} (weight {float(params.weights[comp]):.2f})")
            plotting.ellipse(ax, params.means[comp], params.covariances[comp], n_std=2.0,
                             edgecolor=plotting.COLORS[j], lw=2)
        ax.set_xlabel(f"{names[0]} (min)")
        ax.set_ylabel(f"{names[1]} (min)")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(f"K=2 full-covariance GMM: log-likelihood {loglik:.3f}\n"
                     f"(published optimum {REFERENCE_LOGLIK:.{REFERENCE_DECIMALS}f}, rounded to {REFERENCE_DECIMALS} decimals)")
        ax.legend(loc="upper left")

    ks = metrics["k_values"]
    with run.figure("faithful_2d_bic", 1, 2, figsize=(10, 3.8)) as (fig, axes):
        for ax, table, name, b in ((axes[0], bic, "BIC", best_bic), (axes[1], aic, "AIC", best_aic)):
            # Differences from the best model on a symlog axis: the close competitors (a few units
            # apart) stay readable next to the poor ones (hundreds of units).
            ref = b[name.lower()]
            for j, ct in enumerate(config.covariance_types):
                ax.plot(ks, np.asarray(table[ct]) - ref, "o-", color=plotting.COLORS[j], label=ct, ms=4)
            ax.plot([b["K"]], [0.0], "k*", ms=14, label=f"best: {b['covariance_type']}, K={b['K']} ({ref:.1f})")
            ax.set_yscale("symlog", linthresh=10.0)
            worst = max(max(v) for v in table.values()) - ref
            ax.set_ylim(-2.0, 40.0 * max(worst, 10.0))  # head room for the legend
            ax.set_xticks(ks)
            ax.set_xlabel("number of components K")
            ax.set_ylabel(f"{name} - best {name} (symlog)")
            ax.set_title(f"{name} (lower is better)")
            ax.legend(loc="upper right", ncol=3, fontsize=7)
    return metrics
