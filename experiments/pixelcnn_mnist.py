"""Gated PixelCNN on dynamically binarised MNIST: exact test NLL, samples, inpainting beside a VAE's.

Model (:mod:`jaxgen.models.pixelcnn`): the gated PixelCNN of van den Oord et al. (2016b) with a
Bernoulli output per pixel: a 7 x 7 first layer (``model.first_kernel``), ``model.n_layers`` gated
layers of ``model.features`` channels with ``model.kernel_size`` kernels, vertical and horizontal
stacks (no blind spot). ``model.n_classes=10`` makes it class-conditional on the MNIST label (then
the test NLL is ``-log p(x | y)`` and a figure shows one row of samples per class; the default is
unconditional, and the conditional variant is trained only when asked).

Data: the first ``n_train`` images of MNIST's 50 000-image training split, every batch binarised
afresh at every step (``pixelcnn.loss_fn(binarize=True)``: pixel = 1 with probability grey / 255).
The test set is binarised once, with :func:`jaxgen.data.binarize` and the ``binarize_test`` stream
of the run's key: with the same seed these are exactly the binary test images of ``vae_mnist``.
``data=digits`` runs the same on scikit-learn's 8 x 8 digits (the first 1500 for training, the other
297 for testing, grey = count / 16; for the tour). ``model.likelihood=categorical`` models the 256
grey levels instead (no binarisation; the VAE comparison is then left out: that VAE models binary
pixels).

Training: :func:`jaxgen.train.fit`, optax's Adam (beta1 0.9, beta2 0.999) at ``train.lr`` with a
cosine decay to ``train.lr_final_fraction`` of it over the run (``train.schedule=constant``: no
decay), minibatch ``train.batch_size``, ``train.epochs`` passes over the data. Every log period
(``train.logs_per_epoch`` per epoch) also records the NLL of the first ``eval.n_monitor`` binarised
test images; a checkpoint is written every epoch (a killed run resumes from it).

Evaluation: ``test_nll_nats`` = ``-mean log p(x)`` over the first ``eval.n_test`` binarised test
images (all 10 000 by default; exact: the PixelCNN's likelihood needs no bound or sampling),
``test_bits_per_dim`` the same in bits per pixel; ``receptive_field_coverage``: the fraction of the
pixels before the last one that its prediction depends on (1.0: the whole image).

Figures: ``samples`` (unconditional; a conditional model's labels drawn uniformly), ``samples_by_class``
(conditional only: one row per digit), ``inpainting`` (test digits whose upper half is given: the
PixelCNN's completions, exact draws of ``p(lower | upper)``, beside a VAE's), ``training_curve``.

The VAE of the comparison (:mod:`jaxgen.models.vae`): MLP encoder and decoder (``vae.hidden``,
``vae.latent_dim``), Bernoulli, trained on the ELBO on the same dynamically binarised images with a
small budget (``vae.epochs``); it completes the lower half by the pseudo-Gibbs chain of Rezende et
al. (2014), :func:`jaxgen.models.vae.inpaint`, ``vae.gibbs_iters`` iterations.

Configs:
  * default (CPU budget, {cpu_budget}): {cpu_settings}. Measured (seed 0, a 2-core
    x86-64 CPU shared with two other jobs, jax 0.10.2): test NLL 86.66 nats (0.1595 bits/dim,
    standard error 0.21) on all 10 000 test images, 130 833 parameters, 945 s of training at about
    107 images/s, 1006 s in all; the VAE (425 284 parameters, 10 epochs, 22 s) reached a test ELBO
    of -108.42 nats.
  * accelerator (:data:`ACCELERATOR`, untested here: no accelerator was lent to the session that
    wrote it): ``jaxgen run pixelcnn_mnist {accelerator}``.
  * ``--quick``: a tiny model on a few hundred images, seconds.

Reference: 81.30 nats, the PixelCNN of van den Oord, Kalchbrenner & Kavukcuoglu (2016a, "Pixel
Recurrent Neural Networks", Table 4) on binarised MNIST (the gated PixelCNN paper, 2016b, reports
CIFAR-10 and ImageNet only). Differences from that protocol (also in ``metrics.json`` as
``protocol_differences``):

{differences}
"""
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner, train
from jaxgen.data import binarize, load_digits, load_mnist
from jaxgen.models import pixelcnn, vae

