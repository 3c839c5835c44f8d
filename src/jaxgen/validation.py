"""Input checks shared by every model: one place that turns bad input into a clear ``ValueError``.

Every public entry point (pure functions that take user data, and the estimators) calls these
before touching JAX, so that a wrong shape, a NaN or a bad hyperparameter fails early with a
message that says what is wrong and how to fix it, instead of deep inside a jitted function.
"""
from __future__ import annotations

import numbers

import jax
import numpy as np
import scipy.sparse

__all__ = ["check_data", "check_positive_int", "check_positive_float", "check_choice", "check_key", "float_dtype"]


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
) -> np.ndarray:
    """Validate user data and return it as a NumPy float array.

    Args:
      X: array-like of shape (N, D) (or (N,) when ``ndim == 1``).
      name: how the array is called in error messages.
      ndim: required number of dimensions. A 1-D array passed where 2-D is required is rejected
        (scikit-learn's convention) with a hint to reshape.
      allow_nan: accept NaN as "missing" (inf is never accepted).
      min_samples: the least number of rows.
      n_features: when given, the required number of columns (e.g. the count seen at fit time).
      dtype: computation dtype; default from :func:`float_dtype` of the input.

    Returns:
      ``np.ndarray`` of shape (N, D) and a float dtype.

    Raises:
      ValueError: non-numeric data, wrong rank, too few rows, NaN/inf, wrong feature count.
    """
    if scipy.sparse.issparse(X):
        raise ValueError(f"{name} is a sparse matrix; sparse input is not supported: pass {name}.toarray().")
    if isinstance(X, jax.Array):
        X = np.asarray(X)
    try:
        arr = np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {e}") from e
    if arr.dtype == object:  # e.g. a DataFrame of mixed numeric columns: numeric if every entry is
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name} must be numeric, but it holds non-numeric entries ({e}). Encode those columns first."
            ) from e
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; pass real values.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(
            f"{name} must be numeric, got dtype {arr.dtype}. Convert it with np.asarray({name}, dtype=float) "
            "after encoding any non-numeric columns."
        )
    if arr.ndim != ndim:
        hint = ""
        if ndim == 2 and arr.ndim == 1:
            hint = (" Reshape your data either using X.reshape(-1, 1) if it has a single feature or "
                    "X.reshape(1, -1) if it contains a single sample.")
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}.{hint}")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} sample(s), but at least {min_samples} are needed"
            + (" (empty data)." if arr.shape[0] == 0 else ".")
        )
    if ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if n_features is not None and ndim == 2 and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the model is expecting {n_features} features as input: "
            f"it was fitted with {n_features} features."
        )
    out_dtype = float_dtype(dtype if dtype is not None else arr.dtype)
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > np.dtype(out_dtype).itemsize:
        big = np.abs(arr[np.isfinite(arr)]).max(initial=0.0)
        if big > np.finfo(out_dtype).max:
            raise ValueError(
                f"{name} has finite values up to {big:.3g}, beyond the {out_dtype} range. Rescale the data, or "
                "enable float64 with jax.config.update('jax_enable_x64', True)."
            )
    arr = arr.astype(out_dtype, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        n_inf = int(np.isinf(arr).sum())
        n_nan = int(np.isnan(arr).sum())
        if n_inf or (n_nan and not allow_nan):
            what = ", ".join(s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if s)
            extra = "" if allow_nan else " Remove or impute them first (missing values are supported only where documented, e.g. PPCA's EM)."
            raise ValueError(f"{name} contains {what} value(s); all entries must be finite.{extra}")
    return arr


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}.")
    return int(value)


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
