"""Student-t PPCA: density against scipy, EM properties, robustness, NumPyro posteriors, estimator."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.infer
import pytest
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
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


def _numpyro_logpdf(p, X):
    C = p.W @ p.W.T + p.sigma2 * jnp.eye(p.W.shape[0], dtype=p.W.dtype)
    return dist.MultivariateStudentT(p.nu, p.mu, scale_tril=jnp.linalg.cholesky(C)).log_prob(X)


def test_log_prob_matches_scipy_and_numpyro_multivariate_t():
    p = _params()
    X = np.random.default_rng(1).normal(size=(50, 4)) * 3
    ours = tpca.log_prob(p, jnp.asarray(X, jnp.float32))
    np.testing.assert_allclose(ours, _scipy_logpdf(p, X), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours, _numpyro_logpdf(p, jnp.asarray(X, jnp.float32)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("nu", [1e3, 1e4])
def test_log_prob_keeps_float32_digits_at_large_nu(nu):
    # lgamma((nu+D)/2) - lgamma(nu/2) in float32 is off by 6e-5 nats at nu = 1e3 and 3e-3 at 1e4
    # (NumPyro's form, measured); the betaln form by < 1e-6.
    p = _params(nu=nu)
    X = np.random.default_rng(2).normal(size=(50, 4))
    np.testing.assert_allclose(tpca.log_prob(p, jnp.asarray(X, jnp.float32)), _scipy_logpdf(p, X), rtol=0, atol=2e-5)


def test_log_prob_float64_exact(x64):
    p = _params(dtype=np.float64)
    X = np.random.default_rng(1).normal(size=(50, 4)) * 3
    out = tpca.log_prob(p, jnp.asarray(X))
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(out, _scipy_logpdf(p, X), rtol=1e-12)
    np.testing.assert_allclose(out, _numpyro_logpdf(p, jnp.asarray(X)), rtol=1e-12)


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


def test_ecme_nu_maximises_the_observed_likelihood():
    """The nu step against scipy: maximise scipy's multivariate-t log-likelihood over nu at fixed (mu, C)."""
    p = _params(D=3, q=1, nu=4.0)
    x, _, _ = tpca.sample(jax.random.key(1), p, 3000)
    delta, logdet = tpca._mahalanobis(p, x)
    nu = float(tpca._ecme_nu(delta, logdet, jnp.asarray(10.0), 3, jnp.asarray(tpca.NU_MAX)))
    C = np.asarray(p.W @ p.W.T, np.float64) + float(p.sigma2) * np.eye(3)
    Xn = np.asarray(x, np.float64)
    nll = lambda lnu: -stats.multivariate_t(np.asarray(p.mu, np.float64), C, df=np.exp(lnu)).logpdf(Xn).mean()
    ref = float(np.exp(optimize.minimize_scalar(nll, bounds=(np.log(0.1), np.log(1e3)), method="bounded",
                                                 options={"xatol": 1e-6}).x))
    assert 3.0 < ref < 5.5  # the sample's ML nu, near the true 4
    np.testing.assert_allclose(nu, ref, rtol=2e-3)


def test_nu_stays_at_the_bound_when_the_likelihood_keeps_increasing():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, size=(500, 3)) @ np.diag([3.0, 1.0, 0.3])  # lighter tails than any t
    p, info = tpca.fit_em(X, 2, nu_max=200.0)
    assert float(p.nu) == pytest.approx(200.0, rel=1e-4) and bool(info.nu_at_bound) and bool(info.converged)
    p, info = tpca.fit_em(X, 2)
    assert float(p.nu) == pytest.approx(tpca.NU_MAX, rel=1e-4) and bool(info.nu_at_bound)
    assert int(info.n_iter) < 30


