"""Gaussian mixture model fitted by EM: pure functions over a :class:`GMMParams` pytree.

Conventions follow scikit-learn's ``sklearn.mixture.GaussianMixture`` so that, from the same
initial parameters, :func:`fit_em` follows scikit-learn iteration by iteration:

* covariance layouts -- ``full`` (K, D, D), ``tied`` (D, D), ``diag`` (K, D), ``spherical`` (K,);
* ``precisions_cholesky`` is scikit-learn's ``precisions_cholesky_``: an upper-triangular U with
  precision = U Uᵀ (for diag/spherical, the square root of the precisions);
* one EM iteration = E-step with the current parameters (its mean log-likelihood is the iteration's
  ``lower_bound``) followed by the M-step; stop when |Δ lower_bound| < tol; ``reg_covar`` on the
  diagonal and ``10 * eps`` added to N_k.

Scalability: every pass over the data is a ``lax.scan`` over (n_chunks, chunk, D) blocks that
accumulates N_k, Σ r (x - c_k) and the second moments Σ r (x - c_k)(x - c_k)ᵀ centred at the
current means c_k (shifted-data formula: accurate in float32). Peak memory is O(chunk · K · D) on
top of the data, never (N, K, D). Full and tied covariances work in whitened coordinates
y_k = U_kᵀ (x - μ_k): one (K·D, D) x (D, chunk) GEMM per block gives every component's y at once
(the E-step's Mahalanobis terms are |y_k|²), and the M-step's statistics are accumulated as
Σ r y and Σ r y yᵀ (one batched GEMM) and mapped back with U_k⁻¹ once per iteration. Rows are
first shifted by the mixture's mean Σ w_k μ_k, so that xᵀU - μᵀU does not cancel in float32 when
the data sit far from the origin. Row-sharded data (:func:`jaxgen.sharding.shard_rows`) is
processed under ``jax.shard_map``: each device scans its own rows and the statistics are
``psum``-ed, so EM never gathers the data on one device (multi-host: see :mod:`jaxgen.sharding`).
Initialisation (k-means++ seeding picks rows) and the inference functions (``log_prob``,
``predict``, ...) are plain SPMD programs: XLA may gather rows for them.

Small data: compiling, not computing, is the cost (a fit of Old Faithful runs in microseconds and
compiles in about a second). When N * K * D <= 2^20, :func:`fit`, :func:`log_prob` and
:func:`predict` pad K to a bucket (8, then powers of two) with inert components (weight exactly 0,
identity covariance) and N to a power of two (at least 512) with rows of weight 0, and on a CPU
compile those programs with LLVM's optimisations off; a fit is two programs (the restarts'
initialisations, shared by the four covariance types; EM, the choice of the best restart and the
labels, one per type). A grid over K, covariance types and cross-validation folds on a few hundred
rows thus compiles about ten programs, where every (K, type, N) used to compile its own. The
results are those of the exact-shape programs up to float rounding (tests/test_compile_counts.py).
"""
from __future__ import annotations

import math
import warnings
from functools import partial

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp
from jax.sharding import PartitionSpec as P

from jaxgen.padding import power_of_two_at_least
from jaxgen.sharding import row_sharding_of
from jaxgen.validation import (
    check_choice,
    check_data,
    check_key,
    check_positive_float,
    check_positive_int,
    float_dtype,
)

__all__ = [
    "COVARIANCE_TYPES",
    "INIT_METHODS",
    "GMMParams",
    "EMInfo",
    "init_params",
    "fit_em",
    "fit",
    "log_prob",
    "log_prob_components",
    "estimate_weighted_log_prob",
    "responsibilities",
    "predict",
    "sample",
    "n_parameters",
    "bic",
    "aic",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# "kmeans++": k-means++ seeding + Lloyd iterations (scikit-learn's "kmeans", also accepted);
# "k-means++": seeding only; "random": random responsibilities; "random_from_data": K data points.
INIT_METHODS = ("kmeans++", "kmeans", "k-means++", "random", "random_from_data")

_CONVERGENCE_MSG = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)
_ILL_DEFINED_MSG = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


# ----------------------------------------------------------------------------- parameters
def _flip(a):
    return jnp.flip(a, axis=(-2, -1))


def _precision_chol_from_cov(cov, covariance_type):
    """scikit-learn's ``_compute_precision_cholesky``: U = L⁻ᵀ with Σ = L Lᵀ (NaN if not PD)."""
    if covariance_type in ("full", "tied"):
        chol = jnp.linalg.cholesky(cov)
        eye = jnp.broadcast_to(jnp.eye(cov.shape[-1], dtype=cov.dtype), cov.shape)
        return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)
    return 1.0 / jnp.sqrt(cov)


@flax.struct.dataclass
class GMMParams:
    """Mixture parameters (shapes for K components in D dimensions).

    Attributes:
      weights: (K,) mixing proportions, summing to one.
      means: (K, D).
      covariances: full (K, D, D); tied (D, D); diag (K, D); spherical (K,).
      precisions_cholesky: same layout; upper-triangular U with Σ⁻¹ = U Uᵀ (full/tied), Σ^{-1/2}
        elementwise (diag/spherical) -- scikit-learn's ``precisions_cholesky_``.
      covariance_type: static string, one of ``COVARIANCE_TYPES``.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array
    covariance_type: str = flax.struct.field(pytree_node=False, default="full")

    @classmethod
    def from_covariances(cls, weights, means, covariances, covariance_type="full") -> "GMMParams":
        """Build from covariances (Cholesky-factorised here; NaN entries if one is not PD)."""
        check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
        _check_layout(weights, means, covariances, covariance_type, "covariances")
        covariances = jnp.asarray(covariances)
        return cls(
            jnp.asarray(weights), jnp.asarray(means), covariances,
            _precision_chol_from_cov(covariances, covariance_type), covariance_type,
        )

    @classmethod
    def from_precisions(cls, weights, means, precisions, covariance_type="full") -> "GMMParams":
        """Build from precision matrices (scikit-learn's ``precisions_init`` layout)."""
        check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
        _check_layout(weights, means, precisions, covariance_type, "precisions")
        prec = jnp.asarray(precisions)
        if covariance_type in ("full", "tied"):
            # precision = U Uᵀ with U upper: Cholesky of the row/column-reversed matrix, reversed back.
            u = _flip(jnp.linalg.cholesky(_flip(prec)))
            eye = jnp.broadcast_to(jnp.eye(prec.shape[-1], dtype=prec.dtype), prec.shape)
            u_inv = solve_triangular(u, eye, lower=False)
            cov = jnp.swapaxes(u_inv, -1, -2) @ u_inv
        else:
            u = jnp.sqrt(prec)
            cov = 1.0 / prec
        return cls(jnp.asarray(weights), jnp.asarray(means), cov, u, covariance_type)

    @property
    def precisions(self) -> jax.Array:
        """Precision matrices (full/tied: U Uᵀ) or precisions (diag/spherical), same layout."""
        u = self.precisions_cholesky
        if self.covariance_type in ("full", "tied"):
            return u @ jnp.swapaxes(u, -1, -2)
        return u**2

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]