DESCRIPTION = "Gated PixelCNN on binarised MNIST: exact test NLL (nats, bits/dim), samples, inpainting beside a VAE's."

QUICK = {"n_train": 512, "model.features": 8, "model.n_layers": 3, "model.out_features": 16, "train.epochs": 2,
         "train.batch_size": 32, "train.lr": 5e-3, "train.logs_per_epoch": 2, "eval.n_test": 200,
         "eval.n_monitor": 200, "eval.n_samples": 6, "eval.n_inpaint": 3, "eval.n_completions": 2, "vae.epochs": 2,
         "vae.batch_size": 32, "vae.lr": 5e-3, "vae.hidden": (32,), "vae.latent_dim": 4, "vae.gibbs_iters": 5}

# The accelerator config: overrides of the default (see the module docstring).
ACCELERATOR = {"n_train": 50_000, "model.features": 128, "model.n_layers": 15, "model.kernel_size": 5,
               "model.out_features": 256, "train.epochs": 60, "train.batch_size": 64, "train.lr": 1e-3,
               "vae.epochs": 20, "vae.hidden": (200, 200), "vae.latent_dim": 50}

# How the CPU budget was chosen (measured on the 2-core machine while two other jobs shared it):
# 13 gated layers (the smallest count whose 7/5 kernels cover the whole 28 x 28 image) trained at
# 34 images/s with 32 features, 47 with 24 and about 100 with 16 (minibatch 64; 128 was slower).
CPU_SETTINGS = ("16 features x 13 layers (the receptive field covers the image), 2 epochs over all 50 000 training "
                "images, minibatch 64, Adam 2e-3 with cosine decay; a VAE of 784-200-200-50 MLPs for 10 epochs")
REFERENCE_NLL = 81.30  # van den Oord et al. 2016a, Table 4: PixelCNN on binarised MNIST (nats)
STREAMS = ("init", "fit", "binarize_test", "sample", "sample_labels", "sample_by_class", "inpaint", "vae",
           "vae_inpaint")
DIGITS_TRAIN = 1500  # data=digits: the first 1500 of scikit-learn's 1797 digits train, the other 297 test

DIFFERENCES = [
    "dynamic binarisation of the training images at every step and one random binarisation of the test set "
    "(the paper: the fixed binarisation of Salakhutdinov & Murray 2008, 50 000 training images)",
    "the gated PixelCNN (vertical and horizontal stacks, gated units, no blind spot) in place of the paper's "
    "masked PixelCNN (the blind spot)",
    "optax's Adam with a cosine learning-rate decay, no validation-based early stopping; the sizes, epochs and "
    "batch size are ours (the paper does not list its MNIST settings)",
    "float32 arithmetic in JAX/XLA",
]

