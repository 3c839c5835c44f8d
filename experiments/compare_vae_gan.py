"""VAE vs GAN on the same MNIST data, with the same metrics, budget and seeds.

Both models see the same ``n_train`` images of MNIST's train split (reshuffled every epoch), for
the same number of images processed (``budget_epochs`` passes over them), over the seeds
``seed, seed + 1, ...`` (``n_seeds``):

* **VAE** (:mod:`jaxgen.models.vae`): convolutional encoder and decoder (two 4x4 stride-2 layers
  of 32 and 64 channels and a 256-wide dense layer, mirrored), ``vae.latent_dim`` latents with a
  standard normal prior, a Bernoulli decoder; trained on the ELBO with every batch dynamically
  binarised (the VAE literature's protocol: the pixels' grey values are the probabilities of the
  binary images it models), Adam ``vae.lr``. Its samples for the image metrics are the decoder's
  means E[x | z], z ~ p(z): grey images on the same scale as the data, as E[binarised x] = x.
* **GAN** (:mod:`jaxgen.models.gan`): the DCGAN of ``gan_mnist`` (non-saturating objective, Adam
  2e-4 / (0.5, 0.999)) trained on the grey images; samples from the EMA of its generator.

Metrics on ``eval.n_samples`` samples of each model (:mod:`jaxgen.metrics.classifier`): the domain
FID against as many test images (the project's MNIST classifier, 128-D penultimate features), the
MNIST score, the class coverage (digits predicted for at least 1 % of the samples; and the KL of
the class histogram to uniform), the test NLL in nats where it is defined (the VAE: k-sample
importance estimate on ``eval.n_test_nll`` test images spread over the test set, binarised once; a GAN has no likelihood: ``null``), the
training time and the parameter count. ``metrics.json`` holds each model's values under its name
(``vae``, ``gan``): the mean and standard deviation over seeds and the per-seed values. The floors
of real data (FID of two disjoint halves of the test set, the test images' own score) are given
beside them; the reference images are spread over the whole test set (it is not in random order).

Figure ``samples``: samples of both models (first seed) beside test images.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import keys, plotting, runner
from jaxgen.data import binarize, load_mnist
from jaxgen.metrics.classifier import prepare_images
from jaxgen.metrics.samples import classifier_for, draw, image_metrics, real_floor, spread
from jaxgen.models import gan, vae

B = runner.sibling_module(__file__, "_mnist_baselines")  # the two models' training, shared with vaegan_mnist

DESCRIPTION = "VAE vs GAN on the same MNIST data: domain FID, MNIST score, class coverage, NLL, time, over seeds."

QUICK = {"n_train": 512, "n_seeds": 2, "budget_epochs": 2, "batch_size": 32, "vae.latent_dim": 8,
         "vae.conv_features": (8, 16), "vae.conv_dense": 32, "gan.conv_base": 8, "gan.latent_dim": 16,
         "gan.ema_decay": 0.9, "eval.n_samples": 256, "eval.nll_k": 20, "eval.n_test_nll": 100,
         "eval.classifier": "quick"}

STREAMS = ("vae", "gan", "binarize_test", "nll", "sample_vae", "sample_gan")

CHECKS = {
    "n_train": runner.interval(1, 50_000), "n_seeds": runner.positive(), "budget_epochs": runner.positive(),
    "batch_size": runner.positive(),
    "vae.latent_dim": runner.positive(), "vae.conv_features": runner.positive(), "vae.conv_dense": runner.positive(),
    "vae.lr": runner.positive(),
    "gan.objective": runner.one_of("minimax", "non_saturating", "wgan_gp", "hinge"), "gan.latent_dim": runner.positive(),
    "gan.conv_base": runner.positive(), "gan.ema_decay": runner.fraction(),
    "eval.n_samples": runner.interval(2, 10_000), "eval.nll_k": runner.positive(),
    "eval.n_test_nll": runner.interval(1, 10_000), "eval.classifier": runner.one_of("full", "quick"),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_seeds = 3
    c.n_train = 50_000
    # passes over the n_train images, the same for both models: 2 keeps a 3-seed run near 30 min on 2 CPU cores
    # (measured 2026-11-27); budget_epochs=5 or more is the fairer budget for the GAN on an accelerator
    c.budget_epochs = 2
    c.batch_size = 64
    c.vae = B.vae_settings()
    c.gan = B.gan_settings()
    c.eval = ml_collections.ConfigDict(dict(n_samples=10_000, nll_k=100, n_test_nll=1000, classifier="full"))
    return c


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    x_train = prepare_images(load_mnist("train")[0][: config.n_train])
    x_test = prepare_images(load_mnist("test")[0])
    clf = classifier_for(config.eval.classifier, run.log)
    n = config.eval.n_samples
    real_stats = clf.feature_stats(spread(x_test, n))  # spread over the test set: it is not in random order
    fid_floor, half = real_floor(x_test, n, clf)
    floors = {"fid_test_vs_test": fid_floor, "fid_floor_n": half,
              "mnist_score_test": image_metrics(spread(x_test, n), real_stats, clf)["mnist_score"]}
    x_nll = binarize(spread(x_test, config.eval.n_test_nll).reshape(-1, 784), ks["binarize_test"])

    results, shown = {"vae": [], "gan": []}, {}
    for s in range(config.n_seeds):  # seed s: the s-th member of each model's indexed family of keys
        fits = run.dir / "train"  # one folder of checkpoints per model and seed: an interrupted run resumes
        params, vae_s, elbo = B.train_vae(config, jax.random.fold_in(ks["vae"], s), x_train.reshape(len(x_train), -1),
                                          fits / f"vae_seed{s}")
        imgs = draw(functools.partial(B.vae_samples, params), jax.random.fold_in(ks["sample_vae"], s), n)
        nll = -float(jnp.mean(vae.log_prob(params, x_nll, jax.random.fold_in(ks["nll"], s), k=config.eval.nll_k)))
        m = image_metrics(imgs, real_stats, clf)
        results["vae"].append({**B.pick(m), "test_nll_nats": nll, "train_elbo": elbo, "train_seconds": vae_s,
                               "n_params": B.n_params((params.encoder, params.decoder))})
        run.log(f"seed {s} VAE: FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes_covered']}, "
                f"NLL {nll:.2f} nats (k={config.eval.nll_k}), {vae_s:.1f} s")
        trainer, gstate, gan_s = B.train_gan(config, jax.random.fold_in(ks["gan"], s), x_train, fits / f"gan_seed{s}")
        gimgs = draw(functools.partial(gan.ema_samples, trainer, gstate), jax.random.fold_in(ks["sample_gan"], s), n)
        m = image_metrics(gimgs, real_stats, clf)
        results["gan"].append({**B.pick(m), "test_nll_nats": None, "train_seconds": gan_s,
                               "n_params": B.n_params((gstate.g_vars["params"], gstate.d_params)),
                               "n_params_generator": B.n_params(gstate.g_vars["params"])})
        run.log(f"seed {s} GAN: FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes_covered']}, "
                f"{gan_s:.1f} s")
        if s == 0:
            shown = {"vae": imgs[:64], "gan": gimgs[:64]}

    summary = {name: runner.seed_summary(rows) for name, rows in results.items()}
    lines = ["| model | domain FID | MNIST score | classes covered | class KL | test NLL (nats) | train s | params |",
             "|---|---|---|---|---|---|---|---|"]
    for name, srow in summary.items():
        n = config.n_seeds
        nll = ("n/a" if srow["test_nll_nats"] is None
               else plotting.mean_std(srow["test_nll_nats"], srow["test_nll_nats_std"], n, 2))
        lines.append(f"| {name.upper()} | {plotting.mean_std(srow['fid'], srow['fid_std'], n)} | "
                     f"{plotting.mean_std(srow['mnist_score'], srow['mnist_score_std'], n)} | "
                     f"{srow['classes_covered']:.1f} | {srow['class_kl_to_uniform']:.4f} "
                     f"| {nll} | {srow['train_seconds']:.1f} | {int(srow['n_params'])} |")
    table = "\n".join(lines)
    run.log(table)
    (run.dir / "table.md").write_text(table + "\n")

    with run.figure("samples", 1, 3, figsize=(12, 4.4)) as (fig, axes):
        for ax, name in zip(axes[:2], ("vae", "gan")):
            srow = summary[name]
            plotting.show_images(ax, plotting.image_grid(shown[name], 8, 8, (28, 28)),
                                 f"{name.upper()} (seed {config.seed}), FID {srow['per_seed'][0]['fid']:.2f}")
        plotting.show_images(axes[2], plotting.image_grid(x_test[:64], 8, 8, (28, 28)), "MNIST test images")

    return {**summary, **floors, "n_samples": n, "n_seeds": config.n_seeds, "budget_images": config.budget_epochs *
            config.n_train, "nll_k": config.eval.nll_k, "n_test_nll": config.eval.n_test_nll,
            "classifier": config.eval.classifier, "samples": {"vae": "decoder means E[x|z], z ~ N(0, I)",
                                                              "gan": "EMA generator"}}
