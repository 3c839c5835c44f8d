"""PixelVAE beside a plain VAE on dynamically binarised MNIST: interpolation between two images.

Models, trained on the same images with the same budget (``train.*``: epochs, minibatch, Adam
learning rate, and a KL warm-up: the KL term's weight rises linearly from 0 to 1 over the first
``train.kl_warmup_epochs`` epochs, against the decoder learning to ignore the code early on), both with the same convolutional inference network (``model.conv_features``,
``model.conv_dense``, ``model.latent_dim``) and a Bernoulli likelihood:

* ``pixelvae`` (:mod:`jaxgen.models.pixelvae`, Gulrajani et al. 2017): ``z`` -> a context map of
  ``model.context_channels`` channels (a deconvolutional network) -> a small gated PixelCNN
  (``model.n_layers`` layers of ``model.features`` channels) that models ``p(x | z)`` pixel by pixel;
* ``vae`` (:mod:`jaxgen.models.vae`, ``architecture="conv"``): the deconvolutional network maps ``z``
  straight to independent pixel probabilities.

Data (as ``pixelcnn_mnist``, whose helpers are imported): the first ``n_train`` images of MNIST's
50 000-image training split, each minibatch binarised afresh at every step; the test set binarised
once from the ``binarize_test`` stream (the same binary test images as ``pixelcnn_mnist`` and
``vae_mnist`` for the same seed), and ``eval.n_test`` of them evenly spread over the 10 000
(:func:`jaxgen.metrics.samples.spread`) for the numbers.

Numbers (``metrics.json``, one group per model): ``test_elbo_nats`` (one-sample ELBO, mean over the
test images), ``test_nll_nats`` (``-mean log p(x)``, importance-sampled with ``test_nll_k`` samples
of ``q(z | x)``: ``eval.k_pixelvae`` for the PixelVAE, where each sample is one PixelCNN pass, and
``eval.k_vae`` for the VAE; an upper bound in expectation that tightens as k grows, so the
PixelVAE's, with fewer samples, is the looser), ``kl_nats`` (the mean ``KL(q(z|x) || p(z))`` on the
test images: near 0 means the decoder ignores the code, the known failure of a VAE with an
autoregressive decoder), ``active_units`` (latent dimensions whose posterior mean varies over the
test images with variance > 0.01, Burda et al. 2016), parameters, training time.

Figures: ``interpolation``: for ``eval.n_pairs`` pairs of test images of different digits (the first
test image of digits 0 and 1, 2 and 3, ...), two rows per pair: the PixelVAE's
:func:`jaxgen.models.pixelvae.interpolate` (``eval.n_steps`` points on the ``eval.path`` path
("linear" by default, or "slerp") between the posterior means, each decoded autoregressively with
the same random numbers, so what changes along the row comes from the code) and the VAE's
:func:`jaxgen.models.vae.interpolate` (decoder means, grey levels) for the same pair and path; the
two test images stand at the row ends. ``samples``: prior samples of both (PixelVAE: binary draws;
VAE: decoder means). ``training_curve``: both training ELBOs.

Configs:
  * default (CPU budget, about 6 minutes on 2 shared CPU cores): {cpu_settings}.
    {cpu_result}
  * ``--quick``: tiny networks on 256 images, well under a minute (its PixelVAE ignores its code: KL 0.00).
"""
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner, train
from jaxgen.data import load_mnist
from jaxgen.metrics.latents import active_units
from jaxgen.metrics.samples import spread
from jaxgen.models import pixelvae, vae

# The sibling experiment's data protocol (the same binary test images for the same seed).
binarized_test_set = runner.load_experiment("pixelcnn_mnist", Path(__file__).parent).module.binarized_test_set

DESCRIPTION = "PixelVAE (PixelCNN decoder) vs a conv VAE on binarised MNIST: interpolation between two images, NLL, KL."

