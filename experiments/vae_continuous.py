"""A VAE with a Gaussian decoder and a 2-D latent space on continuous images.

Data: Frey Face (1965 frames of 28 x 20, Kingma & Welling 2014) when ``frey_rawface.mat`` is in
the data folder (``$JAXGEN_DATA_DIR``), else scikit-learn's 8 x 8 digits (1797 images, pixels
0..16); ``data="frey"`` / ``"digits"`` forces one. Pixels are scaled to [0, 1]; a random
``test_fraction`` is held out.

Model: tanh MLP encoder/decoder (``model.hidden``), q = 2, Gaussian p(x|z) with a learned
per-pixel variance (one per pixel, not depending on z; floored at ``model.min_obs_var``), prior
``model.prior``. Trained on the ELBO with Adam and a cosine learning-rate decay through
:func:`jaxgen.train.fit`, long enough for the held-out ELBO to flatten (the training curve shows it;
``heldout_elbo_change_last_quarter`` measures it). Held-out log-likelihood: k-sample importance
sampling (nats per image, a density in [0, 1]-pixel units).

Baselines with the *same* noise model as the VAE (one variance per pixel, the same floor):

* an independent Gaussian per pixel, no latent at all (the floor of what per-pixel variances give);
* factor analysis with the same q: x = mu + W z + noise, noise ~ N(0, diag(psi)), the linear model
  with the VAE's noise model (maximum likelihood by EM, psi floored at ``model.min_obs_var``).

and, for reference, PPCA with the same q and *one* shared noise variance (a different noise model:
on images with near-constant pixels, such as the digits' borders, the per-pixel models gain about
2 nats per such pixel from variances at the floor; ``n_pixels_at_floor`` counts them).

Figures: the training curve (train and held-out ELBO per epoch, against the baselines), the learned
2-D manifold (decoder means on a grid of z at prior quantiles), prior samples, test images above
their reconstructions, latent interpolations between two test images shown beside the path, the
latent means of the test set (coloured by digit for the digits data).
"""

import jax
import ml_collections
import numpy as np
from scipy import stats

from jaxgen import keys, plotting, runner, train
from jaxgen.data import load_digits, load_frey
from jaxgen.data.files import DataFileError, data_dir
from jaxgen.models import ppca, vae

DESCRIPTION = ("Gaussian-decoder VAE with a 2-D latent space on Frey Face (or sklearn digits): the learned image manifold, "
               "against factor analysis and a per-pixel Gaussian with the same noise model.")

QUICK = {"train.epochs": 20, "eval.k": 50}

BASELINE_NAMES = {  # metric key -> label in the figure and the report
    "diag": "independent Gaussian per pixel (no latent)",
    "fa": "factor analysis (per-pixel variance)",
    "ppca": "PPCA (one shared variance)",
}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "data": runner.one_of("auto", "frey", "digits"),
    "test_fraction": runner.interval(0, 1, lo_open=True, hi_open=True),  # both parts must be non-empty
    "model.latent_dim": runner.positive(), "model.hidden": runner.positive(),
    "model.prior": runner.one_of("normal", "mog", "vamp"), "model.n_components": runner.positive(),
    "model.min_obs_var": runner.positive(),
    "train.epochs": runner.positive(), "train.batch_size": runner.positive(), "train.lr": runner.positive(),
    "train.schedule": runner.one_of("cosine", "constant"), "train.final_lr_fraction": runner.interval(0, 1),
    "train.checkpoint_every": runner.positive(),
    "eval.k": runner.positive(), "eval.grid": runner.positive(), "eval.curve_points": runner.positive(),
    "baselines.fa_max_iter": runner.positive(), "baselines.fa_tol": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = "auto"  # "auto" (Frey if its file is present, else digits), "frey" or "digits"
    c.test_fraction = 0.2
    c.model = ml_collections.ConfigDict(dict(latent_dim=2, hidden=(200,), activation="tanh", prior="normal",
                                             n_components=10, min_obs_var=1e-3))
    # 1000 epochs of 15 steps: the held-out ELBO is flat over the last quarter (to ~0.6 nats on digits,
    # from ~44 at epoch 250); an epoch takes a few milliseconds, so the checkpoint interval matters more.
    c.train = ml_collections.ConfigDict(dict(epochs=1000, batch_size=100, lr=3e-3, schedule="cosine",
                                             final_lr_fraction=0.01, checkpoint_every=100))
    c.eval = ml_collections.ConfigDict(dict(k=1000, grid=15, curve_points=50))  # curve: held-out ELBO at 50 epochs
    c.baselines = ml_collections.ConfigDict(dict(fa_max_iter=5000, fa_tol=1e-9))
    return c


