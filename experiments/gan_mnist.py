"""DCGAN on MNIST: domain FID and MNIST score over training, a sample grid, latent interpolation.

Model (:class:`jaxgen.models.gan.GANTrainer`, ``architecture="dcgan"``): a generator from a
``latent_dim``-D standard normal through a dense layer to a 7 x 7 x 2``base`` map and two 4x4
stride-2 transposed convolutions (batch norm, ReLU, sigmoid output), a discriminator of two 4x4
stride-2 convolutions (leaky ReLU 0.2, no batch norm) and a dense logit, as in Radford et al.
(2016) scaled to 28 x 28; Adam (2e-4, betas 0.5 / 0.999) for both, the non-saturating objective
by default (``model.objective``: minimax, non_saturating, wgan_gp, hinge), an EMA of the
generator's weights (decay ``model.ema_decay``) from which every sample and metric is drawn.

Data: the 50 000 images of MNIST's train split as grey values in [0, 1] (N, 28, 28, 1), reshuffled
every epoch; batches of ``train.batch_size``; ``train.steps`` generator updates (each with
``model.n_critic`` discriminator updates on their own real batches).

Metrics (:mod:`jaxgen.metrics.classifier`, features of the project's MNIST classifier, its 128-D
penultimate layer): the domain FID between ``eval.n_samples`` generated images and as many test
images, the MNIST score ``exp E KL(p(y|x) || p(y))`` and the class histogram of the samples; during
training the same with ``eval.n_monitor`` images every ``train.eval_every`` steps (the curve).
The reference images are spread over the whole test set (:func:`jaxgen.metrics.samples.spread`:
MNIST's test set is not in random order), and the floors set by real data are measured on the same
numbers of images: the FID between its even and odd images, and the test images' own score. ``eval.classifier="full"`` uses the
artefact in the data directory (trained once if missing, a few minutes:
``python -m jaxgen.metrics.classifier``); ``"quick"`` trains a small one in seconds inside the run
(for the quick run; its numbers are not comparable with the full classifier's).

Figures: a 10 x 10 grid of samples beside real test images; latent interpolation between random
latent pairs (linear and spherical paths); FID and MNIST score against the training step.

Randomness: ``run.key`` is the parent of the streams of :data:`STREAMS` (:func:`jaxgen.keys.streams`).
"""
import functools

import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner
from jaxgen.data import load_mnist
from jaxgen.metrics import classifier as cls
from jaxgen.metrics.classifier import prepare_images
from jaxgen.metrics.samples import classifier_for, draw, image_metrics, real_floor, spread
from jaxgen.models import gan
from jaxgen.train import fit_trainer, train_seconds

DESCRIPTION = "DCGAN on MNIST: domain FID and MNIST score over training, sample grid, latent interpolation."

QUICK = {"n_train": 512, "model.conv_base": 8, "model.latent_dim": 16, "train.steps": 40, "train.batch_size": 32,
         "train.log_every": 20, "train.eval_every": 20, "train.checkpoint_every": 40, "eval.n_samples": 256,
         "eval.n_monitor": 128, "eval.classifier": "quick", "model.ema_decay": 0.9}

STREAMS = ("fit", "eval", "sample", "interpolate")

CHECKS = {
    "n_train": runner.interval(1, 50_000),
    "model.objective": runner.one_of(*gan.OBJECTIVES), "model.latent_dim": runner.positive(),
    "model.conv_base": runner.positive(), "model.g_lr": runner.positive(), "model.d_lr": runner.positive(),
    "model.n_critic": runner.positive(), "model.pack": runner.positive(), "model.r1_gamma": runner.non_negative(),
    "model.ema_decay": runner.fraction(),
    "train.steps": runner.positive(), "train.batch_size": runner.positive(), "train.log_every": runner.positive(),
    "train.eval_every": runner.positive(), "train.checkpoint_every": runner.positive(),
    "eval.n_samples": runner.interval(2, 10_000), "eval.n_monitor": runner.interval(2, 10_000),
    "eval.classifier": runner.one_of("full", "quick"), "eval.interpolation_pairs": runner.positive(),
}


def check_config(config) -> None:
    t = config.train
    for name in ("eval_every", "checkpoint_every"):
        if t[name] % t.log_every:
            raise ValueError(f"train.{name}={t[name]} must be a multiple of train.log_every={t.log_every}.")
    if t.batch_size % (config.model.n_critic * config.model.pack):
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by model.n_critic * model.pack = "
                         f"{config.model.n_critic * config.model.pack}.")


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_train = 50_000
    c.model = ml_collections.ConfigDict(dict(
        objective="non_saturating", latent_dim=64, conv_base=64, g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999),
        n_critic=1, pack=1, r1_gamma=0.0, ema_decay=0.995))
    c.train = ml_collections.ConfigDict(dict(steps=6000, batch_size=64, log_every=100, eval_every=500,
                                             checkpoint_every=500, use_scan=True))
    c.eval = ml_collections.ConfigDict(dict(n_samples=10_000, n_monitor=2000, classifier="full", interpolation_pairs=6))
    return c