CHECKS = {
    "data": runner.one_of("mnist", "digits"), "n_train": runner.interval(1, 50_000),
    "model.likelihood": runner.one_of(*pixelcnn.LIKELIHOODS), "model.architecture": runner.one_of(*pixelcnn.ARCHITECTURES),
    "model.features": runner.positive(), "model.n_layers": runner.positive(), "model.first_kernel": runner.positive(),
    "model.kernel_size": runner.positive(), "model.out_features": runner.positive(), "model.n_classes": runner.one_of(0, 10),
    "train.epochs": runner.positive(), "train.batch_size": runner.positive(), "train.lr": runner.positive(),
    "train.schedule": runner.one_of("cosine", "constant"), "train.lr_final_fraction": runner.interval(0, 1),
    "train.logs_per_epoch": runner.positive(),
    "eval.n_test": runner.interval(1, 10_000), "eval.n_monitor": runner.interval(1, 10_000),
    "eval.batch_size": runner.positive(), "eval.n_samples": runner.positive(), "eval.n_inpaint": runner.interval(1, 10),
    "eval.n_completions": runner.positive(),
    "vae.epochs": runner.non_negative(), "vae.latent_dim": runner.positive(), "vae.hidden": runner.positive(),
    "vae.batch_size": runner.positive(), "vae.lr": runner.positive(), "vae.gibbs_iters": runner.non_negative(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = "mnist"  # or "digits" (scikit-learn's 8 x 8 digits: the tour)
    c.n_train = 50_000
    c.model = ml_collections.ConfigDict(dict(likelihood="bernoulli", architecture="gated", features=16, n_layers=13,
                                             first_kernel=7, kernel_size=5, out_features=64, n_classes=0))
    c.train = ml_collections.ConfigDict(dict(epochs=2, batch_size=64, lr=2e-3, schedule="cosine",
                                             lr_final_fraction=0.05, logs_per_epoch=4))
    c.eval = ml_collections.ConfigDict(dict(n_test=10_000, n_monitor=1000, batch_size=500, n_samples=100, n_inpaint=6,
                                            n_completions=4))
    c.vae = ml_collections.ConfigDict(dict(epochs=10, latent_dim=50, hidden=(200, 200), batch_size=100, lr=1e-3,
                                           gibbs_iters=50))
    return c


def model_config(config, image_shape=(28, 28, 1)) -> pixelcnn.PixelCNNConfig:
    """The PixelCNN of ``config.model`` (its own checks: odd kernels, a mask-A kernel >= 3, ...)."""
    m = config.model
    return pixelcnn.PixelCNNConfig(image_shape=image_shape, likelihood=m.likelihood, architecture=m.architecture,
                                   features=m.features, n_layers=m.n_layers, first_kernel=m.first_kernel,
                                   kernel_size=m.kernel_size, out_features=m.out_features, n_classes=m.n_classes)


def check_config(config) -> None:
    """Rules across keys, before any folder is made: a valid PixelCNN, a batch that fits the data."""
    model_config(config)  # raises ValueError naming the bad model setting
    n_train = min(config.n_train, DIGITS_TRAIN) if config.data == "digits" else config.n_train
    if config.data == "digits" and config.n_train > DIGITS_TRAIN:
        raise ValueError(f"data=digits has {DIGITS_TRAIN} training images; set n_train <= {DIGITS_TRAIN}.")
    for group in ("train", "vae"):
        bs = config[group].batch_size
        if bs > n_train:
            raise ValueError(f"{group}.batch_size={bs} exceeds n_train={n_train}; use a smaller batch.")
        if bs % jax.device_count():
            raise ValueError(f"{group}.batch_size={bs} must be divisible by the {jax.device_count()} devices (the "
                             "batches are split over them).")


def load_data(config) -> dict:
    """Training and test images as uint8 grey levels ``(N, H, W)`` with their labels.

    Returns ``{"x_train", "y_train", "x_test", "y_test", "shape": (H, W, 1)}``; the test images are
    the first ``eval.n_test`` of the split (all of it if fewer)."""
    if config.data == "digits":
        X, y = load_digits(as_images=True)
        X = np.round(X * (255.0 / 16.0)).astype(np.uint8)  # counts 0..16 -> grey levels, probability ~ count / 16
        x_train, y_train, x_test, y_test = X[:DIGITS_TRAIN], y[:DIGITS_TRAIN], X[DIGITS_TRAIN:], y[DIGITS_TRAIN:]
    else:
        x_train, y_train = load_mnist("train")
        x_test, y_test = load_mnist("test")
    n = min(config.eval.n_test, len(x_test))
    return {"x_train": x_train[: config.n_train], "y_train": y_train[: config.n_train].astype(np.int32),
            "x_test": x_test[:n], "y_test": y_test[:n].astype(np.int32), "shape": (*x_train.shape[1:], 1)}


def binarized_test_set(x_test, key) -> np.ndarray:
    """The test images binarised once: float32 ``(N, H, W, 1)`` of 0/1, pixel = 1 with probability
    grey / 255, drawn as ``vae_mnist`` draws its test set (flat rows, one :func:`jaxgen.data.binarize`)."""
    n = len(x_test)
    return np.asarray(binarize(x_test.reshape(n, -1), key)).reshape(n, *x_test.shape[1:], 1).astype(np.float32)


def adam(config, total_steps: int):
    """Adam at ``train.lr``, constant or with a cosine decay to ``train.lr_final_fraction`` of it over the run."""
    t = config.train
    if t.schedule == "constant":
        return train.optimizer("adam", t.lr)
    return train.optimizer("adam", t.lr, schedule="cosine", decay_steps=total_steps, final_fraction=t.lr_final_fraction)


def _show(ax, images, rows, cols, shape, title, levels):
    """Tile pixel values ``images (rows * cols, ...)`` (0..levels-1), ink dark on white."""
    grey = 1.0 - np.asarray(images, np.float32).reshape(len(images), -1) / (levels - 1)
    plotting.show_images(ax, plotting.image_grid(grey, rows, cols, shape), title, cmap="gray")


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    d = load_data(config)
    cfg = model_config(config, d["shape"])
    H, W, _ = cfg.image_shape
    binary = cfg.likelihood == "bernoulli"
    levels = cfg.n_levels
    # test images: binarised once (Bernoulli), or the grey levels themselves (categorical)
    x_test = binarized_test_set(d["x_test"], ks["binarize_test"]) if binary else d["x_test"][..., None]
    conditional = cfg.n_classes > 0
    y_test = d["y_test"] if conditional else None
    train_data = {"x": d["x_train"], "y": d["y_train"]} if conditional else d["x_train"]

    params = pixelcnn.init(ks["init"], cfg)
    rf = pixelcnn.receptive_field(params)
    coverage = float(rf.reshape(-1)[: H * W - 1].mean())  # the pixels before the last one
    n_params = pixelcnn.num_params(params)
    t = config.train
    steps_per_epoch = len(d["x_train"]) // t.batch_size
    steps = t.epochs * steps_per_epoch
    log_every = max(1, steps_per_epoch // t.logs_per_epoch)  # a log record and a monitor NLL
    optimizer = adam(config, steps)
    monitor = x_test[: config.eval.n_monitor]
    y_monitor = None if y_test is None else y_test[: config.eval.n_monitor]

    def eval_fn(p, key):
        del key  # the likelihood is exact: nothing random
        return {"test_nll": -jnp.mean(pixelcnn.log_prob(p, monitor, y_monitor, batch_size=config.eval.batch_size))}

    run.log(f"gated PixelCNN: {n_params} parameters, receptive field of the last pixel covers {100 * coverage:.1f}% "
            f"of the pixels before it; {t.epochs} epochs over {len(d['x_train'])} {config.data} images, "
            f"minibatch {t.batch_size}, Adam {t.lr:g} ({t.schedule})")
    state, history = train.fit(pixelcnn.loss_fn(binarize=binary), params, optimizer, train_data, key=ks["fit"],
                               steps=steps, log_every=log_every, checkpoint_every=log_every * t.logs_per_epoch,
                               batch_size=t.batch_size, run_dir=run.dir, eval_fn=eval_fn, progress=not run.quick,
                               tensorboard=False)
    params = jax.block_until_ready(state.params)
    train_seconds = train.train_seconds(history)  # over every session of a resumed run (the loop logged each period)

    # ---- the exact test NLL
    t0 = time.perf_counter()
    lp = np.asarray(pixelcnn.log_prob(params, x_test, y_test, batch_size=config.eval.batch_size), np.float64)
    eval_seconds = time.perf_counter() - t0
    nll = float(-lp.mean())
    bpd = nll / (H * W * np.log(2.0))
    run.log(f"test NLL {nll:.2f} nats ({bpd:.4f} bits/dim) on {len(lp)} test images ({eval_seconds:.1f} s); "
            f"training {train_seconds:.1f} s")

    # ---- samples
    n = config.eval.n_samples
    cols = int(np.ceil(np.sqrt(n)))
    labels = (jax.random.randint(ks["sample_labels"], (n,), 0, cfg.n_classes) if conditional else None)
    t0 = time.perf_counter()
    samples = np.asarray(pixelcnn.sample(ks["sample"], params, n, labels, method=_method(cfg)))
    sample_seconds = time.perf_counter() - t0
    with run.figure("samples", 1, 1, figsize=(5, 5.3)) as (fig, ax):
        _show(ax, samples, -(-n // cols), cols, (H, W),
              f"PixelCNN samples{' (labels drawn uniformly)' if conditional else ''}\n"
              f"test NLL {nll:.2f} nats, {bpd:.3f} bits/dim", levels)
    if conditional:
        per = 10
        by_class = np.asarray(pixelcnn.sample(ks["sample_by_class"], params, cfg.n_classes * per,
                                              np.repeat(np.arange(cfg.n_classes), per), method=_method(cfg)))
        with run.figure("samples_by_class", 1, 1, figsize=(5, 5.3)) as (fig, ax):
            _show(ax, by_class, cfg.n_classes, per, (H, W), "class-conditional samples: row k has label k", levels)
    np.save(run.dir / "samples.npy", samples.astype(np.uint8))

    # ---- inpainting: the upper half given
    k_img = config.eval.n_inpaint
    firsts = [int(np.flatnonzero(d["y_test"] == c)[0]) for c in range(10) if np.any(d["y_test"] == c)]
    idx = np.array((firsts + list(range(len(x_test))))[:k_img])  # one digit of each class first
    x_in = x_test[idx]
    observed = np.zeros((H, W), bool)
    observed[: H // 2] = True
    S = config.eval.n_completions
    t0 = time.perf_counter()
    completions = np.asarray(pixelcnn.inpaint(ks["inpaint"], params, x_in, observed, None if y_test is None else y_test[idx],
                                              n_samples=S, method=_method(cfg)))
    inpaint_seconds = time.perf_counter() - t0
    shown_input = np.where(observed[None, :, :, None], x_in, (levels - 1) / 2)  # the missing half in mid grey
    vae_metrics, vae_completions = {}, None
    if binary and config.vae.epochs:
        vae_metrics, vae_completions = _vae(config, run, d, x_test, x_in, observed, ks["vae"], ks["vae_inpaint"])
    panels = 2 if vae_completions is not None else 1
    widths = [S + 2, S][:panels]  # panels as wide as their image columns
    with run.figure("inpainting", 1, panels, figsize=(0.75 * sum(widths) + 1.0, 0.75 * k_img + 1.0),
                    gridspec_kw={"width_ratios": widths}) as (fig, axes):
        axes = np.atleast_1d(axes)
        rows = np.concatenate([x_in[:, None], shown_input[:, None], completions], axis=1)  # (k, 2 + S, H, W, 1)
        _show(axes[0], rows.reshape(-1, H, W), k_img, S + 2, (H, W),
              f"PixelCNN: digit, upper half given,\n{S} draws of p(lower | upper)",
              levels)
        if vae_completions is not None:
            _show(axes[1], vae_completions.reshape(-1, H, W), k_img, S, (H, W),
                  f"VAE: {S} completions\n(pseudo-Gibbs, {config.vae.gibbs_iters} steps)",
                  levels)

    # ---- training curve
    epochs = [h["epoch"] for h in history]
    with run.figure("training_curve", 1, 1, figsize=(6, 4)) as (fig, ax):
        ax.plot(epochs, [h["nll"] for h in history], "o-", label="training batches (mean over each log period)")
        ax.plot(epochs, [h["eval/test_nll"] for h in history], "s-", label=f"first {len(monitor)} test images")
        ax.plot([epochs[-1]], [nll], "*", ms=12, label=f"all {len(lp)} test images (final)")
        if config.data == "mnist" and binary:
            ax.axhline(REFERENCE_NLL, color="gray", ls="--", label="PixelCNN, van den Oord et al. 2016a")
        ax.set(xlabel="epoch", ylabel="negative log-likelihood (nats per image)")
        plotting.legend_outside(ax, "below")

    budget = (f"{t.epochs} epochs over {len(d['x_train'])} images, minibatch {t.batch_size}, Adam {t.lr:g} "
              f"({t.schedule}), {cfg.features} features x {cfg.n_layers} layers, kernels {cfg.first_kernel}/"
              f"{cfg.kernel_size}")
    return {
        "test_nll_nats": nll,
        "test_nll_sem": float(lp.std(ddof=1) / np.sqrt(len(lp))) if len(lp) > 1 else None,
        "test_bits_per_dim": bpd,
        "test_n": len(lp),
        "data": config.data,
        "likelihood": cfg.likelihood,
        "conditional": conditional,
        "n_params": n_params,
        "receptive_field_coverage": coverage,
        "receptive_field_covers_image": bool(coverage == 1.0),
        "n_train": len(d["x_train"]),
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "lr_schedule": t.schedule,
        "train_seconds": train_seconds,  # wall clock of fit, compile and the monitor evaluations included
        "compile_seconds": history[0].get("compile_time_s"),
        "train_images_per_s": float(np.median([h["examples_per_s"] for h in history])),
        "eval_seconds": eval_seconds,
        "sample_seconds": sample_seconds,  # n_samples images, compile included
        "inpaint_seconds": inpaint_seconds,
        "n_samples": n,
        "final_train_nll": history[-1]["nll"],
        "history": {"epoch": epochs, "train_nll": [h["nll"] for h in history],
                    "monitor_test_nll": [h["eval/test_nll"] for h in history], "n_monitor": len(monitor)},
        "reference_nll_nats": REFERENCE_NLL if config.data == "mnist" and binary else None,
        "budget": budget,
        "protocol_differences": [f"budget: {budget}", *DIFFERENCES],
        **vae_metrics,
    }


def _method(cfg) -> str:
    return "cached" if cfg.architecture == "gated" else "naive"


def _vae(config, run, d, x_test, x_in, observed, key, key_inpaint):
    """Train the comparison VAE on the same binarised images and complete ``x_in``'s lower halves.

    Returns ``(metrics, completions (k, S, H, W))``."""
    v = config.vae
    k_init, k_fit, k_elbo = keys.streams(key, "init", "fit", "elbo").values()
    shape = d["shape"]
    cfg = vae.VAEConfig(image_shape=shape, latent_dim=v.latent_dim, hidden=tuple(v.hidden), likelihood="bernoulli")
    n = len(d["x_train"])
    state, hist = train.fit(vae.loss_fn("elbo", binarize=True), vae.init(k_init, cfg),
                            train.optimizer("adam", v.lr), d["x_train"].reshape(n, -1), key=k_fit, epochs=v.epochs,
                            batch_size=v.batch_size, run_dir=run.dir / "train" / "vae", progress=not run.quick,
                            tensorboard=False)
    seconds = train.train_seconds(hist)
    p = state.params
    elbo = float(np.mean(np.asarray(vae.elbo(p, x_test.reshape(len(x_test), -1), k_elbo))))
    t0 = time.perf_counter()
    out = np.asarray(vae.inpaint(key_inpaint, p, x_in.reshape(len(x_in), -1), observed, n_samples=config.eval.n_completions,
                                 n_iter=v.gibbs_iters))
    inpaint_seconds = time.perf_counter() - t0
    run.log(f"VAE ({vae.num_params(p)['total']} parameters, {v.epochs} epochs, {seconds:.1f} s): test ELBO {elbo:.2f} "
            f"nats")
    metrics = {"vae": {"n_params": vae.num_params(p)["total"], "epochs": v.epochs, "train_seconds": seconds,
                       "test_elbo_nats": elbo, "gibbs_iters": v.gibbs_iters, "inpaint_seconds": inpaint_seconds}}
    return metrics, out.reshape(len(x_in), -1, *shape[:2])


__doc__ = (__doc__.replace("{differences}", "\n".join(f"  - {x}" for x in DIFFERENCES))
           .replace("{accelerator}", " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                              for k, v in ACCELERATOR.items()))
           .replace("{cpu_budget}", "about 17 minutes on 2 CPU cores")
           .replace("{cpu_settings}", CPU_SETTINGS))
