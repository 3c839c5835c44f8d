"""Input checks shared by every model: one place that turns bad input into a clear ``ValueError``.

Every public entry point (pure functions that take user data, and the estimators) calls these
before touching JAX, so that a wrong shape, a NaN or a bad hyperparameter fails early with a
message that says what is wrong and how to fix it, instead of deep inside a jitted function.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

__all__ = ["check_data", "check_positive_int", "check_int_tuple", "check_positive_float", "check_choice", "check_key",
           "float_dtype"]


def float_dtype(dtype=None) -> np.dtype:
    """The floating dtype to compute in: float64 only when JAX runs with ``jax_enable_x64``.

    Integer or bool input is promoted to the default float; float64 input falls back to float32
    when x64 is off (JAX would silently do the same; we make it explicit).
    """
    x64 = bool(jax.config.jax_enable_x64)
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        dtype = np.dtype(dtype)
        if dtype == np.float64 and not x64:
            return np.dtype(np.float32)
        if dtype in (np.dtype(np.float16),):
            return np.dtype(np.float32)
        return dtype
    return np.dtype(np.float64 if x64 else np.float32)


def check_data(
    X,
    *,
    name: str = "X",
    ndim: int = 2,
    allow_nan: bool = False,
    min_samples: int = 1,
    n_features: int | None = None,
    dtype=None,
    estimator=None,
    finite: bool = True,
):
    """Validate user data and return it as a float array, where it already lives.

    NumPy-like input (lists, NumPy arrays, DataFrames) is checked on the host and returned as a
    NumPy array. A ``jax.Array`` is never copied to the host: its shape and dtype are read from
    its metadata, its values are checked by reductions on its own devices that bring back one
    scalar each, and it is returned as a ``jax.Array`` with the same devices and sharding (cast on
    the device when its dtype differs). Under ``jit`` (a tracer) only shape and dtype are checked.

    Args:
      X: array-like of shape (N, D) (or (N,) when ``ndim == 1``).
      name: how the array is called in error messages.
      ndim: required number of dimensions. A 1-D array passed where 2-D is required is rejected
        (scikit-learn's convention) with a hint to reshape.
      allow_nan: accept NaN as "missing" (inf is never accepted).
      min_samples: the least number of rows.
      n_features: when given, the required number of columns (e.g. the count seen at fit time).
      dtype: computation dtype; default from :func:`float_dtype` of the input.
      estimator: the fitted estimator (or its class name) that checks ``n_features``: the error
        then reads as scikit-learn's, "X has 3 features, but GaussianMixture is expecting 4
        features as input."
      finite: ``False`` skips the scan for NaN/inf of NumPy input (a full pass over X) for a caller
        that detects them from a result they poison and then calls ``check_data`` again for the
        message (PPCA's closed form: the diagonal of the scatter). JAX input is always checked.

    Returns:
      ``np.ndarray`` (NumPy-like input) or ``jax.Array`` (JAX input) of shape (N, D), float dtype.

    Raises:
      ValueError: non-numeric data, wrong rank, too few rows, NaN/inf, wrong feature count.
      TypeError: an object array holding an entry that is not a number (e.g. a dict), as
        scikit-learn raises.
    """
    if scipy.sparse.issparse(X):
        raise ValueError(f"{name} is a sparse matrix; sparse input is not supported: pass {name}.toarray().")
    if isinstance(X, jax.Array):
        return _check_jax_data(X, name, ndim, allow_nan, min_samples, n_features, dtype, estimator)
    try:
        arr = np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {e}") from e
    if arr.dtype == object:  # e.g. a DataFrame of mixed numeric columns: numeric if every entry is
        arr = _object_to_float(arr, name)
    _check_kind(arr.dtype, name)
    _check_shape(arr.shape, name, ndim, min_samples, n_features, estimator)
    out_dtype = float_dtype(dtype if dtype is not None else arr.dtype)
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > np.dtype(out_dtype).itemsize:
        big = np.abs(arr[np.isfinite(arr)]).max(initial=0.0)
        _check_range(float(big), name, out_dtype)
    arr = arr.astype(out_dtype, copy=False)
    if finite and not np.isfinite(arr).all():
        _raise_not_finite(int(np.isnan(arr).sum()), int(np.isinf(arr).sum()), name, allow_nan)
    return arr


def _object_to_float(arr: np.ndarray, name: str) -> np.ndarray:
    """An object array as float64: ValueError for strings, TypeError for other non-numbers
    (scikit-learn's behaviour: a dict in the data is a type error, not a bad value)."""
    try:
        return arr.astype(np.float64)
    except TypeError as e:
        raise TypeError(
            f"{name} must be numeric, but it holds an entry that is not a number: {e}. Encode those columns first."
        ) from e
    except ValueError as e:
        raise ValueError(
            f"{name} must be numeric, but it holds non-numeric entries ({e}). Encode those columns first."
        ) from e


def _check_kind(dtype, name: str) -> None:
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {dtype}; pass real values.")
    if not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise ValueError(
            f"{name} must be numeric, got dtype {dtype}. Convert it with np.asarray({name}, dtype=float) "
            "after encoding any non-numeric columns."
        )


def _check_shape(shape, name: str, ndim: int, min_samples: int, n_features, estimator) -> None:
    if len(shape) != ndim:
        hint = ""
        if ndim == 2 and len(shape) == 1:
            hint = (" Reshape your data either using X.reshape(-1, 1) if it has a single feature or "
                    "X.reshape(1, -1) if it contains a single sample.")
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {tuple(shape)}.{hint}")
    if shape[0] < min_samples:
        raise ValueError(
            f"{name} has {shape[0]} sample(s), but at least {min_samples} are needed"
            + (" (empty data)." if shape[0] == 0 else ".")
        )
    if ndim == 2 and shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required.")
    if n_features is not None and ndim == 2 and shape[1] != n_features:
        if estimator is not None:  # scikit-learn's wording, word for word
            who = estimator if isinstance(estimator, str) else type(estimator).__name__
            raise ValueError(f"X has {shape[1]} features, but {who} is expecting {n_features} features as input.")
        raise ValueError(
            f"{name} has {shape[1]} features, but the model is expecting {n_features} features as input: "
            f"it was fitted with {n_features} features."
        )


def _check_range(big: float, name: str, out_dtype) -> None:
    if big > float(np.finfo(out_dtype).max):
        raise ValueError(
            f"{name} has finite values up to {big:.3g}, beyond the {np.dtype(out_dtype)} range. Rescale the data, "
            "or enable float64 with jax.config.update('jax_enable_x64', True)."
        )


def _raise_not_finite(n_nan: int, n_inf: int, name: str, allow_nan: bool) -> None:
    if n_inf or (n_nan and not allow_nan):
        what = ", ".join(s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if s)
        extra = "" if allow_nan else (" Remove or impute them first (missing values are supported only where "
                                       "documented, e.g. PPCA's EM).")
        raise ValueError(f"{name} contains {what} value(s); all entries must be finite.{extra}")


def _check_jax_data(X: jax.Array, name, ndim, allow_nan, min_samples, n_features, dtype, estimator) -> jax.Array:
    """:func:`check_data` for a ``jax.Array``: metadata checks, then one-scalar reductions on the
    array's own devices (nothing of size N is copied to the host; the sharding is kept)."""
    _check_kind(np.dtype(X.dtype) if not jax.dtypes.issubdtype(X.dtype, jax.dtypes.prng_key) else np.dtype(object), name)
    _check_shape(X.shape, name, ndim, min_samples, n_features, estimator)
    out_dtype = float_dtype(dtype if dtype is not None else X.dtype)
    traced = isinstance(X, jax.core.Tracer)
    if not traced and jnp.issubdtype(X.dtype, jnp.floating) and X.dtype.itemsize > np.dtype(out_dtype).itemsize:
        _check_range(float(jnp.max(jnp.abs(jnp.where(jnp.isfinite(X), X, 0)), initial=0)), name, out_dtype)
    if X.dtype != out_dtype:
        X = X.astype(out_dtype)
    if not traced and not bool(jnp.all(jnp.isfinite(X))):
        _raise_not_finite(int(jnp.sum(jnp.isnan(X))), int(jnp.sum(jnp.isinf(X))), name, allow_nan)
    return X


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_int_tuple(value, name: str, *, minimum: int = 1) -> tuple:
    """Return ``value`` (a sequence of integers, or one integer for a 1-tuple) as a tuple of ints,
    each >= ``minimum``; raise ``ValueError`` otherwise (no silent truncation of floats). For the
    layer widths and shapes of frozen config dataclasses: hashable, JSON-able as lists."""
    seq = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        seq = tuple(seq)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers >= {minimum}, got {value!r}.") from None
    return tuple(check_positive_int(v, f"{name} entries", minimum=minimum) for v in seq)


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and > 0 (>= 0 if allowed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}.")
    return float(value)


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    try:
        ok = value in choices
    except TypeError:  # unhashable, e.g. a list
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}.")
    return value


def check_key(key, name: str = "key") -> jax.Array:
    """Return ``key`` if it is a JAX PRNG key (typed ``jax.random.key`` or raw ``PRNGKey`` data), else
    raise ``ValueError`` saying how to make one (an int seed is not a key: randomness is explicit)."""
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0:
            return key
        if key.dtype == np.uint32 and key.shape == (2,):
            return key
    raise ValueError(
        f"{name} must be a single JAX PRNG key such as jax.random.key(0), got {type(key).__name__}"
        + (f" of shape {key.shape} and dtype {key.dtype}" if hasattr(key, "shape") else f" {key!r}") + "."
    )
