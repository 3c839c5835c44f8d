"""Student-t probabilistic PCA: robust PCA with a heavy-tailed likelihood.

Model (Archambeau, Delannay & Verleysen, ICML 2006)::

    u_n ~ Gamma(nu/2, rate=nu/2)
    z_n | u_n ~ N(0, I_q / u_n)
    x_n | z_n, u_n ~ N(mu + W z_n, sigma2 I_D / u_n)

so that marginally x_n ~ St(mu, C = W W^T + sigma2 I, nu). A point far from the subspace gets a
small expected precision scale <u_n> = (nu + D) / (nu + delta_n), delta_n its Mahalanobis distance
under C, and so barely moves the fit: this is what makes the model robust where Gaussian PPCA,
whose squared loss grows without bound, is dragged towards outliers.

EM. We treat the scales u_n as the latent variables and integrate z_n out analytically. The
E-step gives <u_n> and <log u_n>; in the M-step the expected complete-data log-likelihood in
(mu, C) is that of a Gaussian with per-point weights <u_n>, so mu is the <u>-weighted mean and
(W, sigma2) is Tipping & Bishop's closed form on the <u>-weighted scatter matrix (its
eigen-decomposition). This is the EM of Archambeau et al. with the z-step done exactly, so each
iteration is one pass over the data and the likelihood never decreases. nu is updated from the
1-D equation ``1 + log(nu/2) - digamma(nu/2) + mean(<log u> - <u>) = 0`` (solved by bisection on
log nu inside ``jit``).
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from jaxgen.inference import run_nuts
from jaxgen.linalg import principal_angles
from jaxgen.models import ppca
from jaxgen.validation import check_data, check_key, check_positive_float, check_positive_int

__all__ = [
    "TPCAParams", "TPCAInfo", "fit_em", "log_prob", "sample", "encode", "weights", "outlier_score",
    "numpyro_model", "fit_nuts", "fit_svi", "posterior_predictive_log_prob", "subspace_credible_angles",
]

_NU_MIN, _NU_MAX = 1e-2, 1e4  # nu is clamped: beyond 1e4 the t is Gaussian to float precision


@flax.struct.dataclass
class TPCAParams:
    """Parameters of Student-t PPCA: ``mu (D,)``, ``W (D, q)``, ``sigma2 ()``, ``nu ()``."""

    mu: jax.Array
    W: jax.Array
    sigma2: jax.Array
    nu: jax.Array


@flax.struct.dataclass
class TPCAInfo:
    """EM diagnostics: ``log_likelihood (max_iter,)`` mean per-sample values (NaN after the last
    iteration), ``n_iter ()`` iterations run, ``converged ()`` whether ``tol`` was met."""

    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _mahalanobis(params: TPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(delta (N,), logdet ())`` under the scale matrix C = W W^T + sigma2 I (PPCA's, O(N D q))."""
    return ppca.mahalanobis_logdet(params, jnp.asarray(X, params.W.dtype))


