"""The conv VAE and the DCGAN trained on MNIST under one budget, shared by ``compare_vae_gan`` and
``vaegan_mnist`` (import with ``runner.sibling_module(__file__, "_mnist_baselines")``).

Both read the experiment's config: ``budget_epochs`` passes over the training images at
``batch_size``; ``config.vae`` (latent_dim, conv_features, conv_dense, lr) and ``config.gan`` (the
fields of :class:`jaxgen.models.gan.GANTrainer`). See ``compare_vae_gan``'s docstring for the models.

Each fit logs and checkpoints about ten times per epoch (:func:`log_every`) in its own folder
under the run folder, so an interrupted run resumes where it stopped and a Ctrl-C is answered
within a tenth of an epoch.
"""
import functools

import jax
import ml_collections
import numpy as np

from jaxgen import keys, train
from jaxgen.models import gan, vae


def vae_settings() -> ml_collections.ConfigDict:
    """The conv VAE's config group (``config.vae``): 16 latents, 4x4 stride-2 convs (32, 64), dense 256, Adam 1e-3."""
    return ml_collections.ConfigDict(dict(latent_dim=16, conv_features=(32, 64), conv_dense=256, lr=1e-3))


def gan_settings() -> ml_collections.ConfigDict:
    """The DCGAN's config group (``config.gan``): non-saturating, 64 latents, Adam 2e-4 (0.5, 0.999), EMA 0.995."""
    return ml_collections.ConfigDict(dict(objective="non_saturating", latent_dim=64, conv_base=64, g_lr=2e-4,
                                          d_lr=2e-4, betas=(0.5, 0.999), n_critic=1, pack=1, r1_gamma=0.0,
                                          ema_decay=0.995))


def vae_config(config) -> vae.VAEConfig:
    """The conv VAE of ``config.vae``: ReLU, Bernoulli likelihood, standard normal prior, 28 x 28 x 1."""
    v = config.vae
    return vae.VAEConfig(architecture="conv", latent_dim=v.latent_dim, conv_features=tuple(v.conv_features),
                         conv_dense=v.conv_dense, activation="relu", likelihood="bernoulli")


def n_params(tree) -> int:
    """Number of scalars in a pytree of parameters."""
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def log_every(steps_per_epoch: int) -> int:
    """Steps per log period (and checkpoint, and point where an interrupt is acted on): the divisor of
    ``steps_per_epoch`` nearest to a tenth of it, but not below 50 steps (short epochs, quick runs: one
    period per epoch), so that equal periods tile each epoch (781 steps: 71). Divisors below half that
    target are never taken: a prime number of steps gets one period per epoch, not one per step."""
    target = max(steps_per_epoch / 10, min(steps_per_epoch, 50))
    divisors = [d for d in range(1, steps_per_epoch + 1) if steps_per_epoch % d == 0 and d >= target / 2]
    return min(divisors, key=lambda d: (abs(d - target), d))


def last_epoch_mean(history: list[dict], name: str, steps_per_epoch: int) -> float:
    """The mean of metric ``name`` over the last epoch's steps, from records of :func:`log_every`
    steps each (equal lengths: the mean of their means)."""
    per = steps_per_epoch // log_every(steps_per_epoch)
    return float(np.mean([r[name] for r in history[-per:]]))


def train_vae(config, key, x_train, run_dir=None):
    """The VAE trained on the ELBO of dynamically binarised ``x_train (N, 784)``; returns ``(params,
    training seconds, last epoch's mean train ELBO)``. ``key``: parent of ``"init"`` and ``"fit"``;
    ``run_dir``: its checkpoints (a rerun resumes), or None."""
    k_init, k_fit = keys.streams(key, "init", "fit").values()
    params = vae.init(k_init, vae_config(config))
    optimizer = train.optimizer("adam", config.vae.lr)
    per = len(x_train) // config.batch_size
    state, history = train.fit(vae.loss_fn("elbo", binarize=True), params, optimizer, x_train,
                               key=k_fit, steps=config.budget_epochs * per, log_every=log_every(per),
                               batch_size=config.batch_size, run_dir=run_dir, progress=False, tensorboard=False)
    return state.params, train.train_seconds(history), last_epoch_mean(history, "elbo", per)


@functools.partial(jax.jit, static_argnums=(2,))
def vae_samples(params, key, n: int):
    """``(n, 28, 28, 1)`` decoder means ``E[x | z]``, ``z ~ p(z)``: grey images on the data's scale."""
    return vae.sample(key, params, n)[0].reshape(n, 28, 28, 1)


def train_gan(config, key, x_train, run_dir=None):
    """The DCGAN of ``config.gan`` trained on ``x_train (N, 28, 28, 1)`` floats in [0, 1] for the same
    number of images as the VAE; returns ``(trainer, state, training seconds)``; ``run_dir`` as in
    :func:`train_vae`."""
    trainer = gan.GANTrainer.from_config(config.gan, architecture="dcgan", data_shape=(28, 28, 1))
    per = len(x_train) // config.batch_size
    state, history = train.fit_trainer(trainer, x_train, key=key, steps=config.budget_epochs * per,
                                       batch_size=config.batch_size, log_every=log_every(per), run_dir=run_dir,
                                       progress=False, tensorboard=False)
    return trainer, state.model, train.train_seconds(history)


def pick(m: dict) -> dict:
    """The image metrics every model reports, from :func:`jaxgen.metrics.samples.image_metrics`'s dict."""
    return {k: m[k] for k in ("fid", "mnist_score", "classes_covered", "class_kl_to_uniform")}
