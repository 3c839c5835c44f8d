"""Disentanglement metrics (jaxgen.metrics.disentangle) on hand-built encoders whose answer is known.

The known-answer encoders read the ground truth: for MIG, codes are functions of the sprites'
factors; for the FactorVAE score, ``Identity`` is a data set whose "images" are the factors'
physical values (as disentanglement_lib's identity observations), plus one encoder that really
reads Sprites images (centre of mass and sqrt(area)). Chen et al.'s MIG (``mig_chen``) is checked on
Gaussian encoders of a small full product grid of factors, against a quadrature, and for its
invariances.
"""
import jax
import numpy as np
import pytest
from scipy import integrate, special, stats
from scipy.linalg import hadamard
from sklearn.metrics import mutual_info_score

from jaxgen import keys
from jaxgen.data import Sprites
from jaxgen.metrics import factor_vae_score, mig_chen, mig_histogram, mutual_info_gap
from jaxgen.metrics.disentangle import discrete_entropy, discretize, mutual_info_matrix

SP = Sprites()
NAMES = SP.factor_names
MEAN = np.array([1.0, 0.75, np.pi, 0.5, 0.5])  # roughly centre and scale the physical values
SD = np.array([0.82, 0.17, 1.81, 0.3, 0.3])


class Identity:
    """Sprites' factors, observed directly: ``render`` returns their (M, 5) physical values."""
    factor_names, factor_sizes = SP.factor_names, SP.factor_sizes

    def sample_factors(self, key, n):
        return SP.sample_factors(key, n)

    def render(self, factors):
        return SP.values(factors)


def perfect(values, seed=0, noise=1e-4):
    """One latent per factor (its standardised value + tiny noise), a constant latent, a pure-noise latent."""
    rng = np.random.default_rng(seed)
    v = (np.asarray(values, np.float64) - MEAN) / SD
    n = len(v)
    return np.concatenate([v + noise * rng.standard_normal(v.shape), np.zeros((n, 1)), rng.standard_normal((n, 1))], 1)


def rotation(q, seed):
    return stats.ortho_group.rvs(q, random_state=seed)


@pytest.fixture(scope="module")
def factors():
    return np.asarray(SP.sample_factors(jax.random.key(0), 10_000))


def binned_entropy_ratio(n_values, n_bins=20):
    """H(bin(v)) / H(v) for v uniform on n_values equally spaced values cut into n_bins equal bins
    between the extremes: the most a perfect latent can score under the histogram estimator."""
    i = np.arange(n_values)
    bins = np.minimum(np.floor(i / max(n_values - 1, 1) * n_bins), n_bins - 1)
    p = np.unique(bins, return_counts=True)[1] / n_values
    return -(p * np.log(p)).sum() / np.log(n_values)


# ------------------------------------------------------------------------------------------- MIG
def test_mig_perfect_encoder(factors):
    res = mutual_info_gap(perfect(SP.values(factors)), factors, factor_names=NAMES)
    # MIG < 1 only through the discretisation: shape (3 values) and scale (6) land in distinct bins
    # (ratio 1), 40 orientations and 32 positions share 20 bins (ratios 0.812, 0.850); minus the
    # small positive MI bias of the best *other* latent (0.01 to 0.02 at N = 10 000).
    expect = np.array([binned_entropy_ratio(n) for n in SP.factor_sizes])
    np.testing.assert_allclose(expect, [1, 1, 0.8121, 0.85, 0.85], atol=1e-3)
    got = np.array([res["per_factor"][n] for n in NAMES])
    assert (got <= expect + 1e-9).all() and (got > expect - 0.03).all(), (got, expect)
    assert res["mig"] == pytest.approx(0.8955, abs=0.01)  # measured 0.8955 (key 0, N = 10 000)
    assert res["mutual_info"].shape == (7, 5) and res["entropy"].shape == (5,)
    np.testing.assert_allclose(res["entropy"], np.log(SP.factor_sizes), rtol=0.01)  # uniform factors
    np.testing.assert_allclose(res["mutual_info"][5], 0, atol=1e-12)  # the constant latent knows nothing


