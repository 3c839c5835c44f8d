"""Run folders as a researcher uses them (issue 17): a rerun never damages a run folder; SIGINT and
SIGTERM stop a training run at a safe point with a checkpoint and one line; the same command resumes
it to the numbers of an uninterrupted run; per-period lines reach log.txt while training runs.

The experiment is a tiny regression written to a temporary folder: seconds per test, and real
signals sent to real ``python -m jaxgen`` processes.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxgen import cli, runner

TRAIN = '''
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import train

DESCRIPTION = "A tiny regression trained with jaxgen.train.fit."
QUICK = {"epochs": 3}


def get_config():
    return ml_collections.ConfigDict({"seed": 0, "epochs": 12, "lr": 0.05, "batch_size": 16, "sleep": 0.0})


def run(config, run):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]

    def loss(p, batch, key):
        xb, yb = batch
        noise = 0.1 * jax.random.normal(key, yb.shape)  # the step's key: resumption must restore it
        return jnp.mean((xb @ p["w"] + p["b"] - yb - noise) ** 2), {}

    def eval_fn(p, key):
        time.sleep(config.sleep)  # a slow period, so that a test can signal the run mid-training
        return {"w0": p["w"][0, 0]}

    params = {"w": jnp.zeros((3, 1)), "b": jnp.zeros(1)}
    state, history = train.fit(train.describe(loss, name="toy_regression"), params,
                               train.optimizer("adam", config.lr), (x, y), key=run.key, epochs=config.epochs,
                               batch_size=config.batch_size, run_dir=run.dir, eval_fn=eval_fn, tensorboard=False,
                               checkpoint_every=5)  # an interrupt between two must write its own
    with run.figure("curve") as (fig, ax):
        ax.plot([h["loss"] for h in history])
        ax.set(xlabel="epoch", ylabel="loss")
    return {"loss": history[-1]["loss"], "w": np.asarray(state.params["w"]).ravel(),
            "history": [{k: v for k, v in h.items() if k not in train.TIMING_KEYS} for h in history],
            "train_seconds": train.train_seconds(history)}
'''


@pytest.fixture
def exp_dir(tmp_path, monkeypatch):
    d = tmp_path / "exps"
    d.mkdir()
    (d / "toytrain.py").write_text(TRAIN)
    (d / "other.py").write_text(TRAIN.replace("tiny regression", "second regression"))
    monkeypatch.setenv(runner.EXPERIMENTS_ENV, str(d))
    monkeypatch.setenv(runner.CACHE_ENV, "0")
    return d


def _hashes(folder: Path) -> dict:
    """sha256 of every file under ``folder`` (and the set of folders): what "unchanged" means."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