@flax.struct.dataclass
class EMInfo:
    """Diagnostics of one EM run.

    Attributes:
      lower_bound: () mean per-sample log-likelihood computed in the last iteration's E-step
        (scikit-learn's ``lower_bound_``); -inf when ``max_iter == 0``.
      n_iter: () number of EM iterations run.
      converged: () bool, |Δ lower_bound| < tol reached.
      history: (max_iter,) lower bound of every iteration, NaN after ``n_iter`` (a fixed shape under
        jit); :attr:`lower_bounds` is the trimmed view, and the repr shows only that.
    """

    lower_bound: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    history: jax.Array

    @property
    def lower_bounds(self) -> np.ndarray:
        """(n_iter,) NumPy: the lower bound of each iteration run, ``history`` without its NaN padding."""
        return np.asarray(self.history)[: int(self.n_iter)]

    def __repr__(self) -> str:
        try:
            n = int(self.n_iter)
        except TypeError:  # batched (vmapped fits) or traced: the plain fields
            return (f"EMInfo(lower_bound={self.lower_bound!r}, n_iter={self.n_iter!r}, converged={self.converged!r}, "
                    f"history={self.history!r})")
        return (f"EMInfo(lower_bound={float(self.lower_bound):.8g}, n_iter={n}, converged={bool(self.converged)}, "
                f"lower_bounds={np.array2string(self.lower_bounds, precision=6, separator=', ')}, "
                f"max_iter={np.shape(self.history)[-1]})")


