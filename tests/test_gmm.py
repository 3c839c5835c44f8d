"""Pure-function GMM: parity with scikit-learn iteration by iteration, EM properties, sharding."""
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM

from jaxgen.models import gmm as G
from jaxgen.sharding import data_mesh, row_sharding_of, shard_rows

TYPES = G.COVARIANCE_TYPES
N_ITER = 8  # one max_iter for most tests: fit_em compiles once per (shape, max_iter)


def _blobs(seed=0, n=(60, 80, 60), d=3, offset=10.0):
    """Three blobs away from the origin (so that float32 cancellation would show)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(len(n), d))
    scales = [0.5, 1.0, 1.5]
    # correlated but well-conditioned components (axis scales 1 : 0.6 : 0.3, random rotations)
    rot = [np.linalg.qr(rng.normal(size=(d, d)))[0] * np.linspace(1.0, 0.3, d) for _ in n]
    X = np.concatenate([c + s * rng.standard_normal((m, d)) @ a for c, s, m, a in zip(centres, scales, n, rot)])
    return (X + offset).astype(np.float32)


def _sklearn_from(p0, ct, X64, n_iter):
    w = np.asarray(p0.weights, np.float64)
    sk = SkGMM(
        p0.n_components, covariance_type=ct, max_iter=n_iter, tol=0.0,
        weights_init=w / w.sum(), means_init=np.asarray(p0.means, np.float64),
        precisions_init=np.asarray(p0.precisions, np.float64),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X64)
    return sk


def _start(X, ct):
    """Cheap initial parameters (no k-means compile): one point per blob, covariances from the data."""
    cov = np.cov(np.asarray(X, np.float64).T) * 0.5
    covs = {"full": np.stack([cov] * 3), "tied": cov, "diag": np.tile(np.diag(cov), (3, 1)), "spherical": np.full(3, np.trace(cov) / 3)}[ct]
    return G.GMMParams.from_covariances(np.array([0.3, 0.4, 0.3]), X[[0, 70, 150]], covs, ct)


def _parity_errors(X, ct):
    p0 = _start(X, ct)
    p, info = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
    X64 = np.asarray(X, np.float64)
    sk = _sklearn_from(p0, ct, X64, N_ITER)
    ll_err = np.max(np.abs(np.asarray(G.log_prob(p, X), np.float64) - sk.score_samples(X64)))
    mean_err = np.max(np.abs(np.asarray(p.means, np.float64) - sk.means_))
    cov_err = np.max(np.abs(np.asarray(p.covariances, np.float64) - sk.covariances_)) / np.max(np.abs(sk.covariances_))
    lb_err = abs(float(info.lower_bound) - sk.lower_bound_)
    assert int(info.n_iter) == sk.n_iter_ == N_ITER
    return ll_err, mean_err, cov_err, lb_err


@pytest.mark.parametrize("ct", TYPES)
def test_parity_with_sklearn_float32(ct):
    ll_err, mean_err, cov_err, lb_err = _parity_errors(_blobs(), ct)
    print(f"float32 {ct}: loglik {ll_err:.2e} means {mean_err:.2e} cov(rel) {cov_err:.2e} lower_bound {lb_err:.2e}")
    assert ll_err < 1e-4 and lb_err < 1e-5
    assert mean_err < 1e-4 and cov_err < 1e-4


@pytest.mark.parametrize("ct", TYPES)
def test_parity_with_sklearn_float64(ct, x64):
    X = _blobs().astype(np.float64)
    ll_err, mean_err, cov_err, lb_err = _parity_errors(X, ct)
    print(f"float64 {ct}: loglik {ll_err:.2e} means {mean_err:.2e} cov(rel) {cov_err:.2e} lower_bound {lb_err:.2e}")
    assert max(ll_err, mean_err, cov_err, lb_err) < 1e-9


@pytest.mark.parametrize("ct", TYPES)
def test_em_never_decreases_loglik(ct):
    X = _blobs(seed=3)
    for seed in range(3):
        p0 = G.init_params(jax.random.key(seed), X, 3, ct, init="random")
        _, info = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
        h = np.asarray(info.history)
        assert np.all(np.isfinite(h))
        assert np.all(np.diff(h) >= -2e-6 * np.abs(h[1:])), h


def _mixture_density_by_hand(params, X):
    K = params.n_components
    d = params.n_features
    cov = np.asarray(params.covariances, np.float64)
    full = {
        "full": lambda k: cov[k],
        "tied": lambda k: cov,
        "diag": lambda k: np.diag(cov[k]),
        "spherical": lambda k: cov[k] * np.eye(d),
    }[params.covariance_type]
    dens = sum(float(params.weights[k]) * multivariate_normal(np.asarray(params.means[k], np.float64), full(k)).pdf(X) for k in range(K))
    return np.log(dens).reshape(-1)


@pytest.mark.parametrize("ct", TYPES)
def test_log_prob_matches_scipy(ct, x64):
    rng = np.random.default_rng(1)
    K, d = 3, 2
    A = rng.normal(size=(K, d, d))
    covs = {
        "full": A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(d),
        "tied": A[0] @ A[0].T + 0.5 * np.eye(d),
        "diag": rng.uniform(0.3, 2.0, size=(K, d)),
        "spherical": rng.uniform(0.3, 2.0, size=K),
    }[ct]
    params = G.GMMParams.from_covariances(np.array([0.2, 0.5, 0.3]), rng.normal(size=(K, d)), covs, ct)
    X = rng.normal(scale=2.0, size=(50, d))
    ref = _mixture_density_by_hand(params, X)
    np.testing.assert_allclose(np.asarray(G.log_prob(params, X)), ref, rtol=1e-10, atol=1e-10)
    resp = np.asarray(G.responsibilities(params, X))
    np.testing.assert_allclose(resp.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(G.predict(params, X)), resp.argmax(1))
    wlp = np.asarray(G.estimate_weighted_log_prob(params, X))
    np.testing.assert_allclose(wlp - np.log(np.asarray(params.weights)), np.asarray(G.log_prob_components(params, X)), atol=1e-12)
    # the precision parametrisation gives the same model
    p2 = G.GMMParams.from_precisions(params.weights, params.means, params.precisions, ct)
    np.testing.assert_allclose(np.asarray(G.log_prob(p2, X)), ref, rtol=1e-9)


def test_one_dimensional_data():
    X = np.concatenate([np.random.default_rng(0).normal(size=80), 6 + np.random.default_rng(1).normal(size=120)])[:, None]
    params, info = G.fit(jax.random.key(0), X, 2, "full", max_iter=50, tol=1e-6)
    assert params.means.shape == (2, 1) and bool(info.converged)
    np.testing.assert_allclose(np.sort(np.asarray(params.means[:, 0])), [0.0, 6.0], atol=0.4)
    ref = _mixture_density_by_hand(params, X)
    np.testing.assert_allclose(np.asarray(G.log_prob(params, X)), ref, rtol=1e-5)


def test_sample_statistics():
    covs = np.array([[[1.0, 0.6], [0.6, 0.5]], [[0.3, 0.0], [0.0, 2.0]]])
    params = G.GMMParams.from_covariances(np.array([0.3, 0.7]), np.array([[0.0, 0.0], [5.0, -3.0]]), covs, "full")
    x, labels = G.sample(jax.random.key(0), params, 20000)
    x, labels = np.asarray(x), np.asarray(labels)
    assert x.shape == (20000, 2) and labels.shape == (20000,)
    assert abs(labels.mean() - 0.7) < 0.015  # 4.6 standard errors
    for k in range(2):
        xk = x[labels == k]
        np.testing.assert_allclose(xk.mean(0), params.means[k], atol=0.06)
        np.testing.assert_allclose(np.cov(xk.T), covs[k], atol=0.08)
    x2, _ = G.sample(jax.random.key(0), params, 20000)
    np.testing.assert_array_equal(np.asarray(x2), x)  # same key, same draws
    for ct in ("tied", "diag", "spherical"):
        cov = {"tied": covs[0], "diag": np.array([[1.0, 0.5], [0.3, 2.0]]), "spherical": np.array([1.0, 0.25])}[ct]
        p = G.GMMParams.from_covariances(params.weights, params.means, cov, ct)
        xs, ls = G.sample(jax.random.key(1), p, 20000)
        xs, ls = np.asarray(xs), np.asarray(ls)
        want = cov if ct == "tied" else (np.diag(cov[1]) if ct == "diag" else cov[1] * np.eye(2))
        np.testing.assert_allclose(np.cov(xs[ls == 1].T), want, atol=0.08)


@pytest.mark.parametrize("ct", TYPES)
def test_bic_aic_equal_sklearn(ct, x64):
    X = _blobs().astype(np.float64)
    sk = SkGMM(3, covariance_type=ct, random_state=0).fit(X)
    params = G.GMMParams(
        jnp.asarray(sk.weights_), jnp.asarray(sk.means_), jnp.asarray(sk.covariances_),
        jnp.asarray(sk.precisions_cholesky_), ct,
    )
    assert G.n_parameters(params) == sk._n_parameters()
    np.testing.assert_allclose(G.bic(params, X), sk.bic(X), rtol=1e-10)
    np.testing.assert_allclose(G.aic(params, X), sk.aic(X), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(G.GMMParams.from_covariances(sk.weights_, sk.means_, sk.covariances_, ct).precisions_cholesky),
                               sk.precisions_cholesky_, rtol=1e-8)


def test_sharded_equals_unsharded():
    ct = "full"
    assert len(jax.devices()) == 4, "conftest should provide 4 virtual CPU devices"
    X = _blobs()[:-1]  # 199 rows: shard_rows pads one zero-weight row
    mesh = data_mesh()
    Xs, w = shard_rows(X, mesh)
    assert Xs.shape[0] == 200 and float(w.sum()) == 199 and row_sharding_of(Xs) == (mesh, "data")
    p0 = G.init_params(jax.random.key(0), X, 3, ct)
    p_ref, i_ref = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
    p_sh, i_sh = G.fit_em(Xs, p0, max_iter=N_ITER, tol=0.0, sample_weight=w, chunk_size=16)
    np.testing.assert_allclose(float(i_sh.lower_bound), float(i_ref.lower_bound), rtol=1e-6)
    chex.assert_trees_all_close(p_sh, p_ref, rtol=2e-5, atol=2e-5)  # every leaf, same structure and shapes
    # initialisation on sharded rows works too (padding rows never become seeds)
    p_init = G.init_params(jax.random.key(0), Xs, 3, ct, init="random_from_data", sample_weight=w)
    assert all(np.any(np.all(X == np.asarray(m), axis=1)) for m in p_init.means)


def test_sharded_program_does_not_gather_rows():
    X = _blobs()[:-1]
    Xs, w = shard_rows(X, data_mesh())
    p0 = G.init_params(jax.random.key(0), X, 3, "full")
    dt = Xs.dtype
    hlo = G._fit_em_jit.lower(
        Xs, w, p0, jnp.asarray(0.0, dt), jnp.asarray(1e-6, dt), jnp.asarray(-jnp.inf, dt),
        max_iter=2, chunk=25, mesh=data_mesh(), axis_name="data",
    ).compile().as_text()
    assert "all-gather" not in hlo and "all-reduce" in hlo


def test_chunked_equals_unchunked():
    X = _blobs()
    p0 = G.init_params(jax.random.key(1), X, 3, "tied")
    p1, i1 = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
    p2, i2 = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0, chunk_size=7)  # 200 = 28 * 7 + 4: padded
    np.testing.assert_allclose(np.asarray(i2.history), np.asarray(i1.history), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p2.covariances), np.asarray(p1.covariances), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(G.log_prob(p1, X, chunk_size=9)), np.asarray(G.log_prob(p1, X)), rtol=1e-6)


def test_sample_weight_equals_duplicated_rows(x64):
    X = _blobs().astype(np.float64)
    counts = np.random.default_rng(0).integers(0, 3, size=X.shape[0])
    p0 = G.init_params(jax.random.key(0), X, 3, "full")
    pw, iw = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0, sample_weight=counts.astype(float))
    pd, idup = G.fit_em(np.repeat(X, counts, axis=0), p0, max_iter=N_ITER, tol=0.0)
    np.testing.assert_allclose(np.asarray(iw.history), np.asarray(idup.history), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(pw.covariances), np.asarray(pd.covariances), rtol=1e-9)


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_degenerate_data_gives_finite_parameters(ct):
    X = _blobs()
    X[:100] = X[0]  # 100 duplicates: a collapsed component
    p0 = G.init_params(jax.random.key(2), X, 3, ct)
    params, _ = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(params))
    # a component far from every point gets N_k ~ 0: regularised, never NaN
    p0 = _start(X, ct)
    p0 = p0.replace(means=p0.means.at[2].set(1e4))
    p, _ = G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(p))
    assert float(p.weights[2]) < 1e-5
    want = 1e-6 * np.eye(3) if ct == "full" else 1e-6
    np.testing.assert_allclose(np.asarray(p.covariances[2]), want, atol=1e-7)


def test_init_methods():
    X = _blobs()
    for init in G.INIT_METHODS:
        p = G.init_params(jax.random.key(2), X, 3, "full", init=init)
        assert np.all(np.isfinite(np.asarray(p.precisions_cholesky))), init
        np.testing.assert_allclose(float(jnp.sum(p.weights)), 1.0, rtol=1e-5)
        if init in ("k-means++", "random_from_data"):  # scikit-learn: K data points, covariance reg_covar * I
            assert all(np.any(np.all(X == np.asarray(m), axis=1)) for m in p.means)
            np.testing.assert_allclose(np.asarray(p.covariances), np.broadcast_to(1e-6 * np.eye(3), (3, 3, 3)), atol=1e-7)
    # k-means init on well-separated blobs: the initial means are the blob means
    rng = np.random.default_rng(0)
    truth = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])
    Xs = np.repeat(truth, [60, 80, 60], axis=0) + rng.normal(size=(200, 3))
    p = G.init_params(jax.random.key(2), Xs.astype(np.float32), 3, "full", init="kmeans++")
    order = np.argsort(np.asarray(p.means)[:, 0] + 2 * np.asarray(p.means)[:, 1])
    blob_means = np.stack([Xs[:60].mean(0), Xs[60:140].mean(0), Xs[140:].mean(0)])
    np.testing.assert_allclose(np.asarray(p.means)[order], blob_means, atol=1e-4)
    np.testing.assert_allclose(np.asarray(p.weights)[order], [0.3, 0.4, 0.3], atol=1e-6)


def test_kmeanspp_draws_rows_in_proportion_to_their_weight():
    """The seeding's inverse-CDF draw: frequencies match the weights (chi-square), zero weights
    (padding rows, points already chosen) are never drawn."""
    from scipy.stats import chisquare

    w = jnp.asarray([0.0, 1.0, 3.0, 0.0, 6.0, 0.0], jnp.float32)
    rows = np.asarray(jax.jit(G._draw_rows, static_argnums=2)(jax.random.key(0), w, 20_000))
    counts = np.bincount(rows, minlength=6)
    assert counts[[0, 3, 5]].sum() == 0
    assert chisquare(counts[[1, 2, 4]], 20_000 * np.array([0.1, 0.3, 0.6])).pvalue > 1e-3
    # a wrong draw (uniform over the non-zero rows) is rejected by the same test
    assert chisquare(np.array([6667, 6667, 6666]), 20_000 * np.array([0.1, 0.3, 0.6])).pvalue < 1e-3


def test_fit_n_init_keeps_best_and_is_deterministic():
    X = _blobs(seed=5)
    key = jax.random.key(3)
    p, info = G.fit(key, X, 3, "diag", n_init=4, init="random", max_iter=N_ITER, tol=0.0, warn=False)
    singles = []
    for k in jax.random.split(key, 4):
        p0 = G.init_params(k, X, 3, "diag", init="random")
        singles.append(float(G.fit_em(X, p0, max_iter=N_ITER, tol=0.0)[1].lower_bound))
    np.testing.assert_allclose(float(info.lower_bound), max(singles), rtol=1e-5)
    p_again, info_again = G.fit(key, X, 3, "diag", n_init=4, init="random", max_iter=N_ITER, tol=0.0, warn=False)
    chex.assert_trees_all_equal((p_again, info_again), (p, info))  # bitwise, every leaf


def test_convergence_warning_and_max_iter_zero():
    X = _blobs()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        G.fit(jax.random.key(0), X, 3, max_iter=1)
    p0 = G.init_params(jax.random.key(0), X, 3)
    p, info = G.fit_em(X, p0, max_iter=0)
    assert int(info.n_iter) == 0 and not bool(info.converged) and np.isneginf(float(info.lower_bound))
    np.testing.assert_array_equal(np.asarray(p.means), np.asarray(p0.means))


def _faithful():
    try:
        from jaxgen.data import load_faithful
        return np.asarray(load_faithful(), np.float64)
    except ImportError:
        return np.loadtxt("/work/shared/data/faithful.csv", delimiter=",", skiprows=1)


def test_old_faithful_two_components_reach_published_loglik():
    X = _faithful()
    assert X.shape == (272, 2)
    params, info = G.fit(jax.random.key(0), X, 2, "full", n_init=2, tol=1e-6, max_iter=200)
    total = float(jnp.sum(G.log_prob(params, X)))
    print(f"Old Faithful K=2 full, float32: total log-likelihood {total:.3f}")
    assert abs(total - (-1130.26)) < 0.02
    assert bool(info.converged)


def test_bad_input_raises_clear_errors():
    X = _blobs()
    key = jax.random.key(0)
    bad = [
        (lambda: G.fit(key, np.where(np.arange(600).reshape(200, 3) == 5, np.nan, X), 2), "NaN"),
        (lambda: G.fit(key, np.where(np.arange(600).reshape(200, 3) == 5, np.inf, X), 2), "inf"),
        (lambda: G.fit(key, X[:, 0], 2), "2-D"),
        (lambda: G.fit(key, X[:2], 3), "n_samples >= n_components"),
        (lambda: G.fit(key, np.array([["a", "b"], ["c", "d"]]), 1), "numeric"),
        (lambda: G.fit(key, X, 0), "n_components"),
        (lambda: G.fit(key, X, 2, "banana"), "covariance_type"),
        (lambda: G.fit(key, X, 2, init="nope"), "init"),
        (lambda: G.fit(key, X, 2, reg_covar=-1.0), "reg_covar"),
        (lambda: G.fit(key, X, 2, tol=-1e-3), "tol"),
        (lambda: G.fit(key, X, 2, max_iter=-1), "max_iter"),
        (lambda: G.fit(key, X, 2, max_iter=2.5), "max_iter"),
        (lambda: G.fit(key, X, 2, sample_weight=-np.ones(200)), "sample_weight"),
        (lambda: G.fit_em(X[:, :2], G.init_params(key, X, 2), max_iter=1), "features"),
        (lambda: G.log_prob(G.init_params(key, X, 2), X[:, :2]), "features"),
        (lambda: G.fit_em(X, {"means": 0}), "GMMParams"),
        (lambda: G.sample(key, G.init_params(key, X, 2), 0), "n"),
        (lambda: shard_rows(np.float32(1.0)), "row axis"),
    ]
    for fn, match in bad:
        with pytest.raises(ValueError, match=match):
            fn()
    # reg_covar = 0 on collapsed data: a covariance is singular -> a clear error, not NaN parameters
    Xd = np.tile([[1.0, 2.0]], (10, 1))
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        G.fit(key, Xd, 1, reg_covar=0.0, max_iter=2)


def test_memory_bounded_by_the_data_not_the_components():
    """Compiled temporaries of sampling and of EM stay a few (N, D) arrays with K = 64 components,
    never (N, K, D) (the E-step's whitened blocks are (K, D, chunk)). Measured: sample 4.2 x n D
    floats (before: 18 x, from the categorical's (n, K) Gumbel noise, and 64 x with the (n, K, D)
    einsum), EM 2.1 x N D floats."""
    K, D, n = 64, 16, 100_000
    rng = np.random.default_rng(0)
    p = G.GMMParams.from_covariances(np.full(K, 1 / K), rng.normal(size=(K, D)), np.stack([np.eye(D)] * K), "full")
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)
    nd_bytes = n * D * 4
    temp = G._sample.lower(jax.random.key(0), p, n).compile().memory_analysis().temp_size_in_bytes
    assert temp < 6 * nd_bytes, temp / nd_bytes
    X, w = jnp.zeros((n, D), jnp.float32), jnp.ones((n,), jnp.float32)
    chunk = G._default_chunk(n, K, D)
    lowered = G._fit_em_jit.lower(X, w, p, jnp.float32(0), jnp.float32(1e-6), jnp.float32(-jnp.inf),
                                  max_iter=2, chunk=chunk, mesh=None, axis_name=None)
    temp = lowered.compile().memory_analysis().temp_size_in_bytes
    assert temp < 4 * nd_bytes, temp / nd_bytes  # (N, K, D) would be 64 x


def test_em_info_shows_the_iterations_run_without_the_padding():
    """``history`` is padded with NaN to max_iter (a fixed shape under jit); the repr and
    ``lower_bounds`` show the n_iter iterations run only."""
    X = _blobs(seed=1).astype(np.float64)
    with jax.enable_x64(True):
        p0 = G.init_params(jax.random.key(0), X, 3, "diag", init="random")
        _, info = G.fit_em(X, p0, max_iter=100, tol=1e-3)
    n = int(info.n_iter)
    assert 1 < n < 100 and bool(info.converged)
    np.testing.assert_array_equal(info.lower_bounds, np.asarray(info.history)[:n])
    assert np.isfinite(info.lower_bounds).all() and np.isnan(np.asarray(info.history)[n:]).all()
    assert info.lower_bounds[-1] == pytest.approx(float(info.lower_bound), rel=1e-12)
    text = repr(info)
    assert "nan" not in text.lower() and f"n_iter={n}," in text and "max_iter=100" in text
    assert text.count(",") == 4 + (n - 1), text  # the 5 fields, and n values in lower_bounds
    batched = jax.tree.map(lambda a: jnp.stack([a, a]), info)  # vmapped fits: the fields as they are
    assert "history=" in repr(batched)
