"""The fully Bayesian Gaussian mixture: the number of clusters is inferred, not chosen.

Model over K_max components (Bishop, PRML section 10.2)::

    pi ~ Dirichlet(alpha0, ..., alpha0)                    small alpha0 switches components off
      (or a truncated stick-breaking Dirichlet process: pi_k = v_k prod_{j<k} (1 - v_j), v_k ~ Beta(1, alpha0))
    Lambda_k ~ Wishart(nu0, W0)                           precision; Sigma_k = Lambda_k^{-1} ~ inv-Wishart(nu0, W0^{-1})
    mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^{-1})        together: Normal-inverse-Wishart on (mu_k, Sigma_k)
    z_n ~ Categorical(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^{-1})

The Wishart prior keeps every covariance away from zero (a component that collapses onto one
point pays W0^{-1} in its scale), so there are no zero-variance clusters.

Two inference methods:
- :func:`fit_vb`: closed-form coordinate-ascent variational Bayes, q(Z) q(pi) prod_k q(mu_k, Lambda_k),
  the whole loop jit-compiled. It is scikit-learn's ``BayesianGaussianMixture`` algorithm (same
  updates, same order: E-step, M-step, bound) for its four covariance types ("full", "tied",
  "diag", "spherical": the Wishart's scale matrix restricted to that form; "tied" shares one
  Wishart) and both weight priors ("dirichlet_distribution", "dirichlet_process"). It reports
  scikit-learn's lower bound (the ELBO up to constants) and, for full covariances, the full
  evidence lower bound in nats (Bishop eqs. 10.70-10.77), which never decreases and compares
  across priors.
- :func:`fit_nuts`: NUTS in NumPyro on the full-covariance, Dirichlet-weights model with z
  marginalised (``MixtureSameFamily`` with observed data, so ``numpyro.infer.log_likelihood`` and
  ArviZ LOO work: :func:`loo`), precisions in a Cholesky parametrisation (``WishartCholesky``);
  assignments are recovered afterwards as exact responsibilities per posterior draw.

Every summary is label-invariant (mixture components can swap labels between draws): the number
of occupied clusters, the co-clustering matrix, the posterior predictive density.

Default hyperparameters (:func:`default_prior`, data-dependent, as scikit-learn's
``BayesianGaussianMixture``): m0 = data mean, beta0 = 1, nu0 = D, W0^{-1} = the sample covariance
(its diagonal for "diag", the mean variance for "spherical"; the Wishart prior then puts the
precisions around the data's, E[Lambda] = D cov^{-1}), alpha0 = 1/K_max.

Memory: the E-step and the statistics loop over components (O(N D) work space, never N K D);
draw-wise summaries loop over draws; :func:`co_clustering` is one contraction (O(N^2 + S N K)).
Randomness follows :mod:`jaxgen.keys`: every function derives named streams once.
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, logsumexp, multigammaln

from jaxgen.inference import run_nuts
from jaxgen.keys import streams
from jaxgen.padding import power_of_two_at_least
from jaxgen.validation import check_choice, check_data, check_key, check_positive_float, check_positive_int

__all__ = [
    "COVARIANCE_TYPES", "WEIGHT_PRIORS", "INIT_METHODS",
    "NIWPrior", "VBPosterior", "VBInfo", "default_prior", "initial_responsibilities", "fit_vb",
    "vb_responsibilities", "vb_log_responsibilities", "predictive_log_prob", "expected_weights",
    "predictive_moments", "sample_predictive", "occupied_clusters_vb", "co_clustering", "numpyro_model", "fit_nuts", "MixtureDraws",
    "draws_responsibilities", "draws_mean_responsibilities", "draws_log_prob", "draws_pointwise_log_lik", "draws_co_clustering", "dispersed_init_params",
    "occupied_clusters_draws", "sample_draws", "label_invariant_diagnostics", "pointwise_log_likelihood", "loo",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
WEIGHT_PRIORS = ("dirichlet_distribution", "dirichlet_process")
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


@flax.struct.dataclass
class NIWPrior:
    """Hyperparameters: ``alpha0 ()`` Dirichlet (or stick-breaking) concentration, ``m0 (D,)``,
    ``beta0 ()``, ``nu0 ()`` Wishart degrees of freedom (> D - 1), ``W0_inv`` inverse Wishart scale
    (E[Lambda] = nu0 W0) in the layout of ``covariance_type``: "full"/"tied" ``(D, D)`` positive
    definite, "diag" ``(D,)`` positive, "spherical" ``()`` positive. ``covariance_type`` and
    ``weight_prior`` (one of :data:`WEIGHT_PRIORS`) are static."""

    alpha0: jax.Array
    m0: jax.Array
    beta0: jax.Array
    nu0: jax.Array
    W0_inv: jax.Array
    covariance_type: str = flax.struct.field(pytree_node=False, default="full")
    weight_prior: str = flax.struct.field(pytree_node=False, default="dirichlet_distribution")


def _default_scale(X: np.ndarray, covariance_type: str) -> np.ndarray:
    """scikit-learn's default covariance_prior; a jitter of 1e-6 x the mean variance only when the
    sample covariance is singular (constant features, N <= D), where the Wishart would be improper."""
    xp = jnp if isinstance(X, jax.Array) else np  # a device array stays on its device: only D-sized results come back
    var = np.asarray(xp.var(X, axis=0, ddof=1), np.float64)
    jitter = 1e-6 * (float(np.mean(var)) if np.mean(var) > 0 else 1.0)
    if covariance_type in ("full", "tied"):
        cov = np.atleast_2d(np.asarray(xp.cov(X.T), np.float64))
        if np.linalg.eigvalsh(cov.astype(np.float64)).min() <= 0:
            cov = cov + jitter * np.eye(X.shape[1])
        return cov
    if covariance_type == "diag":
        return np.where(var > 0, var, jitter)
    return np.asarray(var.mean() if var.mean() > 0 else jitter)


def default_prior(
    X, *, alpha0=None, n_components: int = 6, beta0=1.0, nu0=None, W0_inv=None, m0=None,
    covariance_type: str = "full", weight_prior: str = "dirichlet_distribution",
) -> NIWPrior:
    """Validated prior with documented data-dependent defaults (see the module docstring).

    Args:
      X: data ``(N, D)``, used for the defaults (mean, covariance).
      alpha0: concentration > 0 (default ``1 / n_components``).
      beta0: > 0; nu0: > D - 1 (default D); W0_inv: the inverse scale in the layout of
        ``covariance_type`` (default the sample covariance / variances / mean variance);
        m0: ``(D,)`` (default the data mean).
      covariance_type: one of :data:`COVARIANCE_TYPES`; weight_prior: one of :data:`WEIGHT_PRIORS`.

    Raises:
      ValueError: alpha0 <= 0, beta0 <= 0, nu0 <= D - 1, a scale that is not positive (definite)
        or has the wrong shape, a mean of the wrong shape (scikit-learn's messages where it has one).
    """
    X = check_data(X, min_samples=2)
    N, D = X.shape
    K = check_positive_int(n_components, "n_components")
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    check_choice(weight_prior, "weight_concentration_prior_type", WEIGHT_PRIORS)
    alpha0 = check_positive_float(1.0 / K if alpha0 is None else alpha0, "weight_concentration_prior (alpha0)")
    beta0 = check_positive_float(beta0, "mean_precision_prior (beta0)")
    nu0 = float(D) if nu0 is None else check_positive_float(nu0, "degrees_of_freedom_prior (nu0)")
    if nu0 <= D - 1:
        raise ValueError(f"The parameter 'degrees_of_freedom_prior' should be greater than {D - 1}, but got "
                         f"{nu0:.3f}: degrees_of_freedom_prior (nu0) must be > n_features - 1.")
    dt = X.dtype
    W0_inv = _default_scale(X, covariance_type) if W0_inv is None else np.asarray(W0_inv, dtype=np.float64)
    W0_inv = _check_scale(W0_inv, covariance_type, D).astype(dt)
    if m0 is None:
        m0 = np.asarray(X.mean(axis=0))
    else:
        m0 = np.asarray(m0, dtype=np.float64)
        if m0.shape != (D,):
            raise ValueError(f"The parameter 'means' should have the shape of {(D,)}, but got {m0.shape}: "
                             f"mean_prior (m0) must have shape ({D},).")
        m0 = check_data(m0, name="mean_prior (m0)", ndim=1, dtype=dt)
    return NIWPrior(
        alpha0=jnp.asarray(alpha0, dt), m0=jnp.asarray(m0, dt), beta0=jnp.asarray(beta0, dt),
        nu0=jnp.asarray(nu0, dt), W0_inv=jnp.asarray(W0_inv), covariance_type=covariance_type,
        weight_prior=weight_prior,
    )


def _check_scale(W0_inv: np.ndarray, covariance_type: str, D: int) -> np.ndarray:
    shape = {"full": (D, D), "tied": (D, D), "diag": (D,), "spherical": ()}[covariance_type]
    if W0_inv.shape != shape:
        raise ValueError(f"The parameter '{covariance_type} covariance_prior' should have the shape of {shape}, "
                         f"but got {W0_inv.shape}: covariance_prior (W0_inv) has the wrong shape.")
    if not np.all(np.isfinite(W0_inv)):
        raise ValueError("covariance_prior (W0_inv) must be finite.")
    if covariance_type in ("full", "tied"):
        if not np.allclose(W0_inv, W0_inv.T, rtol=1e-5, atol=1e-8) or np.linalg.eigvalsh(W0_inv).min() <= 0:
            raise ValueError(f"'{covariance_type} covariance_prior' should be symmetric, positive-definite "
                             "(covariance_prior W0_inv must be positive definite: all eigenvalues > 0).")
    elif np.any(W0_inv <= 0):
        raise ValueError(f"'{covariance_type} covariance_prior' should be positive.")
    return W0_inv


# --------------------------------------------------------------------------------------------
# Variational Bayes (Bishop 10.2; scikit-learn's BayesianGaussianMixture), closed-form coordinate ascent
# --------------------------------------------------------------------------------------------


@flax.struct.dataclass
class VBPosterior:
    """q(pi) q(mu_k, Lambda_k) with q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^{-1}) W(Lambda_k | W_k, nu_k).

    ``alpha``: "dirichlet_distribution": ``(K,)`` Dirichlet parameters; "dirichlet_process":
    ``(2, K)`` the Beta parameters of each stick (scikit-learn's ``weight_concentration_``).
    ``beta (K,)``, ``m (K, D)``, ``nu (K,)`` (``()`` for "tied"), ``W_chol`` a factor of W_k
    (E[Lambda_k] = nu_k W_k) in the layout of ``covariance_type``: "full" ``(K, D, D)`` lower
    Cholesky factors, "tied" ``(D, D)``, "diag" ``(K, D)`` the square roots of W's diagonal,
    "spherical" ``(K,)`` the square root of W's scalar."""

    alpha: jax.Array
    beta: jax.Array
    m: jax.Array
    nu: jax.Array
    W_chol: jax.Array
    covariance_type: str = flax.struct.field(pytree_node=False, default="full")
    weight_prior: str = flax.struct.field(pytree_node=False, default="dirichlet_distribution")


@flax.struct.dataclass
class VBInfo:
    """Per-iteration histories ``(max_iter,)``, NaN after the last iteration: ``elbo`` the full
    evidence lower bound in nats ("full" covariances; NaN for the other types, whose restricted
    scales scikit-learn does not derive as an ELBO), ``lower_bound`` scikit-learn's lower bound
    (the ELBO without its constant terms); ``n_iter ()``, ``converged ()``."""

    elbo: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    lower_bound: jax.Array | None = None


def _nu_k(post: VBPosterior) -> jax.Array:
    """nu per component ``(K,)`` ("tied" broadcast)."""
    return jnp.broadcast_to(post.nu, post.m.shape[:1])


def _log_det_W(post: VBPosterior) -> jax.Array:
    """ln |W_k|, ``(K,)``."""
    K, D = post.m.shape
    ct = post.covariance_type
    if ct == "full":
        return 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.W_chol, axis1=-2, axis2=-1)), axis=-1)
    if ct == "tied":
        return jnp.full((K,), 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.W_chol))), post.m.dtype)
    if ct == "diag":
        return 2.0 * jnp.sum(jnp.log(post.W_chol), axis=-1)
    return 2.0 * D * jnp.log(post.W_chol)


