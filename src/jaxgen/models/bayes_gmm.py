"""The fully Bayesian Gaussian mixture: the number of clusters is inferred, not chosen.

Model over K_max components (Bishop, PRML section 10.2)::

    pi ~ Dirichlet(alpha0, ..., alpha0)                    small alpha0 switches components off
    Lambda_k ~ Wishart(nu0, W0)                           precision; Sigma_k = Lambda_k^{-1} ~ inv-Wishart(nu0, W0^{-1})
    mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^{-1})        together: Normal-inverse-Wishart on (mu_k, Sigma_k)
    z_n ~ Categorical(pi),  x_n | z_n = k ~ N(mu_k, Lambda_k^{-1})

The Wishart prior keeps every covariance away from zero (a component that collapses onto one
point pays W0^{-1} in its scale), so there are no zero-variance clusters.

Two inference methods:
- :func:`fit_vb`: closed-form coordinate-ascent variational Bayes, q(Z) q(pi) prod_k q(mu_k, Lambda_k),
  the whole loop jit-compiled, with the evidence lower bound (ELBO, Bishop eqs. 10.70-10.77) in
  full, so it never decreases and compares across priors.
- :func:`fit_nuts`: NUTS in NumPyro on the model with z marginalised out, precisions in a
  Cholesky parametrisation (``WishartCholesky``); assignments are recovered afterwards as exact
  responsibilities per posterior draw.

Every summary is label-invariant (mixture components can swap labels between draws): the number
of occupied clusters, the co-clustering matrix, the posterior predictive density.

Default hyperparameters (:func:`default_prior`, data-dependent, as scikit-learn's
``BayesianGaussianMixture``): m0 = data mean, beta0 = 1, nu0 = D, W0^{-1} = the sample covariance
(the Wishart prior then puts the precisions around the data's, E[Lambda] = D cov^{-1}), alpha0 = 1/K_max.
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, logsumexp, multigammaln

from jaxgen.inference import run_nuts
from jaxgen.validation import check_data, check_key, check_positive_float, check_positive_int

__all__ = [
    "NIWPrior", "VBPosterior", "VBInfo", "default_prior", "fit_vb", "vb_responsibilities",
    "predictive_log_prob", "expected_weights", "sample_predictive", "occupied_clusters_vb",
    "co_clustering", "numpyro_model", "fit_nuts", "MixtureDraws", "draws_responsibilities",
    "draws_log_prob", "occupied_clusters_draws", "sample_draws", "label_invariant_diagnostics",
]


@flax.struct.dataclass
class NIWPrior:
    """Hyperparameters: ``alpha0 ()`` Dirichlet concentration, ``m0 (D,)``, ``beta0 ()``,
    ``nu0 ()`` Wishart degrees of freedom (> D - 1), ``W0_inv (D, D)`` inverse Wishart scale
    (positive definite; E[Lambda] = nu0 W0)."""

    alpha0: jax.Array
    m0: jax.Array
    beta0: jax.Array
    nu0: jax.Array
    W0_inv: jax.Array


def default_prior(X, *, alpha0=None, n_components: int = 6, beta0=1.0, nu0=None, W0_inv=None, m0=None) -> NIWPrior:
    """Validated prior with documented data-dependent defaults (see the module docstring).

    Args:
      X: data ``(N, D)``, used for the defaults (mean, covariance).
      alpha0: Dirichlet concentration > 0 (default ``1 / n_components``).
      beta0: > 0; nu0: > D - 1 (default D); W0_inv: ``(D, D)`` positive definite (default
        ``cov(X)``); m0: ``(D,)`` (default the data mean).

    Raises:
      ValueError: alpha0 <= 0, beta0 <= 0, nu0 <= D - 1, or a scale matrix that is not symmetric
        positive definite.
    """
    X = check_data(X, min_samples=2)
    N, D = X.shape
    K = check_positive_int(n_components, "n_components")
    alpha0 = check_positive_float(1.0 / K if alpha0 is None else alpha0, "weight_concentration_prior (alpha0)")
    beta0 = check_positive_float(beta0, "mean_precision_prior (beta0)")
    nu0 = float(D) if nu0 is None else check_positive_float(nu0, "degrees_of_freedom_prior (nu0)")
    if nu0 <= D - 1:
        raise ValueError(f"degrees_of_freedom_prior (nu0) must be > n_features - 1 = {D - 1}, got {nu0}.")
    if W0_inv is None:
        W0_inv = np.atleast_2d(np.cov(X, rowvar=False)) + 1e-6 * np.eye(D)
    W0_inv = np.asarray(W0_inv, dtype=X.dtype)
    if W0_inv.shape != (D, D):
        raise ValueError(f"covariance_prior (W0_inv) must have shape ({D}, {D}), got {W0_inv.shape}.")
    if not np.all(np.isfinite(W0_inv)) or not np.allclose(W0_inv, W0_inv.T, rtol=1e-5, atol=1e-8):
        raise ValueError("covariance_prior (W0_inv) must be a finite symmetric matrix.")
    if np.linalg.eigvalsh(W0_inv.astype(np.float64)).min() <= 0:
        raise ValueError("covariance_prior (W0_inv) must be positive definite (all eigenvalues > 0).")
    m0 = X.mean(axis=0) if m0 is None else check_data(m0, name="mean_prior (m0)", ndim=1, dtype=X.dtype)
    if m0.shape != (D,):
        raise ValueError(f"mean_prior (m0) must have shape ({D},), got {m0.shape}.")
    dt = X.dtype
    return NIWPrior(
        alpha0=jnp.asarray(alpha0, dt), m0=jnp.asarray(m0), beta0=jnp.asarray(beta0, dt),
        nu0=jnp.asarray(nu0, dt), W0_inv=jnp.asarray(W0_inv),
    )


# --------------------------------------------------------------------------------------------
# Variational Bayes (Bishop 10.2), closed-form coordinate ascent
# --------------------------------------------------------------------------------------------


@flax.struct.dataclass
class VBPosterior:
    """q(pi) = Dir(alpha), q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^{-1}) W(Lambda_k | W_k, nu_k).

    ``alpha (K,)``, ``beta (K,)``, ``m (K, D)``, ``nu (K,)``, ``W_chol (K, D, D)`` lower Cholesky
    factor of W_k (so E[Lambda_k] = nu_k W_k)."""

    alpha: jax.Array
    beta: jax.Array
    m: jax.Array
    nu: jax.Array
    W_chol: jax.Array


@flax.struct.dataclass
class VBInfo:
    """``elbo (max_iter,)`` per-iteration ELBO in nats (total, NaN after the last iteration),
    ``n_iter ()``, ``converged ()``."""

    elbo: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _expected_log_det(post: VBPosterior) -> jax.Array:
    """E[ln |Lambda_k|] = sum_i digamma((nu_k + 1 - i)/2) + D ln 2 + ln |W_k|, ``(K,)``."""
    D = post.m.shape[-1]
    i = jnp.arange(1, D + 1, dtype=post.nu.dtype)
    logdet_W = 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.W_chol, axis1=-2, axis2=-1)), axis=-1)
    return jnp.sum(digamma((post.nu[:, None] + 1.0 - i) / 2.0), axis=-1) + D * jnp.log(2.0) + logdet_W


def _log_rho(post: VBPosterior, X: jax.Array) -> jax.Array:
    """Unnormalised log responsibilities ln rho_nk (Bishop 10.46), ``(N, K)``."""
    D = X.shape[-1]
    e_log_pi = digamma(post.alpha) - digamma(jnp.sum(post.alpha))
    diff = X[:, None, :] - post.m[None]  # (N, K, D)
    y = jnp.einsum("nkd,kde->nke", diff, post.W_chol)  # W = L L^T  ->  diff^T W diff = |L^T diff|^2
    quad = D / post.beta + post.nu * jnp.sum(y**2, axis=-1)
    return e_log_pi + 0.5 * _expected_log_det(post) - 0.5 * D * jnp.log(2 * jnp.pi) - 0.5 * quad


def vb_responsibilities(post: VBPosterior, X: jax.Array) -> jax.Array:
    """q(z_n = k), ``(N, K)``, for training or new points."""
    return jax.nn.softmax(_log_rho(post, X), axis=-1)


def _stats(resp: jax.Array, X: jax.Array):
    """N_k ``(K,)``, xbar_k ``(K, D)``, S_k ``(K, D, D)`` (responsibility-weighted, centred)."""
    Nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(X.dtype).eps
    xbar = resp.T @ X / Nk[:, None]
    diff = X[:, None, :] - xbar[None]
    S = jnp.einsum("nk,nkd,nke->kde", resp, diff, diff) / Nk[:, None, None]
    return Nk, xbar, S


def _m_step(prior: NIWPrior, resp: jax.Array, X: jax.Array) -> tuple[VBPosterior, tuple]:
    """Bishop 10.58-10.63. Returns the new posterior and the statistics it used."""
    Nk, xbar, S = _stats(resp, X)
    alpha = prior.alpha0 + Nk
    beta = prior.beta0 + Nk
    m = (prior.beta0 * prior.m0 + Nk[:, None] * xbar) / beta[:, None]
    d0 = xbar - prior.m0
    W_inv = (
        prior.W0_inv
        + Nk[:, None, None] * S
        + (prior.beta0 * Nk / (prior.beta0 + Nk))[:, None, None] * d0[:, :, None] * d0[:, None, :]
    )
    # W_k = (W_k^{-1})^{-1}; its Cholesky factor from that of W_k^{-1} = C C^T: W = C^{-T} C^{-1}
    C = jnp.linalg.cholesky(W_inv)
    eye = jnp.broadcast_to(jnp.eye(X.shape[1], dtype=X.dtype), W_inv.shape)
    C_inv = jax.scipy.linalg.solve_triangular(C, eye, lower=True)  # C^{-1}, lower
    W = jnp.swapaxes(C_inv, -1, -2) @ C_inv
    post = VBPosterior(alpha=alpha, beta=beta, m=m, nu=prior.nu0 + Nk, W_chol=jnp.linalg.cholesky(W))
    return post, (Nk, xbar, S)


def _log_wishart_norm(logdet_W, nu, D):
    """ln B(W, nu) of the Wishart normaliser (Bishop B.79)."""
    return -0.5 * nu * logdet_W - (0.5 * nu * D * jnp.log(2.0) + multigammaln(0.5 * nu, D))


def _elbo(prior: NIWPrior, post: VBPosterior, resp: jax.Array, stats) -> jax.Array:
    """Full ELBO (Bishop 10.70-10.77) in nats, for q(Z) = resp and q(pi, mu, Lambda) = post."""
    Nk, xbar, S = stats
    K, D = post.m.shape
    dt = post.m.dtype
    e_logdet = _expected_log_det(post)
    e_log_pi = digamma(post.alpha) - digamma(jnp.sum(post.alpha))
    W = post.W_chol @ jnp.swapaxes(post.W_chol, -1, -2)
    logdet_W = 2.0 * jnp.sum(jnp.log(jnp.diagonal(post.W_chol, axis1=-2, axis2=-1)), axis=-1)
    quad = lambda v: jnp.einsum("kd,kde,ke->k", v, W, v)
    log2pi = jnp.log(2.0 * jnp.pi)

    e_log_px = 0.5 * jnp.sum(
        Nk * (e_logdet - D / post.beta - post.nu * jnp.einsum("kde,ked->k", S, W)
              - post.nu * quad(xbar - post.m) - D * log2pi)
    )
    e_log_pz = jnp.sum(resp * e_log_pi)
    log_C = lambda a: gammaln(jnp.sum(a)) - jnp.sum(gammaln(a))
    alpha0_vec = jnp.full((K,), prior.alpha0, dt)
    e_log_ppi = log_C(alpha0_vec) + (prior.alpha0 - 1.0) * jnp.sum(e_log_pi)
    _, logdet_W0_inv = jnp.linalg.slogdet(prior.W0_inv)
    log_B0 = _log_wishart_norm(-logdet_W0_inv, prior.nu0, D)
    e_log_pmul = 0.5 * jnp.sum(
        D * jnp.log(prior.beta0 / (2 * jnp.pi)) + e_logdet - D * prior.beta0 / post.beta
        - prior.beta0 * post.nu * quad(post.m - prior.m0)
    ) + K * log_B0 + 0.5 * (prior.nu0 - D - 1.0) * jnp.sum(e_logdet) - 0.5 * jnp.sum(
        post.nu * jnp.einsum("de,ked->k", prior.W0_inv, W)
    )
    e_log_qz = jnp.sum(jnp.where(resp > 0, resp * jnp.log(jnp.where(resp > 0, resp, 1.0)), 0.0))
    e_log_qpi = jnp.sum((post.alpha - 1.0) * e_log_pi) + log_C(post.alpha)
    entropy_L = -_log_wishart_norm(logdet_W, post.nu, D) - 0.5 * (post.nu - D - 1.0) * e_logdet + 0.5 * post.nu * D
    e_log_qmul = jnp.sum(0.5 * e_logdet + 0.5 * D * jnp.log(post.beta / (2 * jnp.pi)) - 0.5 * D - entropy_L)
    return e_log_px + e_log_pz + e_log_ppi + e_log_pmul - e_log_qz - e_log_qpi - e_log_qmul


def fit_vb(
    key: jax.Array,
    X,
    n_components: int,
    prior: NIWPrior | None = None,
    *,
    max_iter: int = 500,
    tol: float = 1e-5,
    init_resp: jax.Array | None = None,
) -> tuple[VBPosterior, VBInfo]:
    """Coordinate-ascent VB for the Bayesian GMM; the whole loop runs in ``jit``.

    Initialisation: k-means responsibilities (k-means++ seeding and Lloyd steps on ``key``)
    unless ``init_resp (N, K)`` is given. Each iteration: M-step (q(pi, mu, Lambda) from q(Z)),
    ELBO, E-step (q(Z)). Stops when no expected cluster size N_k moves by more than ``tol * N``
    between iterations. (Not on the ELBO: a float32 total ELBO of size ~1e4 moves in steps of
    ~1e-3, so a small tolerance on it would be decided by rounding.)

    Returns ``(VBPosterior, VBInfo)``; ``info.elbo`` never decreases (up to float rounding).
    """
    key = check_key(key)
    X = check_data(X, min_samples=2)
    K = check_positive_int(n_components, "n_components")
    prior = default_prior(X, n_components=K) if prior is None else prior
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive_float(tol, "tol", allow_zero=True)
    X = jnp.asarray(X)
    if init_resp is None:
        init_resp = _kmeans_resp(key, X, K)
    else:
        init_resp = check_data(init_resp, name="init_resp", dtype=X.dtype)
        if init_resp.shape != (X.shape[0], K):
            raise ValueError(f"init_resp must have shape (N, K) = ({X.shape[0]}, {K}), got {init_resp.shape}.")
        if np.any(init_resp < 0) or not np.allclose(init_resp.sum(1), 1.0, atol=1e-4):
            raise ValueError("init_resp must be non-negative with rows summing to one (responsibilities).")
    return _fit_vb(prior, X, jnp.asarray(init_resp, X.dtype), max_iter, tol)


@functools.partial(jax.jit, static_argnums=(3,))
def _fit_vb(prior, X, resp0, max_iter, tol):
    N = X.shape[0]
    history = jnp.full((max_iter,), jnp.nan, X.dtype)
    post0, _ = _m_step(prior, resp0, X)
    inf = jnp.asarray(jnp.inf, X.dtype)

    def cond(state):
        _, _, _, it, change = state
        return (it < max_iter) & ~(change <= tol * N)

    def body(state):
        prev, resp, history, it, _ = state
        post, stats = _m_step(prior, resp, X)
        elbo = _elbo(prior, post, resp, stats)
        change = jnp.where(it > 0, jnp.max(jnp.abs(post.alpha - prev.alpha)), inf)  # alpha = alpha0 + N_k
        return post, vb_responsibilities(post, X), history.at[it].set(elbo), it + 1, change

    post, _, history, n_iter, change = jax.lax.while_loop(cond, body, (post0, resp0, history, 0, inf))
    return post, VBInfo(elbo=history, n_iter=n_iter, converged=change <= tol * N)


def _kmeans_resp(key: jax.Array, X: jax.Array, K: int, n_lloyd: int = 20) -> jax.Array:
    """One-hot responsibilities from k-means (the GMM module's k-means++ initialisation)."""
    from jaxgen.models import gmm

    params = gmm.init_params(key, X, K, "full", init="kmeans")
    return jax.nn.one_hot(jnp.argmin(jnp.sum((X[:, None] - params.means[None]) ** 2, -1), -1), K, dtype=X.dtype)


def expected_weights(post: VBPosterior) -> jax.Array:
    """E_q[pi] = alpha / sum(alpha), ``(K,)``."""
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


def predictive_log_prob(post: VBPosterior, X: jax.Array) -> jax.Array:
    """Posterior predictive log density under q (Bishop 10.81): a mixture of Student-t's.

    p(x | data) = sum_k alpha_k/sum(alpha) St(x | m_k, L_k, nu_k + 1 - D),
    L_k = (nu_k + 1 - D) beta_k / (1 + beta_k) W_k. Returns ``(N,)``.
    """
    D = X.shape[-1]
    df = post.nu + 1.0 - D
    prec_chol = post.W_chol * jnp.sqrt(df * post.beta / (1.0 + post.beta))[:, None, None]
    comp = jax.vmap(_student_t_log_prob, in_axes=(None, 0, 0, 0), out_axes=1)(X, post.m, prec_chol, df)
    return logsumexp(comp + jnp.log(expected_weights(post)), axis=-1)


def sample_predictive(key: jax.Array, post: VBPosterior, n: int) -> tuple[jax.Array, jax.Array]:
    """Samples from the VB posterior predictive: pi ~ q(pi), then (mu_k, Lambda_k) ~ q, then x.

    Each sample draws its own parameters, so this is the predictive, not a plug-in fit.
    Returns ``(x (n, D), labels (n,))``.
    """
    K, D = post.m.shape
    k_pi, k_z, k_lam, k_mu, k_x = jax.random.split(key, 5)
    pi = jax.random.dirichlet(k_pi, post.alpha, (n,))
    z = jax.random.categorical(k_z, jnp.log(pi), axis=-1)
    nu, W_chol, beta, m = post.nu[z], post.W_chol[z], post.beta[z], post.m[z]
    L = jax.vmap(_wishart_chol)(jax.random.split(k_lam, n), nu, W_chol)  # Lambda = L L^T
    # x = mu + Lambda^{-1/2} eps, mu = m + (beta Lambda)^{-1/2} eps'
    solve = lambda L, e: jax.scipy.linalg.solve_triangular(L, e, lower=True, trans=1)
    e_mu, e_x = jax.random.normal(k_mu, (2, n, D), m.dtype)
    mu = m + jax.vmap(solve)(L, e_mu) / jnp.sqrt(beta)[:, None]
    return mu + jax.vmap(solve)(L, e_x), z


def _wishart_chol(key, nu, W_chol):
    """Cholesky factor of a Wishart(W, nu) draw by the Bartlett decomposition: L = W_chol A."""
    D = W_chol.shape[-1]
    k_c, k_n = jax.random.split(key)
    chi2 = 2.0 * jax.random.gamma(k_c, (nu - jnp.arange(D, dtype=W_chol.dtype)) / 2.0)
    A = jnp.tril(jax.random.normal(k_n, (D, D), W_chol.dtype), -1) + jnp.diag(jnp.sqrt(chi2))
    return W_chol @ A


def occupied_clusters_vb(key: jax.Array, post: VBPosterior, X: jax.Array, n_draws: int = 1000) -> jax.Array:
    """Posterior over the number of occupied clusters under q(Z): draws z_n ~ q(z_n) independently
    and counts the distinct labels. Returns ``(K + 1,)`` probabilities of 0..K occupied clusters."""
    resp = vb_responsibilities(post, X)
    return _count_occupied(key, jnp.log(resp)[None], n_draws)


@functools.partial(jax.jit, static_argnums=(2,))
def _count_occupied(key, log_resp, n_draws):
    """log_resp ``(S, N, K)`` -> distribution over the number of occupied labels ``(K + 1,)``.

    Draws are processed a few at a time (``lax.map`` with a batch) so memory stays O(batch N K)."""
    S, N, K = log_resp.shape
    idx = jax.random.randint(key, (n_draws,), 0, S)
    keys = jax.random.split(jax.random.fold_in(key, 1), n_draws)

    def occupied(args):
        k, s = args
        z = jax.random.categorical(k, log_resp[s], axis=-1)  # (N,)
        return jnp.sum(jnp.zeros((K,), jnp.int32).at[z].set(1))

    counts = jax.lax.map(occupied, (keys, idx), batch_size=16)
    return jnp.bincount(counts, length=K + 1) / n_draws


def co_clustering(resp: jax.Array) -> jax.Array:
    """P(z_i = z_j): ``resp (N, K)`` (one posterior) or ``(S, N, K)`` (averaged over draws) ->
    ``(N, N)``. Invariant to relabelling the components."""
    resp = resp if resp.ndim == 3 else resp[None]
    return jnp.mean(jnp.einsum("snk,smk->snm", resp, resp), axis=0)


# --------------------------------------------------------------------------------------------
# NUTS in NumPyro, assignments marginalised
# --------------------------------------------------------------------------------------------


@flax.struct.dataclass
class MixtureDraws:
    """Posterior draws of mixture parameters, leading axis S: ``weights (S, K)``,
    ``means (S, K, D)``, ``prec_chol (S, K, D, D)`` lower Cholesky factors of the precisions."""

    weights: jax.Array
    means: jax.Array
    prec_chol: jax.Array


def numpyro_model(X: jax.Array, prior: NIWPrior, n_components: int):
    """NumPyro model of the Bayesian GMM with z summed out (log-sum-exp over components).

    Precisions in a Cholesky parametrisation: ``L_k ~ WishartCholesky(nu0, W0)``, Lambda_k = L_k L_k^T;
    ``mu_k ~ N(m0, (beta0 Lambda_k)^{-1})``; ``weights ~ Dirichlet(alpha0)``.
    """
    import numpyro
    import numpyro.distributions as dist

    N, D = X.shape
    K = n_components
    W0_chol = jnp.linalg.cholesky(jnp.linalg.inv(prior.W0_inv))
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.full((K,), prior.alpha0)))
    with numpyro.plate("components", K):
        L = numpyro.sample("prec_chol", dist.WishartCholesky(prior.nu0, scale_tril=W0_chol))
        # mu ~ N(m0, (beta0 L L^T)^{-1}): mu = m0 + (sqrt(beta0) L^T)^{-1} eps
        mu = numpyro.sample(
            "means", dist.MultivariateNormal(prior.m0, precision_matrix=prior.beta0 * L @ jnp.swapaxes(L, -1, -2))
        )
    numpyro.factor("obs", jnp.sum(logsumexp(_component_log_prob(X, mu, L) + jnp.log(weights), axis=-1)))


