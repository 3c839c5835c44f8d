"""VAE-GAN (Larsen et al., ICML 2016) beside a VAE and a GAN on the same MNIST data and budget.

The three models see the same ``n_train`` images of MNIST's train split (grey levels in [0, 1],
reshuffled every epoch) for the same number of images processed (``budget_epochs`` passes,
minibatch ``batch_size``), over the seeds ``seed, seed + 1, ...`` (``n_seeds``):

* **VAE-GAN** (:mod:`jaxgen.models.vaegan`): the VAE's conv encoder and decoder (the decoder with a
  sigmoid: it is also the generator) and a conv discriminator (``vaegan.d_features``); the
  reconstruction error is the Gaussian negative log-likelihood of the discriminator's features
  (layer ``vaegan.feature_layer``) of x given those of the reconstruction; the encoder trains on
  KL + that error, the decoder on ``gamma`` times it plus its GAN loss on reconstructions and prior
  samples, the discriminator on real vs both kinds of fakes. RMSProp 3e-4, batch 64 and the
  equilibrium rule (0.68 +- 0.35) of the authors' released code; see the module for what it does.
  Samples: ``Dec(z)``, ``z ~ N(0, I)``.
* **VAE** and **GAN**: exactly those of ``compare_vae_gan`` (its training functions are reused): the
  conv VAE (same encoder and decoder sizes as the VAE-GAN's, Bernoulli likelihood on dynamically
  binarised batches, Adam; samples are decoder means) and the DCGAN (non-saturating, Adam 2e-4,
  samples from the EMA generator).

Metrics (:mod:`jaxgen.metrics.samples`, as ``compare_vae_gan``): domain FID of ``eval.n_samples``
samples against as many test images (spread over the test set) under the project's MNIST classifier,
MNIST score, classes covered, KL of the class histogram to uniform; for VAE and VAE-GAN the pixel MSE
of the reconstructions ``Dec(E[z|x])`` of ``eval.n_recon`` test images (spread over the test set;
the VAE's reconstruction is its decoder mean); training seconds and parameter counts (all
networks trained). ``metrics.json`` holds each model under its name (``vaegan``, ``vae``, ``gan``):
mean, standard deviation and per-seed values.

Figures: ``samples`` (the three models, first seed, beside test images) and ``reconstructions``
(test images on top, the VAE's reconstructions, then the VAE-GAN's).

Each model and seed trains in its own folder ``train/<model>_seed<s>/`` of the run folder, logging
and checkpointing about ten times per epoch: Ctrl-C stops within a tenth of an epoch and the same
command resumes every fit where it stopped (``train_seconds`` counts every session).

Configs: the default fits about 20 minutes on ONE CPU core ({cpu_budget}); :data:`ACCELERATOR`
holds the fuller protocol (``jaxgen run vaegan_mnist {accelerator}``; not run: no accelerator was
lent to the session that wrote this). The paper's settings are for 64 x 64 CelebA (5x5 convolutions
with batch norm, Dis_l the fourth conv layer, 128 latents); for MNIST we follow their optimiser
(RMSProp 3e-4), batch size 64, the feature-space likelihood and the equilibrium rule, with the
conv networks of ``compare_vae_gan`` at MNIST's size. Differences from the paper (also in
``metrics.json`` as ``protocol_differences``):

{differences}
"""
import jax
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner, train
from jaxgen.data import load_mnist
from jaxgen.metrics.classifier import prepare_images
from jaxgen.metrics.samples import classifier_for, draw, image_metrics, real_floor, spread
from jaxgen.models import gan, vae, vaegan


B = runner.sibling_module(__file__, "_mnist_baselines")  # compare_vae_gan's VAE and GAN, trained the same way

DESCRIPTION = "VAE-GAN (Larsen et al. 2016) vs VAE vs GAN on MNIST: samples, reconstructions, domain FID, MNIST score."

QUICK = {"n_train": 512, "budget_epochs": 2, "batch_size": 32, "vae.latent_dim": 8, "vae.conv_features": (8, 16),
         "vae.conv_dense": 32, "vaegan.d_features": (8, 16), "vaegan.d_dense": 32, "gan.conv_base": 8,
         "gan.latent_dim": 16, "gan.ema_decay": 0.9, "eval.n_samples": 256, "eval.n_recon": 64,
         "eval.classifier": "quick"}

