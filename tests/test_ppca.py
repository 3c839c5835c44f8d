"""Pure PPCA functions against scikit-learn, scipy, closed forms and EM properties."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA

from jaxgen.models import ppca

N, D, Q = 300, 6, 2


def _data(seed=0, n=N, d=D, q=Q, noise=0.5):
    """Data from the PPCA model itself; returns (X float64, true loadings (d, q))."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q)) * np.array([3.0, 2.0, 1.5, 1.2][:q])
    X = rng.normal(size=(n, q)) @ W.T + noise * rng.normal(size=(n, d)) + rng.normal(size=d) * 3
    return X, W


def _np(p):
    return {k: np.asarray(getattr(p, k), np.float64) for k in ("mu", "W", "sigma2")}


def _cov(p):
    d = _np(p)
    return d["W"] @ d["W"].T + d["sigma2"] * np.eye(d["W"].shape[0])


def test_log_prob_matches_sklearn_pca_ddof1_float32():
    X, _ = _data()
    X32 = X.astype(np.float32)
    params = ppca.fit_ml(X32, Q, ddof=1)
    assert params.W.dtype == jnp.float32 and params.W.shape == (D, Q)
    ref = PCA(n_components=Q).fit(X).score_samples(X)
    np.testing.assert_allclose(np.asarray(ppca.log_prob(params, X32)), ref, rtol=2e-5, atol=1e-4)


