"""The shared input checks: every kind of bad input gets a ValueError that says what is wrong."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from jaxgen.validation import check_choice, check_data, check_positive_float, check_positive_int, float_dtype


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.arange(3.0), {}, "Reshape your data"),
        (np.zeros((0, 2)), {}, "empty data"),
        (np.zeros((1, 2)), {"min_samples": 3}, "at least 3"),
        (np.zeros((3, 0)), {}, "0 feature"),
        (np.array([[1.0, np.nan]]), {}, "NaN"),
        (np.array([[1.0, np.inf]]), {"allow_nan": True}, "inf"),
        (np.array([[1 + 1j]]), {}, "Complex"),
        (np.array([["a", "b"]]), {}, "numeric"),
        (np.array([[1, "a"]], dtype=object), {}, "non-numeric"),
        (np.zeros((2, 3)), {"n_features": 4}, "expecting 4 features"),
        (scipy.sparse.csr_matrix(np.eye(2)), {}, "sparse"),
        ([[1.0, 2.0], [3.0]], {}, "could not be converted"),
    ],
)
def test_bad_input_is_named(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_data(X, **kwargs)


def test_good_input_dtypes(x64):
    assert check_data(np.ones((2, 2), np.float64)).dtype == np.float64
    assert check_data(np.ones((2, 2), np.int64)).dtype == np.float64
    assert check_data(np.array([[1, 2]], dtype=object)).dtype == np.float64
    assert check_data(jnp.ones((2, 2), jnp.float32)).dtype == np.float32
    assert np.isnan(check_data(np.array([[1.0, np.nan]]), allow_nan=True)[0, 1])


def test_float32_default_without_x64():
    assert float_dtype(np.float64) == np.float32 and float_dtype(None) == np.float32
    assert check_data(np.ones((2, 2))).dtype == np.float32


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_positive_int(value):
    with pytest.raises(ValueError, match="n_components"):
        check_positive_int(value, "n_components")


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_positive_float(value):
    with pytest.raises(ValueError, match="tol"):
        check_positive_float(value, "tol")
    assert check_positive_float(0.0, "tol", allow_zero=True) == 0.0


def test_choice():
    assert check_choice("full", "covariance_type", {"full", "diag"}) == "full"
    with pytest.raises(ValueError, match="one of"):
        check_choice("fool", "covariance_type", {"full", "diag"})


def test_values_beyond_float32_are_named_not_called_inf():
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_data(np.array([[1e39, 1.0]]))


def test_unhashable_choice():
    with pytest.raises(ValueError, match="one of"):
        check_choice(["ml"], "method", {"ml", "em"})


def test_models_reject_degenerate_input():
    import jax

    from jaxgen import PPCA, GaussianMixture
    from jaxgen.models import gmm

    with pytest.raises(ValueError, match="no variance"):
        PPCA(1).fit(np.ones((10, 3)))
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="chunk_size"):
        gmm.log_prob(gmm.fit(jax.random.key(0), X, 2)[0], X, chunk_size=0)
    est = GaussianMixture(2, means_init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"The parameter 'means' should have the shape of \(2, 2\)"):
        est.fit(X)
    with pytest.raises(Exception, match="not fitted"):  # a failed fit leaves nothing half-fitted
        est.predict(X)
    with pytest.raises(ValueError, match="precisions_init"):
        GaussianMixture(2, covariance_type="diag", precisions_init=np.full((2, 2), np.nan)).fit(X)


def test_an_int_is_not_a_key():
    import jax

    from jaxgen.models import bayes_gmm, gmm, ppca
    from jaxgen.validation import check_key

    X = np.random.default_rng(0).normal(size=(30, 3))
    for call in (lambda: gmm.fit(0, X, 2), lambda: ppca.fit_em(X, 1, key=0), lambda: bayes_gmm.fit_vb(0, X, 2)):
        with pytest.raises(ValueError, match=r"jax.random.key\(0\)"):
            call()
    assert check_key(jax.random.PRNGKey(0)).shape == (2,)  # raw key data is accepted too
    with pytest.raises(ValueError, match="single JAX PRNG key"):
        check_key(jax.random.split(jax.random.key(0), 3))


def test_hand_built_mixture_parameters_are_checked():
    from jaxgen.models.gmm import GMMParams

    with pytest.raises(ValueError, match="sum to one"):
        GMMParams.from_covariances(np.array([0.5, 0.7]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"means \(K, D\)"):
        GMMParams.from_covariances(np.array([1.0]), np.zeros(2), np.eye(2)[None])
    with pytest.raises(ValueError, match="shape"):
        GMMParams.from_precisions(np.array([1.0]), np.zeros((1, 2)), np.ones(2), "spherical")


def test_object_array_with_a_non_number_is_a_type_error_as_in_sklearn():
    from sklearn.utils import check_array

    X = np.ones((3, 2)).astype(object)
    X[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be .* string.* number") as ref:
        check_array(X)
    with pytest.raises(TypeError, match="argument must be .* string.* number") as ours:
        check_data(X)
    assert str(ref.value) in str(ours.value)  # numpy's own reason, quoted
    X[0, 0] = "a"  # a string is a bad value, not a bad type
    with pytest.raises(ValueError, match="non-numeric"):
        check_data(X)


def test_feature_count_message_is_sklearns_word_for_word():
    from sklearn.mixture import GaussianMixture as SkGMM

    X = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError) as ref:
        SkGMM(1).fit(X).predict(X[:, :3])
    with pytest.raises(ValueError) as ours:
        check_data(X[:, :3], n_features=4, estimator="GaussianMixture")
    assert str(ours.value) == str(ref.value) == "X has 3 features, but GaussianMixture is expecting 4 features as input."


class _HostCopyForbidden:
    """Stands in for NumPy inside jaxgen.validation: any NumPy call given a jax.Array with more than
    one element fails (that would copy the array to the host); scalars may come back."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def guarded(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, jax.Array) and a.size > 1:
                    raise AssertionError(f"np.{name} was given a device array of shape {a.shape}")
            return attr(*args, **kwargs)

        return guarded