ACCELERATOR = {"n_seeds": 3, "n_train": 50_000, "budget_epochs": 20, "vaegan.d_features": (64, 128), "vaegan.d_dense": 512,
               "gan.conv_base": 64, "eval.n_samples": 10_000, "eval.n_recon": 10_000}

DIFFERENCES = [
    "MNIST 28 x 28 grey images in [0, 1] with a sigmoid output, not 64 x 64 CelebA in [-1, 1] with tanh",
    "networks: the conv VAE of compare_vae_gan (4x4 stride-2 convs 32, 64, dense 256; 16 latents; no batch norm) "
    "and a discriminator of 4x4 stride-2 convs (32, 64) + dense 256, Dis_l the last conv layer before its "
    "activation; the paper: 5x5 convs with batch norm, 3 + 4 layers, 128 latents, Dis_l the 4th conv",
    "decoder's GAN term non-saturating (-log D(Dec(z))); the released code reverses the discriminator's "
    "gradient (the saturating log(1 - D) form)",
    "gamma = 0.1 on a per-image feature NLL (3136 features); the released code weighs the decoder's "
    "reconstruction gradient by 1e-5 (CelebA) against (1 - 1e-5) for GAN, on sums over 16384 features",
    "constant learning rate; the released code anneals it over 150 epochs",
    "budget: the default runs budget_epochs passes over n_train images (the CPU budget); the paper trains "
    "for many epochs",
]

CPU_BUDGET = ("1114 s measured for seed 0 on one CPU core shared with other jobs: training VAE-GAN 523 s, VAE "
              "213 s, GAN 313 s")

STREAMS = ("vaegan", "vae", "gan", "sample_vaegan", "sample_vae", "sample_gan")