def log_prob(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Exact marginal log density of multivariate Student-t St(mu, W W^T + sigma2 I, nu).

    Args: ``X (N, D)``. Returns ``(N,)`` log densities in nats.
    """
    D = X.shape[-1]
    delta, logdet = _mahalanobis(params, X)
    nu = params.nu
    return (
        gammaln((nu + D) / 2.0)
        - gammaln(nu / 2.0)
        - 0.5 * D * jnp.log(nu * jnp.pi)
        - 0.5 * logdet
        - 0.5 * (nu + D) * jnp.log1p(delta / nu)
    )


def weights(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Posterior mean precision scales <u_n> = (nu + D) / (nu + delta_n), ``(N,)``; small = outlier."""
    delta, _ = _mahalanobis(params, X)
    return (params.nu + X.shape[-1]) / (params.nu + delta)


def outlier_score(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Minus the log density, ``(N,)``: higher means more anomalous."""
    return -log_prob(params, X)


def encode(params: TPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior of the latent z given x.

    E[z | x] = M^{-1} W^T (x - mu) as in PPCA (the scale u cancels in the mean); the posterior
    covariance is sigma2 M^{-1} E[1/u | x], and E[1/u | x] = (nu + delta) / (nu + D - 2), finite
    for nu + D > 2.

    Returns ``(mean (N, q), cov (N, q, q))``.
    """
    q = params.W.shape[1]
    X = jnp.asarray(X, params.W.dtype)
    M = params.W.T @ params.W + params.sigma2 * jnp.eye(q, dtype=X.dtype)
    Minv = jnp.linalg.inv(M)
    mean = (X - params.mu) @ params.W @ Minv.T
    delta, _ = _mahalanobis(params, X)
    inv_u = (params.nu + delta) / (params.nu + X.shape[-1] - 2.0)
    cov = params.sigma2 * inv_u[:, None, None] * Minv
    return mean, cov


def sample(key: jax.Array, params: TPCAParams, n: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw ``n`` points from the generative process.

    Returns ``(x (n, D), z (n, q), u (n,))``.
    """
    D, q = params.W.shape
    ku, kz, ke = jax.random.split(key, 3)
    dtype = params.W.dtype
    u = jax.random.gamma(ku, params.nu / 2.0, (n,), dtype=dtype) / (params.nu / 2.0)
    scale = jax.lax.rsqrt(u)[:, None]
    z = jax.random.normal(kz, (n, q), dtype) * scale
    eps = jax.random.normal(ke, (n, D), dtype) * scale * jnp.sqrt(params.sigma2)
    return params.mu + z @ params.W.T + eps, z, u


def _solve_nu(c: jax.Array, dtype) -> jax.Array:
    """Root of 1 + log(nu/2) - digamma(nu/2) + c = 0 in [NU_MIN, NU_MAX], by bisection on log nu.

    The left side decreases in nu (log x - digamma(x) is decreasing), and c <= -1 since
    log u - u <= -1, so a root exists unless the data look Gaussian (then nu -> NU_MAX).
    """
    f = lambda lnu: 1.0 + jnp.log(jnp.exp(lnu) / 2.0) - digamma(jnp.exp(lnu) / 2.0) + c
    lo, hi = jnp.log(jnp.asarray(_NU_MIN, dtype)), jnp.log(jnp.asarray(_NU_MAX, dtype))

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        go_right = f(mid) > 0  # still above the root
        return jnp.where(go_right, mid, lo), jnp.where(go_right, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
    return jnp.exp(0.5 * (lo + hi))


def _em_step(params: TPCAParams, X: jax.Array, q: int, learn_nu: bool) -> tuple[TPCAParams, jax.Array]:
    """One EM iteration. Returns the new parameters and the mean log-likelihood of the old ones."""
    N, D = X.shape
    ll = jnp.mean(log_prob(params, X))
    delta, _ = _mahalanobis(params, X)
    u = (params.nu + D) / (params.nu + delta)
    log_u = digamma((params.nu + D) / 2.0) - jnp.log((params.nu + delta) / 2.0)
    mu = (u @ X) / jnp.sum(u)
    Xc = X - mu
    S = (Xc * u[:, None]).T @ Xc / N
    W, sigma2 = ppca.ml_from_scatter(S, q)
    nu = _solve_nu(jnp.mean(log_u - u), X.dtype) if learn_nu else params.nu
    return TPCAParams(mu=mu, W=W, sigma2=sigma2, nu=nu), ll


def fit_em(
    X,
    n_components: int,
    *,
    nu: float = 10.0,
    learn_nu: bool = True,
    max_iter: int = 500,
    tol: float = 1e-5,
) -> tuple[TPCAParams, TPCAInfo]:
    """Fit Student-t PPCA by EM (whole loop in ``jit`` with ``lax.while_loop``).

    Initialised at the Gaussian PPCA maximum-likelihood solution (the u_n = 1 fixed point).

    Args:
      X: data ``(N, D)``, finite.
      n_components: latent dimension q, 1 <= q < D.
      nu: initial degrees of freedom (kept fixed if ``learn_nu`` is False).
      max_iter, tol: stop when an iteration changes the scale matrix C, mu (in units of C's scale)
        and nu by less than ``tol`` relative to their size. (Not on the log-likelihood: in float32
        its mean moves in steps of ~1e-7 |L|, and a tolerance near that is decided by rounding.)

    Returns:
      ``(TPCAParams, TPCAInfo)``.
    """
    X = jnp.asarray(check_data(X, min_samples=2))
    q = _check_q(n_components, X.shape[1])
    nu = check_positive_float(nu, "nu")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive_float(tol, "tol", allow_zero=True)
    return _fit_em(X, q, jnp.asarray(nu, X.dtype), learn_nu, max_iter, tol)


def _relative_change(new: TPCAParams, old: TPCAParams) -> jax.Array:
    """Largest relative change of the scale matrix C = W W^T + sigma2 I and of nu (rotation-free)."""
    C_new = new.W @ new.W.T + new.sigma2 * jnp.eye(new.W.shape[0], dtype=new.W.dtype)
    C_old = old.W @ old.W.T + old.sigma2 * jnp.eye(old.W.shape[0], dtype=old.W.dtype)
    dC = jnp.max(jnp.abs(C_new - C_old)) / jnp.max(jnp.abs(C_old))
    dmu = jnp.max(jnp.abs(new.mu - old.mu)) / jnp.sqrt(jnp.max(jnp.abs(jnp.diagonal(C_old))))
    return jnp.maximum(jnp.maximum(dC, dmu), jnp.abs(new.nu - old.nu) / old.nu)


@functools.partial(jax.jit, static_argnums=(1, 3, 4))
def _fit_em(X, q, nu0, learn_nu, max_iter, tol):
    N = X.shape[0]
    mu = jnp.mean(X, axis=0)
    Xc = X - mu
    W, sigma2 = ppca.ml_from_scatter(Xc.T @ Xc / N, q)
    params = TPCAParams(mu=mu, W=W, sigma2=sigma2, nu=nu0)
    history = jnp.full((max_iter,), jnp.nan, X.dtype)

    def cond(state):
        _, _, it, change = state
        return (it < max_iter) & ~(change < tol)

    def body(state):
        params, history, it, _ = state
        new, ll = _em_step(params, X, q, learn_nu)
        return new, history.at[it].set(ll), it + 1, _relative_change(new, params)

    inf = jnp.asarray(jnp.inf, X.dtype)
    params, history, n_iter, change = jax.lax.while_loop(cond, body, (params, history, 0, inf))
    # history[i] is the log-likelihood of the parameters *before* update i, so the returned
    # parameters are one step past the last entry.
    return params, TPCAInfo(log_likelihood=history, n_iter=n_iter, converged=change < tol)


# --------------------------------------------------------------------------------------------
# Bayesian Student-t PPCA in NumPyro: priors on (mu, W, sigma, nu), posterior by NUTS or SVI.
# --------------------------------------------------------------------------------------------


def numpyro_model(X: jax.Array, n_components: int, *, subsample_size: int | None = None, prior_scale=None):
    """NumPyro model of Student-t PPCA with the latent z and u integrated out.

    Priors (data-dependent, documented): with ``s`` the per-feature data spread (``prior_scale``,
    default the standard deviations of X) and ``m`` the data mean,
    ``mu ~ N(m, (10 s)^2)``, ``W`` lower-triangular with ``W_ij ~ N(0, s_i^2)`` below the
    diagonal and ``W_jj ~ HalfNormal(s_j)`` on it (this fixes the rotation and sign of W, so the
    posterior is not a ring of equivalent modes), ``sigma ~ HalfNormal(mean(s))``,
    ``nu ~ Gamma(2, 0.1)`` (Juarez & Steel's weakly informative prior, mean 20).

    The likelihood is the exact multivariate-t marginal (:func:`log_prob`, O(N D q)); with
    ``subsample_size`` the data plate is subsampled (for SVI on large N), scaled by N/B.

    Args: ``X (N, D)``; ``n_components`` q < D.
    """
    import numpyro
    import numpyro.distributions as dist

    N, D = X.shape
    q = n_components
    s = jnp.std(X, axis=0) if prior_scale is None else jnp.broadcast_to(jnp.asarray(prior_scale, X.dtype), (D,))
    m = jnp.mean(X, axis=0)
    mu = numpyro.sample("mu", dist.Normal(m, 10.0 * s).to_event(1))
    rows, cols = jnp.tril_indices(D, -1, q)
    W_off = numpyro.sample("W_off", dist.Normal(0.0, s[rows]).to_event(1))
    W_diag = numpyro.sample("W_diag", dist.HalfNormal(s[:q]).to_event(1))
    W = jnp.zeros((D, q), X.dtype).at[rows, cols].set(W_off).at[jnp.arange(q), jnp.arange(q)].set(W_diag)
    numpyro.deterministic("W", W)
    sigma = numpyro.sample("sigma", dist.HalfNormal(jnp.mean(s)))
    nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    params = TPCAParams(mu=mu, W=W, sigma2=sigma**2, nu=nu)
    with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
        numpyro.factor("obs", log_prob(params, X[idx]))


def _lower_triangular_form(W: jax.Array) -> jax.Array:
    """The W' = W R (R orthogonal, same W W^T) that is lower-triangular with a positive diagonal:
    from the QR decomposition W^T = Q R', W' = R'^T with column signs fixed. ``(D, q)`` -> ``(D, q)``."""
    _, R = jnp.linalg.qr(W.T)  # (q, D) upper-trapezoidal
    L = R.T
    return L * jnp.where(jnp.diagonal(L) < 0, -1.0, 1.0).astype(W.dtype)


def _posterior_params(samples: dict) -> TPCAParams:
    """Stack posterior draws into a TPCAParams with a leading sample axis ``(S, ...)``."""
    return TPCAParams(mu=samples["mu"], W=samples["W"], sigma2=samples["sigma"] ** 2, nu=samples["nu"])


def fit_nuts(
    key: jax.Array,
    X,
    n_components: int,
    *,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    progress_bar: bool = False,
):
    """Posterior of Bayesian Student-t PPCA by NUTS (small data).

    Returns ``(posterior, mcmc)``: ``posterior`` is a :class:`TPCAParams` whose leaves have a
    leading axis of ``num_chains * num_samples`` draws; ``mcmc`` is the NumPyro MCMC object
    (for ``arviz.from_numpyro`` diagnostics).
    """
    key = check_key(key)
    X = jnp.asarray(check_data(X, min_samples=2))
    q = _check_q(n_components, X.shape[1])
    # start the chain at the EM estimate (W in its lower-triangular form): warm-up then adapts
    # around the mode instead of wandering in from the prior
    em, _ = fit_em(X, q)
    W_tri = _lower_triangular_form(em.W)
    rows, cols = jnp.tril_indices(X.shape[1], -1, q)
    init = {"mu": em.mu, "W_off": W_tri[rows, cols], "W_diag": jnp.diagonal(W_tri),
            "sigma": jnp.sqrt(em.sigma2), "nu": jnp.clip(em.nu, 0.5, 200.0)}
    mcmc = run_nuts(numpyro_model, init, key, X, q, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, progress_bar=progress_bar)
    return _posterior_params(mcmc.get_samples()), mcmc


def fit_svi(
    key: jax.Array,
    X,
    n_components: int,
    *,
    num_steps: int = 3000,
    learning_rate: float = 1e-2,
    subsample_size: int | None = None,
    num_samples: int = 500,
    progress_bar: bool = False,
):
    """Approximate posterior of Bayesian Student-t PPCA by SVI (large data).

    A low-rank multivariate-normal guide over all unconstrained sites, Adam, ELBO with the data
    plate subsampled to ``subsample_size`` points per step when given.

    Returns ``(posterior, losses)``: ``posterior`` as in :func:`fit_nuts` with ``num_samples``
    draws from the guide, ``losses (num_steps,)`` the negative ELBO trace.
    """
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoLowRankMultivariateNormal

    key = check_key(key)
    X = jnp.asarray(check_data(X, min_samples=2))
    q = _check_q(n_components, X.shape[1])
    guide = AutoLowRankMultivariateNormal(numpyro_model)
    svi = SVI(numpyro_model, guide, optax.adam(check_positive_float(learning_rate, "learning_rate")), Trace_ELBO())
    k_fit, k_draw = jax.random.split(key)
    result = svi.run(
        k_fit, check_positive_int(num_steps, "num_steps"), X, q, subsample_size=subsample_size, progress_bar=progress_bar
    )
    draws = guide.sample_posterior(k_draw, result.params, sample_shape=(check_positive_int(num_samples, "num_samples"),))
    rows, cols = jnp.tril_indices(X.shape[1], -1, q)
    S = draws["W_off"].shape[0]
    W = jnp.zeros((S, X.shape[1], q), X.dtype).at[:, rows, cols].set(draws["W_off"])
    draws["W"] = W.at[:, jnp.arange(q), jnp.arange(q)].set(draws["W_diag"])
    return _posterior_params(draws), result.losses


def posterior_predictive_log_prob(posterior: TPCAParams, X: jax.Array) -> jax.Array:
    """log p(x | data) = log mean_s St(x | theta_s), from posterior draws. Returns ``(N,)``."""
    lp = jax.vmap(log_prob, in_axes=(0, None))(posterior, X)  # (S, N)
    return jax.scipy.special.logsumexp(lp, axis=0) - jnp.log(lp.shape[0])


def subspace_credible_angles(posterior: TPCAParams, reference: jax.Array) -> jax.Array:
    """Largest principal angle (degrees) between each posterior draw's subspace span(W_s) and
    ``reference (D, q)``; its quantiles are a credible uncertainty on the principal subspace
    that does not depend on how W is rotated. Returns ``(S,)``.
    """
    return jax.vmap(lambda W: principal_angles(W, reference)[-1])(posterior.W)


def _check_q(n_components, n_features: int) -> int:
    """Student-t PCA needs noise directions: 1 <= q < D."""
    return ppca._check_q(n_components, n_features, max_q=n_features - 1)