def _full_W_chol(post: VBPosterior) -> jax.Array:
    """Lower Cholesky factors of W_k in the full layout ``(K, D, D)`` (for sampling, the predictive)."""
    K, D = post.m.shape
    ct = post.covariance_type
    if ct == "full":
        return post.W_chol
    if ct == "tied":
        return jnp.broadcast_to(post.W_chol, (K, D, D))
    diag = post.W_chol if ct == "diag" else jnp.broadcast_to(post.W_chol[:, None], (K, D))
    return jax.vmap(jnp.diag)(diag)


def _expected_log_det(post: VBPosterior) -> jax.Array:
    """E[ln |Lambda_k|] = sum_i digamma((nu_k + 1 - i)/2) + D ln 2 + ln |W_k|, ``(K,)``."""
    D = post.m.shape[-1]
    i = jnp.arange(1, D + 1, dtype=post.m.dtype)
    return jnp.sum(digamma((_nu_k(post)[:, None] + 1.0 - i) / 2.0), axis=-1) + D * jnp.log(2.0) + _log_det_W(post)


def _expected_log_weights(post: VBPosterior) -> jax.Array:
    """E_q[ln pi_k], ``(K,)`` (stick-breaking: E ln v_k + sum_{j<k} E ln(1 - v_j))."""
    if post.weight_prior == "dirichlet_process":
        a, b = post.alpha
        ds = digamma(a + b)
        return digamma(a) - ds + jnp.concatenate([jnp.zeros((1,), a.dtype), jnp.cumsum(digamma(b) - ds)[:-1]])
    return digamma(post.alpha) - digamma(jnp.sum(post.alpha))


def _per_component(fn, *component_args):
    """``fn(*args_k) -> (N,)`` for each component k, one at a time (O(N D) work space): ``(N, K)``."""
    return jnp.transpose(jax.lax.map(lambda a: fn(*a), component_args))