# ----------------------------------------------------------------------------- densities
def _log_det_chol(u, covariance_type, n_features):
    """log det of the precision Cholesky factor per component: (K,) (a scalar for tied)."""
    if covariance_type == "full":
        return jnp.sum(jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "tied":
        return jnp.sum(jnp.log(jnp.diagonal(u)))
    if covariance_type == "diag":
        return jnp.sum(jnp.log(u), axis=-1)
    return n_features * jnp.log(u)


def _whiten(x, means, u, centre):
    """Whitened differences ``y[k, :, n] = U_kᵀ (x_n - μ_k)`` of a block, ``(K, D, n)``.

    Args: x (n, D); means (K, D); u (K, D, D) or (D, D) (tied) upper-triangular precision Cholesky
    factors; centre (D,) a point near the data (both x and the means are shifted by it first).
    One (K·D, D) x (D, n) GEMM for all components: ``U_kᵀ (x - c) - U_kᵀ (μ_k - c)``.
    """
    k, d = means.shape
    u = jnp.broadcast_to(u, (k, d, d))
    ut = jnp.swapaxes(u, 1, 2).reshape(k * d, d)  # row (k, e) = column e of U_k
    b = jnp.einsum("kd,kde->ke", means - centre, u)
    return (ut @ (x - centre).T).reshape(k, d, -1) - b[:, :, None]


def _mixture_centre(params: GMMParams):
    """Σ w_k μ_k: the shift applied before whitening (any point near the data would do)."""
    return params.weights @ params.means


def _component_log_prob_and_diff(x, means, u, covariance_type, centre=None):
    """Per-component Gaussian log density of a block of rows.

    Args:
      x: (n, D) rows; means: (K, D); u: precision Cholesky factors; centre: (D,) shift for the
        whitening of full/tied (default: the mean of the means).
    Returns:
      ``(log_prob (n, K), feats)`` reused by the M-step: full/tied ``feats`` are the whitened
      differences (K, D, n) of :func:`_whiten`; diag/spherical ``feats = x - means[k]`` (K, n, D).
    """
    d = x.shape[-1]
    if covariance_type in ("full", "tied"):
        centre = jnp.mean(means, axis=0) if centre is None else centre
        feats = _whiten(x, means, u, centre)
        maha = jnp.sum(feats * feats, axis=1)
    else:
        # computing the Mahalanobis terms from x - μ_k (not x U - μ U) avoids cancellation in float32
        feats = x[None, :, :] - means[:, None, :]
        if covariance_type == "diag":
            maha = jnp.einsum("knd,kd->kn", feats * feats, u * u)
        else:
            maha = jnp.sum(feats * feats, axis=-1) * (u * u)[:, None]
    log_det = _log_det_chol(u, covariance_type, d)
    lp = -0.5 * (d * math.log(2.0 * math.pi) + maha.T) + log_det
    return lp, feats


def _weighted_log_prob_block(x, params: GMMParams):
    lp, _ = _component_log_prob_and_diff(x, params.means, params.precisions_cholesky, params.covariance_type,
                                         _mixture_centre(params))
    return lp + jnp.log(params.weights)


def _default_chunk(n_rows: int, n_components: int, n_features: int) -> int:
    """Rows per block: about 512k floats in the (K, D, chunk) work array on a CPU (2 MB in float32, in
    the caches; measured on a 2-core EPYC at N=200 000, D=K=16, one pass: 2048 rows 36 ms, 1024 and
    512 rows 36-38 ms, 4096 rows 42 ms, 8192 rows 66 ms on one thread; 2048 rows also fastest with
    XLA's two threads), 64M floats (256 MB) on an accelerator, where each block is a few kernel
    launches and small blocks would leave the device idle."""
    budget = (1 << 19) if jax.default_backend() == "cpu" else (1 << 26)
    target = max(256, budget // max(1, n_components * n_features))
    return int(max(1, min(n_rows, target)))


def _map(f, xs):
    """``jax.lax.map(f, xs)``, or ``f`` once when ``xs`` has one element: a loop of one trip still
    costs its compiled loop (the small problems, one block of rows, one restart, compile faster)."""
    if jax.tree.leaves(xs)[0].shape[0] == 1:
        return jax.tree.map(lambda a: a[None], f(jax.tree.map(lambda a: a[0], xs)))
    return jax.lax.map(f, xs)


def _rows(fn, params, X, chunk):
    """Apply ``fn(params, x_block) -> (block, ...)`` over row blocks of X, output rows = N."""
    n = X.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    Xp = jnp.pad(X, ((0, pad), (0, 0)))
    out = _map(lambda xb: fn(params, xb), Xp.reshape(n_chunks, chunk, X.shape[1]))
    return out.reshape((n_chunks * chunk,) + out.shape[2:])[:n]


_map_rows = partial(jax.jit, static_argnames=("fn", "chunk"))(_rows)


def _check_layout(weights, means, mats, covariance_type: str, what: str) -> None:
    """Shapes of a user-built GMMParams, and weights that form a distribution (skipped under jit)."""
    if any(isinstance(a, jax.core.Tracer) for a in (weights, means, mats)):
        return
    w, m, c = np.asarray(weights), np.asarray(means), np.asarray(mats)
    if w.ndim != 1 or m.ndim != 2 or m.shape[0] != w.shape[0]:
        raise ValueError(f"weights must be (K,) and means (K, D); got {w.shape} and {m.shape}.")
    K, D = m.shape
    shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[covariance_type]
    if c.shape != shape:
        raise ValueError(f"{what} for covariance_type={covariance_type!r} must have shape {shape}, got {c.shape}.")
    if np.any(w < 0) or abs(float(w.sum()) - 1.0) > 1e-4:
        raise ValueError(f"weights must be non-negative and sum to one, got sum {float(w.sum()):.6g}.")


def _check_params(params: GMMParams, X) -> np.ndarray | jax.Array:
    if not isinstance(params, GMMParams):
        raise ValueError(f"params must be a GMMParams, got {type(params).__name__}.")
    return _check_X(X, n_features=params.n_features)


def _check_X(X, *, n_features=None, min_samples=1, name="X"):
    """``check_data`` for NumPy-like input; device-side checks for JAX arrays (keeps sharding)."""
    if not isinstance(X, jax.Array):
        return check_data(X, name=name, min_samples=min_samples, n_features=n_features)
    if X.ndim != 2:
        hint = " Reshape with X.reshape(-1, 1) for a single feature." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array, got shape {X.shape}.{hint}")
    if X.shape[0] < min_samples:
        raise ValueError(f"{name} has {X.shape[0]} sample(s), but at least {min_samples} are needed.")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; it needs at least one column.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, but the model was fitted with {n_features} features.")
    if not (jnp.issubdtype(X.dtype, jnp.number) or X.dtype == jnp.bool_) or jnp.issubdtype(X.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must be real and numeric, got dtype {X.dtype}.")
    dt = float_dtype(X.dtype)
    X = X.astype(dt)
    if not bool(jnp.all(jnp.isfinite(X))):
        raise ValueError(f"{name} contains NaN or inf value(s); all entries must be finite.")
    return X


def _chunk_for(params, X, chunk_size):
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    n = X.shape[0]
    return _default_chunk(n, params.n_components, params.n_features) if chunk_size is None else min(n, chunk_size)


# Small problems spend their time compiling, one program per number of components K and rows N. There,
# K is padded to a bucket (8, then powers of two) with inert components -- weight exactly 0, so log w =
# -inf and their responsibilities are exactly 0; identity covariance, so everything stays finite -- and
# N to a power of two (at least 512) with rows of weight 0: one compiled program serves K = 1..8 and
# N <= 512 (a BIC grid over K, a GridSearchCV over n_components, its folds and its refit). On a CPU
# these programs are also compiled with LLVM's optimisations off (``_QUICK_COMPILE``): compiling them
# takes half the time, running them microseconds more. Above the threshold the work of the padding
# would show, and each shape gets its own fully optimised program, as before.
_BUCKET_WORK = 1 << 20  # N * K * D below which K and N are padded
_MIN_BUCKET = 8
_MIN_ROWS = 512
_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
_map_rows_quick = partial(jax.jit, static_argnames=("fn", "chunk"), compiler_options=_QUICK_COMPILE)(_rows)


def _is_small(n_rows: int, n_components: int, n_features: int) -> bool:
    """Whether the problem is run padded: judged on the padded work, so that padding (K to at least 8,
    N to a power of two) never multiplies the work of a problem near the threshold."""
    padded = power_of_two_at_least(n_rows, _MIN_ROWS) * power_of_two_at_least(n_components, _MIN_BUCKET)
    return padded * n_features <= _BUCKET_WORK


def _k_bucket(n_rows: int, n_components: int, n_features: int) -> int:
    """The padded number of components for a problem of this size: ``(int, int, int) -> int``."""
    if not _is_small(n_rows, n_components, n_features):
        return n_components
    return power_of_two_at_least(n_components, _MIN_BUCKET)


def _quick_compile() -> bool:
    """Whether small problems get the quick-to-compile programs (CPU only: the options are LLVM's)."""
    return jax.default_backend() == "cpu"


def _pad_rows(a, n_pad: int):
    """``a`` (N, ...) with zero rows appended up to ``n_pad``, built on the host (no program per N)."""
    a = np.asarray(a)
    out = np.zeros((n_pad,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return jax.device_put(out)


def _pad_params(params: GMMParams, kp: int) -> GMMParams:
    """``params`` with ``kp - K`` inert components appended (weight 0, mean 0, identity covariance).

    Built with NumPy on the host (no compiled program per K); returns ``params`` unchanged when
    ``kp == K`` or when the parameters are traced (inside a user's jit)."""
    leaves = (params.weights, params.means, params.covariances, params.precisions_cholesky)
    k = params.n_components
    if kp == k or any(isinstance(a, jax.core.Tracer) for a in leaves):
        return params
    w, m, c, u = (np.asarray(a) for a in leaves)
    d, ct, extra = m.shape[1], params.covariance_type, kp - k

    def grow(a, fill):
        return np.concatenate([a, np.broadcast_to(np.asarray(fill, a.dtype), (extra,) + a.shape[1:])])

    eye = np.eye(d, dtype=c.dtype)
    if ct == "full":
        c, u = grow(c, eye), grow(u, eye)
    elif ct in ("diag", "spherical"):
        c, u = grow(c, 1.0), grow(u, 1.0)
    return GMMParams(*jax.device_put((grow(w, 0.0), grow(m, 0.0), c, u)), ct)


def _unpad_params(params: GMMParams, k: int) -> GMMParams:
    """The first ``k`` components of padded parameters (sliced on the host: no program per K)."""
    ct = params.covariance_type
    w, m, c, u = (np.asarray(a) for a in (params.weights, params.means, params.covariances, params.precisions_cholesky))
    if ct != "tied":
        c, u = c[:k], u[:k]
    return GMMParams(*jax.device_put((w[:k], m[:k], c, u)), ct)


def _map_bucketed(fn, params: GMMParams, X, chunk_size):
    """``_map_rows`` for the functions with one output per row (``log_prob``, ``predict``): a small
    problem runs padded in K and N (see ``_k_bucket``), so that one program serves many shapes."""
    n, k, d = X.shape[0], params.n_components, params.n_features
    traced = any(isinstance(a, jax.core.Tracer) for a in (X, *jax.tree.leaves(params)))
    if traced or not _is_small(n, k, d) or row_sharding_of(X) is not None:
        return _map_rows(fn, params, jnp.asarray(X), _chunk_for(params, X, chunk_size))
    n_pad = power_of_two_at_least(n, _MIN_ROWS)
    kp = _k_bucket(n, k, d)
    chunk = _default_chunk(n_pad, kp, d) if chunk_size is None else min(check_positive_int(chunk_size, "chunk_size"), n_pad)
    run = _map_rows_quick if _quick_compile() else _map_rows
    out = run(fn, _pad_params(params, kp), _pad_rows(X, n_pad), chunk)
    return jax.device_put(np.asarray(out)[:n])


def estimate_weighted_log_prob(params: GMMParams, X, *, chunk_size=None) -> jax.Array:
    """log w_k + log N(x_n | μ_k, Σ_k): (N, K) (scikit-learn's ``_estimate_weighted_log_prob``)."""
    X = _check_params(params, X)
    return _map_rows(_wlp_block, params, jnp.asarray(X), _chunk_for(params, X, chunk_size))


def _wlp_block(params, x):
    return _weighted_log_prob_block(x, params)


def _component_block(params, x):
    return _component_log_prob_and_diff(x, params.means, params.precisions_cholesky, params.covariance_type)[0]


def log_prob_components(params: GMMParams, X, *, chunk_size=None) -> jax.Array:
    """log N(x_n | μ_k, Σ_k) without the mixing weights: (N, K)."""
    X = _check_params(params, X)
    return _map_rows(_component_block, params, jnp.asarray(X), _chunk_for(params, X, chunk_size))


def _log_prob_block(params, x):
    return logsumexp(_weighted_log_prob_block(x, params), axis=1)


def log_prob(params: GMMParams, X, *, chunk_size=None) -> jax.Array:
    """Per-sample log density of the mixture: (N,) (scikit-learn's ``score_samples``)."""
    X = _check_params(params, X)
    return _map_bucketed(_log_prob_block, params, X, chunk_size)


def _resp_block(params, x):
    wlp = _weighted_log_prob_block(x, params)
    return jnp.exp(wlp - logsumexp(wlp, axis=1, keepdims=True))


def responsibilities(params: GMMParams, X, *, chunk_size=None) -> jax.Array:
    """Posterior component probabilities p(k | x_n): (N, K), rows sum to one."""
    X = _check_params(params, X)
    return _map_rows(_resp_block, params, jnp.asarray(X), _chunk_for(params, X, chunk_size))


def _predict_block(params, x):
    return jnp.argmax(_weighted_log_prob_block(x, params), axis=1)


def predict(params: GMMParams, X, *, chunk_size=None) -> jax.Array:
    """Most probable component of each row: (N,) int."""
    X = _check_params(params, X)
    return _map_bucketed(_predict_block, params, X, chunk_size)


@partial(jax.jit, static_argnames=("n",))
def _sample(key, params: GMMParams, n):
    k_lab, k_z = jax.random.split(key)
    d = params.n_features
    # inverse-CDF draw of the labels: O(n) memory (categorical's Gumbel trick would hold (n, K) noise)
    cdf = jnp.cumsum(params.weights)
    u = jax.random.uniform(k_lab, (n,), cdf.dtype) * cdf[-1]
    labels = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), params.n_components - 1).astype(jnp.int32)
    z = jax.random.normal(k_z, (n, d), dtype=params.means.dtype)
    cov, ct = params.covariances, params.covariance_type
    if ct == "full":
        # every component's factor applied to every z, the own one kept, one component at a time:
        # O(n K D^2) flops in K GEMMs but O(n D) memory (gathering chol[labels] would materialise
        # (n, D, D), and all components at once (n, K, D))
        chol = jnp.linalg.cholesky(cov)

        def add(k, x):
            return x + jnp.where((labels == k)[:, None], z @ chol[k].T, 0.0)

        x = jax.lax.fori_loop(0, params.n_components, add, jnp.zeros_like(z))
    elif ct == "tied":
        x = z @ jnp.linalg.cholesky(cov).T
    elif ct == "diag":
        x = jnp.sqrt(cov)[labels] * z
    else:
        x = jnp.sqrt(cov)[labels][:, None] * z
    return params.means[labels] + x, labels


def sample(key, params: GMMParams, n: int):
    """Draw ``n`` samples: returns ``(x (n, D), labels (n,))`` with labels ~ Categorical(weights).

    The program is compiled for ``n`` rounded up to a power of two (at least 64) and the first ``n``
    draws are kept: the same numbers as a program for ``n`` itself (JAX's counter-based draws of a
    longer array start with those of a shorter one), one compilation for many sizes."""
    n = check_positive_int(n, "n")
    key = check_key(key)
    if not isinstance(params, GMMParams):
        raise ValueError(f"params must be a GMMParams, got {type(params).__name__}.")
    n_pad = power_of_two_at_least(n, 64)
    x, labels = _sample(key, params, n_pad)
    if n_pad == n:
        return x, labels
    return jax.device_put((np.asarray(x)[:n], np.asarray(labels)[:n]))  # a device slice would compile per n


def n_parameters(params: GMMParams) -> int:
    """Free parameters (scikit-learn's ``_n_parameters``): covariances + means + K - 1 weights."""
    k, d = params.n_components, params.n_features
    cov = {"full": k * d * (d + 1) / 2.0, "diag": k * d, "tied": d * (d + 1) / 2.0, "spherical": k}
    return int(cov[params.covariance_type] + d * k + k - 1)


def bic(params: GMMParams, X) -> float:
    """Bayesian information criterion -2 log L + p log N (lower is better)."""
    X = _check_params(params, X)
    total = float(jnp.sum(log_prob(params, X)))
    return -2.0 * total + n_parameters(params) * math.log(X.shape[0])


def aic(params: GMMParams, X) -> float:
    """Akaike information criterion -2 log L + 2 p (lower is better)."""
    X = _check_params(params, X)
    return -2.0 * float(jnp.sum(log_prob(params, X))) + 2 * n_parameters(params)


# ----------------------------------------------------------------------------- sufficient statistics
def _to_chunks(X, w, chunk, *aux):
    """Pad rows (weight 0) to a multiple of ``chunk`` and reshape to (n_chunks, chunk, ...)."""
    n = X.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def blk(a, fill=0):
        a = jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1), constant_values=fill)
        return a.reshape((n_chunks, chunk) + a.shape[1:])

    return blk(X), blk(w), tuple(blk(a, -1 if jnp.issubdtype(a.dtype, jnp.integer) else 0) for a in aux)


def _moments(feats, r, covariance_type):
    """N_k (K,), Σ r f (K, D) and second moments Σ r f fᵀ (full/tied) or Σ r f² (diag/spherical).

    Args: feats: full/tied (K, D, n) (whitened or plain differences, feature axis first), diag/
      spherical (K, n, D) = x - c_k; r (n, K) weighted responsibilities.
    """
    nk = jnp.sum(r, axis=0)
    if covariance_type in ("full", "tied"):
        rf = feats * r.T[:, None, :]
        s1 = jnp.sum(rf, axis=2)
        s2 = jnp.einsum("kdn,ken->kde", rf, feats)  # K GEMMs (D, n) @ (n, D)
    else:
        s1 = jnp.einsum("nk,knd->kd", r, feats)
        s2 = jnp.einsum("nk,knd->kd", r, feats * feats)
    return nk, s1, s2


def _accumulate(Xc, Wc, auxc, resp_fn, centres, covariance_type, axis_name):
    """One pass over (n_chunks, chunk, D) blocks: Σ w log p(x), N_k, Σ r (x - c), Σ r (x - c)(x - c)ᵀ.

    ``resp_fn(x, diff, log_prob_components, aux) -> (log_prob_norm (n,), resp (n, K))``.
    The per-device totals are ``psum``-ed over ``axis_name`` when the rows are sharded.
    """
    k, d = centres.shape
    dt = Xc.dtype
    s2_shape = (k, d, d) if covariance_type in ("full", "tied") else (k, d)

    def body(carry, blk):
        x, w, aux = blk
        lpc, diff = resp_fn.log_prob(x)
        lpn, r = resp_fn(lpc, aux)
        r = r * w[:, None]
        ll = jnp.sum(jnp.where(w > 0, w * lpn, 0.0))
        nk, s1, s2 = _moments(diff, r, covariance_type)
        c_ll, c_nk, c_s1, c_s2 = carry
        return (c_ll + ll, c_nk + nk, c_s1 + s1, c_s2 + s2), None

    init = (jnp.zeros((), dt), jnp.zeros((k,), dt), jnp.zeros((k, d), dt), jnp.zeros(s2_shape, dt))
    if axis_name is not None:  # per-device partial sums vary over the data axis until the psum
        init = jax.lax.pcast(init, (axis_name,), to="varying")
    if Xc.shape[0] == 1:  # one block: no loop (see _map)
        tot, _ = body(init, jax.tree.map(lambda a: a[0], (Xc, Wc, auxc)))
    else:
        tot, _ = jax.lax.scan(body, init, (Xc, Wc, auxc))
    if axis_name is not None:
        tot = jax.lax.psum(tot, axis_name)
    ll, nk, s1, s2 = tot
    return (ll, nk, *resp_fn.unwhiten(s1, s2))


class _EStep:
    """resp_fn for EM: responsibilities from the current parameters."""

    def __init__(self, params: GMMParams):
        self.params = params
        self.centre = _mixture_centre(params)

    def log_prob(self, x):
        p = self.params
        return _component_log_prob_and_diff(x, p.means, p.precisions_cholesky, p.covariance_type, self.centre)

    def unwhiten(self, s1, s2):
        """Statistics of y = Uᵀ(x - μ) back to x - μ: Σ r (x - μ) = U⁻ᵀ s1, Σ r (x-μ)(x-μ)ᵀ = U⁻ᵀ s2 U⁻¹."""
        p = self.params
        if p.covariance_type not in ("full", "tied"):
            return s1, s2
        u = jnp.broadcast_to(p.precisions_cholesky, s2.shape)
        eye = jnp.broadcast_to(jnp.eye(s2.shape[-1], dtype=s2.dtype), s2.shape)
        v = solve_triangular(u, eye, lower=False)  # U⁻¹ (upper)
        vt = jnp.swapaxes(v, 1, 2)
        return jnp.einsum("ked,ke->kd", v, s1), vt @ s2 @ v

    def __call__(self, lpc, aux):
        wlp = lpc + jnp.log(self.params.weights)
        lpn = logsumexp(wlp, axis=1)
        return lpn, jnp.exp(wlp - lpn[:, None])


class _GivenResp:
    """resp_fn for initialisation: responsibilities given per row (labels -> one-hot, or a matrix)."""

    def __init__(self, centres, n_components, covariance_type):
        self.centres, self.k, self.covariance_type = centres, n_components, covariance_type

    def log_prob(self, x):
        if self.covariance_type in ("full", "tied"):  # (K, D, n) layout of _moments
            return None, x.T[None, :, :] - self.centres[:, :, None]
        return None, x[None, :, :] - self.centres[:, None, :]

    def unwhiten(self, s1, s2):
        return s1, s2

    def __call__(self, lpc, aux):
        r = jax.nn.one_hot(aux, self.k, dtype=self.centres.dtype) if aux.ndim == 1 else aux
        return jnp.zeros(r.shape[:1], r.dtype), r


def _m_step(nk_raw, s1, s2, centres, covariance_type, reg_covar, valid=None):
    """Parameters from statistics about ``centres`` (scikit-learn's M-step, shifted-data form).

    ``valid``: (K,) bool, False for padding components (see ``_k_bucket``): they get weight 0,
    keep their mean and get an identity covariance; None when there is no padding."""
    dt = centres.dtype
    nk = nk_raw + 10 * jnp.finfo(dt).eps  # keeps empty components finite, as scikit-learn
    if valid is not None:
        nk = jnp.where(valid, nk, 0.0)
        delta = s1 / jnp.where(valid, nk, 1.0)[:, None]
    else:
        delta = s1 / nk[:, None]  # new mean - centre
    means = centres + delta
    d = centres.shape[1]
    eye = jnp.eye(d, dtype=dt)
    if covariance_type == "full":
        cov = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        cov = 0.5 * (cov + jnp.swapaxes(cov, 1, 2)) + reg_covar * eye
    elif covariance_type == "tied":
        cov = (jnp.sum(s2, axis=0) - jnp.einsum("k,kd,ke->de", nk, delta, delta)) / jnp.sum(nk)
        cov = 0.5 * (cov + cov.T) + reg_covar * eye
    else:
        cov = s2 / nk[:, None] - delta**2 + reg_covar
        if covariance_type == "spherical":
            cov = jnp.mean(cov, axis=1)
    if valid is not None and covariance_type != "tied":
        pad_value = eye if covariance_type == "full" else 1.0
        cov = jnp.where(valid.reshape((-1,) + (1,) * (cov.ndim - 1)), cov, pad_value)
    return GMMParams(nk / jnp.sum(nk), means, cov, _precision_chol_from_cov(cov, covariance_type), covariance_type)


# ----------------------------------------------------------------------------- EM
def _em_local(X, w, params0, tol, reg_covar, lb0, *, max_iter, chunk, axis_name, valid=None):
    """EM on this device's rows; statistics are summed over ``axis_name`` (None: one device).
    ``valid``: (K,) bool mask of the real components when K is padded (see ``_m_step``)."""
    Xc, Wc, _ = _to_chunks(X, w, chunk)
    total_w = jnp.sum(w)
    if axis_name is not None:
        total_w = jax.lax.psum(total_w, axis_name)
    dt = X.dtype
    ct = params0.covariance_type
    dummy = jnp.zeros(Xc.shape[:2], jnp.int32)

    def body(state):
        i, params, lb, _, hist = state
        ll, nk, s1, s2 = _accumulate(Xc, Wc, dummy, _EStep(params), params.means, ct, axis_name)
        new_lb = ll / total_w
        new_params = _m_step(nk, s1, s2, params.means, ct, reg_covar, valid)
        converged = jnp.abs(new_lb - lb) < tol
        hist = hist.at[i].set(new_lb) if max_iter > 0 else hist
        return i + 1, new_params, new_lb, converged, hist

    def cond(state):
        i, _, _, converged, _ = state
        return (i < max_iter) & ~converged

    state0 = (jnp.zeros((), jnp.int32), params0, lb0.astype(dt), jnp.zeros((), bool), jnp.full((max_iter,), jnp.nan, dt))
    n_iter, params, lb, converged, hist = jax.lax.while_loop(cond, body, state0)
    return params, EMInfo(lb, n_iter, converged, hist)


def _sharded(fn, mesh, axis_name, n_in_sharded, n_in_replicated):
    """Wrap ``fn(*sharded_rows, *replicated)`` in ``shard_map``; outputs replicated."""
    specs = (P(axis_name),) * n_in_sharded + (P(),) * n_in_replicated
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P())


