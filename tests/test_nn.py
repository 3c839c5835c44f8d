"""Shared Flax building blocks: shapes, parameter counts, activations, odd image sizes."""
import functools

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


# ----------------------------------------------------------------- jaxgen.nn.convolution
import flax.linen as nn  # noqa: E402
from jax import lax  # noqa: E402

from jaxgen.nn import Conv, ConvTranspose, conv_general_dilated  # noqa: E402

_NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize(
    "x_shape, w_shape, strides, padding, lhs_dil",
    [
        ((3, 8, 8, 2), (4, 4, 2, 5), (2, 2), "SAME", (1, 1)),  # DCGAN / VAE encoder layers
        ((3, 7, 9, 2), (3, 3, 2, 4), (2, 2), "VALID", (1, 1)),
        ((2, 7, 5, 4), (4, 4, 4, 3), (2, 1), ((1, 2), (0, 1)), (1, 1)),
        ((2, 7, 7, 4), (4, 4, 4, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),  # a 4x4 stride-2 transposed conv
        # which path: phases where the dilation divides the output size, else lax with lhs_dilation
        ((2, 6, 5, 3), (3, 3, 3, 2), (1, 1), ((1, 2), (1, 2)), (2, 2)),  # 3x3 "SAME" transposed: 12x10, phases
        ((2, 5, 6, 3), (3, 3, 3, 2), (1, 1), ((1, 1), (2, 1)), (2, 2)),  # 9x12: falls back to lax (9 is odd)
        ((2, 4, 5, 3), (2, 2, 3, 2), (1, 1), ((1, 2), (1, 1)), (3, 2)),  # kernel < dilation: a zero phase
        ((2, 4, 4, 3), (5, 5, 3, 2), (1, 1), ((4, 2), (1, 5)), (3, 3)),  # 12x12 with uneven paddings
        ((3, 10, 6, 2), (4, 3, 2, 3), (2, 3), ((1, 2), (1, 1)), (1, 1)),  # dx by phases (10, 6 divisible)
        ((3, 8, 8, 6), (3, 3, 6, 1), (1, 1), "SAME", (1, 1)),  # output layer: dw from the shifts of g
        ((2, 6, 7, 5), (3, 2, 5, 2), (1, 1), ((0, 3), (2, 0)), (1, 1)),  # the same, odd pads
    ],
)
def test_canonical_conv_equals_lax_values_gradients_second_order_and_in_scan(x_shape, w_shape, strides, padding,
                                                                            lhs_dil):
    """The canonical forward (input-dilated convs by phases) and VJP (shift GEMMs for transposed convs and
    output layers) give JAX's own values and gradients: first order, inside lax.scan (where it matters for
    speed), and gradients of gradients (WGAN-GP, R1). Float round-off only: the summation order differs."""
    x = jax.random.normal(jax.random.key(0), x_shape)
    w = jax.random.normal(jax.random.key(1), w_shape)
    dn = lax.conv_dimension_numbers(x_shape, w_shape, _NHWC)
    ref = lambda x, w: lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=lhs_dil, dimension_numbers=dn)  # noqa: E731
    new = lambda x, w: conv_general_dilated(x, w, strides, padding, lhs_dilation=lhs_dil, dimension_numbers=dn)  # noqa: E731
    jaxpr = str(jax.make_jaxpr(new)(x, w))
    assert "custom_vjp" in jaxpr  # the canonical path is taken on CPU
    y = ref(x, w)
    if lhs_dil != (1, 1):  # by phases (no input-dilated conv left) exactly when the dilation divides the output
        dilated = any(not t.startswith("(1, 1)") for t in jaxpr.split("lhs_dilation=")[1:])
        assert dilated == any(y.shape[1 + i] % lhs_dil[i] for i in range(2))
    # phases sum the taps in another order: round-off of the largest output
    np.testing.assert_allclose(np.asarray(new(x, w)), np.asarray(y), rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(y))))
    g = jax.random.normal(jax.random.key(2), ref(x, w).shape)
    vjp = jax.jit(lambda f: jax.vjp(f, x, w)[1](g), static_argnums=0)  # jitted: one compile, not one per op
    for a, b in zip(vjp(ref), vjp(new)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(a))))

    def in_scan(f):
        return jax.lax.scan(lambda c, _: (c, jax.grad(lambda w: jnp.sum(f(x, w) * g))(w)), 0, None, length=2)[1]

    np.testing.assert_allclose(np.asarray(in_scan(new)), np.asarray(in_scan(ref)), rtol=1e-5, atol=1e-4)

    @functools.partial(jax.jit, static_argnums=0)
    def penalty(f):  # d/dw |d/dx sum(sin(f))|^2
        return jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(f(x, w))))(x) ** 2))(w)

    p_ref = penalty(ref)
    np.testing.assert_allclose(np.asarray(penalty(new)), np.asarray(p_ref), rtol=1e-5,
                               atol=1e-5 * float(jnp.max(jnp.abs(p_ref))))

    # forward mode (the custom_jvp form, as a custom_vjp refuses it): jvp in both arguments, jacfwd in w alone
    tx, tw = jax.random.normal(jax.random.key(3), x_shape), jax.random.normal(jax.random.key(4), w_shape)
    forward = jax.jit(lambda f: (jax.jvp(f, (x, w), (tx, tw))[1], jax.jacfwd(f, 1)(x, w)), static_argnums=0)
    for a, b in zip(forward(ref), forward(new)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(a))))