def _mahalanobis(post: VBPosterior, X: jax.Array) -> jax.Array:
    """(x_n - m_k)^T W_k (x_n - m_k), ``(N, K)``, looping over components."""
    K, D = post.m.shape
    ct = post.covariance_type
    if ct in ("full", "tied"):
        L = post.W_chol if ct == "full" else jnp.broadcast_to(post.W_chol, (K, D, D))
        return _per_component(lambda m, L: jnp.sum(((X - m) @ L) ** 2, axis=-1), post.m, L)  # W = L L^T
    w = post.W_chol**2 if ct == "diag" else jnp.broadcast_to((post.W_chol**2)[:, None], (K, D))
    return _per_component(lambda m, w: jnp.sum((X - m) ** 2 * w, axis=-1), post.m, w)


def vb_log_responsibilities(post: VBPosterior, X: jax.Array) -> jax.Array:
    """ln q(z_n = k) (Bishop 10.46-10.49, scikit-learn's E-step), ``(N, K)``."""
    D = X.shape[-1]
    quad = D / post.beta + _nu_k(post) * _mahalanobis(post, X)
    log_rho = (_expected_log_weights(post) + 0.5 * _expected_log_det(post)
               - 0.5 * D * jnp.log(2 * jnp.pi) - 0.5 * quad)
    return jax.nn.log_softmax(log_rho, axis=-1)


def vb_responsibilities(post: VBPosterior, X: jax.Array) -> jax.Array:
    """q(z_n = k), ``(N, K)``, for training or new points."""
    return jnp.exp(vb_log_responsibilities(post, X))


def _stats(resp: jax.Array, X: jax.Array, covariance_type: str):
    """N_k ``(K,)``, xbar_k ``(K, D)`` and the responsibility-weighted centred second moments S_k
    in the layout of ``covariance_type`` (scikit-learn's ``_estimate_gaussian_parameters`` without
    ``reg_covar``): full ``(K, D, D)``, tied ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``."""
    Nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(X.dtype).eps
    xbar = resp.T @ X / Nk[:, None]
    if covariance_type in ("full", "tied"):
        def second(r, c, n):
            d = X - c
            return (r[:, None] * d).T @ d / n
        S = jax.lax.map(lambda a: second(*a), (resp.T, xbar, Nk))  # (K, D, D), one component at a time
        if covariance_type == "tied":
            S = jnp.sum(Nk[:, None, None] * S, axis=0) / jnp.sum(Nk)
        return Nk, xbar, S
    # centred on each component's mean (no E[x^2] - E[x]^2 cancellation), one component at a time
    S = jax.lax.map(lambda a: a[0] @ (X - a[1]) ** 2 / a[2], (resp.T, xbar, Nk))  # (K, D)
    return Nk, xbar, (S if covariance_type == "diag" else jnp.mean(S, axis=1))


def _chol_of_inverse(A: jax.Array) -> jax.Array:
    """Lower Cholesky factor of A^{-1} for symmetric positive definite ``A (..., D, D)``."""
    C = jnp.linalg.cholesky(A)
    eye = jnp.broadcast_to(jnp.eye(A.shape[-1], dtype=A.dtype), A.shape)
    C_inv = jax.scipy.linalg.solve_triangular(C, eye, lower=True)  # A^{-1} = C^{-T} C^{-1}
    return jnp.linalg.cholesky(jnp.swapaxes(C_inv, -1, -2) @ C_inv)


def _weights_update(prior: NIWPrior, Nk: jax.Array) -> jax.Array:
    if prior.weight_prior == "dirichlet_process":
        tail = jnp.concatenate([jnp.cumsum(Nk[::-1])[-2::-1], jnp.zeros((1,), Nk.dtype)])  # sum_{j>k} N_j
        return jnp.stack([1.0 + Nk, prior.alpha0 + tail])
    return prior.alpha0 + Nk


def _m_step(prior: NIWPrior, resp: jax.Array, X: jax.Array, reg_covar=0.0) -> tuple[VBPosterior, tuple]:
    """Bishop 10.58-10.63 (scikit-learn's ``_m_step``, ``reg_covar`` added to S_k's diagonal).
    Returns the new posterior and the statistics ``(N_k, xbar_k, S_k)`` it used (without reg_covar)."""
    ct = prior.covariance_type
    K, D = resp.shape[1], X.shape[1]
    Nk, xbar, S = _stats(resp, X, ct)
    beta = prior.beta0 + Nk
    m = (prior.beta0 * prior.m0 + Nk[:, None] * xbar) / beta[:, None]
    d0 = xbar - prior.m0
    shrink = Nk * prior.beta0 / beta  # N_k beta0 / (beta0 + N_k)
    eye = jnp.eye(D, dtype=X.dtype)
    if ct == "full":
        nu = prior.nu0 + Nk
        W_inv = (prior.W0_inv + Nk[:, None, None] * (S + reg_covar * eye)
                 + shrink[:, None, None] * d0[:, :, None] * d0[:, None, :])
        W_chol = _chol_of_inverse(W_inv)
    elif ct == "tied":
        nu = prior.nu0 + jnp.sum(Nk) / K
        W_inv = prior.W0_inv + (S + reg_covar * eye) * jnp.sum(Nk) / K + (shrink[:, None] * d0).T @ d0 / K
        W_chol = _chol_of_inverse(W_inv)
    elif ct == "diag":
        nu = prior.nu0 + Nk
        W_chol = jax.lax.rsqrt(prior.W0_inv + Nk[:, None] * (S + reg_covar) + shrink[:, None] * d0**2)
    else:
        nu = prior.nu0 + Nk
        W_chol = jax.lax.rsqrt(prior.W0_inv + Nk * (S + reg_covar) + shrink * jnp.mean(d0**2, axis=1))
    post = VBPosterior(alpha=_weights_update(prior, Nk), beta=beta, m=m, nu=nu, W_chol=W_chol,
                       covariance_type=ct, weight_prior=prior.weight_prior)
    return post, (Nk, xbar, S)


def betaln(a, b):
    """ln B(a, b) by log-gammas (jax.scipy's ``betaln`` is off by ~1e-9 in float64 against scipy's)."""
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def _log_wishart_norm(logdet_W, nu, D):
    """ln B(W, nu) of the Wishart normaliser (Bishop B.79)."""
    return -0.5 * nu * logdet_W - (0.5 * nu * D * jnp.log(2.0) + multigammaln(0.5 * nu, D))


def _sklearn_lower_bound(post: VBPosterior, log_resp: jax.Array) -> jax.Array:
    """scikit-learn's ``_compute_lower_bound``: the ELBO after an M-step without its constant terms."""
    K, D = post.m.shape
    resp = jnp.exp(log_resp)
    neg_entropy = jnp.sum(jnp.where(resp > 0, resp * log_resp, 0.0))
    nu = _nu_k(post)
    i = jnp.arange(D, dtype=post.m.dtype)
    # scikit-learn's _log_wishart_norm: ln B(W, nu) + D(D-1)/4 ln(pi)
    log_wishart = -(0.5 * nu * _log_det_W(post) + 0.5 * nu * D * jnp.log(2.0)
                    + jnp.sum(gammaln(0.5 * (nu[:, None] - i)), axis=-1))
    if post.weight_prior == "dirichlet_process":
        log_norm_weight = -jnp.sum(betaln(post.alpha[0], post.alpha[1]))
    else:
        log_norm_weight = gammaln(jnp.sum(post.alpha)) - jnp.sum(gammaln(post.alpha))
    return -neg_entropy - jnp.sum(log_wishart) - log_norm_weight - 0.5 * D * jnp.sum(jnp.log(post.beta))


