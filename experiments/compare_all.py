"""Every family on one protocol: dynamically binarised MNIST, test NLL in nats, sample quality, cost.

Data: the first ``n_train`` images of MNIST's 50 000-image training split. The test set is
binarised once with the ``binarize_test`` stream of the run's key (:func:`jaxgen.data.binarize` on
all 10 000 images: with the same seed these are exactly the binary test images of ``vae_mnist`` and
``pixelcnn_mnist``); every test NLL is measured on the same ``eval.n_test`` of them, spread over the
test set (:func:`jaxgen.metrics.samples.spread`: it is not in random order).

Families (each trained from its own named stream of the run's key):

* ``ppca`` (:mod:`jaxgen.models.ppca`, closed-form maximum likelihood, ``ppca.n_components``
  latents) and ``gmm`` (:mod:`jaxgen.models.gmm`, EM, ``gmm.n_components`` components with
  **diagonal** covariances: full 784 x 784 covariances cost K x 307 720 parameters and a Cholesky
  factorisation per component and EM step) are continuous densities. They are made comparable by
  uniform dequantisation (Theis, van den Oord & Bethge 2016): fitted to ``y = x + u``, ``x`` the
  training images binarised once (stream ``binarize_train``), ``u ~ U[0, 1)^784`` (stream
  ``dequantize_train``); their reported NLL is ``-mean log p(x + u)`` over the binary test images,
  one ``u`` per image (stream ``dequantize_test``, the same ``u`` for both models). The discrete
  model ``P(x) = integral of p over the unit cube at x`` satisfies ``log P(x) >= E_u log p(x + u)``
  (Jensen), so this number is an **upper bound** on the discrete NLL ``-log P(x)`` (in expectation
  over ``u``), not an estimate of it (``nll_kind = "dequantised upper bound"``). Their samples are
  ``floor(y)`` clipped to {0, 1}: draws of the discrete model ``P`` (the mass outside [0, 2)^784
  lumped onto the borders).
* ``vae`` (:mod:`jaxgen.models.vae`, Burda et al.'s 784-200-200-50 tanh MLPs, Bernoulli decoder,
  ELBO) and ``iwae`` (the same network, ``Objective("iwae", k=iwae.k)``); NLL by importance
  sampling, ``vae.log_prob(..., k=eval.nll_k)``, the same ``k`` for both (an estimate that is an
  upper bound in expectation on the NLL, tight as k grows).
* ``pixelcnn`` (:mod:`jaxgen.models.pixelcnn`, gated, Bernoulli): exact NLL ``-log p(x)``.
* ``pixelvae`` (:mod:`jaxgen.models.pixelvae`: conv encoder, a context map from ``z``, a small
  gated PixelCNN decoder; ELBO): importance-sampled NLL with ``pixelvae.nll_k`` samples (each is one
  PixelCNN pass over the test images, so fewer than the VAE's).
* ``gan`` (:mod:`jaxgen.models.gan`, the DCGAN of ``gan_mnist`` built by
  :meth:`~jaxgen.models.gan.GANTrainer.from_config`, trained on the grey images, samples from its
  EMA generator): no likelihood (``test_nll_nats: null``).

Every model but the GAN trains on binary images: the gradient-trained ones on a fresh binarisation
of every batch (``loss_fn(binarize=True)``), PPCA and GMM on one binarisation. All gradient training
uses :func:`jaxgen.train.fit` (``fit_trainer`` for the GAN) with optax's Adam and a cosine decay of
the learning rate to 5 % of it over the family's run.

Sample quality (:mod:`jaxgen.metrics.samples`, the project's MNIST classifier, ``eval.classifier``):
for every family ``eval.n_samples`` **binary** samples (the VAEs' ``x ~ p(x | z)``, the GAN's grey
images binarised like the data) against as many binarised test images: domain FID (``fid``), MNIST
score and class coverage (digits predicted for at least 1 % of the samples). Families whose samples
have a grey version (VAE, IWAE: the decoder means E[x | z]; GAN: its output) also get
``fid_grey`` / ``mnist_score_grey`` against the grey test images, the numbers of ``compare_vae_gan``
and ``gan_mnist``. The floors of real data at the same sample size (two disjoint halves of the test
set; the test images' own score) are in ``floors``.

Cost: ``train_time_s`` (wall clock of the fit, compilation included; ``nll_time_s`` and
``sample_time_s``: of the test NLL and of drawing and scoring the samples) and ``n_params`` (numbers
stored: for PPCA mu, W, sigma2; for the GMM its free parameters as scikit-learn counts them; for
the GAN generator + discriminator, with ``n_params_generator`` beside it).

Outputs: ``metrics.json`` (one entry per family under its name, the floors, the settings),
``table.md`` (also printed to the log) and the figure ``samples`` (8 x 8 binary samples of every
family beside binarised test images).

Configs:
  * default, a CPU budget ({budget}): {settings}.
  * ``--quick``: tiny networks on a few hundred images, the ``quick`` classifier; a few minutes.

Differences from the published protocols (also ``protocol_differences`` in metrics.json):

{differences}
"""
import functools
import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner, train
from jaxgen.data import binarize, load_mnist
from jaxgen.metrics.classifier import prepare_images
from jaxgen.metrics.samples import classifier_for, draw, image_metrics, real_floor, spread
from jaxgen.models import gan, gmm, pixelcnn, pixelvae, ppca, vae