@partial(jax.jit, static_argnames=("max_iter", "chunk", "mesh", "axis_name"))
def _fit_em_jit(X, w, params0, tol, reg_covar, lb0, *, max_iter, chunk, mesh, axis_name):
    fn = partial(_em_local, max_iter=max_iter, chunk=chunk, axis_name=axis_name if mesh is not None else None)
    if mesh is None:
        return fn(X, w, params0, tol, reg_covar, lb0)
    return _sharded(fn, mesh, axis_name, 2, 4)(X, w, params0, tol, reg_covar, lb0)


def _prepare(X, sample_weight, *, min_samples=1, name="X"):
    """Validate X and the weights; returns (X, w, mesh, axis_name, n_local)."""
    X = _check_X(X, min_samples=min_samples, name=name)
    shard = row_sharding_of(X)
    mesh, axis = shard if shard is not None else (None, None)
    dt = X.dtype
    if sample_weight is None:
        if shard is not None:
            warnings.warn("X is row-sharded but no sample_weight was given: every row counts. If X comes from "
                          "jaxgen.sharding.shard_rows, pass the weights it returned so the padding rows count 0.",
                          stacklevel=3)
        w = jax.device_put(np.ones((X.shape[0],), dt))  # a transfer (jnp.ones would compile a program per N)
    else:
        w_np = sample_weight
        if not isinstance(w_np, jax.Array):
            w_np = check_data(sample_weight, name="sample_weight", ndim=1, dtype=dt)
        if w_np.shape != (X.shape[0],):
            raise ValueError(f"sample_weight must have shape ({X.shape[0]},), got {tuple(w_np.shape)}.")
        w = jnp.asarray(w_np, dt)
        if bool(jnp.any(w < 0)) or not bool(jnp.all(jnp.isfinite(w))) or not bool(jnp.sum(w) > 0):
            raise ValueError("sample_weight must be finite, non-negative and not all zero.")
    if mesh is not None:
        w = jax.device_put(w, jax.sharding.NamedSharding(mesh, P(axis)))
        n_local = X.shape[0] // mesh.shape[axis]
    else:
        X = X if isinstance(X, jax.Array) else jax.device_put(X)  # (jnp.asarray: a program per shape)
        n_local = X.shape[0]
    return X, w, mesh, axis, n_local


