"""jaxgen: generative modelling from first principles in JAX.

Pure functions over explicit parameter pytrees live in :mod:`jaxgen.models`; scikit-learn-style
estimators over them are re-exported here.
"""
__version__ = "0.1.0"

from jaxgen.estimators import GaussianMixture, PPCA  # noqa: E402

__all__ = ["GaussianMixture", "PPCA", "__version__"]
