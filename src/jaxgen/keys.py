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

Keys derived inside ``jit`` / ``scan`` (a trainer's update) are tracers the recorder never sees:
:func:`traced_key_reuse` traces a function to its program (``jax.make_jaxpr``, nothing compiled)
and finds there a key drawn from twice, split twice or given two roles, including a key that a
loop's iterations do not change.
"""
from __future__ import annotations

import contextlib
import functools
import zlib
from typing import Iterator

import jax
import numpy as np

__all__ = ["streams", "stream", "recording", "Recording", "assert_distinct", "key_bytes", "traced_key_reuse",
           "assert_no_traced_reuse"]

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
    seen: :func:`traced_key_reuse` checks those). Not thread-safe; meant for tests.
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


# ------------------------------------------------------------------------------ keys in traced programs
# The recorder above sees concrete keys only: the keys a jitted update derives (a GAN's critic and generator
# keys, dynamic binarisation inside a loss) are tracers. traced_key_reuse reads the traced program instead.

_CONSUMERS = {"random_bits": "draw", "random_split": "split", "random_fold_in": "fold_in"}
# ops whose output is their input's value (a key passes through unchanged)
_ALIASES = {"random_wrap", "random_unwrap", "copy", "copy_p", "device_put", "sharding_constraint",
            "optimization_barrier", "pvary"}
# ops that move, select or reshape elements: the output is identified by the op, its inputs and its parameters,
# so that taking ``keys[1]`` twice names one key
_STRUCTURAL = {"slice", "squeeze", "reshape", "expand_dims", "broadcast_in_dim", "dynamic_slice", "gather",
               "concatenate", "transpose", "rev", "select_n", "convert_element_type",
               "random_seed"}  # key(0) made twice in the program is one key


class _Sym:
    """What the walker knows of a value: ``desc`` (equal descs are the same value) and ``level``, the depth of
    the innermost enclosing loop whose iterations change it (0: the same value in every iteration)."""

    __slots__ = ("desc", "level")

    def __init__(self, desc, level: int):
        self.desc, self.level = desc, level


class _Walker:
    def __init__(self):
        self.uses: dict[tuple, int] = {}  # (key desc, role, fold-in data desc) -> how many times the program does it
        self.where: dict[tuple, list[str]] = {}  # the same -> the places in the source that do it
        self._fresh = 0

    def fresh(self, level: int) -> _Sym:
        self._fresh += 1
        return _Sym(("value", self._fresh), level)

    def run(self, jaxpr, consts, in_syms, lengths: tuple, site: str = "") -> list[_Sym]:
        """Walk ``jaxpr`` (open) with ``in_syms`` for its invars inside loops of ``lengths`` (outermost first);
        ``site``: the caller's place in the source (the equations of library code have none of their own)."""
        from jax.extend import core

        env = {}

        def read(v):
            if isinstance(v, core.Literal):
                return _Sym(("literal", _hashable(v.val)), 0)
            return env[v]

        for v, c in zip(jaxpr.constvars, consts):
            env[v] = _const_sym(c) or self.fresh(0)
        for v, s in zip(jaxpr.invars, in_syms):
            env[v] = s
        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            outs = self._eqn(eqn, ins, lengths, _where(eqn) or site)
            for v, s in zip(eqn.outvars, outs):
                env[v] = s
        return [read(v) for v in jaxpr.outvars]

    def _use(self, site: str, key: _Sym, role: str, data, lengths: tuple) -> None:
        times = int(np.prod(lengths[key.level:], dtype=np.int64))  # the loops it does not vary in repeat the use
        entry = (key.desc, role, data)
        self.uses[entry] = self.uses.get(entry, 0) + times
        where = (site or "?") + (f" (in a loop of {' x '.join(map(str, lengths[key.level:]))} iterations that do not "
                                 "change the key)" if times > 1 else "")
        self.where.setdefault(entry, []).append(where)

    def _eqn(self, eqn, ins: list, lengths: tuple, site: str) -> list:
        name, p = eqn.primitive.name, eqn.params
        level = max((s.level for s in ins), default=0)
        if name in _CONSUMERS:
            role = _CONSUMERS[name]
            data = ins[1].desc if role == "fold_in" else None
            self._use(site, ins[0], role, data, lengths)
            shape = p.get("shape")
            return [_Sym((role, ins[0].desc, data if role == "fold_in" else tuple(shape or ())), level)]
        if name in _ALIASES and len(ins) == len(eqn.outvars):
            return list(ins)
        if name in _STRUCTURAL:
            params = tuple(sorted((k, str(v)) for k, v in p.items()))
            return [_Sym((name, tuple(s.desc for s in ins), params, i), level) for i in range(len(eqn.outvars))]
        if name == "scan":
            return self._scan(eqn, ins, lengths, site)
        if name == "while":
            return self._while(eqn, ins, lengths, site)
        if name == "cond":
            return self._cond(eqn, ins, lengths, site)
        subs = [v for v in p.values() if _is_jaxpr(v)]
        if subs:  # jit, custom_jvp_call, custom_vjp_call, checkpoint, shard_map, ...: called once, arguments in order
            sub = subs[0]
            jaxpr, consts = _open(sub)
            in_syms = ins if len(jaxpr.invars) == len(ins) else [self.fresh(level) for _ in jaxpr.invars]
            outs = self.run(jaxpr, consts, in_syms, lengths, site)
            if len(outs) == len(eqn.outvars):
                return outs
        return [self.fresh(level) for _ in eqn.outvars]

    def _loop_body(self, closed, consts_in, n_varying: int, lengths: tuple, length: int, site: str) -> list:
        jaxpr, consts = _open(closed)
        inner = (*lengths, length)
        varying = [self.fresh(len(inner)) for _ in range(n_varying)]  # the carry and the scanned slices
        return self.run(jaxpr, consts, list(consts_in) + varying, inner, site)

    def _scan(self, eqn, ins, lengths, site):
        p = eqn.params
        n_consts = p["num_consts"]
        self._loop_body(p["jaxpr"], ins[:n_consts], len(ins) - n_consts, lengths, int(p["length"]), site)
        level = max((s.level for s in ins), default=0)
        return [self.fresh(level) for _ in eqn.outvars]

    def _while(self, eqn, ins, lengths, site):
        p = eqn.params
        nc, nb = p["cond_nconsts"], p["body_nconsts"]
        n_carry = len(ins) - nc - nb
        # the trip count is unknown: counted as two, so that a key that does not change across iterations is flagged
        self._loop_body(p["cond_jaxpr"], ins[:nc], n_carry, lengths, 2, site)
        self._loop_body(p["body_jaxpr"], ins[nc:nc + nb], n_carry, lengths, 2, site)
        level = max((s.level for s in ins), default=0)
        return [self.fresh(level) for _ in eqn.outvars]

    def _cond(self, eqn, ins, lengths, site):
        # one branch runs: each branch's uses are counted apart and the largest count of each use kept
        before, merged = self.uses, {}
        for branch in eqn.params["branches"]:
            self.uses = {}
            jaxpr, consts = _open(branch)
            self.run(jaxpr, consts, ins[1:], lengths, site)
            for entry, n in self.uses.items():
                merged[entry] = max(merged.get(entry, 0), n)
        self.uses = before
        for entry, n in merged.items():
            self.uses[entry] = self.uses.get(entry, 0) + n
        level = max((s.level for s in ins), default=0)
        return [self.fresh(level) for _ in eqn.outvars]


def _is_jaxpr(v) -> bool:
    from jax.extend import core

    return isinstance(v, (core.Jaxpr, core.ClosedJaxpr))


def _open(j):
    from jax.extend import core

    return (j.jaxpr, j.consts) if isinstance(j, core.ClosedJaxpr) else (j, [])


def _hashable(value):
    a = np.asarray(value)
    return (str(a.dtype), a.shape, a.tobytes()) if a.dtype != object else ("object", id(value))


def _const_sym(value) -> _Sym | None:
    """A concrete key captured by the traced function is identified by its data (two captures of one key are one)."""
    if jax.dtypes.issubdtype(getattr(value, "dtype", None), jax.dtypes.prng_key):
        return _Sym(("key data", np.asarray(jax.random.key_data(value)).tobytes(), value.shape), 0)
    return None


def _where(eqn) -> str:
    try:
        from jax._src import source_info_util  # the user frame of an equation, for the message only

        return source_info_util.summarize(eqn.source_info)
    except Exception:  # noqa: BLE001 - a private helper: the message just loses its location
        return "?"


def _label(desc, names: dict, depth: int = 0) -> str:
    if depth > 6:
        return "..."
    kind = desc[0]
    if kind == "input":
        return names.get(desc[1], f"input {desc[1]}")
    if kind == "fold_in":
        return f"fold_in({_label(desc[1], names, depth + 1)}, {_data_label(desc[2])})"
    if kind in ("split", "draw"):
        return f"{kind}({_label(desc[1], names, depth + 1)})"
    if kind == "squeeze" and desc[1][0][0] == "slice":  # keys[i]
        start = dict(desc[1][0][2])["start_indices"]
        return f"{_label(desc[1][0][1][0], names, depth + 1)}[{start.strip('()').split(',')[0]}]"
    if kind in _STRUCTURAL:
        return f"{kind}({', '.join(_label(d, names, depth + 1) for d in desc[1])})"
    if kind == "key data":
        return "a captured concrete key"
    if kind == "literal":
        return _data_label(desc)
    return "a value computed in the program"


def _data_label(data) -> str:
    if isinstance(data, tuple) and data and data[0] == "literal":
        dtype, shape, raw = data[1]
        if shape == ():
            return str(np.frombuffer(raw, dtype)[0])
    return "a traced value"


def traced_key_reuse(fn, *args, **kwargs) -> list[str]:
    """The keys that the program of ``fn(*args, **kwargs)`` uses in two roles or twice, one message each.

    ``fn`` is traced with :func:`jax.make_jaxpr` (nothing is compiled or run; ``args`` may be
    ``jax.ShapeDtypeStruct``) and its program is walked, into the sub-programs of ``jit``, ``scan``,
    ``while``, ``cond`` and custom derivatives. A key value is flagged when it is drawn from twice
    (``random_bits``), split twice, or both drawn from and split / folded, or both split and folded
    (:mod:`jaxgen.keys`'s rule). A key that does not change across the iterations of a loop is used
    once per iteration (a ``while`` loop counts as two or more). Folding one parent with several
    values is the rule's named streams and indexed families, not a reuse; but the children of two
    folds with the same value are the same key. Values are identified by how they are computed: two
    keys computed in different ways that happen to be equal are not detected, and neither is a key
    array drawn from whole and also element by element.

    Returns:
      list of messages (empty: no reuse found), each naming the key (by the argument it derives
      from: ``args[2]`` is ``fn``'s third positional argument) and where it is used.
    """
    closed = jax.make_jaxpr(functools.partial(fn, **kwargs) if kwargs else fn)(*args)
    paths = jax.tree_util.tree_flatten_with_path(args)[0]
    names = {i: "args" + jax.tree_util.keystr(path) for i, (path, _) in enumerate(paths)}
    walker = _Walker()
    jaxpr = closed.jaxpr
    walker.run(jaxpr, closed.consts, [_Sym(("input", i), 0) for i in range(len(jaxpr.invars))], ())
    by_key: dict[tuple, list] = {}
    for (desc, role, data), n in walker.uses.items():
        by_key.setdefault(desc, []).append((role, data, n))
    problems = []
    for desc, uses in by_key.items():
        count = {r: sum(n for role, _, n in uses if role == r) for r in ("draw", "split", "fold_in")}
        roles = [r for r in ("draw", "split", "fold_in") if count[r]]
        bad = []
        if count["draw"] > 1:
            bad.append(f"drawn from {count['draw']} times")
        if count["split"] > 1:
            bad.append(f"split {count['split']} times")
        if len(roles) > 1:
            bad.append("both " + " and ".join({"draw": "drawn from", "split": "split", "fold_in": "folded"}[r]
                                               for r in roles))
        if bad:
            sites = "; ".join(f"{role} at {w}" for role, data, _ in uses for w in walker.where[(desc, role, data)])
            problems.append(f"key {_label(desc, names)} is {', '.join(bad)} ({sites})")
    return problems


def assert_no_traced_reuse(fn, *args, **kwargs) -> None:
    """Raise AssertionError listing :func:`traced_key_reuse`'s findings for ``fn(*args, **kwargs)``, if any."""
    problems = traced_key_reuse(fn, *args, **kwargs)
    if problems:
        raise AssertionError("PRNG keys reused in the traced program:\n  " + "\n  ".join(problems))
