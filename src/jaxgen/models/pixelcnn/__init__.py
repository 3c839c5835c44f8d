"""PixelCNN (van den Oord et al. 2016): exact-likelihood autoregressive image models.

Config, networks, parameters and the exact likelihood: :mod:`.model`; sampling and inpainting
(a jit-compiled loop over pixels, naive or with the vertical stack cached per row):
:mod:`.sampling`; the training loss: :mod:`.objectives`::

    from jaxgen.models import pixelcnn
    cfg = pixelcnn.PixelCNNConfig()                      # gated, Bernoulli, 28 x 28
    params = pixelcnn.init(jax.random.key(0), cfg)
    loss = pixelcnn.loss_fn(binarize=True)               # for jaxgen.train.fit
    nll = -pixelcnn.log_prob(params, x_binary).mean()    # nats per image
    x = pixelcnn.sample(jax.random.key(1), params, 16)   # (16, 28, 28, 1)
"""
from jaxgen.models.pixelcnn.model import (
    ARCHITECTURES,
    LIKELIHOODS,
    PixelCNN,
    PixelCNNConfig,
    PixelCNNParams,
    bits_per_dim,
    init,
    log_prob,
    logits,
    num_params,
    prepare,
    prepare_context,
    prepare_labels,
    receptive_field,
)
from jaxgen.models.pixelcnn.objectives import loss_fn
from jaxgen.models.pixelcnn.sampling import METHODS, inpaint, sample

__all__ = [
    "ARCHITECTURES",
    "LIKELIHOODS",
    "METHODS",
    "PixelCNN",
    "PixelCNNConfig",
    "PixelCNNParams",
    "bits_per_dim",
    "init",
    "inpaint",
    "log_prob",
    "logits",
    "loss_fn",
    "num_params",
    "prepare",
    "prepare_context",
    "prepare_labels",
    "receptive_field",
    "sample",
]
