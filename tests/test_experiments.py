"""Every experiment in experiments/ runs with its quick settings and its metrics are right.

Each metric is checked against something independent: the known Old Faithful optimum, scikit-learn
fits of the same data, the closed-form single-Gaussian likelihood, the true generating model.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture

from jaxgen import runner
from jaxgen.data import load_faithful

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Run each experiment once (quick) and keep the results for the tests of this module."""
    out = tmp_path_factory.mktemp("quick")
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = runner.run_experiment(name, quick=True, out=out / name, echo=False, directory=EXPERIMENTS)
        return cache[name]

    return get


def _check_run_folder(result):
    files = {p.name for p in result.dir.iterdir()}
    assert {"config.json", "metrics.json", "log.txt", "run.json"} <= files
    assert result.figures and all(f in files for f in result.figures)
    assert json.loads((result.dir / "metrics.json").read_text()) == result.metrics
    assert json.loads((result.dir / "config.json").read_text()) == json.loads(json.dumps(runner.to_jsonable(result.config.to_dict())))


def test_ppca_generative(quick_runs):
    r = quick_runs("ppca_generative")
    _check_run_folder(r)
    m = r.metrics
    assert m["max_angle_deg_ml"] < 2.0 and m["max_angle_deg_em"] < 2.0
    assert abs(m["sigma2_ml"] - m["sigma2_true"]) < 0.2 * m["sigma2_true"]
    # EM and the closed form are the same maximum (to ~sqrt(machine eps) in the flat directions).
    assert m["em_vs_ml_max_abs_cov_diff"] < 1e-4 and abs(m["em_vs_ml_loglik_diff"]) < 1e-8
    assert m["em_converged"]
    # The fit generalises almost as well as the truth; the ML fit is best on its own training data.
    assert abs(m["test_loglik_ml"] - m["test_loglik_true"]) < 0.1
    # Generated points are as plausible under the true model as real held-out points.
    assert abs(m["generated_loglik_true"] - m["test_loglik_true"]) < 0.15


def test_gmm_faithful_1d(quick_runs):
    r = quick_runs("gmm_faithful_1d")
    _check_run_folder(r)
    m = r.metrics
    x = load_faithful()[:, :1]
    sk = GaussianMixture(2, n_init=5, tol=1e-8, max_iter=1000, random_state=0).fit(x)
    assert m["loglik_total"] == pytest.approx(sk.score(x) * len(x), abs=0.01)
    order = np.argsort(sk.means_[:, 0])
    np.testing.assert_allclose(m["means"], sk.means_[order, 0], atol=1e-3)
    np.testing.assert_allclose(m["weights"], sk.weights_[order], atol=1e-3)
    np.testing.assert_allclose(m["stds"], np.sqrt(sk.covariances_[order, 0, 0]), atol=1e-3)
    # K=1 is one Gaussian: its BIC is in closed form.
    ll1 = stats.norm.logpdf(x[:, 0], x.mean(), x.std()).sum()
    assert m["bic"]["1"] == pytest.approx(-2 * ll1 + 2 * math.log(len(x)), abs=1e-3)
    assert m["bic"]["2"] < m["bic"]["1"] - 200  # bimodal: K=2 wins by far
    assert m["generated_ks"] < 0.1


def test_gmm_faithful_2d(quick_runs):
    r = quick_runs("gmm_faithful_2d")
    _check_run_folder(r)
    m = r.metrics
    assert abs(m["loglik_total"] - (-1130.26)) < 0.05 and m["gap"] == pytest.approx(m["loglik_total"] + 1130.26)
    X = load_faithful()
    ll1 = stats.multivariate_normal(X.mean(0), np.cov(X.T, ddof=0)).logpdf(X).sum()
    assert m["bic"]["full"][0] == pytest.approx(-2 * ll1 + 5 * math.log(len(X)), abs=1e-3)
    assert m["aic"]["full"][0] == pytest.approx(-2 * ll1 + 2 * 5, abs=1e-3)
    assert m["best_bic"] == {"covariance_type": "full", "K": 2, "bic": pytest.approx(m["bic"]["full"][1])}
    assert len(m["bic"]["diag"]) == r.config.k_max
    np.testing.assert_allclose(sum(m["weights"]), 1.0, atol=1e-9)
    assert m["means"][0][0] < 2.5 < 4.0 < m["means"][1][0]  # short and long eruptions


