"""The disentangle_sprites experiment: a quick run (every objective's MIG and FactorVAE score in
metrics.json, the table, the traversal and MIG figures, the tour's numbers, a seeded value pinned),
bad objective / factor names and weights refused before a run folder exists.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2 (``pytest tests/test_disentangle_experiments.py``); the tolerance allows
float differences between CPUs, not a differently trained model.
"""
import numpy as np
import pytest

from jaxgen import keys, runner, tour

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_run_folder

NAME = "disentangle_sprites"
OBJECTIVES = ("beta_vae", "beta_tcvae", "factor_vae")
PIN_ELBO = {"beta_vae": -690.8274, "beta_tcvae": -682.0741, "factor_vae": -681.3262}  # final training ELBO (nats), seed 0


def test_quick_run(tmp_path):
    with keys.recording(all_derivations=True) as rec:
        r = runner.run_experiment(NAME, quick=True, out=tmp_path / "q", echo=False, directory=EXPERIMENTS)
    _check_run_folder(r)
    m = r.metrics
    assert {"traversals.png", "mig_per_factor.png"} <= set(r.figures)
    assert (r.dir / "table.md").is_file()
    table = (r.dir / "table.md").read_text()
    for name in OBJECTIVES:
        assert 0.0 <= m["mig"][name] <= 1.0 and 0.0 <= m["factor_vae_score"][name] <= 1.0
        assert name in table
        weights = m["runs"][name]
        best = f"{m['best_weight'][name]:g}"
        assert m["mig"][name] == weights[best]["mig"] == max(w["mig"] for w in weights.values())
        rows = weights[best]["per_seed"]
        assert len(rows) == m["n_seeds"] == 1
        # the per-factor MIG averages to the MIG (all five factors evaluated)
        assert set(rows[0]["mig_per_factor"]) == {"shape", "scale", "orientation", "x", "y"}
        assert np.mean(list(rows[0]["mig_per_factor"].values())) == pytest.approx(rows[0]["mig"], rel=1e-9)
        assert len(rows[0]["kl_per_latent"]) == 4 and min(rows[0]["kl_per_latent"]) >= 0.0
        assert rows[0]["elbo"] == pytest.approx(PIN_ELBO[name], rel=1e-3), name
    assert m["best_model"]["mig"] == max(m["mig"].values())
    assert m["protocol_differences"] and m["accelerator"]["train.steps"] == 300_000
    assert "tc" in m["runs"]["factor_vae"]["35"]["per_seed"][0]  # the discriminator's TC estimate is reported
    # the tour's numbers read these metrics
    section = next(s for s in tour.SECTIONS if s.experiment == NAME)
    assert len(section.numbers(m)) == 4
    keys.assert_distinct(rec)


BAD = [({"objectives": ("beta_vae", "vanilla_vae")}, "vanilla_vae"),
       ({"objectives": ()}, "objectives"),
       ({"eval.factors": ("shape", "colour")}, "colour"),
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
