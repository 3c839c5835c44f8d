"""VAE / IWAE on dynamically binarised MNIST (Burda, Grosse & Salakhutdinov 2016, Table 1 protocol).

Model: 784-200-200-50 tanh MLPs for q(z|x) and p(x|z) (Bernoulli), N(0, I) prior. Training
objective ``objective.name`` ("elbo", or "iwae" with ``objective.k`` samples), a fresh binarisation
of every batch at every step.

Protocols (``protocol``):
  * ``"cpu"`` (default): a shortened run for a 2-core CPU (a few minutes): the first ``n_train``
    images of the 50 000-image training split, minibatch ``train.batch_size``, optax's Adam (beta1
    0.9, beta2 0.999, eps 1e-4), ``train.stages=4`` stages of 3^i epochs (i = 0..3, 40 epochs) at
    ``train.lr * 10^(-i/7)``, the test log-likelihood with ``eval.k`` importance samples on the
    first ``eval.n_test`` test images (k = 5000 on 2000 images).
  * ``"burda"``: the protocol of Burda et al.'s released code (github.com/yburda/iwae:
    ``experiments.py``, ``datasets.py``, ``optimizers.py``), for a GPU: the first 59 600 of MNIST's
    60 000 training images in their original order (our 50 000-image train split, then the first
    9 600 of the 10 000-image validation split; the last 400 are held out), visited in that order
    every epoch (no shuffling, as in the released code), minibatch 20, 8 stages
    of 3^(i-1) epochs (i = 1..8, 3280 epochs) at learning rate 1e-4 * round(10^(1 - (i-1)/7), 1),
    the decoder's output bias initialised to the logits of the training pixel means clipped to
    [0.001, 0.999], the released code's Adam (:func:`released_adam`: beta1 0.99, beta2 0.999, eps
    1e-4 added to sqrt(v), v initialised to ones, the update from the moments before the current
    gradient, the gradient of the minibatch *sum*; the paper states beta1 = 0.9, the released code
    runs 0.99, which we follow), and the test log-likelihood with k = 5000 on
    all 10 000 test images. It overrides ``n_train``, ``train.*`` and ``eval.k`` / ``eval.n_test``;
    the values used are in metrics.json. ``burda_stages`` (default 8) runs only the first stages, a
    shortened run for checking a machine (e.g. ``burda_stages=2``: 4 epochs); metrics.json then says
    so among the differences.

  What the ``burda`` protocol still does differently from the released code (also in metrics.json
  as ``protocol_differences``; the list is :data:`BURDA_DIFFERENCES`):

{differences}

Reference (Burda et al., k = 5000): VAE -86.76 nats, IWAE (k=50) -84.78 nats.

The test set is binarised once (a fixed draw from the ``binarize_test`` stream); ``test_nll_nats``
is ``-mean log p(x)`` estimated with ``test_nll_k`` samples (an upper bound in expectation, tight as
k grows), ``test_elbo_nats`` the mean ELBO on the same images (one sample, analytic KL).

Randomness: ``run.key`` is the parent of the named streams of :data:`STREAMS` only
(:func:`jaxgen.keys.streams`); the 2-D model's keys are streams of its own ``latent2d`` key.

Figures: prior samples; test images and reconstructions; latent interpolations (linear and slerp);
the 50-D posterior means of the test images projected on their first two principal components,
coloured by digit (a PCA projection); a separate 2-D-latent model (``latent2d``, same architecture
with q = 2) with its latent means coloured by digit and its decoded manifold; latent arithmetic (a "stroke
weight" vector: mean code of the heaviest-inked third of the test digits minus that of the
lightest third, tertiles taken within each digit class, added to codes of test digits with strengths
-1.5..1.5).
"""
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen import keys, plotting, runner, train
from jaxgen.data import load_mnist
from jaxgen.models import vae

DESCRIPTION = "VAE/IWAE on binarised MNIST (Burda et al. 784-200-200-50 protocol): k-sample test log-likelihood, samples, latent space."

QUICK = {"n_train": 1000, "train.batch_size": 100, "train.stages": 2, "eval.n_test": 100, "eval.k": 50,
         "eval.n_monitor": 100, "latent2d.epochs": 2}