def _elbo(prior: NIWPrior, post: VBPosterior, resp: jax.Array, stats) -> jax.Array:
    """Full ELBO (Bishop 10.70-10.77) in nats for full covariances, for q(Z) = resp and
    q(pi, mu, Lambda) = post; the weight terms for either weight prior."""
    Nk, xbar, S = stats
    K, D = post.m.shape
    e_logdet = _expected_log_det(post)
    e_log_pi = _expected_log_weights(post)
    W = post.W_chol @ jnp.swapaxes(post.W_chol, -1, -2)
    logdet_W = _log_det_W(post)
    quad = lambda v: jnp.einsum("kd,kde,ke->k", v, W, v)
    log2pi = jnp.log(2.0 * jnp.pi)

    e_log_px = 0.5 * jnp.sum(
        Nk * (e_logdet - D / post.beta - post.nu * jnp.einsum("kde,ked->k", S, W)
              - post.nu * quad(xbar - post.m) - D * log2pi)
    )
    e_log_pz = jnp.sum(resp * e_log_pi)
    _, logdet_W0_inv = jnp.linalg.slogdet(prior.W0_inv)
    log_B0 = _log_wishart_norm(-logdet_W0_inv, prior.nu0, D)
    e_log_pmul = 0.5 * jnp.sum(
        D * jnp.log(prior.beta0 / (2 * jnp.pi)) + e_logdet - D * prior.beta0 / post.beta
        - prior.beta0 * post.nu * quad(post.m - prior.m0)
    ) + K * log_B0 + 0.5 * (prior.nu0 - D - 1.0) * jnp.sum(e_logdet) - 0.5 * jnp.sum(
        post.nu * jnp.einsum("de,ked->k", prior.W0_inv, W)
    )
    e_log_qz = jnp.sum(jnp.where(resp > 0, resp * jnp.log(jnp.where(resp > 0, resp, 1.0)), 0.0))
    entropy_L = -_log_wishart_norm(logdet_W, post.nu, D) - 0.5 * (post.nu - D - 1.0) * e_logdet + 0.5 * post.nu * D
    e_log_qmul = jnp.sum(0.5 * e_logdet + 0.5 * D * jnp.log(post.beta / (2 * jnp.pi)) - 0.5 * D - entropy_L)
    return e_log_px + e_log_pz + _weights_kl_terms(prior, post) + e_log_pmul - e_log_qz - e_log_qmul


def _weights_kl_terms(prior: NIWPrior, post: VBPosterior) -> jax.Array:
    """E[ln p(pi)] - E[ln q(pi)] (Dirichlet) or E[ln p(v)] - E[ln q(v)] (sticks)."""
    K = post.m.shape[0]
    if post.weight_prior == "dirichlet_process":
        a, b = post.alpha
        ds = digamma(a + b)
        e_lv, e_l1v = digamma(a) - ds, digamma(b) - ds
        e_log_pv = jnp.sum(-betaln(1.0, prior.alpha0) + (prior.alpha0 - 1.0) * e_l1v)
        e_log_qv = jnp.sum(-betaln(a, b) + (a - 1.0) * e_lv + (b - 1.0) * e_l1v)
        return e_log_pv - e_log_qv
    e_log_pi = _expected_log_weights(post)
    log_C = lambda a: gammaln(jnp.sum(a)) - jnp.sum(gammaln(a))
    e_log_ppi = log_C(jnp.full((K,), prior.alpha0, post.m.dtype)) + (prior.alpha0 - 1.0) * jnp.sum(e_log_pi)
    e_log_qpi = jnp.sum((post.alpha - 1.0) * e_log_pi) + log_C(post.alpha)
    return e_log_ppi - e_log_qpi


def initial_responsibilities(key: jax.Array, X, n_components: int, init: str = "kmeans") -> jax.Array:
    """scikit-learn's initial responsibilities ``(N, K)`` drawn with a JAX key.

    ``init``: "kmeans" (k-means++ seeding and Lloyd iterations, one-hot labels), "k-means++" (the
    K seeds only, one-hot), "random" (uniform, normalised rows), "random_from_data" (K distinct
    data points, one-hot).
    """
    from jaxgen.models import gmm

    key = check_key(key)
    X = jnp.asarray(check_data(X, min_samples=1))
    K = check_positive_int(n_components, "n_components")
    check_choice(init, "init_params", INIT_METHODS)
    N = X.shape[0]
    if N < K:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, n_samples = {N}")
    if init == "random":
        r = jax.random.uniform(key, (N, K), X.dtype)
        return r / jnp.sum(r, axis=1, keepdims=True)
    if init == "random_from_data":
        idx = jax.random.choice(key, N, (K,), replace=False)
        return jnp.zeros((N, K), X.dtype).at[idx, jnp.arange(K)].set(1.0)
    # jaxgen's k-means (GMM module); its centres are the seeds ("k-means++") or the Lloyd centres
    centres = gmm.init_params(key, X, K, "spherical", init=init).means
    d2 = _per_component(lambda c: jnp.sum((X - c) ** 2, axis=-1), centres)  # (N, K)
    if init == "k-means++":  # the seeds are data points: the nearest row of each centre
        idx = jnp.argmin(d2, axis=0)
        return jnp.zeros((N, K), X.dtype).at[idx, jnp.arange(K)].set(1.0)
    return jax.nn.one_hot(jnp.argmin(d2, axis=1), K, dtype=X.dtype)