@pytest.mark.parametrize(
    "x_shape, w_shape, pads, lhs_dil, chunk, chunked",
    [
        ((6, 7, 7, 4), (4, 4, 4, 3), ((2, 2), (2, 2)), (2, 2), 3 * 16 * 7 * 7 * 3 * 4, True),  # 2 chunks of 3
        ((7, 7, 7, 4), (4, 4, 4, 3), ((2, 2), (2, 2)), (2, 2), 3 * 16 * 7 * 7 * 3 * 4, True),  # 7 chunks of 1
        ((2, 7, 7, 4), (4, 4, 4, 3), ((2, 2), (2, 2)), (2, 2), 15 * 7 * 7 * 3 * 4, False),  # 1 sample > chunk
        ((2, 4, 4, 3), (5, 5, 3, 2), ((4, 2), (1, 5)), (3, 3), 1000, False),  # phases, negative crops
        ((2, 5, 6, 3), (3, 3, 3, 2), ((1, 1), (2, 1)), (2, 2), 1000, False),  # 9x12: g padded to 10x12
        ((6, 8, 8, 6), (3, 3, 6, 1), ((1, 1), (1, 1)), (1, 1), 1000, True),  # output layer: x holds 4 stacks
        ((1, 8, 8, 6), (3, 3, 6, 1), ((1, 1), (1, 1)), (1, 1), 1000, False),  # one stack > x: the plain dW conv
    ],
)
def test_weight_gradient_in_batch_chunks_or_by_phases(monkeypatch, x_shape, w_shape, pads, lhs_dil, chunk, chunked):
    """dW of transposed convs and output layers with a bounded stack: in batch chunks (lax.map) while
    one sample's stacked shifts fit the budget, else one weight-gradient conv per output phase (no
    stack, no GEMM); equal to lax's, also in a scan."""
    import jaxgen.nn.convolution as convolution

    monkeypatch.setattr(convolution, "_CHUNK_BYTES", chunk)
    x = jax.random.normal(jax.random.key(0), x_shape)
    w = jax.random.normal(jax.random.key(1), w_shape)
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _NHWC)
    ref = lambda w: lax.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=lhs_dil, dimension_numbers=dn)  # noqa: E731
    new = lambda w: conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=lhs_dil, dimension_numbers=dn)  # noqa: E731
    g = jax.random.normal(jax.random.key(2), ref(w).shape)
    jaxpr = str(jax.make_jaxpr(jax.vjp(new, w)[1])(g))
    assert ("scan" in jaxpr) == chunked and ("dot_general" in jaxpr) == chunked  # the path taken
    a = jax.vjp(ref, w)[1](g)[0]
    np.testing.assert_allclose(np.asarray(jax.vjp(new, w)[1](g)[0]), np.asarray(a), rtol=1e-5,
                               atol=1e-5 * float(jnp.max(jnp.abs(a))))
    in_scan = jax.lax.scan(lambda c, _: (c, jax.grad(lambda w: jnp.sum(new(w) * g))(w)), 0, None, length=2)[1]
    np.testing.assert_allclose(np.asarray(in_scan[1]), np.asarray(a), rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(a))))
    t = jax.random.normal(jax.random.key(3), w.shape)  # forward mode through the transposed chunks / phases
    t_ref = jax.jvp(ref, (w,), (t,))[1]
    np.testing.assert_allclose(np.asarray(jax.jvp(new, (w,), (t,))[1]), np.asarray(t_ref), rtol=1e-5,
                               atol=1e-5 * float(jnp.max(jnp.abs(t_ref))))