def _component_log_prob(X, means, prec_chol):
    """log N(x | mu_k, (L_k L_k^T)^{-1}) for each component: ``(N, K)``."""
    D = X.shape[-1]
    y = jnp.einsum("nkd,kde->nke", X[:, None, :] - means[None], prec_chol)
    logdet = jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * D * jnp.log(2 * jnp.pi) + logdet - 0.5 * jnp.sum(y**2, axis=-1)


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
):
    """NUTS posterior of the Bayesian GMM (small data). Returns ``(MixtureDraws, mcmc)``."""
    Xn = check_data(X, min_samples=2)
    K = check_positive_int(n_components, "n_components")
    prior = default_prior(Xn, n_components=K) if prior is None else prior
    X = jnp.asarray(Xn)
    # start from the VB solution: NUTS then explores around a good mode instead of burning warm-up
    post, _ = fit_vb(key, X, K, prior)
    init = {
        "weights": expected_weights(post),
        "means": post.m,
        "prec_chol": post.W_chol * jnp.sqrt(post.nu)[:, None, None],
    }
    mcmc = run_nuts(numpyro_model, init, jax.random.fold_in(key, 1), X, prior, K, num_warmup=num_warmup,
                    num_samples=num_samples, num_chains=num_chains, progress_bar=progress_bar)
    s = mcmc.get_samples()
    return MixtureDraws(weights=s["weights"], means=s["means"], prec_chol=s["prec_chol"]), mcmc


