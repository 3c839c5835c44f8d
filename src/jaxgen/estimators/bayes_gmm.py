"""``jaxgen.BayesianGaussianMixture``: scikit-learn's ``BayesianGaussianMixture`` over :mod:`jaxgen.models.bayes_gmm`.

scikit-learn's constructor parameters, defaults, methods and fitted attributes, with the same
variational algorithm (all four covariance types, both weight priors; the jitted loop reaches
scikit-learn's numbers on the same data and initial responsibilities), plus a second inference
method, ``inference="nuts"`` (NumPyro NUTS with the assignments marginalised; full covariances
and Dirichlet-distributed weights only).

Where jaxgen differs from scikit-learn, on purpose:

- ``score_samples`` is the posterior predictive log density (a mixture of Student-t's that
  integrates to one), not scikit-learn's expected log joint under q.
- ``sample`` draws from the posterior predictive (each draw its own parameters from q), not from
  the plug-in mixture of ``weights_``, ``means_``, ``covariances_``.
- extra parameters ``inference``, ``num_warmup``, ``num_samples``, ``num_chains``, ``nuts_init``
  (NUTS) and extra attributes ``elbo_``, ``n_occupied_probs_``, ``n_clusters_``, ``posterior_``.

Label switching: NUTS draws may permute components. ``predict``/``predict_proba`` align every
draw to the first by matching responsibilities on the training data (Hungarian assignment);
``score_samples``, the posterior over the number of occupied clusters and the co-clustering
matrix do not depend on labels at all.

dtype: float64 data are computed and returned in float64 (under a local ``jax.enable_x64``),
everything else in float32 (:mod:`jaxgen.estimators._precision`).
"""
from __future__ import annotations

import warnings
from numbers import Integral

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as _SkBGM
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from jaxgen.estimators._keys import key_from
from jaxgen.estimators._fitted import FittedStateMixin, in_fitted_dtype
from jaxgen.estimators._precision import computing_in, input_dtype
from jaxgen.keys import streams
from jaxgen.models import bayes_gmm as _bg
from jaxgen.validation import check_data

__all__ = ["BayesianGaussianMixture"]

_NOT_CONVERGED = ("Best performing initialization did not converge. Try different init parameters, or "
                  "increase max_iter, tol, or check for degenerate data.")


