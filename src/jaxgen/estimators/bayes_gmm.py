"""``jaxgen.BayesianGaussianMixture``: the number of clusters inferred by a sparse Dirichlet prior.

scikit-learn's ``BayesianGaussianMixture`` contract (with ``weight_concentration_prior_type =
"dirichlet_distribution"``, full covariances) over :mod:`jaxgen.models.bayes_gmm`, with two
inference methods: ``inference="vb"`` (closed-form variational Bayes, jit-compiled) and
``inference="nuts"`` (NumPyro NUTS with the assignments marginalised).

Label switching: NUTS draws may permute components. ``predict``/``predict_proba`` align every
draw to the first by matching responsibilities on the training data (Hungarian assignment);
``score_samples``, the posterior over the number of occupied clusters and the co-clustering
matrix do not depend on labels at all.
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from jaxgen.models import bayes_gmm as _bg
from jaxgen.estimators._keys import key_from
from jaxgen.validation import check_choice, check_data, check_positive_float, check_positive_int

__all__ = ["BayesianGaussianMixture"]


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Bayesian GMM over ``n_components`` = K_max full-covariance components.

    Parameters (scikit-learn names): ``n_components`` K_max; ``weight_concentration_prior``
    alpha0 > 0 (None -> 1/K_max; small values switch unneeded components off);
    ``mean_precision_prior`` beta0 (None -> 1); ``mean_prior`` m0 (None -> data mean);
    ``degrees_of_freedom_prior`` nu0 > D - 1 (None -> D); ``covariance_prior`` W0^{-1} (D, D)
    positive definite (None -> data covariance); ``inference`` "vb" or "nuts"; ``max_iter``,
    ``tol`` (VB: stop when no expected cluster size N_k moves by more than tol * N); ``num_warmup``, ``num_samples``, ``num_chains`` (NUTS);
    ``random_state``.

    Fitted attributes: ``weights_ (K,)`` posterior mean weights, ``means_ (K, D)``,
    ``covariances_ (K, D, D)`` the inverse of the posterior mean precision E[Lambda_k]^{-1}
    (scikit-learn's convention; not E[Sigma_k], which is infinite for small clusters), ``n_occupied_probs_ (K + 1,)`` the posterior of
    the number of occupied clusters, ``n_clusters_`` its mode, ``converged_``, ``n_iter_``,
    ``lower_bound_`` (VB: final ELBO in nats), ``posterior_`` (VBPosterior or MixtureDraws),
    ``mcmc_`` (NUTS), ``n_features_in_``.
    """

    def __init__(
        self,
        n_components=6,
        *,
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        inference="vb",
        max_iter=500,
        tol=1e-5,
        num_warmup=500,
        num_samples=500,
        num_chains=1,
        random_state=None,
    ):
        self.n_components = n_components
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.inference = inference
        self.max_iter = max_iter
        self.tol = tol
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state

    def fit(self, X, y=None):
        """Infer the posterior from ``X (N, D)``; returns ``self``."""
        inference = check_choice(self.inference, "inference", {"vb", "nuts"})
        K = check_positive_int(self.n_components, "n_components")
        Xc = check_data(X, min_samples=2)
        prior = _bg.default_prior(
            Xc, n_components=K, alpha0=self.weight_concentration_prior,
            beta0=1.0 if self.mean_precision_prior is None else self.mean_precision_prior,
            nu0=self.degrees_of_freedom_prior, W0_inv=self.covariance_prior, m0=self.mean_prior,
        )
        key = key_from(self.random_state)
        k_fit, k_count = jax.random.split(key)
        Xj = jnp.asarray(Xc)
        if inference == "vb":
            post, info = _bg.fit_vb(k_fit, Xj, K, prior, max_iter=check_positive_int(self.max_iter, "max_iter"),
                                    tol=check_positive_float(self.tol, "tol", allow_zero=True))
            self.n_iter_ = int(info.n_iter)
            self.converged_ = bool(info.converged)
            self.lower_bound_ = float(np.asarray(info.elbo)[self.n_iter_ - 1])
            if not self.converged_:
                warnings.warn(f"VB did not converge in {self.max_iter} iterations; increase max_iter or tol.",
                              ConvergenceWarning, stacklevel=2)
            self.weights_ = np.asarray(_bg.expected_weights(post))
            self.means_ = np.asarray(post.m)
            W = np.asarray(post.W_chol @ jnp.swapaxes(post.W_chol, -1, -2))
            self.covariances_ = np.linalg.inv(W) / np.asarray(post.nu)[:, None, None]
            self.n_occupied_probs_ = np.asarray(_bg.occupied_clusters_vb(k_count, post, Xj))
        else:
            draws, mcmc = _bg.fit_nuts(
                k_fit, Xj, K, prior, num_warmup=check_positive_int(self.num_warmup, "num_warmup"),
                num_samples=check_positive_int(self.num_samples, "num_samples"),
                num_chains=check_positive_int(self.num_chains, "num_chains"),
            )
            draws = _align_draws(draws, Xj)
            self.mcmc_ = mcmc
            self.n_iter_ = int(self.num_warmup) + int(self.num_samples)
            self.converged_ = True
            self.lower_bound_ = float("nan")
            self.weights_ = np.asarray(jnp.mean(draws.weights, axis=0))
            self.means_ = np.asarray(jnp.mean(draws.means, axis=0))
            prec = draws.prec_chol @ jnp.swapaxes(draws.prec_chol, -1, -2)
            self.covariances_ = np.linalg.inv(np.asarray(jnp.mean(prec, axis=0)))  # as VB: inverse of E[Lambda]
            self.n_occupied_probs_ = np.asarray(_bg.occupied_clusters_draws(k_count, draws, Xj))
            post = draws
        self.posterior_ = post
        self.prior_ = prior
        self.n_clusters_ = int(np.argmax(self.n_occupied_probs_))
        self.n_features_in_ = Xc.shape[1]
        return self

    def _check(self, X):
        check_is_fitted(self)
        return jnp.asarray(check_data(X, n_features=self.n_features_in_, dtype=self.means_.dtype))

    def predict_proba(self, X):
        """Posterior cluster probabilities of new points, ``(N, K)``."""
        Xj = self._check(X)
        if self.inference == "vb":
            return np.asarray(_bg.vb_responsibilities(self.posterior_, Xj))
        return np.asarray(jnp.mean(_bg.draws_responsibilities(self.posterior_, Xj), axis=0))

    def predict(self, X):
        """Most probable cluster of each point, ``(N,)``."""
        return np.argmax(self.predict_proba(X), axis=1)

    def score_samples(self, X):
        """Posterior predictive log density of each point, ``(N,)`` (minus it is an outlier score)."""
        Xj = self._check(X)
        if self.inference == "vb":
            return np.asarray(_bg.predictive_log_prob(self.posterior_, Xj))
        return np.asarray(_bg.draws_log_prob(self.posterior_, Xj))

    def score(self, X, y=None):
        """Mean posterior predictive log density."""
        return float(np.mean(self.score_samples(X)))

    def co_clustering(self, X):
        """P(x_i and x_j in the same cluster), ``(N, N)``; label-invariant."""
        Xj = self._check(X)
        if self.inference == "vb":
            return np.asarray(_bg.co_clustering(_bg.vb_responsibilities(self.posterior_, Xj)))
        return np.asarray(_bg.co_clustering(_bg.draws_responsibilities(self.posterior_, Xj)))

    def sample(self, n_samples=1):
        """Draw ``(X (n, D), labels (n,))`` from the posterior predictive (seeded by ``random_state``)."""
        check_is_fitted(self)
        n = check_positive_int(n_samples, "n_samples")
        key = key_from(self.random_state, salt=1)
        if self.inference == "vb":
            x, z = _bg.sample_predictive(key, self.posterior_, n)
        else:
            x, z = _bg.sample_draws(key, self.posterior_, n)
        return np.asarray(x), np.asarray(z)


def _align_draws(draws: _bg.MixtureDraws, X: jax.Array) -> _bg.MixtureDraws:
    """Permute each draw's components to agree best with the first draw (Hungarian matching on the
    co-assignment of the training points), so that per-component averages are meaningful."""
    resp = np.asarray(_bg.draws_responsibilities(draws, X))  # (S, N, K)
    ref = resp[0]
    perms = np.stack([linear_sum_assignment(-(ref.T @ r))[1] for r in resp])  # perms[s][k] = draw-s label of ref k
    take = lambda a: jnp.take_along_axis(a, jnp.asarray(perms).reshape(perms.shape + (1,) * (a.ndim - 2)), axis=1)
    return _bg.MixtureDraws(weights=take(draws.weights), means=take(draws.means), prec_chol=take(draws.prec_chol))
