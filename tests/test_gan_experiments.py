"""The 2-D GAN experiments (gan_ring, gan_grid) run quick through jaxgen.runner: files, metrics
recomputed from the saved samples, pinned quick numbers, distinct PRNG keys, the sweep, bad configs.

Pinned values: seed 0 (seed indices 5 and 6), quick settings, on 4 virtual CPU devices under this
suite's compile setting (conftest.py), 2-core x86-64 CPU, jax 0.10.2. GAN training amplifies float
differences, so the tolerances allow another CPU's rounding; each run also reports its zero-step
generator's metrics, and the test asserts that these fall outside the pinned window.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from jaxgen import keys, runner
from jaxgen.data.synthetic import grid_modes, ring_modes
from jaxgen.metrics.modes import mode_metrics

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
MODES = {"gan_ring": (ring_modes, 0.01, 8), "gan_grid": (grid_modes, 0.05, 25)}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Each experiment run once (quick) with the keys it derived on the host."""
    out, results = tmp_path_factory.mktemp("gan_quick"), {}

    def get(name, overrides=()):
        tag = (name, tuple(overrides))
        if tag not in results:
            with keys.recording(all_derivations=True) as rec:
                r = runner.run_experiment(name, quick=True, overrides=list(overrides), echo=False,
                                          out=out / f"{name}{len(results)}", directory=EXPERIMENTS)
            results[tag] = (r, rec)
        return results[tag]

    return get


@pytest.mark.parametrize("name", ["gan_ring", "gan_grid"])
def test_quick_run_files_and_metrics(quick, name):
    r, _ = quick(name)
    files = {p.name for p in r.dir.iterdir()}
    assert {"config.json", "metrics.json", "log.txt", "run.json", "samples.npy", "table.md"} <= files
    assert r.figures and all(f in files for f in r.figures)
    m = json.loads((r.dir / "metrics.json").read_text())
    assert m == r.metrics and m["samples_from"] == "EMA generator"
    samples = np.load(r.dir / "samples.npy", allow_pickle=False)
    n_seeds, n = r.config.n_seeds, r.config.eval.n_samples
    assert samples.shape == (n_seeds, n, 2) and np.all(np.isfinite(samples))
    modes_fn, std, k = MODES[name]
    # the metrics are those of the saved samples (an independent recomputation per seed)
    for i in range(n_seeds):
        mm = mode_metrics(samples[i], modes_fn(), std)
        assert m["modes"][i] == mm["modes"] and m["high_quality_pct"][i] == pytest.approx(mm["high_quality_pct"])
        assert m["reverse_kl"][i] == (None if mm["reverse_kl"] is None else pytest.approx(mm["reverse_kl"]))
    assert m["modes_mean"] == pytest.approx(np.mean(m["modes"])) and m["n_modes"] == k
    assert m["goal_met"] == (min(m["modes"]) == k and min(m["high_quality_pct"]) >= 90)
    assert not np.allclose(samples[0], samples[1])  # seeds differ
    # the training curves: mode metrics of the EMA and the current generator at every log record
    steps = list(range(r.config.train.log_every, r.config.train.steps + 1, r.config.train.log_every))
    assert len(m["curves"]) == n_seeds and all(c["step"] == steps for c in m["curves"])
    assert all(0 <= v <= 100 for c in m["curves"] for v in c["hq_ema"] + c["hq_raw"])
    assert {f"{name.split('_')[1]}_training.png", f"{name.split('_')[1]}_samples.png"} <= set(r.figures)
    assert "| default: non_saturating, pack 1 |" in (r.dir / "table.md").read_text()


# (modes per seed, HQ % per seed) of the quick runs, measured as stated in the module docstring
# (quick: 600 steps of 2 x 128 MLPs; far from the full run's 8/8 and 25/25 at > 90 % HQ). The zero-step
# generators score ring modes [0, 0], HQ [0, 0] %; grid modes [1, 1], HQ [4.8, 42.0] % (an untrained
# generator puts its samples near the origin, itself a grid mode).
PINNED = {"gan_ring": ([3, 6], [1.0, 2.6]), "gan_grid": ([8, 14], [2.4, 3.8])}
TOLERANCE = {"modes": 2, "high_quality_pct": 1.5}


def _in_window(modes, hq, name) -> bool:
    pin_modes, pin_hq = PINNED[name]
    return (modes == pytest.approx(pin_modes, abs=TOLERANCE["modes"])
            and hq == pytest.approx(pin_hq, abs=TOLERANCE["high_quality_pct"]))


@pytest.mark.parametrize("name", ["gan_ring", "gan_grid"])
def test_quick_numbers_are_pinned(quick, name):
    r, _ = quick(name)
    m = r.metrics
    assert _in_window(m["modes"], m["high_quality_pct"], name), (m["modes"], m["high_quality_pct"])
    # the window rejects the run's own zero-step generator (same init and evaluation keys), seed by seed
    for i in range(r.config.n_seeds):
        untrained_modes, untrained_hq = list(m["modes"]), list(m["high_quality_pct"])
        untrained_modes[i], untrained_hq[i] = m["untrained_modes"][i], m["untrained_high_quality_pct"][i]
        assert not _in_window(untrained_modes, untrained_hq, name), (i, m["untrained_modes"])