DESCRIPTION = ("Every family on binarised MNIST: test NLL in nats (exact, importance-sampled or a dequantised bound), "
               "domain FID, MNIST score, classes, time, parameters, sample grids side by side.")

FAMILIES = ("ppca", "gmm", "vae", "iwae", "pixelcnn", "pixelvae", "gan")
NLL_KINDS = {"exact": "exact", "is": "importance-sampled (k={k})", "deq": "dequantised upper bound"}
STREAMS = ("binarize_test", "binarize_train", "dequantize_train", "dequantize_test", *FAMILIES)

QUICK = {"n_train": 256, "ppca.n_components": 8, "gmm.n_components": 3, "gmm.max_iter": 20,
         "vae.hidden": (32,), "vae.latent_dim": 4, "vae.epochs": 2, "vae.batch_size": 32, "vae.lr": 3e-3,
         "iwae.k": 3,
         "pixelcnn.features": 8, "pixelcnn.n_layers": 2, "pixelcnn.out_features": 16, "pixelcnn.epochs": 1,
         "pixelcnn.batch_size": 32, "pixelcnn.lr": 5e-3,
         "pixelvae.latent_dim": 4, "pixelvae.conv_features": (4, 8), "pixelvae.conv_dense": 16,
         "pixelvae.context_channels": 2, "pixelvae.features": 8, "pixelvae.n_layers": 1, "pixelvae.out_features": 16,
         "pixelvae.epochs": 1, "pixelvae.batch_size": 32, "pixelvae.lr": 5e-3, "pixelvae.nll_k": 2,
         "gan.steps": 16, "gan.batch_size": 32, "gan.model.conv_base": 8, "gan.model.latent_dim": 16,
         "gan.model.ema_decay": 0.9,
         "eval.n_test": 100, "eval.nll_k": 8, "eval.n_samples": 100, "eval.classifier": "quick"}

