"""The resume fingerprint of ``fit``: described losses and optimizers (issue 16, point 1).

Before, the optimizer entered the fingerprint only through three probe gradients and the loss not at
all, so a run continued silently in a folder holding a run with another beta, objective, warm-up,
prior, a cosine schedule of another length, a warm-up or added clipping. Each of those is refused
here (the message names the setting), undescribed losses and optimizers are refused, and an
identical rerun resumes and ends bitwise where an uninterrupted run ends."""
import dataclasses
import json
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import runner, train
from jaxgen.models import pixelcnn, pixelvae, vae
from jaxgen.train.described import static_settings

N, D, BATCH = 16, 4, 8
COSINE = dict(schedule="cosine", decay_steps=1000)


def tiny_vae(**config):
    return vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(D, 1, 1), latent_dim=2, hidden=(4,), **config))


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(size=(N, D)).astype(np.float32)


def fit(run_dir, x, loss=None, params=None, opt=None, steps=2, **kw):
    """The reference run (ELBO, beta 1, Adam 1e-3 with a cosine decay over 1000 steps), or it with one change."""
    loss = vae.loss_fn("elbo", beta=1) if loss is None else loss
    params = tiny_vae() if params is None else params
    opt = train.optimizer("adam", 1e-3, **COSINE) if opt is None else opt
    return train.fit(loss, params, opt, x, key=jax.random.key(1), steps=steps, batch_size=BATCH, log_every=1,
                     progress=False, run_dir=run_dir, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, x):
    """A run folder holding the checkpoint of step 2 of the reference run."""
    run_dir = tmp_path_factory.mktemp("reference")
    fit(run_dir, x)
    return run_dir


REFUSED = {  # change -> (fit arguments, the differences the message must name)
    "beta 8 and binarize": (dict(loss=vae.loss_fn("elbo", beta=8, binarize=True)),
                            r"trainer\.loss\.beta was 1, now 8; trainer\.loss\.binarize was False, now True\)"),
    "objective": (dict(loss=vae.loss_fn("iwae")), r"trainer\.loss\.objective was 'elbo', now 'iwae'\)"),
    "k": (dict(loss=vae.loss_fn("elbo", k=5)), r"trainer\.loss\.k was 1, now 5\)"),
    "warm-up": (dict(loss=vae.loss_fn("elbo", warmup_steps=10)), r"trainer\.loss\.warmup_steps was 0, now 10\)"),
    "prior": (dict(params=tiny_vae(prior="mog")), r"trainer\.model\.config\.prior was 'normal', now 'mog'\)"),
    # the same arrays and shapes: only the static config tells them apart
    "likelihood": (dict(params=tiny_vae(likelihood="gaussian", variance="fixed")),
                   r"trainer\.model\.config\.likelihood was 'bernoulli', now 'gaussian'; "
                   r"trainer\.model\.config\.variance was 'learned', now 'fixed'\)"),
    "cosine length": (dict(opt=train.optimizer("adam", 1e-3, schedule="cosine", decay_steps=60_000)),
                      r"trainer\.optimizer\.decay_steps was 1000, now 60000\)"),
    "warm-up cosine": (dict(opt=train.optimizer("adam", 1e-3, schedule="warmup_cosine", warmup_steps=100,
                                                decay_steps=1000)),
                       r"trainer\.optimizer\.schedule was 'cosine', now 'warmup_cosine'; "
                       r"trainer\.optimizer\.warmup_steps was not recorded, now 100\)"),
    "clipping": (dict(opt=train.optimizer("adam", 1e-3, clip_norm=1.0, **COSINE)),
                 r"trainer\.optimizer\.clip_norm was None, now 1\.0\)"),
    "adam b2": (dict(opt=train.optimizer("adam", 1e-3, b2=0.99, **COSINE)),
                r"trainer\.optimizer\.b2 was 0\.999, now 0\.99\)"),
    "adam eps": (dict(opt=train.optimizer("adam", 1e-3, eps=1e-4, **COSINE)),
                 r"trainer\.optimizer\.eps was 1e-08, now 0\.0001\)"),
}
UNDESCRIBED_OPT = (r"optimizer has no description .*jaxgen\.train\.optimizer\(\.\.\.\) or describe it with "
                   r"jaxgen\.train\.describe\(optimizer")
UNDESCRIBED = {
    # the reference optimizer itself, built with optax: its settings cannot be read back
    "optax optimizer": (dict(opt=optax.adam(optax.cosine_decay_schedule(1e-3, 1000))), UNDESCRIBED_OPT),
    "clip_by_global_norm added by hand": (
        dict(opt=optax.chain(optax.clip_by_global_norm(1.0), train.optimizer("adam", 1e-3, **COSINE))), UNDESCRIBED_OPT),
    "hand-written loss": (dict(loss=lambda p, b, k: vae.loss_fn("elbo")(p, b, k)),
                          r"loss function has no description .*describe it with jaxgen\.train\.describe\(loss_fn"),
}


