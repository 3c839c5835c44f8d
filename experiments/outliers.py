"""Outlier detection by log-likelihood: fit PPCA and a GMM on clean data, score contaminated data.

Two data sets, each drawn once and split into a clean training part (its outliers dropped) and a
held-out test part that keeps its outliers:

* ``subspace``: 10-D points near a random 2-D plane (:func:`jaxgen.data.make_subspace`), with
  gross outliers drawn uniformly in a box around the data;
* ``blobs``: three 2-D Gaussian clusters (:func:`jaxgen.data.make_blobs`), with outliers drawn
  uniformly over the clusters' bounding box (some land inside clusters: they cannot be found).

The outlier score is the negative log-likelihood under each fitted model; the distance to the
training mean is a model-free baseline. ROC AUC = probability that a random outlier scores higher
than a random inlier.
"""
import jax
import ml_collections
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from jaxgen import keys, plotting, runner
from jaxgen.data import make_blobs, make_subspace
from jaxgen.models import gmm, ppca

DESCRIPTION = "Outlier detection by log-likelihood with PPCA and a GMM: ROC AUC on contaminated held-out data."

QUICK = {"subspace.n_test": 500, "blobs.n_test": 400, "gmm.n_init": 2}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    **{f"{group}.{key}": runner.positive() for group in ("subspace", "blobs")
       for key in ("n_train", "n_test", "ppca_components")},
    "subspace.n_features": runner.positive(), "subspace.n_components": runner.positive(),
    "subspace.noise_std": runner.positive(), "subspace.outlier_scale": runner.positive(),
    "subspace.outlier_fraction": runner.fraction(), "blobs.outlier_fraction": runner.fraction(),
    "blobs.centers": runner.positive(), "blobs.cluster_std": runner.positive(), "blobs.box_margin": runner.non_negative(),
    "gmm.n_components": runner.positive(), "gmm.n_init": runner.positive(),
    "gmm.covariance_type": runner.one_of("full", "tied", "diag", "spherical"),
}


def check_config(config):
    """The fitted and the true subspace must be proper subspaces of the data space."""
    s = config.subspace
    for key in ("n_components", "ppca_components"):
        if s[key] >= s.n_features:
            raise ValueError(f"subspace.{key} must be smaller than subspace.n_features={s.n_features}, got {s[key]}.")


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.subspace = ml_collections.ConfigDict(dict(
        n_train=500, n_test=2000, n_features=10, n_components=2, noise_std=0.3,
        outlier_fraction=0.1, outlier_scale=1.0, ppca_components=2))
    c.blobs = ml_collections.ConfigDict(dict(
        n_train=600, n_test=2000, centers=3, cluster_std=1.0, outlier_fraction=0.1,
        box_margin=2.0,  # the outlier box is the training data's bounding box grown by this much
        ppca_components=1))
    c.gmm = ml_collections.ConfigDict(dict(n_components=3, covariance_type="full", n_init=3))
    return c


def _subspace(key, c):
    """Clean training rows and a contaminated test set from one draw (so both share the plane)."""
    d = make_subspace(key, c.n_train + c.n_test, c.n_features, c.n_components, noise_std=c.noise_std,
                      outlier_fraction=c.outlier_fraction, outlier_scale=c.outlier_scale)
    X, out = np.asarray(d.X), np.asarray(d.is_outlier)
    train = X[: c.n_train][~out[: c.n_train]]
    return train, X[c.n_train:], out[c.n_train:]


def _blobs(key, c):
    k_blobs, k_out, k_perm = keys.streams(key, "blobs", "outliers", "permutation").values()
    n_out = int(round(c.outlier_fraction * c.n_test))
    X, _ = make_blobs(k_blobs, c.n_train + c.n_test - n_out, c.centers, cluster_std=c.cluster_std)
    X = np.asarray(X)
    train, inliers = X[: c.n_train], X[c.n_train:]
    lo, hi = train.min(0) - c.box_margin, train.max(0) + c.box_margin
    outliers = np.asarray(jax.random.uniform(k_out, (n_out, X.shape[1]), minval=lo, maxval=hi), X.dtype)
    test = np.concatenate([inliers, outliers])
    is_out = np.concatenate([np.zeros(len(inliers), bool), np.ones(n_out, bool)])
    perm = np.asarray(jax.random.permutation(k_perm, len(test)))
    return train, test[perm], is_out[perm]