_NET = {"epochs": runner.positive(), "batch_size": runner.positive(), "lr": runner.positive()}
CHECKS = {
    "n_train": runner.interval(2, 50_000),
    "ppca.n_components": runner.interval(1, 783),
    "gmm.n_components": runner.positive(), "gmm.covariance_type": runner.one_of("diag", "spherical"),
    "gmm.max_iter": runner.positive(), "gmm.n_init": runner.positive(), "gmm.reg_covar": runner.positive(),
    "vae.latent_dim": runner.positive(), "vae.hidden": runner.positive(),
    "vae.activation": runner.one_of("tanh", "relu"),
    **{f"vae.{k}": v for k, v in _NET.items()},
    "iwae.k": runner.positive(),
    "pixelcnn.features": runner.positive(), "pixelcnn.n_layers": runner.positive(),
    "pixelcnn.first_kernel": runner.positive(), "pixelcnn.kernel_size": runner.positive(),
    "pixelcnn.out_features": runner.positive(), **{f"pixelcnn.{k}": v for k, v in _NET.items()},
    "pixelvae.latent_dim": runner.positive(), "pixelvae.conv_features": runner.positive(),
    "pixelvae.conv_dense": runner.positive(), "pixelvae.context_channels": runner.positive(),
    "pixelvae.features": runner.positive(), "pixelvae.n_layers": runner.positive(),
    "pixelvae.out_features": runner.positive(), "pixelvae.nll_k": runner.positive(),
    **{f"pixelvae.{k}": v for k, v in _NET.items()},
    "gan.steps": runner.positive(), "gan.batch_size": runner.positive(),
    "gan.model.objective": runner.one_of(*gan.OBJECTIVES), "gan.model.latent_dim": runner.positive(),
    "gan.model.conv_base": runner.positive(), "gan.model.g_lr": runner.positive(), "gan.model.d_lr": runner.positive(),
    "gan.model.ema_decay": runner.fraction(),
    "eval.n_test": runner.interval(1, 10_000), "eval.nll_k": runner.positive(), "eval.batch_size": runner.positive(),
    "eval.n_samples": runner.interval(2, 5_000), "eval.classifier": runner.one_of("full", "quick"),
}

# The default's CPU budget: an estimate from timed shortened runs (not a measured default run).
BUDGET = ("an estimate, not a measured default run: about 45 min at the throughputs timed on a 2-core x86-64 CPU "
          "shared with other jobs (n_train=8192 runs: VAE 27 000 and IWAE 12 000 training images/s, PixelCNN 78, "
          "PixelVAE 188, DCGAN about 400; NLL of 1000 test images: VAE 2.8 s, PixelCNN 4.1 s, PixelVAE 27 s; GMM EM "
          "9 s on 8192 images), so roughly 25-40 min on 2 free cores; the PixelCNN's two epochs are half of it; "
          "the full classifier must exist (python -m jaxgen.metrics.classifier, about 11 min, once)")
