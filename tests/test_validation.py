"""The shared input checks: every kind of bad input gets a ValueError that says what is wrong."""
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
    with pytest.raises(ValueError, match="means_init"):
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
