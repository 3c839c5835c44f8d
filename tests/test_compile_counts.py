"""Small GMM problems compile a bounded number of programs (chex.assert_max_traces), and the padding
that makes one program serve many K changes no fit (chex tree assertions against the exact-K program).

Tiny data (60 x 2) and few iterations: each test compiles a handful of small programs.
"""
import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen
from jaxgen.models import gmm as G

STATIC = {  # the static arguments of each jitted function, to re-jit its trace-counted body
    "_init_runs": ("n_init", "kp", "init"),
    "_em_runs": ("kp", "covariance_type", "chunk", "max_iter"),
    "_sample": ("n",),
    "_map_rows": ("fn", "chunk"),
}


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n // 2, 2)), 6.0 + rng.normal(size=(n - n // 2, 2))])
    return rng.permutation(X).astype(np.float32)  # shuffled: every cross-validation fold sees both blobs


@pytest.fixture
def max_traces(monkeypatch):
    """``max_traces(name, n)``: re-jit ``G.<name>`` (and its quick-compile twin ``G.<name>_quick``,
    which small problems use on a CPU) so that tracing it more than ``n`` times fails; at the end,
    each limited function must have been traced at least once (else the limit proved nothing)."""
    chex.clear_trace_counter()
    traced = {}

    def limit(name, n):
        body = getattr(G, name).__wrapped__
        traced[name] = 0

        @functools.wraps(body)  # keeps the signature: static_argnames name positional parameters
        def counted(*args, **kwargs):
            traced[name] += 1
            return body(*args, **kwargs)

        limited = chex.assert_max_traces(counted, n=n)  # one counter for both builds
        monkeypatch.setattr(G, name, jax.jit(limited, static_argnames=STATIC[name]))
        if hasattr(G, name + "_quick"):
            monkeypatch.setattr(G, name + "_quick", jax.jit(limited, static_argnames=STATIC[name],
                                                            compiler_options=G._QUICK_COMPILE))

    yield limit
    chex.clear_trace_counter()
    assert all(traced.values()), traced


def test_bic_grid_over_k_compiles_one_program_per_covariance_type(max_traces):
    """A BIC grid over K = 1..4 and two covariance types: one initialisation program for all, one EM
    program and one log-density program per covariance type (K padded to 8 with inert components)."""
    X = _data()
    max_traces("_init_runs", 1)
    max_traces("_em_runs", 2)
    max_traces("_map_rows", 2)
    bic = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ct in ("full", "diag"):
            for k in range(1, 5):
                p, _ = G.fit(jax.random.key(k), X, k, ct, n_init=2, max_iter=5)
                assert p.n_components == k
                bic[ct, k] = G.bic(p, X)
    assert min(bic, key=bic.get)[1] == 2  # two blobs


