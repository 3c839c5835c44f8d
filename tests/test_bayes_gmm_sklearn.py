"""jaxgen.BayesianGaussianMixture against scikit-learn's class of the same name: same data, same
initial responsibilities, float64 -> the same numbers for every covariance type and weight prior."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBGM

from jaxgen import BayesianGaussianMixture
from jaxgen.models import bayes_gmm as bg


def _data(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(40, 3)) * 0.5 + 3.0, rng.normal(size=(30, 3)) - 3.0])
    return X * scale


def _pair(resp0, **kw):
    """scikit-learn's and jaxgen's estimators, both started from the responsibilities ``resp0``."""

    class Sk(SkBGM):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp0.astype(X.dtype))

    class Ours(BayesianGaussianMixture):
        def _initial_resp(self, key, X):
            return resp0.astype(X.dtype)

    return Sk(**kw), Ours(**kw)


FITTED = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "mean_precision_",
          "degrees_of_freedom_", "mean_prior_", "covariance_prior_"]


@pytest.mark.parametrize("weight_prior", bg.WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", bg.COVARIANCE_TYPES)
def test_same_numbers_as_scikit_learn(covariance_type, weight_prior):
    """Max abs differences measured (float64, 130 points, K=4, all 8 cases): weights <= 1.5e-15,
    means <= 5.9e-15, covariances <= 8.4e-15, lower bounds <= 6.8e-11 over every iteration (values
    ~-350), same n_iter_; tolerances 1e-9 relative."""
    X = _data()
    resp0 = np.random.default_rng(1).dirichlet(np.ones(4), size=len(X))
    kw = dict(n_components=4, covariance_type=covariance_type, weight_concentration_prior_type=weight_prior,
              tol=1e-8, max_iter=500, random_state=0)
    sk, ours = _pair(resp0, **kw)
    sk.fit(X)
    labels = ours.fit_predict(X)
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ and sk.converged_
    for name in FITTED:
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-9, atol=1e-12, err_msg=name)
        assert np.shape(getattr(ours, name)) == np.shape(getattr(sk, name)), name
        assert np.asarray(getattr(ours, name)).dtype == np.float64, name
    if weight_prior == "dirichlet_process":
        assert isinstance(ours.weight_concentration_, tuple) and len(ours.weight_concentration_) == 2
    np.testing.assert_allclose(ours.weight_concentration_, sk.weight_concentration_, rtol=1e-9)
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "degrees_of_freedom_prior_"):
        assert getattr(ours, name) == pytest.approx(getattr(sk, name), rel=1e-12), name
    np.testing.assert_allclose(ours.lower_bound_, sk.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(np.ravel(ours.lower_bounds_), np.ravel(sk.lower_bounds_), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(labels, sk.predict(X))
    np.testing.assert_array_equal(ours.predict(X), labels)  # fit_predict == fit().predict


def test_defaults_are_scikit_learns():
    ours, sk = BayesianGaussianMixture().get_params(), SkBGM().get_params()
    assert {k: ours[k] for k in sk} == sk
    extra = set(ours) - set(sk)
    assert extra == {"inference", "num_warmup", "num_samples", "num_chains", "nuts_init"}


def test_warm_start_and_max_iter_zero_as_scikit_learn():
    X = _data(2)
    resp0 = np.random.default_rng(3).dirichlet(np.ones(3), size=len(X))
    sk, ours = _pair(resp0, n_components=3, max_iter=0, tol=1e-8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # max_iter=0 does not warn
        sk.fit(X)
        ours.fit(X)
    assert ours.n_iter_ == sk.n_iter_ == 0 and ours.lower_bound_ == sk.lower_bound_ == -np.inf
    assert list(ours.lower_bounds_) == list(sk.lower_bounds_) == []
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-12)
    for est in (sk, ours):
        est.set_params(max_iter=3)
        with pytest.warns(ConvergenceWarning, match="did not converge"):
            est.fit(X)
        est.set_params(warm_start=True, max_iter=500, tol=1e-4)
        est.fit(X)  # continues from the state after 3 iterations
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_ and sk.converged_
    np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-9)


@pytest.mark.parametrize("init", bg.INIT_METHODS)
def test_init_params(init):
    """Every scikit-learn initialisation; the best of n_init = 3 is at least as good as one."""
    X = _data(4)
    resp = np.asarray(bg.initial_responsibilities(__import__("jax").random.key(0), X, 3, init))
    if init in ("k-means++", "random_from_data"):  # as scikit-learn: only K distinct seed rows carry responsibility
        assert np.count_nonzero(resp) == 3 and len(np.flatnonzero(resp.sum(1))) == 3
        np.testing.assert_array_equal(resp.sum(0), 1.0)
    else:
        np.testing.assert_allclose(resp.sum(1), 1.0, rtol=1e-6)
    if init == "kmeans":
        assert set(np.unique(resp)) == {0.0, 1.0} and np.all(resp.sum(0) > 0)
    one = BayesianGaussianMixture(3, init_params=init, random_state=0, max_iter=300).fit(X)
    best = BayesianGaussianMixture(3, init_params=init, n_init=3, random_state=0, max_iter=300).fit(X)
    assert best.lower_bound_ >= one.lower_bound_ - 1e-6


def test_verbose_prints_progress(capsys):
    BayesianGaussianMixture(2, verbose=2, verbose_interval=1, max_iter=5, random_state=0).fit(_data(5)[:, :2])
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 1" in out and "lower bound" in out


def test_float64_in_float64_float32_in_float32():
    """float64 data: float64 computation and attributes, so tiny spherical variances with
    reg_covar=0 fit as in scikit-learn (float32 cannot resolve them). float32 stays float32."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(50, 2)) * 1e-6, rng.normal(size=(50, 2)) * 1e-6 + 1.0])
    resp0 = np.repeat(np.eye(2), 50, axis=0)
    kw = dict(n_components=2, covariance_type="spherical", reg_covar=0.0, covariance_prior=1e-20, tol=1e-10,
              mean_precision_prior=1e-20,
              max_iter=200, weight_concentration_prior_type="dirichlet_distribution")
    sk, ours = _pair(resp0, **kw)
    sk.fit(X)
    ours.fit(X)
    assert ours.covariances_.dtype == np.float64 and ours.covariances_.max() < 1e-10
    # scikit-learn's E[x^2] - E[x]^2 loses ~4 digits here (variance 1e-12 at mean 1); jaxgen centres per component
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-3)
    exact = [np.mean((X[:50] - X[:50].mean(0)) ** 2), np.mean((X[50:] - X[50:].mean(0)) ** 2)]
    np.testing.assert_allclose(ours.covariances_ * ours.degrees_of_freedom_ / 50, exact, rtol=1e-8)  # negligible prior
    assert ours.score_samples(X).dtype == np.float64 and ours.sample(3)[0].dtype == np.float64
    est32 = BayesianGaussianMixture(2, random_state=0).fit(_data(6).astype(np.float32))
    assert est32.means_.dtype == np.float32 and est32.score_samples(_data(6)[:4]).dtype == np.float32
    assert est32.predict_proba(_data(6)[:4]).dtype == np.float32



def test_pickled_float64_fit_answers_in_float64():
    """An unpickled float64 fit gives the original's answers with x64 off (fitted state is NumPy;
    FittedStateMixin would convert any JAX array in it). NUTS fits store their draws the same way."""
    import pickle

    X = _data(7)[:200, :2]
    est = BayesianGaussianMixture(3, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(est))
    assert again.means_.dtype == np.float64
    np.testing.assert_array_equal(again.score_samples(X), est.score_samples(X))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
