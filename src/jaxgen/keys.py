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

:func:`recording` lets a test collect every key derived inside a block (named streams, and with
``all_derivations=True`` every ``split`` / ``fold_in`` on a concrete key) and assert that no two
different derivations gave the same key (:func:`assert_distinct`): this is what catches a parent
that is both split and folded.
"""
from __future__ import annotations

import contextlib
import zlib
from typing import Iterator

import jax
import numpy as np

__all__ = ["streams", "stream", "recording", "Recording", "assert_distinct", "key_bytes"]

_RECORDERS: list["Recording"] = []


class Recording(list):
    """``(name, key)`` of every named stream derived while recording (a list), plus ``origins``:
    ``(origin, key bytes, label)`` of every derivation seen, where ``origin`` identifies the
    derivation (parent key bytes, operation, index): the same derivation repeated gives the same
    origin, two different derivations giving one key is a reuse."""

    def __init__(self):
        super().__init__()
        self.origins: list[tuple[tuple, bytes, str]] = []

    def _add(self, parent, op: str, index: int, child, label: str) -> None:
        self.origins.append(((key_bytes(parent), op, int(index)), key_bytes(child), label))


def _name_id(name: str) -> np.uint32:
    return np.uint32(zlib.crc32(name.encode("utf-8")))


def stream(key: jax.Array, name: str) -> jax.Array:
    """The key of the stream ``name`` under ``key``: ``fold_in(key, crc32(name))``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a stream name must be a non-empty string, got {name!r}")
    child = jax.random.fold_in(key, _name_id(name))
    if _RECORDERS and _concrete_key(key):
        for rec in _RECORDERS:
            rec.append((name, child))
            rec._add(key, "fold_in", _name_id(name), child, name)
    return child


def _concrete_key(key) -> bool:
    """A single, concrete (not traced) key: typed of shape () or raw of shape (2,)."""
    if isinstance(key, jax.core.Tracer):
        return False
    shape = getattr(key, "shape", None)
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        return shape == ()
    return shape == (2,)


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
def recording(*, all_derivations: bool = False) -> Iterator[Recording]:
    """Collect the keys derived inside the block (for tests): a :class:`Recording`.

    ``all_derivations``: also record every ``jax.random.split`` / ``jax.random.fold_in`` called on a
    concrete key (by patching the two functions for the block; traced keys inside ``jit`` are not
    seen). Not thread-safe; meant for tests.
    """
    rec = Recording()
    _RECORDERS.append(rec)
    patched = []
    if all_derivations:
        split, fold_in = jax.random.split, jax.random.fold_in

        def recording_split(key, num=2):
            out = split(key, num)
            if _concrete_key(key) and not isinstance(out, jax.core.Tracer):
                n = int(num) if np.ndim(num) == 0 else None
                if n is not None:
                    for i in range(n):
                        rec._add(key, "split", i, out[i], f"split(.., {n})[{i}]")
            return out

        def recording_fold_in(key, data):
            out = fold_in(key, data)
            if _concrete_key(key) and not isinstance(data, jax.core.Tracer):
                rec._add(key, "fold_in", int(np.uint32(data)), out, f"fold_in(.., {int(data)})")
            return out

        patched = [("split", split), ("fold_in", fold_in)]
        jax.random.split, jax.random.fold_in = recording_split, recording_fold_in
    try:
        yield rec
    finally:
        for name, fn in patched:
            setattr(jax.random, name, fn)
        _RECORDERS.remove(rec)


def assert_distinct(named_keys) -> None:
    """Raise AssertionError naming the first two keys with the same data.

    ``named_keys``: a :class:`Recording` (then two *different* derivations that gave the same key
    are reported; the same derivation repeated, e.g. the same start for two settings, is not), an
    iterable of ``(name, key)`` pairs, or a mapping name -> key (then any equal pair is reported).
    """
    if isinstance(named_keys, Recording):
        first: dict[bytes, tuple[tuple, str]] = {}
        for origin, kb, label in named_keys.origins:
            if kb in first and first[kb][0] != origin:
                raise AssertionError(
                    f"PRNG keys {first[kb][1]!r} and {label!r} are equal but derived differently: a key is reused")
            first.setdefault(kb, (origin, label))
        return
    items = named_keys.items() if isinstance(named_keys, dict) else named_keys
    seen: dict[bytes, str] = {}
    for name, key in items:
        b = key_bytes(key)
        if b in seen:
            raise AssertionError(f"PRNG keys {seen[b]!r} and {name!r} are equal: a key is reused")
        seen[b] = name
