"""``jaxgen.PPCA``: probabilistic PCA with the scikit-learn estimator contract.

A thin NumPy-boundary wrapper over :mod:`jaxgen.models.ppca`; attributes mirror
``sklearn.decomposition.PCA`` so that code written for one reads the other. Differences from
scikit-learn's ``PCA``, on purpose:

* ``ddof=0`` by default (the maximum-likelihood covariance, dividing by N); ``ddof=1`` gives
  scikit-learn's numbers (``score_samples``, ``get_covariance``, ``explained_variance_``).
* ``n_components=None`` keeps ``D - 1`` components (scikit-learn keeps all D): with q = D the ML
  noise variance is 0 and the density degenerates; one discarded direction keeps it proper.
* ``transform`` returns the posterior mean ``E[z | x] = M^{-1} W^T (x - mu)``, the PPCA latent,
  not the orthogonal projection onto ``components_``; ``inverse_transform(z) = W z + mu``.
* ``method="em"`` accepts NaN entries as missing values in ``fit`` and ``transform`` (posterior
  given the observed coordinates); ``score_samples`` of a row with NaN (either method) is the log
  density of its observed coordinates.

dtype: float64 data are fitted in float64 (a local ``jax.enable_x64``) and every method of that
fit computes and returns float64; float32 (and integer) data run in float32, the fast path.
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, DensityMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from jaxgen.models import ppca as _ppca
from jaxgen.estimators._keys import key_from
from jaxgen.padding import power_of_two_at_least
from jaxgen.estimators._fitted import FittedStateMixin, in_fitted_dtype
from jaxgen.estimators._precision import computing_in, input_dtype
from jaxgen.validation import check_choice, check_data, check_positive_float, check_positive_int

__all__ = ["PPCA"]


@jax.jit
def _summaries(params: _ppca.PPCAParams):
    """components (q, D), explained variances (q,), trace of C: everything derived from W at once."""
    U, s, _ = jnp.linalg.svd(params.W, full_matrices=False)
    U = _ppca._flip_sign(U)
    ev = s**2 + params.sigma2
    total = jnp.sum(s**2) + params.W.shape[0] * params.sigma2
    return U.T, ev, total


@jax.jit
def _precision(params: _ppca.PPCAParams):
    """C^{-1} = U diag(1/ev) U^T + (I - U U^T) / sigma2, without inverting a D x D matrix."""
    U, ev = _ppca._eig_parts(params)
    D = params.W.shape[0]
    eye = jnp.eye(D, dtype=U.dtype)
    return (U / ev) @ U.T + (eye - U @ U.T) / params.sigma2


def _to_jax(arr: np.ndarray) -> jax.Array:
    """Zero-copy when ``arr`` is suitably aligned. Safe here because every method turns its result
    into NumPy (waiting for the computation) before returning, so the caller cannot mutate ``arr``
    while JAX still reads it, and no JAX view of user data is kept."""
    return jax.device_put(arr, may_alias=True)


def _bucket(n: int) -> int:
    """Rows to draw for a request of n: the next power of two, at least 256, so that distinct
    sizes share a few compiled programs (the draws are i.i.d., the first n rows are a sample)."""
    return power_of_two_at_least(n, 256)


def _reject_sparse(X) -> None:
    if sp.issparse(X):
        raise ValueError("PPCA does not support sparse input (the model is dense); convert it with X.toarray().")


class PPCA(FittedStateMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseEstimator):
    """Probabilistic PCA (Tipping & Bishop 1999) fitted by closed-form ML or EM.

    Parameters:
      n_components: latent dimension q (1 <= q <= D); None -> D - 1 (1 when D = 1).
      method: ``"ml"`` closed form (eigen-decomposition of the covariance) or ``"em"`` (EM; the only
        one that accepts NaN as missing entries).
      ddof: the covariance divides by N - ddof (``"ml"`` only; 0 = MLE, 1 = scikit-learn's PCA).
      max_iter, tol: EM stopping rule (``|delta L| <= tol |L|``, L mean per-sample log-likelihood);
        see :func:`jaxgen.models.ppca.fit_em` (complete data: EM plus an exact rescaling step).
      random_state: int / RandomState / None; seeds EM's initial loadings and :meth:`sample`.

    float64 data are fitted and answered in float64, the rest in float32.

    Fitted attributes: ``components_ (q, D)`` orthonormal rows spanning the principal subspace
    (largest entry of each row positive), ``explained_variance_ (q,)`` (variance of C along each
    component), ``explained_variance_ratio_``, ``singular_values_``, ``mean_ (D,)``,
    ``noise_variance_``, ``W_ (D, q)``, ``n_components_``, ``n_features_in_``, ``n_samples_``,
    ``params_`` (:class:`jaxgen.models.ppca.PPCAParams`), ``n_iter_`` (EM iterations; 1 for the
    closed form, one eigen-decomposition), ``converged_`` (always True for the closed form), and
    for EM ``log_likelihood_`` (history of mean per-sample log-likelihoods).
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        method: str = "ml",
        ddof: int = 0,
        max_iter: int = 500,
        tol: float = 1e-6,
        random_state=None,
    ):
        self.n_components = n_components
        self.method = method
        self.ddof = ddof
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Fit to ``X (N, D)`` (in float64 when X holds float64 numbers); returns ``self``."""
        with computing_in(input_dtype(X)):
            return self._fit(X)

    def _fit(self, X):
        method = check_choice(self.method, "method", {"ml", "em"})
        _reject_sparse(X)
        ddof = check_positive_int(self.ddof, "ddof", minimum=0)
        if method == "em" and ddof != 0:
            raise ValueError(f"ddof={ddof} applies to method='ml' only; EM always fits the MLE (ddof=0).")
        # the closed form finds NaN/inf from the scatter it computes anyway: no pass over X here
        Xc = check_data(X, allow_nan=(method == "em"), min_samples=max(2, ddof + 1), finite=(method == "em"))
        if method == "em":  # the closed form checks for constant data itself, without another pass
            Xc = _ppca._check_not_constant(Xc)
        N, D = Xc.shape
        q = (D - 1 if D > 1 else 1) if self.n_components is None else _ppca._check_q(self.n_components, D)
        if method == "ml":
            try:
                params = _ppca._fit_ml_validated(Xc, q, ddof, finite_checked=False)
            except ValueError as e:
                if "NaN" in str(e) and "inf" not in str(e):
                    hint = "PPCA(method='ml') needs complete data; use method='em' for missing values."
                    raise ValueError(f"{e} {hint}") from e
                raise
            self.n_iter_, self.converged_ = 1, True  # one eigen-decomposition, exact
        else:
            max_iter = check_positive_int(self.max_iter, "max_iter")
            tol = check_positive_float(self.tol, "tol", allow_zero=True)
            params, info = _ppca.fit_em(Xc, q, key=key_from(self.random_state), max_iter=max_iter, tol=tol)
            self.n_iter_ = int(info.n_iter)
            self.converged_ = bool(info.converged)
            self.log_likelihood_ = np.asarray(info.log_likelihood)[: self.n_iter_]
            if not self.converged_:
                warnings.warn(
                    f"PPCA EM did not converge in {max_iter} iterations (tol={tol}); increase max_iter or tol.",
                    ConvergenceWarning,
                    stacklevel=2,
                )
        self._set_attributes(params, N, D, ddof)
        return self

    def _set_attributes(self, params, N: int, D: int, ddof: int) -> None:
        comps, ev, total = _summaries(params)
        self.params_ = params
        self.components_ = np.asarray(comps)
        self.explained_variance_ = np.asarray(ev)
        self.explained_variance_ratio_ = self.explained_variance_ / float(total)
        self.singular_values_ = np.sqrt(self.explained_variance_ * (N - ddof))
        self.mean_ = np.asarray(params.mu)
        self.W_ = np.asarray(params.W)
        self.noise_variance_ = float(params.sigma2)
        self.n_components_ = int(params.W.shape[1])
        self.n_features_in_ = D
        self.n_samples_ = N

    @property
    def _n_features_out(self):  # for get_feature_names_out (ppca0, ppca1, ...)
        return self.n_components_

    # ------------------------------------------------------------------ inference
    def _check(self, X, *, allow_nan=False, latent=False) -> tuple[jax.Array, bool]:
        """Validated JAX view of data ``X (N, D)`` (or of latents ``(N, q)`` when ``latent``) and
        whether it holds NaN."""
        check_is_fitted(self)
        _reject_sparse(X)
        if latent:
            arr = check_data(X, name="Z (latents)", n_features=self.n_components_, dtype=self.params_.mu.dtype)
        else:  # scikit-learn's message for a wrong feature count
            arr = check_data(X, allow_nan=allow_nan, n_features=self.n_features_in_, dtype=self.params_.mu.dtype,
                             estimator=self)
        has_nan = allow_nan and bool(np.isnan(arr.min()))  # min propagates NaN; no (N, D) temporary
        return _to_jax(arr), has_nan

    @in_fitted_dtype
    def transform(self, X):
        """Posterior mean of the latents, ``(N, q)``; NaN entries (method="em" only) are left out of
        the posterior of their row."""
        Xj, has_nan = self._check(X, allow_nan=self.method == "em")
        mean, _ = (_ppca._encode_observed if has_nan else _ppca._encode)(self.params_, Xj)  # Xj validated by _check
        return np.asarray(mean)

    @in_fitted_dtype
    def inverse_transform(self, X):
        """Map latents ``(N, q)`` back to data space: ``W z + mu``, ``(N, D)``."""
        Z, _ = self._check(X, latent=True)
        return np.asarray(Z @ self.params_.W.T + self.params_.mu)

    @in_fitted_dtype
    def score_samples(self, X):
        """Log-likelihood of each sample, ``(N,)``; NaN entries are marginalised out."""
        Xj, has_nan = self._check(X, allow_nan=True)
        # Xj is validated by _check: the jitted kernels directly (the public functions would check it again)
        return np.asarray((_ppca._log_prob_observed if has_nan else _ppca._log_prob)(self.params_, Xj))

    def score(self, X, y=None):
        """Mean log-likelihood of the samples (what ``GridSearchCV`` maximises)."""
        return float(np.mean(self.score_samples(X)))

    @in_fitted_dtype
    def sample(self, n_samples: int = 1):
        """Draw from the fitted model: returns ``(X (n_samples, D), Z (n_samples, q))``.

        Seeded by ``random_state`` (an int gives the same draws on every call, like scikit-learn's
        mixtures). Drawn in power-of-two batches (:func:`_bucket`), so that a new ``n_samples``
        rarely compiles a new program."""
        n = check_positive_int(n_samples, "n_samples")
        x, z = _ppca.sample(key_from(self.random_state, salt=1), self.params_, _bucket(n))
        return np.asarray(x)[:n], np.asarray(z)[:n]  # sliced on the host: no program per n

    @in_fitted_dtype
    def get_covariance(self):
        """Marginal covariance ``W W^T + sigma2 I``, ``(D, D)``."""
        check_is_fitted(self)
        return np.asarray(_ppca.covariance(self.params_))

    @in_fitted_dtype
    def get_precision(self):
        """Inverse of :meth:`get_covariance` (computed from the low-rank structure), ``(D, D)``."""
        check_is_fitted(self)
        return np.asarray(_precision(self.params_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.method == "em"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # float64 data: computed in float64
        return tags
