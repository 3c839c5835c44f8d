"""Robust PCA: Gaussian PPCA is dragged off by gross outliers, Student-t PCA is not.

The seed figure: four panels on the same axes, 2-D data near a line (a 1-D PPCA):
(1) the true model and clean data; (2) PPCA fitted on the clean data; (3) PPCA fitted on the same
data with ``outlier_fraction`` gross outliers; (4) Student-t PCA fitted on those contaminated data.
Reported per model: the largest principal angle between the fitted and the true subspace, and the
outlier-detection ROC AUC of its score on a held-out contaminated set (-log p; for Student-t PCA
also the weight <u_n>). The same comparison is repeated on a higher-dimensional set (``hd``).
The Bayesian model (NumPyro, NUTS) gives a credible interval for the subspace angle.
"""
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn.metrics import roc_auc_score

from jaxgen import keys, plotting, runner
from jaxgen.data import make_subspace
from jaxgen.linalg import principal_angles
from jaxgen.models import ppca, tpca

DESCRIPTION = "Robust PCA: Student-t PCA stays on the true subspace where Gaussian PPCA is dragged off by outliers."

QUICK = {"n_train": 300, "n_test": 1000, "hd.n_train": 400, "nuts.num_warmup": 100, "nuts.num_samples": 100,
         "nuts.n_points": 100}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "n_train": runner.positive(), "n_test": runner.positive(), "noise_std": runner.positive(),
    "outlier_fraction": runner.fraction(), "outlier_scale": runner.positive(),
    "hd.n_train": runner.positive(), "hd.n_features": runner.positive(), "hd.n_components": runner.positive(),
    "nuts.num_warmup": runner.positive(), "nuts.num_samples": runner.positive(), "nuts.n_points": runner.positive(),
}


def check_config(config):
    """The high-dimensional example's subspace must be a proper subspace of its data space."""
    if config.hd.n_components >= config.hd.n_features:
        raise ValueError(f"hd.n_components must be smaller than hd.n_features={config.hd.n_features}, "
                         f"got {config.hd.n_components}.")


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_train = 500
    c.n_test = 2000
    c.noise_std = 0.15
    c.outlier_fraction = 0.1
    c.outlier_scale = 10.0  # outlier half-width in units of the clean data's largest std
    c.hd = ml_collections.ConfigDict(dict(n_train=2000, n_features=10, n_components=2))
    c.nuts = ml_collections.ConfigDict(dict(num_warmup=500, num_samples=500, n_points=300))
    return c


def _data(key, config, n, D, q):
    d = make_subspace(key, n, D, q, noise_std=config.noise_std, outlier_fraction=config.outlier_fraction,
                      outlier_scale=config.outlier_scale)
    return d


def _angle(W, W_true) -> float:
    return float(principal_angles(jnp.asarray(W), W_true)[-1])


def _fit_all(X_clean, X, q):
    """(name -> params) for PPCA on clean data, PPCA on contaminated data, Student-t PCA on them."""
    t0 = time.perf_counter()
    t_params, info = tpca.fit_em(X, q)
    jax.block_until_ready(t_params)
    return {
        "PPCA, clean data": ppca.fit_ml(X_clean, q),
        "PPCA, with outliers": ppca.fit_ml(X, q),
        "Student-t PCA, with outliers": t_params,
    }, info, time.perf_counter() - t0


def _score(name, params, X):
    return np.asarray(tpca.outlier_score(params, X) if name.startswith("Student") else ppca.outlier_score(params, X))