@pytest.mark.parametrize("change", list(REFUSED))
def test_another_loss_model_or_optimizer_setting_is_refused_by_name(folder, x, change):
    before = (folder / "metrics.jsonl").read_text()
    args, message = REFUSED[change]
    with pytest.raises(ValueError, match=r"holds a run with other settings \(" + message):
        fit(folder, x, steps=4, **args)
    assert (folder / "metrics.jsonl").read_text() == before  # refused before touching the folder


@pytest.mark.parametrize("change", list(UNDESCRIBED))
def test_undescribed_loss_or_optimizer_is_refused_with_the_fix(folder, x, change):
    args, message = UNDESCRIBED[change]
    with pytest.raises(ValueError, match=r"holds a checkpoint \(step 2\), but this run's settings cannot be compared "
                                         r"with it: The " + message):
        fit(folder, x, steps=4, **args)


def test_identical_rerun_resumes_and_ends_where_an_uninterrupted_run_ends(folder, x):
    # the reference: uninterrupted, with the same optimizer built by optax (the same numbers; no run
    # folder, so no warning that it could not be resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref_state, ref_history = fit(None, x, steps=4, opt=optax.adam(optax.cosine_decay_schedule(1e-3, 1000)))
    # built again from scratch (new loss and optimizer objects, another 1.0 for beta): the same settings
    state, history = fit(folder, x, steps=4, loss=vae.loss_fn("elbo", beta=1.0), opt=train.optimizer(
        "adam", lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, schedule="cosine", decay_steps=1000, final_fraction=0.0))
    assert "compile_time_s" in history[2] and "compile_time_s" not in history[1]  # steps 3-4 ran in this call
    ours, ref = (jax.tree.leaves((s.params, s.opt_state)) for s in (state, ref_state))
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    timing = set(train.TIMING_KEYS)
    assert [{k: v for k, v in r.items() if k not in timing} for r in history] == \
           [{k: v for k, v in r.items() if k not in timing} for r in ref_history]


def test_undescribed_run_warns_and_its_checkpoint_is_never_resumed(x, tmp_path):
    with pytest.warns(UserWarning, match=r"cannot be resumed: The optimizer has no description"):
        fit(tmp_path, x, steps=1, opt=optax.adam(1e-3))
    with pytest.raises(ValueError, match=r"holds a checkpoint of a run whose loss, optimizer or trainer had no "
                                         r"description"):
        fit(tmp_path, x, steps=2)  # described now, but the checkpoint's settings are unknown


def test_trainer_without_fingerprint_is_not_resumed(folder, x):
    trainer = train.LossTrainer(vae.loss_fn("elbo"), tiny_vae(), train.optimizer("adam", 1e-3, **COSINE))

    class Bare:  # the trainer contract without fingerprint()
        init, update = trainer.init, trainer.update

    with pytest.raises(ValueError, match=r"Bare has no fingerprint\(\) method"):
        train.fit_trainer(Bare(), x, key=jax.random.key(1), steps=4, batch_size=BATCH, log_every=1, progress=False,
                          run_dir=folder)


def test_model_trainers_fingerprint_every_field():
    """The GAN's, VAE-GAN's and FactorVAE's trainers are dataclasses of every setting that changes
    their numbers (learning rates, betas, schedules, penalties, sizes): each field is in the
    fingerprint, JSON-able, and a changed one shows."""
    from jaxgen.models.gan import GANTrainer
    from jaxgen.models.vaegan import VAEGANTrainer

    for trainer in (GANTrainer(), VAEGANTrainer(), vae.FactorVAETrainer()):
        fp = trainer.fingerprint()
        assert set(fp) == {f.name for f in dataclasses.fields(trainer)}, type(trainer).__name__
        assert json.loads(json.dumps(fp)) == runner.to_jsonable(fp)
    assert GANTrainer(decay_steps=10).fingerprint() != GANTrainer(decay_steps=20).fingerprint()
    assert vae.FactorVAETrainer(d_betas=(0.5, 0.99)).fingerprint()["d_betas"] == [0.5, 0.99]


def test_loss_builders_describe_their_settings():
    assert train.settings_of(vae.loss_fn("iwae", k=5, binarize=True)) == {
        "builder": "vae.loss_fn", "objective": "iwae", "k": 5, "beta": 1.0, "warmup_steps": 0, "binarize": True,
        "dataset_size": None}
    assert train.settings_of(pixelcnn.loss_fn(binarize=True)) == {"builder": "pixelcnn.loss_fn", "binarize": True}
    assert train.settings_of(pixelvae.loss_fn()) == {"builder": "pixelvae.loss_fn", "binarize": True}
    assert static_settings(tiny_vae(prior="mog"))["config"]["prior"] == "mog"
    assert static_settings({"w": jnp.ones(2), "layers": [{"b": jnp.zeros(1)}]}) == {}