def fit_vb(
    key: jax.Array,
    X,
    n_components: int,
    prior: NIWPrior | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-5,
    init_resp: jax.Array | None = None,
    init: str = "kmeans",
    init_post: VBPosterior | None = None,
    reg_covar: float = 0.0,
    criterion: str = "sizes",
    lower_bound0: float = -np.inf,
) -> tuple[VBPosterior, VBInfo]:
    """Coordinate-ascent VB for the Bayesian GMM; the whole loop runs in ``jit``.

    Initialisation: the posterior is ``init_post`` if given (warm start), else the M-step of the
    responsibilities ``init_resp (N, K)``, else of :func:`initial_responsibilities` (``init`` on
    ``key``). Each iteration (scikit-learn's order): E-step (q(Z)), M-step (q(pi, mu, Lambda)),
    bounds. The covariance type and the weight prior are the prior's (default
    :func:`default_prior`: full, Dirichlet). ``reg_covar`` is added to the diagonal of every
    S_k, as in scikit-learn.

    Stopping (``criterion``): "sizes" (default) stops when no expected cluster size N_k moves by
    more than ``tol * N`` between iterations (not on the ELBO: a float32 total ELBO of size ~1e4
    moves in steps of ~1e-3, so a small tolerance on it would be decided by rounding);
    "lower_bound" is scikit-learn's rule, |change of the lower bound| < ``tol`` (the first change
    is against ``lower_bound0``).

    Returns ``(VBPosterior, VBInfo)``; ``info.elbo`` never decreases (up to float rounding).
    """
    key = check_key(key)
    X = check_data(X, min_samples=2)
    K = check_positive_int(n_components, "n_components")
    prior = default_prior(X, n_components=K) if prior is None else prior
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    tol = check_positive_float(tol, "tol", allow_zero=True)
    reg_covar = check_positive_float(reg_covar, "reg_covar", allow_zero=True)
    check_choice(criterion, "criterion", {"sizes", "lower_bound"})
    if prior.m0.shape != (X.shape[1],):
        raise ValueError(f"the prior is for {prior.m0.shape[0]} features but X has {X.shape[1]}.")
    X = jnp.asarray(X)
    if init_post is None:
        if init_resp is None:
            init_resp = initial_responsibilities(key, X, K, init)
        else:
            init_resp = check_data(init_resp, name="init_resp", dtype=X.dtype)
            if init_resp.shape != (X.shape[0], K):
                raise ValueError(f"init_resp must have shape (N, K) = ({X.shape[0]}, {K}), got {init_resp.shape}.")
            rows = np.asarray(init_resp).sum(1)
            if np.any(np.asarray(init_resp) < 0) or not np.all(np.isclose(rows, 1.0, atol=1e-4) | (rows == 0)):
                raise ValueError("init_resp must be non-negative with rows summing to one (responsibilities; "
                                 "rows of zeros are allowed, as scikit-learn's 'k-means++' start).")
        init_post = _initial_posterior(prior, X, jnp.asarray(init_resp, X.dtype), jnp.asarray(reg_covar, X.dtype))
    elif init_post.m.shape != (K, X.shape[1]) or init_post.covariance_type != prior.covariance_type:
        raise ValueError("init_post must be a VBPosterior of this model (K components, the prior's covariance type).")
    dt = X.dtype
    if max_iter == 0:  # the initial posterior itself (scikit-learn's max_iter=0)
        empty = jnp.zeros((0,), dt)
        return init_post, VBInfo(elbo=empty, n_iter=jnp.asarray(0), converged=jnp.asarray(False), lower_bound=empty)
    post, info = _fit_vb(prior, X, init_post, jnp.asarray(tol, dt), jnp.asarray(reg_covar, dt),
                         jnp.asarray(lower_bound0, dt), jnp.asarray(max_iter), hist_len=_bucket(max_iter),
                         criterion=criterion)
    return post, info.replace(elbo=info.elbo[:max_iter], lower_bound=info.lower_bound[:max_iter])


@jax.jit
def _initial_posterior(prior, X, resp0, reg_covar):
    return _m_step(prior, resp0, X, reg_covar)[0]


def _sizes(post: VBPosterior) -> jax.Array:
    """N_k recovered from the weight parameters."""
    return post.alpha[0] - 1.0 if post.weight_prior == "dirichlet_process" else post.alpha


@functools.partial(jax.jit, static_argnames=("hist_len", "criterion"))
def _fit_vb(prior, X, post0, tol, reg_covar, lb0, max_iter, *, hist_len, criterion):
    # max_iter is traced: the histories have a power-of-two length, so that one compilation
    # serves every max_iter up to it
    N = X.shape[0]
    nan_hist = jnp.full((hist_len,), jnp.nan, X.dtype)
    full = prior.covariance_type == "full"

    def cond(state):
        _, it, _, converged, _, _ = state
        return (it < max_iter) & ~converged

    def body(state):
        post, it, lb_prev, _, h_lb, h_elbo = state
        log_resp = vb_log_responsibilities(post, X)
        resp = jnp.exp(log_resp)
        new, stats = _m_step(prior, resp, X, reg_covar)
        lb = _sklearn_lower_bound(new, log_resp)
        elbo = _elbo(prior, new, resp, stats) if full else jnp.asarray(jnp.nan, X.dtype)
        if criterion == "lower_bound":
            converged = jnp.abs(lb - lb_prev) < tol
        else:
            converged = jnp.max(jnp.abs(_sizes(new) - _sizes(post))) <= tol * N
        return new, it + 1, lb, converged, h_lb.at[it].set(lb), h_elbo.at[it].set(elbo)

    state = (post0, jnp.asarray(0), lb0, jnp.asarray(False), nan_hist, nan_hist)
    post, n_iter, _, converged, h_lb, h_elbo = jax.lax.while_loop(cond, body, state)
    return post, VBInfo(elbo=h_elbo, n_iter=n_iter, converged=converged, lower_bound=h_lb)


def expected_weights(post: VBPosterior) -> jax.Array:
    """E_q[pi], ``(K,)``: alpha / sum(alpha) (Dirichlet), or the expected stick lengths normalised
    to sum to one (stick-breaking, as scikit-learn's ``weights_``)."""
    if post.weight_prior == "dirichlet_process":
        a, b = post.alpha
        frac = b / (a + b)
        w = a / (a + b) * jnp.concatenate([jnp.ones((1,), a.dtype), jnp.cumprod(frac[:-1])])
        return w / jnp.sum(w)
    return post.alpha / jnp.sum(post.alpha)


def _student_t_log_prob(X, loc, prec_chol, df):
    """Multivariate t log density with precision (of the scale matrix) L L^T. ``X (N, D)`` -> ``(N,)``."""
    D = X.shape[-1]
    y = (X - loc) @ prec_chol
    delta = jnp.sum(y**2, axis=-1)
    return (
        gammaln((df + D) / 2) - gammaln(df / 2) - 0.5 * D * jnp.log(df * jnp.pi)
        + jnp.sum(jnp.log(jnp.diagonal(prec_chol))) - 0.5 * (df + D) * jnp.log1p(delta / df)
    )


def _predictive_components(post: VBPosterior):
    """Student-t components of the predictive: (loc (K, D), precision Cholesky (K, D, D), df (K,))."""
    D = post.m.shape[-1]
    nu = _nu_k(post)
    df = nu + 1.0 - D
    prec_chol = _full_W_chol(post) * jnp.sqrt(df * post.beta / (1.0 + post.beta))[:, None, None]
    return post.m, prec_chol, df


def predictive_log_prob(post: VBPosterior, X: jax.Array) -> jax.Array:
    """Posterior predictive log density under q (Bishop 10.81): a mixture of Student-t's.

    p(x | data) = sum_k E[pi_k] St(x | m_k, L_k, nu_k + 1 - D),
    L_k = (nu_k + 1 - D) beta_k / (1 + beta_k) W_k (a restricted W_k for "tied"/"diag"/"spherical").
    Returns ``(N,)``.
    """
    loc, prec_chol, df = _predictive_components(post)
    comp = _per_component(lambda m, L, f: _student_t_log_prob(X, m, L, f), loc, prec_chol, df)
    return logsumexp(comp + jnp.log(expected_weights(post)), axis=-1)


