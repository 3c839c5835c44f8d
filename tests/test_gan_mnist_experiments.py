"""The MNIST GAN experiments (gan_mnist, gan_stacked_mnist, compare_vae_gan) run quick, with their
metrics checked against independent facts and their seeded quick values pinned.

Pins: measured with seed 0 on 4 virtual CPU devices under conftest's compile setting on a 2-core
x86-64 CPU with jax 0.10.2, the quick MNIST classifier (``ClassifierConfig.quick()``, seed 0); the
tolerances allow float differences between CPUs, not an untrained or differently trained model.
"""
import json

import numpy as np
import pytest

from jaxgen import keys, runner

from test_experiments import EXPERIMENTS, _check_run_folder

pytestmark = pytest.mark.needs_data("mnist")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out, cache = tmp_path_factory.mktemp("gan_quick"), {}

    def run(name):
        if name not in cache:
            with keys.recording(all_derivations=True) as rec:
                result = runner.run_experiment(name, quick=True, out=out / name, echo=False, directory=EXPERIMENTS)
            cache[name] = (result, rec)
        return cache[name]

    return run


def test_gan_mnist(quick):
    r, rec = quick("gan_mnist")
    _check_run_folder(r)
    m = r.metrics
    assert {"samples.png", "interpolation.png", "training_curve.png", "samples.npy", "metrics.jsonl"} <= {
        p.name for p in r.dir.iterdir()}
    assert np.load(r.dir / "samples.npy").shape == (256, 28, 28, 1)
    assert sum(m["class_histogram"]) == m["n_samples"] == 256 and m["samples_from"] == "EMA generator"
    assert m["curve"]["step"] == [20, 40] and m["steps"] == 40
    lines = [json.loads(x) for x in (r.dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["eval/fid"] for x in lines] == m["curve"]["fid"]  # the curve is the training log's
    assert m["fid"] > m["fid_test_vs_test"] > 0  # 40 steps of a tiny DCGAN are far from real digits
    assert m["fid"] == pytest.approx(PIN["gan_mnist"]["fid"], rel=1e-3)
    assert m["final_d_loss"] == pytest.approx(PIN["gan_mnist"]["d_loss"], rel=1e-3)
    assert m["final_g_loss"] == pytest.approx(PIN["gan_mnist"]["g_loss"], rel=1e-3)
    keys.assert_distinct(rec)


def test_gan_stacked_mnist(quick):
    r, rec = quick("gan_stacked_mnist")
    _check_run_folder(r)
    m = r.metrics
    res = m["results"]
    assert set(res) == {"DCGAN", "PacDCGAN2"} and m["n_samples"] == 500
    for row in res.values():
        assert 1 <= row["modes"] <= 500 and 0.0 <= row["reverse_kl"] <= np.log(1000) + 1e-9
    assert (m["modes"], m["reverse_kl"]) == (res["PacDCGAN2"]["per_seed"][0]["modes"],
                                             res["PacDCGAN2"]["per_seed"][0]["reverse_kl"])
    # real stacked images cover about as many modes as uniform draws would (the quick classifier misreads some)
    assert abs(m["real_test_images"]["modes"] - m["uniform_expected_modes"]) < 4 * m["uniform_expected_modes_std"] + 20
    assert m["real_test_images"]["modes"] == PIN["stacked"]["real_modes"]
    # 20 steps make no digits yet: the training path is pinned by its final losses
    dcgan = res["DCGAN"]["per_seed"][0]
    assert [dcgan["final_d_loss"], dcgan["final_g_loss"]] == pytest.approx(PIN["stacked"]["losses"], rel=1e-3)
    keys.assert_distinct(rec)


def test_compare_vae_gan(quick):
    r, rec = quick("compare_vae_gan")
    _check_run_folder(r)
    m = r.metrics
    for name in ("vae", "gan"):
        row = m[name]
        assert len(row["per_seed"]) == 2
        assert row["fid"] == pytest.approx(np.mean([s["fid"] for s in row["per_seed"]]))
        assert row["fid_std"] == pytest.approx(np.std([s["fid"] for s in row["per_seed"]], ddof=1))
        assert 1.0 <= row["mnist_score"] <= 10.0 and row["n_params"] > 0
    assert m["gan"]["test_nll_nats"] is None
    assert 0 < m["vae"]["test_nll_nats"] < 784 * np.log(2)  # better than coin flips per pixel
    assert (r.dir / "table.md").read_text().startswith("| model | domain FID")
    assert [m[k]["fid"] for k in ("vae", "gan")] == pytest.approx(PIN["compare"]["fid"], rel=1e-3)
    assert m["vae"]["test_nll_nats"] == pytest.approx(PIN["compare"]["nll"], rel=1e-3)
    keys.assert_distinct(rec)


PIN = {"gan_mnist": {"fid": 280.2865, "d_loss": 1.075148, "g_loss": 1.116917},
       "stacked": {"real_modes": 401, "losses": [1.127092, 1.060157]},
       "compare": {"fid": [373.9169, 285.1799], "nll": 338.7646}}