def test_refused_rerun_changes_nothing(exp_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "r"
    assert cli.main(["run", "toytrain", "--quick", "--out", str(out)]) == 0
    before = _hashes(out)
    assert "metrics.json" in before and any(k.startswith("checkpoints/") for k in before)
    capsys.readouterr()

    # other settings: refused before anything is written, each difference named in config terms
    assert cli.main(["run", "toytrain", "--quick", "lr=0.01", "epochs=5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "epochs: 3 in the folder, 5 now" in err and "lr: 0.05 in the folder, 0.01 now" in err
    assert "--out" in err and "--fresh" in err and "Traceback" not in err
    assert _hashes(out) == before
    # another experiment into the same folder: refused too
    assert cli.main(["run", "other", "--quick", "--out", str(out)]) == 2
    assert "experiment: 'toytrain' in the folder, 'other' now" in capsys.readouterr().err
    assert _hashes(out) == before

    # the same command again: reported as finished, nothing run or changed
    assert cli.main(["run", "toytrain", "--quick", "--out", str(out)]) == 0
    assert "already holds this finished run" in capsys.readouterr().out
    assert _hashes(out) == before

    # --fresh: the old run is discarded and the new one written
    assert cli.main(["run", "toytrain", "--quick", "lr=0.01", "--fresh", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["lr"] == 0.01
    assert json.loads((out / "metrics.json").read_text())["history"][0]["step"] == 6


def test_folders_that_are_not_runs_are_left_alone(exp_dir, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    for extra in ([], ["--fresh"]):  # --fresh never deletes a folder that is not a jaxgen run
        assert cli.main(["run", "toytrain", "--quick", *extra, "--out", str(mine)]) == 2
        assert "holds no jaxgen run" in capsys.readouterr().err
        assert [p.name for p in mine.iterdir()] == ["todo.txt"]
    # a file, an unwritable place: one line, exit 2, no traceback
    for bad, why in [(mine / "todo.txt", "is not a directory"), (mine / "todo.txt" / "x", "Not a directory")]:
        assert cli.main(["run", "toytrain", "--quick", "--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_parents_are_created_and_logged(exp_dir, tmp_path):
    out = tmp_path / "new" / "deeper" / "r"
    assert cli.main(["run", "toytrain", "--quick", "--out", str(out)]) == 0
    assert f"(created, with its missing parent folder {tmp_path / 'new'})" in (out / "log.txt").read_text()


def test_a_batch_larger_than_the_data_is_a_user_error(exp_dir, tmp_path, capsys):
    out = tmp_path / "b"
    assert cli.main(["run", "toytrain", "--quick", "batch_size=100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "batch_size must be <= the number of examples N=96, got 100000" in err and "Traceback" not in err
    assert not out.exists()  # nothing useful had been written: the folder is removed again


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "jaxgen", "run", "toytrain", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_mid_training(args, env, log: Path, sig, after_lines: int):
    """Start the run, wait until ``log.txt`` holds ``after_lines`` more period lines than before (read while
    the process is still training: progress as it happens), send ``sig``; returns (rc, out, err, lines seen)."""
    before = log.read_text().count("ETA") if log.exists() else 0
    proc = _start(args, env)
    deadline = time.monotonic() + 240
    while True:
        lines = log.read_text().count("ETA") if log.exists() else 0
        if lines >= before + after_lines:
            break
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no period line reached log.txt while training"
        time.sleep(0.05)
    assert proc.poll() is None  # still training: the lines were written as they happened
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def test_sigint_and_sigterm_stop_at_a_checkpoint_and_resume_to_the_same_numbers(exp_dir, tmp_path, capsys):
    env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1" if os.environ.get("JAXGEN_TEST_OPTIMIZE") != "1"
           else "0"}
    out = tmp_path / "sig"
    args = ["sleep=0.25", "--out", str(out)]
    log = out / "log.txt"
    steps = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        rc, stdout, err = _signal_mid_training(args, env, log, sig, after_lines=2)
        assert rc == 130, err
        name = sig.name
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"jaxgen: interrupted at step ") and last.endswith(
            f"({name}); rerun the same command to resume"), err
        assert "Traceback" not in err and "Exception ignored" not in err
        step = int(last.split("at step ")[1].split()[0])
        steps.append(step)
        info = json.loads((out / "run.json").read_text())
        assert info["status"] == "interrupted" and info["interrupted_at_step"] == step
        assert (out / "checkpoints" / str(step)).is_dir()  # written at the step it stopped at
        assert log.read_text().rstrip().endswith(f"interrupted at step {step} ({name}); rerun the same command to resume")
    assert steps[0] < steps[1] < 12 * 6
    assert "resumed from step " + str(steps[0]) in log.read_text()

    # the third session in this process (the same JAX settings as the subprocesses: see conftest.py)
    assert cli.main(["run", "toytrain", *args]) == 0
    assert f"train: resumed from step {steps[1]} of 72" in capsys.readouterr().out
    resumed = json.loads((out / "metrics.json").read_text())
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "completed" and info["sessions"] == 3
    # the training time of all three sessions: each of the 12 periods slept 0.25 s in its evaluation
    assert resumed["train_seconds"] >= 12 * 0.25
    assert [h["step"] for h in resumed["history"]] == [6 * e for e in range(1, 13)]  # the history of every session
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["train_s"] for r in records]
    assert len(seconds) == 12 and seconds == sorted(seconds)  # accumulated across the sessions, never reset

    ref = runner.run_experiment("toytrain", out=tmp_path / "ref", echo=False)  # uninterrupted, in-process
    for key in ("loss", "w", "history"):
        assert resumed[key] == ref.metrics[key], key  # train_s (in TIMING_KEYS) is machine-dependent: not compared


def assert_fits_checkpointed(run_dir: Path, names) -> None:
    """Each fit ``train/<name>`` of an experiment's run folder holds a checkpoint of its last step with the
    settings of its loss and optimizer (or trainer) recorded: what makes the same command resume an
    interrupted run instead of starting it again (used by the experiments' quick tests)."""
    from jaxgen.train import Checkpointer

    found = sorted(p.parent.name for p in (run_dir / "train").glob("*/checkpoints"))
    assert found == sorted(names)
    for name in names:
        ckpt = Checkpointer(run_dir / "train" / name / "checkpoints")
        try:
            meta = ckpt.restore_meta()
        finally:
            ckpt.close()
        assert meta["step"] == meta["history"][-1]["step"] and meta["settings"]["trainer"], name


DROPPED = '''
import os
import signal

import ml_collections

DESCRIPTION = "Receives SIGINT inside a finalizer, where Python drops the KeyboardInterrupt."


class Finalized:
    def __del__(self):  # like JAX's gc callback: an exception raised here is printed and dropped
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # bytecode to run the Python-level handler on
            pass


def get_config():
    return ml_collections.ConfigDict({"seed": 0})


def run(config, run):
    Finalized()
    run.log("went on after the signal")
    with run.figure("late") as (fig, ax):
        ax.plot([0, 1], [0, 1])
        ax.set(xlabel="x", ylabel="y")
    return {}
'''


def test_a_signal_dropped_by_a_finalizer_still_stops_the_run(exp_dir, tmp_path, capsys, monkeypatch):
    """The issue's `Exception ignored in: <function _xla_gc_callback ...> KeyboardInterrupt`: the run went on.
    The signal stays pending and the next run.log stops the run."""
    (exp_dir / "dropped.py").write_text(DROPPED)
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))  # "Exception ignored in ..."
    out = tmp_path / "d"
    assert cli.main(["run", "dropped", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert [t.__name__ for t in dropped] == ["RunInterrupted"]  # Python did drop it ...
    assert "went on after the signal" not in captured.out  # ... but the run stopped at the next line
    assert captured.err.strip().splitlines()[-1].startswith("jaxgen: interrupted (SIGINT)")
    assert not out.exists()  # it had written nothing useful
