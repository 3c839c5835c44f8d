"""The command line and the runner: run folders, config resolution and overrides, errors, the tour.

Most tests use a tiny experiment written to a temporary folder (``$JAXGEN_EXPERIMENTS_DIR``), so
they check the runner itself in well under a second each; the real experiments are exercised in
test_experiments.py and here once through the tour.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxgen import cli, runner, tour

TOY = '''
import ml_collections
import numpy as np
import jax
from jaxgen import runner

DESCRIPTION = "A toy experiment."
QUICK = {"n": 5, "model.scale": 0.5}
CHECKS = {"n": runner.positive(), "model.scale": runner.positive(), "model.kind": runner.one_of("full", "diag"),
          "frac": runner.fraction(), "sizes": runner.interval(1, 10)}


def check_config(config):
    if config.flag and config.n > 50:
        raise ValueError(f"with flag=true, n must be at most 50, got {config.n}.")


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.n = 100
    c.name = "a"
    c.flag = False
    c.sizes = (1, 2, 3)
    c.frac = 0.1
    c.model = ml_collections.ConfigDict({"scale": 1.0, "kind": "full"})
    return c


def run(config, run):
    x = jax.random.normal(run.key, (config.n,)) * config.model.scale
    for _ in run.progress(range(2), "loop"):
        pass
    run.log("toy mean", float(x.mean()))
    with run.figure("hist") as (fig, ax):
        ax.hist(np.asarray(x))
        ax.set(xlabel="x", ylabel="count")
    return {"mean": x.mean(), "n": config.n, "sizes": list(config.sizes), "nan": float("nan")}
'''

BROKEN = '''
import ml_collections
DESCRIPTION = "Fails on purpose."
def get_config():
    return ml_collections.ConfigDict({"seed": 0})
def run(config, run):
    raise RuntimeError("boom")
'''

REPO_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture
def toy_dir(tmp_path, monkeypatch):
    d = tmp_path / "exps"
    d.mkdir()
    (d / "toy.py").write_text(TOY)
    (d / "broken.py").write_text(BROKEN)
    (d / "_helper.py").write_text("x = 1\n")  # leading underscore: not an experiment
    monkeypatch.setenv(runner.EXPERIMENTS_ENV, str(d))
    monkeypatch.setenv(runner.CACHE_ENV, "0")  # keep the tests hermetic (no on-disk XLA cache)
    return d


def _json(path):
    def reject(c):
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(Path(path).read_text(), parse_constant=reject)


def test_list(toy_dir, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["broken  Fails on purpose.", "toy     A toy experiment."]


def test_run_writes_run_folder_and_records_overrides(toy_dir, tmp_path, capsys):
    out = tmp_path / "run1"
    rc = cli.main(["run", "toy", "--quick", "--out", str(out), "n=7", "model.kind=diag", "sizes=4,5", "flag=true"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.json", "log.txt", "run.json", "hist.png"}
    config = _json(out / "config.json")
    # QUICK set n=5 and scale=0.5; the command line overrides n afterwards.
    assert config == {"seed": 0, "n": 7, "name": "a", "flag": True, "sizes": [4, 5], "frac": 0.1,
                      "model": {"scale": 0.5, "kind": "diag"}}
    metrics = _json(out / "metrics.json")
    assert metrics["n"] == 7 and metrics["sizes"] == [4, 5] and metrics["nan"] is None
    assert isinstance(metrics["mean"], float)
    log = (out / "log.txt").read_text()
    assert f"toy mean {metrics['mean']}" in log and "saved figure hist.png" in log
    assert "toy mean" in capsys.readouterr().out  # printed as well as logged
    assert (out / "hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = _json(out / "run.json")
    assert info["quick"] is True and info["overrides"] == ["n=7", "model.kind=diag", "sizes=4,5", "flag=true"]


def test_default_out_folder(toy_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "toy", "--quick"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("toy-") and (folder / "metrics.json").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("nn=3", "Unknown config key 'nn' (did you mean 'n'?). Valid keys: flag, frac, model.kind, model.scale, n, "
                 "name, seed, sizes."),
        ("model.size=3", "Unknown config key 'model.size'"),
        ("n=abc", "Bad value for config key 'n': expected an integer"),
        ("n=2.5", "expected an integer"),
        ("model.scale=big", "expected a number"),
        ("flag=maybe", "expected a boolean (true/false)"),
        ("sizes=a,b", "expected a comma-separated list of int"),
        ("model=3", "Config key 'model' is a group; set one of its entries instead: model.kind, model.scale."),
        ("n", "key=value"),
    ],
)
def test_bad_overrides_are_clear_errors(toy_dir, tmp_path, capsys, override, message):
    out = tmp_path / "never"
    assert cli.main(["run", "toy", "--out", str(out), override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing is written for a bad command line


def test_unknown_experiment_lists_available(toy_dir, capsys):
    assert cli.main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown experiment 'nope'" in err and "broken, toy" in err


def test_missing_experiments_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runner.EXPERIMENTS_ENV, str(tmp_path / "missing"))
    assert cli.main(["list"]) == 2
    assert "JAXGEN_EXPERIMENTS_DIR" in capsys.readouterr().err


def test_usage_errors_exit_nonzero(toy_dir, capsys):
    assert cli.main([]) == 2
    assert cli.main(["list", "extra=1"]) == 2
    assert cli.main(["run", "toy", "--bogus"]) == 2
    assert cli.main(["run", "toy", "n"]) == 2
    assert "'n' is not of the form key=value" in capsys.readouterr().err


def test_same_seed_same_metrics(toy_dir, tmp_path):
    runs = [runner.run_experiment("toy", overrides=[f"seed={s}"], out=tmp_path / f"r{i}", echo=False)
            for i, s in enumerate((3, 3, 4))]
    assert runs[0].metrics == runs[1].metrics
    assert runs[0].metrics["mean"] != runs[2].metrics["mean"]


def test_config_command_prints_resolved_config(toy_dir, capsys):
    assert cli.main(["config", "toy", "--quick", "sizes=[7]"]) == 0
    assert json.loads(capsys.readouterr().out)["sizes"] == [7]


def test_experiment_failure_propagates(toy_dir, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        runner.run_experiment("broken", out=tmp_path / "b", echo=False)


def test_repo_experiments_found_without_env(monkeypatch):
    monkeypatch.delenv(runner.EXPERIMENTS_ENV, raising=False)
    assert runner.experiments_dir().resolve() == REPO_EXPERIMENTS.resolve()
    names = [e.name for e in runner.list_experiments()]
    assert {"ppca_generative", "gmm_faithful_1d", "gmm_faithful_2d", "outliers"} <= set(names)
    for e in runner.list_experiments():
        assert e.description and "\n" not in e.description
        runner.resolve_config(e, quick=True)  # every QUICK key exists and has the right type


def test_tour_sections_refer_to_real_experiments():
    names = {p.stem for p in REPO_EXPERIMENTS.glob("*.py")}
    assert [s.experiment for s in tour.SECTIONS][:4] == ["ppca_generative", "gmm_faithful_1d", "gmm_faithful_2d", "outliers"]
    assert {s.experiment for s in tour.SECTIONS} <= names


def test_tour_report(tmp_path, monkeypatch, capsys):
    """The tour through the CLI, restricted to the cheapest section; report links resolve."""
    monkeypatch.delenv(runner.EXPERIMENTS_ENV, raising=False)
    monkeypatch.setenv(runner.CACHE_ENV, "0")
    out = tmp_path / "tour"
    assert cli.main(["tour", "--quick", "--only", "ppca_generative", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert report.startswith("# The jaxgen tour")
    assert "## 1. PCA as a linear generative model" in report and "**Key numbers**" in report
    links = [line[line.index("](") + 2: -1] for line in report.splitlines() if line.startswith("![")]
    assert links and all((out / link).is_file() for link in links)
    assert _json(out / "01_ppca_generative" / "metrics.json")["max_angle_deg_ml"] < 5
    assert cli.main(["tour", "--only", "nope", "--out", str(tmp_path / "t2")]) == 2


def test_tour_reports_a_failing_section_and_goes_on(toy_dir, tmp_path):
    numbers = lambda m: [("mean", f"{m['mean']:.3f}")]  # noqa: E731
    sections = [tour.Section("broken", "Broken", "Fails.", {}, numbers),
                tour.Section("toy", "Toy", "A toy.", {"hist": "A histogram."}, numbers, overrides={"n": 3})]
    report, ok = tour.run_tour(tmp_path / "t", sections=sections, echo=False)
    assert not ok
    text = report.read_text()
    assert "1. [Broken](#1-broken) — failed" in text and "RuntimeError: boom" in text
    assert "![hist](02_toy/hist.png)" in text and "*A histogram.*" in text and "| mean |" in text
    assert _json(tmp_path / "t" / "02_toy" / "config.json")["n"] == 3  # the section's tour settings


def test_python_dash_m(toy_dir):
    env = {**os.environ, runner.EXPERIMENTS_ENV: str(toy_dir)}
    res = subprocess.run([sys.executable, "-m", "jaxgen", "run", "nope"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2 and "Available experiments" in res.stderr


# ------------------------------------------------------------------ the first hour (issue 7, item 8)
LATE = '''
import ml_collections
DESCRIPTION = "Saves a figure, then fails."
def get_config():
    return ml_collections.ConfigDict({"seed": 0, "interrupt": False})
def run(config, run):
    with run.figure("partial") as (fig, ax):
        ax.plot([0, 1], [0, 1])
        ax.set(xlabel="x", ylabel="y")
    if config.interrupt:
        raise KeyboardInterrupt
    raise RuntimeError("late boom")
'''

NEEDS_DATA = '''
import ml_collections
from jaxgen.data import load_mnist
DESCRIPTION = "Needs MNIST."
def get_config():
    return ml_collections.ConfigDict({"seed": 0, "data_dir": ""})
def run(config, run):
    run.log("loading")
    load_mnist("train", data_dir=config.data_dir)
    return {}
'''


@pytest.fixture
def more_dir(toy_dir):
    (toy_dir / "late.py").write_text(LATE)
    (toy_dir / "needs_data.py").write_text(NEEDS_DATA)
    return toy_dir


def test_version(capsys):
    import importlib.metadata

    import jax

    import jaxgen

    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"jaxgen {jaxgen.__version__} (jax {jax.__version__}, jaxlib ")
    assert importlib.metadata.version("jaxlib") in out
    assert jaxgen.__version__ == importlib.metadata.version("jaxgen")  # the installed metadata agrees


@pytest.mark.parametrize("argv, message", [
    (["run", "toyy"], "Unknown experiment 'toyy' (did you mean 'toy'?)"),
    (["config", "tyo"], "(did you mean 'toy'?)"),
    (["run", "toy", "modl.scale=2"], "Unknown config key 'modl.scale' (did you mean 'model.scale'?)"),
    (["run", "toy", "scale=2"], "(did you mean 'model.scale'?)"),  # a leaf found inside a group
    (["run", "toy", "n=0"], "Bad value for config key 'n': the value must be > 0, got 0."),
    (["run", "toy", "seed=-1"], "Bad value for config key 'seed': the value must be >= 0, got -1."),
    (["run", "toy", "frac=1.5"], "Bad value for config key 'frac': the value must be in [0, 1), got 1.5."),
    (["run", "toy", "frac=1"], "in [0, 1), got 1.0"),
    (["run", "toy", "model.kind=ful"], "the value must be one of ['full', 'diag'], got 'ful'."),
    (["run", "toy", "sizes=1,20"], "every element of the value must be in [1, 10], got (1, 20)."),
    (["run", "toy", "flag=true", "n=60"], "Bad config for experiment 'toy': with flag=true, n must be at most 50, got 60."),
    (["config", "toy", "n=-3"], "must be > 0"),  # `config` checks like `run`
])
def test_user_errors_exit_2_with_a_message_and_no_folder(toy_dir, tmp_path, capsys, argv, message):
    out = tmp_path / "runs" / "never"
    extra = ["--out", str(out)] if argv[0] == "run" else []
    assert cli.main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxgen: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # rejected before any folder is created


def test_outliers_range_and_misspelled_key(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(runner.EXPERIMENTS_ENV, raising=False)
    out = tmp_path / "o"
    assert cli.main(["run", "outliers", "--out", str(out), "subspace.outlier_fraction=1.5"]) == 2
    assert "'subspace.outlier_fraction': the value must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert cli.main(["run", "outliers", "--out", str(out), "outlier_fraction=0.2"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'blobs.outlier_fraction' or 'subspace.outlier_fraction'?" in err
    assert not out.exists()


def test_failed_run_that_wrote_nothing_leaves_no_folder(toy_dir, tmp_path):
    out = tmp_path / "runs" / "deep" / "b"
    with pytest.raises(RuntimeError, match="boom"):  # a real failure keeps its traceback (exit 1)
        cli.main(["run", "broken", "--out", str(out)])
    assert not (tmp_path / "runs").exists()  # the folder and the parents created for it are gone


def test_failed_run_with_results_keeps_folder_and_says_why(more_dir, tmp_path):
    out = tmp_path / "late"
    with pytest.raises(RuntimeError, match="late boom"):
        cli.main(["run", "late", "--out", str(out)])
    assert {p.name for p in out.iterdir()} == {"config.json", "log.txt", "run.json", "partial.png"}
    info = _json(out / "run.json")
    assert info["status"] == "failed" and info["error"] == "RuntimeError: late boom"
    assert info["figures"] == ["partial.png"]
    log = (out / "log.txt").read_text()
    assert "Traceback" in log and "RuntimeError: late boom" in log


def test_interrupted_run(more_dir, tmp_path):
    out = tmp_path / "late"
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment("late", overrides=["interrupt=true"], out=out, echo=False)
    info = _json(out / "run.json")
    assert info["status"] == "interrupted" and info["error"].startswith("KeyboardInterrupt")


def test_failed_run_keeps_a_folder_that_existed(toy_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    with pytest.raises(RuntimeError):
        runner.run_experiment("broken", out=out, echo=False)
    assert _json(out / "run.json")["status"] == "failed"  # the user's folder is never deleted


def test_missing_data_in_a_run_exits_2_without_traceback(more_dir, tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(["run", "needs_data", "--out", str(out), f"data_dir={tmp_path / 'empty'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxgen: error: Data set 'mnist' was not found") and "Traceback" not in err
    for name in ("mnist.npz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "jaxgen data fetch mnist"):
        assert name in err, name
    assert not out.exists()  # it had only logged a line: nothing useful, removed


def test_user_errors_in_a_real_process(more_dir, tmp_path):
    """The console entry point as a user runs it: message on stderr, no traceback, exit status 2."""
    env = {**os.environ, runner.EXPERIMENTS_ENV: str(more_dir), runner.CACHE_ENV: "0"}
    cases = [(["run", "toy", "n=0", "--out", str(tmp_path / "r1")], "must be > 0, got 0"),
             (["run", "needs_data", f"data_dir={tmp_path / 'empty'}", "--out", str(tmp_path / "r2")],
              "t10k-labels-idx1-ubyte.gz"),
             (["run", "toyy"], "did you mean 'toy'?")]
    for argv, message in cases:
        res = subprocess.run([sys.executable, "-m", "jaxgen", *argv], capture_output=True, text=True, env=env,
                             timeout=300)
        assert res.returncode == 2, res.stderr
        assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    res = subprocess.run([sys.executable, "-m", "jaxgen", "run", "broken", "--out", str(tmp_path / "r3")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1 and "Traceback" in res.stderr and "RuntimeError: boom" in res.stderr
    assert not (tmp_path / "r3").exists()


def _metadata_warnings(project: Path) -> tuple[str, list[str]]:
    """Build the package metadata of ``project`` with setuptools; return (METADATA text, warnings)."""
    script = (
        "import json, tempfile, warnings, pathlib\n"
        "from setuptools import build_meta as b\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    out = tempfile.mkdtemp()\n"
        "    d = b.prepare_metadata_for_build_wheel(out)\n"
        "print(json.dumps([pathlib.Path(out, d, 'METADATA').read_text(), [str(x.message) for x in w]]))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=project, timeout=300)
    assert res.returncode == 0, res.stderr
    return tuple(json.loads(res.stdout.splitlines()[-1]))


def test_package_metadata_is_current_and_true(tmp_path):
    """No setuptools deprecation (the licence is an SPDX string) and a summary naming only what exists."""
    import tomllib

    root = REPO_EXPERIMENTS.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    from jaxgen.models import FAMILIES

    # the summary names only families that exist: each named one is a module of jaxgen.models
    for name, module in [("GAN", "gan"), ("PixelCNN", "pixelcnn"), ("PixelVAE", "pixelvae"), ("VAE", "vae")]:
        if name in project["description"]:
            assert module in FAMILIES, name
    assert "diffusion" not in project["description"].lower()  # not a family of this project
    (tmp_path / "src" / "jaxgen").mkdir(parents=True)  # a copy of the project's metadata, not its code
    (tmp_path / "src" / "jaxgen" / "__init__.py").write_text("")
    for name in ("pyproject.toml", "README.md"):
        (tmp_path / name).write_text((root / name).read_text())
    metadata, warnings = _metadata_warnings(tmp_path)
    assert "License-Expression: Apache-2.0" in metadata
    assert not [w for w in warnings if "deprecated" in w.lower()], warnings
