"""DCGAN on stacked MNIST (1000 modes): modes covered and KL to uniform, with and without packing.

Data (:func:`jaxgen.data.make_stacked_mnist`): ``n_train`` images of 28 x 28 x 3 whose channels are
three MNIST training digits, the digit triple uniform over the 1000 modes (``balanced``), values
in [0, 1]. Model: the DCGAN of ``gan_mnist`` on 3 channels (``model.conv_base`` channels in the
first layer), non-saturating objective, Adam 2e-4 / (0.5, 0.999), EMA of the generator. Each
packing degree of ``packs`` (1: DCGAN; 2: PacDCGAN2) is trained over ``n_seeds`` seeds with the
same budget. Packing as PacGAN's released code does it: the discriminator sees ``train.batch_size``
inputs per step, each the channels of m images, so PacDCGAN2 draws 2 x ``batch_size`` real images
(and fakes) per step (until issue 16, ``batch_size`` images made ``batch_size / m`` inputs; the
PacDCGAN2 figures of 2026-11-27 were measured that way).

Evaluation (the protocol of VEEGAN Table 2 and PacGAN Table 3, :mod:`jaxgen.metrics.stacked`):
``eval.n_samples`` (26 000) samples from the EMA generator, each channel classified by the
project's MNIST classifier; **modes** = digit triples that occur at least once, **reverse_kl** =
KL(histogram || uniform). A uniform generator would score 1000 modes and KL about 0.019 with 26 000
samples; the classifier misreads about 2 % of real triples. The same metrics of as many real
stacked test images are reported beside them (``real_test_images``), with the exact expected
coverage of a uniform sampler (``uniform_expected_modes``).

Published (PacGAN Table 3, discriminator a quarter of the generator's size as in Metz et al.):
DCGAN 99 modes (KL 3.40), PacDCGAN2 1000 modes (KL 0.06). Differences here: our discriminator is
the ``gan_mnist`` one (not shrunk), the CPU config trains far fewer steps (``train.steps``) and a
narrower network (``model.conv_base``); the accelerator config is ``train.steps=20000
model.conv_base=64 n_train=128000``. Both are stated in ``metrics.json`` (``protocol_differences``).

Outputs: ``metrics.json`` with ``modes``, ``reverse_kl`` per packing degree (mean, std and per seed),
the default (first seed, last packing degree) as top-level ``modes`` / ``reverse_kl``; a figure of
samples and the mode histograms.
"""
import functools

import jax
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner
from jaxgen.data import make_stacked_mnist
from jaxgen.metrics import expected_coverage, stacked_mode_metrics
from jaxgen.metrics.samples import classifier_for, draw
from jaxgen.models import gan
from jaxgen.train import fit_trainer, train_seconds

DESCRIPTION = "DCGAN vs PacDCGAN on stacked MNIST (1000 modes): modes covered and KL to uniform over seeds."

QUICK = {"n_train": 512, "n_seeds": 1, "model.conv_base": 8, "model.latent_dim": 16, "model.ema_decay": 0.9,
         "train.steps": 20, "train.batch_size": 32, "train.log_every": 10, "eval.n_samples": 500,
         "eval.classifier": "quick"}

STREAMS = ("data", "real", "fit", "eval")

PUBLISHED = {"pacgan_table3": {"DCGAN": {"modes": 99.0, "reverse_kl": 3.40},
                               "PacDCGAN2": {"modes": 1000.0, "reverse_kl": 0.06}}}

CHECKS = {
    "n_train": runner.positive(), "n_seeds": runner.positive(), "packs": runner.positive(),
    "model.objective": runner.one_of(*gan.OBJECTIVES), "model.latent_dim": runner.positive(),
    "model.conv_base": runner.positive(), "model.ema_decay": runner.fraction(),
    "train.steps": runner.positive(), "train.batch_size": runner.positive(), "train.log_every": runner.positive(),
    "eval.n_samples": runner.positive(), "eval.classifier": runner.one_of("full", "quick"),
}


def check_config(config) -> None:
    for m in config.packs:
        if m * config.train.batch_size > config.n_train:
            raise ValueError(f"packs={tuple(config.packs)}: a step of packing {m} draws {m} x train.batch_size = "
                             f"{m * config.train.batch_size} images, more than n_train={config.n_train}.")


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_seeds = 3
    c.n_train = 50_000
    c.packs = (1, 2)
    c.model = ml_collections.ConfigDict(dict(objective="non_saturating", latent_dim=64, conv_base=32, g_lr=2e-4,
                                             d_lr=2e-4, betas=(0.5, 0.999), ema_decay=0.995))
    c.train = ml_collections.ConfigDict(dict(steps=2000, batch_size=64, log_every=500))
    c.eval = ml_collections.ConfigDict(dict(n_samples=26_000, classifier="full"))
    return c