def run(config, run) -> dict:
    k_2d, k_test, k_hd, k_hd_test, k_nuts = keys.streams(run.key, "2d", "test", "hd", "hd_test", "nuts").values()
    metrics = {}
    # ---- 2-D: the figure
    # one draw for training and test so both share the true line
    d = _data(k_2d, config, config.n_train + config.n_test, 2, 1)
    X, out = np.asarray(d.X), np.asarray(d.is_outlier)
    X_train, out_train, X_test, out_test = X[: config.n_train], out[: config.n_train], X[config.n_train:], out[config.n_train:]
    X_clean = X_train[~out_train]
    models, info, _ = _fit_all(X_clean, X_train, 1)
    angles = {name: _angle(p.W, d.W) for name, p in models.items()}
    auc = {name: float(roc_auc_score(out_test, _score(name, p, X_test))) for name, p in models.items()}
    t = models["Student-t PCA, with outliers"]
    auc["Student-t PCA weights <u>"] = float(roc_auc_score(out_test, -np.asarray(tpca.weights(t, X_test))))
    metrics["2d"] = {"angle_deg": angles, "auc": auc, "nu": float(t.nu), "em_iterations": int(info.n_iter),
                     "n_outliers_train": int(out_train.sum())}
    for name in models:
        run.log(f"2-D {name}: angle {angles[name]:.2f} deg, AUC {auc[name]:.3f}")

    lim = np.quantile(np.abs(X_train - np.asarray(d.mu)), 0.99) * 1.1
    xlim = (float(d.mu[0] - lim), float(d.mu[0] + lim))
    ylim = (float(d.mu[1] - lim), float(d.mu[1] + lim))
    true = ppca.PPCAParams(mu=d.mu, W=d.W, sigma2=d.sigma2)
    panels = [("true model, clean data", true, X_clean, None)] + [
        (name, p, X_clean if "clean" in name else X_train, angles[name]) for name, p in models.items()
    ]
    with run.figure("robust_pca", 1, 4, figsize=(17, 4.6), sharex=True, sharey=True) as (fig, axes):
        for ax, (title, p, pts, ang) in zip(axes, panels):
            lp = (lambda P, p=p: tpca.log_prob(p, P)) if isinstance(p, tpca.TPCAParams) else (lambda P, p=p: ppca.log_prob(p, P))
            plotting.density_contours(ax, lp, xlim, ylim, levels=6, cmap="viridis", linewidths=0.9)
            is_out = np.zeros(len(pts), bool) if pts is X_clean else out_train
            ax.scatter(*pts[~is_out].T, s=6, color="0.2", alpha=0.7, zorder=3, label="inliers")
            if is_out.any():
                ax.scatter(*pts[is_out].T, s=14, marker="x", color=plotting.COLORS[3], zorder=3, label="outliers")
            w = np.asarray(p.W[:, 0]) / np.linalg.norm(np.asarray(p.W[:, 0]))
            w_true = np.asarray(d.W[:, 0]) / np.linalg.norm(np.asarray(d.W[:, 0]))
            mu = np.asarray(p.mu)
            ax.plot(*np.stack([mu - 3 * lim * w, mu + 3 * lim * w]).T, color=plotting.COLORS[1], lw=1.2, zorder=2, label="fitted direction")
            ax.plot(*np.stack([np.asarray(d.mu) - 3 * lim * w_true, np.asarray(d.mu) + 3 * lim * w_true]).T, "--",
                    color="k", lw=1, label="true direction")
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
            ax.set_aspect("equal")
            ax.set_title(title if ang is None else f"{title}\nangle to truth {ang:.1f} deg")
            ax.set_xlabel("x1")  # synthetic data: no units; the panels share both axes
        axes[0].set_ylabel("x2")
        axes[0].legend(loc="lower right", fontsize=7)

    # ---- higher-dimensional check of the same claim
    hd = config.hd
    dh = _data(k_hd, config, hd.n_train + config.n_test, hd.n_features, hd.n_components)
    Xh, outh = np.asarray(dh.X), np.asarray(dh.is_outlier)
    Xh_train, outh_train, Xh_test, outh_test = Xh[: hd.n_train], outh[: hd.n_train], Xh[hd.n_train:], outh[hd.n_train:]
    models_h, info_h, t_fit = _fit_all(Xh_train[~outh_train], Xh_train, hd.n_components)
    metrics["hd"] = {
        "angle_deg": {name: _angle(p.W, dh.W) for name, p in models_h.items()},
        "auc": {name: float(roc_auc_score(outh_test, _score(name, p, Xh_test))) for name, p in models_h.items()},
        "nu": float(models_h["Student-t PCA, with outliers"].nu),
        "tpca_fit_seconds": t_fit,
        "em_iterations": int(info_h.n_iter),
    }
    for name in models_h:
        run.log(f"{hd.n_features}-D {name}: angle {metrics['hd']['angle_deg'][name]:.2f} deg, "
                f"AUC {metrics['hd']['auc'][name]:.3f}")

    # ---- Bayesian Student-t PCA by NUTS on the 2-D data: credible interval for the angle
    pts = X_train[: config.nuts.n_points]
    t0 = time.perf_counter()
    post, mcmc = tpca.fit_nuts(k_nuts, pts, 1, num_warmup=config.nuts.num_warmup, num_samples=config.nuts.num_samples)
    ang = np.asarray(tpca.subspace_credible_angles(post, d.W))
    metrics["nuts"] = {
        "angle_deg_median": float(np.median(ang)), "angle_deg_90ci": [float(np.quantile(ang, 0.05)), float(np.quantile(ang, 0.95))],
        "nu_median": float(np.median(np.asarray(post.nu))), "seconds": time.perf_counter() - t0,
        "divergences": int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"]))),
    }
    run.log(f"NUTS: angle median {metrics['nuts']['angle_deg_median']:.2f} deg, 90% interval "
            f"[{metrics['nuts']['angle_deg_90ci'][0]:.2f}, {metrics['nuts']['angle_deg_90ci'][1]:.2f}], "
            f"nu median {metrics['nuts']['nu_median']:.2f}")
    return metrics
