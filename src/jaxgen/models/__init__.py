"""Pure-function generative models: one module per family (parameters are explicit pytrees).

Families: :mod:`~jaxgen.models.ppca` (probabilistic PCA), :mod:`~jaxgen.models.tpca` (Student-t
PCA), :mod:`~jaxgen.models.gmm` (Gaussian mixtures, EM), :mod:`~jaxgen.models.bayes_gmm` (Bayesian
Gaussian mixtures, VB and NUTS), :mod:`~jaxgen.models.vae` (variational autoencoders),
:mod:`~jaxgen.models.gan` (generative adversarial networks and their trainer). Each is
imported on first access, so ``import jaxgen.models`` then ``jaxgen.models.gmm`` works and costs
only the family used.
"""
import importlib as _importlib
import pkgutil as _pkgutil

# Every public module or subpackage in this folder is a family (a new file joins automatically).
FAMILIES = tuple(sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

__all__ = list(FAMILIES)


def __getattr__(name):
    if name in FAMILIES:
        return _importlib.import_module(f"jaxgen.models.{name}")
    raise AttributeError(f"module 'jaxgen.models' has no attribute {name!r}; families: {', '.join(FAMILIES)}")


def __dir__():
    return sorted({*FAMILIES, "FAMILIES"})
