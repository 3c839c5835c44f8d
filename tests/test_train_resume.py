"""Resume: an interrupted run (in-process, or SIGKILLed) continued in its run folder ends with
bitwise the same parameters and history as an uninterrupted run; foreign run folders are refused."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.train import TIMING_KEYS, describe, fit

HELPER = Path(__file__).resolve().parent / "train_resume_helper.py"
_spec = importlib.util.spec_from_file_location("train_resume_helper", HELPER)
helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helper)
STEPS_PER_EPOCH = helper.N // helper.BATCH


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


def leaves(params):
    return [np.asarray(v) for v in jax.tree.leaves(params)]


def jsonl(run_dir):
    return strip_timing([json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    state, history = helper.run(run_dir)
    return run_dir, state, history


def test_resume_in_process_is_exact(uninterrupted, tmp_path):
    ref_dir, ref_state, ref_history = uninterrupted
    loss_fn, params, optimizer, data, key, settings = helper.problem()
    eval_fn = helper.eval_fn_with_sleep(0.0)
    fit(loss_fn, params, optimizer, data, key=key, run_dir=tmp_path, eval_fn=eval_fn, **(settings | {"epochs": 3}))
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
    state, history = fit(loss_fn, params, optimizer, data, key=key, run_dir=tmp_path, eval_fn=eval_fn, **settings)
    assert "compile_time_s" in history[3]  # epochs 4.. ran in the second call
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.params), leaves(ref_state.params)))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.opt_state), jax.tree.leaves(ref_state.opt_state)))
    assert int(state.step) == int(ref_state.step) == helper.EPOCHS * STEPS_PER_EPOCH
    assert strip_timing(history) == strip_timing(ref_history)
    assert jsonl(tmp_path) == jsonl(ref_dir) == strip_timing(ref_history)
    # keep_checkpoints=2: only the last two remain
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [7 * STEPS_PER_EPOCH, 8 * STEPS_PER_EPOCH]


def _helper_env(optimized: bool) -> dict:
    return dict(os.environ, JAXGEN_TEST_OPTIMIZE="1" if optimized else "0")


@pytest.mark.parametrize("optimized", [False, True], ids=["fast-compile", "xla-optimized"])
def test_sigkill_mid_run_then_rerun_matches_uninterrupted(uninterrupted, tmp_path, optimized):
    """Also with XLA's optimisations on (the program users run): then every process, the
    uninterrupted reference included, runs with ``JAXGEN_TEST_OPTIMIZE=1``."""
    env = _helper_env(optimized)
    if optimized:
        ref_out = tmp_path / "ref.npz"
        ref = subprocess.run([sys.executable, str(HELPER), str(tmp_path / "ref"), str(ref_out)], capture_output=True,
                             timeout=300, env=env)
        assert ref.returncode == 0, ref.stderr.decode()[-3000:]
        ref_npz = np.load(ref_out, allow_pickle=False)
        ref_leaves = [ref_npz[f"p{i}"] for i in range(len(leaves(uninterrupted[1].params)))]
        ref_history = json.loads(str(ref_npz["history"]))
    else:
        ref_leaves, ref_history = leaves(uninterrupted[1].params), strip_timing(uninterrupted[2])
    run_dir, out = tmp_path / "run", tmp_path / "out.npz"
    ckpt_dir = run_dir / "checkpoints"
    proc = subprocess.Popen([sys.executable, str(HELPER), str(run_dir), str(out), "--sleep", "0.5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        reached = False  # a complete checkpoint of epoch >= 2 exists (orbax renames it into place when done)
        while not reached and time.monotonic() < deadline and proc.poll() is None:
            done = [int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit()] if ckpt_dir.is_dir() else []
            reached = bool(done) and max(done) >= 2 * STEPS_PER_EPOCH
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert reached, "the run wrote no checkpoint of epoch 2 within 180 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit())
    assert 2 * STEPS_PER_EPOCH <= killed_at < helper.EPOCHS * STEPS_PER_EPOCH
    assert not out.exists()

    rerun = subprocess.run([sys.executable, str(HELPER), str(run_dir), str(out)], capture_output=True, timeout=300,
                           env=env)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    result = np.load(out, allow_pickle=False)
    for i, ref in enumerate(ref_leaves):
        assert np.array_equal(result[f"p{i}"], ref), f"parameter leaf {i} differs after SIGKILL + resume"
    assert json.loads(str(result["history"])) == ref_history
    assert jsonl(run_dir) == ref_history


def test_completed_run_is_returned_without_training(uninterrupted):
    ref_dir, ref_state, ref_history = uninterrupted
    loss_fn, params, optimizer, data, key, settings = helper.problem()
    state, history = fit(loss_fn, params, optimizer, data, key=key, run_dir=ref_dir, **settings)
    assert all(np.array_equal(a, b) for a, b in zip(leaves(state.params), leaves(ref_state.params)))
    assert history == ref_history


def test_foreign_run_folder_is_refused(uninterrupted):
    ref_dir, _, ref_history = uninterrupted
    loss_fn, params, optimizer, data, key, settings = helper.problem()
    before = (Path(ref_dir) / "metrics.jsonl").read_text()
    other_model = dict(params, w1=jnp.zeros((helper.D, 9)), b1=jnp.zeros(9), w2=jnp.zeros((9, 1)))  # 9 hidden units
    with pytest.raises(ValueError, match=r"different model or optimizer \(pytree structure/shape mismatch: "
                       r".model\.params\['b1'\] is float32\(8,\) in the checkpoint but float32\(9,\) here\)"):
        fit(loss_fn, other_model, optimizer, data, key=key, run_dir=ref_dir, **settings)
    with pytest.raises(ValueError, match=r"different model or optimizer.*only in the checkpoint"):
        fit(describe(lambda p, b, k: (jnp.sum(p["w1"]) + jnp.sum(p["b1"]), {}), **helper.LOSS_SETTINGS),
            {k: params[k] for k in ("w1", "b1")}, optimizer, data, key=key, run_dir=ref_dir, **settings)
    with pytest.raises(ValueError, match=r"other settings \(batch_size was 16, now 32\)"):
        fit(loss_fn, params, optimizer, data, key=key, run_dir=ref_dir, **(settings | {"batch_size": 32}))
    with pytest.raises(ValueError, match=r"other settings \(key was"):
        fit(loss_fn, params, optimizer, data, key=jax.random.key(8), run_dir=ref_dir, **settings)
    with pytest.raises(ValueError, match="already holds 8 epochs, more than epochs=5"):
        fit(loss_fn, params, optimizer, data, key=key, run_dir=ref_dir, **(settings | {"epochs": 5}))
    assert (Path(ref_dir) / "metrics.jsonl").read_text() == before  # refused before touching the folder


def test_gan_trainer_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path):
    """The same guarantee for a trainer with two networks, two optimizers, n_critic = 2, packing,
    a gradient penalty and an EMA, checkpointed every 5 steps (log periods inside epochs)."""
    ref_out = tmp_path / "ref.npz"
    env = _helper_env(False)
    ref = subprocess.run([sys.executable, str(HELPER), str(tmp_path / "ref"), str(ref_out), "--gan"],
                         capture_output=True, timeout=300, env=env)
    assert ref.returncode == 0, ref.stderr.decode()[-3000:]
    run_dir, out = tmp_path / "run", tmp_path / "out.npz"
    ckpt_dir = run_dir / "checkpoints"
    total = helper.gan_problem()[3]["steps"]
    proc = subprocess.Popen([sys.executable, str(HELPER), str(run_dir), str(out), "--sleep", "0.5", "--gan"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        reached = False
        while not reached and time.monotonic() < deadline and proc.poll() is None:
            done = [int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit()] if ckpt_dir.is_dir() else []
            reached = bool(done) and max(done) >= 10
            time.sleep(0.02)
        assert proc.poll() is None and reached, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    killed_at = max(int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit())
    assert 10 <= killed_at < total and not out.exists()
    rerun = subprocess.run([sys.executable, str(HELPER), str(run_dir), str(out), "--gan"], capture_output=True,
                           timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    result, ref_npz = np.load(out, allow_pickle=False), np.load(ref_out, allow_pickle=False)
    assert sorted(result.files) == sorted(ref_npz.files)
    for name in ref_npz.files:
        assert np.array_equal(result[name], ref_npz[name]), f"{name} differs after SIGKILL + resume"