# (x, w, strides, pads, lhs_dilation): every path of the VJP, channels up and down, batches 1, 7 (prime), 64
_MEMORY_GRID = [
    ((64, 64, 64, 128), (7, 7, 128, 64), (1, 1), ((3, 3), (3, 3)), (1, 1)),  # issue 16: 25x lax's before
    ((64, 32, 32, 64), (7, 7, 64, 8), (1, 1), ((3, 3), (3, 3)), (1, 1)),  # output layer, a sample's stack > 4 MB
    ((64, 32, 32, 32), (3, 3, 32, 1), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # output layer in batch chunks
    ((7, 16, 16, 64), (4, 4, 64, 8), (1, 1), ((1, 2), (1, 2)), (1, 1)),
    ((64, 32, 32, 32), (4, 4, 32, 32), (1, 1), ((2, 2), (2, 2)), (2, 2)),  # the 64x64 VAE's last deconv
    ((1, 16, 16, 8), (7, 7, 8, 64), (1, 1), ((4, 4), (4, 4)), (2, 2)),  # transposed, 8 -> 64, one sample
    ((7, 8, 8, 64), (7, 7, 64, 8), (1, 1), ((4, 4), (4, 4)), (2, 2)),
    ((64, 32, 32, 32), (4, 4, 32, 64), (2, 2), ((1, 2), (1, 2)), (1, 1)),  # strided: dx by phases
    ((7, 16, 16, 8), (3, 3, 8, 64), (1, 1), ((1, 1), (1, 1)), (1, 1)),  # stride 1 to more channels
]


@pytest.mark.parametrize("x_shape, w_shape, strides, pads, lhs_dil", _MEMORY_GRID)
def test_gradient_temporaries_within_a_small_factor_of_lax(x_shape, w_shape, strides, pads, lhs_dil):
    """Compiled temporaries of the jitted gradient (x and w) at most 2x JAX's own (abstract shapes:
    compiled, never run)."""
    def temp_bytes(conv):
        loss = lambda x, w: jnp.sum(conv(x, w, strides, pads, lhs_dilation=lhs_dil, dimension_numbers=_NHWC) ** 2)  # noqa: E731
        args = (jax.ShapeDtypeStruct(x_shape, jnp.float32), jax.ShapeDtypeStruct(w_shape, jnp.float32))
        return jax.jit(jax.grad(loss, (0, 1))).lower(*args).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(conv_general_dilated) <= 2 * temp_bytes(lax.conv_general_dilated)


@pytest.mark.parametrize("kernel, strides, padding", [((4, 4), (2, 2), "SAME"), ((3, 3), (2, 2), "SAME"),
                                                      ((4, 4), (2, 2), "VALID"), ((5, 5), (1, 1), "SAME")])
def test_conv_transpose_is_flaxs_with_the_same_parameters(kernel, strides, padding):
    x = jax.random.normal(jax.random.key(5), (2, 7, 7, 6))
    ref, new = nn.ConvTranspose(3, kernel, strides=strides, padding=padding), ConvTranspose(3, kernel, strides=strides,
                                                                                              padding=padding)
    p_ref, p_new = ref.init(jax.random.key(1), x), new.init(jax.random.key(1), x)
    assert jax.tree.map(np.shape, p_ref) == jax.tree.map(np.shape, p_new)  # checkpoints and artefacts interchange
    for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # same initial weights from the same key
    np.testing.assert_allclose(np.asarray(new.apply(p_ref, x)), np.asarray(ref.apply(p_ref, x)), rtol=1e-6, atol=1e-6)
    conv = Conv(4, (3, 3), strides=(2, 2))
    p = nn.Conv(4, (3, 3), strides=(2, 2)).init(jax.random.key(2), x)
    np.testing.assert_array_equal(np.asarray(conv.apply(p, x)), np.asarray(nn.Conv(4, (3, 3), strides=(2, 2)).apply(p, x)))
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'"):
        ConvTranspose(3, kernel, strides=strides, padding="CIRCULAR")


def test_other_convolutions_fall_back_to_lax():
    x, w = jnp.ones((1, 6, 6, 4)), jnp.ones((3, 3, 2, 4))  # grouped: 2 groups of 2 input channels
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _NHWC)
    f = lambda x, w: conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=2)  # noqa: E731
    assert "custom_vjp" not in str(jax.make_jaxpr(f)(x, w))
    np.testing.assert_array_equal(np.asarray(f(x, w)), np.asarray(
        lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=2)))


