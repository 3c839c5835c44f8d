"""What every jaxgen estimator does with its fitted state: compute in the fitted dtype, pickle it.

* :func:`in_fitted_dtype` runs a method of a fitted estimator under the dtype rule of
  :mod:`jaxgen.estimators._precision` (float64 fits answer in float64, with ``jax_enable_x64`` off).
* :class:`FittedStateMixin` pickles the JAX arrays among the fitted attributes as NumPy arrays and
  restores them as JAX arrays of the same dtype: a float64 JAX array unpickled while
  ``jax_enable_x64`` is off would otherwise come back as float32, and the unpickled estimator
  would no longer give the original's answers.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.utils.validation import check_is_fitted

from jaxgen.estimators._precision import computing_in

__all__ = ["in_fitted_dtype", "FittedStateMixin"]


def in_fitted_dtype(method):
    """Decorator: check that the estimator is fitted, then run ``method`` in the dtype of the fitted
    attribute named by the class attribute ``_dtype_attr`` (float64 or float32)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        check_is_fitted(self)
        with computing_in(getattr(self, self._dtype_attr).dtype):
            return method(self, *args, **kwargs)
    return wrapper


def _is_jax(a) -> bool:
    return isinstance(a, jax.Array)


class FittedStateMixin:
    """Pickle support for estimators whose fitted attributes hold JAX arrays (or pytrees of them)."""

    _dtype_attr = "mean_"

    def __getstate__(self):
        state = super().__getstate__()
        jax_attrs = [k for k, v in state.items() if any(_is_jax(a) for a in jax.tree.leaves(v))]
        for k in jax_attrs:
            state[k] = jax.tree.map(lambda a: np.asarray(a) if _is_jax(a) else a, state[k])
        state["_jax_attrs"] = jax_attrs
        return state

    def __setstate__(self, state):
        state = dict(state)
        jax_attrs = state.pop("_jax_attrs", [])
        for k in jax_attrs:
            x64 = any(getattr(a, "dtype", None) in (np.float64, np.int64) for a in jax.tree.leaves(state[k]))
            with computing_in(np.float64 if x64 else np.float32):
                state[k] = jax.tree.map(lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a, state[k])
        super().__setstate__(state)