def predictive_moments(post: VBPosterior) -> tuple[jax.Array, jax.Array]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of the predictive Student-t mixture in closed form.

    Component k: mean m_k, covariance (1 + beta_k)/beta_k W_k^{-1} / (nu_k - D - 1) (finite for
    nu_k > D + 1, else inf); the mixture covariance adds the spread of the means.
    """
    D = post.m.shape[-1]
    w = expected_weights(post)
    Wc = _full_W_chol(post)
    W = Wc @ jnp.swapaxes(Wc, -1, -2)
    excess = _nu_k(post) - D - 1.0
    scale = jnp.where(excess > 0, (1.0 + post.beta) / post.beta / jnp.where(excess > 0, excess, 1.0), jnp.inf)
    cov_k = jnp.linalg.inv(W) * scale[:, None, None]
    mean = w @ post.m
    d = post.m - mean
    return mean, jnp.einsum("k,kde->de", w, cov_k) + (w[:, None] * d).T @ d


def _wishart_chol(key, nu, W_chol):
    """Lower Cholesky factor of a Wishart(W, nu) draw (NumPyro's ``WishartCholesky``, Bartlett)."""
    import numpyro.distributions as dist

    return dist.WishartCholesky(nu, scale_tril=W_chol).sample(key)


def _bucket(n: int) -> int:
    """Sample counts are padded to a power of two (>= 16): one compilation serves many ``n``."""
    return power_of_two_at_least(n, 16)


def sample_predictive(key: jax.Array, post: VBPosterior, n: int, *, batch_size: int = 4096) -> tuple[jax.Array, jax.Array]:
    """Samples from the VB posterior predictive: pi ~ q(pi), then (mu_k, Lambda_k) ~ q, then x.

    Each sample draws its own parameters, so this is the predictive, not a plug-in fit (its
    covariance is :func:`predictive_moments`'s). Samples are drawn ``batch_size`` at a time
    (work space O(batch D^2)), in a jitted function compiled once per power of two of ``n``.
    For "tied" / "diag" / "spherical" the precision is drawn from the Wishart with the restricted
    scale (so its marginal is :func:`predictive_log_prob`'s Student-t with that scale). Under the
    Dirichlet process the K truncated sticks are renormalised per draw, whereas
    :func:`expected_weights` renormalises their expectations: the two differ by the mass beyond the
    truncation, small once the last sticks are empty.
    Returns ``(x (n, D), labels (n,))``.
    """
    key = check_key(key)
    n = check_positive_int(n, "n")
    s = streams(key, "weights", "component", "precision", "mean", "noise")
    n_pad = _bucket(n)
    x, z = _sample_predictive(tuple(s.values()), post, n_pad, min(check_positive_int(batch_size, "batch_size"), n_pad))
    return x[:n], z[:n]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sample_predictive(ks, post, n, batch_size):
    k_w, k_z, k_lam, k_mu, k_x = ks
    K, D = post.m.shape
    W_chol, nu = _full_W_chol(post), _nu_k(post)
    if post.weight_prior == "dirichlet_process":
        a, b = post.alpha
        v = jax.random.beta(k_w, a, b, (n, K))
        log_pi = jnp.log(v) + jnp.concatenate([jnp.zeros((n, 1), v.dtype), jnp.cumsum(jnp.log1p(-v), -1)[:, :-1]], -1)
        log_pi = jax.nn.log_softmax(log_pi, axis=-1)  # the K sticks renormalised, as expected_weights
    else:
        log_pi = jnp.log(jax.random.dirichlet(k_w, post.alpha, (n,)))
    z = jax.random.categorical(k_z, log_pi, axis=-1)
    e_mu, e_x = jax.random.normal(k_mu, (n, D), post.m.dtype), jax.random.normal(k_x, (n, D), post.m.dtype)
    lam_keys = jax.random.split(k_lam, n)
    solve = lambda L, e: jax.scipy.linalg.solve_triangular(L, e, lower=True, trans=1)

    def one(args):  # x = mu + Lambda^{-1/2} eps, mu = m + (beta Lambda)^{-1/2} eps'
        k_l, zi, em, ex = args
        L = _wishart_chol(k_l, nu[zi], W_chol[zi])  # Lambda = L L^T
        return post.m[zi] + solve(L, em) / jnp.sqrt(post.beta[zi]) + solve(L, ex)

    return jax.lax.map(one, (lam_keys, z, e_mu, e_x), batch_size=batch_size), z


def occupied_clusters_vb(key: jax.Array, post: VBPosterior, X: jax.Array, n_draws: int = 1000) -> jax.Array:
    """Posterior over the number of occupied clusters under q(Z): draws z_n ~ q(z_n) independently
    and counts the distinct labels. Returns ``(K + 1,)`` probabilities of 0..K occupied clusters."""
    s = streams(check_key(key), "source", "assignments")
    return _occupied_vb(s["source"], s["assignments"], post, jnp.asarray(X), check_positive_int(n_draws, "n_draws"))


@functools.partial(jax.jit, static_argnums=(4,))
def _occupied_vb(k_source, k_assign, post, X, n_draws):
    log_resp = vb_log_responsibilities(post, X)
    return _count_occupied(k_source, k_assign, lambda s: log_resp, 1, post.m.shape[0], n_draws)


def _count_occupied(k_source, k_assign, log_resp_of, n_sources, K, n_draws):
    """Distribution over the number of occupied labels ``(K + 1,)``: per draw a source s
    (a posterior draw; ``log_resp_of(s) -> (N, K)``), then z_n ~ Categorical independently.
    Draws are processed a few at a time (``lax.map`` with a batch): memory O(batch N K).
    The two keys are streams derived (outside ``jit``) by the caller."""
    idx = jax.random.randint(k_source, (n_draws,), 0, n_sources)
    keys = jax.random.split(k_assign, n_draws)

    def occupied(args):
        k, i = args
        z = jax.random.categorical(k, log_resp_of(i), axis=-1)  # (N,)
        return jnp.sum(jnp.zeros((K,), jnp.int32).at[z].set(1))

    counts = jax.lax.map(occupied, (keys, idx), batch_size=16)
    return jnp.bincount(counts, length=K + 1) / n_draws


def co_clustering(resp: jax.Array, *, chunk: int = 64) -> jax.Array:
    """P(z_i = z_j): ``resp (N, K)`` (one posterior) or ``(S, N, K)`` (averaged over draws) ->
    ``(N, N)``. Invariant to relabelling the components.

    A contraction over (draw, component), mean_s R_s R_s^T, accumulated ``chunk`` draws at a time:
    work space O(N^2 + chunk N K) beside the input, never the ``(S, N, N)`` stack (16 GB at
    S = 1000, N = 2000)."""
    resp = jnp.asarray(resp)
    resp = resp if resp.ndim == 3 else resp[None]
    return _co_clustering(resp, min(check_positive_int(chunk, "chunk"), resp.shape[0]))


@functools.partial(jax.jit, static_argnums=(1,))
def _co_clustering(resp, chunk):
    S, N, K = resp.shape
    n_full = S // chunk
    pair = lambda R: jnp.einsum("snk,smk->nm", R, R)

    def add(acc, i):
        return acc + pair(jax.lax.dynamic_slice_in_dim(resp, i * chunk, chunk)), None

    acc, _ = jax.lax.scan(add, jnp.zeros((N, N), resp.dtype), jnp.arange(n_full))
    if S % chunk:
        acc = acc + pair(resp[n_full * chunk:])
    return acc / S


# --------------------------------------------------------------------------------------------
# NUTS in NumPyro, assignments marginalised (full covariances, Dirichlet weights)
# --------------------------------------------------------------------------------------------


@flax.struct.dataclass
class MixtureDraws:
    """Posterior draws of mixture parameters, leading axis S: ``weights (S, K)``,
    ``means (S, K, D)``, ``prec_chol (S, K, D, D)`` lower Cholesky factors of the precisions."""

    weights: jax.Array
    means: jax.Array
    prec_chol: jax.Array


def _check_nuts_prior(prior: NIWPrior) -> None:
    if prior.covariance_type != "full" or prior.weight_prior != "dirichlet_distribution":
        raise ValueError(
            "NUTS supports the full-covariance model with Dirichlet-distributed weights only: use "
            "covariance_type='full' and weight_concentration_prior_type='dirichlet_distribution' "
            f"(got {prior.covariance_type!r}, {prior.weight_prior!r}), or variational Bayes for the others."
        )


def numpyro_model(X: jax.Array, prior: NIWPrior, n_components: int):
    """NumPyro model of the Bayesian GMM with z summed out: ``obs ~ MixtureSameFamily`` over the
    N data points (so ``numpyro.infer.log_likelihood`` gives the ``(S, N)`` pointwise log-likelihood).

    Precisions in a Cholesky parametrisation: ``L_k ~ WishartCholesky(nu0, W0)``, Lambda_k = L_k L_k^T;
    ``mu_k ~ N(m0, (beta0 Lambda_k)^{-1})``; ``weights ~ Dirichlet(alpha0)``. Full covariances only.
    """
    import numpyro
    import numpyro.distributions as dist

    N, D = X.shape
    K = n_components
    W0_chol = jnp.linalg.cholesky(jnp.linalg.inv(prior.W0_inv))
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.full((K,), prior.alpha0)))
    with numpyro.plate("components", K):
        L = numpyro.sample("prec_chol", dist.WishartCholesky(prior.nu0, scale_tril=W0_chol))
        prec = L @ jnp.swapaxes(L, -1, -2)
        mu = numpyro.sample("means", dist.MultivariateNormal(prior.m0, precision_matrix=prior.beta0 * prec))
    mix = dist.MixtureSameFamily(dist.Categorical(probs=weights), dist.MultivariateNormal(mu, precision_matrix=prec))
    with numpyro.plate("data", N):
        numpyro.sample("obs", mix, obs=X)


