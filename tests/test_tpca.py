"""Student-t PPCA: density against scipy, EM properties, robustness, NumPyro posteriors, estimator."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from jaxgen import PPCA, StudentTPCA
from jaxgen.data import make_subspace
from jaxgen.linalg import principal_angles
from jaxgen.models import tpca


@pytest.fixture(scope="module")
def contaminated():
    return make_subspace(jax.random.key(3), 400, 3, 2, noise_std=0.1, outlier_fraction=0.1)


def _params(D=4, q=2, nu=5.0, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return tpca.TPCAParams(
        mu=jnp.asarray(rng.normal(size=D), dtype), W=jnp.asarray(rng.normal(size=(D, q)), dtype),
        sigma2=jnp.asarray(0.3, dtype), nu=jnp.asarray(nu, dtype),
    )


def _scipy_logpdf(p, X):
    C = np.asarray(p.W, np.float64) @ np.asarray(p.W, np.float64).T + float(p.sigma2) * np.eye(p.W.shape[0])
    return stats.multivariate_t(loc=np.asarray(p.mu, np.float64), shape=C, df=float(p.nu)).logpdf(X)


def test_log_prob_matches_scipy_multivariate_t():
    p = _params()
    X = np.random.default_rng(1).normal(size=(50, 4)) * 3
    np.testing.assert_allclose(tpca.log_prob(p, jnp.asarray(X, jnp.float32)), _scipy_logpdf(p, X), rtol=1e-5, atol=1e-4)


def test_log_prob_float64_exact(x64):
    p = _params(dtype=np.float64)
    X = np.random.default_rng(1).normal(size=(50, 4)) * 3
    out = tpca.log_prob(p, jnp.asarray(X))
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(out, _scipy_logpdf(p, X), rtol=1e-12)


def test_em_never_decreases_the_likelihood(contaminated):
    _, info = tpca.fit_em(contaminated.X, 2)
    h = np.asarray(info.log_likelihood)[: int(info.n_iter)]
    assert bool(info.converged) and len(h) > 3
    assert np.all(np.diff(h) >= -1e-5 * np.abs(h[1:]))


def test_em_fixed_large_nu_is_gaussian_ppca():
    data = make_subspace(jax.random.key(0), 500, 4, 2, noise_std=0.2)
    p, _ = tpca.fit_em(data.X, 2, nu=1e4, learn_nu=False)
    g = PPCA(2).fit(np.asarray(data.X))
    assert float(principal_angles(p.W, g.W_)[-1]) < 0.5
    np.testing.assert_allclose(float(p.sigma2), g.noise_variance_, rtol=2e-2)


def test_robust_where_gaussian_pca_is_dragged_off(contaminated):
    d = contaminated
    p, _ = tpca.fit_em(d.X, 2)
    t_angle = float(principal_angles(p.W, d.W)[-1])
    g_angle = float(principal_angles(PCA(2).fit(np.asarray(d.X)).components_.T, d.W)[-1])
    assert t_angle < 3.0 and g_angle > 20.0, (t_angle, g_angle)
    w = np.asarray(tpca.weights(p, d.X))
    assert roc_auc_score(np.asarray(d.is_outlier), -w) > 0.98
    assert roc_auc_score(np.asarray(d.is_outlier), np.asarray(tpca.outlier_score(p, d.X))) > 0.98


def test_nu_equation_root():
    for c in (-1.05, -1.5, -3.0):
        nu = float(tpca._solve_nu(jnp.asarray(c), jnp.float32))
        assert abs(1 + np.log(nu / 2) - digamma(nu / 2) + c) < 1e-3
    assert float(tpca._solve_nu(jnp.asarray(-1.0), jnp.float32)) > 1e3  # Gaussian data: nu -> large


def test_sample_moments_and_encode():
    p = _params(D=3, q=1, nu=8.0)
    x, z, u = tpca.sample(jax.random.key(0), p, 200_000)
    C = np.asarray(p.W @ p.W.T) + float(p.sigma2) * np.eye(3)
    np.testing.assert_allclose(np.cov(np.asarray(x).T), 8.0 / 6.0 * C, rtol=0.05, atol=0.02)
    np.testing.assert_allclose(np.mean(np.asarray(u)), 1.0, atol=0.01)
    mean, cov = tpca.encode(p, x[:5])
    M = np.asarray(p.W.T @ p.W) + float(p.sigma2)
    np.testing.assert_allclose(mean, (np.asarray(x[:5]) - np.asarray(p.mu)) @ np.asarray(p.W) / M, rtol=1e-4, atol=1e-5)
    assert cov.shape == (5, 1, 1) and bool(jnp.all(cov > 0))


def test_nuts_and_svi_posteriors(contaminated):
    d = contaminated
    X = np.asarray(d.X)[:150]
    post, mcmc = tpca.fit_nuts(jax.random.key(0), X, 2, num_warmup=150, num_samples=150)
    angles = np.asarray(tpca.subspace_credible_angles(post, d.W))
    assert np.median(angles) < 5.0 and np.all(np.isfinite(angles))
    lp = tpca.posterior_predictive_log_prob(post, jnp.asarray(X))
    assert lp.shape == (150,) and bool(jnp.all(jnp.isfinite(lp)))
    assert float(jnp.median(post.nu)) < 5.0  # outliers make the tails heavy
    post2, losses = tpca.fit_svi(jax.random.key(1), d.X, 2, num_steps=800, subsample_size=100, num_samples=100)
    assert np.median(np.asarray(tpca.subspace_credible_angles(post2, d.W))) < 5.0
    assert float(jnp.mean(losses[-100:])) < float(jnp.mean(losses[:100]))


def test_estimator_contract(contaminated):
    X = np.asarray(contaminated.X)
    est = StudentTPCA(2, random_state=0).fit(X)
    assert est.components_.shape == (2, 3) and est.weights_.shape == (400,)
    np.testing.assert_allclose(est.components_ @ est.components_.T, np.eye(2), atol=1e-5)
    assert float(principal_angles(jnp.asarray(est.components_.T), contaminated.W)[-1]) < 3.0
    np.testing.assert_allclose(est.score_samples(X), tpca.log_prob(est.params_, jnp.asarray(X)), rtol=1e-6)
    Z = est.transform(X)
    assert Z.shape == (400, 2) and est.inverse_transform(Z).shape == (400, 3)
    assert est.sample(7)[0].shape == (7, 3)
    assert clone(est).get_params()["n_components"] == 2
    with pytest.raises(ValueError, match="features"):
        est.score_samples(X[:, :2])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"nu": 0.0}, "nu"), ({"nu": -1.0}, "nu"), ({"n_components": 3}, "n_components"), ({"max_iter": 0}, "max_iter")],
)
def test_bad_config(kwargs, match):
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match=match):
        StudentTPCA(**{"n_components": 1, **kwargs}).fit(X)


def test_bad_data():
    with pytest.raises(ValueError, match="NaN"):
        StudentTPCA(1).fit(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        StudentTPCA(1).fit(np.arange(5.0))
