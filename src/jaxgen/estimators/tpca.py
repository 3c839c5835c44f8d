"""``jaxgen.StudentTPCA``: robust PCA with a Student-t likelihood, scikit-learn contract.

A NumPy-boundary wrapper over :mod:`jaxgen.models.tpca` (EM point estimate), with the same
attributes as :class:`jaxgen.PPCA` so that one can be swapped for the other. ``C = W W^T + sigma2 I``
is the *scale* matrix of the t distribution; its covariance is ``nu / (nu - 2) C`` for nu > 2, so
``explained_variance_`` holds eigenvalues of C (variances of the t are nu / (nu - 2) times larger).

dtype: float64 data are fitted in float64 (a local ``jax.enable_x64``) and every method of that
fit computes and returns float64; float32 (and integer) data run in float32, the fast path.
"""
from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, DensityMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from jaxgen.estimators._precision import computing_in, input_dtype
from jaxgen.estimators._fitted import FittedStateMixin, in_fitted_dtype
from jaxgen.estimators.ppca import _bucket, _summaries
from jaxgen.models import ppca as _ppca
from jaxgen.models import tpca as _tpca
from jaxgen.estimators._keys import key_from
from jaxgen.validation import check_data, check_positive_float, check_positive_int

__all__ = ["StudentTPCA"]


class StudentTPCA(FittedStateMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Student-t probabilistic PCA (Archambeau, Delannay & Verleysen 2006) fitted by EM.

    Parameters:
      n_components: latent dimension q, 1 <= q < D; None -> D - 1.
      nu: degrees of freedom (initial value when ``learn_nu``); must be > 0.
      learn_nu: estimate nu (default) or keep it fixed.
      nu_max: upper bound of the learnt nu (default 1000, :data:`jaxgen.models.tpca.NU_MAX`). On
        Gaussian data the likelihood keeps increasing with nu: the fit then stops at the bound,
        converged, with ``looks_gaussian_ = True`` (PPCA describes such data as well).
      max_iter, tol: EM stops when an iteration changes the parameters by less than ``tol`` (relative).
      random_state: seeds :meth:`sample`.

    Fitted attributes: as :class:`jaxgen.PPCA` (``components_``, ``explained_variance_``,
    ``explained_variance_ratio_``, ``mean_``, ``noise_variance_``, ``W_``, ``n_components_``,
    ``n_features_in_``, ``n_samples_``, ``params_``) plus ``nu_``, ``weights_ (N,)`` the
    expected precision scales <u_n> of the training points (small = outlier), ``n_iter_``,
    ``converged_``, ``log_likelihood_``, ``looks_gaussian_`` (nu was learnt and ended at ``nu_max``).
    """

    def __init__(self, n_components=None, *, nu=10.0, learn_nu=True, nu_max=_tpca.NU_MAX, max_iter=500, tol=1e-5,
                 random_state=None):
        self.n_components = n_components
        self.nu = nu
        self.learn_nu = learn_nu
        self.nu_max = nu_max
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit to ``X (N, D)`` (in float64 when X holds float64 numbers); returns ``self``."""
        with computing_in(input_dtype(X)):
            return self._fit(X)

    def _fit(self, X):
        Xc = check_data(X, min_samples=2)
        N, D = Xc.shape
        if D < 2:
            raise ValueError(
                f"StudentTPCA needs at least 2 features (a subspace of lower dimension), got n_features = {D}."
            )
        q = D - 1 if self.n_components is None else self.n_components
        params, info = _tpca.fit_em(
            Xc, q, nu=check_positive_float(self.nu, "nu"), learn_nu=bool(self.learn_nu),
            max_iter=check_positive_int(self.max_iter, "max_iter"),
            tol=check_positive_float(self.tol, "tol", allow_zero=True),
            nu_max=check_positive_float(self.nu_max, "nu_max"),
        )
        self.n_iter_ = int(info.n_iter)
        self.converged_ = bool(info.converged)
        self.looks_gaussian_ = bool(info.nu_at_bound)
        self.log_likelihood_ = np.asarray(info.log_likelihood)[: self.n_iter_]
        if not self.converged_:
            warnings.warn(
                f"StudentTPCA EM did not converge in {self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or tol.", ConvergenceWarning, stacklevel=2,
            )
        comps, ev, total = _summaries(_ppca.PPCAParams(mu=params.mu, W=params.W, sigma2=params.sigma2))
        self.params_ = params
        self.components_ = np.asarray(comps)
        self.explained_variance_ = np.asarray(ev)
        self.explained_variance_ratio_ = self.explained_variance_ / float(total)
        self.mean_ = np.asarray(params.mu)
        self.W_ = np.asarray(params.W)
        self.noise_variance_ = float(params.sigma2)
        self.nu_ = float(params.nu)
        self.n_components_ = int(params.W.shape[1])
        self.n_features_in_ = D
        self.n_samples_ = N
        self.weights_ = np.asarray(_tpca.weights(params, jnp.asarray(Xc)))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # float64 data: computed in float64
        return tags

    @property
    def _n_features_out(self):
        return self.n_components_

    def _check(self, X, latent=False):
        """Validated data ``X (N, D)`` (latents ``(N, q)`` when ``latent``) as a JAX array."""
        check_is_fitted(self)
        if latent:
            return jnp.asarray(check_data(X, name="Z (latents)", n_features=self.n_components_, dtype=self.params_.mu.dtype))
        return jnp.asarray(check_data(X, n_features=self.n_features_in_, dtype=self.params_.mu.dtype, estimator=self))

    @in_fitted_dtype
    def transform(self, X):
        """Posterior mean of the latents, ``(N, q)``."""
        return np.asarray(_tpca.encode(self.params_, self._check(X))[0])

    @in_fitted_dtype
    def inverse_transform(self, Z):
        """``W z + mu``, ``(N, D)``."""
        Z = self._check(Z, latent=True)
        return np.asarray(Z @ self.params_.W.T + self.params_.mu)

    @in_fitted_dtype
    def score_samples(self, X):
        """Exact multivariate-t log density of each sample, ``(N,)``."""
        return np.asarray(_tpca.log_prob(self.params_, self._check(X)))

    def score(self, X, y=None):
        """Mean log-likelihood of the samples."""
        return float(np.mean(self.score_samples(X)))

    @in_fitted_dtype
    def outlier_weights(self, X):
        """Expected precision scales <u_n> of new points, ``(N,)``: near 1 inliers, near 0 outliers."""
        return np.asarray(_tpca.weights(self.params_, self._check(X)))

    @in_fitted_dtype
    def sample(self, n_samples: int = 1):
        """Draw ``(X (n, D), Z (n, q))`` from the fitted model (seeded by ``random_state``; drawn
        in power-of-two batches, so that a new ``n_samples`` rarely compiles a new program)."""
        n = check_positive_int(n_samples, "n_samples")
        x, z, _ = _tpca.sample(key_from(self.random_state, salt=1), self.params_, _bucket(n))
        return np.asarray(x)[:n], np.asarray(z)[:n]

    def get_covariance(self):
        """Covariance ``nu/(nu-2) (W W^T + sigma2 I)``, ``(D, D)``; raises if nu <= 2 (infinite)."""
        check_is_fitted(self)
        if self.nu_ <= 2:
            raise ValueError(f"the fitted nu = {self.nu_:.3g} <= 2: the covariance of the t distribution is infinite.")
        C = self.W_ @ self.W_.T + self.noise_variance_ * np.eye(self.n_features_in_, dtype=self.W_.dtype)
        return (self.nu_ / (self.nu_ - 2.0) * C).astype(self.W_.dtype)