QUICK = {"n_train": 256, "model.latent_dim": 4, "model.conv_features": (4, 8), "model.conv_dense": 16,
         "model.context_channels": 2, "model.features": 8, "model.n_layers": 2, "model.out_features": 16,
         "train.epochs": 2, "train.batch_size": 32, "train.kl_warmup_epochs": 1.0, "train.lr": 5e-3, "eval.n_test": 64, "eval.k_pixelvae": 4,
         "eval.k_vae": 16, "eval.batch_size": 32, "eval.n_pairs": 2, "eval.n_steps": 5, "eval.n_samples": 4}

# How the CPU budget was chosen: a probe (1 epoch of 1280 images, the default networks, the machine
# shared with two other jobs) trained the PixelVAE at about 550 images/s and the VAE at about 2400;
# 6 epochs of 20 000 images then take about 4 + 1 minutes. With the 7/5-kernel decoder and no KL
# warm-up the PixelVAE's KL stayed near 0.1-0.2 nats over the first 2 epochs (the code unused), hence
# the smaller kernels and the warm-up.
CPU_SETTINGS = ("20 000 training images, 6 epochs, minibatch 64, Adam 2e-3, KL warm-up over 2 epochs; latent 16, "
                "encoder convolutions (16, 32) and a dense layer of 128; PixelCNN decoder of 2 layers (a 5 x 5 mask-A "
                "layer, one gated 3 x 3 layer) of 16 features on a 4-channel context map; k = 20 (PixelVAE) and "
                "k = 200 (VAE) on 1000 test images")
CPU_RESULT = ("Measured (seed 0, a 2-core x86-64 CPU shared with other jobs, jax 0.10.2; 369 s in all): PixelVAE "
              "test NLL 86.06 nats (k = 20, standard error 0.66), ELBO -87.23, KL 5.62 nats, 7 of 16 units active, "
              "451 749 parameters, 245 s of training; VAE test NLL 98.22 nats (k = 200, s.e. 0.81), ELBO -104.61, KL "
              "24.46 nats, 16 of 16 active, 442 673 parameters, 51 s. The PixelVAE uses its code (5.6 nats), "
              "but for much less than the VAE: the local decoder draws the strokes, the code the digit's "
              "shape and class, which change along its interpolation rows.")
STREAMS = ("init", "fit", "binarize_test", "elbo", "nll", "interpolate", "sample", "vae")