def _check_hyper(max_iter, tol, reg_covar, chunk_size):
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_positive_float(tol, "tol", allow_zero=True)
    reg_covar = check_positive_float(reg_covar, "reg_covar", allow_zero=True)
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    return max_iter, tol, reg_covar, chunk_size


def _raise_ill_defined(dtype):
    msg = _ILL_DEFINED_MSG
    if dtype == jnp.float32:
        msg += " The numerical accuracy can also be improved by passing float64 data instead of float32."
    raise ValueError(msg)


def _check_finite_params(params: GMMParams):
    leaves = (params.weights, params.means, params.precisions_cholesky)
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in leaves):
        _raise_ill_defined(params.means.dtype)


def fit_em(
    X,
    params0: GMMParams,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    chunk_size: int | None = None,
    sample_weight=None,
    lower_bound0: float = -np.inf,
) -> tuple[GMMParams, EMInfo]:
    """Run EM from ``params0`` until |Δ mean log-likelihood| < ``tol`` or ``max_iter`` iterations.

    The whole loop is one jitted ``lax.while_loop`` (no host round trip per iteration); each
    iteration is one chunked pass over the data (see the module docstring).

    Args:
      X: (N, D) data; NumPy, JAX, or a row-sharded JAX array from :func:`jaxgen.sharding.shard_rows`
        (then pass its padding weights as ``sample_weight``).
      params0: initial :class:`GMMParams` (e.g. from :func:`init_params`).
      max_iter: iterations (>= 0). tol: convergence threshold (>= 0). reg_covar: added to the
        covariance diagonals (>= 0).
      chunk_size: rows per block per device (default: about 2M floats of (K, chunk, D) work space).
      sample_weight: (N,) non-negative weights (frequency weights); default all ones.
      lower_bound0: previous lower bound (scikit-learn's warm start); -inf for a fresh start.

    Returns:
      ``(params, info)``: fitted :class:`GMMParams` (after the last M-step) and :class:`EMInfo`.

    Raises:
      ValueError: bad input, or a covariance that is not positive definite (increase reg_covar).
    """
    max_iter, tol, reg_covar, chunk_size = _check_hyper(max_iter, tol, reg_covar, chunk_size)
    if not isinstance(params0, GMMParams):
        raise ValueError(f"params0 must be a GMMParams, got {type(params0).__name__}.")
    X, w, mesh, axis, n_local = _prepare(X, sample_weight)
    if X.shape[1] != params0.n_features:
        raise ValueError(f"X has {X.shape[1]} features, but params0 has {params0.n_features}.")
    dt = X.dtype
    params0 = jax.tree.map(lambda a: jnp.asarray(a, dt), params0)
    chunk = _default_chunk(n_local, params0.n_components, params0.n_features) if chunk_size is None else min(chunk_size, n_local)
    params, info = _fit_em_jit(
        X, w, params0, jnp.asarray(tol, dt), jnp.asarray(reg_covar, dt), jnp.asarray(lower_bound0, dt),
        max_iter=max_iter, chunk=chunk, mesh=mesh, axis_name=axis,
    )
    _check_finite_params(params)
    return params, info