def draws_responsibilities(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """Exact p(z_n = k | x_n, theta_s) per draw: ``(S, N, K)``."""
    f = lambda w, m, L: jax.nn.softmax(_component_log_prob(X, m, L) + jnp.log(w), axis=-1)
    return jax.vmap(f)(draws.weights, draws.means, draws.prec_chol)


def draws_log_prob(draws: MixtureDraws, X: jax.Array) -> jax.Array:
    """Posterior predictive log density log mean_s p(x | theta_s): ``(N,)``."""
    f = lambda w, m, L: logsumexp(_component_log_prob(X, m, L) + jnp.log(w), axis=-1)
    lp = jax.vmap(f)(draws.weights, draws.means, draws.prec_chol)
    return logsumexp(lp, axis=0) - jnp.log(lp.shape[0])


def occupied_clusters_draws(key: jax.Array, draws: MixtureDraws, X: jax.Array, n_draws: int = 1000) -> jax.Array:
    """Posterior over the number of occupied clusters from NUTS draws: ``(K + 1,)``."""
    return _count_occupied(key, jnp.log(draws_responsibilities(draws, X)), n_draws)


def sample_draws(key: jax.Array, draws: MixtureDraws, n: int) -> tuple[jax.Array, jax.Array]:
    """Posterior predictive samples from NUTS draws: a random draw s per sample, then z ~ pi_s,
    x ~ N(mu_sz, Lambda_sz^{-1}). Returns ``(x (n, D), labels (n,))``."""
    S, K, D = draws.means.shape
    k_s, k_z, k_x = jax.random.split(key, 3)
    s = jax.random.randint(k_s, (n,), 0, S)
    z = jax.random.categorical(k_z, jnp.log(draws.weights[s]), axis=-1)
    L = draws.prec_chol[s, z]
    eps = jax.random.normal(k_x, (n, D), draws.means.dtype)
    x = draws.means[s, z] + jax.vmap(
        lambda L, e: jax.scipy.linalg.solve_triangular(L, e, lower=True, trans=1)
    )(L, eps)
    return x, z


def label_invariant_diagnostics(mcmc, X: jax.Array):
    """ArviZ R-hat and effective sample sizes of label-invariant quantities of a NUTS run.

    Per-component parameters are not comparable across draws (labels switch), so the chains are
    diagnosed on: the log-likelihood of the data, the weights sorted in decreasing order, and the
    expected number of occupied clusters sum_k (1 - prod_n (1 - r_nk)).

    Args: ``mcmc`` from :func:`fit_nuts`; ``X (N, D)`` the data it was run on.
    Returns: a pandas DataFrame (``arviz.summary``) with ``r_hat``, ``ess_bulk``, ``ess_tail``.
    """
    import arviz as az

    s = mcmc.get_samples(group_by_chain=True)
    C, S = s["weights"].shape[:2]
    flat = MixtureDraws(*(a.reshape((C * S,) + a.shape[2:]) for a in (s["weights"], s["means"], s["prec_chol"])))
    f = lambda w, m, L: jnp.sum(logsumexp(_component_log_prob(X, m, L) + jnp.log(w), axis=-1))
    loglik = jax.vmap(f)(flat.weights, flat.means, flat.prec_chol)
    resp = draws_responsibilities(flat, X)
    occupied = jnp.sum(1.0 - jnp.exp(jnp.sum(jnp.log1p(-jnp.clip(resp, 0.0, 1.0 - 1e-7)), axis=1)), axis=-1)
    sorted_w = -jnp.sort(-flat.weights, axis=-1)
    post = {"data_loglik": loglik.reshape(C, S), "expected_occupied": occupied.reshape(C, S),
            "sorted_weights": sorted_w.reshape(C, S, -1)}
    return az.summary(az.from_dict(posterior={k: np.asarray(v) for k, v in post.items()}), kind="diagnostics")
