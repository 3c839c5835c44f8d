"""jaxgen.PPCA: the scikit-learn contract, agreement with sklearn.decomposition.PCA, model selection."""
import warnings

import jax
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import jaxgen
from jaxgen import PPCA
from jaxgen.models import ppca as ppca_fn

D = 8


def _data(seed=0, n=400, q=3, noise=0.4):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, q)) * np.array([3.0, 2.0, 1.5][:q])
    return rng.normal(size=(n, q)) @ W.T + noise * rng.normal(size=(n, D)) + 1.0, W


def _compare_with_sklearn(X, est, sk, atol, rtol):
    np.testing.assert_allclose(est.score_samples(X), sk.score_samples(X), rtol=rtol, atol=atol)
    np.testing.assert_allclose(est.score(X), sk.score(X), rtol=rtol, atol=atol)
    cov_scale = np.abs(sk.get_covariance()).max()
    np.testing.assert_allclose(est.get_covariance(), sk.get_covariance(), atol=atol * cov_scale)
    prec_scale = np.abs(sk.get_precision()).max()
    np.testing.assert_allclose(est.get_precision(), sk.get_precision(), atol=atol * prec_scale)
    # same convention as sklearn's svd_flip: equal rows, signs included
    np.testing.assert_allclose(est.components_, sk.components_, atol=atol * 10)
    for name in ("explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
        np.testing.assert_allclose(getattr(est, name), getattr(sk, name), rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(est.noise_variance_, sk.noise_variance_, rtol=rtol * 10)


def test_ddof1_matches_sklearn_pca_float32():
    X, _ = _data()
    est = PPCA(3, ddof=1).fit(X.astype(np.float32))
    assert est.components_.dtype == np.float32
    _compare_with_sklearn(X, est, PCA(n_components=3).fit(X), atol=2e-4, rtol=2e-5)


def test_ddof1_matches_sklearn_pca_float64():
    X, _ = _data()  # float64 data, jax_enable_x64 off: the estimator computes in float64 locally
    est = PPCA(3, ddof=1).fit(X)
    assert not jax.config.jax_enable_x64
    for out in (est.components_, est.mean_, est.W_, est.score_samples(X), est.transform(X), est.get_covariance(),
                est.get_precision(), est.inverse_transform(est.transform(X)), est.sample(3)[0]):
        assert out.dtype == np.float64
    _compare_with_sklearn(X, est, PCA(n_components=3, svd_solver="full").fit(X), atol=1e-10, rtol=1e-10)


def test_fitted_attributes_and_transforms(x64):
    X, W_true = _data(1)
    est = PPCA(3).fit(X)  # ddof=0, closed form
    assert (est.n_components_, est.n_features_in_, est.n_samples_) == (3, D, 400)
    assert est.W_.shape == (D, 3) and est.mean_.shape == (D,)
    np.testing.assert_allclose(est.components_ @ est.components_.T, np.eye(3), atol=1e-12)
    assert np.all(np.diff(est.explained_variance_) < 0)
    # ddof=0 vs ddof=1: explained variances scale by (N-1)/N, singular values agree
    sk = PCA(3).fit(X)
    np.testing.assert_allclose(est.explained_variance_, sk.explained_variance_ * 399 / 400, rtol=1e-10)
    np.testing.assert_allclose(est.singular_values_, sk.singular_values_, rtol=1e-10)
    assert float(np.max(ppca_fn.principal_angles(est.components_.T, W_true))) < 5.0
    Z = est.transform(X)
    M = est.W_.T @ est.W_ + est.noise_variance_ * np.eye(3)
    np.testing.assert_allclose(Z, np.linalg.solve(M, est.W_.T @ (X - est.mean_).T).T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.inverse_transform(Z), Z @ est.W_.T + est.mean_, rtol=1e-12)
    np.testing.assert_allclose(est.fit_transform(X), Z, rtol=1e-9, atol=1e-12)
    assert list(est.get_feature_names_out()) == ["ppca0", "ppca1", "ppca2"]
    assert PPCA().fit(X).n_components_ == D - 1


def test_em_estimator_matches_closed_form(x64):
    X, _ = _data(2)
    ml = PPCA(3).fit(X)
    em = PPCA(3, method="em", tol=1e-12, max_iter=3000, random_state=0).fit(X)
    assert em.converged_ and em.n_iter_ == len(em.log_likelihood_)
    np.testing.assert_allclose(em.score(X), ml.score(X), rtol=1e-9)
    np.testing.assert_allclose(em.components_, ml.components_, atol=1e-5)
    np.testing.assert_allclose(em.noise_variance_, ml.noise_variance_, rtol=1e-5)


def test_missing_values_need_em():
    X, W_true = _data(3)
    Xm = X.astype(np.float32)
    Xm[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    with pytest.raises(ValueError, match="method='em'"):
        PPCA(3).fit(Xm)
    est = PPCA(3, method="em", random_state=0, max_iter=2000, tol=1e-7).fit(Xm)
    assert np.all(np.diff(est.log_likelihood_) >= -1e-5 * np.abs(est.log_likelihood_[1:]))
    assert float(np.max(ppca_fn.principal_angles(est.components_.T, W_true))) < 3.0
    s = est.score_samples(Xm)
    assert s.shape == (400,) and np.all(np.isfinite(s))
    Z = est.transform(Xm)
    complete = ~np.isnan(Xm).any(axis=1)
    assert Z.shape == (400, 3) and np.all(np.isfinite(Z)) and 0 < complete.sum() < 400
    np.testing.assert_allclose(Z[complete], est.transform(Xm[complete]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="NaN"):
        PPCA(3).fit(X).transform(Xm)


def test_pipeline_and_clone():
    X, _ = _data(4)
    pipe = Pipeline([("scale", StandardScaler()), ("ppca", PPCA(2))]).fit(X)
    Z = pipe.transform(X)
    assert Z.shape == (400, 2) and np.isfinite(pipe.score(X))
    manual = PPCA(2).fit(StandardScaler().fit_transform(X))
    np.testing.assert_allclose(pipe.score(X), manual.score(StandardScaler().fit_transform(X)), rtol=1e-5)
    c = clone(PPCA(4, method="em", tol=1e-3))
    assert c.get_params()["n_components"] == 4 and c.get_params()["method"] == "em"


def test_grid_search_picks_true_latent_dimension():
    X, _ = _data(5, n=600, q=3, noise=0.5)
    gs = GridSearchCV(PPCA(), {"n_components": [1, 2, 3, 4]}, cv=3).fit(X.astype(np.float32))
    assert gs.best_params_["n_components"] == 3
    scores = gs.cv_results_["mean_test_score"]
    assert scores[2] > scores[1] > scores[0]


def test_sample_is_seeded():
    X, _ = _data(6)
    est = PPCA(3, random_state=0).fit(X)
    x1, z1 = est.sample(5)
    x2, _ = est.sample(5)
    assert x1.shape == (5, D) and z1.shape == (5, 3)
    np.testing.assert_array_equal(x1, x2)
    assert not np.allclose(PPCA(3, random_state=1).fit(X).sample(5)[0], x1)


def test_not_fitted_and_bad_input():
    X, _ = _data(7)
    with pytest.raises(NotFittedError):
        PPCA(2).transform(X)
    with pytest.raises(NotFittedError):
        PPCA(2).score_samples(X)
    for bad_q in (0, -1, D + 1, 2.5):
        with pytest.raises(ValueError, match="n_components"):
            PPCA(bad_q).fit(X)
    with pytest.raises(ValueError, match="method"):
        PPCA(2, method="svd").fit(X)
    with pytest.raises(ValueError, match="ddof"):
        PPCA(2, method="em", ddof=1).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        PPCA(1).fit(X[:, 0])
    with pytest.raises(ValueError, match="at least 2"):
        PPCA(1).fit(X[:1])
    with pytest.raises(ValueError, match="inf"):
        PPCA(2, method="em").fit(np.where(X > 4, np.inf, X))
    with pytest.raises(ValueError, match="inf"):
        PPCA(2).fit(np.where(X > 4, np.inf, X))
    with pytest.raises(ValueError, match="NaN.*use method='em' for missing values"):
        PPCA(2).fit(np.where(X > 4, np.nan, X))
    with pytest.raises(ValueError, match="numeric"):
        PPCA(1).fit([["a", "b"], ["c", "d"]])
    est = PPCA(2).fit(X)
    for method in (est.transform, est.score_samples, est.score):
        with pytest.raises(ValueError, match="^X has 5 features, but PPCA is expecting 8 features as input.$"):
            method(X[:, :5])
    with pytest.raises(ValueError, match=r"Z \(latents\) has 8 features, but the model is expecting 2"):
        est.inverse_transform(X)
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)


def test_closed_form_counts_one_iteration():
    X, _ = _data(9)
    est = PPCA(2).fit(X)
    assert est.n_iter_ == 1 and est.converged_  # scikit-learn's check_transformer_n_iter: n_iter_ >= 1


def test_sample_sizes_share_compiled_programs():
    X, _ = _data(10)
    est = PPCA(3, random_state=0).fit(X.astype(np.float32))
    est.sample(1)
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event) if event.endswith("backend_compile_duration") else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for n in range(2, 22):  # 20 distinct sizes, all in the first bucket (256 rows)
            x, z = est.sample(n)
            assert x.shape == (n, D) and z.shape == (n, 3) and x.dtype == np.float32
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    np.testing.assert_array_equal(est.sample(5)[0], est.sample(300)[0][:5])  # i.i.d. rows: a prefix is a sample
    x, z = est.sample(100_000)
    np.testing.assert_allclose(np.cov(x.T.astype(np.float64)), est.get_covariance(), atol=0.05 * est.get_covariance().max())


def test_em_warns_when_not_converged():
    X, _ = _data(8)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est = PPCA(2, method="em", max_iter=2, tol=0.0, random_state=0).fit(X)
    assert any(issubclass(w.category, ConvergenceWarning) for w in rec)
    assert not est.converged_ and est.n_iter_ == 2
    assert jaxgen.PPCA is PPCA


def test_pickled_float64_fit_answers_in_float64():
    # a float64 JAX array unpickled with x64 off would come back float32 (scikit-learn's
    # check_estimators_pickle caught a 1e-6 difference): fitted JAX state is pickled as NumPy
    import pickle

    X, _ = _data(11)
    est = PPCA(3).fit(X)
    again = pickle.loads(pickle.dumps(est))
    assert again.params_.W.dtype == np.float64 and isinstance(again.params_.W, jax.Array)
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    np.testing.assert_array_equal(again.score_samples(X), est.score_samples(X))
