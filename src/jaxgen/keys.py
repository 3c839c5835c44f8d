"""Named PRNG streams: the one rule for randomness in jaxgen.

With JAX's current PRNG, ``jax.random.split(k, n)[i]`` has the same key data as
``jax.random.fold_in(k, i)``, so a parent key that is both split and folded reuses keys. The rule:

* **A key has one role.** It is either consumed by one sampler call (``normal(k, ...)``), or the
  parent of named streams (:func:`streams`), or the parent of an indexed family (``fold_in(k, i)``
  for step i, epoch i, chunk i, restart i). Never two of these.
* **Named streams are derived once**, at the top of a function, with :func:`streams`: each name is
  folded in through a 32-bit hash of the name, so adding, removing or reordering streams never
  changes the others, and two names never give the same key.
* ``jax.random.split(k, n)`` is fine for an indexed family too (vmapped restarts, per-chain keys):
  then ``k`` is split and nothing else.

:func:`recording` lets a test collect every stream derived inside a block and assert that they
are pairwise distinct (:func:`assert_distinct`).
"""
from __future__ import annotations

import contextlib
import zlib
from typing import Iterator

import jax
import numpy as np

__all__ = ["streams", "stream", "recording", "assert_distinct", "key_bytes"]

_RECORDERS: list[list[tuple[str, jax.Array]]] = []


def _name_id(name: str) -> np.uint32:
    return np.uint32(zlib.crc32(name.encode("utf-8")))


def stream(key: jax.Array, name: str) -> jax.Array:
    """The key of the stream ``name`` under ``key``: ``fold_in(key, crc32(name))``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a stream name must be a non-empty string, got {name!r}")
    child = jax.random.fold_in(key, _name_id(name))
    for rec in _RECORDERS:
        rec.append((name, child))
    return child


def streams(key: jax.Array, *names: str) -> dict[str, jax.Array]:
    """Named child keys of ``key``, one per name: ``{"init": k1, "train": k2, ...}``.

    Args:
      key: a typed (``jax.random.key``) or raw PRNG key; it must not also be split or folded
        with small integers by the caller (see the module docstring).
      names: distinct, non-empty stream names.

    Returns:
      dict name -> key, each ``fold_in(key, crc32(name))``.
    """
    if len(set(names)) != len(names):
        raise ValueError(f"stream names must be distinct, got {names}")
    return {name: stream(key, name) for name in names}


def key_bytes(key: jax.Array) -> bytes:
    """The raw key data of one key, as bytes (for comparing keys across typed/raw forms)."""
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).tobytes()


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, jax.Array]]]:
    """Collect ``(name, key)`` for every stream derived inside the block (for tests)."""
    rec: list[tuple[str, jax.Array]] = []
    _RECORDERS.append(rec)
    try:
        yield rec
    finally:
        _RECORDERS.remove(rec)


def assert_distinct(named_keys) -> None:
    """Raise AssertionError naming the first two keys with the same data.

    ``named_keys``: an iterable of ``(name, key)`` pairs (what :func:`recording` yields) or a
    mapping name -> key. Keys of the same name derived twice from the same parent are allowed to be
    equal only if they are the same derivation; any equal pair is reported.
    """
    items = named_keys.items() if isinstance(named_keys, dict) else named_keys
    seen: dict[bytes, str] = {}
    for name, key in items:
        b = key_bytes(key)
        if b in seen:
            raise AssertionError(f"PRNG keys {seen[b]!r} and {name!r} are equal: a key is reused")
        seen[b] = name