def trainer_from(config) -> gan.GANTrainer:
    return gan.GANTrainer.from_config(config.model, architecture="dcgan", data_shape=(28, 28, 1))


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    x_train = prepare_images(load_mnist("train")[0][: config.n_train])
    x_test = prepare_images(load_mnist("test")[0])
    clf = classifier_for(config.eval.classifier, run.log)
    n, n_mon = config.eval.n_samples, config.eval.n_monitor
    real_stats, monitor_stats = clf.feature_stats(spread(x_test, n)), clf.feature_stats(spread(x_test, n_mon))
    # floors on the same numbers of images: two disjoint halves of the test set, the test images' own score
    fid_floor, half = real_floor(x_test, n, clf)
    floors = {"fid_test_vs_test": fid_floor, "fid_floor_n": half,
              "mnist_score_test": cls.mnist_score(spread(x_test, n), classifier=clf)}
    floors["fid_test_vs_test_monitor"], half_mon = real_floor(x_test, n_mon, clf)  # the curve's sample size
    run.log(f"floors: FID(test halves, n={half}) {floors['fid_test_vs_test']:.3f}, "
            f"MNIST score(test) {floors['mnist_score_test']:.3f}")

    trainer = trainer_from(config)
    t = config.train

    def eval_fn(state, key):
        imgs = draw(functools.partial(gan.ema_samples, trainer, state), key, n_mon)
        return {"fid": cls.domain_fid(monitor_stats, imgs, classifier=clf),
                "mnist_score": cls.mnist_score(imgs, classifier=clf)}

    state, history = fit_trainer(trainer, x_train, key=ks["fit"], steps=t.steps, batch_size=t.batch_size,
                                 log_every=t.log_every, eval_every=t.eval_every, checkpoint_every=t.checkpoint_every,
                                 use_scan=t.use_scan, run_dir=run.dir, eval_fn=eval_fn, progress=not run.quick,
                                 tensorboard=False)
    train_s = train_seconds(history)  # over every session of a resumed run
    gstate = state.model
    curve = [(r["step"], r["eval/fid"], r["eval/mnist_score"]) for r in history if "eval/fid" in r]
    for step, fid, score in curve:
        run.log(f"step {step}: FID {fid:.3f}, MNIST score {score:.3f} ({n_mon} samples)")

    samples = draw(functools.partial(gan.ema_samples, trainer, gstate), ks["eval"], n)
    final = image_metrics(samples, real_stats, clf)
    run.log(f"final ({n} EMA samples): FID {final['fid']:.3f}, MNIST score {final['mnist_score']:.3f}, "
            f"classes {final['classes_covered']}/10, histogram {final['class_histogram']}")

    with run.figure("samples", 1, 2, figsize=(9, 4.8)) as (fig, axes):
        shown = np.asarray(gan.ema_samples(trainer, gstate, ks["sample"], 100))
        plotting.show_images(axes[0], plotting.image_grid(shown, 10, 10, (28, 28)),
                             f"DCGAN samples (EMA), FID {final['fid']:.2f}, score {final['mnist_score']:.2f}")
        plotting.show_images(axes[1], plotting.image_grid(x_test[:100], 10, 10, (28, 28)), "MNIST test images")

    pairs, steps_ = config.eval.interpolation_pairs, 10
    k0, k1 = keys.streams(ks["interpolate"], "start", "end").values()
    z0 = gan.latent_sample(k0, pairs, trainer.latent_dim)
    z1 = gan.latent_sample(k1, pairs, trainer.latent_dim)
    ts = jnp.linspace(0.0, 1.0, steps_)
    with run.figure("interpolation", 1, 2, figsize=(10, 0.55 * pairs + 1)) as (fig, axes):
        for ax, method in zip(axes, ("linear", "slerp")):
            path = gan.interpolate(z0, z1, ts, method=method)  # (pairs, steps, q)
            imgs = gan.generate(trainer.generator, gstate.ema_vars, path.reshape(-1, trainer.latent_dim))
            plotting.show_images(ax, plotting.image_grid(np.asarray(imgs), pairs, steps_, (28, 28)),
                                 f"{method} paths in latent space (rows: pairs)")

    with run.figure("training_curve", 1, 2, figsize=(9, 3.6)) as (fig, axes):
        steps_at = [c[0] for c in curve]
        axes[0].plot(steps_at, [c[1] for c in curve], "o-", label=f"DCGAN ({n_mon} samples)")
        axes[0].axhline(floors["fid_test_vs_test_monitor"], color="gray", ls="--", label=f"test vs test (n={half_mon})")
        axes[0].set(xlabel="generator step", ylabel="domain FID (classifier features)", yscale="log")
        axes[1].plot(steps_at, [c[2] for c in curve], "o-", label="DCGAN")
        axes[1].axhline(floors["mnist_score_test"], color="gray", ls="--", label="test images")
        axes[1].set(xlabel="generator step", ylabel="MNIST score")
        for ax in axes:
            plotting.legend_outside(ax, "below")

    np.save(run.dir / "samples.npy", (samples[:1000] * 255).round().astype(np.uint8))
    return {
        "fid": final["fid"], "mnist_score": final["mnist_score"], "classes_covered": final["classes_covered"],
        "class_histogram": final["class_histogram"], "class_kl_to_uniform": final["class_kl_to_uniform"],
        "n_samples": n, "samples_from": "EMA generator", **floors,
        "curve": {"step": [c[0] for c in curve], "fid": [c[1] for c in curve], "mnist_score": [c[2] for c in curve],
                  "n_samples": n_mon},
        "classifier": config.eval.classifier, "classifier_test_accuracy": clf.info.get("test_accuracy"),
        "train_seconds": train_s, "train_images_per_s": float(np.median([r["examples_per_s"] for r in history])),
        "steps": int(state.step), "final_d_loss": history[-1]["d_loss"], "final_g_loss": history[-1]["g_loss"],
    }
