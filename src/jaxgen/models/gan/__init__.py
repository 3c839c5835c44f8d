"""Generative adversarial networks: Flax networks, four objectives, packing, R1, EMA, a trainer.

Networks, packing, sampling and latent paths: :mod:`.networks`; objectives and gradient penalties:
:mod:`.objectives`; the trainer for :func:`jaxgen.train.fit_trainer`: :mod:`.trainer`::

    from jaxgen.models import gan
    trainer = gan.GANTrainer(objective="non_saturating", pack=2, r1_gamma=0.1)   # 2-D MLPs
    batch = x[:trainer.data_rows(64)]              # 64 discriminator inputs of 2 samples each: 128 rows
    state = trainer.init(jax.random.key(0), batch)
    state, metrics = jax.jit(trainer.update)(state, batch, jax.random.key(1))
    samples, z = trainer.sample(state, jax.random.key(2), 2500)                 # EMA generator
    # training: fit_trainer returns a LoopState (step, key); its .model is the GANState
    loop, history = jaxgen.train.fit_trainer(trainer, x, key=jax.random.key(3), steps=2000, batch_size=128)
    samples = gan.ema_samples(trainer, loop, jax.random.key(4), 2500)        # or loop.model: the same
"""
from jaxgen.models.gan.networks import (
    LATENTS,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    generate,
    interpolate,
    latent_sample,
    pack,
    sample,
    unpack,
)
from jaxgen.models.gan.objectives import (
    OBJECTIVES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from jaxgen.models.gan.trainer import ARCHITECTURES, GANState, GANTrainer, ema_samples

__all__ = [
    "ARCHITECTURES",
    "LATENTS",
    "OBJECTIVES",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GANState",
    "GANTrainer",
    "MLPDiscriminator",
    "MLPGenerator",
    "discriminator_loss",
    "ema_samples",
    "generate",
    "generator_loss",
    "gradient_penalty",
    "interpolate",
    "latent_sample",
    "pack",
    "r1_penalty",
    "sample",
    "unpack",
]
