"""The one PRNG rule (jaxgen.keys): named streams are distinct, stable and recorded."""
import jax
import pytest

from jaxgen import keys


def test_split_equals_fold_in_the_reason_for_the_rule():
    k = jax.random.key(0)
    assert keys.key_bytes(jax.random.split(k, 4)[2]) == keys.key_bytes(jax.random.fold_in(k, 2))


def test_streams_distinct_and_independent_of_order_and_siblings():
    k = jax.random.key(3)
    a = keys.streams(k, "init", "train", "eval")
    b = keys.streams(k, "eval", "init")
    assert keys.key_bytes(a["init"]) == keys.key_bytes(b["init"])
    assert keys.key_bytes(a["eval"]) == keys.key_bytes(b["eval"])
    keys.assert_distinct(a)
    # and distinct from the small-integer family of the same parent
    small = {f"fold_in {i}": jax.random.fold_in(k, i) for i in range(64)}
    keys.assert_distinct({**a, **small})


def test_assert_distinct_catches_reuse():
    k = jax.random.key(0)
    with pytest.raises(AssertionError, match="'a' and 'b' are equal"):
        keys.assert_distinct([("a", jax.random.split(k, 3)[1]), ("b", jax.random.fold_in(k, 1))])


def test_recording_collects_streams():
    with keys.recording() as rec:
        keys.streams(jax.random.key(1), "x", "y")
    assert [n for n, _ in rec] == ["x", "y"]
    with pytest.raises(ValueError, match="distinct"):
        keys.streams(jax.random.key(1), "x", "x")
    with pytest.raises(ValueError, match="non-empty"):
        keys.stream(jax.random.key(1), "")


def test_recording_all_derivations_catches_split_and_fold_in_of_one_parent():
    """The original collision: a parent split into roles and also folded with a small integer."""
    root = jax.random.key(0)
    with keys.recording(all_derivations=True) as rec:
        k_init, k_bin = jax.random.split(root)
        jax.random.fold_in(root, 1)  # == k_bin
    with pytest.raises(AssertionError, match="derived differently"):
        keys.assert_distinct(rec)
    # the same derivation repeated is not a reuse; named streams and indexed families of distinct
    # parents are fine
    with keys.recording(all_derivations=True) as rec:
        s = keys.streams(root, "a", "b")
        keys.streams(root, "a")  # the same derivation again
        [jax.random.fold_in(s["a"], i) for i in range(3)]
        jax.random.split(s["b"], 4)
    keys.assert_distinct(rec)
    assert len(rec) == 3 and len(rec.origins) == 3 + 3 + 3 + 4
    assert jax.random.split is not None and "recording" not in jax.random.split.__name__  # restored