def _component_log_prob(X, means, prec_chol):
    """log N(x | mu_k, (L_k L_k^T)^{-1}) for each component: ``(N, K)`` (one component at a time)."""
    D = X.shape[-1]
    logdet = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
    quad = _per_component(lambda m, L: jnp.sum(((X - m) @ L) ** 2, axis=-1), means, prec_chol)
    return -0.5 * D * jnp.log(2 * jnp.pi) + logdet - 0.5 * quad


def dispersed_init_params(key: jax.Array, X, prior: NIWPrior, n_components: int, num_chains: int,
                          *, temper: float = 0.25) -> dict:
    """Over-dispersed starting points for NUTS chains, in NumPyro's unconstrained space (``init_params``
    of ``MCMC.run``, leading axis ``num_chains``): one independent draw per chain from the VB
    posterior computed with the data down-weighted by ``temper`` (a quarter of the data by
    default: about twice the posterior's spread), its components in random order."""
    from numpyro.infer.util import unconstrain_fn

    key = check_key(key)
    _check_nuts_prior(prior)
    K = check_positive_int(n_components, "n_components")
    C = check_positive_int(num_chains, "num_chains")
    X = jnp.asarray(X)
    s = streams(key, "vb", "draws")
    post, _ = fit_vb(s["vb"], X, K, prior)
    wide, _ = _m_step(prior, vb_responsibilities(post, X) * temper, X)
    keys = jax.random.split(s["draws"], C)
    inits = []
    for c in range(C):
        d = streams(keys[c], "weights", "precision", "mean", "order")
        w = jax.random.dirichlet(d["weights"], wide.alpha)
        w = jnp.clip(w, 1e-6, None)
        L = jax.vmap(_wishart_chol)(jax.random.split(d["precision"], K), wide.nu, wide.W_chol)
        eps = jax.random.normal(d["mean"], wide.m.shape, X.dtype)
        mu = wide.m + jax.vmap(lambda L, e: jax.scipy.linalg.solve_triangular(L, e, lower=True, trans=1))(L, eps) \
            / jnp.sqrt(wide.beta)[:, None]
        perm = jax.random.permutation(d["order"], K)
        values = {"weights": w[perm] / jnp.sum(w), "means": mu[perm], "prec_chol": L[perm]}
        inits.append(unconstrain_fn(numpyro_model, (X, prior, K), {}, values))
    return jax.tree.map(lambda *a: jnp.stack(a), *inits)


def fit_nuts(
    key: jax.Array,
    X,
    n_components: int,
    prior: NIWPrior | None = None,
    *,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    progress_bar: bool = False,
    init: str = "vb",
):
    """NUTS posterior of the Bayesian GMM (small data; full covariances, Dirichlet weights).

    ``init``: "vb" starts every chain at the VB solution (NUTS then explores around a good mode
    instead of burning warm-up); "dispersed" starts each chain at its own over-dispersed point
    (:func:`dispersed_init_params`), so that R-hat across chains means something.
    Returns ``(MixtureDraws, mcmc)``.
    """
    key = check_key(key)
    Xn = check_data(X, min_samples=2)
    K = check_positive_int(n_components, "n_components")
    check_choice(init, "init", {"vb", "dispersed"})
    prior = default_prior(Xn, n_components=K) if prior is None else prior
    _check_nuts_prior(prior)
    X = jnp.asarray(Xn)
    s = streams(key, "vb_init", "nuts")
    init_params = None
    if init == "vb":
        post, _ = fit_vb(s["vb_init"], X, K, prior)
        values = {
            "weights": expected_weights(post),
            "means": post.m,
            "prec_chol": post.W_chol * jnp.sqrt(post.nu)[:, None, None],
        }
    else:
        values = None
        init_params = dispersed_init_params(s["vb_init"], X, prior, K, check_positive_int(num_chains, "num_chains"))
        if num_chains == 1:
            init_params = jax.tree.map(lambda a: a[0], init_params)
    mcmc = run_nuts(numpyro_model, values, s["nuts"], X, prior, K, num_warmup=num_warmup,
                    num_samples=num_samples, num_chains=num_chains, progress_bar=progress_bar,
                    init_params=init_params)
    s = mcmc.get_samples()
    return MixtureDraws(weights=s["weights"], means=s["means"], prec_chol=s["prec_chol"]), mcmc


def _draw_log_joint(X, w, m, L):
    """log w_k + log N(x_n | mu_k, Lambda_k^{-1}) of one draw: ``(N, K)``."""
    return _component_log_prob(X, m, L) + jnp.log(w)


