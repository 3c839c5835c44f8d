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
E-step gives <u_n>; in the M-step the expected complete-data log-likelihood in (mu, C) is that of
a Gaussian with per-point weights <u_n>, so mu is the <u>-weighted mean and (W, sigma2) is Tipping
& Bishop's closed form on the <u>-weighted scatter matrix (its eigen-decomposition). This is the
EM of Archambeau et al. with the z-step done exactly.

nu is updated by ECME (Liu & Rubin 1995): given the new (mu, C), nu maximises the *observed*
log-likelihood, a 1-D problem in the Mahalanobis distances (root of its derivative by bisection
on log nu inside ``jit``), instead of EM's expected-complete-data equation, whose steps towards a
large nu are tiny: on Gaussian data EM's nu creeps upwards for hundreds of iterations, ECME's
jumps to the bound. Each iteration is one pass over the data and the likelihood never decreases.

nu is bounded by ``nu_max`` (default :data:`NU_MAX` = 1000): a t with 1000 degrees of freedom is
a Gaussian for any data set of realistic size (excess kurtosis 6 / (nu - 4) = 0.006 in 1-D), and
the likelihood of Gaussian data increases towards nu = infinity without a maximum. A fit that
ends at the bound has ``info.nu_at_bound``: the data look Gaussian (use PPCA).
"""
from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, digamma, gammaln

from jaxgen.inference import run_nuts
from jaxgen.linalg import principal_angles
from jaxgen.models import ppca
from jaxgen.validation import check_data, check_key, check_positive_float, check_positive_int

__all__ = [
    "NU_MAX", "TPCAParams", "TPCAInfo", "fit_em", "log_prob", "sample", "encode", "weights", "outlier_score",
    "numpyro_model", "fit_nuts", "fit_svi", "posterior_predictive_log_prob", "subspace_credible_angles",
]

_NU_MIN = 1e-2  # below this the t has hardly any mass near its centre: a degenerate fit
NU_MAX = 1000.0
"""Default upper bound of nu (see the module docstring): beyond it the data look Gaussian."""


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
    iteration), ``n_iter ()`` iterations run, ``converged ()`` whether ``tol`` was met,
    ``nu_at_bound ()`` whether the fitted nu is ``nu_max`` (the data look Gaussian)."""

    log_likelihood: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    nu_at_bound: jax.Array = False


