"""The runner's provenance record, progress output, config rules, and the package's lazy namespaces.

(The command-line paths through ``jaxgen.cli.main`` are in test_cli.py.)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

import jaxgen
from jaxgen import runner
from jaxgen.train import logs

REPO = Path(__file__).resolve().parents[1]

TOY = '''
import ml_collections
DESCRIPTION = "Counts."
def get_config():
    return ml_collections.ConfigDict({"seed": 0, "n": 3})
def run(config, run):
    for i in run.progress(range(config.n), "counting"):
        pass
    return {"n": config.n}
'''


@pytest.fixture
def toy_dir(tmp_path, monkeypatch):
    d = tmp_path / "exps"
    d.mkdir()
    (d / "toy.py").write_text(TOY)
    monkeypatch.setenv(runner.EXPERIMENTS_ENV, str(d))
    return d


# ------------------------------------------------------------------ run.json
def test_run_json_records_git_versions_and_device(toy_dir, tmp_path):
    import importlib.metadata

    result = runner.run_experiment("toy", out=tmp_path / "r", echo=False)
    info = json.loads((result.dir / "run.json").read_text())
    assert info["status"] == "completed"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert info["git"]["commit"] == head and len(head) == 40
    assert isinstance(info["git"]["dirty"], bool)
    v = info["versions"]
    assert v["jaxgen"] == jaxgen.__version__ and v["jax"] == jax.__version__
    assert v["jaxlib"] == importlib.metadata.version("jaxlib")
    dev = jax.devices()
    assert info["device"] == {"platform": dev[0].platform, "device_kind": dev[0].device_kind, "count": len(dev)}
    assert info["device"]["count"] == 4  # conftest's four virtual CPU devices
    import hashlib

    assert info["file_sha256"] == hashlib.sha256((toy_dir / "toy.py").read_bytes()).hexdigest()


def test_git_state_dirty_and_outside_a_checkout(tmp_path):
    assert runner._git_state(tmp_path) is None  # not a git checkout: recorded as null
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    state = runner._git_state(repo)
    assert state["dirty"] is False and len(state["commit"]) == 40
    (repo / "a.txt").write_text("2")
    assert runner._git_state(repo) == {"commit": state["commit"], "dirty": True}
    pkg = repo / "venv" / "jaxgen"  # an installed copy in an untracked folder of the repository
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    assert runner._git_state(pkg) is None


# ------------------------------------------------------------------ progress only on a terminal
def test_run_progress_off_a_terminal_is_one_log_line(toy_dir, tmp_path, capsys):
    result = runner.run_experiment("toy", overrides=["n=500"], out=tmp_path / "r")
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err  # no bar drawn into a file or pipe
    log = (result.dir / "log.txt").read_text().splitlines()
    assert sum(line.startswith("counting: 500 items in ") for line in log) == 1
    assert len(log) < 10


def test_run_progress_on_a_terminal_draws_a_bar(toy_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "stderr_is_terminal", lambda: True)
    result = runner.run_experiment("toy", overrides=["n=5"], out=tmp_path / "r")
    err = capsys.readouterr().err
    assert "toy: counting" in err and "0/5" in err and "\r" in err  # tqdm's bar on stderr
    log = (result.dir / "log.txt").read_text()
    assert "\r" not in log and "counting: 5 items in " in log  # never the bar in log.txt


def test_stderr_is_terminal_follows_the_stream(monkeypatch):
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert runner.stderr_is_terminal()
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not runner.stderr_is_terminal()


def test_train_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    from tqdm.auto import tqdm

    monkeypatch.setattr(runner, "stderr_is_terminal", lambda: False)
    bar = logs.progress_bar(100, 0, True)  # the default: a line at most every 30 s
    for epoch in range(100):
        bar.set_postfix(loss=f"{1.0 / (epoch + 1):.4g}")
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["train: epoch 1/100 loss=1", "train: epoch 100/100 loss=0.01"]  # first and last only
    bar = logs.progress_bar(5, 2, True, interval_s=0)  # resumed at epoch 2; a line per epoch at most
    for _ in range(3):
        bar.update(1)
    assert capsys.readouterr().err.splitlines() == [f"train: epoch {e}/5" for e in (3, 4, 5)]
    assert logs.progress_bar(5, 0, False).disable  # disabled: tqdm's no-op
    monkeypatch.setattr(runner, "stderr_is_terminal", lambda: True)
    bar = logs.progress_bar(5, 0, True)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()


def test_train_fit_writes_no_bar_into_a_pipe(tmp_path):
    """A real process whose stderr is a pipe: one line per epoch at most, no carriage returns."""
    script = (
        "import jax, jax.numpy as jnp, optax\n"
        "from jaxgen import train\n"
        "loss = lambda p, b, k: (jnp.mean((b - p) ** 2), {})\n"
        "train.fit(loss, jnp.zeros(()), optax.sgd(0.1), jnp.ones((8,)), key=jax.random.key(0), epochs=4,"
        " batch_size=4, tensorboard=False)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr
    train_lines = [line for line in res.stderr.splitlines() if line.startswith("train: epoch")]
    assert train_lines[0].startswith("train: epoch 1/4") and train_lines[-1].startswith("train: epoch 4/4")
    assert len(train_lines) <= 4


# ------------------------------------------------------------------ config rules
def test_check_rules():
    frac = runner.fraction()
    assert frac.describe == "in [0, 1)"
    assert runner.interval(1, 10).describe == "in [1, 10]"
    assert runner.interval(0.5, lo_open=True).describe == "> 0.5"
    assert runner.interval(hi=3, hi_open=True).describe == "< 3"
    frac.validate("f", 0.0)
    frac.validate("f", 0.999)
    frac.validate("f", None)  # unset
    for bad in (1.0, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(runner.ExperimentError, match="'f': the value must be in \\[0, 1\\)"):
            frac.validate("f", bad)
    runner.positive().validate("sizes", (1, 2))
    with pytest.raises(runner.ExperimentError, match="every element of the value must be > 0, got \\(1, 0\\)"):
        runner.positive().validate("sizes", (1, 0))
    runner.one_of("a", "b").validate("k", "a")
    with pytest.raises(runner.ExperimentError, match="one of \\['a', 'b'\\], got 'c'"):
        runner.one_of("a", "b").validate("k", "c")
    with pytest.raises(ValueError, match="at least one bound"):
        runner.interval()


class _Module:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)
        self.get_config = lambda: ml_collections.ConfigDict({"seed": 0, "g": {"x": 0.5}})
        self.run = lambda config, run: {}


def test_checks_are_checked_themselves():
    exp = runner.Experiment("m", Path("m.py"), _Module(CHECKS={"g.y": runner.fraction()}))
    with pytest.raises(runner.ExperimentError, match="CHECKS names 'g.y', which get_config\\(\\) does not define"):
        runner.resolve_config(exp)
    exp = runner.Experiment("m", Path("m.py"), _Module(CHECKS={"g.x": (0, 1)}))
    with pytest.raises(runner.ExperimentError, match="must be a jaxgen.runner.Check"):
        runner.resolve_config(exp)
    exp = runner.Experiment("m", Path("m.py"), _Module(CHECKS={"g.x": runner.fraction()}))
    assert runner.resolve_config(exp, overrides={"g.x": 0.25}).g.x == 0.25
    with pytest.raises(runner.ExperimentError, match="'seed': the value must be >= 0, got -2"):  # every experiment
        runner.resolve_config(exp, overrides={"seed": -2})


def test_every_repo_experiment_rejects_a_negative_seed_and_checks_its_keys(monkeypatch):
    monkeypatch.delenv(runner.EXPERIMENTS_ENV, raising=False)
    for exp in runner.list_experiments():
        assert getattr(exp.module, "CHECKS", None), f"{exp.name} states no valid ranges"
        runner.resolve_config(exp)  # the full and quick settings satisfy their own rules
        runner.resolve_config(exp, quick=True)
        # `jaxgen list` reads the description without importing the file: the same text
        assert runner.read_description(exp.path) == exp.description, exp.name
        with pytest.raises(runner.ExperimentError, match="seed"):
            runner.resolve_config(exp, overrides={"seed": -1})
        fractions = [k for k, rule in exp.module.CHECKS.items() if rule.describe == "in [0, 1)"]
        for key in fractions:  # a fraction of 1.5 is refused wherever the experiment has a fraction
            with pytest.raises(runner.ExperimentError, match=f"'{key}': the value must be in \\[0, 1\\)"):
                runner.resolve_config(exp, overrides={key: 1.5})


# ------------------------------------------------------------------ lazy namespaces
def test_dir_of_the_package_lists_what_is_there():
    names = dir(jaxgen)
    assert {"GaussianMixture", "PPCA", "StudentTPCA", "BayesianGaussianMixture", "__version__"} <= set(names)
    assert {"models", "data", "estimators", "train", "runner", "keys"} <= set(names)
    assert "importlib" not in names and "pkgutil" not in names
    assert dir(jaxgen.models) == sorted(["FAMILIES", *jaxgen.models.FAMILIES])
    assert set(jaxgen.models.FAMILIES) >= {"ppca", "tpca", "gmm", "bayes_gmm", "vae"}
    assert dir(jaxgen.estimators) == ["BayesianGaussianMixture", "GaussianMixture", "PPCA", "StudentTPCA"]
    with pytest.raises(AttributeError, match="families: "):
        jaxgen.models.not_a_family  # noqa: B018


def test_families_load_lazily_in_a_fresh_process():
    script = (
        "import sys, jaxgen.models as m\n"
        "assert 'jaxgen.models.gmm' not in sys.modules and 'sklearn' not in sys.modules\n"
        "assert callable(m.gmm.fit) and 'jaxgen.models.gmm' in sys.modules\n"
        "import jaxgen\n"
        "assert jaxgen.models.ppca.fit_ml and jaxgen.PPCA.__name__ == 'PPCA'\n"
        "print(sorted(m.FAMILIES))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(sorted(jaxgen.models.FAMILIES))


def test_seed_summary_means_stds_dicts_and_missing_values():
    rows = [{"fid": 10.0, "nll": None, "mig": {"x": 0.2, "y": 0.4}, "name": "a", "n": 3},
            {"fid": 14.0, "nll": None, "mig": {"x": 0.4, "y": 0.4}, "name": "b", "n": 5}]
    s = runner.seed_summary(rows)
    assert s["per_seed"] == rows
    assert s["fid"] == 12.0 and s["fid_std"] == pytest.approx(np.std([10.0, 14.0], ddof=1))
    assert s["n"] == 4.0 and s["nll"] is None and "nll_std" not in s
    assert s["mig"] == pytest.approx({"x": 0.3, "y": 0.4}) and s["mig_std"]["y"] == 0.0
    assert s["mig_std"]["x"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert "name" not in s  # strings stay in per_seed only
    one = runner.seed_summary(rows[:1])
    assert one["fid"] == 10.0 and one["fid_std"] == 0.0  # one seed: no spread, not NaN


def test_jaxgen_list_imports_neither_jax_nor_the_experiments():
    """`jaxgen list` was 6 s (issue 17): every experiment file, so JAX and every model family, was imported."""
    script = ("import sys\nfrom jaxgen import cli\nassert cli.main(['list']) == 0\n"
              "assert 'jax' not in sys.modules, 'jax imported'\n"
              "assert not [m for m in sys.modules if m.startswith('jaxgen_experiments')], 'experiments imported'\n")
    env = {k: v for k, v in os.environ.items() if k != runner.EXPERIMENTS_ENV}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "vaegan_mnist" in res.stdout and "VAE-GAN" in res.stdout