REFERENCE_NLL = {"elbo": 86.76, "iwae": 84.78}  # Burda et al. Table 1: VAE (k = 1) and IWAE with k = 50
STREAMS = ("init", "fit", "binarize_test", "eval", "elbo", "sample", "latent2d")

# The released code's settings (experiments.py: checkpoint1to8, datasets.binarized_mnist, iwae.py).
BURDA = {"n_train": 59_600, "batch_size": 20, "stages": 8, "k": 5000, "n_test": 10_000, "bias_clip": (0.001, 0.999)}
BURDA_DIFFERENCES = [
    "float32 arithmetic in JAX/XLA (the released code: Theano with floatX)",
    "random numbers from JAX's threefry (named streams of the run's seed), not Theano's MRG generator with its seeds",
    "weights initialised with Flax's LeCun-normal, not Glorot-uniform with numpy seed 123 per layer",
    "the encoder outputs a log-variance; the released code outputs the standard deviation through exp (the same family)",
    "objective 'elbo' uses the analytic KL term; the released VAE differentiates the one-sample log weight "
    "log p(x, z) - log q(z|x) (the same expectation; use objective.name=iwae objective.k=1 for that estimator)",
    "the test images are binarised once with one fixed draw and the importance samples are drawn in chunks; the "
    "released code binarises each test minibatch of 20 with its generator (the same distribution)",
]
__doc__ = __doc__.replace("{differences}", "\n".join(f"  - {d}" for d in BURDA_DIFFERENCES))


CHECKS = {  # valid values, checked before the run folder is created (jaxgen.runner.check_config)
    "protocol": runner.one_of("cpu", "burda"), "n_train": runner.interval(1, 50_000),  # the 50k train split
    "model.latent_dim": runner.positive(), "model.hidden": runner.positive(),
    "objective.name": runner.one_of("elbo", "iwae"), "objective.k": runner.positive(),
    "train.batch_size": runner.positive(), "train.stages": runner.positive(), "train.lr": runner.positive(),
    "train.adam_eps": runner.positive(), "train.checkpoint_every": runner.positive(),
    "eval.k": runner.positive(), "eval.n_test": runner.interval(1, 10_000), "eval.batch_size": runner.positive(),
    "eval.n_monitor": runner.positive(), "latent2d.epochs": runner.non_negative(), "latent2d.grid": runner.positive(),
    "burda_stages": runner.interval(1, 8),
}


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.protocol = "cpu"  # "cpu" (the values below) or "burda" (the released code's protocol, for a GPU)
    c.burda_stages = 8  # protocol=burda: how many of the released code's 8 stages to run (fewer: a shortened check)
    c.n_train = 50_000
    c.model = ml_collections.ConfigDict(dict(latent_dim=50, hidden=(200, 200), activation="tanh"))
    c.objective = ml_collections.ConfigDict(dict(name="elbo", k=1))
    c.train = ml_collections.ConfigDict(dict(batch_size=100, stages=4, lr=1e-3, adam_eps=1e-4, use_scan=True,
                                             checkpoint_every=10))
    c.eval = ml_collections.ConfigDict(dict(k=5000, n_test=2000, batch_size=100, n_monitor=1000))
    # A second model with a 2-D latent space, for the classic latent scatter and manifold (0: skip).
    c.latent2d = ml_collections.ConfigDict(dict(epochs=10, grid=15))
    return c


def burda_learning_rates(stages: int = 8) -> list[float]:
    """The released code's learning rate of stage i = 1..stages: ``1e-4 * round(10^(1 - (i-1)/7), 1)``."""
    return [1e-4 * round(10.0 ** (1 - (i - 1) / 7), 1) for i in range(1, stages + 1)]


def stage_schedule(rates, steps_per_epoch: int):
    """Stage i = 1..len(rates) runs 3^(i-1) epochs at ``rates[i-1]``.

    Returns ``(optax schedule of the step, total epochs, stage boundaries in steps)``; the schedule
    is described by ``schedule="stages"``, ``rates`` and ``boundaries``."""
    epochs = [3**i for i in range(len(rates))]
    boundaries = [int(b) for b in np.cumsum(epochs[:-1]) * steps_per_epoch]
    schedule = optax.join_schedules([optax.constant_schedule(r) for r in rates], boundaries)
    return schedule, sum(epochs), boundaries


