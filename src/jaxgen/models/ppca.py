"""Probabilistic PCA (Tipping & Bishop 1999): closed-form ML, EM with missing data, exact density.

Model::

    z ~ N(0, I_q),   x | z ~ N(mu + W z, sigma2 I_D)   =>   x ~ N(mu, C),  C = W W^T + sigma2 I_D.

Maximum likelihood (:func:`fit_ml`). With the eigen-decomposition ``U Lambda U^T`` of the sample
covariance, ``sigma2`` is the mean of the ``D - q`` discarded eigenvalues and
``W = U_q (Lambda_q - sigma2 I)^{1/2}``. The true MLE divides the scatter by ``N`` (``ddof=0``,
jaxgen's default); scikit-learn's ``PCA`` divides by ``N - 1`` (``ddof=1``), and with that choice
:func:`log_prob` equals ``PCA.score_samples`` (for ``N >= D``; scikit-learn averages the discarded
eigenvalues over ``min(N, D) - q`` of them, Tipping & Bishop over ``D - q``).

Conventions:
  * The columns of ``W`` returned by :func:`fit_ml` and :func:`fit_em` are orthogonal, ordered by
    decreasing norm, and each has its largest-magnitude entry positive (scikit-learn's
    ``svd_flip`` convention for ``components_``), so results are deterministic.
  * ``sigma2`` is floored at ``SIGMA2_FLOOR * mean(diag(S))`` (``S`` the sample covariance). The ML
    noise variance is 0 when ``q = D`` (or when the data lie in a q-dimensional subspace); the floor
    keeps ``C`` invertible, so the density is then a near-degenerate Gaussian, not a singular one.
  * The covariance is computed as one GEMM of the centred data followed by ``eigh`` of the
    ``D x D`` matrix (cheaper than an SVD of the data when ``N >> D``). Centring first keeps float32
    accurate; eigenvalues below ~1e-7 x the largest are round-off in float32.

Missing data (:func:`fit_em`, :func:`log_prob_observed`): entries marked NaN are missing at
random. Given z the coordinates of x are independent, so a missing coordinate just drops out of
the complete-data likelihood: the E-step uses, per sample, the observed rows of W (done with a
0/1 mask so everything stays batched), and the M-step solves, per feature d, a (q+1)-dimensional
least-squares problem for ``[W_d, mu_d]`` over the samples where d is observed. This is exact EM for
the observed-data likelihood, which therefore never decreases. On complete data EM runs on the
``D x D`` covariance and, by default, adds an exact rescaling step per iteration (see
:func:`fit_em`), which turns thousands of iterations into a handful.
"""
from __future__ import annotations

import functools
import math
import warnings

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from jaxgen.linalg import principal_angles  # re-exported: the subspace error of a fit
from jaxgen.validation import check_data, check_key, check_positive_float, check_positive_int

__all__ = [
    "PPCAParams",
    "EMInfo",
    "SIGMA2_FLOOR",
    "fit_ml",
    "fit_em",
    "log_prob",
    "log_prob_observed",
    "mahalanobis",
    "mahalanobis_logdet",
    "ml_from_scatter",
    "sample",
    "encode",
    "encode_observed",
    "reconstruct",
    "outlier_score",
    "covariance",
    "canonicalize",
    "principal_angles",
]

SIGMA2_FLOOR = 1e-6
"""Relative floor of the noise variance: ``sigma2 >= SIGMA2_FLOOR * (average feature variance)``."""

_LOG_2PI = math.log(2.0 * math.pi)


@flax.struct.dataclass
class PPCAParams:
    """PPCA parameters: ``mu (D,)`` mean, ``W (D, q)`` loadings, ``sigma2 ()`` noise variance."""

    mu: jax.Array
    W: jax.Array
    sigma2: jax.Array


@flax.struct.dataclass
class EMInfo:
    """EM diagnostics.

    ``log_likelihood (max_iter,)``: mean per-sample log-likelihood of the observed data at the start
    of each iteration (NaN after the last one); ``n_iter ()``: iterations run; ``converged ()``:
    whether ``|delta L| <= tol * |L|`` was reached before ``max_iter``.
    """

    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array


# --------------------------------------------------------------------------------------------
# input handling (NumPy boundary)