def _load(name: str):
    """``(X float (N, D) in [0, 1], labels or None, (H, W), name)``."""
    if name in ("auto", "frey"):
        try:
            faces = load_frey()
            return faces.reshape(len(faces), -1).astype(np.float32) / 255.0, None, faces.shape[1:], "frey"
        except DataFileError:
            if name == "frey":
                raise
    elif name != "digits":
        raise ValueError(f"data must be one of ['auto', 'digits', 'frey'], got {name!r}.")
    X, y = load_digits()
    return (X / 16.0).astype(np.float32), y, (8, 8), "digits"


def diagonal_gaussian(X_train, X_test, floor: float) -> np.ndarray:
    """An independent Gaussian per pixel (maximum likelihood, variances floored at ``floor``).

    Args:
      X_train: (N, D) training data; X_test: (M, D).
    Returns:
      (M,) test log-densities (nats), float64.
    """
    X_train, X_test = np.asarray(X_train, np.float64), np.asarray(X_test, np.float64)
    mu, var = X_train.mean(0), np.maximum(X_train.var(0), floor)
    return stats.norm.logpdf(X_test, mu, np.sqrt(var)).sum(1)


def factor_analysis(X, q: int, floor: float, *, max_iter: int = 5000, tol: float = 1e-9):
    """Maximum-likelihood factor analysis x ~ N(mu, W W^T + diag(psi)) by EM, psi >= ``floor``.

    The linear model with one noise variance per pixel (Rubin & Thayer, 1982). scikit-learn's
    ``FactorAnalysis`` floors psi at 1e-12 and has no setting for it; here the floor is the VAE's
    ``min_obs_var``, so both models have the same noise model. EM starts from the PCA solution;
    each M-step maximises the likelihood over psi on the box psi >= floor (the update is
    coordinate-wise, so clipping it is the constrained maximum).

    Args:
      X: (N, D) data. q: latent dimension. floor: smallest noise variance.
      max_iter, tol: stop when the mean log-likelihood per point rises by less than ``tol``.

    Returns:
      ``(mu (D,), W (D, q), psi (D,), mean training log-likelihood, iterations)``, float64.
    """
    X = np.asarray(X, np.float64)
    N, D = X.shape
    mu = X.mean(0)
    S = (X - mu).T @ (X - mu) / N
    evals, evecs = np.linalg.eigh(S)
    psi = np.maximum(np.diag(S), floor)
    W = evecs[:, -q:] * np.sqrt(np.maximum(evals[-q:] - np.mean(evals[:-q]), 1e-6))
    prev = -np.inf
    for it in range(1, max_iter + 1):
        # E-step through the q x q matrix M = I + W^T Psi^-1 W (never a D x D inverse)
        WtP = W.T / psi                                   # (q, D)
        M_inv = np.linalg.inv(np.eye(q) + WtP @ W)
        beta = M_inv @ WtP                                # E[z|x] = beta (x - mu)
        # log-likelihood of the current parameters (Woodbury / matrix determinant lemma)
        SPW = S @ WtP.T                                   # (D, q) = S Psi^-1 W
        trace = np.sum(np.diag(S) / psi) - np.trace(M_inv @ WtP @ SPW)
        logdet = np.sum(np.log(psi)) - np.linalg.slogdet(M_inv)[1]
        ll = -0.5 * (D * np.log(2 * np.pi) + logdet + trace)
        if ll - prev < tol:
            break
        prev = ll
        # M-step
        SB = S @ beta.T                                   # (D, q)
        Ezz = M_inv + beta @ SB                           # (1/N) sum E[z z^T | x_n]
        W = np.linalg.solve(Ezz, SB.T).T
        psi = np.maximum(np.diag(S) - np.sum(W * SB, axis=1), floor)
    return mu, W, psi, float(ll), it


