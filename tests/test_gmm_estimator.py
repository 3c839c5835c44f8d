"""jaxgen.GaussianMixture: the scikit-learn estimator contract, checked against scikit-learn itself."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import jaxgen
from jaxgen import GaussianMixture


def _data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    X = np.repeat(centres, n // 3, axis=0) + rng.normal(scale=[1.0, 0.5], size=(n, 2))
    return X[rng.permutation(n)]  # shuffled, so that K-fold splits see every cluster


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_matches_sklearn_from_same_initial_parameters(ct):
    X = _data()
    K = 3
    w0 = np.full(K, 1 / K)
    m0 = np.array([[0.5, 0.5], [5.0, 0.0], [0.0, 5.0]])
    p0 = np.stack([np.eye(2)] * K) if ct == "full" else np.ones((K, 2))
    kw = dict(covariance_type=ct, max_iter=5, tol=0.0, weights_init=w0, means_init=m0, precisions_init=p0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(K, **kw).fit(X)
        ref = SkGMM(K, **kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_ == 5 and not ours.converged_
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), atol=1e-4)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, atol=1e-5)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert isinstance(a, np.ndarray) and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4, err_msg=name)
    assert ours.n_features_in_ == 2 and ours.lower_bounds_.shape == (5,)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(ours.bic(X), ref.bic(X), rtol=1e-5)
    np.testing.assert_allclose(ours.aic(X), ref.aic(X), rtol=1e-5)


def test_fit_predict_equals_fit_then_predict_and_is_deterministic():
    X = _data()
    g = GaussianMixture(3, random_state=0, n_init=2)
    labels = g.fit_predict(X)
    np.testing.assert_array_equal(labels, g.predict(X))
    np.testing.assert_array_equal(GaussianMixture(3, random_state=0, n_init=2).fit(X).predict(X), labels)
    assert g.converged_ and g.predict_proba(X).shape == (150, 3)
    np.testing.assert_allclose(g.predict_proba(X).sum(1), 1.0, rtol=1e-5)
    assert np.isclose(g.score(X), g.score_samples(X).mean())
    assert g.weights_.dtype == np.float32  # float32 by default
    Xs, ys = g.sample(500)
    assert Xs.shape == (500, 2) and ys.shape == (500,) and set(np.unique(ys)) <= {0, 1, 2}
    np.testing.assert_array_equal(g.sample(500)[0], Xs)  # int random_state: reproducible


def test_float64_under_x64(x64):
    X = _data()
    g = GaussianMixture(3, random_state=0).fit(X)
    ref = SkGMM(3, random_state=0, means_init=g.means_ + 0.01).fit(X)
    assert g.means_.dtype == np.float64
    assert abs(g.score(X) - ref.score(X)) < 1e-6  # the same optimum


def test_gridsearch_and_pipeline():
    X = _data(seed=1)
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=2, refit=False)
    search.fit(X)  # scored by held-out mean log-likelihood (GaussianMixture.score)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] > scores[1] > scores[0]
    pipe = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture(3, random_state=0))]).fit(X)
    labels = pipe.predict(X)
    assert labels.shape == (150,) and len(np.unique(labels)) == 3
    assert np.isfinite(pipe.score(X))


def test_clone_params_and_not_fitted():
    g = GaussianMixture(4, covariance_type="tied", reg_covar=1e-3, chunk_size=64, random_state=3)
    c = clone(g)
    assert c.get_params() == g.get_params() and c is not g
    assert set(SkGMM().get_params()) <= set(g.get_params())  # the same constructor parameters
    assert jaxgen.GaussianMixture is GaussianMixture
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(NotFittedError):
            getattr(g, method)(_data())
    with pytest.raises(NotFittedError):
        g.sample(3)


def test_warm_start_and_convergence_warning():
    X = _data()
    g = GaussianMixture(3, max_iter=1, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        g.fit(X)
    first, means = g.lower_bound_, g.means_.copy()
    g.set_params(max_iter=3, tol=0.0)
    with pytest.warns(ConvergenceWarning):
        g.fit(X)  # continues from the previous parameters (a fresh start would rerun k-means)
    assert g.n_iter_ == 3 and g.lower_bound_ >= first - 1e-6
    assert g.lower_bounds_[0] >= first - 1e-6  # the first new E-step sees the fitted parameters
    assert not np.allclose(g.means_, means, atol=0)


def test_init_params_names_accepted():
    X = _data()
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        g = GaussianMixture(3, init_params=init, random_state=1, max_iter=200).fit(X)
        assert np.all(np.isfinite(g.means_)) and g.converged_, init


def test_bad_input_raises_clear_errors():
    X = _data()
    g = GaussianMixture(2, random_state=0).fit(X)
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    Xinf = X.copy()
    Xinf[0, 0] = np.inf
    cases = [
        (lambda: GaussianMixture(2).fit(Xnan), "NaN"),
        (lambda: GaussianMixture(2).fit(Xinf), "inf"),
        (lambda: GaussianMixture(2).fit(X[:, 0]), "2-D"),
        (lambda: GaussianMixture(5).fit(X[:3]), "n_samples >= n_components"),
        (lambda: GaussianMixture(1).fit([["a", "b"], ["c", "d"]]), "numeric"),
        (lambda: GaussianMixture(0).fit(X), "n_components"),
        (lambda: GaussianMixture(2, covariance_type="banana").fit(X), "covariance_type"),
        (lambda: GaussianMixture(2, reg_covar=-1.0).fit(X), "reg_covar"),
        (lambda: GaussianMixture(2, tol=-0.1).fit(X), "tol"),
        (lambda: GaussianMixture(2, max_iter=-1).fit(X), "max_iter"),
        (lambda: GaussianMixture(2, max_iter=1.5).fit(X), "max_iter"),
        (lambda: GaussianMixture(2, n_init=0).fit(X), "n_init"),
        (lambda: GaussianMixture(2, init_params="nope").fit(X), "init_params"),
        (lambda: GaussianMixture(2, weights_init=[0.2, 0.2]).fit(X), "weights_init"),
        (lambda: GaussianMixture(2, means_init=np.zeros((3, 2))).fit(X), "means_init"),
        (lambda: GaussianMixture(2, precisions_init=np.zeros((2, 2, 2))).fit(X), "positive-definite"),
        (lambda: g.predict(np.ones((4, 3))), "features"),
        (lambda: g.score_samples(np.ones((4, 3))), "features"),
        (lambda: g.sample(0), "n_samples"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()
