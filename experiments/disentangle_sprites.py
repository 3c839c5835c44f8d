"""Disentangling the sprites' factors: beta-VAE, beta-TCVAE and FactorVAE against ground truth.

Data: ``n_train`` images drawn without replacement from the full grid of the procedural sprites
(:class:`jaxgen.data.Sprites`: 64 x 64 binary images, factors shape (3), scale (6), orientation (40),
x (32), y (32); 737 280 combinations; ``n_train = 737_280`` is the whole grid), kept as uint8 bytes.

Objectives (the same VAE, the same data, steps and batch for each), each at every value of its
weight in the config, over the seeds ``seed, seed + 1, ...`` (``n_seeds``):

* ``beta_vae`` (Higgins et al. 2017): ``vae.Objective("elbo", beta=b)`` for each b in ``beta_vae``;
  ``beta = 1`` is the plain VAE, the baseline row of the table.
* ``beta_tcvae`` (Chen et al. 2018): ``vae.Objective("beta_tcvae", beta=b, dataset_size=n_train)``:
  the total-correlation term weighted by b, estimated by minibatch-weighted sampling.
* ``factor_vae`` (Kim & Mnih 2018): :class:`jaxgen.models.vae.FactorVAETrainer` with gamma in
  ``factor_vae``; each step sees two halves of ``2 * train.batch_size`` images (the VAE's batch and
  the codes permuted for the discriminator), as Kim & Mnih's Algorithm 2.

Evaluation sprites: ``eval.n_mig`` grid points drawn without replacement from those *not* among
the training sprites (held out: the points after the training ones in one random permutation of
the grid), so the MIGs measure how the encoders generalise to unseen combinations; only when the
grid has too few left (``n_train + eval.n_mig > 737 280``, e.g. the accelerator protocol's whole
grid) are they drawn from the whole grid, as the papers evaluate on their training set, and
``metrics.json`` says so (``eval_sprites``). The FactorVAE score draws its own random sprites from
the whole grid (about ``n_train / 737 280`` of them training sprites), as Kim & Mnih do.

Metrics per trained model, two MIGs (named; they are different estimators and give different
numbers, see :mod:`jaxgen.metrics.disentangle`), both on the held-out evaluation sprites:

* ``mig_histogram`` (:func:`jaxgen.metrics.mig_histogram`, disentanglement_lib's): 20-bin histograms
  of the posterior means, averaged over the factors ``eval.factors`` (default all five, as
  disentanglement_lib); capped below 1 by the bins (a perfect encoder scores 0.896 here).
* ``mig_chen`` (:func:`jaxgen.metrics.mig_chen`, Chen et al.'s): ``I(z_j; v_k)`` from the full
  Gaussian posterior ``q(z_j | x)``, with the evaluation sprites standing for the data set and
  ``eval.chen_samples`` draws of z per image, averaged over ``eval.chen_factors`` (default scale,
  orientation, x, y: shape excluded, as Chen et al. on dSprites). Chen et al. use the whole data set
  (737 280 images, the training set); here a uniform random sample of 10 000 held-out sprites (the
  N^2 cost: 4-5 s per model on one core), which adds a small positive bias to the information
  of latents about factors they do not encode.

and the FactorVAE score (:func:`jaxgen.metrics.factor_vae_score`: majority-vote classifier,
``eval.fvs_*`` votes of ``eval.fvs_batch`` images); also the final training ELBO (nats, mean of the
last log period), the mean KL of each latent to the prior on the evaluation sprites, and the active
latents (Burda et al.'s criterion: the variance of the posterior mean over those images exceeds
0.01).

``metrics.json``: ``mig_histogram``, ``mig_chen`` and ``factor_vae_score`` = ``{"beta_vae",
"beta_tcvae", "factor_vae"}``, the mean over seeds at the weight with the highest mean histogram MIG
for that objective (``best_weight``; the same weight for every metric), with ``*_std``;
``baseline_vae`` (beta = 1 when it is among ``beta_vae``); ``runs``: per objective and weight, mean,
std and per-seed values of every metric (``mig_histogram_per_factor`` and ``mig_chen_per_factor``
for all five factors); ``mig_estimators``: what each MIG is and how it differs from the published
ones; ``protocol_differences``: how the CPU run differs from the papers. ``table.md``: one row per
objective and weight, mean ± std over seeds (one seed: the value alone).

Figures: ``traversals`` -- the best model (highest histogram MIG of every run): one row per
latent, sorted by its mean KL to the prior (in the row label), the latent alone set to values from
-2 to 2 while the others keep the posterior mean of one held-out image (decoder means); ``mig_per_factor`` -- both
MIGs of each factor for each objective's best weight (mean, and std over seeds as error bars; one
seed: no bars, and the axis says "one seed").

Protocols:
  * default (CPU, about 20 minutes on one core at moderate load; measured {cpu_time}): {cpu_settings}.
  * accelerator (:data:`ACCELERATOR`, Kim & Mnih's protocol for all three objectives; untested here):
    ``jaxgen run disentangle_sprites {accelerator}``.

Measured with the default config (seeds 0-2, mean ± std, on 10 000 held-out sprites; MIG
histogram: disentanglement_lib's estimator over the five factors, MIG Chen: Chen et al.'s over
scale, orientation, x, y; ``runs/disent_default`` of 2026-12-08):

  ==========================  =============  =============  ===============  ===========  ======
  objective                   MIG histogram  MIG Chen       FactorVAE score  ELBO (nats)  active
  ==========================  =============  =============  ===============  ===========  ======
  VAE (beta_vae, beta = 1)    0.019 ± 0.007  0.024 ± 0.009  0.401 ± 0.070    -88.1        10.0
  beta_vae, beta = 4          0.020 ± 0.009  0.022 ± 0.015  0.440 ± 0.089    -103.6       8.0
  beta_tcvae, beta = 6        0.129 ± 0.020  0.142 ± 0.022  0.599 ± 0.061    -113.7       8.7
  factor_vae, gamma = 35      0.024 ± 0.023  0.032 ± 0.026  0.503 ± 0.105    -112.1       10.0
  ==========================  =============  =============  ===============  ===========  ======

Only beta-TCVAE separates a factor at this budget: its MIG comes almost all from scale (per-factor
MIG 0.53 histogram, 0.47 Chen; x and y below 0.07, orientation about 0); FactorVAE's discriminator
barely tells the codes from permuted ones after 3500 steps (its TC estimate 0.14-0.19 nats), so it
stays near the beta-VAE. The two estimators rank the models alike; Chen's is higher on the average
here mainly because it leaves out shape (about 0.02 under both) and lower on scale because it reads
the posterior samples, not the means (the posterior noise hides part of the six values).

The papers report clearly higher scores on dSprites, after 100 times more updates. Set beside them,
mind the estimator: Chen et al.'s MIG (the beta-TCVAE paper) is ``mig_chen``'s (full posterior,
scale / orientation / x / y, on the whole data set); MIGs from disentanglement_lib (Locatello et al.
2019 and the papers that use it) are ``mig_histogram``'s (20 bins of posterior means, all five
factors); the two give different numbers for one model, so a jaxgen number is comparable only with
a paper that uses the same estimator.

Each model (objective, weight, seed) trains in its own folder ``train/<objective>_<weight>_seed<s>/``
of the run folder with a checkpoint every ``train.log_every`` steps: an interrupted run (Ctrl-C,
SIGTERM) resumes every model where it stopped when the same command is run again.

Differences of the default run from the papers (also in ``metrics.json``):

{differences}
"""
import functools
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import keys, plotting, runner, train
from jaxgen.data import SPRITE_FACTORS, Sprites
from jaxgen.metrics.disentangle import CHEN_DSPRITES_FACTORS, factor_vae_score, mig_chen, mig_histogram
from jaxgen.metrics.latents import active_units
from jaxgen.models import vae