CHECKS = {
    "n_train": runner.interval(1, 50_000),
    "model.latent_dim": runner.positive(), "model.conv_features": runner.positive(), "model.conv_dense": runner.positive(),
    "model.context_channels": runner.positive(), "model.features": runner.positive(), "model.n_layers": runner.positive(),
    "model.first_kernel": runner.positive(), "model.kernel_size": runner.positive(),
    "model.out_features": runner.positive(),
    "train.epochs": runner.positive(), "train.batch_size": runner.positive(), "train.lr": runner.positive(),
    "train.logs_per_epoch": runner.positive(), "train.kl_warmup_epochs": runner.non_negative(),
    "eval.n_test": runner.interval(1, 10_000), "eval.k_pixelvae": runner.positive(), "eval.k_vae": runner.positive(),
    "eval.batch_size": runner.positive(), "eval.n_pairs": runner.interval(1, 5), "eval.n_steps": runner.interval(2, 20),
    "eval.path": runner.one_of("linear", "slerp"), "eval.n_samples": runner.positive(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_train = 20_000
    c.model = ml_collections.ConfigDict(dict(latent_dim=16, conv_features=(16, 32), conv_dense=128, context_channels=4,
                                             features=16, n_layers=2, first_kernel=5, kernel_size=3, out_features=32))
    c.train = ml_collections.ConfigDict(dict(epochs=6, batch_size=64, lr=2e-3, kl_warmup_epochs=2.0, logs_per_epoch=2))
    c.eval = ml_collections.ConfigDict(dict(n_test=1000, k_pixelvae=20, k_vae=200, batch_size=100, n_pairs=5,
                                            n_steps=8, path="linear", n_samples=36))
    return c


def model_configs(config) -> tuple[pixelvae.PixelVAEConfig, vae.VAEConfig]:
    """The two models of ``config.model`` (their own checks raise ``ValueError`` on bad settings)."""
    m = config.model
    pv = pixelvae.PixelVAEConfig(latent_dim=m.latent_dim, conv_features=tuple(m.conv_features), conv_dense=m.conv_dense,
                                 context_channels=m.context_channels, features=m.features, n_layers=m.n_layers,
                                 first_kernel=m.first_kernel, kernel_size=m.kernel_size, out_features=m.out_features)
    v = vae.VAEConfig(image_shape=(28, 28, 1), latent_dim=m.latent_dim, architecture="conv",
                      conv_features=tuple(m.conv_features), conv_dense=m.conv_dense, activation="relu",
                      likelihood="bernoulli")
    return pv, v


def check_config(config) -> None:
    """Rules across keys, before any folder is made: valid models, a batch that fits the data."""
    model_configs(config)
    bs = config.train.batch_size
    if bs > config.n_train:
        raise ValueError(f"train.batch_size={bs} exceeds n_train={config.n_train}; use a smaller batch.")
    if bs % jax.device_count():
        raise ValueError(f"train.batch_size={bs} must be divisible by the {jax.device_count()} devices (the batches "
                         "are split over them).")


def _kl(mean, log_var) -> np.ndarray:
    """``KL(N(mean, exp(log_var)) || N(0, I))`` per row, ``(N,)``."""
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    return 0.5 * np.sum(np.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def warmup_steps(config, n_train: int) -> int:
    """Steps of the KL warm-up: ``train.kl_warmup_epochs`` epochs of ``n_train`` images."""
    return int(round(config.train.kl_warmup_epochs * (n_train // config.train.batch_size)))


def warmed_loss(loss, warmup: int):
    """The PixelVAE's loss with the KL term weighted by ``min(1, step / warmup)`` (the same schedule
    as :func:`jaxgen.models.vae.kl_weight`, which the plain VAE's objective uses): ``-(recon - w KL)``."""
    def f(params, batch, key, step=None):
        _, m = loss(params, batch, key)
        w = vae.kl_weight(step, 1.0, warmup)
        return -(m["recon"] - w * m["kl"]), {**m, "kl_weight": w}

    f.check_train_data = loss.check_train_data
    settings = train.settings_of(loss)
    if settings is not None:  # described (for a resumed run's check) when the inner loss is
        f.settings = {**settings, "kl_warmup_steps": warmup}
    return f


def _fit(run, loss, params, config, x_train, key, run_dir):
    t = config.train
    steps_per_epoch = len(x_train) // t.batch_size
    optimizer = train.optimizer("adam", t.lr)
    state, history = train.fit(loss, params, optimizer, x_train, key=key, steps=t.epochs * steps_per_epoch,
                               batch_size=t.batch_size, log_every=max(1, steps_per_epoch // t.logs_per_epoch),
                               run_dir=run_dir, progress=not run.quick, tensorboard=False)
    params = jax.block_until_ready(state.params)
    return params, train.train_seconds(history), history


def _summary(lp, elbo, kl, means, seconds, history, n_params, k) -> dict:
    return {"test_nll_nats": float(-np.mean(lp)), "test_nll_sem": float(np.std(lp, ddof=1) / np.sqrt(len(lp))),
            "test_nll_k": k, "test_elbo_nats": float(np.mean(elbo)), "kl_nats": float(np.mean(kl)),
            "active_units": active_units(means)["n_active"], "n_params": n_params, "train_seconds": seconds,
            "train_images_per_s": float(np.median([h["examples_per_s"] for h in history])),
            "final_train_elbo": float(history[-1]["elbo"]),
            "history": {"epoch": [h["epoch"] for h in history], "train_elbo": [h["elbo"] for h in history],
                        "train_kl": [h["kl"] for h in history]}}


def _tile(ax, images, rows: int, cols: int, title: str):
    """Tile ``images (rows * cols, 784)`` (1 = ink) dark on white, with white gutters."""
    plotting.show_images(ax, plotting.image_grid(1.0 - np.asarray(images, np.float32), rows, cols, (28, 28)), title,
                         cmap="gray")


def _pairs(y, n_pairs: int) -> np.ndarray:
    """Indices ``(n_pairs, 2)``: the first test image of digit 2i and of digit 2i + 1."""
    first = [int(np.flatnonzero(y == c)[0]) for c in range(10)]
    return np.array([[first[2 * i], first[2 * i + 1]] for i in range(n_pairs)])


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    kv = keys.streams(ks["vae"], "init", "fit", "elbo", "nll", "sample")
    x_train = load_mnist("train")[0][: config.n_train]  # uint8 grey levels, binarised in the losses
    x_all, y_all = load_mnist("test")
    x_bin = binarized_test_set(x_all, ks["binarize_test"])  # (10000, 28, 28, 1), as pixelcnn_mnist's
    x_test = spread(x_bin, config.eval.n_test)
    cfg_pv, cfg_v = model_configs(config)
    t, e = config.train, config.eval
    warmup = warmup_steps(config, len(x_train))
    run.log(f"{t.epochs} epochs over {len(x_train)} images, minibatch {t.batch_size}, Adam {t.lr:g}, KL warm-up over "
            f"{warmup} steps, for both models")

    # ---- PixelVAE
    params = pixelvae.init(ks["init"], cfg_pv)
    n_pv = pixelvae.num_params(params)
    params, sec_pv, hist_pv = _fit(run, warmed_loss(pixelvae.loss_fn(binarize=True), warmup), params, config, x_train, ks["fit"], run.dir)
    mean, log_var = pixelvae.encode(params, x_test)
    elbo_pv = np.asarray(pixelvae.elbo(params, x_test, ks["elbo"]), np.float64)
    t0 = time.perf_counter()
    lp_pv = np.asarray(pixelvae.log_prob(params, x_test, ks["nll"], k=e.k_pixelvae, batch_size=e.batch_size), np.float64)
    nll_seconds = time.perf_counter() - t0
    m_pv = _summary(lp_pv, elbo_pv, _kl(mean, log_var), mean, sec_pv, hist_pv, n_pv, e.k_pixelvae)
    m_pv["nll_seconds"] = nll_seconds
    run.log(f"PixelVAE ({n_pv['total']} parameters, {sec_pv:.1f} s): test NLL {m_pv['test_nll_nats']:.2f} nats "
            f"(k={e.k_pixelvae}), ELBO {m_pv['test_elbo_nats']:.2f}, KL {m_pv['kl_nats']:.2f} nats, "
            f"{m_pv['active_units']}/{cfg_pv.latent_dim} active units")

    # ---- plain VAE, same encoder, same data and budget
    pv = vae.init(kv["init"], cfg_v)
    n_v = vae.num_params(pv)
    x_flat = x_train.reshape(len(x_train), -1)
    pv, sec_v, hist_v = _fit(run, vae.loss_fn(vae.Objective("elbo", warmup_steps=warmup, binarize=True)), pv, config, x_flat, kv["fit"],
                             run.dir / "train" / "vae")
    xt_flat = x_test.reshape(len(x_test), -1)
    rec_v, kl_v = (np.asarray(a, np.float64) for a in vae.elbo_terms(pv, xt_flat, kv["elbo"]))
    lp_v = np.asarray(vae.log_prob(pv, xt_flat, kv["nll"], k=e.k_vae, batch_size=e.batch_size), np.float64)
    m_v = _summary(lp_v, rec_v - kl_v, kl_v, vae.encode(pv, xt_flat)[0], sec_v, hist_v, n_v, e.k_vae)
    run.log(f"VAE ({n_v['total']} parameters, {sec_v:.1f} s): test NLL {m_v['test_nll_nats']:.2f} nats (k={e.k_vae}), "
            f"ELBO {m_v['test_elbo_nats']:.2f}, KL {m_v['kl_nats']:.2f} nats, {m_v['active_units']}/{cfg_v.latent_dim} "
            "active units")

    # ---- interpolation between two test images of different digits
    idx = _pairs(y_all, e.n_pairs)
    x0, x1 = x_bin[idx[:, 0]], x_bin[idx[:, 1]]
    S = e.n_steps
    path_pv = np.asarray(pixelvae.interpolate(ks["interpolate"], params, x0, x1, n=S, method=e.path))  # (P, S, 28, 28, 1)
    path_v = np.asarray(vae.interpolate(pv, x0.reshape(e.n_pairs, -1), x1.reshape(e.n_pairs, -1), n=S,
                                        method=e.path)[0])  # (P, S, 784) decoder means
    rows = []
    for p in range(e.n_pairs):
        ends = x0[p].reshape(1, -1), x1[p].reshape(1, -1)
        rows.append(np.concatenate([ends[0], path_pv[p].reshape(S, -1), ends[1]]))
        rows.append(np.concatenate([ends[0], path_v[p], ends[1]]))
    rows = np.concatenate(rows)  # (2 P (S + 2), 784), 1 = ink
    with run.figure("interpolation", 1, 1, figsize=(max(5.0, 0.6 * (S + 2) + 0.8), 0.6 * 2 * e.n_pairs + 1.2)) as (fig, ax):
        _tile(ax, rows, 2 * e.n_pairs, S + 2,
              f"{e.path} latent path, {S} points, between the test digits at the row ends\n"
              "rows 1, 3, ...: PixelVAE (autoregressive draws, same noise)\n"
              "rows 2, 4, ...: plain VAE (decoder means)")

    # ---- samples
    n = e.n_samples
    cols = int(np.ceil(np.sqrt(n)))
    s_pv = np.asarray(pixelvae.sample(ks["sample"], params, n)[0]).reshape(n, -1)
    s_v = np.asarray(vae.sample(kv["sample"], pv, n, mean=True)[0])
    with run.figure("samples", 1, 2, figsize=(8, 4.4)) as (fig, axes):
        _tile(axes[0], s_pv, -(-n // cols), cols,
              f"PixelVAE: z ~ N(0, I), x ~ p(x | z)\ntest NLL {m_pv['test_nll_nats']:.1f} nats "
              f"(k={e.k_pixelvae})")
        _tile(axes[1], s_v, -(-n // cols), cols,
              f"VAE: z ~ N(0, I), decoder means E[x | z]\ntest NLL {m_v['test_nll_nats']:.1f} nats "
              f"(k={e.k_vae})")

    with run.figure("training_curve", 1, 1, figsize=(6, 4)) as (fig, ax):
        for name, h in (("PixelVAE", hist_pv), ("VAE", hist_v)):
            ax.plot([r["epoch"] for r in h], [-r["elbo"] for r in h], "o-", label=f"{name}: training batches")
        ax.set(xlabel="epoch", ylabel="negative ELBO (nats per image)")
        plotting.legend_outside(ax, "below")

    budget = (f"{t.epochs} epochs over {len(x_train)} images, minibatch {t.batch_size}, Adam {t.lr:g}, KL warm-up "
              f"{warmup} steps; latent "
              f"{cfg_pv.latent_dim}, conv {tuple(cfg_pv.conv_features)}/{cfg_pv.conv_dense}; PixelCNN decoder "
              f"{cfg_pv.n_layers} x {cfg_pv.features} features, context {cfg_pv.context_channels} channels")
    return {"pixelvae": m_pv, "vae": m_v, "test_n": len(x_test), "n_train": len(x_train), "epochs": t.epochs,
            "batch_size": t.batch_size, "lr": t.lr, "kl_warmup_steps": warmup, "path": e.path, "n_steps": S,
            "pairs": {"test_index": idx.tolist(), "digits": y_all[idx].tolist()}, "budget": budget}


__doc__ = __doc__.replace("{cpu_settings}", CPU_SETTINGS).replace("{cpu_result}", CPU_RESULT)
