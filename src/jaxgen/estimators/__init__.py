"""scikit-learn-style estimators over the pure model functions (fit / predict / score_samples ...)."""
import importlib as _importlib

_NAMES = {
    "GaussianMixture": "jaxgen.estimators.gmm",
    "PPCA": "jaxgen.estimators.ppca",
    "StudentTPCA": "jaxgen.estimators.tpca",
    "BayesianGaussianMixture": "jaxgen.estimators.bayes_gmm",
}

__all__ = list(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(_importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'jaxgen.estimators' has no attribute {name!r}")


def __dir__():
    return sorted(_NAMES)