DESCRIPTION = "beta-VAE, beta-TCVAE and FactorVAE on procedural sprites: MIG, FactorVAE score over seeds, traversals."

OBJECTIVE_NAMES = ("beta_vae", "beta_tcvae", "factor_vae")
WEIGHT_NAME = {"beta_vae": "beta", "beta_tcvae": "beta", "factor_vae": "gamma"}

QUICK = {"n_train": 512, "n_seeds": 1, "image_size": 32, "beta_vae": (4.0,), "model.hidden": (32,),
         "model.latent_dim": 4, "factor.d_hidden": (16,), "train.steps": 20, "train.batch_size": 32,
         "train.log_every": 10, "eval.n_mig": 256, "eval.fvs_train": 20, "eval.fvs_eval": 20, "eval.fvs_batch": 8,
         "eval.fvs_global": 256, "eval.traverse_steps": 5}

# Kim & Mnih (2018)'s protocol, for all three objectives (their comparison of beta-VAE and FactorVAE):
# the conv encoder / decoder (4 layers of 32, 32, 64, 64 channels, a 256-wide dense layer, as Burgess
# et al. 2018), 10 latents, batch 64, Adam 1e-4 (0.9, 0.999), 3e5 steps; D 6 x 1000 leaky ReLU, Adam
# 1e-4 (0.5, 0.9); the whole grid. (Chen et al. train beta-TCVAE with Adam 1e-3 on batches of 2048.)
ACCELERATOR = {"n_train": 737_280, "model.architecture": "conv", "model.conv_features": (32, 32, 64, 64),
               "model.conv_dense": 256, "model.latent_dim": 10, "train.steps": 300_000, "train.batch_size": 64,
               "train.lr": 1e-4, "train.log_every": 1000, "factor.d_hidden": (1000, 1000, 1000, 1000, 1000, 1000),
               "factor.d_lr": 1e-4, "factor.d_betas": (0.5, 0.9), "beta_vae": (1.0, 4.0), "beta_tcvae": (6.0,),
               "factor_vae": (35.0,), "eval.fvs_train": 800, "eval.fvs_eval": 800}