def released_adam(learning_rate, grad_scale: float = 1.0, b1: float = 0.99, b2: float = 0.999,
                  eps: float = 1e-4, *, schedule_settings: dict | None = None) -> optax.GradientTransformation:
    """Adam exactly as in Burda et al.'s ``optimizers.py`` (which differs from Kingma & Ba's):

    moments m = 0 and v = **1** at the start; at timestep t = 1, 2, ... (never reset between stages)
    the parameters move by ``-lr_t * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` with the
    moments **before** the current gradient (Theano computes every update from the old values), then
    ``m = b1 m + (1 - b1) g`` and ``v = b2 v + (1 - b2) g^2``. The released code differentiates the
    minibatch *sum* of the bound: ``grad_scale`` (the batch size) turns the gradient of our
    batch-mean loss into that.

    Args:
      learning_rate: a float or an optax schedule of the step (counted from 0).
      schedule_settings: the description of a schedule (e.g. ``{"schedule": "stages", "rates": [...],
        "boundaries": [...]}``). The optimizer carries its settings (:func:`jaxgen.train.describe`,
        for the resume check of :func:`jaxgen.train.fit`) unless a schedule comes without them.
    """
    schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

    def init(params):
        return {"count": jnp.zeros((), jnp.int32), "m": jax.tree.map(jnp.zeros_like, params),
                "v": jax.tree.map(jnp.ones_like, params)}

    def update(grads, state, params=None):
        del params
        t = (state["count"] + 1).astype(jnp.float32)
        alpha = schedule(state["count"]) * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        updates = jax.tree.map(lambda m, v: (-alpha * m / (jnp.sqrt(v) + eps)).astype(m.dtype), state["m"], state["v"])
        g = jax.tree.map(lambda x: grad_scale * x, grads)
        m = jax.tree.map(lambda m, x: b1 * m + (1 - b1) * x, state["m"], g)
        v = jax.tree.map(lambda v, x: b2 * v + (1 - b2) * x * x, state["v"], g)
        return updates, {"count": state["count"] + 1, "m": m, "v": v}

    tx = optax.GradientTransformation(init, update)
    if callable(learning_rate) and schedule_settings is None:
        return tx  # a schedule nothing describes: it trains, but a run folder with its checkpoint is not resumed
    rate = dict(schedule_settings) if callable(learning_rate) else {"lr": float(learning_rate)}
    return train.describe(tx, name="released_adam", **rate, grad_scale=grad_scale, b1=b1, b2=b2, eps=eps)


def output_bias(x_train, clip=BURDA["bias_clip"]) -> np.ndarray:
    """Logits of the training pixel means (images scaled to [0, 1]) clipped to ``clip``, float32 (D,)."""
    mean = np.clip(np.asarray(x_train, np.float64).reshape(len(x_train), -1).mean(0) / 255.0, *clip)
    return np.log(mean / (1 - mean)).astype(np.float32)