def _mahalanobis(params: TPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(delta (N,), logdet ())`` under the scale matrix C = W W^T + sigma2 I (PPCA's, O(N D q))."""
    return ppca.mahalanobis_logdet(params, jnp.asarray(X, params.W.dtype))


def _log_prob_from(delta: jax.Array, logdet: jax.Array, nu: jax.Array, D: int) -> jax.Array:
    """Student-t log density from Mahalanobis distances ``delta (N,)`` and ``log|C|``.

    This is NumPyro's ``MultivariateStudentT.log_prob`` term for term, except that
    ``lgamma((nu + D)/2) - lgamma(nu/2)`` is computed as ``lgamma(D/2) - betaln(D/2, nu/2)``:
    the difference of two lgamma values of size ~nu log nu loses all float32 digits for large nu
    (3e-3 nats at nu = 1e4), betaln keeps them (4e-7)."""
    return (
        gammaln(D / 2.0) - betaln(jnp.asarray(D / 2.0, delta.dtype), nu / 2.0)
        - 0.5 * D * jnp.log(nu * jnp.pi)
        - 0.5 * logdet
        - 0.5 * (nu + D) * jnp.log1p(delta / nu)
    )


@jax.jit
def log_prob(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Exact marginal log density of multivariate Student-t St(mu, W W^T + sigma2 I, nu).

    Equal to ``numpyro.distributions.MultivariateStudentT(nu, mu, scale_tril=cholesky(C))``'s
    ``log_prob`` (tested), but O(N D q) through PPCA's low-rank C (NumPyro's needs the D x D
    Cholesky factor, O(N D^2)) and accurate in float32 for large nu (see :func:`_log_prob_from`).

    Args: ``X (N, D)``. Returns ``(N,)`` log densities in nats.
    """
    delta, logdet = _mahalanobis(params, X)
    return _log_prob_from(delta, logdet, params.nu, X.shape[-1])


@jax.jit
def weights(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Posterior mean precision scales <u_n> = (nu + D) / (nu + delta_n), ``(N,)``; small = outlier.

    p(u | x) = Gamma((nu + D)/2, rate (nu + delta)/2), so E[E[u | x]] = E[u] = 1 over the model."""
    delta, _ = _mahalanobis(params, X)
    return _expected_u(delta, params.nu, X.shape[-1])


def _expected_u(delta, nu, D: int):
    return (nu + D) / (nu + delta)


def outlier_score(params: TPCAParams, X: jax.Array) -> jax.Array:
    """Minus the log density, ``(N,)``: higher means more anomalous."""
    return -log_prob(params, X)


@jax.jit
def encode(params: TPCAParams, X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior of the latent z given x: its mean and covariance.

    Given u, z | x, u ~ N(m, sigma2 M^{-1} / u) with M = W^T W + sigma2 I and
    m = E[z | x] = M^{-1} W^T (x - mu), as in PPCA (the scale u cancels in the mean); and
    u | x ~ Gamma((nu + D)/2, rate (nu + delta)/2). So the covariance is
    Cov[z | x] = sigma2 M^{-1} E[1/u | x] with E[1/u | x] = (nu + delta) / (nu + D - 2), finite for
    nu + D > 2 (z | x is a multivariate t with nu + D degrees of freedom).

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
    ku, kz, ke = jax.random.split(key, 3)  # the key is split and nothing else (jaxgen.keys)
    dtype = params.W.dtype
    u = jax.random.gamma(ku, params.nu / 2.0, (n,), dtype=dtype) / (params.nu / 2.0)
    scale = jax.lax.rsqrt(u)[:, None]
    z = jax.random.normal(kz, (n, q), dtype) * scale
    eps = jax.random.normal(ke, (n, D), dtype) * scale * jnp.sqrt(params.sigma2)
    return params.mu + z @ params.W.T + eps, z, u


def _bisect_log(f, dtype, nu_max) -> jax.Array:
    """The nu in [NU_MIN, nu_max] where the decreasing ``f(log nu)`` changes sign (60 bisections of
    log nu; an end of the interval when f keeps one sign)."""
    lo, hi = jnp.log(jnp.asarray(_NU_MIN, dtype)), jnp.log(jnp.asarray(nu_max, dtype))

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        go_right = f(mid) > 0  # still above the root
        return jnp.where(go_right, mid, lo), jnp.where(go_right, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
    return jnp.exp(0.5 * (lo + hi))


def _dloglik_dnu(nu, delta, D: int):
    """d/dnu of the mean observed log-likelihood at fixed (mu, C), from the distances ``delta``.

    Per point: (1/2)[psi((nu+D)/2) - psi(nu/2) - D/nu - log1p(delta/nu) + (nu+D) delta / (nu (nu+delta))].
    """
    b = delta / nu
    per_point = -jnp.log1p(b) + (1.0 + D / nu) * b / (1.0 + b)
    return 0.5 * (digamma((nu + D) / 2.0) - digamma(nu / 2.0) - D / nu + jnp.mean(per_point))


def _ecme_nu(delta, logdet, nu_old, D: int, nu_max):
    """ECME's nu step: the maximiser of the observed log-likelihood in nu (given the distances
    ``delta (N,)`` under the new mu, C), kept only if it does not lower the likelihood (the
    derivative is decreasing in practice, not provably; this keeps the ascent monotone)."""
    nu_new = _bisect_log(lambda lnu: _dloglik_dnu(jnp.exp(lnu), delta, D), delta.dtype, nu_max)
    better = jnp.mean(_log_prob_from(delta, logdet, nu_new, D)) >= jnp.mean(_log_prob_from(delta, logdet, nu_old, D))
    return jnp.where(better, nu_new, nu_old)


def _em_step(params: TPCAParams, delta, logdet, X: jax.Array, q: int, learn_nu: bool, nu_max):
    """One ECME iteration from the distances ``delta (N,)``, ``logdet`` of the current parameters.

    Returns ``(new params, their delta, their logdet, mean log-likelihood of the current ones)``:
    one Mahalanobis pass per iteration, shared by the nu step and the next E-step.
    """
    N, D = X.shape
    ll = jnp.mean(_log_prob_from(delta, logdet, params.nu, D))
    u = _expected_u(delta, params.nu, D)
    mu = (u @ X) / jnp.sum(u)
    Xc = X - mu
    S = (Xc * u[:, None]).T @ Xc / N
    W, sigma2 = ppca.ml_from_scatter(S, q)
    new = TPCAParams(mu=mu, W=W, sigma2=sigma2, nu=params.nu)
    delta_new, logdet_new = _mahalanobis(new, X)
    if learn_nu:
        new = new.replace(nu=_ecme_nu(delta_new, logdet_new, params.nu, D, nu_max))
    return new, delta_new, logdet_new, ll


def fit_em(
    X,
    n_components: int,
    *,
    nu: float = 10.0,
    learn_nu: bool = True,
    max_iter: int = 500,
    tol: float = 1e-5,
    nu_max: float = NU_MAX,
) -> tuple[TPCAParams, TPCAInfo]:
    """Fit Student-t PPCA by ECME (whole loop in ``jit`` with ``lax.while_loop``).

    Initialised at the Gaussian PPCA maximum-likelihood solution (the u_n = 1 fixed point).

    Args:
      X: data ``(N, D)``, finite.
      n_components: latent dimension q, 1 <= q < D.
      nu: initial degrees of freedom (kept fixed if ``learn_nu`` is False).
      max_iter, tol: stop when an iteration changes the scale matrix C, mu (in units of C's scale)
        and nu by less than ``tol`` relative to their size. (Not on the log-likelihood: in float32
        its mean moves in steps of ~1e-7 |L|, and a tolerance near that is decided by rounding.)
      nu_max: upper bound of the learnt nu (> 0.01); a fit that reaches it has
        ``info.nu_at_bound`` True: the data look Gaussian.

    Returns:
      ``(TPCAParams, TPCAInfo)``.
    """
    X = jnp.asarray(check_data(X, min_samples=2))
    q = _check_q(n_components, X.shape[1])
    nu = check_positive_float(nu, "nu")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive_float(tol, "tol", allow_zero=True)
    nu_max = check_positive_float(nu_max, "nu_max")
    if nu_max <= _NU_MIN:
        raise ValueError(f"nu_max must be > {_NU_MIN}, got {nu_max}.")
    if learn_nu:
        nu = min(nu, nu_max)
    return _fit_em(X, q, jnp.asarray(nu, X.dtype), bool(learn_nu), max_iter, tol, jnp.asarray(nu_max, X.dtype))


def _relative_change(new: TPCAParams, old: TPCAParams) -> jax.Array:
    """Largest relative change of the scale matrix C = W W^T + sigma2 I and of nu (rotation-free)."""
    C_new = new.W @ new.W.T + new.sigma2 * jnp.eye(new.W.shape[0], dtype=new.W.dtype)
    C_old = old.W @ old.W.T + old.sigma2 * jnp.eye(old.W.shape[0], dtype=old.W.dtype)
    dC = jnp.max(jnp.abs(C_new - C_old)) / jnp.max(jnp.abs(C_old))
    dmu = jnp.max(jnp.abs(new.mu - old.mu)) / jnp.sqrt(jnp.max(jnp.abs(jnp.diagonal(C_old))))
    return jnp.maximum(jnp.maximum(dC, dmu), jnp.abs(new.nu - old.nu) / old.nu)


@functools.partial(jax.jit, static_argnums=(1, 3, 4))
def _fit_em(X, q, nu0, learn_nu, max_iter, tol, nu_max):
    N = X.shape[0]
    mu = jnp.mean(X, axis=0)
    Xc = X - mu
    W, sigma2 = ppca.ml_from_scatter(Xc.T @ Xc / N, q)
    params = TPCAParams(mu=mu, W=W, sigma2=sigma2, nu=nu0)
    delta, logdet = _mahalanobis(params, X)
    history = jnp.full((max_iter,), jnp.nan, X.dtype)

    def cond(state):
        *_, it, change = state
        return (it < max_iter) & ~(change < tol)

    def body(state):
        params, delta, logdet, history, it, _ = state
        new, delta, logdet, ll = _em_step(params, delta, logdet, X, q, learn_nu, nu_max)
        return new, delta, logdet, history.at[it].set(ll), it + 1, _relative_change(new, params)

    inf = jnp.asarray(jnp.inf, X.dtype)
    params, _, _, history, n_iter, change = jax.lax.while_loop(cond, body, (params, delta, logdet, history, 0, inf))
    # history[i] is the log-likelihood of the parameters *before* update i, so the returned
    # parameters are one step past the last entry.
    at_bound = jnp.asarray(learn_nu) & (params.nu >= nu_max * (1.0 - 1e-3))
    return params, TPCAInfo(log_likelihood=history, n_iter=n_iter, converged=change < tol, nu_at_bound=at_bound)


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

    The likelihood is the exact multivariate-t marginal, NumPyro's ``MultivariateStudentT`` as an
    observed site ``obs`` (so ``numpyro.infer.log_likelihood`` and ``Predictive`` work; it equals
    :func:`log_prob`, tested, at O(N D^2) per evaluation instead of O(N D q)); with
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
    C = W @ W.T + sigma**2 * jnp.eye(D, dtype=X.dtype)
    likelihood = dist.MultivariateStudentT(nu, mu, scale_tril=jnp.linalg.cholesky(C))
    with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
        numpyro.sample("obs", likelihood, obs=X[idx])


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


def posterior_predictive_log_prob(posterior: TPCAParams, X: jax.Array, *, draws_per_block: int = 32) -> jax.Array:
    """log p(x | data) = log mean_s St(x | theta_s), from S posterior draws. Returns ``(N,)``.

    A running log-sum-exp over blocks of ``draws_per_block`` draws: memory O(draws_per_block N),
    not the (S, N) table of every draw's log density.
    """
    X = jnp.asarray(X, posterior.W.dtype)
    return _predictive(posterior, X, check_positive_int(draws_per_block, "draws_per_block"))


@functools.partial(jax.jit, static_argnums=2)
def _predictive(posterior: TPCAParams, X, block: int):
    S = posterior.nu.shape[0]
    block = min(block, S)
    n_blocks = -(-S // block)
    pad = n_blocks * block - S
    valid = jnp.arange(n_blocks * block) < S
    # padded draws repeat the last one and are masked out of the sum
    blocked = jax.tree.map(
        lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]).reshape((n_blocks, block) + a.shape[1:]),
        posterior,
    )

    def step(carry, inputs):
        running, = carry
        params, ok = inputs
        lp = jnp.where(ok[:, None], jax.vmap(log_prob, in_axes=(0, None))(params, X), -jnp.inf)  # (block, N)
        return (jnp.logaddexp(running, jax.scipy.special.logsumexp(lp, axis=0)),), None

    start = jnp.full((X.shape[0],), -jnp.inf, X.dtype)
    (total,), _ = jax.lax.scan(step, (start,), (blocked, valid.reshape(n_blocks, block)))
    return total - jnp.log(jnp.asarray(S, X.dtype))


def subspace_credible_angles(posterior: TPCAParams, reference: jax.Array) -> jax.Array:
    """Largest principal angle (degrees) between each posterior draw's subspace span(W_s) and
    ``reference (D, q)``; its quantiles are a credible uncertainty on the principal subspace
    that does not depend on how W is rotated. Returns ``(S,)``.
    """
    return jax.vmap(lambda W: principal_angles(W, reference)[-1])(posterior.W)


def _check_q(n_components, n_features: int) -> int:
    """Student-t PCA needs noise directions: 1 <= q < D."""
    return ppca._check_q(n_components, n_features, max_q=n_features - 1)