@pytest.mark.parametrize("name", ["gan_ring", "gan_grid"])
def test_keys_are_pairwise_distinct(quick, name):
    _, rec = quick(name)
    names = [n for n, _ in rec]
    assert {"runs", "data", "fit", "eval", "state", "shuffle", "init", "generator", "discriminator"} <= set(names)
    keys.assert_distinct(rec)
    assert len(rec.origins) > len(rec)


def test_sweep_trains_every_objective_with_and_without_packing(quick):
    r, rec = quick("gan_ring", ["n_seeds=1", "train.steps=100", "train.log_every=50", "sweep=true",
                                 "sweep_objectives=non_saturating", "sweep_packs=1,2"])
    sweep = r.metrics["sweep"]
    assert set(sweep) == {"non_saturating_pack1", "non_saturating_pack2", "wgan_gp_published"}
    assert sweep["non_saturating_pack1"]["modes"] == r.metrics["modes"]  # the default's cell reuses its runs
    assert sweep["wgan_gp_published"]["settings"] == {
        "objective": "wgan_gp", "pack": 1, "n_critic": 5, "g_lr": 1e-4, "d_lr": 1e-4, "betas": [0.0, 0.9],
        "gp_weight": 10.0, "r1_gamma": 0.0}
    saved = np.load(r.dir / "sweep_samples.npz", allow_pickle=False)
    for tag, s in sweep.items():
        assert saved[tag].shape == (1, r.config.eval.n_samples, 2)
        assert s["modes"][0] == mode_metrics(saved[tag][0], ring_modes(), 0.01)["modes"]
    table = (r.dir / "table.md").read_text()
    assert "| non_saturating_pack2 |" in table and "| wgan_gp_published |" in table
    assert "PacGAN Table 1: PacGAN2 | 7.9" in table
    keys.assert_distinct(rec)  # every config reuses the seed's keys on purpose (the same derivation)


def test_seeds_are_disjoint_from_the_selection_seed(quick):
    r, _ = quick("gan_ring")
    m = r.metrics
    assert m["seeds"] == [5, 6] and m["selection"]["reported_seeds"] == [5, 6]
    assert m["selection"]["selection_seeds"] == [0] and m["selection"]["disjoint"] is True
    assert "chosen by hand on seed 0" in m["selection"]["protocol"]


def test_packed_batches_as_the_released_code():
    """train.batch_size counts discriminator inputs: pack 4 draws 4 x 256 samples per critic update
    (PacGAN's released code); pack_batch=samples keeps the pre-issue-16 split of 256 samples."""
    g = runner.sibling_module(EXPERIMENTS / "gan_ring.py", "_gan2d")
    config = g.get_config("grid")
    assert g.batch_rows(config, g.make_trainer(config)) == 256
    assert g.batch_rows(config, g.make_trainer(config, pack=4)) == 4 * 256
    assert g.batch_rows(config, g.make_trainer(config, **g.WGAN_GP_PUBLISHED)) == 5 * 256
    config.train.pack_batch = "samples"
    assert g.batch_rows(config, g.make_trainer(config, pack=4)) == 256


@pytest.mark.parametrize("override, match", [
    ("model.objective=wgan", "objective"),
    ("train.pack_batch=samples model.pack=3", "divisible by model.pack"),
    ("train.pack_batch=packs", "pack_batch"),
    ("train.n_critic=0", "n_critic"),
])
def test_bad_configs_fail_before_the_run(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        runner.run_experiment("gan_ring", quick=True, overrides=override.split(), echo=False, out=tmp_path / "bad",
                              directory=EXPERIMENTS)
    assert not (tmp_path / "bad").exists()


def test_reverse_kl_of_a_seed_without_hq_samples_is_undefined_not_nan():
    """A seed whose samples are all far from every mode has no HQ histogram: its reverse KL is None
    (null in metrics.json), the mean is over the other seeds, and log and table say so, never "nan"."""
    g = runner.sibling_module(EXPERIMENTS / "gan_ring.py", "_gan2d")
    modes = ring_modes()
    good = mode_metrics(np.asarray(modes).repeat(10, axis=0), modes, 0.01)  # every mode, balanced: KL 0
    far = mode_metrics(np.zeros((80, 2)), modes, 0.01)  # the centre, 1 from every mode
    assert far["reverse_kl"] is None and far["modes"] == 0 and good["reverse_kl"] == 0.0
    mixed = g._summary([good, far], [far, far], [1.0, 1.0], 8)
    assert mixed["reverse_kl"] == [0.0, None] and mixed["reverse_kl_mean"] == 0.0
    assert json.loads(json.dumps(mixed, allow_nan=False))["reverse_kl"] == [0.0, None]  # strict JSON: no NaN
    none = g._summary([far], [far], [1.0], 8)
    assert g._kl_text(far["reverse_kl"]) == "undefined (no HQ sample)"  # the per-seed log line
    cells = {}
    for tag, summ in (("mixed", mixed), ("none", none)):
        table = g.results_table({"n_modes": 8, "default_config": tag, **summ}, "ring")
        assert "nan" not in table.lower()
        cells[tag] = table.splitlines()[2].split(" | ")[3]
    assert cells == {"mixed": "0.000 over 1 of 2 seeds (1 undefined: no HQ sample)",
                     "none": "undefined (no HQ sample)"}