def test_log_prob_matches_sklearn_and_scipy_x64(x64):
    X, _ = _data()
    p1 = ppca.fit_ml(X, Q, ddof=1)
    assert p1.W.dtype == jnp.float64 and p1.sigma2.dtype == jnp.float64
    np.testing.assert_allclose(
        np.asarray(ppca.log_prob(p1, X)), PCA(n_components=Q).fit(X).score_samples(X), rtol=0, atol=1e-10
    )
    p0 = ppca.fit_ml(X, Q)  # ddof=0: the exact marginal with the ML parameters
    ref = multivariate_normal(_np(p0)["mu"], _cov(p0)).logpdf(X)
    np.testing.assert_allclose(np.asarray(ppca.log_prob(p0, X)), ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(ppca.outlier_score(p0, X)), -ref, rtol=0, atol=1e-10)
    # mean of the ML fit is the sample mean; sigma2 the mean of the discarded eigenvalues (1/N)
    evals = np.linalg.eigvalsh(np.cov(X.T, ddof=0))[::-1]
    np.testing.assert_allclose(float(p0.sigma2), evals[Q:].mean(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(p0.mu), X.mean(0), rtol=1e-12)
    # squared Mahalanobis distance against the dense inverse
    r = X - X.mean(0)
    maha = np.einsum("nd,de,ne->n", r, np.linalg.inv(_cov(p0)), r)
    np.testing.assert_allclose(np.asarray(ppca.mahalanobis(p0, X)), maha, rtol=1e-10)


def test_ml_is_a_maximum_of_the_likelihood(x64):
    X, _ = _data(1)
    p = ppca.fit_ml(X, Q)
    best = float(jnp.sum(ppca.log_prob(p, X)))
    rng = np.random.default_rng(3)
    for _ in range(3):
        dW = 1e-2 * rng.normal(size=p.W.shape)
        assert float(jnp.sum(ppca.log_prob(p.replace(W=p.W + dW), X))) < best
    for f in (0.98, 1.02):
        assert float(jnp.sum(ppca.log_prob(p.replace(sigma2=p.sigma2 * f), X))) < best
    # ddof=1 is a (slightly) different, lower point of the ddof=0 likelihood
    assert float(jnp.sum(ppca.log_prob(ppca.fit_ml(X, Q, ddof=1), X))) < best


def test_q_equal_to_d_floors_sigma2_and_density_is_the_sample_gaussian(x64):
    X, _ = _data(2, n=200, d=4, q=2)
    p = ppca.fit_ml(X, 4)
    S = np.cov(X.T, ddof=0)
    assert 0 < float(p.sigma2) <= 1.01 * ppca.SIGMA2_FLOOR * np.trace(S) / 4
    # W W^T + sigma2 I == U (Lambda - sigma2) U^T + sigma2 I == S
    np.testing.assert_allclose(_cov(p), S, rtol=1e-10, atol=1e-12)
    ref = multivariate_normal(X.mean(0), S).logpdf(X)
    np.testing.assert_allclose(np.asarray(ppca.log_prob(p, X)), ref, rtol=0, atol=1e-8)


def test_sign_convention_is_deterministic():
    X, _ = _data(4)
    p = ppca.fit_ml(X.astype(np.float32), Q)
    W = np.asarray(p.W)
    assert np.all(W[np.argmax(np.abs(W), axis=0), np.arange(Q)] > 0)
    p_neg = ppca.fit_ml(-X.astype(np.float32), Q)  # flipping the data flips U; the convention undoes it
    np.testing.assert_allclose(np.asarray(p_neg.W), W, rtol=1e-4, atol=1e-4)
    norms = np.linalg.norm(W, axis=0)
    assert np.all(np.diff(norms) < 0) and abs(W[:, 0] @ W[:, 1]) < 1e-3 * norms[0] * norms[1]


@pytest.mark.parametrize("rescale", [True, False])
def test_em_without_missing_converges_to_closed_form(x64, rescale):
    X, _ = _data(5)
    p_ml = ppca.fit_ml(X, Q)
    p_em, info = ppca.fit_em(X, Q, key=jax.random.key(0), max_iter=3000, tol=1e-12, rescale=rescale)
    assert bool(info.converged) and 1 < int(info.n_iter) < (30 if rescale else 3000)
    hist = np.asarray(info.log_likelihood)
    assert np.all(np.isnan(hist[int(info.n_iter):]))
    hist = hist[: int(info.n_iter)]
    assert np.all(np.diff(hist) >= -1e-12 * np.abs(hist[1:]))  # EM never decreases the likelihood
    ll_ml = float(jnp.mean(ppca.log_prob(p_ml, X)))
    np.testing.assert_allclose(hist[-1], ll_ml, rtol=1e-10)
    np.testing.assert_allclose(float(jnp.mean(ppca.log_prob(p_em, X))), ll_ml, rtol=1e-10)
    assert float(jnp.max(ppca.principal_angles(p_em.W, p_ml.W))) < 1e-4
    np.testing.assert_allclose(float(p_em.sigma2), float(p_ml.sigma2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(p_em.W), np.asarray(p_ml.W), atol=1e-4)  # canonicalised


def test_em_with_missing_values_is_monotone_and_recovers_subspace(x64):
    X, W_true = _data(6, n=400, noise=0.3)
    rng = np.random.default_rng(7)
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.15] = np.nan
    p, info = ppca.fit_em(Xm, Q, key=jax.random.key(1), max_iter=3000, tol=1e-8)
    n = int(info.n_iter)
    hist = np.asarray(info.log_likelihood)[:n]
    assert bool(info.converged) and n > 5
    assert np.all(np.diff(hist) >= -1e-10 * np.abs(hist[1:]))
    assert hist[-1] - hist[0] > 0.1
    # recorded value = observed-data log-likelihood of the returned params
    np.testing.assert_allclose(hist[-1], float(jnp.mean(ppca.log_prob_observed(p, Xm))), rtol=1e-8)
    ang_missing = float(jnp.max(ppca.principal_angles(p.W, W_true)))
    ang_full = float(jnp.max(ppca.principal_angles(ppca.fit_ml(X, Q).W, W_true)))
    assert ang_missing < max(3.0, 2 * ang_full), (ang_missing, ang_full)
    assert abs(float(p.sigma2) - 0.09) < 0.03


def test_em_missing_float32_runs_and_roughly_monotone():
    X, W_true = _data(8, n=300, noise=0.3)
    Xm = X.astype(np.float32)
    Xm[np.random.default_rng(9).random(X.shape) < 0.2] = np.nan
    p, info = ppca.fit_em(Xm, Q, key=jax.random.key(2), max_iter=300)
    assert p.W.dtype == jnp.float32
    hist = np.asarray(info.log_likelihood)[: int(info.n_iter)]
    assert np.all(np.diff(hist) >= -1e-5 * np.abs(hist[1:]))
    assert float(jnp.max(ppca.principal_angles(p.W, W_true))) < 5.0
    p2, info2 = ppca.fit_em(Xm, Q, key=jax.random.key(2), max_iter=300)  # same key -> same numbers
    np.testing.assert_array_equal(np.asarray(p2.W), np.asarray(p.W))
    assert int(info2.n_iter) == int(info.n_iter)


def test_em_missing_memory_does_not_grow_with_q_squared():
    """EM with missing values keeps the per-row posterior covariances (N, q, q) one block at a time:
    measured 42.8 x the data's bytes before blocking (N, q+1, q+1 arrays per iteration), 3.3 x after."""
    n, d, q = 100_000, 16, 12
    X = jnp.zeros((n, d), jnp.float32)
    compiled = ppca._fit_em.lower(X, jax.random.key(0), jnp.float32(1e-6), q=q, max_iter=10, missing=True,
                                  rescale=True).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < 5 * n * d * 4, temp / (n * d * 4)


def test_log_prob_observed_is_the_marginal_over_observed_coordinates(x64):
    X, _ = _data(10)
    p = ppca.fit_ml(X, Q)
    C, mu = _cov(p), _np(p)["mu"]
    Xm = X[:5].copy()
    Xm[0, [1, 4]] = np.nan
    Xm[1, :] = np.nan
    Xm[2, 0] = np.nan
    got = np.asarray(ppca.log_prob_observed(p, Xm))
    for i in range(5):
        o = ~np.isnan(Xm[i])
        ref = 0.0 if not o.any() else multivariate_normal(mu[o], C[np.ix_(o, o)]).logpdf(Xm[i, o])
        np.testing.assert_allclose(got[i], ref, rtol=0, atol=1e-10)
    # posterior of z from the observed coordinates only
    mean, cov = ppca.encode_observed(p, Xm)
    W, s2 = _np(p)["W"], float(p.sigma2)
    for i in range(5):
        o = ~np.isnan(Xm[i])
        M = W[o].T @ W[o] + s2 * np.eye(Q)
        np.testing.assert_allclose(np.asarray(mean[i]), np.linalg.solve(M, W[o].T @ (Xm[i, o] - mu[o])), atol=1e-10)
        np.testing.assert_allclose(np.asarray(cov[i]), s2 * np.linalg.inv(M), atol=1e-10)


def test_encode_and_reconstruct_match_direct_formulas(x64):
    X, _ = _data(11)
    p = ppca.fit_ml(X, Q)
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(Q, Q)))[0]
    p = p.replace(W=p.W @ R)  # a rotated W: same density, non-diagonal M
    d = _np(p)
    M = d["W"].T @ d["W"] + d["sigma2"] * np.eye(Q)
    mean, cov = ppca.encode(p, X)
    ref_mean = np.linalg.solve(M, d["W"].T @ (X - d["mu"]).T).T
    np.testing.assert_allclose(np.asarray(mean), ref_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(cov), d["sigma2"] * np.linalg.inv(M), rtol=1e-10, atol=1e-14)
    # the posterior is also Bayes' rule on the joint Gaussian: Cov(z, x) C^{-1} (x - mu)
    np.testing.assert_allclose(
        np.asarray(mean), (X - d["mu"]) @ np.linalg.solve(_cov(p), d["W"]), rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(np.asarray(ppca.reconstruct(p, X)), ref_mean @ d["W"].T + d["mu"], rtol=1e-10)


def test_sample_moments_and_determinism():
    X, _ = _data(12)
    p = ppca.fit_ml(X.astype(np.float32), Q)
    x, z = ppca.sample(jax.random.key(0), p, 20000)
    assert x.shape == (20000, D) and z.shape == (20000, Q) and x.dtype == jnp.float32
    x = np.asarray(x, np.float64)
    C = _cov(p)
    np.testing.assert_allclose(x.mean(0), _np(p)["mu"], atol=4 * np.sqrt(np.diag(C).max() / 20000))
    np.testing.assert_allclose(np.cov(x.T), C, atol=0.05 * np.abs(C).max())
    np.testing.assert_allclose(np.cov(np.asarray(z).T), np.eye(Q), atol=0.05)
    x2, _ = ppca.sample(jax.random.key(0), p, 20000)
    x3, _ = ppca.sample(jax.random.key(1), p, 20000)
    np.testing.assert_array_equal(np.asarray(x2, np.float64), x)
    assert not np.allclose(np.asarray(x3, np.float64), x)


def test_jit_compatible_with_traced_inputs():
    X, _ = _data(13)
    X32 = jnp.asarray(X, jnp.float32)
    p = ppca.fit_ml(X32, Q)
    f = jax.jit(lambda params, x: ppca.log_prob(params, x) + ppca.encode(params, x)[0].sum(1))
    np.testing.assert_allclose(
        np.asarray(f(p, X32)), np.asarray(ppca.log_prob(p, X32) + ppca.encode(p, X32)[0].sum(1)), rtol=1e-6
    )


def test_principal_angles_known_values():
    t = np.deg2rad(np.array([0.01, 30.0, 89.0]))
    for ang in t:
        A = np.eye(5)[:, :2]
        B = np.stack([np.eye(5)[0], np.cos(ang) * np.eye(5)[1] + np.sin(ang) * np.eye(5)[2]], axis=1)
        got = np.asarray(ppca.principal_angles(jnp.asarray(A * 3.0, jnp.float32), jnp.asarray(B, jnp.float32)))
        np.testing.assert_allclose(got, [0.0, np.rad2deg(ang)], atol=1e-4, rtol=1e-4)
    # different dimensions: a line inside a plane has angle 0; orthogonal complement 90
    got = ppca.principal_angles(jnp.eye(4)[:, :2], jnp.eye(4)[:, 2:3])
    np.testing.assert_allclose(np.asarray(got), [90.0], atol=1e-4)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones(10), "2-D"),
        (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), "inf"),
        # the closed form finds NaN/inf from its scatter: in the shift row, and inf - inf
        (np.array([[np.nan, 1.0], [2.0, 3.0], [1.0, 1.0]]), "1 NaN"),
        (np.array([[np.inf, 1.0], [-np.inf, 3.0], [1.0, 1.0]]), "2 inf"),
        (np.array([[1e20, 1.0], [-1e20, 3.0], [1.0, 1.0]], np.float32), "overflow float32"),
        (np.ones((1, 3)), "at least 2"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_fit_ml_rejects_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        ppca.fit_ml(bad, 1)


def test_bad_arguments_raise_clear_errors():
    X, _ = _data(14)
    with pytest.raises(ValueError, match="n_components"):
        ppca.fit_ml(X, 0)
    with pytest.raises(ValueError, match="n_components must be <= n_features"):
        ppca.fit_ml(X, D + 1)
    with pytest.raises(ValueError, match="ddof"):
        ppca.fit_ml(X, 1, ddof=-1)
    Xm = X.copy()
    Xm[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"feature\(s\) \[2\] with no observed value"):
        ppca.fit_em(Xm, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="inf"):
        ppca.fit_em(np.where(np.isnan(Xm), np.inf, Xm), 1, key=jax.random.key(0))
    p = ppca.fit_ml(X.astype(np.float32), Q)
    with pytest.raises(ValueError, match="fitted with 6 features"):
        ppca.log_prob(p, X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        ppca.log_prob(p, Xm)
    with pytest.raises(ValueError, match="n must be"):
        ppca.sample(jax.random.key(0), p, 0)


def test_row_blocks_with_a_remainder_agree_with_scipy_and_memory_is_bounded():
    """The blocked kernels (scatter: 16384-row blocks, densities: 4096-row blocks at D = 64) over
    N = 40 000 rows, i.e. full blocks plus a shorter last one: both fit paths (NumPy data: host
    BLAS; JAX data: a scan) give the ML covariance of the data, and log_prob / log_prob_observed
    equal scipy's density of that Gaussian. Compiled temporaries of the densities are a few (N, D)
    arrays, not (N, q, q) ones (log_prob_observed measured 11 x N D floats unblocked, 1.04 x blocked)."""
    n, d, q = 40_000, 64, 4
    X, _ = _data(seed=3, n=n, d=d, q=q)
    X32 = X.astype(np.float32)
    s_ml = np.cov(X32.astype(np.float64).T, bias=True)
    for p in (ppca.fit_ml(X32, q), ppca.fit_ml(jnp.asarray(X32), q)):
        np.testing.assert_allclose(_np(p)["mu"], X32.astype(np.float64).mean(0), rtol=0, atol=1e-4)
        # the ML fit matches the sample covariance along its top-q subspace
        U = np.linalg.svd(_np(p)["W"], full_matrices=False)[0]
        np.testing.assert_allclose(U.T @ _cov(p) @ U, U.T @ s_ml @ U, rtol=1e-4, atol=1e-4)
    ref = multivariate_normal(_np(p)["mu"], _cov(p)).logpdf(X32.astype(np.float64))
    np.testing.assert_allclose(np.asarray(ppca.log_prob(p, X32), np.float64), ref, rtol=0, atol=2e-3)
    # measured: log_prob 4e-5; log_prob_observed 6.7e-3 (its Woodbury form |r|^2 - |a|^2 cancels in float32, as
    # documented; per row the blocked and unblocked computations are the same operations)
    np.testing.assert_allclose(np.asarray(ppca.log_prob_observed(p, X32), np.float64), ref, rtol=0, atol=2e-2)
    nb, db, qb = 200_000, 16, 8
    pb = ppca.PPCAParams(mu=jnp.zeros(db), W=jnp.ones((db, qb)) * 0.1, sigma2=jnp.float32(1.0))
    Xb = jnp.zeros((nb, db), jnp.float32)
    for fn in (ppca._log_prob, ppca._log_prob_observed):
        temp = fn.lower(pb, Xb).compile().memory_analysis().temp_size_in_bytes
        assert temp < 2 * nb * db * 4, (fn, temp / (nb * db * 4))
