"""``jaxgen.GaussianMixture``: scikit-learn's GaussianMixture contract over :mod:`jaxgen.models.gmm`.

Same constructor parameters, methods and fitted attributes as ``sklearn.mixture.GaussianMixture``
(plus ``chunk_size``); the EM loop runs as one jitted ``lax.while_loop``.

dtype: float64 data are fitted in float64 (under a local ``jax.enable_x64``) and every method of
that fit computes and returns float64, as in scikit-learn; other input (float32, integers) runs in
float32, the fast path. Errors for bad ``weights_init``, ``means_init``, ``precisions_init``, a
wrong feature count and ``sample(0)`` use scikit-learn's wording.
"""
from __future__ import annotations

import math
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from jaxgen.models import gmm as G
from jaxgen.estimators._keys import key_from, numpy_rng
from jaxgen.estimators._fitted import FittedStateMixin, in_fitted_dtype
from jaxgen.estimators._precision import computing_in, input_dtype
from jaxgen.validation import check_choice, check_data, check_positive_float, check_positive_int

__all__ = ["GaussianMixture"]

_SK_INITS = ("kmeans", "k-means++", "random", "random_from_data")


def _sk_shape(param, shape, name):
    """scikit-learn's ``_check_shape`` message, word for word."""
    if param.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {param.shape}")