def draws_responsibilities(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """Exact p(z_n = k | x_n, theta_s) per draw: ``(S, N, K)``."""
    X = jnp.asarray(X)
    return jax.lax.map(lambda d: jax.nn.softmax(_draw_log_joint(X, *d), axis=-1),
                       (draws.weights, draws.means, draws.prec_chol))


def draws_mean_responsibilities(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """Posterior mean of p(z_n = k | x_n, theta): ``(N, K)``, the draws accumulated one at a time
    (work space O(N K), never the ``(S, N, K)`` of :func:`draws_responsibilities`)."""
    X = jnp.asarray(X)
    S, K = draws.weights.shape

    def add(acc, d):
        return acc + jax.nn.softmax(_draw_log_joint(X, *d), axis=-1), None

    total, _ = jax.lax.scan(add, jnp.zeros((X.shape[0], K), X.dtype), (draws.weights, draws.means, draws.prec_chol))
    return total / S


def draws_pointwise_log_lik(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """log p(x_n | theta_s) per draw and point: ``(S, N)`` (what ArviZ LOO takes)."""
    X = jnp.asarray(X)
    return jax.lax.map(lambda d: logsumexp(_draw_log_joint(X, *d), axis=-1),
                       (draws.weights, draws.means, draws.prec_chol))


def draws_log_prob(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """Posterior predictive log density log mean_s p(x | theta_s): ``(N,)``; the draws are
    accumulated one at a time (a running log-sum-exp), work space O(N K)."""
    X = jnp.asarray(X)
    S = draws.weights.shape[0]

    def add(acc, d):
        return jnp.logaddexp(acc, logsumexp(_draw_log_joint(X, *d), axis=-1)), None

    init = jnp.full((X.shape[0],), -jnp.inf, X.dtype)
    total, _ = jax.lax.scan(add, init, (draws.weights, draws.means, draws.prec_chol))
    return total - jnp.log(S)


def draws_co_clustering(draws: MixtureDraws, X: jax.Array, *, chunk: int = 64) -> jax.Array:
    """Co-clustering P(z_i = z_j) ``(N, N)`` averaged over NUTS draws, accumulated ``chunk`` draws
    at a time: memory O(N^2 + chunk N K), never the ``(S, N, K)`` responsibilities or ``(S, N, N)``."""
    X = jnp.asarray(X)
    S = draws.weights.shape[0]
    chunk = min(check_positive_int(chunk, "chunk"), S)
    n_chunks = -(-S // chunk)
    pad = n_chunks * chunk - S
    # padded draws get weight 0 in the sum (a copy of draw 0, masked out)
    padded = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]).reshape(
        (n_chunks, chunk) + a.shape[1:]), (draws.weights, draws.means, draws.prec_chol))
    mask = (jnp.arange(n_chunks * chunk) < S).reshape(n_chunks, chunk).astype(X.dtype)

    def add(acc, args):
        (w, m, L), msk = args
        R = jax.vmap(lambda w, m, L: jax.nn.softmax(_draw_log_joint(X, w, m, L), axis=-1))(w, m, L)
        R = R * jnp.sqrt(msk)[:, None, None]
        return acc + jnp.einsum("snk,smk->nm", R, R), None

    acc, _ = jax.lax.scan(add, jnp.zeros((X.shape[0],) * 2, X.dtype), (padded, mask))
    return acc / S


def occupied_clusters_draws(key: jax.Array, draws: MixtureDraws, X: jax.Array, n_draws: int = 1000) -> jax.Array:
    """Posterior over the number of occupied clusters from NUTS draws: ``(K + 1,)``. Each of the
    ``n_draws`` samples picks a posterior draw and computes its responsibilities (no (S, N, K) array)."""
    s = streams(check_key(key), "source", "assignments")
    return _occupied_draws(s["source"], s["assignments"], draws, jnp.asarray(X), check_positive_int(n_draws, "n_draws"))


@functools.partial(jax.jit, static_argnums=(4,))
def _occupied_draws(k_source, k_assign, draws, X, n_draws):
    S, K = draws.weights.shape
    log_resp_of = lambda i: jax.nn.log_softmax(_draw_log_joint(X, draws.weights[i], draws.means[i],
                                                               draws.prec_chol[i]), axis=-1)
    return _count_occupied(k_source, k_assign, log_resp_of, S, K, n_draws)


def sample_draws(key: jax.Array, draws: MixtureDraws, n: int) -> tuple[jax.Array, jax.Array]:
    """Posterior predictive samples from NUTS draws: a random draw s per sample, then z ~ pi_s,
    x ~ N(mu_sz, Lambda_sz^{-1}) (jitted, compiled once per power of two of ``n``).
    Returns ``(x (n, D), labels (n,))``."""
    key = check_key(key)
    n = check_positive_int(n, "n")
    s = streams(key, "draw", "component", "noise")
    n_pad = _bucket(n)
    x, z = _sample_draws(tuple(s.values()), draws, n_pad)
    return x[:n], z[:n]


@functools.partial(jax.jit, static_argnums=(2,))
def _sample_draws(ks, draws, n):
    k_s, k_z, k_x = ks
    S, K, D = draws.means.shape
    s = jax.random.randint(k_s, (n,), 0, S)
    z = jax.random.categorical(k_z, jnp.log(draws.weights[s]), axis=-1)
    eps = jax.random.normal(k_x, (n, D), draws.means.dtype)
    solve = lambda si, zi, e: draws.means[si, zi] + jax.scipy.linalg.solve_triangular(
        draws.prec_chol[si, zi], e, lower=True, trans=1)
    return jax.lax.map(lambda a: solve(*a), (s, z, eps), batch_size=min(4096, n)), z


def pointwise_log_likelihood(mcmc, X: jax.Array, prior: NIWPrior, n_components: int) -> jax.Array:
    """``numpyro.infer.log_likelihood`` of the model's observed site: ``(S, N)`` for the flattened draws."""
    from numpyro.infer import log_likelihood

    return log_likelihood(numpyro_model, mcmc.get_samples(), jnp.asarray(X), prior, n_components)["obs"]


def loo(mcmc, *, pointwise: bool = False):
    """ArviZ PSIS-LOO of a :func:`fit_nuts` run (``arviz.loo`` on ``arviz.from_numpyro``, whose
    pointwise log-likelihood is NumPyro's ``log_likelihood`` of the ``MixtureSameFamily`` site).
    Returns ArviZ's ``ELPDData`` (``elpd_loo``, ``se``, ``p_loo``, the Pareto k's when ``pointwise``)."""
    import arviz as az

    return az.loo(az.from_numpyro(mcmc, log_likelihood=True), pointwise=pointwise)


def label_invariant_diagnostics(mcmc, X: jax.Array):
    """ArviZ R-hat and effective sample sizes of label-invariant quantities of a NUTS run.

    Per-component parameters are not comparable across draws (labels switch), so the chains are
    diagnosed on: the log-likelihood of the data, the weights sorted in decreasing order, and the
    expected number of occupied clusters sum_k (1 - prod_n (1 - r_nk)).

    Args: ``mcmc`` from :func:`fit_nuts`; ``X (N, D)`` the data it was run on.
    Returns: a pandas DataFrame (``arviz.summary``) with ``r_hat``, ``ess_bulk``, ``ess_tail``.
    """
    import arviz as az

    X = jnp.asarray(X)
    s = mcmc.get_samples(group_by_chain=True)
    C, S = s["weights"].shape[:2]
    flat = [a.reshape((C * S,) + a.shape[2:]) for a in (s["weights"], s["means"], s["prec_chol"])]

    def per_draw(d):  # one draw at a time: work space O(N K)
        lj = _draw_log_joint(X, *d)
        resp = jax.nn.softmax(lj, axis=-1)
        occupied = jnp.sum(1.0 - jnp.exp(jnp.sum(jnp.log1p(-jnp.clip(resp, 0.0, 1.0 - 1e-7)), axis=0)))
        return jnp.sum(logsumexp(lj, axis=-1)), occupied

    loglik, occupied = jax.lax.map(per_draw, tuple(flat))
    sorted_w = -jnp.sort(-flat[0], axis=-1)
    post = {"data_loglik": loglik.reshape(C, S), "expected_occupied": occupied.reshape(C, S),
            "sorted_weights": sorted_w.reshape(C, S, -1)}
    return az.summary(az.from_dict(posterior={k: np.asarray(v) for k, v in post.items()}), kind="diagnostics")