def test_outliers(quick_runs):
    r = quick_runs("outliers")
    _check_run_folder(r)
    auc = r.metrics["auc"]
    q_sub = r.config.subspace.ppca_components
    assert auc["subspace"][f"PPCA (q={q_sub})"] > 0.95
    gmm_name = f"GMM (K={r.config.gmm.n_components})"
    assert auc["blobs"][gmm_name] > 0.85
    # A density model beats the model-free baseline on both data sets.
    for name in ("subspace", "blobs"):
        assert max(auc[name].values()) > auc[name]["distance to mean"] + 0.05
    assert r.metrics["outlier_fraction"]["blobs"] == pytest.approx(0.1, abs=0.01)


def test_robust_pca(quick_runs):
    """The seed claim: with 10% gross outliers PPCA is off by > 20 degrees, Student-t PCA within 3."""
    r = quick_runs("robust_pca")
    _check_run_folder(r)
    for part in ("2d", "hd"):
        angles, auc = r.metrics[part]["angle_deg"], r.metrics[part]["auc"]
        assert angles["PPCA, with outliers"] > 20.0
        assert angles["Student-t PCA, with outliers"] < 3.0 and angles["PPCA, clean data"] < 3.0
        assert auc["Student-t PCA, with outliers"] > 0.98
    assert r.metrics["nuts"]["angle_deg_median"] < 3.0


def test_bayes_gmm_faithful(quick_runs):
    """PRML Fig. 10.6: alpha0 = 1e-3 leaves two components; the weights match scikit-learn's VB."""
    from sklearn.mixture import BayesianGaussianMixture

    r = quick_runs("bayes_gmm_faithful")
    _check_run_folder(r)
    vb = r.metrics["vb"]
    assert vb["alpha0=0.001"]["n_components_used"] == 2 and vb["alpha0=0.001"]["mode_occupied"] == 2
    assert vb["alpha0=10"]["n_components_used"] > 2
    X = load_faithful()
    X = (X - X.mean(0)) / X.std(0)
    sk = BayesianGaussianMixture(n_components=6, weight_concentration_prior_type="dirichlet_distribution",
                                 weight_concentration_prior=1e-3, max_iter=2000, tol=1e-8, random_state=0).fit(X)
    np.testing.assert_allclose(vb["alpha0=0.001"]["weights"], np.sort(sk.weights_)[::-1], atol=2e-3)


def test_bayes_gmm_blobs(quick_runs):
    r = quick_runs("bayes_gmm_blobs")
    _check_run_folder(r)
    ours, sk = r.metrics["table"]["jaxgen VB"], r.metrics["table"]["scikit-learn VB"]
    assert ours["clusters_found"] == r.metrics["true_k"] == sk["clusters_found"]
    assert ours["ari_test"] > 0.9
    assert abs(ours["heldout_log_predictive_per_point"] - sk["heldout_log_predictive_per_point"]) < 0.05


def test_vae_continuous(quick_runs):
    r = quick_runs("vae_continuous")
    _check_run_folder(r)
    m = r.metrics
    assert {"manifold.png", "interpolations.png"} <= set(r.figures)
    # importance sampling tightens the ELBO (the quick run is too short to beat PPCA: the full one does)
    assert m["test_loglik_nats"] >= m["test_elbo_nats"]
    assert np.isfinite(m["test_loglik_ppca_nats"]) and m["epochs"] == 20


def test_vae_mnist(quick_runs):
    from jaxgen.data.files import data_dir

    if not (data_dir() / "mnist.npz").is_file():
        pytest.skip("mnist.npz is not in JAXGEN_DATA_DIR")
    r = quick_runs("vae_mnist")
    _check_run_folder(r)
    m = r.metrics
    assert {"test_nll_nats", "test_elbo_nats", "train_seconds", "epochs"} <= set(m)
    assert m["n_params"] == 217_300 + 207_984  # Burda et al.'s 784-200-200-50 encoder and decoder
    assert m["test_nll_nats"] <= -m["test_elbo_nats"] + 1e-3  # NLL estimate below the negative ELBO
    assert 60.0 < m["test_nll_nats"] < 550.0