def test_jax_arrays_are_checked_on_their_devices(monkeypatch):
    from jaxgen import validation
    from jaxgen.sharding import shard_rows

    monkeypatch.setattr(validation, "np", _HostCopyForbidden())
    X, _ = shard_rows(jnp.arange(32.0).reshape(16, 2))
    assert len(X.sharding.device_set) == 4
    out = check_data(X)
    assert isinstance(out, jax.Array) and out.sharding == X.sharding and out is X  # float32 in, nothing to do
    ints = check_data(shard_rows(jnp.arange(32).reshape(16, 2))[0])
    assert ints.dtype == jnp.float32 and ints.sharding.is_equivalent_to(X.sharding, 2)
    bad = X.at[3, 1].set(jnp.nan).at[5, 0].set(jnp.inf)
    with pytest.raises(ValueError, match="1 NaN, 1 inf"):
        check_data(bad)
    with pytest.raises(ValueError, match="inf"):
        check_data(bad, allow_nan=True)
    assert bool(jnp.isnan(check_data(X.at[3, 1].set(jnp.nan), allow_nan=True)[3, 1]))
    with pytest.raises(ValueError, match="expecting 3 features"):
        check_data(X, n_features=3)
    with pytest.raises(ValueError, match="Reshape your data"):
        check_data(X[:, 0])
    with pytest.raises(ValueError, match="Complex"):
        check_data(X.astype(jnp.complex64))


def test_jax_float64_beyond_float32_range_is_named(x64):
    X = jnp.asarray([[1e39, 1.0]], jnp.float64)
    assert check_data(X).dtype == jnp.float64  # x64 on: kept
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_data(X, dtype=np.float32)


def test_under_jit_only_shapes_are_checked():
    f = jax.jit(lambda x: check_data(x, n_features=2) * 2)
    np.testing.assert_array_equal(f(jnp.ones((3, 2), jnp.int32)), 2.0)
    with pytest.raises(ValueError, match="expecting 2 features"):
        f(jnp.ones((3, 4)))