def run(config, run) -> dict:
    k_sub, k_blob, k_gmm = keys.streams(run.key, "subspace", "blobs", "gmm").values()
    datasets = {"subspace": (_subspace(k_sub, config.subspace), config.subspace.ppca_components),
                "blobs": (_blobs(k_blob, config.blobs), config.blobs.ppca_components)}
    scores, truth, models, auc = {}, {}, {}, {}
    for name, ((train, test, is_out), q) in run.progress(datasets.items(), "fit and score"):
        p_ppca = ppca.fit_ml(train, q)
        p_gmm, _ = gmm.fit(jax.random.fold_in(k_gmm, len(scores)), train, config.gmm.n_components,
                           config.gmm.covariance_type, n_init=config.gmm.n_init)
        center = train.mean(0)
        scores[name] = {
            f"PPCA (q={q})": np.asarray(ppca.outlier_score(p_ppca, test)),
            f"GMM (K={config.gmm.n_components})": -np.asarray(gmm.log_prob(p_gmm, test)),
            "distance to mean": np.linalg.norm(test - center, axis=1),
        }
        truth[name], models[name] = is_out, (p_ppca, p_gmm, train, test)
        auc[name] = {m: float(roc_auc_score(is_out, s)) for m, s in scores[name].items()}
        run.log(f"{name}: {len(train)} clean training points, {len(test)} test points "
                f"({int(is_out.sum())} outliers); AUC " + ", ".join(f"{m} {a:.3f}" for m, a in auc[name].items()))

    metrics = {
        "auc": auc,
        "outlier_fraction": {n: float(truth[n].mean()) for n in truth},
        "n_test": {n: int(truth[n].size) for n in truth},
    }

    # ---- figure 1: score histograms of the model suited to each data set, and ROC curves
    suited = {"subspace": 0, "blobs": 1}  # PPCA for the plane, GMM for the clusters
    with run.figure("outliers_scores", 2, 2, figsize=(10, 7.5)) as (fig, axes):
        for col, name in enumerate(datasets):
            model = list(scores[name])[suited[name]]
            s = scores[name][model]
            # Outliers can be thousands of nats away: log-spaced bins over the shifted score.
            shifted = s - s.min() + 1.0
            bins = np.geomspace(1.0, shifted.max() * 1.01, 40)
            ax = axes[0, col]
            ax.hist(shifted[~truth[name]], bins=bins, alpha=0.6, label="inliers", color=plotting.COLORS[0])
            ax.hist(shifted[truth[name]], bins=bins, alpha=0.6, label="outliers", color=plotting.COLORS[3])
            ax.set_xscale("log")
            ax.set_xlabel("negative log-likelihood - min + 1 (nats, log scale)")
            ax.set_ylabel("test points")
            ax.set_title(f"{name}: {model} score (AUC {auc[name][model]:.3f})")
            ax.legend()
            ax = axes[1, col]
            for j, (m, sc) in enumerate(scores[name].items()):
                fpr, tpr, _ = roc_curve(truth[name], sc)
                ax.plot(fpr, tpr, color=plotting.COLORS[j], ls=("-", "--", "-.")[j % 3], lw=1.8,
                        label=f"{m}: AUC {auc[name][m]:.3f}")
            ax.plot([0, 1], [0, 1], ":", color="0.5", label="chance")
            ax.set_xlabel("false positive rate (inliers flagged)")
            ax.set_ylabel("true positive rate (outliers found)")
            ax.set_title(f"{name}: ROC curves")
            ax.legend(loc="lower right")

    # ---- figure 2: the 2-D blobs, GMM density and the points it flags
    p_ppca, p_gmm, train, test = models["blobs"]
    s = scores["blobs"][list(scores["blobs"])[1]]
    flagged = s >= np.quantile(s, 1.0 - metrics["outlier_fraction"]["blobs"])  # flag as many as there are
    lo, hi = test.min(0) - 0.5, test.max(0) + 0.5
    with run.figure("outliers_blobs", figsize=(7.8, 5)) as (fig, ax):
        plotting.density_contours(ax, lambda P: gmm.log_prob(p_gmm, P), (lo[0], hi[0]), (lo[1], hi[1]),
                                  levels=8, cmap="Greys", linewidths=0.8)
        is_out = truth["blobs"]
        ax.scatter(*test[~is_out].T, s=6, color=plotting.COLORS[0], alpha=0.5, label="test inliers")
        ax.scatter(*test[is_out].T, s=14, color=plotting.COLORS[3], marker="x", label="test outliers")
        ax.scatter(*test[flagged].T, s=60, facecolor="none", edgecolor="k", lw=0.8,
                   label=f"flagged by the GMM (top {flagged.mean():.0%})")
        ax.set_title("blobs: GMM log-density contours and flagged points")
        ax.set_xlabel("x1")  # synthetic data: no units
        ax.set_ylabel("x2")
        plotting.legend_outside(ax, "right", fontsize=7)
    return metrics