def _check_q(n_components, n_features: int, *, max_q: int | None = None) -> int:
    """``n_components`` as an int in 1..max_q (default ``n_features``)."""
    max_q = n_features if max_q is None else max_q
    q = check_positive_int(n_components, "n_components")
    if q > max_q:
        bound = f"n_features = {n_features}" if max_q == n_features else f"n_features - 1 = {max_q}"
        raise ValueError(f"n_components must be <= {bound}, got {q}.")
    return q


def _check_not_constant(X: np.ndarray) -> np.ndarray:
    """PPCA's density is undefined on data without any variance (sigma2 would be 0): say so.

    NaN entries (missing values) are ignored; an all-NaN column counts as constant. Without NaN
    this is two contiguous passes (a min, and each row against the next: about 2 ms for 100k x 64
    float32), where per-column reductions along the rows cost ten times more in NumPy."""
    if not np.isnan(np.min(X)):  # min propagates NaN
        spread = bool(np.any(X[1:] != X[:-1]))
    else:
        with warnings.catch_warnings():  # all-NaN columns: nanmax warns and returns NaN, which is fine here
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = bool(np.any(np.nanmax(X, axis=0) > np.nanmin(X, axis=0)))
    if not spread:
        raise ValueError("X has no variance (every feature is constant): a PPCA density cannot be fitted to it.")
    return X


def _check_not_constant_jax(X: jax.Array) -> jax.Array:
    """:func:`_check_not_constant` for a (finite) JAX array, by a reduction on its device."""
    if not bool(jnp.any(X != X[0])):
        raise ValueError("X has no variance (every feature is constant): a PPCA density cannot be fitted to it.")
    return X


_CPU_BLOCK_NUMBERS = 1 << 18


