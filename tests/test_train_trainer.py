"""The generalised loop, ``fit_trainer``: a trainer with two parameter sets and two optimizers (a
GAN's shape: k inner "critic" updates per step from one split batch), log periods in steps that
cross epoch boundaries, evaluation and checkpoints every N steps, the resume fingerprint
(optimizer, data, trainer settings), and divergence of the state."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.sharding import data_mesh
from jaxgen.train import (Checkpointer, LoopState, TrainingDiverged, describe, fit, fit_trainer, optimizer,
                          split_batch)
from jaxgen.train.trainer import data_fingerprint

N, D, BATCH = 96, 3, 24  # 4 steps per epoch


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(N, D)) + np.array([1.0, -1.0, 0.5])).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TwoPlayer:
    """A toy two-player game with a GAN's structure: a "critic" c fits the data mean by k inner SGD
    steps on k sub-batches, then a "generator" g moves towards c with noise drawn from the step key.
    Two parameter sets, two optax states, an EMA of g."""

    k: int = 2
    lr_c: float = 0.1
    lr_g: float = 0.1
    ema: float = 0.9

    def _opts(self):
        return optax.sgd(self.lr_c), optax.adam(self.lr_g)

    def init(self, key, batch):
        c = jnp.zeros(batch.shape[1])
        g = jax.random.normal(key, (batch.shape[1],))
        oc, og = self._opts()
        return {"c": c, "g": g, "oc": oc.init(c), "og": og.init(g), "ema": g}

    def update(self, state, batch, key, step):
        oc, og = self._opts()
        sub = split_batch(batch, self.k)

        def critic_step(carry, x):
            c, s = carry
            loss, grad = jax.value_and_grad(lambda c: jnp.mean((x - c) ** 2))(c)
            upd, s = oc.update(grad, s, c)
            return (optax.apply_updates(c, upd), s), loss

        (c, s_c), c_losses = jax.lax.scan(critic_step, (state["c"], state["oc"]), sub)
        noise = 0.01 * jax.random.normal(key, state["g"].shape)
        g_loss, grad = jax.value_and_grad(lambda g: jnp.sum((g + noise - c) ** 2))(state["g"])
        upd, s_g = og.update(grad, state["og"], state["g"])
        g = optax.apply_updates(state["g"], upd)
        ema = self.ema * state["ema"] + (1 - self.ema) * g
        metrics = {"c_loss": jnp.mean(c_losses), "g_loss": g_loss, "noise": noise[0],
                   "step_seen": step.astype(jnp.float32)}
        return {"c": c, "g": g, "oc": s_c, "og": s_g, "ema": ema}, metrics

    def fingerprint(self):
        return dataclasses.asdict(self)


def tiny_gan():
    """The real GAN trainer, small: WGAN-GP, packing 2, 2 critic steps per update, an EMA."""
    from jaxgen.models.gan import GANTrainer

    return GANTrainer(objective="wgan_gp", data_shape=(D,), g_hidden=(8,), d_hidden=(8,), pack=2, n_critic=2,
                      g_lr=1e-3, d_lr=1e-3, betas=(0.0, 0.9), ema_decay=0.9)


TRAINERS = {"two_player": TwoPlayer, "gan": tiny_gan}


def run(data, **kw):
    settings = dict(key=jax.random.key(3), steps=10, batch_size=BATCH, log_every=5, progress=False) | kw
    return fit_trainer(kw.pop("trainer", TwoPlayer()), data, **{k: v for k, v in settings.items() if k != "trainer"})


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_two_player_trainer_learns_and_counts_inner_updates(data):
    state, history = run(data, steps=40, log_every=8)
    mean = data.mean(0)
    np.testing.assert_allclose(np.asarray(state.model["c"]), mean, atol=0.15)
    np.testing.assert_allclose(np.asarray(state.model["g"]), mean, atol=0.3)  # it chases the noisy c
    assert int(state.step) == 40 and [r["step"] for r in history] == [8, 16, 24, 32, 40]
    # k = 2 critic updates and one generator update per step: Adam's count is the generator's
    assert int(state.model["og"][0].count) == 40
    # periods of 8 steps in epochs of 4: epochs 2, 4, ...; the step the update saw, averaged per period
    assert [r["epoch"] for r in history] == [2, 4, 6, 8, 10]
    assert [r["step_seen"] for r in history] == [3.5, 11.5, 19.5, 27.5, 35.5]


def test_split_batch_keeps_each_devices_rows_on_it():
    x = jnp.arange(24).reshape(24, 1)
    sub = split_batch(x, 3)
    assert sub.shape == (3, 8, 1)
    np.testing.assert_array_equal(np.asarray(sub[1, :, 0]), np.arange(1, 24, 3))  # row r -> sub-batch r % 3
    # on 4 devices each holds 6 consecutive rows; each sub-batch row comes from the same device's block
    mesh = data_mesh()
    xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    sub = jax.jit(lambda a: split_batch(a, 3))(xs)
    assert sub.sharding.spec[:2] == (None, "data")
    with pytest.raises(ValueError, match="cannot be split into 5 equal sub-batches"):
        split_batch(x, 5)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_log_periods_do_not_change_the_numbers(data, optimized, trainer):
    """Periods of 3 steps (crossing epochs of 4) == 1 period per epoch == per-step path, bitwise
    up to float round-off; with XLA's optimisations on too (``optimized``); for the GAN trainer too."""
    make = TRAINERS[trainer]
    ref_state, ref_hist = run(data, steps=12, log_every=4, trainer=make())
    for kw in (dict(log_every=3), dict(log_every=6, use_scan=False)):
        state, hist = run(data, steps=12, trainer=make(), **kw)
        for a, b in zip(leaves(state.model), leaves(ref_state.model)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert hist[-1]["step"] == 12
    if trainer != "two_player":
        return
    assert [r["noise"] for r in run(data, steps=12, log_every=1)[1]][4:8] == pytest.approx(
        [float(0.01 * jax.random.normal(jax.random.fold_in(_state_key(3), t), (D,))[0]) for t in range(4, 8)], rel=1e-6)


def _state_key(seed):
    from jaxgen import keys

    return keys.stream(jax.random.key(seed), "state")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_one_device_equals_four_devices(data, optimized, trainer):
    make = TRAINERS[trainer]
    state4, hist4 = run(data, steps=8, log_every=4, trainer=make())
    state1, hist1 = run(data, steps=8, log_every=4, mesh=data_mesh(jax.devices()[:1]), trainer=make())
    assert jax.tree.leaves(state4.model)[0].sharding.mesh.size == 4
    assert jax.tree.leaves(state1.model)[0].sharding.mesh.size == 1
    for a, b in zip(leaves(state4.model), leaves(state1.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    name = "c_loss" if trainer == "two_player" else "d_loss"
    np.testing.assert_allclose([r[name] for r in hist4], [r[name] for r in hist1], rtol=1e-5, atol=1e-6)


def test_eval_and_checkpoints_every_n_steps_and_exact_resume(data, tmp_path):
    """Evaluation every 4 steps, checkpoints every 8, inside epochs of 4 steps x 24 examples; a run
    stopped at step 8 and resumed to 16 equals the uninterrupted run bitwise (state and records)."""
    def eval_fn(model, key):
        return {"ema_norm": jnp.linalg.norm(model["ema"]), "draw": jax.random.uniform(key)}

    kw = dict(steps=16, log_every=2, eval_every=4, checkpoint_every=8, eval_fn=eval_fn)
    ref_state, ref_hist = run(data, run_dir=tmp_path / "ref", **kw)
    assert ["eval/ema_norm" in r for r in ref_hist] == [False, True] * 4
    assert sorted(int(p.name) for p in (tmp_path / "ref" / "checkpoints").iterdir()) == [8, 16]
    run(data, run_dir=tmp_path / "resumed", **(kw | dict(steps=8)))
    state, hist = run(data, run_dir=tmp_path / "resumed", **kw)
    assert "compile_time_s" in hist[4]  # steps 9.. ran in the second call
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.model), leaves(ref_state.model)))
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in h]  # noqa: E731
    assert strip(hist) == strip(ref_hist)
    lines = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert strip(lines) == strip(ref_hist)


