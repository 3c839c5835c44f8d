"""A VAE with a Gaussian decoder and a 2-D latent space on continuous images.

Data: Frey Face (1965 frames of 28 x 20, Kingma & Welling 2014) when ``frey_rawface.mat`` is in
the data folder (``$JAXGEN_DATA_DIR``), else scikit-learn's 8 x 8 digits (1797 images, pixels
0..16); ``data="frey"`` / ``"digits"`` forces one. Pixels are scaled to [0, 1]; a random
``test_fraction`` is held out.

Model: tanh MLP encoder/decoder (``model.hidden``), q = 2, Gaussian p(x|z) with a learned
per-pixel variance (floored at ``model.min_obs_var``), prior ``model.prior``. Trained on the ELBO
with Adam through :func:`jaxgen.train.fit`. Held-out log-likelihood: k-sample importance sampling
(nats per image, a density in [0, 1]-pixel units) against PPCA with the same q = 2, the linear
model a 2-D latent space gives in closed form.

Figures: the learned 2-D manifold (decoder means on a grid of z at prior quantiles), prior
samples, test images and reconstructions, latent interpolations, the latent means of the test set (coloured by digit
for the digits data).
"""
import time

import jax
import ml_collections
import numpy as np
import optax
from scipy import stats

from jaxgen import plotting, runner, train
from jaxgen.data import load_digits, load_frey
from jaxgen.data.files import DataFileError, data_dir
from jaxgen.models import ppca, vae

DESCRIPTION = "Gaussian-decoder VAE with a 2-D latent space on Frey Face (or sklearn digits): the learned image manifold."

QUICK = {"train.epochs": 20, "eval.k": 50}


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "data": runner.one_of("auto", "frey", "digits"),
    "test_fraction": runner.interval(0, 1, lo_open=True, hi_open=True),  # both parts must be non-empty
    "model.latent_dim": runner.positive(), "model.hidden": runner.positive(),
    "model.prior": runner.one_of("normal", "mog", "vamp"), "model.n_components": runner.positive(),
    "model.min_obs_var": runner.positive(),
    "train.epochs": runner.positive(), "train.batch_size": runner.positive(), "train.lr": runner.positive(),
    "eval.k": runner.positive(), "eval.grid": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = "auto"  # "auto" (Frey if its file is present, else digits), "frey" or "digits"
    c.test_fraction = 0.2
    c.model = ml_collections.ConfigDict(dict(latent_dim=2, hidden=(200,), activation="tanh", prior="normal",
                                             n_components=10, min_obs_var=1e-3))
    c.train = ml_collections.ConfigDict(dict(epochs=300, batch_size=100, lr=1e-3))
    c.eval = ml_collections.ConfigDict(dict(k=1000, grid=15))
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

    m = config.model
    cfg = vae.VAEConfig(image_shape=(*shape, 1), latent_dim=m.latent_dim, hidden=tuple(m.hidden), activation=m.activation,
                        likelihood="gaussian", variance="learned", obs_var=0.1, min_obs_var=m.min_obs_var,
                        prior=m.prior, n_components=m.n_components)
    params = vae.init(k_init, cfg)
    bs = min(config.train.batch_size, len(X_train))
    opt = optax.adam(config.train.lr)
    t0 = time.perf_counter()
    state, history = train.fit(vae.loss_fn("elbo"), params, opt, X_train, key=k_fit, epochs=config.train.epochs,
                               batch_size=bs, run_dir=run.dir, progress=not run.quick, tensorboard=False)
    params = jax.block_until_ready(state.params)
    train_seconds = time.perf_counter() - t0

    lp = np.asarray(vae.log_prob(params, X_test, k_eval, k=config.eval.k))
    el = np.asarray(vae.elbo(params, X_test, k_elbo))
    lin = ppca.fit_ml(X_train, m.latent_dim)
    lp_ppca = np.asarray(ppca.log_prob(lin, X_test))
    metrics = {
        "data": name,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "test_loglik_nats": float(lp.mean()),
        "test_loglik_k": config.eval.k,
        "test_elbo_nats": float(el.mean()),
        "test_loglik_ppca_nats": float(lp_ppca.mean()),
        "train_seconds": train_seconds,
        "epochs": config.train.epochs,
        "final_train_loss": history[-1]["loss"],
        "obs_std_median": float(np.median(np.exp(0.5 * np.asarray(vae.decode(params, np.zeros((1, m.latent_dim)))["log_var"])))),
    }
    run.log(f"held-out log-likelihood {metrics['test_loglik_nats']:.1f} nats (k={config.eval.k}), ELBO "
            f"{metrics['test_elbo_nats']:.1f}; PPCA (q={m.latent_dim}) {metrics['test_loglik_ppca_nats']:.1f}; "
            f"training {train_seconds:.1f} s")

    # ---- figures
    H, W = shape
    if m.latent_dim == 2:
        n = config.eval.grid
        q = stats.norm.ppf(np.linspace(0.03, 0.97, n))  # even steps in prior probability, as Kingma & Welling
        zz = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2).astype(np.float32)
        imgs = vae.decode_mean(params, zz)
        with run.figure("manifold", 1, 1, figsize=(7, 7 * H / W)) as (fig, ax):
            plotting.show_images(ax, plotting.image_grid(imgs, n, n, shape),
                                 f"decoder means E[x|z] on a {n} x {n} grid of z (prior quantiles 3%..97%)")
    samples, _ = vae.sample(k_sample, params, 48)
    with run.figure("samples", 1, 1, figsize=(8, 8 * 6 * H / (8 * W))) as (fig, ax):
        plotting.show_images(ax, plotting.image_grid(samples, 6, 8, shape), "samples: E[x | z], z ~ p(z)")
    rec = vae.reconstruct(params, X_test[:12])
    with run.figure("reconstructions", 1, 1, figsize=(9, 2)) as (fig, ax):
        plotting.show_images(ax, plotting.image_grid(np.concatenate([X_test[:12], np.asarray(rec)]), 2, 12, shape),
              "test images (top) and reconstructions (bottom)")
    # linear interpolation in latent space between pairs of test images (endpoints = reconstructions)
    strips, _ = vae.interpolate(params, X_test[:4], X_test[4:8], n=10)
    with run.figure("interpolations", 1, 1, figsize=(9, 4 * H / W)) as (fig, ax):
        plotting.show_images(ax, plotting.image_grid(np.asarray(strips).reshape(-1, strips.shape[-1]), 4, 10, shape),
              "latent interpolation between pairs of test images (left and right: their reconstructions)")
    mu = np.asarray(vae.encode(params, X_test)[0])
    if m.latent_dim == 2:
        with run.figure("latent", 1, 1, figsize=(6, 5)) as (fig, ax):
            if y is not None:
                sc = ax.scatter(mu[:, 0], mu[:, 1], c=y[te], cmap="tab10", s=8)
                fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
            else:
                sc = ax.scatter(mu[:, 0], mu[:, 1], c=te, cmap="viridis", s=8)
                fig.colorbar(sc, ax=ax, label="frame index")
            ax.set_xlabel("z1")
            ax.set_ylabel("z2")
            ax.set_title("posterior means of the test images", fontsize=9)
    return metrics
