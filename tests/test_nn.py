"""Shared Flax building blocks: shapes, parameter counts, activations, odd image sizes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nn import MLP, ConvDecoder, ConvEncoder, get_activation


def _count(params):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


def test_mlp_shapes_counts_and_activation():
    m = MLP((200, 200, 50), "tanh")
    x = jnp.ones((3, 784))
    params = m.init(jax.random.key(0), x)
    assert m.apply(params, x).shape == (3, 50)
    assert _count(params) == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 50 + 50
    # Final layer is linear unless asked: a 1-layer MLP is exactly x @ W + b.
    lin = MLP((4,))
    p = lin.init(jax.random.key(1), x[:, :5])["params"]["dense_0"]
    np.testing.assert_allclose(lin.apply({"params": {"dense_0": p}}, x[:, :5]), x[:, :5] @ p["kernel"] + p["bias"], rtol=1e-6)
    out = MLP((4,), "relu", activate_final=True).apply({"params": {"dense_0": p}}, -x[:, :5] * 100)
    assert np.all(np.asarray(out) >= 0)
    # The empty MLP is the identity (an affine VAE has no trunk).
    assert np.array_equal(MLP(()).apply({}, x), x)


def test_activation_names():
    assert get_activation("tanh") is jnp.tanh
    f = lambda v: v  # noqa: E731
    assert get_activation(f) is f
    with pytest.raises(ValueError, match="activation must be one of .*tanh"):
        get_activation("tanhh")


@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 20, 1), (8, 8, 3)])
def test_conv_encoder_decoder_shapes(shape):
    enc, dec = ConvEncoder((8, 16), dense=32), ConvDecoder(shape, (16, 8), dense=32)
    x = jnp.ones((2, *shape))
    pe = enc.init(jax.random.key(0), x)
    assert enc.apply(pe, x).shape == (2, 32)
    z = jnp.ones((2, 5))
    pd = dec.init(jax.random.key(1), z)
    assert dec.apply(pd, z).shape == (2, *shape)
    with pytest.raises(ValueError, match="expects images"):
        enc.apply(pe, x.reshape(2, -1))