def _trainer(config, pack: int) -> gan.GANTrainer:
    return gan.GANTrainer.from_config(config.model, architecture="dcgan", data_shape=(28, 28, 3), pack=pack)


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    x_u8, _ = make_stacked_mnist(ks["data"], config.n_train, "train")
    x = x_u8.astype(np.float32) / 255.0
    clf = classifier_for(config.eval.classifier, run.log)
    # the reference: real stacked test images, as many as the samples (the classifier's misreadings included)
    x_real, _ = make_stacked_mnist(ks["real"], config.eval.n_samples, "test")
    real = stacked_mode_metrics(x_real, classifier=clf)
    expected, expected_sd = expected_coverage(config.eval.n_samples)
    run.log(f"real stacked test images: {real['modes']} modes, KL {real['reverse_kl']:.3f} "
            f"(a uniform sampler: {expected:.1f} +- {expected_sd:.1f} modes)")
    t = config.train
    results, shown = {}, {}
    for pack in config.packs:
        name = "DCGAN" if pack == 1 else f"PacDCGAN{pack}"
        rows = []
        for s in range(config.n_seeds):
            trainer = _trainer(config, pack)
            key = jax.random.fold_in(jax.random.fold_in(ks["fit"], pack), s)  # pack, then seed: an indexed family
            state, history = fit_trainer(trainer, x, key=key, steps=t.steps, batch_size=trainer.data_rows(t.batch_size),
                                         log_every=t.log_every, run_dir=run.dir / "train" / f"pack{pack}_seed{s}",
                                         progress=False, tensorboard=False)
            seconds = train_seconds(history)  # over every session of a resumed run
            samples = draw(functools.partial(gan.ema_samples, trainer, state.model),
                           jax.random.fold_in(jax.random.fold_in(ks["eval"], pack), s), config.eval.n_samples)
            m = stacked_mode_metrics(samples, classifier=clf)
            rows.append({"modes": int(m["modes"]), "reverse_kl": float(m["reverse_kl"]), "train_seconds": seconds,
                         "final_d_loss": history[-1]["d_loss"], "final_g_loss": history[-1]["g_loss"]})
            run.log(f"{name} seed {s}: {m['modes']} modes, KL {m['reverse_kl']:.3f}, {seconds:.1f} s")
            if s == 0:
                shown[name] = (samples[:36], np.asarray(m["histogram"]))
        vals = {k: np.array([r[k] for r in rows], float) for k in ("modes", "reverse_kl")}
        results[name] = {"pack": pack, "per_seed": rows,
                         **{k: float(v.mean()) for k, v in vals.items()},
                         **{f"{k}_std": float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in vals.items()}}

    names = list(results)
    with run.figure("samples", 2, len(names), figsize=(4.2 * len(names), 8), squeeze=False) as (fig, axes):
        for j, name in enumerate(names):
            imgs, hist = shown[name]
            grid = np.concatenate([plotting.image_grid(imgs[..., c], 6, 6, (28, 28))[..., None] for c in range(3)], -1)
            axes[0, j].imshow(grid, interpolation="nearest")
            axes[0, j].set_title(f"{name} samples (EMA)", fontsize=9)
            axes[0, j].axis("off")
            ranked = np.sort(hist)[::-1]  # a bar per mode is invisible at this width: counts by rank instead
            axes[1, j].step(np.arange(1, 1001), ranked, where="mid", label="generated")
            axes[1, j].axhline(config.eval.n_samples / 1000, color="gray", ls="--", label="uniform")
            axes[1, j].set(xlabel="mode rank (digit triples sorted by count)", ylabel="samples of the mode",
                           xscale="log", title=f"{name}: {int(np.sum(hist > 0))} modes covered")
            plotting.legend_outside(axes[1, j], "below")

    best = results[names[-1]]
    first = best["per_seed"][0]
    return {"modes": first["modes"], "reverse_kl": first["reverse_kl"], "results": results,
            "n_samples": config.eval.n_samples, "published": PUBLISHED, "classifier": config.eval.classifier,
            "real_test_images": {"modes": int(real["modes"]), "reverse_kl": float(real["reverse_kl"])},
            "uniform_expected_modes": expected, "uniform_expected_modes_std": expected_sd,
            "protocol_differences": [
                "discriminator of gan_mnist (not a quarter-size D as in Metz et al. / PacGAN)",
                f"{t.steps} generator steps of {t.batch_size} discriminator inputs (pack x {t.batch_size} images) on "
                f"{config.n_train} stacked images",
                f"conv_base={config.model.conv_base}",
                "balanced stacking: digit triples uniform over the 1000 modes"]}