def _block_rows(n_rows: int, n_features: int) -> int:
    """Rows per block of the row scans: about 256k numbers (1 MB in float32) on a CPU, so a block and
    its temporaries stay in a core's L2 cache; 64M numbers on an accelerator (few, large kernels)."""
    budget = _CPU_BLOCK_NUMBERS if jax.default_backend() == "cpu" else (1 << 26)
    return max(1, min(n_rows, budget // max(1, n_features)))


def _scan_rows(fn, X: jax.Array, carry, chunk: int):
    """``fn(carry, x_block) -> (carry, per_row)`` over row blocks of ``X (N, D)``; returns the final
    carry and the per-row outputs concatenated to ``(N, ...)``. Blocks are sliced from X in place
    (no padded copy); the last, shorter block is a separate call."""
    N = X.shape[0]
    nc = N // chunk

    def body(c, i):
        return fn(c, jax.lax.dynamic_slice_in_dim(X, i * chunk, chunk))

    carry, out = jax.lax.scan(body, carry, jnp.arange(nc))
    out = jax.tree.map(lambda a: a.reshape(nc * chunk, *a.shape[2:]), out)
    if N > nc * chunk:
        carry, rest = fn(carry, X[nc * chunk:])
        out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, rest)
    return carry, out


def _prepare(params: PPCAParams, X, *, allow_nan: bool = False) -> jax.Array:
    """Validate user data against fitted params; tracers (calls under ``jit``) pass through."""
    if isinstance(X, jax.core.Tracer):
        return X
    D = params.mu.shape[0]
    return jnp.asarray(check_data(X, allow_nan=allow_nan, n_features=D, dtype=params.mu.dtype))


def _flip_sign(U: jax.Array) -> jax.Array:
    """Flip each column of ``U (D, k)`` so that its largest-magnitude entry is positive."""
    idx = jnp.argmax(jnp.abs(U), axis=0)
    signs = jnp.sign(U[idx, jnp.arange(U.shape[1])])
    return U * jnp.where(signs == 0, 1.0, signs).astype(U.dtype)


def canonicalize(params: PPCAParams) -> PPCAParams:
    """The same density with ``W`` rotated to orthogonal columns ``U diag(s)`` (s descending), signs
    by the largest-entry convention. EM leaves ``W`` in an arbitrary rotation ``W R``; this removes it."""
    U, s, _ = jnp.linalg.svd(params.W, full_matrices=False)
    return params.replace(W=_flip_sign(U) * s)


# --------------------------------------------------------------------------------------------
# closed-form maximum likelihood


def ml_from_scatter(S: jax.Array, q: int) -> tuple[jax.Array, jax.Array]:
    """Tipping & Bishop's closed form for a given (possibly weighted) covariance ``S (D, D)``.

    Returns ``(W (D, q), sigma2 ())`` maximising ``-log|C| - tr(C^{-1} S)`` over
    ``C = W W^T + sigma2 I``: the M-step of every model built on the PPCA covariance (here, and the
    <u>-weighted scatter of Student-t PCA). ``sigma2`` is floored as described in the module docstring.
    """
    D = S.shape[0]
    evals, evecs = jnp.linalg.eigh(S)  # ascending
    evals = jnp.maximum(evals[::-1], 0.0)  # clip round-off negatives of a rank-deficient S
    evecs = evecs[:, ::-1]
    floor = SIGMA2_FLOOR * jnp.mean(evals) + jnp.finfo(S.dtype).tiny
    sigma2 = jnp.mean(evals[q:]) if q < D else jnp.zeros((), S.dtype)
    sigma2 = jnp.maximum(sigma2, floor)
    U = _flip_sign(evecs[:, :q])
    return U * jnp.sqrt(jnp.maximum(evals[:q] - sigma2, 0.0)), sigma2


def _shifted_scatter(X: jax.Array):
    """``(mean (D,), scatter (D, D))`` with scatter = sum_n (x_n - mean)(x_n - mean)^T, in one pass.

    Each block is shifted by ``s``, the mean of the first rows (close to the mean, so the final
    correction ``- N (mean - s)(mean - s)^T`` is tiny and float32 stays accurate), and its GEMM runs
    while the block is in cache: no centred (N, D) copy of X is written."""
    N, D = X.shape
    s = jnp.mean(X[: min(N, 1024)], axis=0)

    def acc(c, x):
        xs = x - s
        return (c[0] + xs.T @ xs, c[1] + jnp.sum(xs, axis=0)), jnp.zeros((x.shape[0], 0), X.dtype)

    zero = (jnp.zeros((D, D), X.dtype), jnp.zeros((D,), X.dtype))
    (G, t), _ = _scan_rows(acc, X, zero, max(_block_rows(N, D), min(N, 16384)))
    m = t / N
    return s + m, G - N * jnp.outer(m, m)


@functools.partial(jax.jit, static_argnames=("q", "ddof"))
def _fit_ml(X: jax.Array, q: int, ddof: int) -> PPCAParams:
    N, D = X.shape
    mu, scatter = _shifted_scatter(X)
    W, sigma2 = ml_from_scatter(scatter / (N - ddof), q)
    return PPCAParams(mu=mu, W=W, sigma2=sigma2)


@functools.partial(jax.jit, static_argnames=("q", "N", "ddof"))
def _fit_from_moments(mu, scatter, q: int, N: int, ddof: int) -> PPCAParams:
    W, sigma2 = ml_from_scatter(scatter / (N - ddof), q)
    return PPCAParams(mu=mu, W=W, sigma2=sigma2)


_HOST_BLOCK_ROWS = 4096  # rows per host GEMM block of _fit_ml_validated (1 MB in float32; 8192 was 5 % faster but less accurate in float32)


def _fit_ml_validated(X, q: int, ddof: int, *, finite_checked: bool = True) -> PPCAParams:
    """:func:`fit_ml` of validated data (NumPy or JAX), with the constant-data check folded in.

    On the CPU backend the scatter is accumulated where the data already live, with the host BLAS
    (blocks of 4096 rows shifted by the first row, so a block's GEMM runs in cache and float32
    stays accurate, the blocks' sums added in float64; no copy of X to a JAX buffer); XLA's CPU
    GEMM for this (N, D)^T (N, D) shape measured about 2x slower than OpenBLAS on one core. Only
    the D x D eigen-decomposition runs in JAX. On an accelerator X goes to the device and
    :func:`_fit_ml` runs there. Data whose rows all equal the first row give an exactly zero
    scatter: that is the "no variance" error, without another pass.

    ``finite_checked=False`` (NumPy X from ``check_data(..., finite=False)``): a NaN or inf in X
    makes the scatter's diagonal or the column sums non-finite, so the host path checks those
    D + D numbers instead of scanning X (a pass that cost a tenth of the fit), and calls
    ``check_data`` again only then, for its message.
    """
    if isinstance(X, jax.Array):
        return _fit_ml(_check_not_constant_jax(X), q, ddof)
    if jax.default_backend() != "cpu":
        X = X if finite_checked else check_data(X)
        return _fit_ml(jnp.asarray(_check_not_constant(X)), q, ddof)
    N, D = X.shape
    s = X[0].copy()
    G = np.zeros((D, D), np.float64)  # the blocks' sums accumulate in float64
    t = np.zeros((D,), np.float64)
    block = max(1, min(N, _HOST_BLOCK_ROWS))
    buf = np.empty((block, D), X.dtype)  # reused: no fresh pages per block
    ones = np.ones((block,), X.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf in X are detected below, from G and t
        for i in range(0, N, block):
            n = min(block, N - i)
            xs = np.subtract(X[i:i + n], s, out=buf[:n])
            G += xs.T @ xs
            t += ones[:n] @ xs  # a GEMV: NumPy's reductions along rows are several times slower
    if not (np.isfinite(np.diag(G)).all() and np.isfinite(t).all()):
        check_data(X)  # raises the NaN/inf message when X holds one
        raise ValueError(
            f"X is finite but its squares overflow {X.dtype} (values up to {np.abs(X).max():.3g}): "
            "rescale the data or pass float64."
        )
    if not np.trace(G) > 0:
        raise ValueError("X has no variance (every feature is constant): a PPCA density cannot be fitted to it.")
    m = t / N
    scatter = (G - N * np.outer(m, m)).astype(X.dtype)
    return _fit_from_moments(jnp.asarray(s + m.astype(X.dtype)), jnp.asarray(scatter), q, N, ddof)


def fit_ml(X, n_components: int, *, ddof: int = 0) -> PPCAParams:
    """Closed-form maximum-likelihood PPCA (Tipping & Bishop 1999, eq. 7-8).

    Args:
      X: ``(N, D)`` data, finite.
      n_components: latent dimension ``q``, ``1 <= q <= D``.
      ddof: the sample covariance divides by ``N - ddof``. ``0`` (default) is the true MLE; ``1``
        reproduces scikit-learn's ``PCA`` (its ``score_samples`` equals :func:`log_prob`).

    Returns:
      :class:`PPCAParams` with ``mu (D,)``, ``W (D, q)`` (orthogonal columns, deterministic signs),
      ``sigma2 ()`` (floored, see module docstring), in the dtype of ``X`` (float64 under x64).
    """
    ddof = check_positive_int(ddof, "ddof", minimum=0)
    X = check_data(X, min_samples=max(2, ddof + 1), finite=False)  # NaN/inf: found by the fit itself
    q = _check_q(n_components, X.shape[1])
    return _fit_ml_validated(X, q, ddof, finite_checked=False)


# --------------------------------------------------------------------------------------------
# density, posterior, sampling (complete data)


def _eig_parts(params: PPCAParams):
    """``U (D, q)`` orthonormal basis of span(W) and ``ev (q,)`` the eigenvalues of C along it."""
    U, s, _ = jnp.linalg.svd(params.W, full_matrices=False)
    return U, s**2 + params.sigma2


@jax.jit
def mahalanobis_logdet(params, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(delta (N,), logdet ())``: Mahalanobis distances under ``C = W W^T + sigma2 I`` and ``log|C|``.

    No input checks: for models built on the PPCA covariance (``params`` needs ``mu``, ``W``,
    ``sigma2``; Student-t PCA uses it too) and for calls under ``jit``.
    """
    # C = U diag(ev) U^T + sigma2 (I - U U^T): split x - mu into its coordinates in span(W) and the
    # residual off it. The residual is formed explicitly (not |r|^2 - |U^T r|^2) so that a tiny
    # sigma2 (q = D) does not amplify cancellation error. Two (n, D) x (D, q) GEMMs per block of rows,
    # the block's temporaries cache-resident: O(N D q) flops, one read of X, no (N, D) temporary.
    U, ev = _eig_parts(params)
    D, q = params.W.shape
    mu = params.mu

    def block(c, x):
        r = x - mu
        P = r @ U
        resid = r - P @ U.T
        return c, jnp.sum(P**2 / ev, axis=1) + jnp.sum(resid**2, axis=1) / params.sigma2

    _, maha = _scan_rows(block, X, None, _block_rows(*X.shape))
    logdet = jnp.sum(jnp.log(ev)) + (D - q) * jnp.log(params.sigma2)
    return maha, logdet


@jax.jit
def _log_prob(params: PPCAParams, X: jax.Array) -> jax.Array:
    maha, logdet = mahalanobis_logdet(params, X)
    return -0.5 * (X.shape[1] * _LOG_2PI + logdet + maha)


def log_prob(params: PPCAParams, X) -> jax.Array:
    """Exact marginal log density ``log N(x; mu, W W^T + sigma2 I)`` of each row, ``(N,)``.

    ``X (N, D)`` must be finite (use :func:`log_prob_observed` for rows with NaN). Cost O(N D q).
    """
    return _log_prob(params, _prepare(params, X))


def mahalanobis(params: PPCAParams, X) -> jax.Array:
    """Squared Mahalanobis distance ``(x - mu)^T C^{-1} (x - mu)`` of each row under the marginal, ``(N,)``."""
    return mahalanobis_logdet(params, _prepare(params, X))[0]


def outlier_score(params: PPCAParams, X) -> jax.Array:
    """``-log_prob``: higher means more anomalous, ``(N,)``."""
    return -log_prob(params, X)


def covariance(params: PPCAParams) -> jax.Array:
    """The marginal covariance ``W W^T + sigma2 I`` as a dense ``(D, D)`` matrix (reporting only)."""
    D = params.W.shape[0]
    return params.W @ params.W.T + params.sigma2 * jnp.eye(D, dtype=params.W.dtype)


@jax.jit
def _encode(params: PPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    q = params.W.shape[1]
    M = params.W.T @ params.W + params.sigma2 * jnp.eye(q, dtype=params.W.dtype)
    L = jnp.linalg.cholesky(M)
    mean = cho_solve((L, True), params.W.T @ (X - params.mu).T).T
    cov = params.sigma2 * cho_solve((L, True), jnp.eye(q, dtype=M.dtype))
    return mean, cov


def encode(params: PPCAParams, X) -> tuple[jax.Array, jax.Array]:
    """Posterior ``p(z | x) = N(mean_n, cov)``.

    With ``M = W^T W + sigma2 I``: ``mean = M^{-1} W^T (x - mu)`` ``(N, q)`` and
    ``cov = sigma2 M^{-1}`` ``(q, q)`` (the same for every sample).
    """
    return _encode(params, _prepare(params, X))


def reconstruct(params: PPCAParams, X) -> jax.Array:
    """``W E[z | x] + mu`` for each row, ``(N, D)`` (shrunk towards mu compared with the projection)."""
    mean, _ = encode(params, X)
    return mean @ params.W.T + params.mu


@functools.partial(jax.jit, static_argnames=("n",))
def _sample(key: jax.Array, params: PPCAParams, n: int) -> tuple[jax.Array, jax.Array]:
    D, q = params.W.shape
    kz, ke = jax.random.split(key)
    z = jax.random.normal(kz, (n, q), params.W.dtype)
    eps = jax.random.normal(ke, (n, D), params.W.dtype) * jnp.sqrt(params.sigma2)
    return params.mu + z @ params.W.T + eps, z


def sample(key: jax.Array, params: PPCAParams, n: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``n`` samples: returns ``x (n, D)`` and the latents ``z (n, q)`` that generated them."""
    return _sample(key, params, check_positive_int(n, "n"))


# --------------------------------------------------------------------------------------------
# missing data: per-sample quantities over the observed coordinates, batched with a mask


def _observed_stats(params: PPCAParams, X: jax.Array):
    """Per-sample posterior pieces over observed coordinates.

    Returns ``(loglik (N,), m (N, q) posterior means, Minv (N, q, q) = M_n^{-1}, O (N, D) mask,
    X0 (N, D) data with NaN -> 0)``, where ``M_n = W_o^T W_o + sigma2 I``.
    """
    D, q = params.W.shape
    dt = params.W.dtype
    O = ~jnp.isnan(X)
    Of = O.astype(dt)
    X0 = jnp.where(O, X, 0.0)
    r = jnp.where(O, X - params.mu, 0.0)
    # M_n = sum_d o_nd w_d w_d^T: one (N, D) x (D, q*q) GEMM over the row outer products of W.
    WW = (params.W[:, :, None] * params.W[:, None, :]).reshape(D, q * q)
    M = (Of @ WW).reshape(-1, q, q) + params.sigma2 * jnp.eye(q, dtype=dt)
    L = jnp.linalg.cholesky(M)
    b = r @ params.W  # W_o^T r_o (r is 0 where missing)
    a = solve_triangular(L, b[..., None], lower=True)[..., 0]
    m = solve_triangular(L, a[..., None], lower=True, trans=1)[..., 0]
    eye = jnp.broadcast_to(jnp.eye(q, dtype=dt), M.shape)
    Linv = solve_triangular(L, eye, lower=True)
    Minv = jnp.swapaxes(Linv, -1, -2) @ Linv
    d_obs = jnp.sum(Of, axis=1)
    # Woodbury / determinant lemma on C_oo = W_o W_o^T + sigma2 I_o.
    maha = (jnp.sum(r**2, axis=1) - jnp.sum(a**2, axis=1)) / params.sigma2
    logdet = (d_obs - q) * jnp.log(params.sigma2) + 2.0 * jnp.sum(
        jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=1
    )
    loglik = -0.5 * (d_obs * _LOG_2PI + logdet + maha)
    return loglik, m, Minv, Of, X0


@jax.jit
def _log_prob_observed(params: PPCAParams, X: jax.Array) -> jax.Array:
    # per block of rows: the (n, q, q) posterior pieces exist only for a block, not for all N rows
    _, out = _scan_rows(lambda c, x: (c, _observed_stats(params, x)[0]), X, None, _block_rows(*X.shape))
    return out


def log_prob_observed(params: PPCAParams, X) -> jax.Array:
    """Log density of the observed (non-NaN) coordinates of each row, ``(N,)``.

    The marginal of a Gaussian is Gaussian: ``x_o ~ N(mu_o, W_o W_o^T + sigma2 I)``. A row with no
    observed entry gets 0. For complete rows this equals :func:`log_prob` (computed here with
    Woodbury in O(N D q^2), less accurate than :func:`log_prob` when sigma2 is tiny).
    """
    return _log_prob_observed(params, _prepare(params, X, allow_nan=True))


@jax.jit
def _encode_observed(params: PPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    _, m, Minv, _, _ = _observed_stats(params, X)
    return m, params.sigma2 * Minv


def encode_observed(params: PPCAParams, X) -> tuple[jax.Array, jax.Array]:
    """Posterior of z given the observed (non-NaN) coordinates of each row.

    Returns ``mean (N, q)`` and per-row ``cov (N, q, q)``: the formulas of :func:`encode` with ``W``
    and ``x - mu`` restricted to the observed coordinates (a row with nothing observed gets the
    prior, mean 0 and covariance I).
    """
    return _encode_observed(params, _prepare(params, X, allow_nan=True))


# --------------------------------------------------------------------------------------------
# EM


def _em_step_complete(params: PPCAParams, S: jax.Array, floor, rescale: bool) -> tuple[PPCAParams, jax.Array]:
    """One EM step on complete data through the sample covariance ``S`` (Tipping & Bishop eq. 29-30),
    optionally followed by the exact maximisation over the scales within the new subspace.

    Returns the updated params and the mean per-sample log-likelihood of the *input* params.
    """
    D, q = params.W.shape
    W, s2 = params.W, params.sigma2
    eye = jnp.eye(q, dtype=W.dtype)
    M = W.T @ W + s2 * eye
    L = jnp.linalg.cholesky(M)
    SW = S @ W
    WtSW = W.T @ SW
    trS = jnp.trace(S)
    # log-likelihood: -1/2 (D log 2pi + log|C| + tr(C^{-1} S)), C^{-1} = (I - W M^{-1} W^T) / s2
    logdet = (D - q) * jnp.log(s2) + 2.0 * jnp.sum(jnp.log(jnp.diag(L)))
    tr_CinvS = (trS - jnp.trace(cho_solve((L, True), WtSW))) / s2
    ll = -0.5 * (D * _LOG_2PI + logdet + tr_CinvS)
    MinvWtSW = cho_solve((L, True), WtSW)
    W_new = jnp.linalg.solve((s2 * eye + MinvWtSW).T, SW.T).T  # SW (s2 I + M^-1 W^T S W)^-1
    s2_new = (trS - jnp.trace(cho_solve((L, True), W_new.T @ SW))) / D
    if rescale:
        # Conditional maximisation over {W : span(W) = span(W_new)} x sigma2: Tipping & Bishop's
        # closed form restricted to the subspace, from the q x q matrix Q^T S Q. Plain EM shrinks the
        # error in the column norms only by a factor ~(1 - 2 sigma2 / lambda_j) per step (thousands
        # of steps when the noise is small); this step fixes them exactly, leaving EM to find the
        # subspace, which it does fast. The point EM proposed is in the feasible set, so the
        # likelihood still never decreases (an ECM iteration).
        Q, _ = jnp.linalg.qr(W_new)
        lam, V = jnp.linalg.eigh(Q.T @ S @ Q)
        s2_new = (trS - jnp.sum(lam)) / (D - q) if q < D else jnp.zeros((), W.dtype)
        s2_new = jnp.maximum(s2_new, floor)
        W_new = (Q @ V) * jnp.sqrt(jnp.maximum(lam - s2_new, 0.0))
    return params.replace(W=W_new, sigma2=jnp.maximum(s2_new, floor)), ll


def _em_step_missing(params: PPCAParams, X: jax.Array, floor) -> tuple[PPCAParams, jax.Array]:
    """One exact EM step with missing entries; returns new params and the observed-data mean
    per-sample log-likelihood of the input params.

    The per-row posterior covariances ``(N, q, q)`` exist only one block of rows at a time: the
    M-step needs just their sums per feature, ``P_d = sum_n o_nd Sigma_n`` ``(D, q, q)``, so
    memory stays O(N D + D q^2) however large ``q`` is.
    """
    D, q = params.W.shape
    dt = params.W.dtype
    # Augmented latent z~ = [z; 1] so that [W_d, mu_d] is solved jointly per feature d.
    zero = (jnp.zeros((D, (q + 1) ** 2), dt), jnp.zeros((D, q * q), dt), jnp.zeros((D, q + 1), dt))

    def block(carry, x):
        A0, P, B = carry
        loglik, m, Minv, Of, X0 = _observed_stats(params, x)
        n = x.shape[0]
        mt = jnp.concatenate([m, jnp.ones((n, 1), dt)], axis=1)  # (n, q+1)
        mm = (mt[:, :, None] * mt[:, None, :]).reshape(n, -1)
        Sigma = (params.sigma2 * Minv).reshape(n, -1)  # posterior covariances of this block only
        return (A0 + Of.T @ mm, P + Of.T @ Sigma, B + X0.T @ mt), (loglik, m)

    width = max(D, (q + 1) ** 2)  # the widest per-row temporary sets the block size
    (A0, P, B), (loglik, m) = _scan_rows(block, X, zero, _block_rows(X.shape[0], width))
    P = P.reshape(D, q, q)
    A = A0.reshape(D, q + 1, q + 1).at[:, :q, :q].add(P)  # sum_n o_nd E[z~ z~^T]
    Wt = jnp.linalg.solve(A, B[..., None])[..., 0]  # (D, q+1)
    W_new, mu_new = Wt[:, :q], Wt[:, q]
    O = ~jnp.isnan(X)
    resid = jnp.where(O, X - m @ W_new.T - mu_new, 0.0)  # (N, D): the size of the data
    trace_term = jnp.einsum("di,dij,dj->", W_new, P, W_new)  # sum_nd o_nd w_d^T Sigma_n w_d
    s2_new = (jnp.sum(resid**2) + trace_term) / jnp.sum(O)
    new = PPCAParams(mu=mu_new, W=W_new, sigma2=jnp.maximum(s2_new, floor))
    return new, jnp.mean(loglik)


@functools.partial(jax.jit, static_argnames=("q", "max_iter", "missing", "rescale"))
def _fit_em(X, key, tol, q: int, max_iter: int, missing: bool, rescale: bool):
    N, D = X.shape
    dt = X.dtype
    mu = jnp.nanmean(X, axis=0)
    var = jnp.nanmean((X - mu) ** 2, axis=0)
    avg_var = jnp.mean(var)
    floor = SIGMA2_FLOOR * avg_var + jnp.finfo(dt).tiny
    # Random loadings carrying about half the variance, the rest as noise.
    W0 = jax.random.normal(key, (D, q), dt) * jnp.sqrt(avg_var / (2.0 * q))
    params = PPCAParams(mu=mu, W=W0, sigma2=jnp.maximum(0.5 * avg_var, floor))
    if missing:
        step = functools.partial(_em_step_missing, X=X, floor=floor)
    else:
        Xc = X - mu
        S = (Xc.T @ Xc) / N
        step = functools.partial(_em_step_complete, S=S, floor=floor, rescale=rescale)

    def cond(state):
        t, _, _, _, done = state
        return (t < max_iter) & ~done

    def body(state):
        t, p, ll_prev, hist, _ = state
        p_new, ll = step(p)
        hist = hist.at[t].set(ll)
        conv = (t > 0) & (jnp.abs(ll - ll_prev) <= tol * jnp.abs(ll))
        # On convergence keep the params whose likelihood was just recorded.
        p_next = jax.tree.map(lambda a, b: jnp.where(conv, a, b), p, p_new)
        return t + 1, p_next, ll, hist, conv

    hist0 = jnp.full((max_iter,), jnp.nan, dt)
    init = (jnp.asarray(0), params, jnp.asarray(jnp.nan, dt), hist0, jnp.asarray(False))
    t, params, _, hist, conv = jax.lax.while_loop(cond, body, init)
    return canonicalize(params), EMInfo(log_likelihood=hist, n_iter=t, converged=conv)


def fit_em(
    X, n_components: int, *, key: jax.Array, max_iter: int = 500, tol: float = 1e-6, rescale: bool = True
) -> tuple[PPCAParams, EMInfo]:
    """Maximum-likelihood PPCA by EM (Tipping & Bishop 1999, section 3.2), missing entries allowed.

    Args:
      X: ``(N, D)`` data; NaN marks a missing entry (inf is rejected). Every feature needs at least
        one observed value; a row with no observed value is allowed and ignored.
      n_components: latent dimension ``q``, ``1 <= q <= D``.
      key: PRNG key for the random initial loadings.
      max_iter: the most EM iterations.
      tol: stop when the mean per-sample log-likelihood changes by at most ``tol * |L|``.
      rescale: complete data only (ignored with missing entries): after each EM step, maximise
        exactly over the loadings' scales and sigma2 within the new subspace (an ECM step, still
        monotone). Plain EM (``rescale=False``) converges in the column norms at the slow rate
        ``1 - 2 sigma2 / lambda_j``; with the extra step the iteration count is set by how fast the
        subspace settles.

    Returns:
      ``(params, info)``: :class:`PPCAParams` (``W`` canonicalised, see :func:`canonicalize`) and
      :class:`EMInfo`. Without missing data the iteration runs on the ``D x D`` sample covariance
      (ddof=0) and converges to :func:`fit_ml`'s solution; with missing data each iteration is
      O(N D q^2) and batched over samples.
    """
    key = check_key(key)
    X = _check_not_constant(check_data(X, allow_nan=True, min_samples=2))
    q = _check_q(n_components, X.shape[1])
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive_float(tol, "tol", allow_zero=True)
    nan = np.isnan(X)
    if nan.all(axis=0).any():
        cols = np.flatnonzero(nan.all(axis=0)).tolist()
        raise ValueError(f"X has feature(s) {cols[:10]} with no observed value; drop them before fitting.")
    missing = bool(nan.any())
    Xj = jnp.asarray(X)
    return _fit_em(Xj, key, jnp.asarray(tol, Xj.dtype), q, max_iter, missing, bool(rescale))
