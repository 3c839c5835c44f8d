"""PCA as a linear generative model: fit PPCA to data from a known PPCA, compare, generate.

Data: ``n_train`` + ``n_test`` points drawn from a true 2-D PPCA with a 1-D latent space
(``x = mu + w z + eps``, ``w`` of length ``true_scale`` at ``true_angle_deg``, ``eps ~ N(0, true_sigma2 I)``).
Fits: the closed-form maximum likelihood solution and EM from a random start. Figure: true vs
fitted density ellipses and principal direction, generated samples vs held-out data, latent codes.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from jaxgen import keys, plotting, runner
from jaxgen.models import ppca

DESCRIPTION = "PCA as a linear generative model: PPCA fitted (closed form and EM) to data from a known PPCA."

QUICK = {"n_train": 200, "n_test": 1000, "n_generated": 500}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "n_train": runner.positive(), "n_test": runner.positive(), "n_generated": runner.positive(),
    "true_scale": runner.positive(), "true_sigma2": runner.positive(),
    "n_components": runner.one_of(1),  # the true model is 2-D with a 1-D principal subspace
    "em_max_iter": runner.positive(), "em_tol": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_train = 1000
    c.n_test = 10000
    c.n_generated = 1000
    # The true model (D = 2, q = 1).
    c.true_mu = (1.0, 2.0)
    c.true_angle_deg = 30.0  # direction of the principal axis
    c.true_scale = 2.0  # |w|: standard deviation of the data along that axis is sqrt(|w|^2 + sigma2)
    c.true_sigma2 = 0.25
    c.n_components = 1
    c.em_max_iter = 1000
    c.em_tol = 1e-15  # relative change of the mean log-likelihood: stop only at float64 round-off
    c.x64 = True  # so that EM and the closed form can be compared to ~1e-8, not float32's ~1e-4
    return c


def true_params(config) -> ppca.PPCAParams:
    a = np.deg2rad(config.true_angle_deg)
    W = config.true_scale * np.array([[np.cos(a)], [np.sin(a)]])
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return ppca.PPCAParams(mu=jnp.asarray(config.true_mu, dtype), W=jnp.asarray(W, dtype),
                           sigma2=jnp.asarray(config.true_sigma2, dtype))


def run(config, run) -> dict:
    k_train, k_test, k_em, k_gen = keys.streams(run.key, "train", "test", "em", "generate").values()
    truth = true_params(config)
    X_train, _ = ppca.sample(k_train, truth, config.n_train)
    X_test, _ = ppca.sample(k_test, truth, config.n_test)
    run.log(f"data: {config.n_train} training and {config.n_test} held-out points from the true PPCA")

    ml = ppca.fit_ml(X_train, config.n_components)
    em, info = ppca.fit_em(X_train, config.n_components, key=k_em, max_iter=config.em_max_iter, tol=config.em_tol)
    run.log(f"EM: {int(info.n_iter)} iterations, converged={bool(info.converged)}")

    mean_ll = lambda p, X: float(jnp.mean(ppca.log_prob(p, X)))  # noqa: E731
    X_gen, _ = ppca.sample(k_gen, ml, config.n_generated)
    cov_true, cov_ml, cov_em = (np.asarray(ppca.covariance(p)) for p in (truth, ml, em))
    metrics = {
        "test_loglik_true": mean_ll(truth, X_test),
        "test_loglik_ml": mean_ll(ml, X_test),
        "test_loglik_em": mean_ll(em, X_test),
        "train_loglik_ml": mean_ll(ml, X_train),
        "max_angle_deg_ml": float(ppca.principal_angles(truth.W, ml.W)[-1]),
        "max_angle_deg_em": float(ppca.principal_angles(truth.W, em.W)[-1]),
        "sigma2_true": float(truth.sigma2),
        "sigma2_ml": float(ml.sigma2),
        "sigma2_em": float(em.sigma2),
        "em_vs_ml_max_abs_cov_diff": float(np.max(np.abs(cov_em - cov_ml))),
        "em_vs_ml_loglik_diff": mean_ll(em, X_train) - mean_ll(ml, X_train),
        "em_n_iter": int(info.n_iter),
        "em_converged": bool(info.converged),
        # A good generative model makes points that the true model finds as likely as real data.
        "generated_loglik_true": mean_ll(truth, X_gen),
        "cov_rel_error_ml": float(np.linalg.norm(cov_ml - cov_true) / np.linalg.norm(cov_true)),
    }
    for k, v in metrics.items():
        run.log(f"  {k} = {v}")

    # ---- figure: truth vs fit, generated vs held-out data, latent codes vs prior
    X_train, X_test, X_gen = (np.asarray(a) for a in (X_train, X_test, X_gen))
    with run.figure("ppca_fit", 1, 3, figsize=(13, 5.2)) as (fig, (ax0, ax1, ax2)):
        ax0.scatter(*X_train.T, s=5, c="0.6", alpha=0.6, label="training data")
        for params, cov, color, ls, name in ((truth, cov_true, "k", "--", "true"), (ml, cov_ml, plotting.COLORS[3], "-", "fitted")):
            mu = np.asarray(params.mu)
            for n_std in (1, 2):
                plotting.ellipse(ax0, mu, cov, n_std=n_std, edgecolor=color, ls=ls, lw=1.6,
                                 label=f"{name} model (1, 2 sigma)" if n_std == 1 else None)
            w = np.asarray(params.W[:, 0])  # the principal axis: the line mu + t w
            ax0.plot(*np.stack([mu - 2.5 * w, mu + 2.5 * w]).T, color=color, ls=ls, lw=1.2,
                     label=f"{name} principal axis")
        ax0.set_title(f"true vs fitted PPCA (angle {metrics['max_angle_deg_ml']:.2f} deg)")
        ax0.set_aspect("equal", adjustable="datalim")
        ax0.set_xlabel("x1")  # synthetic data: no units
        ax0.set_ylabel("x2")
        plotting.legend_outside(ax0, "below")

        ax1.scatter(*X_test[: len(X_gen)].T, s=5, alpha=0.5, label="held-out data", color=plotting.COLORS[0])
        ax1.scatter(*X_gen.T, s=5, alpha=0.5, label="generated by the fitted model", color=plotting.COLORS[1])
        ax1.set_title("new samples from the fitted model")
        ax1.set_aspect("equal", adjustable="datalim")
        ax1.set_xlabel("x1")
        ax1.set_ylabel("x2")
        plotting.legend_outside(ax1, "below", markerscale=3, ncol=1)

        z_mean, z_cov = ppca.encode(ml, X_test)
        plotting.hist(ax2, np.asarray(z_mean[:, 0]), bins=40, label="E[z | x] of held-out data")
        grid = np.linspace(-4, 4, 200)
        ax2.plot(grid, stats.norm.pdf(grid), "k", label="prior N(0, 1)")
        ax2.set_title(f"latent codes (posterior std {float(np.sqrt(z_cov[0, 0])):.3f})")
        ax2.set_xlabel("z (latent coordinate)")
        ax2.set_ylabel("density")
        plotting.legend_outside(ax2, "below", ncol=1)
    return metrics