DIFFERENCES = [
    "VAE / IWAE (Burda et al. 2016: 3280 epochs over 59 600 images, minibatch 20, NLL with k = 5000): "
    "{vae_epochs} epochs over the n_train images, minibatch {vae_bs}, Adam with a cosine decay, NLL with "
    "k = {nll_k}; IWAE trained with k = {iwae_k} (Burda et al. train with k = 1, 5 and 50)",
    "PixelCNN (81.30 nats is van den Oord et al. 2016a's masked PixelCNN, Pixel RNN paper Table 4, a larger "
    "network trained to convergence on a GPU; the gated PixelCNN paper, 2016b, reports no MNIST figure): a gated "
    "PixelCNN of {pcnn_layers} layers of {pcnn_features} features, {pcnn_epochs} epoch(s)",
    "PixelVAE (Gulrajani et al. 2017: a deeper decoder trained much longer): {pvae_layers} PixelCNN "
    "layer(s) of {pvae_features} features, a {pvae_latent}-D latent, {pvae_epochs} epoch(s), NLL with k = {pvae_k}",
    "PPCA and GMM (continuous densities): fitted by closed form / EM to one binarisation of the training images "
    "plus uniform noise; their NLL is a dequantised upper bound, not the discrete NLL",
    "GAN (DCGAN of gan_mnist): {gan_steps} generator steps, minibatch {gan_bs}",
    "test NLL on {n_test} binarised test images (the literature: all 10 000)",
]


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_train = 50_000
    c.ppca = ml_collections.ConfigDict(dict(n_components=40))
    c.gmm = ml_collections.ConfigDict(dict(n_components=20, covariance_type="diag", max_iter=100, n_init=1,
                                           reg_covar=1e-3))
    c.vae = ml_collections.ConfigDict(dict(latent_dim=50, hidden=(200, 200), activation="tanh", epochs=20,
                                           batch_size=100, lr=1e-3))
    c.iwae = ml_collections.ConfigDict(dict(k=5))  # the VAE's network and budget, the IWAE objective
    c.pixelcnn = ml_collections.ConfigDict(dict(features=32, n_layers=6, first_kernel=7, kernel_size=5,
                                                out_features=64, epochs=2, batch_size=64, lr=1e-3))
    c.pixelvae = ml_collections.ConfigDict(dict(latent_dim=16, conv_features=(32, 64), conv_dense=256,
                                                context_channels=8, features=32, n_layers=2, out_features=64,
                                                epochs=1, batch_size=64, lr=1e-3, nll_k=20))
    c.gan = ml_collections.ConfigDict(dict(steps=2000, batch_size=64, model=ml_collections.ConfigDict(dict(
        objective="non_saturating", latent_dim=64, conv_base=64, g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999),
        n_critic=1, pack=1, r1_gamma=0.0, ema_decay=0.995))))
    c.eval = ml_collections.ConfigDict(dict(n_test=10_000, nll_k=200, batch_size=100, n_samples=1000,
                                            classifier="full"))
    return c


def check_config(config) -> None:
    """Rules across keys, before any folder is made: minibatches no larger than the data, valid models."""
    for name in ("vae", "pixelcnn", "pixelvae", "gan"):
        if config[name].batch_size > config.n_train:
            raise ValueError(f"{name}.batch_size={config[name].batch_size} is larger than n_train={config.n_train}: "
                             "lower the batch size or train on more images.")
    if config.gmm.n_components > config.n_train:
        raise ValueError(f"gmm.n_components={config.gmm.n_components} exceeds n_train={config.n_train}.")
    _pixelcnn_config(config)  # odd kernels, a first kernel >= 3, ...: the model's own checks
    _pixelvae_config(config)
    gan.GANTrainer.from_config(config.gan.model, architecture="dcgan", data_shape=(28, 28, 1))


def differences(config) -> list[str]:
    """How the run differs from the published protocols (filled with the config's values)."""
    v = dict(vae_epochs=config.vae.epochs, vae_bs=config.vae.batch_size, nll_k=config.eval.nll_k,
             iwae_k=config.iwae.k, pcnn_layers=config.pixelcnn.n_layers, pcnn_features=config.pixelcnn.features,
             pcnn_epochs=config.pixelcnn.epochs, pvae_layers=config.pixelvae.n_layers,
             pvae_features=config.pixelvae.features, pvae_latent=config.pixelvae.latent_dim,
             pvae_epochs=config.pixelvae.epochs, pvae_k=config.pixelvae.nll_k, gan_steps=config.gan.steps,
             gan_bs=config.gan.batch_size, n_test=config.eval.n_test)
    out = [d.format(**v) for d in DIFFERENCES]
    return out if config.eval.n_test < 10_000 else out[:-1]  # the last: only when fewer test images


def _settings_line() -> str:
    c = get_config()
    return (f"PPCA q = {c.ppca.n_components}; GMM K = {c.gmm.n_components} ({c.gmm.covariance_type}); VAE / IWAE "
            f"{c.vae.epochs} epochs; PixelCNN {c.pixelcnn.n_layers} x {c.pixelcnn.features}, {c.pixelcnn.epochs} "
            f"epoch(s); PixelVAE decoder {c.pixelvae.n_layers} x {c.pixelvae.features}, {c.pixelvae.epochs} "
            f"epoch(s); GAN {c.gan.steps} steps; NLL on {c.eval.n_test} test images (k = {c.eval.nll_k}, PixelVAE "
            f"k = {c.pixelvae.nll_k}); {c.eval.n_samples} samples per family for the image metrics")