def test_mig_rotated_encoder_near_zero(factors):
    z = perfect(SP.values(factors))
    z = (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)
    migs = [mutual_info_gap(z @ rotation(7, s).T, factors)["mig"] for s in range(5)]
    # measured 0.063, 0.038, 0.071, 0.081, 0.095 (mean 0.070)
    assert np.mean(migs) < 0.08 and max(migs) < 0.12, migs
    # every factor spread evenly over 8 latents (Hadamard rotation): no gap at all (measured 0.0006)
    z8 = np.concatenate([z[:, :5], z[:, 6:], np.random.default_rng(1).standard_normal((len(z), 2))], 1)
    assert mutual_info_gap(z8 @ hadamard(8).T / np.sqrt(8), factors)["mig"] < 0.01


def test_mig_duplicated_factor_has_no_gap(factors):
    z = perfect(SP.values(factors))
    base = mutual_info_gap(z, factors, factor_names=NAMES)
    dup = mutual_info_gap(np.concatenate([z, z[:, 3:4]], 1), factors, factor_names=NAMES)
    assert dup["per_factor"]["x"] == pytest.approx(0.0, abs=1e-12)
    for n in ("shape", "scale", "orientation", "y"):
        assert dup["per_factor"][n] == pytest.approx(base["per_factor"][n], abs=1e-12)
    assert dup["mig"] == pytest.approx(base["mig"] - base["per_factor"]["x"] / 5, abs=1e-12)
    sub = mutual_info_gap(z, factors, factor_names=NAMES, subset=("x", "y"))
    assert sub["mig"] == pytest.approx((base["per_factor"]["x"] + base["per_factor"]["y"]) / 2)


def test_mutual_info_against_sklearn_and_scipy(factors):
    rng = np.random.default_rng(3)
    v = np.asarray(SP.values(factors), np.float64)
    z = np.stack([v[:, 2] + rng.normal(0, 1, len(v)), v[:, 3] * v[:, 1], rng.standard_normal(len(v))], 1)
    b = discretize(z, 20)
    # disentanglement_lib's binning: np.digitize against np.histogram's edges
    ref_bins = np.stack([np.digitize(z[:, j], np.histogram(z[:, j], 20)[1][:-1]) - 1 for j in range(3)], 1)
    np.testing.assert_array_equal(b, ref_bins)
    mi = mutual_info_matrix(b, factors)
    ref = np.array([[mutual_info_score(factors[:, k], b[:, j]) for k in range(5)] for j in range(3)])
    np.testing.assert_allclose(mi, ref, atol=1e-12)
    ent = [stats.entropy(np.bincount(factors[:, k])) for k in range(5)]
    np.testing.assert_allclose(discrete_entropy(factors), ent, rtol=1e-12)
    assert mi[0, 2] > 0.1 and mi[1, 3] > 0.1 and mi[2].max() < 0.05  # informative vs noise latent


def test_mig_on_images_centre_of_mass_encoder():
    images, f = SP.sample(jax.random.key(5), 4000)
    res = mutual_info_gap(moments(images), f, factor_names=NAMES)
    pf = res["per_factor"]
    # measured: x 0.81, y 0.81, scale 0.83, shape 0.59 (area differs by shape), orientation 0.0014
    assert pf["x"] > 0.75 and pf["y"] > 0.75 and pf["scale"] > 0.6
    assert pf["orientation"] < 0.02


# ------------------------------------------------------------------------------- MIG, Chen et al.
def grid(sizes=(3, 5, 8, 6)):
    """Every combination of factors with these numbers of values, once: (prod(sizes), K) ints."""
    return np.indices(sizes).reshape(len(sizes), -1).T


