"""The vaegan_mnist experiment: a quick run's metrics (keys, ranges, consistency with the per-seed
values and the figures), distinct keys, and bad settings refused before a run folder exists."""
import json

import numpy as np
import pytest

from jaxgen import keys, runner

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_run_folder
from test_run_folder import assert_fits_checkpointed

pytestmark = pytest.mark.needs_data("mnist")
NAME = "vaegan_mnist"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("vaegan_quick") / NAME
    with keys.recording(all_derivations=True) as rec:
        result = runner.run_experiment(NAME, quick=True, out=out, echo=False, directory=EXPERIMENTS)
    return result, rec


def test_quick_run_metrics(quick):
    r, rec = quick
    _check_run_folder(r)
    m = r.metrics
    # each model checkpoints in its own folder: an interrupted run resumes (issue 17)
    assert_fits_checkpointed(r.dir, ["vaegan_seed0", "vae_seed0", "gan_seed0"])
    assert set(r.figures) >= {"samples.png", "reconstructions.png"}
    for name in ("vaegan", "vae", "gan"):
        row = m[name]
        assert len(row["per_seed"]) == 1
        assert row["fid"] == pytest.approx(row["per_seed"][0]["fid"]) and row["fid"] > 0
        assert 1.0 <= row["mnist_score"] <= 10.0
        assert 1 <= row["classes_covered"] <= 10 and 0 <= row["class_kl_to_uniform"] <= np.log(10) + 1e-6
        assert row["train_seconds"] > 0 and row["n_params"] > row["n_params_generator"] > 0
    for name in ("vaegan", "vae"):  # pixel MSE of images in [0, 1]: below 1, and no model is exact
        assert 0 < m[name]["recon_mse"] < 1
    assert m["gan"]["recon_mse"] is None
    # the VAE-GAN's decoder is the VAE's decoder module (plus a parameter-free sigmoid): same size
    assert m["vaegan"]["n_params_generator"] == m["vae"]["n_params_generator"]
    assert 0 <= m["vaegan"]["dis_updated_last_epoch"] <= 1 and 0 <= m["vaegan"]["dec_updated_last_epoch"] <= 1
    cfg = json.loads((r.dir / "config.json").read_text())
    assert m["budget_images"] == cfg["budget_epochs"] * (cfg["n_train"] // cfg["batch_size"]) * cfg["batch_size"]
    assert m["fid_test_vs_test"] < min(m[k]["fid"] for k in ("vaegan", "vae", "gan"))
    table = (r.dir / "table.md").read_text()
    assert table.startswith("| model | domain FID") and "±" not in table  # one seed: values, no "± 0.000"
    keys.assert_distinct(rec)


@pytest.mark.parametrize("overrides, message", [
    ({"vaegan.gama": 1.0}, "vaegan.gama"),
    ({"vaegan.gamma": 0.0}, "vaegan.gamma"),
    ({"vaegan.decoder_gan": "wasserstein"}, "vaegan.decoder_gan"),
    ({"vaegan.feature_layer": 5}, "feature_layer"),
    ({"batch_size": 1024}, "exceeds n_train"),
])
def test_bad_settings_are_refused_before_a_folder_exists(tmp_path, overrides, message):
    assert_refused_before_folder(NAME, overrides, message, tmp_path)