def test_resume_refuses_other_optimizer_data_or_trainer_settings(data, tmp_path):
    """Before: a run restarted in the same folder with another learning rate or another data set of
    the same size resumed silently."""
    loss = describe(lambda p, b, k: (jnp.mean((b - p["m"]) ** 2), {}), name="mean_squares")
    params = {"m": jnp.zeros(D)}
    kw = dict(key=jax.random.key(0), epochs=2, batch_size=BATCH, progress=False, run_dir=tmp_path / "fit")
    fit(loss, params, optimizer("adam", 1e-2), data, **kw)
    with pytest.raises(ValueError, match=r"other settings \(trainer\.optimizer\.lr was 0\.01, now 0\.02\)"):
        fit(loss, params, optimizer("adam", 2e-2), data, **(kw | dict(epochs=3)))
    with pytest.raises(ValueError, match=r"other settings \(trainer\.optimizer\.b1 was 0\.9, now 0\.5\)"):
        fit(loss, params, optimizer("adam", 1e-2, b1=0.5), data, **(kw | dict(epochs=3)))
    other = data.copy()
    other[5, 0] += 1e-3
    with pytest.raises(ValueError, match=r"other settings \(data was '96x3:float32:[0-9a-f]{16}', now"):
        fit(loss, params, optimizer("adam", 1e-2), other, **(kw | dict(epochs=3)))
    state, hist = fit(loss, params, optimizer("adam", 1e-2), data, **(kw | dict(epochs=3)))  # the same run: resumes
    assert int(state.step) == 12 and "compile_time_s" in hist[2] and "compile_time_s" not in hist[1]
    run(data, run_dir=tmp_path / "gan", steps=4, log_every=2)
    with pytest.raises(ValueError, match=r"other settings \(trainer\.lr_g was 0\.1, now 0\.01\)"):
        run(data, run_dir=tmp_path / "gan", steps=8, log_every=2, trainer=TwoPlayer(lr_g=0.01))
    with pytest.raises(ValueError, match="already holds 4 steps, more than steps=2"):
        run(data, run_dir=tmp_path / "gan", steps=2, log_every=2)