def protocol(config) -> dict:
    """Resolve the protocol: data, batch size, schedule, optimizer, epochs, evaluation settings.

    Returns a dict with ``x_train`` (uint8 (N, 784)), ``batch_size``, ``schedule`` (optax),
    ``optimizer``, ``epochs``, ``stages``, ``learning_rates``, ``boundaries`` (steps), ``k``,
    ``n_test``, ``output_bias`` ((784,) or None), ``shuffle`` (False for burda: the released code visits the
    minibatches in the data's order every epoch) and ``differences`` (how it differs from the paper).
    Nothing is trained here (the test of the protocol calls it).
    """
    if config.protocol not in ("burda", "cpu"):
        raise ValueError(f"protocol must be one of ['burda', 'cpu'], got {config.protocol!r}.")
    x_train = load_mnist("train")[0]
    if config.protocol == "burda":
        x_valid = load_mnist("valid")[0]
        x_train = np.concatenate([x_train, x_valid[: BURDA["n_train"] - len(x_train)]]).reshape(-1, 784)
        bs, stages, k, n_test = BURDA["batch_size"], config.burda_stages, BURDA["k"], BURDA["n_test"]
        rates = burda_learning_rates(BURDA["stages"])[:stages]
        schedule, epochs, boundaries = stage_schedule(rates, len(x_train) // bs)
        optimizer = released_adam(schedule, grad_scale=float(bs),
                                  schedule_settings=dict(schedule="stages", rates=rates, boundaries=boundaries))
        bias = output_bias(x_train)
        differences = list(BURDA_DIFFERENCES)
        if stages < BURDA["stages"]:
            differences.insert(0, f"shortened: only the first {stages} of the 8 stages ({epochs} of 3280 epochs)")
    else:
        x_train = x_train[: config.n_train].reshape(-1, 784)
        bs, stages, k, n_test = config.train.batch_size, config.train.stages, config.eval.k, config.eval.n_test
        rates = [config.train.lr * 10 ** (-i / 7) for i in range(stages)]
        schedule, epochs, boundaries = stage_schedule(rates, len(x_train) // bs)
        b1, b2, eps = 0.9, 0.999, config.train.adam_eps
        optimizer = train.describe(optax.adam(schedule, b1=b1, b2=b2, eps=eps), name="adam", b1=b1, b2=b2, eps=eps,
                                   schedule="stages", rates=rates, boundaries=boundaries)
        bias = None
        differences = [f"shortened: {len(x_train)} training images, {epochs} epochs in {stages} stages, minibatch {bs}, "
                       f"k = {k} on {n_test} test images; optax's Adam (beta1 0.9); decoder bias initialised to 0; "
                       "the images reshuffled every epoch (protocol=burda follows the released code)",
                       *BURDA_DIFFERENCES]
    return {"x_train": x_train, "batch_size": bs, "schedule": schedule, "optimizer": optimizer, "epochs": epochs,
            "stages": stages, "learning_rates": rates, "boundaries": boundaries, "k": k, "n_test": n_test,
            "output_bias": bias, "shuffle": config.protocol != "burda", "differences": differences}


def _show(ax, images, rows: int, cols: int, title: str):
    """Tile ``images (rows * cols, 784)`` and draw them dark on light."""
    plotting.show_images(ax, plotting.image_grid(images, rows, cols, (28, 28)), title, cmap="gray_r")


def run(config, run) -> dict:
    proto = protocol(config)
    ks = keys.streams(run.key, *STREAMS)
    x_test, y_test = load_mnist("test")
    x_train = proto["x_train"]  # uint8 on the device: 4x less memory, scaled in the loss
    test_probs = x_test.reshape(-1, 784).astype(np.float32) / 255.0
    x_test_bin = np.asarray(jax.random.bernoulli(ks["binarize_test"], test_probs)).astype(np.float32)

    cfg = vae.VAEConfig(image_shape=(28, 28, 1), latent_dim=config.model.latent_dim, hidden=tuple(config.model.hidden),
                        activation=config.model.activation, likelihood="bernoulli")
    params = vae.init(ks["init"], cfg)
    if proto["output_bias"] is not None:  # the decoder's last layer: logits of the training pixel means
        last = f"dense_{len(cfg.hidden)}"
        net = dict(params.decoder["net"])
        net[last] = dict(net[last], bias=jnp.asarray(proto["output_bias"], net[last]["bias"].dtype))
        params = params.replace(decoder=dict(params.decoder, net=net))
    objective = vae.Objective(config.objective.name, k=config.objective.k, binarize=True)
    loss = vae.loss_fn(objective)
    bs, epochs, opt = proto["batch_size"], proto["epochs"], proto["optimizer"]
    monitor = jnp.asarray(x_test_bin[: config.eval.n_monitor])
    elbo_fn = jax.jit(lambda p, key: {"test_elbo": jnp.mean(vae.elbo(p, monitor, key))})
    run.log(f"{vae.num_params(params)['total']} parameters; objective {objective.name} (k={objective.k}); "
            f"{epochs} epochs over {len(x_train)} images, protocol {config.protocol}")

    state, history = train.fit(loss, params, opt, x_train, key=ks["fit"], epochs=epochs, batch_size=bs,
                               run_dir=run.dir, eval_fn=elbo_fn, use_scan=config.train.use_scan, shuffle=proto["shuffle"],
                               progress=not run.quick, checkpoint_every=config.train.checkpoint_every, tensorboard=False)
    params = jax.block_until_ready(state.params)
    train_seconds = train.train_seconds(history)  # over every session of a resumed run (each epoch was logged live)

    # ---- test log-likelihood
    xt = x_test_bin[: proto["n_test"]]
    t0 = time.perf_counter()
    lp = np.asarray(vae.log_prob(params, xt, ks["eval"], k=proto["k"], batch_size=config.eval.batch_size))
    eval_seconds = time.perf_counter() - t0
    el = np.asarray(vae.elbo(params, xt, ks["elbo"]))
    metrics = {
        "test_nll_nats": float(-lp.mean()),
        "test_nll_sem": float(lp.std(ddof=1) / np.sqrt(len(lp))) if len(lp) > 1 else None,
        "test_nll_k": proto["k"],
        "test_n": len(xt),
        "test_elbo_nats": float(el.mean()),
        "train_seconds": train_seconds,  # wall clock of fit, compile included
        "compile_seconds": history[0].get("compile_time_s"),
        "eval_seconds": eval_seconds,
        "epochs": epochs,
        "stages": proto["stages"],
        "batch_size": bs,
        "learning_rates": proto["learning_rates"],
        "n_train": len(x_train),
        "protocol": config.protocol,
        "objective": objective.name,
        "objective_k": objective.k,
        "final_train_loss": history[-1]["loss"],
        "train_images_per_s": float(np.median([h["examples_per_s"] for h in history])),
        "reference_nll_burda": REFERENCE_NLL["elbo"] if objective.name == "elbo" else (
            REFERENCE_NLL["iwae"] if objective.k == 50 else None),
        "n_params": vae.num_params(params)["total"],
        "protocol_differences": proto["differences"],
    }
    run.log(f"test NLL {metrics['test_nll_nats']:.2f} nats (k={proto['k']}, {len(xt)} images, {eval_seconds:.1f} s); "
            f"test ELBO {metrics['test_elbo_nats']:.2f}; training {train_seconds:.1f} s")

    # ---- figures
    samples, _ = vae.sample(ks["sample"], params, 64)
    with run.figure("samples", 1, 1, figsize=(5, 5)) as (fig, ax):
        _show(ax, samples, 8, 8, "samples: E[x | z], z ~ N(0, I)")

    n_rec = 10
    rec = vae.reconstruct(params, xt[:n_rec])
    with run.figure("reconstructions", 1, 1, figsize=(7, 1.8)) as (fig, ax):
        _show(ax, np.concatenate([xt[:n_rec], np.asarray(rec)]), 2, n_rec,
              "binarised test digits (top) and E[x | z = mean(x)] (bottom)")

    # interpolations between test digits of different classes
    firsts = [int(np.flatnonzero(y_test[: proto["n_test"]] == d)[0]) if np.any(y_test[: proto["n_test"]] == d) else d
              for d in range(10)]
    pairs = [(firsts[a], firsts[b]) for a, b in ((0, 1), (2, 3), (4, 9), (7, 1), (5, 6))]
    i0, i1 = zip(*pairs)
    n_steps = 10
    with run.figure("interpolations", 1, 2, figsize=(11, 4)) as (fig, axes):
        for ax, method in zip(axes, ("linear", "slerp")):
            imgs, _ = vae.interpolate(params, x_test_bin[list(i0)], x_test_bin[list(i1)], n=n_steps, method=method)
            _show(ax, np.asarray(imgs).reshape(-1, 784), len(pairs), n_steps, f"{method} interpolation of z")

    # 2-D view of the 50-D latent means: PCA projection, coloured by digit
    n_lat = min(len(xt), 5000)
    mu = np.asarray(vae.encode(params, xt[:n_lat])[0])
    mu_c = mu - mu.mean(0)
    _, svals, vt = np.linalg.svd(mu_c, full_matrices=False)
    proj = mu_c @ vt[:2].T
    explained = float((svals[:2] ** 2).sum() / (svals**2).sum())
    with run.figure("latent_pca", 1, 1, figsize=(6, 5)) as (fig, ax):
        sc = ax.scatter(proj[:, 0], proj[:, 1], c=y_test[:n_lat], cmap="tab10", s=4, alpha=0.7)
        fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
        ax.set_xlabel("first principal component of E[z | x]")
        ax.set_ylabel("second principal component of E[z | x]")
        ax.set_title(f"posterior means of {n_lat} test digits, first two principal components\n"
                     f"(PCA of the {cfg.latent_dim}-D codes; {100 * explained:.0f}% of their variance)", fontsize=9)

    # latent arithmetic: a stroke-weight vector from ink amount. Tertiles are taken within each digit
    # class, so "thin" and "heavy" hold the same mix of classes and the class part of z cancels.
    ink = test_probs[:n_lat].sum(1)
    labels = np.ones(n_lat, int)
    for d in range(10):
        idx = np.flatnonzero(y_test[:n_lat] == d)
        if len(idx):
            lo, hi = np.quantile(ink[idx], [1 / 3, 2 / 3])
            labels[idx] = np.where(ink[idx] <= lo, 0, np.where(ink[idx] >= hi, 2, 1))
    v = vae.attribute_vector(params, xt[:n_lat], labels, 0, 2)
    alphas = np.linspace(-1.5, 1.5, 7)
    chosen = np.array([firsts[d] for d in (0, 2, 3, 4, 7, 8)])
    out = np.asarray(vae.apply_attribute(params, x_test_bin[chosen], v, alpha=alphas))  # (A, n, 784)
    with run.figure("latent_arithmetic", 1, 1, figsize=(7, 5)) as (fig, ax):
        _show(ax, out.transpose(1, 0, 2).reshape(-1, 784), len(chosen), len(alphas),
              "z + alpha * (mean z of heavy - mean z of thin strokes, per class), alpha = -1.5 .. 1.5")
    decoded_ink = out.sum(-1).mean(1)
    if config.latent2d.epochs:
        metrics.update(_latent2d(config, run, x_train, xt, y_test[: len(xt)], ks["latent2d"]))
    metrics.update(latent_pca_explained=explained, stroke_vector_norm=float(jnp.linalg.norm(v)),
                   arithmetic_ink_at_min_alpha=float(decoded_ink[0]), arithmetic_ink_at_max_alpha=float(decoded_ink[-1]))
    return metrics


def _latent2d(config, run, x_train, x_test, y_test, key) -> dict:
    """Train the same architecture with q = 2 (ELBO, Adam 1e-3) and draw its latent space and manifold."""
    from scipy import stats

    k_init, k_fit, k_elbo = keys.streams(key, "init", "fit", "elbo").values()
    cfg = vae.VAEConfig(image_shape=(28, 28, 1), latent_dim=2, hidden=tuple(config.model.hidden),
                        activation=config.model.activation)
    opt = train.optimizer("adam", config.train.lr, eps=config.train.adam_eps)
    state, hist2 = train.fit(vae.loss_fn("elbo", binarize=True), vae.init(k_init, cfg), opt, x_train, key=k_fit,
                             epochs=config.latent2d.epochs, batch_size=config.train.batch_size,
                             run_dir=run.dir / "train" / "latent2d", progress=not run.quick, tensorboard=False)
    p = state.params
    seconds = train.train_seconds(hist2)
    mu = np.asarray(vae.encode(p, x_test)[0])
    n = config.latent2d.grid
    q = stats.norm.ppf(np.linspace(0.03, 0.97, n))  # even steps in prior probability (Kingma & Welling)
    grid = vae.decode_mean(p, np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2).astype(np.float32))
    with run.figure("latent_2d", 1, 2, figsize=(13, 6)) as (fig, axes):
        sc = axes[0].scatter(mu[:, 0], mu[:, 1], c=y_test, cmap="tab10", s=4, alpha=0.7)
        fig.colorbar(sc, ax=axes[0], ticks=range(10), label="digit")
        axes[0].set_xlabel("E[z_1 | x]")
        axes[0].set_ylabel("E[z_2 | x]")
        axes[0].set_title(f"2-D latent VAE ({config.latent2d.epochs} epochs): posterior means of {len(mu)} test digits",
                          fontsize=9)
        plotting.show_latent_grid(axes[1], grid, q, q[::-1], (28, 28),
                                  f"its decoder means on a {n} x {n} grid of z (prior quantiles 3%..97%)", cmap="gray_r")
    el = float(np.mean(np.asarray(vae.elbo(p, x_test, k_elbo))))
    run.log(f"2-D latent VAE: test ELBO {el:.2f} nats after {config.latent2d.epochs} epochs ({seconds:.1f} s)")
    return {"latent2d_test_elbo_nats": el, "latent2d_train_seconds": seconds}
