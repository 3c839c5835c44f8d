"""Variational autoencoder (Kingma & Welling 2014; IWAE: Burda et al. 2016) as pure functions.

Model, parameters and the functions over them: :mod:`.model`; priors (normal, mixture of
Gaussians, VampPrior): :mod:`.priors`; bounds, the importance-sampled log-likelihood and the
training loss (beta-VAE, beta-TCVAE): :mod:`.objectives`; FactorVAE's trainer: :mod:`.factorvae`.
Everything public is re-exported here::

    from jaxgen.models import vae
    cfg = vae.VAEConfig()                       # Burda et al.'s 784-200-200-50 tanh MLPs, Bernoulli
    params = vae.init(jax.random.key(0), cfg)
    loss = vae.loss_fn(vae.Objective("iwae", k=5, binarize=True))   # for jaxgen.train
    nll = -vae.log_prob(params, x_test, key, k=5000).mean()
"""
from jaxgen.models.vae.model import (
    ARCHITECTURES,
    LIKELIHOODS,
    VARIANCES,
    Decoder,
    Encoder,
    VAEConfig,
    VAEParams,
    apply_attribute,
    attribute_vector,
    check_shape,
    check_values,
    decode,
    decode_mean,
    encode,
    init,
    inpaint,
    interpolate,
    log_likelihood,
    num_params,
    prepare,
    prior_log_prob,
    reconstruct,
    sample,
)
from jaxgen.models.vae.objectives import (
    OBJECTIVES,
    Objective,
    elbo,
    elbo_terms,
    iwae_bound,
    kl_weight,
    log_prob,
    loss_fn,
    tc_decomposition,
)
from jaxgen.models.vae.priors import PRIORS
from jaxgen.models.vae.factorvae import FactorVAEState, FactorVAETrainer, permute_dims

__all__ = [
    "ARCHITECTURES",
    "LIKELIHOODS",
    "OBJECTIVES",
    "PRIORS",
    "VARIANCES",
    "Decoder",
    "Encoder",
    "FactorVAEState",
    "FactorVAETrainer",
    "Objective",
    "VAEConfig",
    "VAEParams",
    "apply_attribute",
    "attribute_vector",
    "check_shape",
    "check_values",
    "decode",
    "decode_mean",
    "elbo",
    "elbo_terms",
    "encode",
    "init",
    "inpaint",
    "interpolate",
    "iwae_bound",
    "kl_weight",
    "log_likelihood",
    "log_prob",
    "loss_fn",
    "num_params",
    "permute_dims",
    "prepare",
    "prior_log_prob",
    "reconstruct",
    "sample",
    "tc_decomposition",
]