def test_gaussian_data_converge_without_a_max_iter_warning():
    # before: EM's nu crept upwards for all 500 iterations (nu ~ 100-600) and the estimator warned
    # to raise max_iter; ECME's nu step reaches the maximum-likelihood nu (or the bound) at once.
    X = np.asarray(make_subspace(jax.random.key(0), 400, 5, 2, noise_std=0.2).X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = StudentTPCA(2).fit(X)
    assert est.converged_ and est.n_iter_ < 50 and est.nu_ > 30
    light = np.random.default_rng(0).uniform(-1.0, 1.0, size=(500, 3)) * np.array([3.0, 1.0, 0.3])
    est = StudentTPCA(2, nu_max=100.0).fit(light)
    assert est.looks_gaussian_ and est.nu_ == pytest.approx(100.0, rel=1e-4) and est.converged_
    assert not StudentTPCA(2).fit(np.asarray(make_subspace(
        jax.random.key(3), 400, 3, 2, noise_std=0.1, outlier_fraction=0.1).X)).looks_gaussian_


def _model_params():
    return _params(D=4, q=2, nu=5.0)


def test_expected_scale_given_x_averages_to_one_over_the_model():
    """Catches ``weights`` with (nu + 1) in place of (nu + D) (it averages to 6/9 here).

    Tower property: E_x[E[u | x]] = E[u] = 1, and for any set A of x, E[E[u|x]; A] = E[u; A],
    checked on the halves split at the median distance. 400 000 model draws: the standard error
    of the mean weight is 6e-4 (measured), of each half's mean 1e-3; tolerances 3e-3 and 5e-3.
    """
    p = _model_params()
    x, _, u = tpca.sample(jax.random.key(0), p, 400_000)
    w = np.asarray(tpca.weights(p, x), np.float64)
    u = np.asarray(u, np.float64)
    assert abs(w.mean() - 1.0) < 3e-3
    delta, _ = tpca._mahalanobis(p, x)
    far = np.asarray(delta > jnp.median(delta))
    for half in (far, ~far):
        assert abs(w[half].mean() - u[half].mean()) < 5e-3


def test_posterior_covariance_is_the_spread_of_z_around_its_posterior_mean():
    """Catches a wrong posterior covariance in ``encode``: on joint (z, x) draws from the model,
    the mean of (z - E[z|x])(z - E[z|x])^T equals the mean of Cov[z | x], on each half of the
    draws split at the median distance (the covariance grows with it). 400 000 draws: the largest
    relative deviation over 4 seeds was 1.1e-2 (measured); tolerance 3e-2 of the largest entry.
    A (nu + D) in place of (nu + D - 2) is off by 22 %."""
    p = _model_params()
    x, z, _ = tpca.sample(jax.random.key(1), p, 400_000)
    mean, cov = tpca.encode(p, x)
    r = np.asarray(z - mean, np.float64)
    assert np.all(np.abs(r.mean(0)) < 3e-3)  # E[z | x] is the mean
    delta, _ = tpca._mahalanobis(p, x)
    far = np.asarray(delta > jnp.median(delta))
    cov = np.asarray(cov, np.float64)
    for half in (far, ~far):
        spread = r[half].T @ r[half] / half.sum()
        predicted = cov[half].mean(0)
        np.testing.assert_allclose(spread, predicted, atol=3e-2 * np.abs(predicted).max())


def test_sample_moments_and_encode_mean():
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
    # the model's observed site is NumPyro's MultivariateStudentT: its pointwise log-likelihood is log_prob
    ll = numpyro.infer.log_likelihood(tpca.numpyro_model, mcmc.get_samples(), jnp.asarray(X), 2)["obs"]
    np.testing.assert_allclose(ll, jax.vmap(tpca.log_prob, in_axes=(0, None))(post, jnp.asarray(X)), rtol=1e-4, atol=1e-4)
    post2, losses = tpca.fit_svi(jax.random.key(1), d.X, 2, num_steps=800, subsample_size=100, num_samples=100)
    assert np.median(np.asarray(tpca.subspace_credible_angles(post2, d.W))) < 5.0
    assert float(jnp.mean(losses[-100:])) < float(jnp.mean(losses[:100]))


def _draws(S, D=4, q=2, seed=0):
    rng = np.random.default_rng(seed)
    return tpca.TPCAParams(
        mu=jnp.asarray(rng.normal(size=(S, D)), jnp.float32), W=jnp.asarray(rng.normal(size=(S, D, q)), jnp.float32),
        sigma2=jnp.asarray(rng.uniform(0.2, 0.5, size=S), jnp.float32), nu=jnp.asarray(rng.uniform(2, 20, size=S), jnp.float32),
    )


def test_posterior_predictive_equals_the_mean_density_over_draws():
    post = _draws(45)  # not a multiple of the block: the padded draws must not count
    X = jnp.asarray(np.random.default_rng(1).normal(size=(30, 4)), jnp.float32)
    lp = np.stack([np.asarray(tpca.log_prob(jax.tree.map(lambda a: a[s], post), X), np.float64) for s in range(45)])
    expected = np.log(np.mean(np.exp(lp), axis=0))
    for block in (1, 8, 45, 64):
        np.testing.assert_allclose(tpca.posterior_predictive_log_prob(post, X, draws_per_block=block), expected, rtol=1e-5)


def test_posterior_predictive_memory_does_not_grow_with_draws_times_points():
    # S = 2000 draws, N = 50 000 points: the (S, N) table of log densities would take 400 MB; the
    # compiled program's work space stays within a few (block, N) arrays (block = 32: 6.4 MB each).
    S, N = 2000, 50_000
    post = jax.tree.map(lambda a: jax.ShapeDtypeStruct((S,) + a.shape[1:], a.dtype), _draws(1))
    X = jax.ShapeDtypeStruct((N, 4), jnp.float32)
    temp = tpca._predictive.lower(post, X, 32).compile().memory_analysis().temp_size_in_bytes
    assert temp < 20 * 32 * N * 4, temp / 1e6  # < 128 MB, a third of the table


def test_estimator_computes_float64_data_in_float64():
    X = np.asarray(make_subspace(jax.random.key(5), 300, 4, 2, noise_std=0.2, outlier_fraction=0.05).X, np.float64)
    est = StudentTPCA(2, random_state=0).fit(X)
    assert not jax.config.jax_enable_x64
    for out in (est.components_, est.W_, est.weights_, est.transform(X), est.score_samples(X), est.sample(3)[0],
                est.get_covariance(), est.outlier_weights(X), est.inverse_transform(est.transform(X))):
        assert out.dtype == np.float64
    with jax.enable_x64(True):  # the same numbers as with float64 enabled globally
        ref = tpca.fit_em(X, 2)[0]
        ref_lp = np.asarray(tpca.log_prob(ref, X))
    np.testing.assert_allclose(est.nu_, float(ref.nu), rtol=1e-10)
    np.testing.assert_allclose(est.score_samples(X), ref_lp, rtol=1e-10)
    est32 = StudentTPCA(2, random_state=0).fit(X.astype(np.float32))
    assert est32.W_.dtype == est32.score_samples(X).dtype == np.float32
    np.testing.assert_allclose(est32.score(X), est.score(X), rtol=1e-4)


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
    with pytest.raises(ValueError, match="^X has 2 features, but StudentTPCA is expecting 3 features as input.$"):
        est.score_samples(X[:, :2])
    with pytest.raises(ValueError, match="n_features = 1"):
        StudentTPCA().fit(X[:, :1])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"nu": 0.0}, "nu"), ({"nu": -1.0}, "nu"), ({"n_components": 3}, "n_components"), ({"max_iter": 0}, "max_iter"),
     ({"nu_max": 0.0}, "nu_max"), ({"nu_max": 0.005}, "nu_max")],
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
