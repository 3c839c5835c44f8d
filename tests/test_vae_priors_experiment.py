"""The vae_priors experiment: a quick run selects its settings on validation data and writes every prior's
NLL, KL and active units; bad configs fail before any folder; a prior's numbers are reproducible and do not
depend on the other priors run nor on the selection stage."""
import json

import jax
import numpy as np
import pytest

from jaxgen import keys, runner

from test_experiments import EXPERIMENTS, assert_refused_before_folder, _check_run_folder

pytestmark = pytest.mark.needs_data("mnist")

PRIORS = ("normal", "mog", "vamp")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae_priors")
    with keys.recording(all_derivations=True) as rec:
        result = runner.run_experiment("vae_priors", quick=True, out=out / "run", echo=False, directory=EXPERIMENTS)
    return result, rec, out


def test_quick_run_writes_every_prior(quick):
    r, rec, _ = quick
    _check_run_folder(r)
    m, c = r.metrics, r.config
    assert {"table.md", "samples.png", "nll.png", "active_units.png"} <= {p.name for p in r.dir.iterdir()}
    assert m["priors"] == list(PRIORS) and m["k"] == c.eval.k and m["n_test_nll"] == c.eval.n_test_nll
    q, K = c.model.latent_dim, c.n_components
    for p in PRIORS:
        s = m[p]
        assert len(s["per_seed"]) == c.n_seeds
        for row in s["per_seed"]:
            assert 0 <= row["active_units"] <= q and isinstance(row["active_units"], int)
            # the untrained quick model scores 558-560 nats (about 784 log 2 = 543), one epoch about 447: the
            # quick models (304-324) have learnt something
            assert 0 < row["test_nll_nats"] < 400
            # the k-sample bound is tighter than the one-sample ELBO: its expected gap (7 nats here) dwarfs the noise
            assert row["test_nll_nats"] < -row["test_elbo_nats"]
            assert row["test_elbo_nats"] == pytest.approx(row["recon_nats"] - row["kl_nats"], abs=1e-3)
        for name in ("test_nll_nats", "kl_nats", "active_units", "test_elbo_nats"):
            vals = [row[name] for row in s["per_seed"]]
            assert s[name] == pytest.approx(np.mean(vals)) and s[f"{name}_std"] == pytest.approx(np.std(vals, ddof=1))
    # the analytic KL to N(0, I) is >= 0 (the mixtures' one-sample estimate need not be)
    assert all(row["kl_nats"] > 0 for row in m["normal"]["per_seed"])
    # each model has its own prior: MoG adds K (2q + 1) parameters, the VampPrior K * 784 pseudo-pixels
    n = {p: m[p]["per_seed"][0]["n_params"] for p in PRIORS}
    assert n["mog"] - n["normal"] == K * (2 * q + 1) and n["vamp"] - n["normal"] == K * 784
    table = (r.dir / "table.md").read_text()
    assert all(f"| {p} |" in table for p in PRIORS) and f"{m['vamp']['test_nll_nats']:.2f} ±" in table
    assert m["protocol_differences"] and m["accelerator"]["n_components"] == 500
    for p in PRIORS:  # seed 0's per-unit variances, whose count above the threshold is the table's
        v = np.array(m[p]["unit_variances_seed0"])
        assert v.shape == (q,) and int((v > c.eval.active_threshold).sum()) == m[p]["per_seed"][0]["active_units"]
    keys.assert_distinct(rec)


def test_quick_run_selects_on_validation_data(quick):
    r, rec, _ = quick
    m, c = r.metrics, r.config
    sel = m["selection"]
    budgets = list(zip(c.select.epochs, c.select.warmup_epochs))
    cands = sel["candidates"]
    # every (budget, VampPrior start) pair once, in order; with one budget only the VampPrior differs between
    # candidates, so only it is trained and scored
    assert [(x["epochs"], x["warmup_epochs"], x["vamp_init"]) for x in cands] == \
        [(e, w, i) for e, w in budgets for i in c.select.vamp_inits]
    assert len(budgets) == 1 and sel["scored_priors"] == ["vamp"]
    for x in cands:
        assert set(x["per_prior"]) == {"vamp"} and x["valid_nll_mean_nats"] == x["per_prior"]["vamp"]["valid_nll_nats"]
        assert 0 < x["valid_nll_mean_nats"] < 400  # trained (the untrained model: about 558)
    assert cands[0]["per_prior"]["vamp"] != cands[1]["per_prior"]["vamp"]  # the start matters
    best = min(cands, key=lambda x: x["valid_nll_mean_nats"])
    assert sel["chosen"] == {k: best[k] for k in ("epochs", "warmup_epochs", "vamp_init")}
    assert (m["epochs"], m["warmup_epochs"], m["vamp_init"]) == tuple(sel["chosen"].values())
    assert sel["k"] == c.select.k and sel["n_valid"] == c.select.n_valid and "validation" in sel["protocol"]
    assert "| mean |" in (r.dir / "selection.md").read_text()
    # the selection seed is not a reported replicate: its training key is none of theirs
    k_train = dict(rec)["train"]
    sel_key = keys.stream(dict(rec)["select"], "train")
    assert all(keys.key_bytes(sel_key) != keys.key_bytes(jax.random.fold_in(k_train, s)) for s in range(c.n_seeds))


