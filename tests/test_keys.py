"""The one PRNG rule (jaxgen.keys): named streams are distinct, stable and recorded; keys reused inside traced
programs (jit, scan, the trainers' updates) are found."""
import zlib

import jax
import jax.numpy as jnp
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


# ------------------------------------------------------------------------------ keys in traced programs
def _critic_loop(reuse: bool):
    """The shape of a GAN step: n_critic = 2 critic draws in a scan, then the generator's."""
    def update(key):
        k_d, k_g = keys.streams(key, "d", "g").values()

        def critic(c, i):
            k = k_d if reuse else jax.random.fold_in(k_d, i)  # the slip: one key for every critic step
            return c + jax.random.normal(k, (3,)).sum(), None

        return jax.lax.scan(critic, 0.0, jnp.arange(2))[0] + jax.random.normal(k_g)

    return update


def test_traced_check_catches_a_key_reused_inside_jit_and_scan():
    key = jax.random.key(0)
    assert keys.traced_key_reuse(_critic_loop(False), key) == []
    (msg,) = keys.traced_key_reuse(_critic_loop(True), key)
    assert f"fold_in(args[0], {zlib.crc32(b'd')}) is drawn from 2 times" in msg and "loop of 2 iterations" in msg
    with pytest.raises(AssertionError, match="reused in the traced program"):
        keys.assert_no_traced_reuse(_critic_loop(True), key)
    # a loop of one iteration draws once
    one = lambda k: jax.lax.scan(lambda c, _: (c + jax.random.normal(k), None), 0.0, None, length=1)[0]  # noqa: E731
    assert keys.traced_key_reuse(one, key) == []


@pytest.mark.parametrize("fn, found", [
    (lambda k: jax.random.normal(k) + jax.random.uniform(k), "drawn from 2 times"),
    (lambda k: jax.random.normal(jax.random.fold_in(k, 1)) + jax.random.normal(jax.random.split(k)[0]),
     "both split and folded"),
    (lambda k: jax.random.normal(jax.random.split(k)[1]) + jax.random.normal(jax.random.split(k)[1]), "split 2 times"),
    (lambda k: sum(jax.random.normal(s) for s in (jax.random.split(k, 3)[1], jax.random.split(k, 3)[1])), "split"),
    (lambda k: jax.jit(jax.random.normal)(k) + jax.random.bernoulli(k), "drawn from 2 times"),  # across a jit boundary
    (lambda k: jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + jax.random.normal(k)), (0, 0.0))[1],
     "drawn from 2 times"),
    (lambda k: jax.random.normal(jax.random.split(k)[0]) + jax.random.normal(jax.random.split(k)[0]), "split 2 times"),
    (lambda k: jax.random.normal(jax.random.key(3)) + jax.random.normal(jax.random.key(3)), "random_seed(3)"),
])
def test_traced_check_catches_each_role_clash(fn, found):
    for key in (jax.random.key(0), jax.random.PRNGKey(0)):  # typed and raw keys
        assert any(found in m for m in keys.traced_key_reuse(fn, key)), keys.traced_key_reuse(fn, key)


@pytest.mark.parametrize("fn", [
    lambda k: jax.vmap(jax.random.normal)(jax.random.split(k, 4)),
    lambda k: jax.lax.cond(True, jax.random.normal, jax.random.uniform, k),  # one branch runs
    lambda k: sum(jax.random.normal(v) for v in keys.streams(k, "a", "b", "c").values()),
    lambda k: jax.lax.map(jax.random.normal, jax.random.split(k, 3)),
    lambda k: jax.lax.fori_loop(0, 3, lambda i, c: c + jax.random.normal(jax.random.fold_in(k, i)), 0.0),
])
def test_traced_check_passes_the_rule(fn):
    assert keys.traced_key_reuse(fn, jax.random.key(0)) == []


def _abstract_update(trainer, batch, *extra):
    """``trainer.update`` traced on abstract values: the state from ``jax.eval_shape`` of ``init``."""
    key = jax.random.key(0)
    state = jax.eval_shape(trainer.init, key, batch)
    return keys.traced_key_reuse(trainer.update, state, batch, key, *extra)


def test_trainers_updates_use_each_key_once():
    """The keys derived inside the jitted updates (invisible to ``recording``): the GAN's critic and
    generator keys (n_critic = 2, gradient penalty), FactorVAE's, VAE-GAN's and dynamic
    binarisation in the VAE loss."""
    from jaxgen.models import gan, vae, vaegan
    from jaxgen.train.trainer import LossTrainer

    g = gan.GANTrainer(g_hidden=(8,), d_hidden=(8,), n_critic=2, objective="wgan_gp", pack=2)
    assert _abstract_update(g, jnp.zeros((8, 2))) == []
    cfg = vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(8,))
    assert _abstract_update(vae.FactorVAETrainer(vae=cfg, d_hidden=(8,), binarize=True), jnp.zeros((4, 4, 4, 1))) == []
    t = vaegan.VAEGANTrainer(image_shape=(8, 8, 1), latent_dim=3, conv_features=(4,), conv_dense=8, d_features=(4, 6),
                             d_dense=8)
    assert _abstract_update(t, jnp.zeros((4, 8, 8, 1))) == []
    params = vae.init(jax.random.key(1), cfg)
    import optax
    lt = LossTrainer(vae.loss_fn(vae.Objective("elbo", binarize=True)), params, optax.adam(1e-3))
    assert _abstract_update(lt, jnp.zeros((4, 16)), jnp.zeros((), jnp.int32)) == []