# ----------------------------------------------------------------------------- initialisation
def _sq_dists(Xs, xx, C):
    """Squared distances (N, M) by expansion (X is centred, so cancellation is mild); >= 0."""
    return jnp.maximum(xx[:, None] - 2.0 * Xs @ C.T + jnp.sum(C * C, axis=1)[None, :], 0.0)


def _draw_rows(key, weights, n: int):
    """``n`` row indices drawn with probability proportional to ``weights`` (N,) >= 0, not all 0.

    By the inverse CDF (a cumulative sum and ``n`` binary searches): O(N) work, where
    ``jax.random.categorical`` draws N Gumbel numbers per sample (50x slower at N = 200 000)."""
    cum = jnp.cumsum(weights)
    u = jax.random.uniform(key, (n,), dtype=cum.dtype) * cum[-1]
    return jnp.minimum(jnp.searchsorted(cum, u, side="right"), weights.shape[0] - 1)


def _kmeanspp(key, Xs, xx, w, k, kp=None, n_trials=None):
    """Greedy k-means++ seeding (2 + log k candidates per step, as scikit-learn): (kp,) row indices,
    the first ``k`` valid.

    ``k`` may be traced when ``kp`` (static, >= k) is given with ``n_trials = 2 + int(log k)``: the
    candidates are drawn for ``2 + int(log kp)`` trials and the extra ones masked out (the first
    draws of a longer array are those of a shorter one), so a padded K seeds as the exact one."""
    kp = k if kp is None else kp
    n_max = 2 + int(np.log(kp))
    n_trials = n_max if n_trials is None else n_trials
    trial_ok = jnp.arange(n_max) < n_trials
    dt = Xs.dtype
    key0, key = jax.random.split(key)
    first = _draw_rows(key0, w, 1)[0]
    d2 = _sq_dists(Xs, xx, Xs[first][None])[:, 0]
    idx = jnp.zeros((kp,), jnp.int32).at[0].set(first.astype(jnp.int32))

    def step(j, carry):
        idx, d2, key = carry
        key, sub = jax.random.split(key)
        pot = w * d2
        cand = _draw_rows(sub, jnp.where(jnp.sum(pot) > 0, pot, w), n_max)
        new_d2 = jnp.minimum(d2[:, None], _sq_dists(Xs, xx, Xs[cand]))
        best = jnp.argmin(jnp.where(trial_ok, jnp.sum(w[:, None] * new_d2, axis=0), jnp.inf))
        return idx.at[j].set(cand[best].astype(jnp.int32)), new_d2[:, best], key

    idx, _, _ = jax.lax.fori_loop(1, k, step, (idx, d2.astype(dt), key))
    return idx