CHECKS = {
    "n_train": runner.interval(1, 50_000), "n_seeds": runner.positive(), "budget_epochs": runner.positive(),
    "batch_size": runner.positive(),
    "vae.latent_dim": runner.positive(), "vae.conv_features": runner.positive(), "vae.conv_dense": runner.positive(),
    "vae.lr": runner.positive(),
    "vaegan.d_features": runner.positive(), "vaegan.d_dense": runner.positive(), "vaegan.gamma": runner.positive(),
    "vaegan.decoder_gan": runner.one_of(*vaegan.DECODER_GAN), "vaegan.real_weight": runner.interval(
        0, 1, lo_open=True, hi_open=True),
    "vaegan.equilibrium": runner.positive(), "vaegan.margin": runner.non_negative(),
    "vaegan.optimizer": runner.one_of(*vaegan.OPTIMIZERS), "vaegan.lr": runner.positive(),
    "gan.objective": runner.one_of("minimax", "non_saturating", "wgan_gp", "hinge"), "gan.latent_dim": runner.positive(),
    "gan.conv_base": runner.positive(), "gan.ema_decay": runner.fraction(),
    "eval.n_samples": runner.interval(2, 10_000), "eval.n_recon": runner.interval(1, 10_000),
    "eval.classifier": runner.one_of("full", "quick"),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_seeds = 1
    # the one-core CPU budget: two passes over 50 000 images (compare_vae_gan's budget), the same for the three
    # models. Measured (seed 0, one core shared with other jobs, load ~5 on 2 cores, 2026-11-27): VAE-GAN 523 s,
    # VAE 213 s, GAN 313 s, whole run 1114 s. One pass left the DCGAN untrained (FID 645 after 781 steps).
    c.n_train = 50_000
    c.budget_epochs = 2
    c.batch_size = 64
    # the VAE of compare_vae_gan; its encoder and decoder sizes (and latent_dim) are also the VAE-GAN's
    c.vae = B.vae_settings()
    c.vaegan = ml_collections.ConfigDict(dict(d_features=(32, 64), d_dense=256, feature_layer=-1, gamma=0.1,
                                              decoder_gan="non_saturating", real_weight=0.5, balance=True,
                                              equilibrium=0.68, margin=0.35, optimizer="rmsprop", lr=3e-4))
    c.gan = B.gan_settings()
    c.eval = ml_collections.ConfigDict(dict(n_samples=10_000, n_recon=1000, classifier="full"))
    return c


def _trainer(config) -> vaegan.VAEGANTrainer:
    v = config.vae
    return vaegan.VAEGANTrainer.from_config(config.vaegan, image_shape=(28, 28, 1), latent_dim=v.latent_dim,
                                            conv_features=tuple(v.conv_features), conv_dense=v.conv_dense)


def check_config(config) -> None:
    """Cross-key rules, before any folder exists: a valid VAE-GAN, a batch that fits the data."""
    _trainer(config)
    if config.batch_size > config.n_train:
        raise ValueError(f"batch_size ({config.batch_size}) exceeds n_train ({config.n_train}).")


def _train_vaegan(config, key, x_train, run_dir):
    """Train the VAE-GAN in ``run_dir`` (checkpoints about ten times per epoch: a rerun resumes);
    returns ``(state, training seconds, {metric: mean over the last epoch})``."""
    trainer = _trainer(config)
    per = len(x_train) // config.batch_size
    steps = config.budget_epochs * per  # the images of compare_vae_gan's budget
    state, history = train.fit_trainer(trainer, x_train, key=key, steps=steps, batch_size=config.batch_size,
                                       log_every=B.log_every(per), run_dir=run_dir, progress=False, tensorboard=False)
    last = {k: B.last_epoch_mean(history, k, per) for k in ("dec_updated", "dis_updated")}
    return state.model, train.train_seconds(history), last


def _recon_batches(fn, x, batch: int = 1000) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


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
    x_rec = spread(x_test, config.eval.n_recon)

    results, shown = {"vaegan": [], "vae": [], "gan": []}, {}
    for s in range(config.n_seeds):  # seed s: the s-th member of each model's indexed family of keys
        fits = run.dir / "train"  # one folder of checkpoints per model and seed: an interrupted run resumes
        state, vg_s, last = _train_vaegan(config, jax.random.fold_in(ks["vaegan"], s), x_train, fits / f"vaegan_seed{s}")
        imgs = draw(lambda k, b: vaegan.sample(k, state, b)[0], jax.random.fold_in(ks["sample_vaegan"], s), n)
        rec_vg = _recon_batches(lambda xb: vaegan.reconstruct(state, xb), x_rec)
        m = image_metrics(imgs, real_stats, clf)
        mse = float(np.mean((rec_vg - x_rec) ** 2))
        results["vaegan"].append({**B.pick(m), "recon_mse": mse, "train_seconds": vg_s,
                                  "n_params": B.n_params((state.enc, state.dec, state.dis)),
                                  "n_params_generator": B.n_params(state.dec),
                                  "dec_updated_last_epoch": float(last["dec_updated"]),
                                  "dis_updated_last_epoch": float(last["dis_updated"])})
        run.log(f"seed {s} VAE-GAN: FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes_covered']}, "
                f"recon MSE {mse:.4f}, {vg_s:.1f} s; last epoch: D updated {last['dis_updated']:.2f}, "
                f"decoder updated {last['dec_updated']:.2f} of the steps")

        params, vae_s, elbo = B.train_vae(config, jax.random.fold_in(ks["vae"], s), x_train.reshape(len(x_train), -1),
                                          fits / f"vae_seed{s}")
        vimgs = draw(lambda k, b: B.vae_samples(params, k, b), jax.random.fold_in(ks["sample_vae"], s), n)
        rec_v = _recon_batches(lambda xb: vae.reconstruct(params, xb.reshape(len(xb), -1)), x_rec).reshape(x_rec.shape)
        m = image_metrics(vimgs, real_stats, clf)
        vmse = float(np.mean((rec_v - x_rec) ** 2))
        results["vae"].append({**B.pick(m), "recon_mse": vmse, "train_elbo": elbo, "train_seconds": vae_s,
                               "n_params": B.n_params((params.encoder, params.decoder)),
                               "n_params_generator": B.n_params(params.decoder)})
        run.log(f"seed {s} VAE: FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes_covered']}, "
                f"recon MSE {vmse:.4f}, {vae_s:.1f} s")

        trainer, gstate, gan_s = B.train_gan(config, jax.random.fold_in(ks["gan"], s), x_train, fits / f"gan_seed{s}")
        gimgs = draw(lambda k, b: gan.ema_samples(trainer, gstate, k, b), jax.random.fold_in(ks["sample_gan"], s), n)
        m = image_metrics(gimgs, real_stats, clf)
        results["gan"].append({**B.pick(m), "recon_mse": None, "train_seconds": gan_s,
                               "n_params": B.n_params((gstate.g_vars["params"], gstate.d_params)),
                               "n_params_generator": B.n_params(gstate.g_vars["params"])})
        run.log(f"seed {s} GAN: FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes_covered']}, "
                f"{gan_s:.1f} s")
        if s == 0:
            shown = {"vaegan": imgs[:64], "vae": vimgs[:64], "gan": gimgs[:64], "rec_vaegan": rec_vg[:16],
                     "rec_vae": rec_v[:16]}

    summary = {name: runner.seed_summary(rows) for name, rows in results.items()}
    names = {"vaegan": "VAE-GAN", "vae": "VAE", "gan": "GAN"}
    lines = ["| model | domain FID | MNIST score | classes covered | class KL | recon MSE | train s | params |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        n = config.n_seeds
        mse = "n/a" if r["recon_mse"] is None else plotting.mean_std(r["recon_mse"], r["recon_mse_std"], n, 4)
        lines.append(f"| {names[name]} | {plotting.mean_std(r['fid'], r['fid_std'], n)} | "
                     f"{plotting.mean_std(r['mnist_score'], r['mnist_score_std'], n)} | "
                     f"{r['classes_covered']:.1f} | {r['class_kl_to_uniform']:.4f} | "
                     f"{mse} | {r['train_seconds']:.1f} | {int(r['n_params'])} |")
    lines.append(f"| test images (floor) | {fid_floor:.3f} (two halves of {half}) | {floors['mnist_score_test']:.3f} "
                 "| | | | | |")
    table = "\n".join(lines)
    run.log(table)
    (run.dir / "table.md").write_text(table + "\n")

    with run.figure("samples", 1, 4, figsize=(16, 4.6)) as (fig, axes):
        for ax, name in zip(axes[:3], ("vaegan", "vae", "gan")):
            plotting.show_images(ax, plotting.image_grid(shown[name], 8, 8, (28, 28)),
                                 f"{names[name]} (seed {config.seed}), FID {summary[name]['per_seed'][0]['fid']:.2f}")
        plotting.show_images(axes[3], plotting.image_grid(x_test[:64], 8, 8, (28, 28)), "MNIST test images")
    k = len(shown["rec_vae"])
    with run.figure("reconstructions", 1, 1, figsize=(k * 0.6, 2.2)) as (fig, ax):
        grid = np.concatenate([x_rec[:k], shown["rec_vae"], shown["rec_vaegan"]])
        plotting.show_images(ax, plotting.image_grid(grid, 3, k, (28, 28)),
                             f"Rows: test images, VAE (MSE {summary['vae']['recon_mse']:.4f}), "
                             f"VAE-GAN (MSE {summary['vaegan']['recon_mse']:.4f})")

    return {**summary, **floors, "n_samples": n, "n_recon": config.eval.n_recon, "n_seeds": config.n_seeds,
            "budget_images": config.budget_epochs * (config.n_train // config.batch_size) * config.batch_size,
            "classifier": config.eval.classifier,
            "samples": {"vaegan": "Dec(z), z ~ N(0, I)", "vae": "decoder means E[x|z], z ~ N(0, I)",
                        "gan": "EMA generator"},
            "reconstructions": "Dec(E[z|x]) (VAE: decoder mean), pixel MSE on test images in [0, 1]",
            "protocol_differences": DIFFERENCES, "accelerator_overrides": ACCELERATOR}


__doc__ = (__doc__.replace("{differences}", "\n".join(f"  - {x}" for x in DIFFERENCES))
           .replace("{accelerator}", " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                              for k, v in ACCELERATOR.items()))
           .replace("{cpu_budget}", CPU_BUDGET))
