"""The disentangle_sprites experiment: a quick run (every objective's two MIGs and FactorVAE score in
metrics.json, the table, the traversal and MIG figures, held-out evaluation sprites, the tour's
numbers, seeded values pinned), bad objective / factor names and weights refused before a run
folder exists.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2 (``pytest tests/test_disentangle_experiments.py``); the tolerance allows
float differences between CPUs, not a differently trained model. The untrained model (the same quick
run with ``train.lr=1e-12 factor.d_lr=1e-12``) fails every pin: ELBO -781.1, -777.6, -762.3; MIG
histogram 0.0092, 0.0080, 0.0191; MIG Chen 0.00070, 0.00055, 0.00092 (beta_vae, beta_tcvae,
factor_vae).
"""
import types

import jax
import numpy as np
import pytest

from jaxgen import keys, runner, tour
from jaxgen.data import SPRITE_FACTORS

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_run_folder
from test_run_folder import assert_fits_checkpointed

NAME = "disentangle_sprites"
OBJECTIVES = ("beta_vae", "beta_tcvae", "factor_vae")
PIN_ELBO = {"beta_vae": -690.8274, "beta_tcvae": -682.0741, "factor_vae": -681.3262}  # final training ELBO (nats), seed 0
# (MIG histogram, MIG Chen) of seed 0; the quick models barely train, but these are not the untrained model's
PIN_MIG = {"beta_vae": (0.014303, 0.0021173), "beta_tcvae": (0.013270, 0.0004429),
           "factor_vae": (0.053328, 0.0243420)}


def test_quick_run(tmp_path):
    with keys.recording(all_derivations=True) as rec:
        r = runner.run_experiment(NAME, quick=True, out=tmp_path / "q", echo=False, directory=EXPERIMENTS)
    _check_run_folder(r)
    m = r.metrics
    # every model checkpoints in its own folder: an interrupted run resumes (issue 17)
    assert_fits_checkpointed(r.dir, [f"{n}_{w}_seed0" for n in OBJECTIVES for w in m["runs"][n]])
    assert {"traversals.png", "mig_per_factor.png"} <= set(r.figures)
    assert (r.dir / "table.md").is_file()
    table = (r.dir / "table.md").read_text()
    assert "held out" in m["eval_sprites"] and "not held out" not in m["eval_sprites"]
    assert set(m["mig_estimators"]) >= {"mig_histogram", "mig_chen", "beside published numbers"}
    assert "MIG (histogram)" in table and "MIG (Chen)" in table
    assert table.startswith("one seed;") and "±" not in table  # the quick run's one seed: no "± 0.000"
    for name in OBJECTIVES:
        assert 0.0 <= m["mig_histogram"][name] <= 1.0 and 0.0 <= m["factor_vae_score"][name] <= 1.0
        assert -0.1 <= m["mig_chen"][name] <= 1.0  # Monte Carlo: an uninformed gap can dip below 0
        assert name in table
        weights = m["runs"][name]
        best = f"{m['best_weight'][name]:g}"
        assert m["mig_histogram"][name] == weights[best]["mig_histogram"] == max(
            w["mig_histogram"] for w in weights.values())
        assert m["mig_chen"][name] == weights[best]["mig_chen"]
        rows = weights[best]["per_seed"]
        assert len(rows) == m["n_seeds"] == 1
        r = rows[0]
        # the histogram MIG averages over all five factors, Chen's over scale, orientation, x, y
        assert set(r["mig_histogram_per_factor"]) == set(r["mig_chen_per_factor"]) == set(SPRITE_FACTORS)
        assert np.mean(list(r["mig_histogram_per_factor"].values())) == pytest.approx(r["mig_histogram"], rel=1e-9)
        chen = [r["mig_chen_per_factor"][f] for f in ("scale", "orientation", "x", "y")]
        assert np.mean(chen) == pytest.approx(r["mig_chen"], rel=1e-9)
        assert len(r["kl_per_latent"]) == 4 and min(r["kl_per_latent"]) >= 0.0
        assert r["elbo"] == pytest.approx(PIN_ELBO[name], rel=1e-3), name
        assert r["mig_histogram"] == pytest.approx(PIN_MIG[name][0], abs=1e-3), name
        assert r["mig_chen"] == pytest.approx(PIN_MIG[name][1], abs=5e-5), name
    best = m["best_model"]
    assert best["mig_histogram"] == max(m["mig_histogram"].values())
    assert best["mig_chen"] == m["runs"][best["objective"]][f"{best['weight']:g}"]["per_seed"][0]["mig_chen"]
    assert m["protocol_differences"] and m["accelerator"]["train.steps"] == 300_000
    assert "tc" in m["runs"]["factor_vae"]["35"]["per_seed"][0]  # the discriminator's TC estimate is reported
    # the tour's numbers read these metrics
    section = next(s for s in tour.SECTIONS if s.experiment == NAME)
    assert len(section.numbers(m)) == 4
    keys.assert_distinct(rec)