def _lloyd(Xs, w, centres, max_iter=100, valid=None):
    """Weighted Lloyd iterations until the centre shift is below scikit-learn's default tol.
    ``valid``: (K,) bool, False for padding centres (never assigned a row, never moved)."""
    k = centres.shape[0]
    total = jnp.sum(w)
    var = jnp.sum(w[:, None] * Xs * Xs, axis=0) / total - (jnp.sum(w[:, None] * Xs, axis=0) / total) ** 2
    tol = 1e-4 * jnp.mean(var)
    # Sums per cluster: a scatter-add on CPU (2.3x faster than the one-hot matmul at N = 200 000,
    # K = 16); elsewhere the one-hot matmul, whose sums do not depend on the order of atomic adds.
    scatter = jax.default_backend() == "cpu"

    def assign(c):  # argmin of |x - c|^2 over c: |x|^2 is the same for every c
        dist = jnp.sum(c * c, axis=1)[None, :] - 2.0 * Xs @ c.T
        return jnp.argmin(dist if valid is None else jnp.where(valid, dist, jnp.inf), axis=1)

    def body(state):
        i, c, _ = state
        labels = assign(c)
        if scatter:
            sums = jax.ops.segment_sum(w[:, None] * Xs, labels, k)
            cnt = jax.ops.segment_sum(w, labels, k)
        else:
            r = jax.nn.one_hot(labels, k, dtype=Xs.dtype) * w[:, None]
            sums, cnt = r.T @ Xs, jnp.sum(r, axis=0)
        new = jnp.where(cnt[:, None] > 0, sums / jnp.maximum(cnt, 1e-30)[:, None], c)
        return i + 1, new, jnp.sum((new - c) ** 2)

    def cond(state):
        i, _, shift = state
        return (i < max_iter) & (shift > tol)

    _, c, _ = jax.lax.while_loop(cond, body, (0, centres, jnp.asarray(jnp.inf, Xs.dtype)))
    return c, assign(c)


def _init_resp(key, X, w, k, init, kp=None, n_trials=None):
    """(aux per row, centres (kp, D)): labels (N,) int (-1 = no component) or a responsibility matrix (N, kp).

    ``k`` may be traced when the static ``kp`` (>= k, see ``_k_bucket``) and ``n_trials`` (k-means++)
    are given: components k..kp-1 are padding, never assigned a row; the first k are the exact-K init."""
    valid = None if kp is None else jnp.arange(kp) < k
    kp = k if kp is None else kp
    total = jnp.sum(w)
    mean = jnp.sum(w[:, None] * X, axis=0) / total
    Xs = X - mean  # centred copy: better-conditioned distances
    n = X.shape[0]
    seeds = jnp.arange(kp, dtype=jnp.int32)

    def seed_labels(idx):  # only the seeds carry responsibility (padding seeds point past the end: dropped)
        idx = idx if valid is None else jnp.where(valid, idx, n)
        return jnp.full((n,), -1, jnp.int32).at[idx].set(seeds, mode="drop")

    if init in ("kmeans++", "kmeans", "k-means++"):
        xx = jnp.sum(Xs * Xs, axis=1)
        idx = _kmeanspp(key, Xs, xx, w, k, kp, n_trials)
        if init == "k-means++":  # scikit-learn: only the seeds carry responsibility
            return seed_labels(idx), X[idx]
        centres, labels = _lloyd(Xs, w, Xs[idx], valid=valid)
        return labels.astype(jnp.int32), centres + mean
    if init == "random_from_data":
        idx = jax.random.choice(key, n, (kp,), replace=False, p=w / total)  # its first k: the draws for k
        return seed_labels(idx), X[idx]
    if valid is None:
        r = jax.random.uniform(key, (n, k), dtype=X.dtype)
    else:  # the (n, k) draws laid out row-major in a longer vector: the same numbers as for the exact k
        flat = jax.random.uniform(key, (n * kp,), dtype=X.dtype)
        pos = jnp.arange(n)[:, None] * k + seeds[None, :]
        r = jnp.where(valid, flat[jnp.minimum(pos, n * kp - 1)], 0.0)
    return r / jnp.sum(r, axis=1, keepdims=True), jnp.broadcast_to(mean, (kp, X.shape[1]))


def _init_mstep_local(X, w, aux, centres, reg_covar, *, covariance_type, chunk, axis_name, valid=None):
    k = centres.shape[0]
    Xc, Wc, (auxc,) = _to_chunks(X, w, chunk, aux)
    _, nk, s1, s2 = _accumulate(Xc, Wc, auxc, _GivenResp(centres, k, covariance_type), centres, covariance_type, axis_name)
    # Weights N_k / Σ N_k. (scikit-learn divides by n_samples here, which leaves the weights of the
    # "k-means++" / "random_from_data" inits summing to K / N; normalising changes only the first
    # lower bound, not the responsibilities, so the EM path is the same.)
    return _m_step(nk, s1, s2, centres, covariance_type, reg_covar, valid)


@partial(jax.jit, static_argnames=("k", "covariance_type", "init", "chunk", "mesh", "axis_name"))
def _init_jit(key, X, w, reg_covar, *, k, covariance_type, init, chunk, mesh, axis_name):
    aux, centres = _init_resp(key, X, w, k, init)
    fn = partial(_init_mstep_local, covariance_type=covariance_type, chunk=chunk,
                 axis_name=axis_name if mesh is not None else None)
    if mesh is None:
        return fn(X, w, aux, centres, reg_covar)
    return _sharded(fn, mesh, axis_name, 3, 2)(X, w, aux, centres, reg_covar)


def _check_model_args(n_components, covariance_type, init, n_samples):
    n_components = check_positive_int(n_components, "n_components")
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    check_choice(init, "init", INIT_METHODS)
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {n_components}, n_samples = {n_samples}."
        )
    return n_components


def init_params(
    key,
    X,
    n_components: int,
    covariance_type: str = "full",
    *,
    init: str = "kmeans++",
    reg_covar: float = 1e-6,
    sample_weight=None,
    chunk_size: int | None = None,
) -> GMMParams:
    """Initial parameters: responsibilities from ``init``, then scikit-learn's M-step.

    Args:
      key: PRNG key. X: (N, D) data (may be row-sharded; pass the padding weights then).
      n_components: K >= 1 (N >= K required).
      init: "kmeans++" (alias "kmeans": k-means++ seeding + Lloyd to convergence, hard labels),
        "k-means++" (seeding only: the K seeds get responsibility 1), "random" (uniform random
        responsibilities, normalised), "random_from_data" (K distinct data points).
      sample_weight: (N,) non-negative weights.

    Returns:
      :class:`GMMParams` (weights N_k / Σ N_k, normalised, see ``_init_mstep_local``).
    """
    key = check_key(key)
    reg_covar = check_positive_float(reg_covar, "reg_covar", allow_zero=True)
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    X, w, mesh, axis, n_local = _prepare(X, sample_weight)
    n_real = int(jnp.sum(w > 0))
    k = _check_model_args(n_components, covariance_type, init, n_real)
    chunk = _default_chunk(n_local, k, X.shape[1]) if chunk_size is None else min(chunk_size, n_local)
    params = _init_jit(key, X, w, jnp.asarray(reg_covar, X.dtype), k=k, covariance_type=covariance_type,
                       init=init, chunk=chunk, mesh=mesh, axis_name=axis)
    _check_finite_params(params)
    return params


