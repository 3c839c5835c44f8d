"""The training loop on tiny regression problems: convergence, scan == per-step, 1 == 4 devices,
determinism, divergence, logs and bad input."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxgen.sharding import data_mesh
from jaxgen.train import (TIMING_KEYS, Checkpointer, LoopState, ParamsState, TrainConfig, TrainingDiverged,
                          create_train_state, fit, make_train_step)

N, D, BATCH = 200, 3, 20
W_TRUE = np.array([1.0, -2.0, 0.5])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x @ W_TRUE + 0.3 + 0.1 * rng.normal(size=N)).astype(np.float32)
    return x, y


def init_params(dtype=jnp.float32):
    return {"w": jnp.zeros(D, dtype), "b": jnp.zeros((), dtype)}


def mse_loss(p, batch, key):
    x, y = batch
    r = x @ p["w"] + p["b"] - y
    return jnp.mean(r**2), {"mae": jnp.mean(jnp.abs(r))}


def noisy_loss(p, batch, key):
    """Uses the step key (input noise), so the result depends on the key handling."""
    x, y = batch
    x = x + 0.3 * jax.random.normal(key, x.shape, x.dtype)
    r = x @ p["w"] + p["b"] - y
    return jnp.mean(r**2), {"mae": jnp.mean(jnp.abs(r))}


def leaves(params):
    return [np.asarray(v) for v in jax.tree.leaves(params)]


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


_NOISY_RUNS = {}


def noisy_fit(data, **kwargs):
    return fit(noisy_loss, init_params(), optax.adam(0.05), data, key=jax.random.key(3), epochs=3,
               batch_size=BATCH, progress=False, **kwargs)


@pytest.fixture
def noisy_run(data):
    """3 epochs of the noisy problem on the 4 devices with the scan path, compiled with the current
    XLA setting (shared by several tests: one run per setting)."""
    setting = bool(jax.config.read("jax_disable_most_optimizations"))
    if setting not in _NOISY_RUNS:
        _NOISY_RUNS[setting] = noisy_fit(data)
    return _NOISY_RUNS[setting]


def test_fit_reaches_the_least_squares_solution(data):
    x, y = data
    params = init_params()
    opt = optax.adam(optax.cosine_decay_schedule(0.1, 40 * (N // BATCH), alpha=0.01))
    state, history = fit(mse_loss, params, opt, data, key=jax.random.key(0), epochs=40, batch_size=BATCH, progress=False)
    design = np.c_[x, np.ones(N)]
    coef = np.linalg.lstsq(design.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(state.params["w"]), coef[:D], atol=5e-3)
    np.testing.assert_allclose(float(state.params["b"]), coef[D], atol=5e-3)
    losses = [r["loss"] for r in history]
    assert losses[-1] < losses[0] / 20
    best = np.mean((design @ coef - y) ** 2)
    assert losses[-1] == pytest.approx(best, rel=0.05)
    assert int(state.step) == 40 * (N // BATCH) and [r["step"] for r in history][-1] == int(state.step)
    # the caller's params are untouched (the loop donates a copy)
    assert np.all(np.asarray(params["w"]) == 0)


def test_scan_path_equals_per_step_path(data, optimized, noisy_run):
    """With the fast compile setting and with XLA's optimisations on (``optimized``)."""
    assert jax.config.read("jax_disable_most_optimizations") is (not optimized)
    state_scan, hist_scan = noisy_run
    state_step, hist_step = noisy_fit(data, use_scan=False)
    for a, b in zip(leaves(state_scan.params), leaves(state_step.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([r["loss"] for r in hist_scan], [r["loss"] for r in hist_step], rtol=1e-6)
    assert int(state_step.step) == int(state_scan.step) == 3 * (N // BATCH)


def test_one_device_equals_four_devices(data, optimized, noisy_run):
    """With the fast compile setting and with XLA's optimisations on (``optimized``)."""
    assert len(jax.devices()) == 4
    state4, hist4 = noisy_run
    assert state4.params["w"].sharding.mesh.size == 4
    state1, hist1 = noisy_fit(data, mesh=data_mesh(jax.devices()[:1]))
    assert state1.params["w"].sharding.mesh.size == 1
    for a, b in zip(leaves(state4.params), leaves(state1.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in hist4], [r["loss"] for r in hist1], rtol=1e-5)


def test_same_key_same_numbers_other_key_other_numbers(data, noisy_run):
    state_a, hist_a = noisy_run
    state_b, hist_b = fit(noisy_loss, init_params(), optax.adam(0.05), data, key=jax.random.key(3), epochs=3,
                          batch_size=BATCH, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state_a.params), leaves(state_b.params)))
    assert strip_timing(hist_a) == strip_timing(hist_b)
    # raw PRNGKey data of another seed: accepted, and the numbers change
    state_c, _ = fit(noisy_loss, init_params(), optax.adam(0.05), data, key=jax.random.PRNGKey(4), epochs=3,
                     batch_size=BATCH, progress=False)
    assert not np.allclose(np.asarray(state_a.params["w"]), np.asarray(state_c.params["w"]))


def test_train_step_uses_fold_in_of_the_step(data):
    """One hand-driven step equals the gradient step computed independently with fold_in(key, 0)."""
    x, y = data
    key = jax.random.key(5)
    state = create_train_state(key, init_params(), optax.sgd(0.1))
    new_state, metrics = jax.jit(make_train_step(noisy_loss, optax.sgd(0.1)))(state, (x[:BATCH], y[:BATCH]))
    step_key = jax.random.fold_in(key, 0)
    (loss, _), grads = jax.value_and_grad(noisy_loss, has_aux=True)(init_params(), (x[:BATCH], y[:BATCH]), step_key)
    np.testing.assert_allclose(np.asarray(new_state.params["w"]), -0.1 * np.asarray(grads["w"]), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    assert int(new_state.step) == 1


def _draw_loss(p, batch, key):
    """mse plus, as metrics, a uniform draw from the step key and a code of the batch's order."""
    x, y, idx = batch
    r = x @ p["w"] + p["b"] - y
    order = jnp.sum(idx.astype(jnp.float32) * jnp.arange(1, idx.shape[0] + 1, dtype=jnp.float32))
    return jnp.mean(r**2), {"draw": jax.random.uniform(key), "order": order, "first": idx[0].astype(jnp.float32)}


@pytest.mark.parametrize("use_scan", [True, False])
def test_step_keys_and_epoch_orders_are_fresh(data, use_scan):
    """Catches a step key stuck at ``fold_in(rng, 0)`` and a shuffle that repeats every epoch.

    One step per epoch (batch = all N examples), so each epoch's metrics are one step's: step t draws
    from ``fold_in(stream(key, "state"), t)`` and epoch e sees the permutation of
    ``fold_in(stream(key, "shuffle"), e)``; all differ from each other.
    """
    from jaxgen import keys
    from jaxgen.train.step import epoch_permutation

    x, y = data
    key, epochs = jax.random.key(11), 4
    _, history = fit(_draw_loss, init_params(), optax.sgd(0.01), (x, y, np.arange(N, dtype=np.int32)), key=key,
                     epochs=epochs, batch_size=N, progress=False, use_scan=use_scan)
    draws = [r["draw"] for r in history]
    orders = [r["order"] for r in history]
    assert len(set(draws)) == epochs, f"the step key repeats: draws {draws}"
    assert len(set(orders)) == epochs, f"the epoch order repeats: {orders}"
    state_key, shuffle_key = keys.stream(key, "state"), keys.stream(key, "shuffle")
    expected_draws = [float(jax.random.uniform(jax.random.fold_in(state_key, t))) for t in range(epochs)]
    np.testing.assert_array_equal(np.float32(draws), np.float32(expected_draws))
    perms = [np.asarray(epoch_permutation(jax.random.fold_in(shuffle_key, e), N, 1, N))[0] for e in range(epochs)]
    assert [r["first"] for r in history] == [float(p[0]) for p in perms]
    assert orders == [float(np.sum(p * np.arange(1, N + 1))) for p in perms]


@pytest.mark.parametrize("use_scan", [True, False])
def test_without_shuffle_every_epoch_visits_the_data_in_order(data, use_scan):
    x, y = data
    _, history = fit(_draw_loss, init_params(), optax.sgd(0.01), (x, y, np.arange(N, dtype=np.int32)),
                     key=jax.random.key(11), epochs=2, batch_size=N, progress=False, use_scan=use_scan, shuffle=False)
    in_order = float(np.sum(np.arange(N) * np.arange(1, N + 1)))
    assert [(r["first"], r["order"]) for r in history] == [(0.0, in_order)] * 2
    assert history[0]["draw"] != history[1]["draw"]  # the step keys still move


def test_consecutive_steps_use_different_keys(data):
    """Two steps of the real train_step: the second step's key and draws differ from the first's."""
    x, y = data
    state = create_train_state(jax.random.key(5), init_params(), optax.sgd(0.0))
    step = jax.jit(make_train_step(_draw_loss, optax.sgd(0.0)))
    batch = (x[:BATCH], y[:BATCH], np.arange(BATCH, dtype=np.int32))
    state, m1 = step(state, batch)
    state, m2 = step(state, batch)
    assert float(m1["draw"]) != float(m2["draw"])
    assert float(m2["draw"]) == float(jax.random.uniform(jax.random.fold_in(jax.random.key(5), 1)))


def test_loss_that_takes_the_step_gets_the_global_step(data):
    """Schedules inside the loss (KL warm-up) see the global step: epoch e averages steps e*n .. e*n+n-1."""

    def loss_with_step(p, batch, key, step):
        loss, metrics = mse_loss(p, batch, key)
        return loss, {**metrics, "step_seen": step.astype(jnp.float32)}

    n = N // BATCH
    _, history = fit(loss_with_step, init_params(), optax.sgd(0.01), data, key=jax.random.key(0), epochs=2,
                     batch_size=BATCH, progress=False)
    assert [r["step_seen"] for r in history] == [(n - 1) / 2, n + (n - 1) / 2]


def test_float64_end_to_end(data, x64):
    x, y = data
    state, history = fit(mse_loss, init_params(jnp.float64), optax.adam(0.05), (x.astype(np.float64), y.astype(np.float64)),
                         key=jax.random.key(0), epochs=2, batch_size=BATCH, progress=False)
    assert state.params["w"].dtype == jnp.float64
    assert history[-1]["loss"] < history[0]["loss"]


def test_divergence_names_the_step_and_keeps_the_last_finite_checkpoint(data, tmp_path):
    """A counter parameter t falls by 1e-4 per SGD step; the loss turns NaN once t < -24.5e-4, i.e.
    from step 26 on (the loss of step s is evaluated after s - 1 updates)."""

    def loss_fn(p, batch, key):
        loss, metrics = mse_loss(p, batch, key)
        return jnp.where(p["t"] < -24.5e-4, jnp.nan, loss + 1e-3 * p["t"]), metrics

    params = {**init_params(), "t": jnp.zeros(())}
    with pytest.raises(TrainingDiverged, match=r"non-finite loss \(nan\) at step 26 \(epoch 3, batch 6 of 10\)") as err:
        fit(loss_fn, params, optax.sgd(0.1), data, key=jax.random.key(0), epochs=5, batch_size=BATCH,
            run_dir=tmp_path, progress=False)
    assert isinstance(err.value, FloatingPointError)
    assert (err.value.step, err.value.epoch, err.value.checkpoint_step) == (26, 3, 20)
    assert "step 20" in str(err.value)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [10, 20]
    like = create_train_state(jax.random.key(0), params, optax.sgd(0.1))
    like = LoopState(model=ParamsState(like.params, like.opt_state), step=like.step, key=like.key)
    state, meta = ckpt.restore(like)
    ckpt.close()
    assert int(state.step) == 20 and meta["step"] == 20
    assert all(np.isfinite(a).all() for a in leaves(state.model.params))
    np.testing.assert_allclose(float(state.model.params["t"]), -20e-4, rtol=1e-4)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("epoch") for r in lines] == [1, 2, 3]
    assert lines[-1] == {"event": "diverged", "epoch": 3, "step": 26}


def test_metrics_jsonl_and_eval_hook(data, tmp_path):
    x, y = data

    def eval_fn(params, key):
        r = x @ params["w"] + params["b"] - y
        return {"mse": jnp.mean(r**2)}

    config = ml_collections.ConfigDict({"epochs": 4, "batch_size": BATCH, "eval_every": 2, "progress": False})
    state, history = fit(mse_loss, init_params(), optax.adam(0.05), data, key=jax.random.key(1), config=config,
                         run_dir=tmp_path, eval_fn=eval_fn)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == history
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert [r["step"] for r in lines] == [10, 20, 30, 40]
    assert ["eval/mse" in r for r in lines] == [False, True, False, True]
    for r in lines:
        assert {"loss", "mae", "examples_per_s", "time_s"} <= set(r) and r["examples_per_s"] > 0
    assert "compile_time_s" in lines[0]
    w, b = np.asarray(state.params["w"], np.float64), float(state.params["b"])
    assert lines[-1]["eval/mse"] == pytest.approx(np.mean((x @ w + b - y) ** 2), rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["20", "30", "40"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(batch_size=N + 4), "batch_size must be <= the number of examples N=200"),
        (dict(batch_size=10), "not divisible by the 4 devices"),
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(learning_rate=0.1), r"Unknown training setting\(s\) \['learning_rate'\]; valid settings"),
        (dict(use_scan="yes"), "use_scan must be True or False"),
    ],
)
def test_bad_settings(data, kwargs, match):
    settings = dict(epochs=1, batch_size=BATCH, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        fit(mse_loss, init_params(), optax.sgd(0.1), data, key=jax.random.key(0), **settings)


def test_bad_data_loss_and_config(data):
    x, y = data
    run = dict(key=jax.random.key(0), epochs=1, batch_size=BATCH, progress=False)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"train_data\[0\] contains 1 NaN"):
        fit(mse_loss, init_params(), optax.sgd(0.1), (bad, y), **run)
    with pytest.raises(ValueError, match=r"train_data\[0\] contains 1 NaN"):  # checked on the device
        fit(mse_loss, init_params(), optax.sgd(0.1), (jnp.asarray(bad), y), **run)
    with pytest.raises(ValueError, match="same number of rows"):
        fit(mse_loss, init_params(), optax.sgd(0.1), (x, y[:-1]), **run)
    with pytest.raises(ValueError, match="must return a scalar loss"):
        fit(lambda p, b, k: (b[0] @ p["w"], {}), init_params(), optax.sgd(0.1), data, **run)
    with pytest.raises(ValueError, match=r"must return \(loss, metrics\)"):
        fit(lambda p, b, k: jnp.sum(p["w"]), init_params(), optax.sgd(0.1), data, **run)
    with pytest.raises(ValueError, match="optax.GradientTransformation"):
        fit(mse_loss, init_params(), 0.1, data, **run)
    with pytest.raises(ValueError, match="PRNG key"):
        fit(mse_loss, init_params(), optax.sgd(0.1), data, **(run | {"key": 0}))
    # data of the wrong width: a clear ValueError before training, for a Flax model and a plain loss
    import flax.linen as nn

    model = nn.Dense(1)
    dense = model.init(jax.random.key(0), jnp.zeros((1, D)))

    def flax_loss(p, batch, key):
        xb, yb = batch
        return jnp.mean((model.apply(p, xb)[:, 0] - yb) ** 2), {}

    wide = np.c_[x, x[:, :1]]
    with pytest.raises(ValueError, match=r"loss_fn fails on a batch of train_data \(per-example shape\(s\) \(4,\), "
                       r"\(\)\): ScopeParamShapeError"):
        fit(flax_loss, dense, optax.sgd(0.1), (wide, y), **run)
    with pytest.raises(ValueError, match="dot_general requires contracting dimensions"):
        fit(mse_loss, init_params(), optax.sgd(0.1), (wide, y), **run)
    with pytest.raises(ValueError, match="Training settings need"):
        TrainConfig.from_dict({"epochs": 3})
    cfg = TrainConfig.from_dict(ml_collections.ConfigDict({"epochs": 3, "batch_size": 8}), eval_every=2)
    assert (cfg.epochs, cfg.batch_size, cfg.eval_every, cfg.use_scan) == (3, 8, 2, True)