class BayesianGaussianMixture(FittedStateMixin, DensityMixin, BaseEstimator):
    """Variational (or NUTS) Bayesian Gaussian mixture over ``n_components`` = K_max components.

    Parameters (scikit-learn's, same defaults): ``n_components=1``; ``covariance_type`` in
    {"full", "tied", "diag", "spherical"} ("full"); ``tol=1e-3`` (stop when the lower bound moves
    by less); ``reg_covar=1e-6`` (added to the diagonal of every covariance estimate);
    ``max_iter=100``; ``n_init=1`` (the best lower bound wins); ``init_params`` in {"kmeans",
    "k-means++", "random", "random_from_data"} ("kmeans"); ``weight_concentration_prior_type``
    "dirichlet_process" (stick-breaking) or "dirichlet_distribution"; ``weight_concentration_prior``
    (None -> 1/n_components; small values switch unneeded components off);
    ``mean_precision_prior`` (None -> 1); ``mean_prior`` (None -> the data mean);
    ``degrees_of_freedom_prior`` (None -> n_features; must be > n_features - 1);
    ``covariance_prior`` (None -> the data covariance, in the layout of ``covariance_type``);
    ``random_state`` (an int gives a fixed JAX key); ``warm_start``; ``verbose``;
    ``verbose_interval`` (the per-iteration messages are printed after the jitted loop).

    jaxgen's parameters: ``inference`` "vb" (default) or "nuts" (NumPyro NUTS; full covariances
    and "dirichlet_distribution" only, else a ValueError); ``num_warmup=500``,
    ``num_samples=500``, ``num_chains=1``, ``nuts_init`` "vb" (chains start at the VB solution)
    or "dispersed" (over-dispersed starting points, for R-hat).

    Fitted attributes (scikit-learn's layouts): ``weights_ (K,)``, ``means_ (K, D)``,
    ``covariances_``, ``precisions_``, ``precisions_cholesky_`` (full ``(K, D, D)``, tied
    ``(D, D)``, diag ``(K, D)``, spherical ``(K,)``; covariances_ is the inverse of the posterior
    mean precision E[Lambda_k]), ``weight_concentration_prior_``, ``weight_concentration_``
    (``(K,)``, or a tuple of two ``(K,)`` arrays for the Dirichlet process),
    ``mean_precision_prior_``, ``mean_precision_ (K,)``, ``mean_prior_ (D,)``,
    ``degrees_of_freedom_prior_``, ``degrees_of_freedom_`` (``(K,)``; a float for "tied"),
    ``covariance_prior_``, ``converged_``, ``n_iter_``, ``lower_bound_``, ``lower_bounds_``
    (scikit-learn's lower bound: the ELBO without its constants), ``n_features_in_``; jaxgen's
    ``elbo_`` (the full ELBO in nats, "full" covariances; NaN otherwise), ``n_occupied_probs_
    (K + 1,)`` the posterior of the number of occupied clusters, ``n_clusters_`` its mode,
    ``posterior_`` (VBPosterior or MixtureDraws), ``mcmc_`` (NUTS).
    """

    _parameter_constraints: dict = {
        **_SkBGM._parameter_constraints,
        "inference": [StrOptions({"vb", "nuts"})],
        "num_warmup": [Interval(Integral, 1, None, closed="left")],
        "num_samples": [Interval(Integral, 1, None, closed="left")],
        "num_chains": [Interval(Integral, 1, None, closed="left")],
        "nuts_init": [StrOptions({"vb", "dispersed"})],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        inference="vb",
        num_warmup=500,
        num_samples=500,
        num_chains=1,
        nuts_init="vb",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.inference = inference
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.nuts_init = nuts_init

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self):
        """scikit-learn's parameter validation (its messages), then the combinations NUTS supports."""
        self._validate_params()
        if self.inference == "nuts" and (self.covariance_type != "full"
                                         or self.weight_concentration_prior_type != "dirichlet_distribution"):
            raise ValueError(
                "inference='nuts' supports covariance_type='full' with "
                "weight_concentration_prior_type='dirichlet_distribution' only (got "
                f"{self.covariance_type!r}, {self.weight_concentration_prior_type!r}); use inference='vb' for the others."
            )

    def _validate_X(self, X, *, reset: bool, dtype=None):
        """Checked data (NumPy or JAX) in the computation dtype; feature names and counts as scikit-learn."""
        Xc = check_data(X, min_samples=2 if reset else 1, dtype=dtype)
        # feature names / n_features_in_ with scikit-learn's own checks and messages
        validate_data(self, X, reset=reset, skip_check_array=True)
        return Xc

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Infer the posterior from ``X (N, D)`` (best of ``n_init`` initialisations); returns ``self``."""
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each row of X: ``(N,)`` int."""
        self._check_hyperparameters()
        dt = input_dtype(X)
        with computing_in(dt):
            Xc = self._validate_X(X, reset=True)
            N, K = Xc.shape[0], self.n_components
            if N < K:
                raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, n_samples = {N}")
            prior = _bg.default_prior(
                Xc, n_components=K, alpha0=self.weight_concentration_prior,
                beta0=1.0 if self.mean_precision_prior is None else self.mean_precision_prior,
                nu0=self.degrees_of_freedom_prior, W0_inv=self.covariance_prior, m0=self.mean_prior,
                covariance_type=self.covariance_type, weight_prior=self.weight_concentration_prior_type,
            )
            Xj = jnp.asarray(Xc)
            s = streams(key_from(self.random_state), "init", "occupied", "nuts")
            if self.inference == "vb":
                post = self._fit_vb(s["init"], Xj, prior)
                labels = np.asarray(jnp.argmax(_bg.vb_log_responsibilities(self._jax_post(post), Xj), axis=1))
            else:
                post = self._fit_nuts(s["nuts"], Xj, prior)
                labels = np.argmax(self._proba(Xj), axis=1)
            self._set_prior_attributes(prior)
            occ = (_bg.occupied_clusters_vb(s["occupied"], self._jax_post(post), Xj) if self.inference == "vb"
                   else _bg.occupied_clusters_draws(s["occupied"], self._jax_post(post), Xj))
            self.n_occupied_probs_ = np.asarray(occ)
            self.n_clusters_ = int(np.argmax(self.n_occupied_probs_))
        return labels

    def _initial_resp(self, key, X):
        """Initial responsibilities ``(N, K)`` for one initialisation (``init_params``)."""
        return _bg.initial_responsibilities(key, X, self.n_components, self.init_params)

    def _fit_vb(self, key, X, prior):
        warm = self.warm_start and hasattr(self, "posterior_") and isinstance(self.posterior_, _bg.VBPosterior) \
            and self.posterior_.covariance_type == self.covariance_type and self.posterior_.m.shape == (
                self.n_components, X.shape[1])
        common = dict(max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar, criterion="lower_bound")
        best = None
        if warm:
            runs = [_bg.fit_vb(key, X, self.n_components, prior, init_post=self._jax_post(self.posterior_),
                               lower_bound0=self.lower_bound_, **common)]
        else:
            runs = (_bg.fit_vb(k, X, self.n_components, prior, init_resp=self._initial_resp(k, X), **common)
                    for k in jax.random.split(key, self.n_init))
        for i, (post, info) in enumerate(runs):
            n = int(info.n_iter)
            lbs = [float(v) for v in np.asarray(info.lower_bound)[:n]]
            lb = lbs[-1] if n else -np.inf
            if self.verbose:
                self._print_run(i, lbs, bool(info.converged))
            if best is None or lb > best[0] or best[0] == -np.inf:
                best = (lb, post, info, lbs)
        lb, post, info, lbs = best
        n = int(info.n_iter)
        self.n_iter_ = n
        self.converged_ = bool(info.converged)
        self.lower_bound_ = lb
        self.lower_bounds_ = lbs
        self.elbo_ = float(np.asarray(info.elbo)[n - 1]) if n else float("nan")
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(_NOT_CONVERGED, ConvergenceWarning, stacklevel=3)
        post = jax.tree.map(np.asarray, post)
        self.posterior_ = post
        self._set_vb_attributes(post)
        return post

    def _print_run(self, i, lbs, converged):
        print(f"Initialization {i}")
        for it in range(self.verbose_interval - 1, len(lbs), self.verbose_interval):
            change = lbs[it] - (lbs[it - 1] if it else -np.inf)
            print(f"  Iteration {it + 1}\t ll change {change:.5f}" if self.verbose < 2
                  else f"  Iteration {it + 1}\t lower bound {lbs[it]:.5f}\t ll change {change:.5f}")
        word = "converged" if converged else "did not converge"
        print(f"Initialization {word}." + (f" lower bound {lbs[-1]:.5f}" if lbs and self.verbose >= 2 else ""))

    def _fit_nuts(self, key, X, prior):
        draws, mcmc = _bg.fit_nuts(key, X, self.n_components, prior, num_warmup=self.num_warmup,
                                   num_samples=self.num_samples, num_chains=self.num_chains, init=self.nuts_init)
        draws = jax.tree.map(np.asarray, _align_draws(draws, X))
        self.posterior_ = draws
        self.mcmc_ = mcmc
        self.n_iter_ = int(self.num_warmup) + int(self.num_samples)
        self.converged_ = True
        self.lower_bound_ = float("nan")
        self.lower_bounds_ = []
        self.elbo_ = float("nan")
        self.weights_ = draws.weights.mean(axis=0)
        self.means_ = draws.means.mean(axis=0)
        prec = np.mean(draws.prec_chol @ np.swapaxes(draws.prec_chol, -1, -2), axis=0)
        self.covariances_ = np.linalg.inv(prec)  # as VB: the inverse of E[Lambda]
        self.precisions_cholesky_ = _sk_precision_cholesky(self.covariances_, "full")
        self.precisions_ = _sk_precisions(self.precisions_cholesky_, "full")
        return draws

    def _set_prior_attributes(self, prior):
        ct = self.covariance_type
        self.weight_concentration_prior_ = float(prior.alpha0)
        self.mean_precision_prior_ = float(prior.beta0)
        self.mean_prior_ = np.asarray(prior.m0)
        self.degrees_of_freedom_prior_ = float(prior.nu0)
        self.covariance_prior_ = float(prior.W0_inv) if ct == "spherical" else np.asarray(prior.W0_inv)

    def _set_vb_attributes(self, post):
        ct = self.covariance_type
        self.weight_concentration_ = (post.alpha[0], post.alpha[1]) if post.weight_prior == "dirichlet_process" \
            else post.alpha
        self.weights_ = np.asarray(_bg.expected_weights(self._jax_post(post)))
        self.mean_precision_ = post.beta
        self.means_ = post.m
        self.degrees_of_freedom_ = float(post.nu) if ct == "tied" else post.nu
        self.covariances_ = _sk_covariances(post)
        self.precisions_cholesky_ = _sk_precision_cholesky(self.covariances_, ct)
        self.precisions_ = _sk_precisions(self.precisions_cholesky_, ct)

    _dtype_attr = "means_"  # the fitted dtype (float64 fits answer in float64): see _fitted.in_fitted_dtype

    @property
    def _dtype(self) -> np.dtype:
        return self.means_.dtype

    @staticmethod
    def _jax_post(post):
        return jax.tree.map(jnp.asarray, post)

    # ------------------------------------------------------------------ inference
    def _checked(self, X):  # in methods decorated with in_fitted_dtype (fitted, in the fitted dtype)
        return jnp.asarray(self._validate_X(X, reset=False, dtype=self._dtype))

    def _proba(self, Xj):
        post = self._jax_post(self.posterior_)
        if self.inference == "vb":
            return np.asarray(_bg.vb_responsibilities(post, Xj))
        return np.asarray(_bg.draws_mean_responsibilities(post, Xj))  # O(N K), not (S, N, K)

    @in_fitted_dtype
    def predict_proba(self, X):
        """Posterior cluster probabilities of new points, ``(N, K)``."""
        return self._proba(self._checked(X))

    def predict(self, X):
        """Most probable cluster of each point, ``(N,)``."""
        return np.argmax(self.predict_proba(X), axis=1)

    @in_fitted_dtype
    def score_samples(self, X):
        """Posterior predictive log density of each point, ``(N,)`` (minus it is an outlier score)."""
        Xj = self._checked(X)
        post = self._jax_post(self.posterior_)
        if self.inference == "vb":
            return np.asarray(_bg.predictive_log_prob(post, Xj))
        return np.asarray(_bg.draws_log_prob(post, Xj))

    def score(self, X, y=None):
        """Mean posterior predictive log density."""
        return float(np.mean(self.score_samples(X)))

    @in_fitted_dtype
    def co_clustering(self, X):
        """P(x_i and x_j in the same cluster), ``(N, N)``; label-invariant."""
        Xj = self._checked(X)
        post = self._jax_post(self.posterior_)
        if self.inference == "vb":
            return np.asarray(_bg.co_clustering(_bg.vb_responsibilities(post, Xj)))
        return np.asarray(_bg.draws_co_clustering(post, Xj))

    @in_fitted_dtype
    def loo(self, pointwise: bool = False):
        """ArviZ PSIS-LOO of the NUTS posterior (``inference="nuts"`` only): ArviZ's ``ELPDData``."""
        if self.inference != "nuts":
            raise ValueError("loo() needs posterior draws: fit with inference='nuts'.")
        return _bg.loo(self.mcmc_, pointwise=pointwise)

    @in_fitted_dtype
    def sample(self, n_samples=1):
        """Draw ``(X (n, D), labels (n,))`` from the posterior predictive (seeded by ``random_state``)."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling requires at "
                             "least one sample.")
        key = key_from(self.random_state, salt=1)
        post = self._jax_post(self.posterior_)
        if self.inference == "vb":
            x, z = _bg.sample_predictive(key, post, int(n_samples))
        else:
            x, z = _bg.sample_draws(key, post, int(n_samples))
        return np.asarray(x), np.asarray(z)


def _sk_covariances(post) -> np.ndarray:
    """scikit-learn's ``covariances_``: W_k^{-1} / nu_k in the layout of the covariance type."""
    ct, L, nu = post.covariance_type, np.asarray(post.W_chol), np.asarray(post.nu)
    if ct in ("full", "tied"):
        Linv = np.linalg.inv(L)  # W^{-1} = L^{-T} L^{-1}
        cov = np.swapaxes(Linv, -1, -2) @ Linv
        return cov / (nu[:, None, None] if ct == "full" else nu)
    if ct == "diag":
        return 1.0 / (L**2 * nu[:, None])
    return 1.0 / (L**2 * nu)