def test_data_fingerprint():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    h = data_fingerprint([x])
    assert h == data_fingerprint([jnp.asarray(x)])  # computed where the data live, same answer
    assert h != data_fingerprint([x[::-1].copy()])  # same values, other order
    assert data_fingerprint([x.astype(np.uint8)]) != data_fingerprint([x.astype(np.int32)])


def test_state_divergence_names_the_period_and_keeps_the_checkpoint(data, tmp_path):
    """The metrics stay finite while the EMA (not a metric) overflows: the whole state is checked."""

    @dataclasses.dataclass(frozen=True)
    class Exploding(TwoPlayer):
        def update(self, state, batch, key, step):
            state, metrics = super().update(state, batch, key, step)
            return state | {"ema": jnp.where(step >= 5, jnp.inf, state["ema"])}, metrics

    with pytest.raises(TrainingDiverged, match=r"the training state became non-finite in steps 5-6 \(epoch 2\) "
                                               r"while the metrics stayed finite.*checkpoints/4 \(step 4\)") as err:
        run(data, trainer=Exploding(), steps=10, log_every=2, run_dir=tmp_path)
    assert (err.value.step, err.value.epoch, err.value.checkpoint_step) == (6, 2, 4)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [2, 4]
    ckpt.close()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=None), "exactly one of them"),
        (dict(epochs=2, steps=4), "exactly one of them"),
        (dict(log_every=3, checkpoint_every=4), "checkpoint_every=4 must be a multiple of log_every=3"),
        (dict(eval_every=0), "eval_every must be an integer >= 1"),
    ],
)
def test_bad_settings(kwargs, match):
    from jaxgen.train import TrainConfig

    with pytest.raises(ValueError, match=match):
        TrainConfig(**(dict(batch_size=BATCH, steps=4) | kwargs))


def test_bad_trainers_fail_before_training(data):
    kw = dict(key=jax.random.key(0), steps=2, batch_size=BATCH, progress=False)
    with pytest.raises(ValueError, match="trainer must have init.*object has no init"):
        fit_trainer(object(), data, **kw)
    with pytest.raises(ValueError, match="a batch of 24 examples cannot be split into 5 equal sub-batches"):
        fit_trainer(TwoPlayer(k=5), data, **kw)

    @dataclasses.dataclass(frozen=True)
    class Wide(TwoPlayer):
        def init(self, key, batch):
            return super().init(key, jnp.zeros((1, D + 1)))

    with pytest.raises(ValueError, match=r"Wide.update fails on a batch of train_data \(per-example shape\(s\) \(3,\)\)"):
        fit_trainer(Wide(), data, **kw)
