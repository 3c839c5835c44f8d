"""scikit-learn-style estimators over the pure model functions (fit / predict / score_samples ...)."""
from jaxgen.estimators.gmm import GaussianMixture
from jaxgen.estimators.ppca import PPCA

__all__ = ["GaussianMixture", "PPCA"]