def gaussian_encoder(factors, sd=0.02, n_noise=1, seed=0):
    """Posterior means = standardised factor indices (one latent each) and ``n_noise`` latents whose
    posterior N(0, 1) ignores the image; posterior sd ``sd`` on the factor latents."""
    f = np.asarray(factors, np.float64)
    mean = np.concatenate([(f - f.mean(0)) / f.std(0), np.zeros((len(f), n_noise))], 1)
    log_var = np.concatenate([np.full(f.shape, 2 * np.log(sd)), np.zeros((len(f), n_noise))], 1)
    return mean, log_var


def test_mig_chen_two_values_against_quadrature():
    # factor v in {0, 1}, q(z | x) = N(+-d/2, 1) for every image with that value: I(z; v) = h(mixture) - h(N(0, 1))
    n, d = 2000, 2.0
    v = np.repeat([0, 1], n // 2)
    mean = np.stack([np.where(v == 1, d / 2, -d / 2), np.zeros(n)], 1)
    res = mig_chen(mean, np.zeros((n, 2)), np.stack([v, np.tile([0, 1, 2, 3], n // 4)], 1), jax.random.key(0),
                   n_samples=4)

    def mix(x):
        return 0.5 * (stats.norm.pdf(x, -d / 2) + stats.norm.pdf(x, d / 2))

    exact = integrate.quad(lambda x: -mix(x) * np.log(mix(x)), -15, 15)[0] - 0.5 * np.log(2 * np.pi * np.e)
    assert exact == pytest.approx(0.3368, abs=1e-4)
    assert res["mutual_info"][0, 0] == pytest.approx(exact, abs=0.01)  # measured 0.3363 (Monte Carlo, 8000 draws)
    np.testing.assert_allclose(res["mutual_info"][1], 0, atol=1e-5)  # the same posterior for every image
    np.testing.assert_allclose(res["entropy"], [np.log(2), np.log(4)], rtol=1e-12)
    assert res["per_factor"]["factor_0"] == pytest.approx(res["mutual_info"][0, 0] / np.log(2), abs=1e-5)


def test_mig_chen_perfect_encoder_is_one_without_bins():
    f = grid()
    mean, log_var = gaussian_encoder(f)
    res = mig_chen(mean, log_var, f, jax.random.key(1))
    # well separated spikes (values 22 sd or more apart): I(z_k; v_k) = H(v_k); on a full product grid
    # every other latent has q(z_j | v_k) = q(z_j), so I = 0 up to float32 rounding
    mi = res["mutual_info"]
    np.testing.assert_allclose(np.diag(mi[:4]), np.log([3, 5, 8, 6]), atol=1e-3)
    off = mi[:4][~np.eye(4, dtype=bool)]
    np.testing.assert_allclose(off, 0, atol=1e-4)
    np.testing.assert_allclose(mi[4], 0, atol=1e-5)
    assert res["mig"] > 0.999 and min(res["per_factor"].values()) > 0.999
    # the histogram estimator agrees here (<= 20 values per factor, 20 bins: each value its own bin)
    assert mig_histogram(mean, f)["mig"] == pytest.approx(1.0, abs=1e-9)
    sub = mig_chen(mean, log_var, f, jax.random.key(1), factor_names=list("abcd"), subset=("b", "d"))
    assert sub["mig"] == pytest.approx((res["per_factor"]["factor_1"] + res["per_factor"]["factor_3"]) / 2)


def test_mig_chen_entangled_encoder_near_zero():
    f = grid()
    mean, log_var = gaussian_encoder(f, n_noise=4)
    mean[:, 4:] = np.random.default_rng(2).standard_normal((len(f), 4))  # noise codes, independent of the factors
    H = hadamard(8) / np.sqrt(8)  # every factor spread evenly over 8 latents
    res = mig_chen(mean @ H.T, log_var, f, jax.random.key(2))
    assert res["mig"] < 0.05, res["per_factor"]  # measured 0.012
    assert res["mutual_info"].max() > 0.05  # the latents do know the factors, all equally


def test_mig_chen_against_the_definition_in_float64():
    # unequal posteriors, unbalanced factors: the estimate written out directly with scipy's logsumexp
    # (the same draws: z = mean + sd * jax.random.normal(key, (n_samples, N, q)))
    rng = np.random.default_rng(4)
    n, q = 90, 3
    f = np.stack([rng.integers(0, 3, n), rng.integers(0, 7, n)], 1)
    mean = rng.standard_normal((n, q)) + f[:, :1]
    log_var = rng.normal(-1.0, 0.7, (n, q))
    res = mig_chen(mean, log_var, f, jax.random.key(5), n_samples=2, chunk_size=16, block_size=32)
    z = mean + np.exp(0.5 * log_var) * np.asarray(jax.random.normal(jax.random.key(5), (2, n, q)))

    def entropy(rows):
        zs = z[:, rows].reshape(-1, q)  # (S, q) against the images of ``rows``
        lp = stats.norm.logpdf(zs[:, None], mean[rows][None], np.exp(0.5 * log_var[rows])[None])
        return -(special.logsumexp(lp, axis=1) - np.log(len(rows))).mean(0)

    h_z = entropy(np.arange(n))
    mi = np.stack([h_z - sum(np.mean(f[:, k] == v) * entropy(np.flatnonzero(f[:, k] == v)) for v in np.unique(f[:, k]))
                   for k in range(2)], 1)
    np.testing.assert_allclose(res["latent_entropy"], h_z, atol=2e-5)
    np.testing.assert_allclose(res["mutual_info"], mi, atol=2e-5)
    top = np.sort(mi, axis=0)[::-1]
    h = [stats.entropy(np.bincount(f[:, k])) for k in range(2)]
    assert res["mig"] == pytest.approx(np.mean((top[0] - top[1]) / h), abs=2e-5)


def test_mig_chen_invariances():
    f = grid((3, 4, 5))
    mean, log_var = gaussian_encoder(f, sd=0.3)
    base = mig_chen(mean, log_var, f, jax.random.key(3))
    # an affine map of one latent (z -> a z + b) with the same draws shifts H(z_j) and H(z_j | v) by log|a|
    a, b = np.array([4.0, 1.0, 0.5, 1.0]), np.array([3.0, 0.0, -1.0, 0.0])
    moved = mig_chen(mean * a + b, log_var + 2 * np.log(a), f, jax.random.key(3))
    np.testing.assert_allclose(moved["mutual_info"], base["mutual_info"], atol=2e-5)
    np.testing.assert_allclose(moved["latent_entropy"] - base["latent_entropy"], np.log(a), atol=2e-5)
    # the chunking of draws and images is invisible
    small = mig_chen(mean, log_var, f, jax.random.key(3), chunk_size=7, block_size=11)
    np.testing.assert_allclose(small["mutual_info"], base["mutual_info"], atol=2e-5)


# -------------------------------------------------------------------------------- FactorVAE score
def moments(images):
    """A hand-built image encoder: column and row of the centre of mass, sqrt(pixel count), a constant."""
    im = np.asarray(images)[..., 0] > 0
    m = im.sum((1, 2))
    r = np.arange(im.shape[1])
    return np.stack([(im.sum(1) * r).sum(1) / m, (im.sum(2) * r).sum(1) / m, np.sqrt(m), np.zeros(len(m))], 1)


SMALL = dict(n_train=300, n_eval=300, batch_size=64, n_global=5000)


def test_factor_vae_score_perfect_encoder():
    res = factor_vae_score(perfect, Identity(), jax.random.key(0), **SMALL)
    assert res["score"] == 1.0 and res["train_accuracy"] == 1.0  # the fixed factor's latent has variance ~1e-8
    np.testing.assert_array_equal(res["active"], [True] * 5 + [False, True])  # the constant latent is pruned
    votes = res["votes"]
    assert votes.shape == (7, 5) and votes.sum() == 300 and res["eval_votes"].sum() == 300
    np.testing.assert_array_equal(np.diag(votes[:5]), votes[:5].sum(1))  # each factor votes for its own latent
    assert votes[5:].sum() == 0


def test_factor_vae_score_rotated_encoders():
    R = rotation(7, 0)
    res = factor_vae_score(lambda v: perfect(v) @ R.T, Identity(), jax.random.key(0), **SMALL)
    # A random rotation fools the FactorVAE score only in part: fixing factor k lowers the variance of
    # latent j by R[j, k]^2, so the latent with the largest loading still wins most votes; measured
    # 0.817 (key 0; 0.83 +- 0.02 over keys 0..2).
    assert 0.7 < res["score"] < 0.95 and res["active"].all()
    # spread evenly over 8 latents (Hadamard), every latent's variance drops by the same 1/8: the votes
    # are noise and the score falls to chance, 1/K = 0.2 (measured 0.203, 0.187, 0.187, 0.187)
    H = hadamard(8) / np.sqrt(8)
    rng = np.random.default_rng(0)

    def entangled(v):
        z = (np.asarray(v, np.float64) - MEAN) / SD
        return np.concatenate([z, rng.standard_normal((len(z), 3))], 1) @ H.T

    assert factor_vae_score(entangled, Identity(), jax.random.key(0), **SMALL)["score"] < 0.3


def test_factor_vae_score_votes_invariant_to_rescaled_latents():
    # Kim & Mnih divide each latent by its standard deviation, so a latent multiplied by a constant
    # gets the same normalised variances and the same votes (powers of 2: exact in floating point).
    # Dividing by the variance instead would scale latent j's normalised variance by 1 / c_j^2.
    R = rotation(7, 0)
    c = np.array([8.0, 1.0, 0.25, 1.0, 16.0, 1.0, 0.5])

    def encode(v):
        return perfect(v) @ R.T

    kw = SMALL  # the shapes of the tests above: nothing new to compile
    base = factor_vae_score(encode, Identity(), jax.random.key(0), **kw)
    scaled = factor_vae_score(lambda v: encode(v) * c, Identity(), jax.random.key(0), **kw)
    assert base["active"].all() and scaled["active"].all()
    np.testing.assert_array_equal(scaled["votes"], base["votes"])
    np.testing.assert_array_equal(scaled["eval_votes"], base["eval_votes"])
    assert scaled["score"] == base["score"]


def test_factor_vae_score_on_sprite_images():
    res = factor_vae_score(moments, SP, jax.random.key(0), n_train=200, n_eval=200, batch_size=32, n_global=2000)
    # x, y and scale each own a latent; shape and orientation votes go wherever the noise puts them:
    # about 3 / 5 of the votes are right (measured 0.65; 0.62 with 300 votes of 64 images)
    np.testing.assert_array_equal(res["active"], [True, True, True, False])
    classifier = res["votes"].argmax(1)
    assert classifier[0] == SP.axis("x") and classifier[1] == SP.axis("y") and classifier[2] == SP.axis("scale")
    assert 0.5 < res["score"] < 0.8, res["score"]


def test_factor_vae_score_deterministic_chunked_and_keyed():
    R = rotation(5, 1)
    calls = []

    def encode(v):
        calls.append(v.shape)
        return ((np.asarray(v, np.float64) - MEAN) / SD) @ R.T

    kw = dict(n_train=50, n_eval=40, batch_size=16, n_global=300)
    with keys.recording(all_derivations=True) as rec:
        a = factor_vae_score(encode, Identity(), jax.random.key(4), chunk_size=128, **kw)
    keys.assert_distinct(rec)
    assert len(set(calls)) == 1 and calls[0] == (128, 5)  # one shape: a jitted encoder compiles once
    b = factor_vae_score(encode, Identity(), jax.random.key(4), chunk_size=10_000, **kw)
    c = factor_vae_score(encode, Identity(), jax.random.key(5), chunk_size=128, **kw)
    np.testing.assert_array_equal(a["votes"], b["votes"])
    np.testing.assert_array_equal(a["eval_votes"], b["eval_votes"])
    assert not np.array_equal(a["votes"], c["votes"])


def test_factor_vae_score_collapsed_encoder_scores_zero():
    res = factor_vae_score(lambda v: np.zeros((len(v), 3)), Identity(), jax.random.key(0), n_global=100)
    assert res["score"] == 0.0 and not res["active"].any()


# ------------------------------------------------------------------------------------ bad input
def test_bad_input(factors):
    z = perfect(SP.values(factors[:100]))
    f = factors[:100]
    with pytest.raises(ValueError, match="MIG needs ground-truth factors.*got None"):
        mutual_info_gap(z, None)
    with pytest.raises(ValueError, match="MIG needs ground-truth factors.*data set object \\(Sprites\\)"):
        mutual_info_gap(z, SP)
    with pytest.raises(ValueError, match="labels\\[:, None\\]"):
        mutual_info_gap(z, f[:, 0])
    with pytest.raises(ValueError, match="dtype float"):
        mutual_info_gap(z, np.asarray(SP.values(f)))
    with pytest.raises(ValueError, match="100 codes but 99 factor rows"):
        mutual_info_gap(z, f[:99])
    with pytest.raises(ValueError, match="q >= 2"):
        mutual_info_gap(z[:, :1], f)
    with pytest.raises(ValueError, match="non-finite"):
        mutual_info_gap(np.where(np.eye(100, 7) > 0, np.nan, z), f)
    with pytest.raises(ValueError, match="unknown factor name.*'colour'.*factors are"):
        mutual_info_gap(z, f, factor_names=NAMES, subset=("x", "colour"))
    with pytest.raises(ValueError, match="factor_names must be 5 distinct"):
        mutual_info_gap(z, f, factor_names=NAMES[:4])
    with pytest.raises(ValueError, match="n_bins must be an integer >= 2"):
        mutual_info_gap(z, f, n_bins=1)
    with pytest.raises(ValueError, match="constant in this sample"):
        mutual_info_gap(z, np.zeros_like(f))

    lv = np.zeros_like(z)
    with pytest.raises(ValueError, match="same shape"):
        mig_chen(z, lv[:, :3], f, jax.random.key(0))
    with pytest.raises(ValueError, match="MIG needs ground-truth factors.*got None"):
        mig_chen(z, lv, None, jax.random.key(0))
    with pytest.raises(ValueError, match="log_var holds .* non-finite"):
        mig_chen(z, np.full_like(z, np.inf), f, jax.random.key(0))
    with pytest.raises(ValueError, match="PRNG key"):
        mig_chen(z, lv, f, 0)
    with pytest.raises(ValueError, match="unknown factor name.*'colour'"):
        mig_chen(z, lv, f, jax.random.key(0), factor_names=NAMES, subset=("colour",))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        mig_chen(z, lv, f, jax.random.key(0), n_samples=0)

    key = jax.random.key(0)
    mnist_like = np.zeros((10, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="needs a data set with ground-truth factors.*array of shape \\(10, 28, 28\\)"):
        factor_vae_score(moments, mnist_like, key)
    with pytest.raises(ValueError, match="needs a data set with ground-truth factors.*got None"):
        factor_vae_score(moments, None, key)
    with pytest.raises(ValueError, match="encode_fn must be a function"):
        factor_vae_score(None, SP, key)
    with pytest.raises(ValueError, match="PRNG key"):
        factor_vae_score(moments, SP, 0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        factor_vae_score(moments, SP, key, batch_size=1)
    with pytest.raises(ValueError, match="encode_fn must map images"):
        factor_vae_score(lambda v: np.zeros((3, 2)), Identity(), key, n_global=20)
    with pytest.raises(ValueError, match="non-finite"):
        factor_vae_score(lambda v: np.full((len(v), 2), np.nan), Identity(), key, n_global=20)