__doc__ = (__doc__.replace("{budget}", BUDGET).replace("{settings}", _settings_line())
           .replace("{differences}", "\n".join(f"  - {d}" for d in differences(get_config()))))


# --------------------------------------------------------------------------------------------
# dequantisation


def dequantized_nll(log_prob_fn, x, key) -> np.ndarray:
    """``-log p(x + u)`` per row, one ``u ~ U[0, 1)^D`` per row (from ``key``): ``(N,)`` nats.

    ``x`` holds integer-valued data ``(N, D)`` (here binary images) and ``log_prob_fn`` a density on
    R^D. Its mean over ``u`` is an upper bound on the discrete NLL ``-log P(x)`` of the model
    ``P(x) = integral_{[0,1)^D} p(x + u) du`` (Jensen: ``log E_u p >= E_u log p``).
    """
    x = jnp.asarray(x)
    u = jax.random.uniform(key, x.shape, x.dtype)
    return -np.asarray(log_prob_fn(x + u))


def _to_binary(y) -> jax.Array:
    """Samples ``y`` of a density on dequantised binary data -> the discrete model's draws in {0, 1}."""
    return jnp.clip(jnp.floor(y), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# the families


def _pixelcnn_config(config) -> pixelcnn.PixelCNNConfig:
    p = config.pixelcnn
    return pixelcnn.PixelCNNConfig(features=p.features, n_layers=p.n_layers, first_kernel=p.first_kernel,
                                   kernel_size=p.kernel_size, out_features=p.out_features)


def _pixelvae_config(config) -> pixelvae.PixelVAEConfig:
    p = config.pixelvae
    return pixelvae.PixelVAEConfig(latent_dim=p.latent_dim, conv_features=tuple(p.conv_features),
                                   conv_dense=p.conv_dense, context_channels=p.context_channels, features=p.features,
                                   n_layers=p.n_layers, out_features=p.out_features)


def _adam(group, n_train: int):
    """Adam at ``group.lr`` with a cosine decay to 5 % of it over the family's run."""
    steps = group.epochs * (n_train // group.batch_size)
    return train.optimizer("adam", group.lr, schedule="cosine", decay_steps=max(1, steps), final_fraction=0.05)


def _fit(run, loss, params, group, x_train, key, tag: str):
    """Train in ``<run dir>/train/<tag>`` (checkpoints: a rerun resumes); ``(params, training seconds, history)``."""
    state, history = train.fit(loss, params, _adam(group, len(x_train)), x_train, key=key, epochs=group.epochs,
                               batch_size=group.batch_size, run_dir=run.dir / "train" / tag, progress=not run.quick,
                               tensorboard=False)
    params = jax.block_until_ready(state.params)
    return params, train.train_seconds(history), history


def _n_params(tree) -> int:
    return int(sum(np.size(a) for a in jax.tree.leaves(tree)))


def _classic(config, name, y_train, x_test, key, k_deq_test):
    """PPCA or GMM on dequantised data (``key``: the GMM's EM restarts): (metrics, binary sampler, {})."""
    t0 = time.perf_counter()
    if name == "ppca":
        params = jax.block_until_ready(ppca.fit_ml(y_train, config.ppca.n_components))
        log_prob, n_params = functools.partial(ppca.log_prob, params), _n_params((params.mu, params.W, params.sigma2))
        sampler = lambda key, n: _to_binary(ppca.sample(key, params, n)[0])  # noqa: E731
    else:
        g = config.gmm
        params, info = gmm.fit(key, y_train, g.n_components, g.covariance_type, n_init=g.n_init,
                               max_iter=g.max_iter, reg_covar=g.reg_covar, warn=False)
        jax.block_until_ready(params)
        log_prob, n_params = functools.partial(gmm.log_prob, params), gmm.n_parameters(params)
        sampler = lambda key, n: _to_binary(gmm.sample(key, params, n)[0])  # noqa: E731
    seconds = time.perf_counter() - t0
    nll, t_nll = _timed(dequantized_nll, log_prob, x_test, k_deq_test)
    extra = {"converged": bool(info.converged), "em_iterations": int(info.n_iter)} if name == "gmm" else {}
    return {**_nll_summary(nll, NLL_KINDS["deq"], t_nll), "train_time_s": seconds, "n_params": n_params,
            **extra}, sampler, {}


def _vae(config, run, name, x_train, x_test, key):
    k = keys.streams(key, "init", "fit", "nll")
    v = config.vae
    cfg = vae.VAEConfig(latent_dim=v.latent_dim, hidden=tuple(v.hidden), activation=v.activation,
                        likelihood="bernoulli")
    objective = vae.Objective("elbo", binarize=True) if name == "vae" else vae.Objective("iwae", k=config.iwae.k,
                                                                                         binarize=True)
    params, seconds, history = _fit(run, vae.loss_fn(objective), vae.init(k["init"], cfg), v, x_train, k["fit"], name)
    lp, t_nll = _timed(vae.log_prob, params, x_test, k["nll"], k=config.eval.nll_k, batch_size=config.eval.batch_size)
    sampler = lambda key, n: vae.sample(key, params, n, mean=False)[0]  # noqa: E731
    grey = lambda key, n: vae.sample(key, params, n, mean=True)[0]  # noqa: E731
    m = {**_nll_summary(-lp, NLL_KINDS["is"].format(k=config.eval.nll_k), t_nll), "nll_k": config.eval.nll_k,
         "train_time_s": seconds, "n_params": vae.num_params(params)["total"], "objective": objective.name,
         "objective_k": objective.k, "final_train_loss": history[-1]["loss"]}
    return m, sampler, {"grey": grey}


def _pixelcnn(config, run, x_train, x_test, key):
    k = keys.streams(key, "init", "fit")
    params = pixelcnn.init(k["init"], _pixelcnn_config(config))
    params, seconds, history = _fit(run, pixelcnn.loss_fn(binarize=True), params, config.pixelcnn, x_train, k["fit"], "pixelcnn")
    lp, t_nll = _timed(pixelcnn.log_prob, params, x_test, batch_size=config.eval.batch_size)
    sampler = lambda key, n: pixelcnn.sample(key, params, n)  # noqa: E731
    m = {**_nll_summary(-lp, NLL_KINDS["exact"], t_nll), "test_bits_per_dim": float(-lp.mean() / (784 * math.log(2))),
         "train_time_s": seconds, "n_params": pixelcnn.num_params(params), "final_train_loss": history[-1]["loss"]}
    return m, sampler, {}


def _pixelvae(config, run, x_train, x_test, key):
    k = keys.streams(key, "init", "fit", "nll")
    p = config.pixelvae
    params = pixelvae.init(k["init"], _pixelvae_config(config))
    params, seconds, history = _fit(run, pixelvae.loss_fn(binarize=True), params, p, x_train, k["fit"], "pixelvae")
    lp, t_nll = _timed(pixelvae.log_prob, params, x_test, k["nll"], k=p.nll_k, batch_size=config.eval.batch_size)
    sampler = lambda key, n: pixelvae.sample(key, params, n)[0]  # noqa: E731
    m = {**_nll_summary(-lp, NLL_KINDS["is"].format(k=p.nll_k), t_nll), "nll_k": p.nll_k, "train_time_s": seconds,
         "n_params": pixelvae.num_params(params)["total"], "final_train_loss": history[-1]["loss"]}
    return m, sampler, {}


def _gan(config, run, x_grey, key):
    trainer = gan.GANTrainer.from_config(config.gan.model, architecture="dcgan", data_shape=(28, 28, 1))
    g = config.gan
    state, history = train.fit_trainer(trainer, x_grey, key=key, steps=g.steps, batch_size=g.batch_size,
                                       run_dir=run.dir / "train" / "gan", progress=not run.quick, tensorboard=False)
    gstate = jax.block_until_ready(state.model)
    seconds = train.train_seconds(history)
    grey = functools.partial(gan.ema_samples, trainer, gstate)

    def sampler(key, n):  # the grey image binarised like the data: a sampler of binarised MNIST
        kg, kb = keys.streams(key, "image", "binarize").values()
        return jax.random.bernoulli(kb, jnp.clip(grey(kg, n), 0.0, 1.0)).astype(jnp.float32)

    m = {"test_nll_nats": None, "test_nll_sem": None, "nll_kind": None, "nll_time_s": None, "train_time_s": seconds,
         "n_params": _n_params((gstate.g_vars["params"], gstate.d_params)),
         "n_params_generator": _n_params(gstate.g_vars["params"])}
    return m, sampler, {"grey": grey}


def _timed(fn, *args, **kwargs) -> tuple[np.ndarray, float]:
    """``(np.asarray(fn(*args, **kwargs)), wall seconds)``."""
    t0 = time.perf_counter()
    out = np.asarray(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def _nll_summary(nll: np.ndarray, kind: str, seconds: float) -> dict:
    return {"test_nll_nats": float(nll.mean()),
            "test_nll_sem": float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1 else None, "nll_kind": kind,
            "nll_time_s": seconds}


# --------------------------------------------------------------------------------------------
# the run


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    x_train_u8 = load_mnist("train")[0][: config.n_train].reshape(-1, 784)
    x_test_u8 = load_mnist("test")[0].reshape(-1, 784)
    x_test_bin = np.asarray(binarize(x_test_u8, ks["binarize_test"]))  # once, all 10 000 (as vae_mnist)
    x_nll = spread(x_test_bin, config.eval.n_test)
    x_grey = prepare_images(load_mnist("train")[0][: config.n_train])  # (N, 28, 28, 1) in [0, 1]: the GAN's data
    test_grey = prepare_images(load_mnist("test")[0])

    clf = classifier_for(config.eval.classifier, run.log)
    n = config.eval.n_samples
    ref_bin, ref_grey = clf.feature_stats(spread(x_test_bin, n)), clf.feature_stats(spread(test_grey, n))
    floor_bin, half = real_floor(x_test_bin, n, clf)
    floor_grey, _ = real_floor(test_grey, n, clf)
    floors = {"fid_test_vs_test": floor_bin, "fid_grey_test_vs_test": floor_grey, "fid_floor_n": half,
              "mnist_score_test": image_metrics(spread(x_test_bin, n), ref_bin, clf)["mnist_score"],
              "mnist_score_grey_test": image_metrics(spread(test_grey, n), ref_grey, clf)["mnist_score"]}
    run.log(f"floors (n={half}): FID binarised test halves {floor_bin:.3f}, grey {floor_grey:.3f}")

    # PPCA / GMM data: one binarisation of the training images plus uniform noise
    y_train = np.asarray(binarize(x_train_u8, ks["binarize_train"]))
    y_train = y_train + np.asarray(jax.random.uniform(ks["dequantize_train"], y_train.shape, y_train.dtype))

    results, samples = {}, {}
    for name in FAMILIES:
        k_fam, k_sample = keys.streams(ks[name], "model", "sample").values()
        if name in ("ppca", "gmm"):
            m, sampler, extra = _classic(config, name, y_train, x_nll, k_fam, ks["dequantize_test"])
        elif name in ("vae", "iwae"):
            m, sampler, extra = _vae(config, run, name, x_train_u8, x_nll, k_fam)
        elif name == "pixelcnn":
            m, sampler, extra = _pixelcnn(config, run, x_train_u8, x_nll, k_fam)
        elif name == "pixelvae":
            m, sampler, extra = _pixelvae(config, run, x_train_u8, x_nll, k_fam)
        else:
            m, sampler, extra = _gan(config, run, x_grey, k_fam)
        k_bin, k_grey = keys.streams(k_sample, "binary", "grey").values()
        t0 = time.perf_counter()
        imgs = draw(sampler, k_bin, n).reshape(n, 784)
        im = image_metrics(imgs, ref_bin, clf)
        m.update(fid=im["fid"], mnist_score=im["mnist_score"], classes=im["classes_covered"],
                 class_histogram=im["class_histogram"], fid_grey=None, mnist_score_grey=None)
        if "grey" in extra:
            ig = image_metrics(draw(extra["grey"], k_grey, n), ref_grey, clf)
            m.update(fid_grey=ig["fid"], mnist_score_grey=ig["mnist_score"])
        m["sample_time_s"] = time.perf_counter() - t0
        results[name], samples[name] = m, imgs[:64]
        nll = "n/a" if m["test_nll_nats"] is None else f"{m['test_nll_nats']:.2f} nats ({m['nll_kind']})"
        run.log(f"{name}: NLL {nll}, FID {m['fid']:.3f}, score {m['mnist_score']:.3f}, classes {m['classes']}, "
                f"{m['train_time_s']:.1f} s training, {m['n_params']} parameters")

    table = _table(results, floors)
    run.log(table)
    (run.dir / "table.md").write_text(table + "\n")
    _figure(run, results, samples, x_test_bin)
    return {**results, "floors": floors, "n_test": len(x_nll), "n_samples": n, "n_train": len(x_train_u8),
            "nll_k": config.eval.nll_k, "classifier": config.eval.classifier,
            "samples": {"ppca": "floor(y) clipped to {0,1}, y ~ p", "gmm": "floor(y) clipped to {0,1}, y ~ p",
                        "vae": "x ~ p(x|z), z ~ N(0, I)", "iwae": "x ~ p(x|z), z ~ N(0, I)",
                        "pixelcnn": "exact ancestral draws", "pixelvae": "x ~ p(x|z) (PixelCNN), z ~ N(0, I)",
                        "gan": "EMA generator image, binarised"},
            "protocol_differences": differences(config)}


def _table(results: dict, floors: dict) -> str:
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    lines = ["| family | test NLL (nats) | NLL kind | FID (binary) | MNIST score | classes | FID (grey) | train s | "
             "params |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        nll = "n/a" if m["test_nll_nats"] is None else f"{m['test_nll_nats']:.2f} ± {m['test_nll_sem'] or 0:.2f}"
        lines.append(f"| {name} | {nll} | {m['nll_kind'] or 'no likelihood'} | {m['fid']:.3f} | {m['mnist_score']:.3f} "
                     f"| {m['classes']} | {fmt(m['fid_grey'], '.3f')} | {m['train_time_s']:.1f} | {m['n_params']} |")
    lines.append(f"| real test images (floor) | | | {floors['fid_test_vs_test']:.3f} | "
                 f"{floors['mnist_score_test']:.3f} | | {floors['fid_grey_test_vs_test']:.3f} | | |")
    return "\n".join(lines)


def _figure(run, results, samples, x_test_bin):
    with run.figure("samples", 2, 4, figsize=(14, 7.8)) as (fig, axes):
        for ax, name in zip(axes.ravel(), FAMILIES):
            m = results[name]
            nll = "no likelihood" if m["test_nll_nats"] is None else f"NLL {m['test_nll_nats']:.1f}"
            plotting.show_images(ax, plotting.image_grid(samples[name], 8, 8, (28, 28)),
                                 f"{name.upper()}: {nll}, FID {m['fid']:.2f}", cmap="gray_r")
        plotting.show_images(axes.ravel()[-1], plotting.image_grid(x_test_bin[:64], 8, 8, (28, 28)),
                             "binarised MNIST test images", cmap="gray_r")
