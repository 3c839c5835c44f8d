"""jaxgen: generative modelling from first principles in JAX.

Pure functions over explicit parameter pytrees live in :mod:`jaxgen.models` (one module per
family); scikit-learn-style estimators over them live in :mod:`jaxgen.estimators` and are
re-exported here. Everything is imported lazily, on first attribute access, so that
``import jaxgen.data`` does not pay for scikit-learn and ``jaxgen --version`` not for JAX;
``dir(jaxgen)`` lists what is available all the same.
"""
import importlib as _importlib
import pkgutil as _pkgutil

__version__ = "0.1.0"

_ESTIMATORS = {
    "GaussianMixture": "jaxgen.estimators.gmm",
    "PPCA": "jaxgen.estimators.ppca",
    "StudentTPCA": "jaxgen.estimators.tpca",
    "BayesianGaussianMixture": "jaxgen.estimators.bayes_gmm",
}
# Public subpackages and modules, reachable as attributes (``jaxgen.models.gmm`` after ``import jaxgen``).
_SUBMODULES = tuple(sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

__all__ = [*_ESTIMATORS, "__version__"]


def __getattr__(name):
    if name in _ESTIMATORS:
        return getattr(_importlib.import_module(_ESTIMATORS[name]), name)
    if name in _SUBMODULES:
        return _importlib.import_module(f"jaxgen.{name}")  # also sets the attribute on the package
    raise AttributeError(f"module 'jaxgen' has no attribute {name!r}")


def __dir__():
    return sorted({*__all__, *_SUBMODULES})