BAD = [({"objectives": ("beta_vae", "vanilla_vae")}, "vanilla_vae"),
       ({"objectives": ()}, "objectives"),
       ({"eval.factors": ("shape", "colour")}, "colour"),
       ({"eval.chen_factors": ("size",)}, "eval.chen_factors.*size"),
       ({"beta_vae": (0.0,)}, "beta_vae"),
       ({"beta_tcvae": (-2.0,)}, "beta_tcvae"),
       ({"factor_vae": (-1.0,)}, "factor_vae"),
       ({"beta_vae": ()}, "at least one weight"),
       ({"train.batch_size": 1}, "train.batch_size"),
       ({"factor.d_betas": (0.5, 1.5)}, "d_betas"),
       ({"eval.traverse_image": 10_000}, "traverse_image")]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_settings_are_refused_before_a_folder_exists(tmp_path, overrides, message):
    assert_refused_before_folder(NAME, overrides, message, tmp_path)


def test_evaluation_sprites_exclude_the_training_sprites():
    m = runner.load_experiment(NAME, EXPERIMENTS).module
    grid = 1000  # _split_grid reads only the grid's size: a small one keeps the test cheap
    small = types.SimpleNamespace(n_combinations=grid)
    ks = keys.streams(jax.random.key(0), "data", "eval")
    train, evaluation, held_out = m._split_grid(small, ks["data"], ks["eval"], 700, 300)
    assert held_out and len(train) == 700 and len(evaluation) == 300
    np.testing.assert_array_equal(np.sort(np.concatenate([train, evaluation])), np.arange(grid))  # disjoint, all
    # the training points are those of jax.random.choice without replacement (as before the split)
    np.testing.assert_array_equal(train, jax.random.choice(ks["data"], grid, (700,), replace=False))
    # no room left: evaluation points from the whole grid, distinct, and said to be not held out
    train, evaluation, held_out = m._split_grid(small, ks["data"], ks["eval"], 900, 300)
    assert not held_out and len(set(evaluation.tolist())) == 300 and np.isin(evaluation, train).any()
    data = m.Sprites(image_size=16)
    index = np.array([0, 5, 77_777, data.n_combinations - 1])
    images, factors = m._render(data, index)
    assert images.shape == (4, 16, 16, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(data.index(factors)), index)


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_mig_figure_draws_error_bars_only_over_several_seeds(tmp_path, monkeypatch, n_seeds):
    """One seed has no spread: no error bars, and the axis says "one seed" (not "std over seeds")."""
    from jaxgen import plotting

    mod = runner.load_experiment(NAME, EXPERIMENTS).module
    drawn = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: drawn.append(fig))
    per_factor = {f: 0.1 for f in SPRITE_FACTORS}
    std = {f: 0.0 if n_seeds == 1 else 0.02 for f in SPRITE_FACTORS}
    rows = {n: {"mig_histogram_per_factor": per_factor, "mig_histogram_per_factor_std": std,
                "mig_chen_per_factor": per_factor, "mig_chen_per_factor_std": std} for n in OBJECTIVES}
    run = runner.Run("demo", tmp_path, mod.get_config(), quick=True, echo=False)
    mod._mig_figure(run, rows, {n: 1.0 for n in OBJECTIVES}, n_seeds)
    run.close()
    (fig,) = drawn
    from matplotlib.container import BarContainer, ErrorbarContainer

    containers = [c for ax in fig.axes for c in ax.containers]
    bars = [c for c in containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 * len(OBJECTIVES)
    assert all((c.errorbar is None) == (n_seeds == 1) for c in bars)
    assert sum(isinstance(c, ErrorbarContainer) for c in containers) == (0 if n_seeds == 1 else len(bars))
    assert fig.axes[0].get_ylabel().endswith("one seed)" if n_seeds == 1 else "mean ± std over 3 seeds)")
    plotting.plt.close(fig)