CPU_SETTINGS = ("MLP encoder 4096-512-256-10 and mirrored decoder (ReLU, Bernoulli), 3500 steps of batch 64 "
                "(FactorVAE: 2 x 64) with Adam 1e-3 on 50 000 sprites, D 4 x 256 leaky ReLU with Adam 1e-3 "
                "(0.5, 0.9); beta_vae beta in (1, 4), beta_tcvae beta 6, factor_vae gamma 35; 3 seeds")
CPU_TIME = ("2750 s wall, 2026-12-08, nice 10 and pinned to one core of the 2-core machine while 5-7 other jobs "
            "shared it (load average 5-17), 90-670 s per model; 1101 s on 2026-11-27 at load about 5, before the Chen "
            "MIG, which costs 4-5 s per model (10 000 sprites, 10 latents, one core)")
DIFFERENCES = [
    "an MLP encoder / decoder (4096-512-256-10) instead of the conv networks (4 layers of 32/32/64/64 channels): "
    "the conv VAE costs about 0.5 s per step of 64 on one CPU core, the MLP 23 ms (measured 2026-11-27)",
    "3500 steps of batch 64 (224 000 images, about 4.5 passes over 50 000 sprites) instead of 3e5 steps (Kim & Mnih) "
    "over the whole 737 280-image grid",
    "Adam 1e-3 for every VAE (Kim & Mnih: 1e-4; Chen et al.: 1e-3) and 1e-3 for FactorVAE's discriminator "
    "(Kim & Mnih: 1e-4), so that the short run trains",
    "FactorVAE's discriminator has 4 hidden layers of 256 units, not 6 of 1000",
    "beta-TCVAE's minibatch-weighted estimator on batches of 64 (Chen et al.: 2048) with N = n_train",
    "the images are procedural sprites rendered by jaxgen.data.Sprites (dSprites-like, not the dSprites files)",
    "the factor weights: one or two values per objective, not the papers' sweeps",
    "MIG on 10 000 held-out random sprites (Chen et al.: Chen's estimator on the whole 737 280-image training set; "
    "disentanglement_lib: the histogram estimator on 10 000 random training images)",
]
MIG_ESTIMATORS = {
    "mig_histogram": "disentanglement_lib's estimator (Locatello et al. 2019): 20 equal-width bins of each latent's "
                     "posterior mean, plug-in discrete mutual information, normalised by the factor's entropy, mean "
                     "over eval.factors (default all five); bins cap it below 1 (a perfect encoder: 0.896 here)",
    "mig_chen": "Chen et al.'s (2018) estimator: I(z_j; v_k) from the full Gaussian posterior q(z_j | x) by Monte "
                "Carlo over the evaluation sprites, normalised by the factor's entropy (log of its number of values), "
                "mean over eval.chen_factors (default scale, orientation, x, y: shape excluded); Chen et al. use the "
                "whole data set, here 10 000 held-out random sprites",
    "beside published numbers": "Chen et al.'s MIG (the beta-TCVAE paper) is comparable with mig_chen; MIGs from "
                                "disentanglement_lib (Locatello et al. 2019 and papers using it) with mig_histogram; "
                                "the two estimators give different numbers for the same model",
}
__doc__ = (__doc__.replace("{differences}", "\n".join(f"  - {d}" for d in DIFFERENCES))
           .replace("{accelerator}", " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                             for k, v in ACCELERATOR.items()))
           .replace("{cpu_settings}", CPU_SETTINGS).replace("{cpu_time}", CPU_TIME))

STREAMS = ("data", "eval_data", "beta_vae", "beta_tcvae", "factor_vae", "score", "mig_chen")

CHECKS = {
    "n_train": runner.interval(2, 737_280), "n_seeds": runner.positive(), "image_size": runner.interval(16, 256),
    "beta_vae": runner.positive(), "beta_tcvae": runner.positive(), "factor_vae": runner.non_negative(),
    "model.latent_dim": runner.interval(2), "model.hidden": runner.positive(),
    "model.architecture": runner.one_of("mlp", "conv"), "model.conv_features": runner.positive(),
    "model.conv_dense": runner.positive(),
    "factor.d_hidden": runner.positive(), "factor.d_lr": runner.positive(),
    "train.steps": runner.positive(), "train.batch_size": runner.interval(2), "train.lr": runner.positive(),
    "train.log_every": runner.positive(),
    "eval.n_mig": runner.interval(2), "eval.n_bins": runner.interval(2), "eval.chen_samples": runner.positive(),
    "eval.fvs_train": runner.positive(),
    "eval.fvs_eval": runner.positive(), "eval.fvs_batch": runner.interval(2), "eval.fvs_global": runner.interval(2),
    "eval.traverse_steps": runner.interval(2), "eval.traverse_limit": runner.positive(),
    "eval.traverse_image": runner.non_negative(),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n_seeds = 3
    c.n_train = 50_000  # distinct grid points (737_280: the whole grid)
    c.image_size = 64
    c.objectives = OBJECTIVE_NAMES  # which objectives to train (a subset, in this order)
    c.beta_vae = (1.0, 4.0)  # beta of the beta-VAE (1 = the plain VAE baseline)
    c.beta_tcvae = (6.0,)  # beta of the total correlation
    c.factor_vae = (35.0,)  # gamma of FactorVAE
    c.model = ml_collections.ConfigDict(dict(architecture="mlp", latent_dim=10, hidden=(512, 256),
                                             conv_features=(32, 32, 64, 64), conv_dense=256))
    c.factor = ml_collections.ConfigDict(dict(d_hidden=(256, 256, 256, 256), d_lr=1e-3, d_betas=(0.5, 0.9)))
    c.train = ml_collections.ConfigDict(dict(steps=3500, batch_size=64, lr=1e-3, log_every=250))
    c.eval = ml_collections.ConfigDict(dict(n_mig=10_000, n_bins=20, factors=SPRITE_FACTORS,
                                            chen_factors=CHEN_DSPRITES_FACTORS, chen_samples=1, fvs_train=500,
                                            fvs_eval=500, fvs_batch=64, fvs_global=10_000, traverse_steps=9,
                                            traverse_limit=2.0, traverse_image=0))
    return c


def check_config(config) -> None:
    """Names: every objective and every evaluated factor must exist (before any folder is made)."""
    objectives = tuple(config.objectives)
    bad = [o for o in objectives if o not in OBJECTIVE_NAMES]
    if bad or not objectives or len(set(objectives)) != len(objectives):
        raise ValueError(f"objectives must be distinct names among {OBJECTIVE_NAMES}, got {objectives!r} "
                         f"(unknown: {bad}).")
    for name in objectives:
        if not tuple(config[name]):
            raise ValueError(f"{name} needs at least one weight ({WEIGHT_NAME[name]}), got {tuple(config[name])!r}.")
    betas = tuple(config.factor.d_betas)
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"factor.d_betas must be two numbers in [0, 1) (Adam's b1, b2), got {betas!r}.")
    for field in ("factors", "chen_factors"):
        factors = tuple(config.eval[field])
        unknown = [f for f in factors if f not in SPRITE_FACTORS]
        if unknown or not factors:
            raise ValueError(f"eval.{field}: unknown factor name(s) {unknown or factors!r}; the sprites' factors are "
                             f"{SPRITE_FACTORS}.")
    if config.eval.traverse_image >= config.eval.n_mig:
        raise ValueError(f"eval.traverse_image ({config.eval.traverse_image}) must index one of the eval.n_mig = "
                         f"{config.eval.n_mig} held-out images.")
    if "beta_tcvae" in objectives and config.train.batch_size > config.n_train:
        raise ValueError(f"train.batch_size ({config.train.batch_size}) must be <= n_train ({config.n_train}).")
    if "factor_vae" in objectives and 2 * config.train.batch_size > config.n_train:
        raise ValueError(f"factor_vae takes batches of 2 * train.batch_size = {2 * config.train.batch_size} images: "
                         f"more than n_train = {config.n_train}.")


def _vae_config(config) -> vae.VAEConfig:
    m = config.model
    return vae.VAEConfig(image_shape=(config.image_size, config.image_size, 1), latent_dim=m.latent_dim,
                         architecture=m.architecture, hidden=tuple(m.hidden), activation="relu",
                         conv_features=tuple(m.conv_features), conv_dense=m.conv_dense, likelihood="bernoulli")


def _split_grid(data: Sprites, key_data, key_eval, n_train: int, n_eval: int):
    """Training and evaluation grid points: ``(train (n_train,), eval (n_eval,) flat indices, held_out)``.

    One random permutation of the grid (``key_data``) gives the training points (its first
    ``n_train``) and, when the grid has room, the evaluation points (the next ``n_eval``: distinct and
    held out, for the cost of the permutation the training sample needs anyway). Otherwise the
    evaluation points are ``n_eval`` distinct points of the whole grid (``key_eval``), not held out."""
    perm = np.asarray(jax.random.permutation(key_data, data.n_combinations))
    held_out = n_train + n_eval <= data.n_combinations
    evaluation = (perm[n_train:n_train + n_eval] if held_out
                  else np.asarray(jax.random.choice(key_eval, data.n_combinations, (n_eval,), replace=False)))
    return perm[:n_train], evaluation, held_out


def _render(data: Sprites, index):
    """Images (n, S, S, 1) uint8 and factors (n, K) int32 of flat grid indices (n,)."""
    factors = data.factors_at(jnp.asarray(index, jnp.int32))
    return np.asarray(data.render(factors)), np.asarray(factors)


def _train(config, name: str, weight: float, key, x_train, run_dir):
    """Train one model, checkpointing in ``run_dir`` (a rerun resumes it); returns ``(VAEParams,
    final-period metrics, training seconds over every session)``."""
    cfg, bs, tr = _vae_config(config), config.train.batch_size, config.train
    settings = dict(steps=tr.steps, log_every=min(tr.log_every, tr.steps), run_dir=run_dir, progress=False,
                    tensorboard=False)
    if name == "factor_vae":
        trainer = vae.FactorVAETrainer(vae=cfg, gamma=weight, d_hidden=tuple(config.factor.d_hidden),
                                       vae_lr=tr.lr, d_lr=config.factor.d_lr, d_betas=tuple(config.factor.d_betas))
        state, history = train.fit_trainer(trainer, x_train, key=key, batch_size=2 * bs, **settings)
        params = state.model.vae
    else:
        k_init, k_fit = keys.streams(key, "init", "fit").values()
        objective = (vae.Objective("elbo", beta=weight) if name == "beta_vae"
                     else vae.Objective("beta_tcvae", beta=weight, dataset_size=len(x_train)))
        optimizer = train.optimizer("adam", tr.lr)
        state, history = train.fit(vae.loss_fn(objective), vae.init(k_init, cfg), optimizer, x_train,
                                   key=k_fit, batch_size=bs, **settings)
        params = state.params
    params = jax.block_until_ready(params)
    return params, history[-1], train.train_seconds(history)


@jax.jit
def _posterior(params, x):
    return vae.encode(params, x)


def _encode_all(params, images, chunk: int = 1000):
    """Posterior means and log-variances ``(N, q)`` of uint8 images, in chunks."""
    parts = [_posterior(params, images[i:i + chunk]) for i in range(0, len(images), chunk)]
    return np.concatenate([np.asarray(p[0]) for p in parts]), np.concatenate([np.asarray(p[1]) for p in parts])


def _evaluate(config, params, data, eval_images, eval_factors, key, key_chen) -> dict:
    e = config.eval
    mean, log_var = _encode_all(params, eval_images)
    kl = 0.5 * np.mean(np.exp(log_var) + mean**2 - 1.0 - log_var, axis=0)  # (q,) mean KL per latent
    hist = mig_histogram(mean, eval_factors, n_bins=e.n_bins, factor_names=data.factor_names,
                         subset=tuple(e.factors))
    chen = mig_chen(mean, log_var, eval_factors, key_chen, n_samples=e.chen_samples, factor_names=data.factor_names,
                    subset=tuple(e.chen_factors))
    fvs = factor_vae_score(lambda x: _posterior(params, x)[0], data, key, n_train=e.fvs_train, n_eval=e.fvs_eval,
                           batch_size=e.fvs_batch, n_global=e.fvs_global)
    return {"mig_histogram": hist["mig"], "mig_chen": chen["mig"], "factor_vae_score": fvs["score"],
            "kl_per_latent": kl.tolist(),
            "active_latents": active_units(mean)["n_active"],  # Burda et al.: Var_x E[z_j | x] > 0.01
            "mig_histogram_per_factor": dict(hist["per_factor"]), "mig_chen_per_factor": dict(chen["per_factor"])}


def _weight_key(w: float) -> str:
    return f"{float(w):g}"


def run(config, run) -> dict:
    ks = keys.streams(run.key, *STREAMS)
    data = Sprites(image_size=config.image_size)
    t0 = time.perf_counter()
    train_idx, eval_idx, held_out = _split_grid(data, ks["data"], ks["eval_data"], config.n_train, config.eval.n_mig)
    x_train, _ = _render(data, train_idx)
    eval_images, eval_factors = _render(data, eval_idx)
    if held_out:
        eval_sprites = f"{config.eval.n_mig} distinct grid points, none of them a training sprite (held out)"
    else:
        eval_sprites = (f"{config.eval.n_mig} distinct grid points of the whole grid, not held out (n_train + "
                        f"eval.n_mig > {data.n_combinations}): about {config.n_train / data.n_combinations:.0%} of "
                        "them training sprites")
    run.log(f"{config.n_train} training sprites ({config.image_size}x{config.image_size}), evaluation sprites: "
            f"{eval_sprites}: {time.perf_counter() - t0:.1f} s")
    objectives = tuple(config.objectives)

    runs, best = {}, None  # best: (mig, objective, weight, seed, params)
    for name in objectives:
        runs[name] = {}
        for w_i, weight in enumerate(config[name]):
            rows = []
            for s in range(config.n_seeds):  # an indexed family per objective: weight w_i, then seed s
                key = jax.random.fold_in(jax.random.fold_in(ks[name], w_i), s)
                fit_dir = run.dir / "train" / f"{name}_{_weight_key(weight)}_seed{s}"  # checkpoints: a rerun resumes
                params, last, seconds = _train(config, name, float(weight), key, x_train, fit_dir)
                k_obj = jax.random.fold_in(ks["score"], OBJECTIVE_NAMES.index(name))
                k_score = jax.random.fold_in(jax.random.fold_in(k_obj, w_i), s)
                k_chen = jax.random.fold_in(jax.random.fold_in(
                    jax.random.fold_in(ks["mig_chen"], OBJECTIVE_NAMES.index(name)), w_i), s)
                m = _evaluate(config, params, data, eval_images, eval_factors, k_score, k_chen)
                row = {**m, "seed": config.seed + s, "elbo": float(last["elbo"]), "train_seconds": seconds,
                       **({"tc": float(last["tc"])} if "tc" in last else {})}
                rows.append(row)
                run.log(f"{name} {WEIGHT_NAME[name]}={float(weight):g} seed {s}: MIG histogram "
                        f"{m['mig_histogram']:.3f}, MIG Chen {m['mig_chen']:.3f}, FactorVAE score "
                        f"{m['factor_vae_score']:.3f}, ELBO {row['elbo']:.1f}, {m['active_latents']} active, "
                        f"{seconds:.1f} s")
                if best is None or m["mig_histogram"] > best[0]:
                    best = (m["mig_histogram"], name, float(weight), s, params, m["kl_per_latent"])
            runs[name][_weight_key(weight)] = runner.seed_summary(rows)

    best_weight = {n: max(runs[n], key=lambda w: runs[n][w]["mig_histogram"]) for n in objectives}
    scores = ("mig_histogram", "mig_chen", "factor_vae_score")
    metrics = {f"{m}{sd}": {n: runs[n][best_weight[n]][f"{m}{sd}"] for n in objectives}
               for m in scores for sd in ("", "_std")}
    metrics.update({
        "best_weight": {n: float(best_weight[n]) for n in objectives},
        "selection": "per objective, the weight with the highest mean histogram MIG over seeds (every metric at that "
                     "weight)",
        "mig_estimators": MIG_ESTIMATORS,
        "eval_sprites": eval_sprites,
        "runs": runs,
    })
    if "beta_vae" in objectives and "1" in runs["beta_vae"]:
        b = runs["beta_vae"]["1"]
        metrics["baseline_vae"] = {f"{m}{sd}": b[f"{m}{sd}"] for m in scores for sd in ("", "_std")}

    lines = ["| objective | weight | MIG (histogram) | MIG (Chen) | FactorVAE score | ELBO (nats) | active latents "
             "| train s |", "|---|---|---|---|---|---|---|---|"]
    for n in objectives:
        for w, r in runs[n].items():
            label = "VAE (baseline)" if n == "beta_vae" and w == "1" else n
            lines.append(f"| {label} | {WEIGHT_NAME[n]} = {w} | "
                         + " | ".join(plotting.mean_std(r[m], r[m + "_std"], config.n_seeds) for m in scores)
                         + f" | {r['elbo']:.1f} | {r['active_latents']:.1f} | {r['train_seconds']:.0f} |")
    table = "\n".join(lines)
    run.log(table)
    (run.dir / "table.md").write_text(
        f"{plotting.over_seeds(config.n_seeds)}; evaluation sprites: {eval_sprites}; MIG (histogram): "
        f"disentanglement_lib's estimator over {list(config.eval.factors)}; MIG (Chen): Chen et al.'s estimator over "
        f"{list(config.eval.chen_factors)}\n\n" + table + "\n")

    _, b_name, b_weight, b_seed, b_params, b_kl = best
    _traversal_figure(config, run, b_params, np.asarray(b_kl), eval_images[config.eval.traverse_image],
                      f"{b_name}, {WEIGHT_NAME[b_name]} = {b_weight:g}, seed {config.seed + b_seed}")
    _mig_figure(run, {n: runs[n][best_weight[n]] for n in objectives}, best_weight, config.n_seeds)

    b_row = runs[b_name][_weight_key(b_weight)]["per_seed"][b_seed]
    metrics["best_model"] = {"objective": b_name, "weight": b_weight, "seed": config.seed + b_seed,
                             "mig_histogram": best[0], "mig_chen": b_row["mig_chen"],
                             "mig_histogram_per_factor": b_row["mig_histogram_per_factor"],
                             "mig_chen_per_factor": b_row["mig_chen_per_factor"]}
    metrics.update({"n_seeds": config.n_seeds, "n_train": config.n_train, "steps": config.train.steps,
                    "batch_size": config.train.batch_size, "eval_factors": list(config.eval.factors),
                    "eval_chen_factors": list(config.eval.chen_factors),
                    "protocol_differences": DIFFERENCES, "accelerator": {k: list(v) if isinstance(v, tuple) else v
                                                                          for k, v in ACCELERATOR.items()}})
    return metrics


@functools.partial(jax.jit, static_argnums=(3, 4))
def _traverse(params, code, order, n_steps: int, limit: float):
    """Decoder means for each latent ``order[r]`` set to ``n_steps`` values in [-limit, limit]: (R, n_steps, D)."""
    values = jnp.linspace(-limit, limit, n_steps)

    def row(j):
        z = jnp.tile(code, (n_steps, 1)).at[:, j].set(values)
        return vae.decode_mean(params, z)

    return jax.vmap(row)(order)


def _traversal_figure(config, run, params, kl, image, title):
    S, q, n = config.image_size, len(kl), config.eval.traverse_steps
    order = np.argsort(-kl)  # most informative latents first
    code = np.asarray(_posterior(params, image[None])[0])[0]
    rows = np.asarray(_traverse(params, jnp.asarray(code), jnp.asarray(order), n, float(config.eval.traverse_limit)))
    grid = plotting.image_grid(rows.reshape(q * n, -1), q, n, (S, S), pad=1)
    with run.figure("traversals", 1, 2, figsize=(1.1 * n + 3.2, 0.95 * q + 1.2),
                    gridspec_kw={"width_ratios": [2, n]}) as (fig, (ax0, ax)):
        plotting.show_images(ax0, np.asarray(image[..., 0], float) / 255.0, "held-out image", cmap="gray_r")
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.grid(False)
        step = S + 1
        ax.set_yticks([step * r + S / 2 for r in range(q)],
                      [f"z{j} (KL {kl[j]:.2f})" for j in order], fontsize=8)
        values = np.linspace(-config.eval.traverse_limit, config.eval.traverse_limit, n)
        ax.set_xticks([step * c + S / 2 for c in range(n)], [f"{v:g}" for v in values], fontsize=8)
        ax.set_xlabel("value of the traversed latent (the others at the image's posterior mean)")
        ax.set_ylabel("latent, by mean KL to the prior (nats)")
        ax.set_title(f"Latent traversals of the best model by MIG: {title}", fontsize=9)


def _mig_figure(run, best_rows: dict, best_weight: dict, n_seeds: int):
    """MIG per factor of each objective's best weight: bars of the mean, error bars of the std over
    seeds (none for one seed, which has no spread)."""
    names = list(best_rows)
    factors = list(next(iter(best_rows.values()))["mig_histogram_per_factor"])
    width = 0.8 / len(names)
    with run.figure("mig_per_factor", 1, 2, figsize=(13, 4), sharey=True) as (fig, axes):
        for ax, (metric, what) in zip(axes, (("mig_histogram", "histogram estimator (disentanglement_lib)"),
                                             ("mig_chen", "full-posterior estimator (Chen et al.; its average "
                                                          "leaves out shape)"))):
            for i, n in enumerate(names):
                r = best_rows[n]
                ax.bar(np.arange(len(factors)) + (i - (len(names) - 1) / 2) * width,
                       [r[f"{metric}_per_factor"][f] for f in factors], width,
                       yerr=[r[f"{metric}_per_factor_std"][f] for f in factors] if n_seeds > 1 else None, capsize=3,
                       label=f"{n} ({WEIGHT_NAME[n]} = {best_weight[n]})")
            ax.set_xticks(np.arange(len(factors)), factors)
            ax.set_xlabel("ground-truth factor")
            ax.set_title(f"MIG per factor, {what}", fontsize=9)
        axes[0].set_ylabel(f"MIG (normalised gap; {plotting.over_seeds(n_seeds)})")
        plotting.legend_outside(axes[1])
