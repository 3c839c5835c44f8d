"""jaxgen: generative modelling from first principles in JAX.

Pure functions over explicit parameter pytrees live in :mod:`jaxgen.models` (one module per
family); scikit-learn-style estimators over them live in :mod:`jaxgen.estimators` and are
re-exported here lazily, so that ``import jaxgen.data`` does not pay for scikit-learn.
"""
import importlib

__version__ = "0.1.0"

_ESTIMATORS = {
    "GaussianMixture": "jaxgen.estimators.gmm",
    "PPCA": "jaxgen.estimators.ppca",
    "StudentTPCA": "jaxgen.estimators.tpca",
    "BayesianGaussianMixture": "jaxgen.estimators.bayes_gmm",
}

__all__ = [*_ESTIMATORS, "__version__"]


def __getattr__(name):
    if name in _ESTIMATORS:
        return getattr(importlib.import_module(_ESTIMATORS[name]), name)
    raise AttributeError(f"module 'jaxgen' has no attribute {name!r}")