def _learning_rates(opt, steps):
    """The rate of each step: SGD's update of a gradient of 1 is -lr(t)."""
    w = jnp.zeros(())
    state, out = opt.init(w), []
    for _ in range(steps):
        u, state = opt.update(jnp.ones(()), state, w)
        out.append(-float(u))
    return np.array(out)


def test_optimizer_schedules_follow_their_closed_forms():
    lr, f, T, W = 0.5, 0.1, 10, 4
    t = np.arange(14)
    cosine = lambda s, n: lr * (f + (1 - f) * 0.5 * (1 + np.cos(np.pi * np.minimum(s, n) / n)))  # noqa: E731
    expected = {
        "constant": np.full(14, lr),
        "cosine": cosine(t, T),
        "linear": lr * (1 - (1 - f) * np.minimum(t, T) / T),
        "warmup_cosine": np.where(t < W, lr * t / W, cosine(t - W, T - W)),  # decay_steps counts the warm-up
    }
    for schedule, want in expected.items():
        kw = {} if schedule == "constant" else dict(decay_steps=T, final_fraction=f)
        kw |= dict(warmup_steps=W) if schedule == "warmup_cosine" else {}
        got = _learning_rates(train.optimizer("sgd", lr, schedule=schedule, **kw), len(t))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=schedule)


def test_optimizer_is_optax_bitwise_and_clips():
    w = {"a": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
    ours = train.optimizer("adam", 2e-3, b2=0.99, schedule="cosine", decay_steps=50, final_fraction=0.05)
    theirs = optax.adam(optax.cosine_decay_schedule(2e-3, 50, alpha=0.05), b2=0.99)
    s1, s2 = ours.init(w), theirs.init(w)
    for i in range(3):
        g = jax.tree.map(lambda v: jnp.sin(v * (i + 2.0)), w)
        (u1, s1), (u2, s2) = ours.update(g, s1, w), theirs.update(g, s2, w)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    clipped = train.optimizer("sgd", 1.0, clip_norm=2.0)
    u, _ = clipped.update({"g": jnp.array([30.0, 40.0])}, clipped.init({"g": jnp.zeros(2)}))
    np.testing.assert_allclose(np.asarray(u["g"]), [-1.2, -1.6], rtol=1e-6)  # norm 50 clipped to 2
    assert train.settings_of(train.optimizer("adamw", 1e-3)) == {
        "name": "adamw", "lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4,
        "schedule": "constant", "clip_norm": None}


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="lamb"), r"name must be one of \['adam', 'adamw', 'sgd'\]"),
    (dict(schedule="cosine"), "schedule='cosine' needs decay_steps"),
    (dict(decay_steps=100), r"decay_steps does not apply to name='adam' with schedule='constant'"),
    (dict(name="sgd", b2=0.9), "b2 does not apply to name='sgd'"),
    (dict(weight_decay=0.1), "weight_decay does not apply to name='adam'"),
    (dict(b1=1.0), r"b1 must be in \[0, 1\)"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(schedule="warmup_cosine", warmup_steps=10, decay_steps=10), r"warmup_steps \(10\) must be < decay_steps"),
    (dict(schedule="cosine", decay_steps=10, final_fraction=1.5), r"final_fraction must be in \[0, 1\]"),
    (dict(clip_norm=-1.0), "clip_norm must be > 0"),
])
def test_optimizer_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train.optimizer(**kwargs)


def test_describe_keeps_the_loss_and_refuses_what_cannot_be_compared():
    def loss(params, batch, key, step=None):
        return params * step, {}

    loss.check_train_data = lambda params, data: None
    described = train.describe(loss, name="scaled", scale=np.float32(2.0), sizes=(3, 4))
    assert train.settings_of(described) == {"name": "scaled", "scale": 2.0, "sizes": [3, 4]}
    assert train.settings_of(loss) is None  # the original is not modified
    assert described(2.0, None, None, step=3) == (6.0, {})
    assert described.check_train_data is loss.check_train_data
    assert train.trainer.accepts_step(described)
    tx = train.describe(optax.sgd(0.1), name="sgd", lr=0.1)
    assert isinstance(tx, optax.GradientTransformation) and train.settings_of(tx) == {"name": "sgd", "lr": 0.1}
    assert train.settings_of(optax.sgd(0.1)) is None
    with pytest.raises(ValueError, match=r"setting schedule is a function; .*schedule='cosine', decay_steps=1000"):
        train.describe(optax.sgd(0.1), schedule=optax.constant_schedule(0.1))
    with pytest.raises(ValueError, match="setting lr must be finite"):
        train.describe(optax.sgd(0.1), lr=math.inf)
    with pytest.raises(ValueError, match="takes an optax optimizer or a loss function"):
        train.describe(3.0, lr=0.1)