def test_forward_mode_through_conv_layers_and_a_conv_model_equals_lax(monkeypatch):
    """jvp, jacfwd, hessian and the jvp of a gradient (Hessian-vector product) through ConvEncoder
    (strided Conv) and ConvDecoder (ConvTranspose, a 3x3 output Conv to fewer channels) equal the same
    model on lax's convolutions (JAX's own derivatives), to round-off. jax.linearize is refused on CPU
    (reverse mode keeps the custom_vjp)."""
    import jaxgen.nn.convolution as convolution

    enc, dec = ConvEncoder((4, 6), dense=0), ConvDecoder((8, 8, 2), (6, 4), dense=0)
    x, z = jax.random.normal(jax.random.key(0), (2, 4, 4, 2)), jax.random.normal(jax.random.key(1), (2, 3))
    pe, pd = enc.init(jax.random.key(2), x), dec.init(jax.random.key(3), z)
    tx = jax.random.normal(jax.random.key(4), x.shape)
    tpd = jax.tree.map(lambda a: jax.random.normal(jax.random.key(5), a.shape), pd)

    def derivatives():  # jitted: one compile instead of one per op
        out = jax.jit(lambda: {"jvp": jax.jvp(lambda p: dec.apply(p, z), (pd,), (tpd,))[1],
               "jvp_x": jax.jvp(lambda x: enc.apply(pe, x), (x,), (tx,))[1],
               "hvp": jax.jvp(jax.grad(lambda x: jnp.sum(jnp.tanh(enc.apply(pe, x)))), (x,), (tx,))[1],
               "jacfwd": jax.jacfwd(lambda z: dec.apply(pd, z))(z),
               "hessian_z": jax.hessian(lambda z: jnp.sum(jax.nn.sigmoid(dec.apply(pd, z))))(z),
               "hessian_x": jax.hessian(lambda x: jnp.sum(jnp.tanh(enc.apply(pe, x))))(x[:1])})()
        return out, str(jax.make_jaxpr(lambda p: dec.apply(p, z))(pd))

    new, jaxpr = derivatives()
    assert "name=_canonical" in jaxpr  # the canonical path
    with pytest.raises(TypeError, match="forward-mode"):
        jax.linearize(lambda x: enc.apply(pe, x), x)[1](tx)

    def lax_conv(x, w, strides, pads, lhs_dil, precision):
        return lax.conv_general_dilated(x, w, strides, pads, lhs_dilation=lhs_dil, dimension_numbers=_NHWC,
                                        precision=precision)

    monkeypatch.setattr(convolution, "_canonical", lax_conv)
    monkeypatch.setattr(convolution, "_canonical_jvp_conv", lax_conv)
    ref, jaxpr = derivatives()
    assert "name=_canonical" not in jaxpr
    for k in ref:
        np.testing.assert_allclose(np.asarray(new[k]), np.asarray(ref[k]), rtol=1e-5,
                                   atol=1e-5 * float(jnp.max(jnp.abs(ref[k]))), err_msg=k)
