"""jaxgen.GaussianMixture: the scikit-learn estimator contract, checked against scikit-learn itself."""
import contextlib
import re
import warnings

import jax
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
    assert g.weights_.dtype == np.float64  # float64 data: fitted in float64, as in scikit-learn
    g32 = GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    assert g32.weights_.dtype == g32.score_samples(X).dtype == np.float32  # the fast path
    Xs, ys = g.sample(500)
    assert Xs.shape == (500, 2) and ys.shape == (500,) and set(np.unique(ys)) <= {0, 1, 2}
    np.testing.assert_array_equal(g.sample(500)[0], Xs)  # int random_state: reproducible


def test_float64_data_are_fitted_in_float64_without_x64():
    X = _data()
    g = GaussianMixture(3, random_state=0).fit(X)
    ref = SkGMM(3, random_state=0, means_init=g.means_ + 0.01).fit(X)
    assert not jax.config.jax_enable_x64  # the estimator enabled float64 locally only
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "lower_bounds_"):
        assert getattr(g, name).dtype == np.float64, name
    for out in (g.score_samples(X), g.predict_proba(X), g.sample(5)[0]):
        assert out.dtype == np.float64
    assert abs(g.score(X) - ref.score(X)) < 1e-9  # the same optimum, to float64 precision


def _tiny_spherical_data():
    """Two clusters at +-1e-18 with spread 1e-20: variances ~1e-40 lie below float32's smallest
    normal number (1.2e-38), fine in float64."""
    rng = np.random.default_rng(0)
    return np.concatenate([1e-18 + 1e-20 * rng.normal(size=(40, 2)), -1e-18 + 1e-20 * rng.normal(size=(40, 2))])


def test_a_fit_scikit_learn_completes_in_float64_completes_in_float64():
    X = _tiny_spherical_data()
    kw = dict(covariance_type="spherical", reg_covar=0.0, tol=1e-10, max_iter=50, weights_init=[0.5, 0.5],
              means_init=[[1e-18, 1e-18], [-1e-18, -1e-18]], precisions_init=[1e40, 1e40])
    ref = SkGMM(2, **kw).fit(X)
    ours = GaussianMixture(2, **kw).fit(X)
    assert ref.converged_ and ours.converged_ and ours.n_iter_ == ref.n_iter_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-12)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):  # why float64 is needed
        GaussianMixture(2, covariance_type="spherical", reg_covar=0.0, random_state=0).fit(X.astype(np.float32))


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
        (lambda: GaussianMixture(2, weights_init=[0.5, np.nan]).fit(X), "weights_init contains 1 NaN"),
        (lambda: g.sample(1.5), "n_samples"),
        (lambda: g.sample(-2), "n_samples"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


_EYE2 = np.stack([np.eye(2)] * 2)
_NOT_PD = np.stack([np.eye(2), -np.eye(2)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights_init": [0.2, 0.2]},  # not normalised
        {"weights_init": [1.5, -0.5]},  # out of [0, 1]
        {"weights_init": [0.2, 0.3, 0.5]},  # shape
        {"means_init": np.zeros((3, 2))},
        {"means_init": np.zeros(2)},
        {"precisions_init": np.zeros((3, 2, 2))},
        {"precisions_init": _NOT_PD},
        {"precisions_init": np.array([[[1.0, 0.5], [0.0, 1.0]]] * 2)},  # not symmetric
        {"precisions_init": np.eye(3), "covariance_type": "tied"},
        {"precisions_init": -np.eye(2), "covariance_type": "tied"},
        {"precisions_init": np.ones(2), "covariance_type": "diag"},
        {"precisions_init": np.array([[1.0, 0.0], [1.0, 1.0]]), "covariance_type": "diag"},
        {"precisions_init": np.ones(3), "covariance_type": "spherical"},
        {"precisions_init": np.array([1.0, -1.0]), "covariance_type": "spherical"},
    ],
)
def test_invalid_initial_parameters_get_scikit_learns_message(kwargs):
    X = _data()
    with pytest.raises(ValueError) as ref:
        SkGMM(2, **kwargs).fit(X)
    with pytest.raises(ValueError, match=re.escape(str(ref.value))):
        GaussianMixture(2, **kwargs).fit(X)


def test_wrong_feature_count_and_sample_zero_get_scikit_learns_message():
    X = _data()
    ours, ref = GaussianMixture(2, random_state=0).fit(X), SkGMM(2, random_state=0).fit(X)
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError) as expected:
            getattr(ref, method)(np.ones((4, 3)))
        assert str(expected.value) == "X has 3 features, but GaussianMixture is expecting 2 features as input."
        with pytest.raises(ValueError, match=re.escape(str(expected.value))):
            getattr(ours, method)(np.ones((4, 3)))
    with pytest.raises(ValueError) as expected:
        ref.sample(0)
    # scikit-learn prints n_components where it means n_samples; the words are the same
    pattern = r"Invalid value for 'n_samples': -?\d+ \. The sampling requires at least one sample\."
    assert re.fullmatch(pattern, str(expected.value))
    with pytest.raises(ValueError, match=pattern):
        ours.sample(0)


@contextlib.contextmanager
def _count_compilations():
    """Collect the XLA compilations that happen inside the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_sample_compiles_nothing_per_size_and_has_the_fitted_distribution(ct):
    X = _data().astype(np.float32)
    g = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    g.sample(2)  # the random_state -> key derivation compiles once
    with _count_compilations() as compiled:
        for n in range(1, 21):  # 20 distinct sizes: this compiled 20 programs (10 s) before
            x, y = g.sample(n)
            assert x.shape == (n, 2) and y.shape == (n,) and x.dtype == np.float32
    assert compiled == []
    x, y = g.sample(200_000)
    assert np.all(np.diff(y) >= 0)  # grouped by component, as scikit-learn
    counts = np.bincount(y, minlength=3)
    # multinomial counts: within 5 standard deviations of n w_k
    sd = np.sqrt(200_000 * g.weights_ * (1 - g.weights_))
    assert np.all(np.abs(counts - 200_000 * g.weights_) < 5 * sd)
    cov = g.covariances_
    for k in range(3):
        xk = x[y == k].astype(np.float64)
        full = {"full": cov[k] if ct == "full" else None, "tied": cov, "diag": np.diag(cov[k]) if ct == "diag" else None,
                "spherical": cov[k] * np.eye(2) if ct == "spherical" else None}[ct]
        sd_mean = np.sqrt(np.diag(full) / len(xk))
        assert np.all(np.abs(xk.mean(0) - g.means_[k]) < 5 * sd_mean), k
        np.testing.assert_allclose(np.cov(xk.T), full, rtol=0.05, atol=0.05 * np.abs(full).max())
    np.testing.assert_array_equal(g.sample(7)[0], g.sample(7)[0])  # int random_state: reproducible
    assert not np.array_equal(GaussianMixture(3, covariance_type=ct, random_state=1).fit(X).sample(7)[0], g.sample(7)[0])