def _sk_precision_cholesky(cov: np.ndarray, ct: str) -> np.ndarray:
    """scikit-learn's ``_compute_precision_cholesky``: U = (chol(cov)^{-1})^T, or 1/sqrt(cov)."""
    if ct in ("full", "tied"):
        C = np.linalg.cholesky(cov)
        return np.swapaxes(np.linalg.inv(C), -1, -2)
    return 1.0 / np.sqrt(cov)


def _sk_precisions(U: np.ndarray, ct: str) -> np.ndarray:
    return U @ np.swapaxes(U, -1, -2) if ct in ("full", "tied") else U**2


def _align_draws(draws: _bg.MixtureDraws, X: jax.Array) -> _bg.MixtureDraws:
    """Permute each draw's components to agree best with the first draw (Hungarian matching on the
    co-assignment of the training points), so that per-component averages are meaningful. Only the
    (S, K, K) co-assignment matrices are formed, one draw at a time (never (S, N, K))."""
    resp_of = lambda w, m, L: jax.nn.softmax(_bg._draw_log_joint(X, w, m, L), axis=-1)  # (N, K)
    ref = resp_of(draws.weights[0], draws.means[0], draws.prec_chol[0])
    co = np.asarray(jax.lax.map(lambda d: ref.T @ resp_of(*d), (draws.weights, draws.means, draws.prec_chol)))
    perms = np.stack([linear_sum_assignment(-c)[1] for c in co])  # perms[s][k] = draw-s label of ref k
    take = lambda a: jnp.take_along_axis(a, jnp.asarray(perms).reshape(perms.shape + (1,) * (a.ndim - 2)), axis=1)
    return _bg.MixtureDraws(weights=take(draws.weights), means=take(draws.means), prec_chol=take(draws.prec_chol))