# ----------------------------------------------------------------------------- restarts
# An unsharded fit is two compiled programs: the initialisations of all restarts (which do not depend
# on the covariance type: one program serves a grid over types and, with K padded, over K) and EM of
# every restart with the choice of the best and its labels (one per covariance type). Restarts run one
# after another inside each program (``lax.map``): the compiled loop body is that of one run.
def _init_runs(key, X, w, k, n_trials, *, n_init, kp, init):
    """Initial responsibilities of the restarts, keys ``split(key, n_init)``: (aux (R, N) or
    (R, N, kp), centres (R, kp, D)). (Splitting here, not eagerly: one program fewer to compile.)"""
    keys = jax.random.split(key, n_init)
    return _map(lambda key_r: _init_resp(key_r, X, w, k, init, kp, n_trials), keys)


def _em_runs(X, w, aux, centres, k, tol, reg_covar, *, kp, covariance_type, chunk, max_iter):
    """Initial M-step and EM of each restart; the best run (first on ties, NaN last).

    Returns ``(params (kp components), info, labels (N,), finite)``: ``labels`` the most probable
    component of each row under the returned parameters, ``finite`` whether they are all finite."""
    valid = jnp.arange(kp) < k
    lb0 = jnp.asarray(-jnp.inf, X.dtype)

    def one(start):
        aux_r, centres_r = start
        p0 = _init_mstep_local(X, w, aux_r, centres_r, reg_covar, covariance_type=covariance_type,
                               chunk=chunk, axis_name=None, valid=valid)
        return _em_local(X, w, p0, tol, reg_covar, lb0, max_iter=max_iter, chunk=chunk, axis_name=None, valid=valid)

    ps, infos = _map(one, (aux, centres))
    lbs = infos.lower_bound
    best = jnp.argmax(jnp.where(jnp.isnan(lbs), -jnp.inf, lbs)) if max_iter > 0 else 0
    params, info = jax.tree.map(lambda a: a[best], (ps, infos))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(params)]))
    labels = _rows(_predict_block, params, X, chunk)
    return params, info, labels, finite


_INIT_STATIC, _EM_STATIC = ("n_init", "kp", "init"), ("kp", "covariance_type", "chunk", "max_iter")
_init_runs_quick = jax.jit(_init_runs, static_argnames=_INIT_STATIC, compiler_options=_QUICK_COMPILE)
_em_runs_quick = jax.jit(_em_runs, static_argnames=_EM_STATIC, compiler_options=_QUICK_COMPILE)
_init_runs = jax.jit(_init_runs, static_argnames=_INIT_STATIC)
_em_runs = jax.jit(_em_runs, static_argnames=_EM_STATIC)


def _fit_runs(key, X, w, k, covariance_type, n_init, init, max_iter, tol, reg_covar, chunk_size):
    """Unsharded ``fit``: ``(params, info, labels)`` through ``_init_runs`` and ``_em_runs``, padded in
    K and N when the problem is small (see ``_k_bucket``)."""
    n, d = X.shape
    dt = X.dtype
    init_runs, em_runs, n_pad, kp = _init_runs, _em_runs, n, k
    if _is_small(n, k, d):
        kp, n_pad = _k_bucket(n, k, d), power_of_two_at_least(n, _MIN_ROWS)
        X, w = _pad_rows(X, n_pad), _pad_rows(w, n_pad)  # rows of weight 0: no part in any sum or draw
        if _quick_compile():
            init_runs, em_runs = _init_runs_quick, _em_runs_quick
    chunk = _default_chunk(n_pad, kp, d) if chunk_size is None else min(chunk_size, n_pad)
    # scalars as transfers (jnp.asarray would compile a conversion program for each)
    k_arr, trials, tol, reg_covar = jax.device_put((np.int32(k), np.int32(2 + int(np.log(k))),
                                                    np.asarray(tol, dt), np.asarray(reg_covar, dt)))
    aux, centres = init_runs(key, X, w, k_arr, trials, n_init=n_init, kp=kp, init=init)
    params, info, labels, finite = em_runs(X, w, aux, centres, k_arr, tol, reg_covar, kp=kp,
                                           covariance_type=covariance_type, chunk=chunk, max_iter=max_iter)
    if not bool(finite):
        _raise_ill_defined(dt)
    if n_pad != n:
        labels = jax.device_put(np.asarray(labels)[:n])
    return (params if kp == k else _unpad_params(params, k)), info, labels


def _fit(key, X, n_components, covariance_type, *, n_init, init, max_iter, tol, reg_covar, chunk_size, sample_weight, warn):
    """``fit`` that also returns the labels of the rows under the fitted parameters: (N,) int."""
    key = check_key(key)
    n_init = check_positive_int(n_init, "n_init")
    max_iter, tol, reg_covar, chunk_size = _check_hyper(max_iter, tol, reg_covar, chunk_size)
    X, w, mesh, axis, n_local = _prepare(X, sample_weight)
    n_real = X.shape[0] if sample_weight is None else int(jnp.sum(w > 0))
    k = _check_model_args(n_components, covariance_type, init, n_real)
    # "random" keeps an (N, K) responsibility matrix per restart between the two programs: bounded
    big_resp = init == "random" and n_init * X.shape[0] * k > _RESP_LIMIT
    if mesh is None and not big_resp:
        params, info, labels = _fit_runs(key, X, w, k, covariance_type, n_init, init, max_iter, tol, reg_covar, chunk_size)
    else:  # sharded rows: each restart's init and EM in turn, each under shard_map
        params = info = None
        for i, key_i in enumerate(jax.random.split(key, n_init)):
            p0 = init_params(key_i, X, k, covariance_type, init=init, reg_covar=reg_covar, sample_weight=w, chunk_size=chunk_size)
            p, inf = fit_em(X, p0, max_iter=max_iter, tol=tol, reg_covar=reg_covar, chunk_size=chunk_size, sample_weight=w)
            if info is None or float(inf.lower_bound) > float(info.lower_bound):
                params, info = p, inf
        labels = None
    if warn and max_iter > 0 and not bool(info.converged):
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(_CONVERGENCE_MSG, ConvergenceWarning, stacklevel=3)
    return params, info, labels


_RESP_LIMIT = 1 << 24  # n_init * N * K floats of initial responsibilities above which restarts run one by one


def fit(
    key,
    X,
    n_components: int,
    covariance_type: str = "full",
    *,
    n_init: int = 1,
    init: str = "kmeans++",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    chunk_size: int | None = None,
    sample_weight=None,
    warn: bool = True,
) -> tuple[GMMParams, EMInfo]:
    """Initialise and run EM ``n_init`` times; keep the run with the best final lower bound.

    The restarts use the keys ``jax.random.split(key, n_init)`` and run one after another inside
    two compiled programs (initialisation, then EM); on small data the number of components is
    padded with inert components so that those programs serve many K (see ``_k_bucket``). Rows
    sharded over devices run each restart's :func:`init_params` and :func:`fit_em` in turn. Emits
    a ``sklearn.exceptions.ConvergenceWarning`` (outside jit) when the best run did not converge.

    Returns:
      ``(params, info)`` of the best run (first one on ties, as scikit-learn).
    """
    params, info, _ = _fit(key, X, n_components, covariance_type, n_init=n_init, init=init, max_iter=max_iter,
                           tol=tol, reg_covar=reg_covar, chunk_size=chunk_size, sample_weight=sample_weight, warn=warn)
    return params, info