class GaussianMixture(FittedStateMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, with scikit-learn's interface.

    Parameters are those of ``sklearn.mixture.GaussianMixture`` (``n_components``,
    ``covariance_type`` in {"full", "tied", "diag", "spherical"}, ``tol``, ``reg_covar``,
    ``max_iter``, ``n_init``, ``init_params`` in {"kmeans", "k-means++", "random",
    "random_from_data"}, ``weights_init``, ``means_init``, ``precisions_init``, ``random_state``,
    ``warm_start``, ``verbose``, ``verbose_interval``) plus ``chunk_size`` (rows per block of the
    chunked E-step; None picks a size that bounds the work space to a few MB).

    ``random_state``: an int gives a fixed JAX key (same seed -> same numbers); None or a
    ``RandomState`` draws a seed from NumPy. ``verbose`` prints the per-iteration lower bounds
    after the jitted loop has finished (there is no host call inside the loop).

    Attributes (after fit): ``weights_`` (K,), ``means_`` (K, D), ``covariances_``,
    ``precisions_``, ``precisions_cholesky_`` (layouts as scikit-learn), ``converged_``,
    ``n_iter_``, ``lower_bound_``, ``lower_bounds_``, ``n_features_in_``, ``params_`` (the
    :class:`jaxgen.models.gmm.GMMParams` pytree).
    """

    _dtype_attr = "means_"

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
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        chunk_size=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self):
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type", G.COVARIANCE_TYPES)
        check_positive_float(self.tol, "tol", allow_zero=True)
        check_positive_float(self.reg_covar, "reg_covar", allow_zero=True)
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        check_choice(self.init_params, "init_params", _SK_INITS)
        check_positive_int(self.verbose, "verbose", minimum=0)
        check_positive_int(self.verbose_interval, "verbose_interval")
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")

    def _user_init(self, X, dt):
        """Validated (weights, means, precisions) given by the user, each None when not given.

        The checks and their messages are scikit-learn's (``_check_weights``, ``_check_means``,
        ``_check_precisions``), so that code matching those messages keeps working."""
        k, d = self.n_components, X.shape[1]
        w = m = p = None
        if self.weights_init is not None:
            w = check_data(self.weights_init, name="weights_init", ndim=1, min_samples=0, dtype=dt)
            _sk_shape(w, (k,), "weights")
            if np.any(w < 0.0) or np.any(w > 1.0):
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got max value "
                    f"{w.min():.5f}, min value {w.max():.5f}"  # sic: scikit-learn swaps min and max
                )
            if abs(1.0 - float(w.sum())) > (1e-6 if dt == np.float32 else 1e-8):
                raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")
        if self.means_init is not None:
            m = check_data(self.means_init, name="means_init", ndim=max(1, np.ndim(self.means_init)), min_samples=0, dtype=dt)
            _sk_shape(m, (k, d), "means")
        if self.precisions_init is not None:
            ct = self.covariance_type
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[ct]
            p = check_data(
                self.precisions_init, name="precisions_init", ndim=max(1, np.ndim(self.precisions_init)), min_samples=0, dtype=dt
            )
            _sk_shape(p, shape, f"{ct} precision")
            if ct in ("full", "tied"):
                for mat in p.reshape((-1, d, d)):
                    if not (np.allclose(mat, mat.T) and np.all(np.linalg.eigvalsh(mat.astype(np.float64)) > 0.0)):
                        raise ValueError(f"'{ct} precision' should be symmetric, positive-definite")
            elif np.any(p <= 0.0):
                raise ValueError(f"'{ct} precision' should be positive")
        return w, m, p

    def _validate_X(self, X, *, reset: bool):
        # n_features_in_ is set only once fitting succeeded (_set_fitted): a failed fit must not
        # leave a half-fitted estimator behind
        if reset:
            return check_data(X, min_samples=2)
        check_is_fitted(self)
        return check_data(X, n_features=self.n_features_in_, estimator=self)

    # ------------------------------------------------------------------ fitting
    def _initial_params(self, key, X, user):
        w_u, m_u, p_u = user
        ct, k = self.covariance_type, self.n_components
        if w_u is not None and m_u is not None and p_u is not None:
            return G.GMMParams.from_precisions(w_u, m_u, p_u, ct)
        p = G.init_params(key, X, k, ct, init=self.init_params, reg_covar=self.reg_covar, chunk_size=self.chunk_size)
        # As scikit-learn: user-given pieces override the ones estimated from the initial responsibilities.
        if p_u is not None:
            p = G.GMMParams.from_precisions(p.weights, p.means, p_u, ct)
        return p.replace(
            weights=p.weights if w_u is None else jnp.asarray(w_u),
            means=p.means if m_u is None else jnp.asarray(m_u),
        )

    def fit(self, X, y=None):
        """Estimate the parameters with EM (best of ``n_init`` runs). Returns ``self``."""
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of each row of X: (N,) int.

        Computed in float64 when X holds float64 numbers, else in float32."""
        self._check_hyperparameters()
        with computing_in(input_dtype(X)):
            return self._fit_predict(X)

    def _fit_predict(self, X):
        warm = self.warm_start and hasattr(self, "converged_")
        if warm:
            X = self._validate_X(X, reset=False)
        else:
            X = self._validate_X(X, reset=True)
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {X.shape[0]}"
            )
        dt = X.dtype
        user = self._user_init(X, dt)
        key = key_from(self.random_state)
        fixed_init = all(u is not None for u in user)
        common = dict(max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar, chunk_size=self.chunk_size)
        labels = None
        if warm:
            start = jax.tree.map(lambda a: jnp.asarray(a, X.dtype), self.params_)  # the new data's dtype
            params, info = G.fit_em(X, start, lower_bound0=self.lower_bound_, **common)
        elif not any(u is not None for u in user):
            # the restarts' keys are split(key, n_init), as in the loop below: the same fits. Two
            # compiled programs (init, EM + labels), shared across n_components on small data.
            params, info, labels = G._fit(key, X, self.n_components, self.covariance_type, n_init=self.n_init,
                                          init=self.init_params, warn=False, sample_weight=None, **common)
        else:
            best = None
            for i, k in enumerate(jax.random.split(key, self.n_init)):
                p0 = self._initial_params(k, X, user)
                run = G.fit_em(X, p0, **common)
                if best is None or float(run[1].lower_bound) > float(best[1].lower_bound):
                    best = run
                if fixed_init:  # identical restarts would give identical results
                    break
            params, info = best
        self._set_fitted(params, info)
        if self.verbose:
            hist = self.lower_bounds_
            for i in range(0, len(hist), self.verbose_interval):
                print(f"  Iteration {i + 1}\t lower bound {hist[i]:.6f}")
            print(f"Initialization {'converged' if self.converged_ else 'did not converge'}. lower bound {self.lower_bound_:.6f}")
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(G._CONVERGENCE_MSG, ConvergenceWarning, stacklevel=2)
        # Final E-step with the returned parameters, so that fit(X).predict(X) == fit_predict(X)
        # (computed inside the fit's program when it went through G._fit).
        if labels is None:
            labels = G.predict(self.params_, X, chunk_size=self.chunk_size)
        return np.asarray(labels)

    def _set_fitted(self, params: G.GMMParams, info: G.EMInfo):
        self.n_features_in_ = int(params.means.shape[1])
        self.params_ = params
        self.weights_ = np.asarray(params.weights)
        self.means_ = np.asarray(params.means)
        self.covariances_ = np.asarray(params.covariances)
        self.precisions_cholesky_ = np.asarray(params.precisions_cholesky)
        u = self.precisions_cholesky_  # U Uᵀ (full/tied) or U² on the host: no compiled program per K
        self.precisions_ = u @ np.swapaxes(u, -1, -2) if params.covariance_type in ("full", "tied") else u**2
        self.converged_ = bool(info.converged)
        self.n_iter_ = int(info.n_iter)
        self.lower_bound_ = float(info.lower_bound)
        self.lower_bounds_ = np.asarray(info.history)[: self.n_iter_]

    # ------------------------------------------------------------------ inference
    @in_fitted_dtype
    def score_samples(self, X):
        """Per-sample log-likelihood: (N,)."""
        X = self._validate_X(X, reset=False)
        return np.asarray(G.log_prob(self.params_, X, chunk_size=self.chunk_size))

    def score(self, X, y=None):
        """Mean per-sample log-likelihood of X (higher is better; GridSearchCV's default score)."""
        return float(np.mean(self.score_samples(X)))

    @in_fitted_dtype
    def predict(self, X):
        """Most probable component per row: (N,) int."""
        X = self._validate_X(X, reset=False)
        return np.asarray(G.predict(self.params_, X, chunk_size=self.chunk_size))

    @in_fitted_dtype
    def predict_proba(self, X):
        """Posterior probability of each component: (N, K)."""
        X = self._validate_X(X, reset=False)
        return np.asarray(G.responsibilities(self.params_, X, chunk_size=self.chunk_size))

    def sample(self, n_samples=1):
        """Draw from the fitted mixture: ``(X (n_samples, D), y (n_samples,))``, y = component labels.

        As scikit-learn: the counts per component are multinomial, the rows come grouped by
        component (y sorted). Drawn with NumPy on the host from the fitted parameters (the
        result is a NumPy array anyway): no compilation for a new ``n_samples``, memory O(n D).
        The generator is seeded from the estimator's JAX key (``random_state``), so an int
        ``random_state`` gives the same draws on every call. Returned in the fitted dtype.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            # scikit-learn's message (which prints n_components where it means n_samples)
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r} . The sampling requires at least one sample."
            )
        rng = numpy_rng(key_from(self.random_state, salt=1))
        weights = self.weights_.astype(np.float64)
        counts = rng.multinomial(int(n_samples), weights / weights.sum())
        cov = self.covariances_.astype(np.float64)
        means = self.means_.astype(np.float64)
        ct, d = self.covariance_type, means.shape[1]
        parts = []
        for k, c in enumerate(counts):
            z = rng.standard_normal((int(c), d))
            if ct == "full":
                x = z @ np.linalg.cholesky(cov[k]).T
            elif ct == "tied":
                x = z @ np.linalg.cholesky(cov).T
            else:  # diag (K, D) or spherical (K,)
                x = z * np.sqrt(cov[k])
            parts.append(means[k] + x)
        X = np.vstack(parts).astype(self.means_.dtype, copy=False)
        return X, np.repeat(np.arange(len(counts)), counts)

    def _n_parameters(self) -> int:
        return G.n_parameters(self.params_)

    @in_fitted_dtype
    def bic(self, X):
        """Bayesian information criterion on X (lower is better)."""
        X = self._validate_X(X, reset=False)
        return -2 * float(np.sum(self.score_samples(X))) + self._n_parameters() * math.log(X.shape[0])

    @in_fitted_dtype
    def aic(self, X):
        """Akaike information criterion on X (lower is better)."""
        X = self._validate_X(X, reset=False)
        return -2 * float(np.sum(self.score_samples(X))) + 2 * self._n_parameters()