def factor_analysis_log_prob(mu, W, psi, X) -> np.ndarray:
    """(M,) log-densities of ``X (M, D)`` under ``N(mu, W W^T + diag(psi))``, float64."""
    return stats.multivariate_normal(mu, W @ W.T + np.diag(psi)).logpdf(np.asarray(X, np.float64)).reshape(-1)


def run(config, run) -> dict:
    k_split, k_init, k_fit, k_eval, k_elbo, k_sample = keys.streams(
        run.key, "split", "init", "fit", "eval", "elbo", "sample").values()
    X, y, shape, name = _load(config.data)
    perm = np.asarray(jax.random.permutation(k_split, len(X)))
    n_test = int(round(config.test_fraction * len(X)))
    te, tr = perm[:n_test], perm[n_test:]
    X_train, X_test = X[tr], X[te]
    run.log(f"data: {name} ({len(X_train)} train / {len(X_test)} test images of {shape[0]} x {shape[1]})"
            + ("" if name == "frey" else f"; frey_rawface.mat not used (looked in {data_dir()})"))

    m, t = config.model, config.train
    cfg = vae.VAEConfig(image_shape=(*shape, 1), latent_dim=m.latent_dim, hidden=tuple(m.hidden), activation=m.activation,
                        likelihood="gaussian", variance="learned", obs_var=0.1, min_obs_var=m.min_obs_var,
                        prior=m.prior, n_components=m.n_components)
    params = vae.init(k_init, cfg)
    bs = min(t.batch_size, len(X_train))
    steps = t.epochs * (len(X_train) // bs)  # train.fit drops the last partial batch of each epoch
    cosine = dict(schedule="cosine", decay_steps=steps, final_fraction=t.final_lr_fraction)
    optimizer = train.optimizer("adam", t.lr, **(cosine if t.schedule == "cosine" else {}))
    eval_every = max(1, t.epochs // config.eval.curve_points)
    X_test_j = jax.numpy.asarray(X_test)
    state, history = train.fit(vae.loss_fn("elbo"), params, optimizer, X_train, key=k_fit, epochs=t.epochs,
                               batch_size=bs, run_dir=run.dir, progress=not run.quick, tensorboard=False,
                               checkpoint_every=t.checkpoint_every, eval_every=eval_every,
                               eval_fn=lambda p, key: {"heldout_elbo": vae.elbo(p, X_test_j, key).mean()})
    params = jax.block_until_ready(state.params)
    train_seconds = train.train_seconds(history)  # over every session of a resumed run

    lp = np.asarray(vae.log_prob(params, X_test, k_eval, k=config.eval.k))
    el = np.asarray(vae.elbo(params, X_test, k_elbo))
    # Baselines: the same per-pixel noise model (floor included) without a latent / with a linear one,
    # and PPCA (one shared variance) for reference.
    b = config.baselines
    fa_mu, fa_W, fa_psi, _, fa_iter = factor_analysis(X_train, m.latent_dim, m.min_obs_var, max_iter=b.fa_max_iter,
                                                      tol=b.fa_tol)
    baselines = {
        "diag": float(diagonal_gaussian(X_train, X_test, m.min_obs_var).mean()),
        "fa": float(factor_analysis_log_prob(fa_mu, fa_W, fa_psi, X_test).mean()),
        "ppca": float(np.asarray(ppca.log_prob(ppca.fit_ml(X_train, m.latent_dim), X_test)).mean()),
    }
    curve = [(h["epoch"], float(h["eval/heldout_elbo"])) for h in history if "eval/heldout_elbo" in h]
    quarter = [e for e, _ in curve if e <= 0.75 * t.epochs]
    at = dict(curve)
    obs_var = np.exp(np.asarray(vae.decode(params, np.zeros((1, m.latent_dim)))["log_var"])).reshape(-1)
    metrics = {
        "data": name,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "test_loglik_nats": float(lp.mean()),
        "test_loglik_k": config.eval.k,
        "test_elbo_nats": float(el.mean()),
        # the baselines' held-out log-likelihoods, nats per image (see BASELINE_NAMES)
        "test_loglik_diag_nats": baselines["diag"],
        "test_loglik_fa_nats": baselines["fa"],
        "test_loglik_ppca_nats": baselines["ppca"],
        "vae_minus_fa_nats": float(lp.mean()) - baselines["fa"],
        "vae_minus_diag_nats": float(lp.mean()) - baselines["diag"],
        "fa_em_iterations": fa_iter,
        "min_obs_var": m.min_obs_var,
        # pixels whose training variance is below the floor: every per-pixel model pins them there
        "n_pixels_at_floor": int(np.sum(np.asarray(X_train, np.float64).var(0) < m.min_obs_var)),
        "n_pixels": int(X.shape[1]),
        "vae_pixels_at_floor": int(np.sum(obs_var < 1.01 * m.min_obs_var)),
        "train_seconds": train_seconds,
        "epochs": t.epochs,
        "final_train_loss": history[-1]["loss"],
        # held-out ELBO every eval_every epochs; its change over the last quarter says whether training converged
        "heldout_elbo_curve": {"epoch": [e for e, _ in curve], "elbo": [v for _, v in curve]},
        "heldout_elbo_change_last_quarter": (curve[-1][1] - at[quarter[-1]]) if quarter and quarter[-1] < curve[-1][0] else None,
        "obs_std_median": float(np.median(np.sqrt(obs_var))),
    }
    run.log(f"held-out log-likelihood {metrics['test_loglik_nats']:.2f} nats (k={config.eval.k}), ELBO "
            f"{metrics['test_elbo_nats']:.2f}; baselines: " + ", ".join(
                f"{BASELINE_NAMES[k]} {v:.2f}" for k, v in baselines.items()) + f"; training {train_seconds:.1f} s")

    # ---- figures
    H, W = shape
    _training_figure(run, history, metrics, m.latent_dim)
    if m.latent_dim == 2:
        n = config.eval.grid
        q = stats.norm.ppf(np.linspace(0.03, 0.97, n))  # even steps in prior probability, as Kingma & Welling
        zz = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2).astype(np.float32)
        imgs = vae.decode_mean(params, zz)
        with run.figure("manifold", 1, 1, figsize=(7, 7 * H / W)) as (fig, ax):
            plotting.show_latent_grid(ax, imgs, q, q[::-1], shape,
                                      f"decoder means E[x|z] on a {n} x {n} grid of z (prior quantiles 3%..97%)")
    samples, _ = vae.sample(k_sample, params, 48)
    with run.figure("samples", 1, 1, figsize=(8, 8 * 6 * H / (8 * W))) as (fig, ax):
        plotting.show_images(ax, plotting.image_grid(samples, 6, 8, shape), "samples: E[x | z], z ~ p(z)")
    n_rec = 12
    rec = np.asarray(vae.reconstruct(params, X_test[:n_rec]))
    with run.figure("reconstructions", 2, 1, figsize=(9, 2 * (9 / n_rec) * H / W + 0.6)) as (fig, axes):
        plotting.show_images(axes[0], plotting.image_grid(X_test[:n_rec], 1, n_rec, shape), "held-out test images")
        plotting.show_images(axes[1], plotting.image_grid(rec, 1, n_rec, shape),
                             "their reconstructions: decoder mean at z = E[z|x]")
    # linear interpolation in latent space between pairs of test images, the images themselves beside the path
    n_pairs, n_steps = 4, 10
    strips, _ = vae.interpolate(params, X_test[:n_pairs], X_test[n_pairs:2 * n_pairs], n=n_steps)
    with run.figure("interpolations", 1, 3, figsize=(10, n_pairs * (10 / (n_steps + 3)) * H / W + 0.4),
                    gridspec_kw={"width_ratios": [1, n_steps, 1]}) as (fig, axes):
        plotting.show_images(axes[0], plotting.image_grid(X_test[:n_pairs], n_pairs, 1, shape), "image A")
        plotting.show_images(axes[1], plotting.image_grid(np.asarray(strips).reshape(-1, strips.shape[-1]), n_pairs,
                                                          n_steps, shape),
                             f"decoder means at {n_steps} points from E[z|A] to E[z|B]")
        plotting.show_images(axes[2], plotting.image_grid(X_test[n_pairs:2 * n_pairs], n_pairs, 1, shape), "image B")
    mu = np.asarray(vae.encode(params, X_test)[0])
    if m.latent_dim == 2:
        with run.figure("latent", 1, 1, figsize=(6, 5)) as (fig, ax):
            if y is not None:
                sc = ax.scatter(mu[:, 0], mu[:, 1], c=y[te], cmap="tab10", s=8)
                fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
            else:
                sc = ax.scatter(mu[:, 0], mu[:, 1], c=te, cmap="viridis", s=8)
                fig.colorbar(sc, ax=ax, label="frame index")
            ax.set_xlabel("z1 (posterior mean)")
            ax.set_ylabel("z2 (posterior mean)")
            ax.set_title("posterior means of the test images", fontsize=9)
    return metrics


def _training_figure(run, history, metrics, q: int) -> None:
    """ELBO per image against the epoch: training (per epoch), held-out (every few epochs), the final
    importance-sampled held-out log-likelihood and the baselines' held-out log-likelihoods."""
    epochs = np.array([h["epoch"] for h in history])
    train_elbo = -np.array([h["loss"] for h in history])
    c = metrics["heldout_elbo_curve"]
    values = [metrics[f"test_loglik_{k}_nats"] for k in BASELINE_NAMES] + [metrics["test_loglik_nats"]]
    with run.figure("training", 1, 1, figsize=(8, 4.2)) as (fig, ax):
        ax.plot(epochs, train_elbo, color=plotting.COLORS[0], lw=1.0, label="VAE: training ELBO (epoch mean)")
        ax.plot(c["epoch"], c["elbo"], "o-", color=plotting.COLORS[1], ms=3, lw=1.2, label="VAE: held-out ELBO")
        ax.plot([epochs[-1]], [metrics["test_loglik_nats"]], "*", color=plotting.COLORS[1], ms=12,
                label=f"VAE: held-out log-likelihood (k={metrics['test_loglik_k']}) {metrics['test_loglik_nats']:.1f}")
        for j, (k, name) in enumerate(BASELINE_NAMES.items()):
            ax.axhline(metrics[f"test_loglik_{k}_nats"], color=plotting.COLORS[2 + j], ls=("--", "-.", ":")[j], lw=1.3,
                       label=f"{name}, {'q=' + str(q) + ', ' if k != 'diag' else ''}held out: "
                             f"{metrics[f'test_loglik_{k}_nats']:.1f}")
        top, bottom = max(values + list(c["elbo"])), min(values)
        span = top - bottom
        ax.set_ylim(bottom - 0.3 * span - 1.0, top + 0.1 * span + 1.0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image (higher is better)")
        change = metrics["heldout_elbo_change_last_quarter"]
        ax.set_title("training curve" + ("" if change is None else
                                         f": held-out ELBO changed by {change:+.2f} nats over the last quarter"))
        plotting.legend_outside(ax, "below")