def test_a_prior_does_not_depend_on_the_others_nor_on_the_selection(quick):
    # every prior of a replicate gets the same keys, and the selection draws on its own streams: vamp alone,
    # selecting between two budgets (one epoch or the full run's choice), chooses the full run's settings and
    # gives its numbers of the full run
    r, _, out = quick
    chosen = r.metrics["selection"]["chosen"]
    overrides = {"priors": ("vamp",), "n_seeds": 1, "select.epochs": (1, chosen["epochs"]),
                 "select.warmup_epochs": (1, chosen["warmup_epochs"]), "select.vamp_inits": (chosen["vamp_init"],)}
    alone = runner.run_experiment("vae_priors", quick=True, overrides=overrides, out=out / "vamp_alone", echo=False,
                                  directory=EXPERIMENTS)
    sel = alone.metrics["selection"]
    assert [x["epochs"] for x in sel["candidates"]] == [1, chosen["epochs"]] and sel["scored_priors"] == ["vamp"]
    assert sel["chosen"] == chosen  # two epochs beat one by about 130 nats
    a, b = alone.metrics["vamp"]["per_seed"][0], r.metrics["vamp"]["per_seed"][0]
    for name in ("test_nll_nats", "test_elbo_nats", "kl_nats", "active_units", "train_elbo"):
        assert a[name] == b[name], name
    assert set(json.loads((alone.dir / "metrics.json").read_text())) >= {"vamp", "priors"}
    assert "normal" not in alone.metrics
    # the protocol names the start used
    said = {"data": "random training images", "grey": "0.5 + 0.05 N(0, 1)"}
    assert any(said[chosen["vamp_init"]] in d for d in r.metrics["protocol_differences"])
    exp = runner.load_experiment("vae_priors", EXPERIMENTS)
    for init, text in said.items():
        assert any(text in d for d in exp.module.differences(runner.resolve_config(exp, overrides={"vamp_init": init})))


@pytest.mark.parametrize("overrides, match", [
    ({"priors": ("normal", "gauss")}, r"priors.*one of \['normal', 'mog', 'vamp'\]"),
    ({"priors": ("vamp", "vamp")}, "must not repeat"),
    ({"priors": ()}, "at least one"),
    ({"eval.k": 0}, "eval.k"),
    ({"eval.n_test_nll": 0}, "eval.n_test_nll"),
    ({"n_components": 0}, "n_components"),
    ({"train.warmup_epochs": 3, "train.epochs": 2}, "warmup_epochs"),
    ({"eval.n_active": 1}, "eval.n_active"),
    ({"vamp_init": "mean"}, "vamp_init"),
    ({"vamp_init": "data", "n_components": 401}, "distinct training images"),
    ({"select.enabled": False, "vamp_init": "data", "n_components": 401}, "distinct training images"),
    ({"select.epochs": (1, 2, 3)}, "of one length"),
    ({"select.warmup_epochs": (3,)}, "warm-up <= epochs"),
    ({"select.epochs": (2, 2), "select.warmup_epochs": (1, 1)}, "distinct"),
    ({"select.vamp_inits": ("data", "data")}, "distinct values"),
    ({"select.vamp_inits": ("zeros",)}, "select.vamp_inits"),
    ({"select.k": 0}, "select.k"),
])
def test_bad_config_fails_before_any_folder(tmp_path, overrides, match):
    assert_refused_before_folder("vae_priors", overrides, match, tmp_path)


def test_accelerator_protocol_differences_shrink():
    exp = runner.load_experiment("vae_priors", EXPERIMENTS)
    default = runner.resolve_config(exp)
    acc = runner.resolve_config(exp, overrides=exp.module.ACCELERATOR)
    d_default, d_acc = exp.module.differences(default), exp.module.differences(acc)
    assert any(d.startswith("K: 100 ") for d in d_default) and any(d.startswith("epochs:") for d in d_default)
    assert not any(d.startswith(("K:", "epochs:", "test images")) for d in d_acc)
    assert "K = 100" in exp.module.__doc__ and "n_components=500" in exp.module.__doc__