def test_estimator_grid_search_shares_programs(max_traces):
    """The estimator path (fit, predict inside the fit's program, score) over n_components."""
    from sklearn.model_selection import GridSearchCV

    X = _data().astype(np.float64)  # float64: the estimators' x64 path, as GridSearchCV users hit it
    max_traces("_init_runs", 1)
    max_traces("_em_runs", 1)
    max_traces("_map_rows", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs = GridSearchCV(jaxgen.GaussianMixture(max_iter=5, random_state=0), {"n_components": [1, 2, 3]}, cv=2,
                          refit=False).fit(X)
    assert gs.best_params_["n_components"] in (2, 3)


def test_sample_compiles_once_for_many_sizes(max_traces):
    p = G.GMMParams.from_covariances(np.array([0.3, 0.7], np.float32), np.array([[0.0, 0.0], [5.0, 5.0]], np.float32),
                                     np.stack([np.eye(2, dtype=np.float32)] * 2), "full")
    max_traces("_sample", 1)
    for n in (1, 3, 17, 50, 64):  # all drawn by the program for 64 rows
        x, labels = G.sample(jax.random.key(n), p, n)
        assert x.shape == (n, 2) and labels.shape == (n,)
    # the first n of a longer draw: the same numbers as a program for n itself
    x_exact, lab_exact = G._sample.__wrapped__(jax.random.key(17), p, 17)
    x17, lab17 = G.sample(jax.random.key(17), p, 17)
    chex.assert_trees_all_close((x17, lab17), (x_exact, lab_exact), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("ct", ["full", "tied", "diag"])  # spherical: diag's M-step and masking, then a mean
def test_padded_components_change_no_fit(monkeypatch, ct):
    """The fit through the padded program (K and N) equals the exact-shape program's (the padding is
    inert: weight exactly 0, finite), for each kind of initialisation (labels from k-means, seeds,
    random responsibilities)."""
    X = _data(seed=1)
    key = jax.random.key(4)
    common = dict(n_init=2, max_iter=20, tol=1e-4, warn=False)
    for init in ("kmeans++", "random") if ct == "full" else ("kmeans++",):
        padded, info_p = G.fit(key, X, 3, ct, init=init, **common)
        with monkeypatch.context() as m:
            m.setattr(G, "_BUCKET_WORK", 0)  # every problem "large": the exact-K programs
            exact, info_e = G.fit(key, X, 3, ct, init=init, **common)
        chex.assert_trees_all_close(padded, exact, rtol=2e-5, atol=2e-5)
        assert int(info_p.n_iter) == int(info_e.n_iter), init
        if ct == "full" and init == "kmeans++":  # the padding components of the raw result: weight exactly 0
            raw = []
            with monkeypatch.context() as m:
                m.setattr(G, "_unpad_params", lambda p, k: raw.append(p) or p)
                G.fit(key, X, 3, ct, init=init, **common)
            assert raw[0].n_components == 8 and np.all(np.asarray(raw[0].weights)[3:] == 0.0)
            assert np.all(np.isfinite(np.asarray(raw[0].precisions_cholesky)))


def test_padded_inference_equals_exact():
    """log_prob / predict through the padded parameters equal the exact-K computation."""
    X = _data(seed=2)
    p = G.GMMParams.from_covariances(np.array([0.2, 0.5, 0.3], np.float32), np.array([[0, 0], [6, 6], [3, 1]], np.float32),
                                     np.array([[2.0, 0.5], [0.5, 1.0]], np.float32), "tied")
    exact_lp = G._rows(G._log_prob_block, p, jnp.asarray(X), X.shape[0])
    exact_pred = G._rows(G._predict_block, p, jnp.asarray(X), X.shape[0])
    chex.assert_trees_all_close(G.log_prob(p, X), exact_lp, rtol=1e-6)
    chex.assert_trees_all_equal(G.predict(p, X), exact_pred)
    padded = G._pad_params(p, 8)
    chex.assert_trees_all_equal(G._unpad_params(padded, 3), p)
    assert np.all(np.asarray(padded.weights)[3:] == 0.0)


def test_kmeanspp_seeds_the_same_rows_when_padded():
    """The seeding with K traced and padded draws exactly the rows of the exact-K seeding."""
    X = jnp.asarray(_data(seed=3))
    Xs = X - X.mean(0)
    xx = jnp.sum(Xs * Xs, 1)
    w = jnp.ones(X.shape[0])
    padded_fn = jax.jit(functools.partial(G._kmeanspp, kp=32))  # K traced: one program, 5 candidates drawn
    for k in (2, 3):  # 2 + int(log k) = 2 and 3 candidates per step: the extra draws must be ignored
        exact_fn = jax.jit(functools.partial(G._kmeanspp, k=k))
        for seed in range(4):
            exact = exact_fn(jax.random.key(seed), Xs, xx, w)
            padded = padded_fn(jax.random.key(seed), Xs, xx, w, jnp.int32(k), n_trials=jnp.int32(2 + int(np.log(k))))
            chex.assert_trees_all_equal(padded[:k], exact)
