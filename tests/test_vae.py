"""VAE: the linear-Gaussian VAE is PPCA (exact marginal likelihood), bound orderings, priors that
normalise, analytic vs Monte Carlo KL, likelihoods against scipy, latent-space tools, bad input."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats
from scipy.special import logsumexp

from jaxgen.data import to_float
from jaxgen.models import ppca, vae

D, Q = 6, 2


# --------------------------------------------------------------------------------------------
# PPCA as a VAE: decoder x = W z + mu + N(0, sigma2 I), encoder affine in x


@pytest.fixture(scope="module")
def ppca_case():
    """A PPCA model with orthogonal W (so its posterior covariance is diagonal) and its VAE twin.

    Returns ``(X, exact log p(X), make(shift, inflate) -> VAEParams)``: ``make(0, 1)`` has the exact
    posterior as encoder; other values shift its mean / inflate its variance."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        U, _ = np.linalg.qr(rng.normal(size=(D, Q)))
        W, mu, s2 = U * np.array([2.0, 1.0]), rng.normal(size=D), 0.3
        P = ppca.PPCAParams(mu=jnp.asarray(mu), W=jnp.asarray(W), sigma2=jnp.asarray(s2))
        X = np.asarray(ppca.sample(jax.random.key(0), P, 8)[0])
        exact = np.asarray(ppca.log_prob(P, X))
        cfg = vae.VAEConfig(image_shape=(D, 1, 1), latent_dim=Q, hidden=(), likelihood="gaussian", min_obs_var=0.0)
        template = vae.init(jax.random.key(0), cfg)
        M = W.T @ W + s2 * np.eye(Q)
        A = np.linalg.solve(M, W.T)  # posterior mean M^-1 W^T (x - mu); covariance s2 M^-1 (diagonal here)
        post_var = s2 * np.diag(np.linalg.inv(M))
        # The construction really is the PPCA posterior (an independent formula: ppca.encode).
        np.testing.assert_allclose((X - mu) @ A.T, np.asarray(ppca.encode(P, X)[0]), atol=1e-12)

    def make(shift=0.0, inflate=1.0):
        enc = {"mean": {"kernel": A.T, "bias": -A @ mu + shift},
               "log_var": {"kernel": np.zeros((D, Q)), "bias": np.log(post_var * inflate)}}
        dec = {"net": {"dense_0": {"kernel": W.T, "bias": mu}}, "log_var": np.full(D, np.log(s2))}
        return template.replace(encoder=jax.tree.map(jnp.asarray, enc), decoder=jax.tree.map(jnp.asarray, dec))

    return X, exact, make


def test_exact_posterior_gives_exact_likelihood(ppca_case, x64):
    X, exact, make = ppca_case
    p = make()
    assert jax.tree.structure(p.encoder) == jax.tree.structure(vae.init(jax.random.key(1), p.config).encoder)
    # Importance weights p(x, z) / q(z | x) = p(x) for every z: zero variance, even with k = 1.
    np.testing.assert_allclose(vae.log_prob(p, X, jax.random.key(1), k=1), exact, atol=1e-10)
    # Chunking over data (padding 5 -> 6 rows) and over samples (7 = 3 + 3 + 1 masked) changes nothing.
    lp = vae.log_prob(p, X[:5], jax.random.key(2), k=7, batch_size=2, k_chunk=3)
    assert lp.dtype == jnp.float64
    np.testing.assert_allclose(lp, exact[:5], atol=1e-10)
    np.testing.assert_allclose(vae.iwae_bound(p, X, jax.random.key(3), k=4), exact, atol=1e-10)
    # The ELBO equals log p(x) in expectation (KL to the true posterior is 0).
    el = np.mean([np.asarray(vae.elbo(p, X, jax.random.key(i))) for i in range(100)], axis=0)
    np.testing.assert_allclose(el.mean(), exact.mean(), atol=0.1)


def test_importance_sampling_converges_to_ppca(ppca_case, x64):
    X, exact, make = ppca_case
    p = make(shift=0.5, inflate=3.0)  # a poor encoder: only the sample count closes the gap
    err = {k: float(np.mean(np.abs(np.asarray(vae.log_prob(p, X, jax.random.key(k), k=k)) - exact)))
           for k in (1, 100, 5000)}
    assert err[5000] < err[100] < err[1]
    assert err[1] > 1.0 and err[5000] < 0.05


def test_iwae_bounds_are_ordered(ppca_case, x64):
    X, exact, make = ppca_case
    p = make(shift=0.5, inflate=3.0)
    keys = jax.random.split(jax.random.key(0), 100)
    el = np.mean([np.asarray(vae.elbo(p, X, k)).mean() for k in keys])
    iw = {k: np.mean([np.asarray(vae.iwae_bound(p, X, kk, k)).mean() for kk in keys]) for k in (1, 5, 50)}
    # IWAE(1) is the ELBO (Monte Carlo KL instead of analytic): equal in expectation.
    assert abs(iw[1] - el) < 0.3
    assert el < iw[5] < iw[50] < exact.mean() + 0.02


# --------------------------------------------------------------------------------------------
# terms of the ELBO against independent computations


def test_kl_and_likelihoods_match_scipy():
    cfg = vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=3, hidden=(8,))
    p = vae.init(jax.random.key(0), cfg)
    rng = np.random.default_rng(0)
    x = (rng.random((5, 16)) < 0.5).astype(np.float32)
    mean, log_var = map(np.asarray, vae.encode(p, x))
    rec, kl = map(np.asarray, vae.elbo_terms(p, x, jax.random.key(1)))
    # Analytic KL vs a Monte Carlo average of log q(z|x) - log p(z) computed with scipy.
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(20000, *mean.shape))
    mc = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1) - stats.norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(kl, mc.mean(0), atol=4 * mc.std(0).max() / np.sqrt(len(z)))
    # The Bernoulli likelihood of binary data.
    zz = rng.normal(size=(5, 3)).astype(np.float32)
    probs = 1 / (1 + np.exp(-np.asarray(vae.decode(p, zz)["logits"], np.float64)))
    np.testing.assert_allclose(vae.log_likelihood(p, x, zz), stats.bernoulli.logpmf(x, probs).sum(1), rtol=1e-5)
    # The Gaussian likelihood with a fixed variance.
    g = vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=3, hidden=(8,),
                                                 likelihood="gaussian", variance="fixed", obs_var=0.5))
    d = vae.decode(g, zz)
    np.testing.assert_allclose(np.asarray(d["log_var"]), np.log(0.5), rtol=1e-6)
    ref = stats.norm.logpdf(x, np.asarray(d["mean"]), np.sqrt(0.5)).sum(1)
    np.testing.assert_allclose(vae.log_likelihood(g, x, zz), ref, rtol=1e-5)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_mixture_priors_match_direct_mixture_and_normalise(prior):
    cfg = vae.VAEConfig(image_shape=(3, 3, 1), latent_dim=2, hidden=(8,), likelihood="gaussian", prior=prior,
                        n_components=3)
    p = vae.init(jax.random.key(0), cfg)
    if prior == "mog":
        p = p.replace(prior={**p.prior, "logits": jnp.array([0.0, 1.0, -1.0]),
                             "log_scales": p.prior["log_scales"] + jnp.array([[0.0, 0.2], [-0.3, 0.1], [0.4, 0.0]])})
        means, stds = np.asarray(p.prior["means"]), np.exp(np.asarray(p.prior["log_scales"]))
        w = np.exp(np.asarray(jax.nn.log_softmax(p.prior["logits"])))
    else:  # VampPrior: the encoder's posteriors of the pseudo-inputs, equally weighted
        m, lv = map(np.asarray, vae.encode(p, np.asarray(p.prior["pseudo_inputs"])))
        means, stds, w = m, np.exp(0.5 * lv), np.full(3, 1 / 3)
    z = np.random.default_rng(0).normal(size=(50, 2)) * 2
    direct = logsumexp(np.log(w) + stats.norm.logpdf(z[:, None, :], means, stds).sum(-1), axis=1)
    np.testing.assert_allclose(vae.prior_log_prob(p, z.astype(np.float32)), direct, rtol=1e-5, atol=1e-5)
    # Integrates to one over a grid wide enough to hold the mass.
    lo, hi = means.min(0) - 6 * stds.max(), means.max(0) + 6 * stds.max()
    g0, g1 = np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300)
    grid = np.stack(np.meshgrid(g0, g1), -1).reshape(-1, 2).astype(np.float32)
    dens = np.exp(np.asarray(vae.prior_log_prob(p, grid), np.float64))
    assert abs(dens.sum() * (g0[1] - g0[0]) * (g1[1] - g1[0]) - 1) < 1e-3
    # Samples follow the mixture: their mean is the weighted component mean.
    s = np.asarray(vae.sample(jax.random.key(1), p, 20000)[1])
    np.testing.assert_allclose(s.mean(0), w @ means, atol=0.05)


# --------------------------------------------------------------------------------------------
# the Burda et al. architecture, conv variant, training step


def test_burda_architecture_shapes_and_counts():
    p = vae.init(jax.random.key(0), vae.VAEConfig())  # 784-200-200-50 tanh, Bernoulli, N(0, I)
    n = vae.num_params(p)
    assert n["encoder"] == 784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 50 + 50)
    assert n["decoder"] == 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    assert n["prior"] == 0
    x = np.zeros((3, 28, 28), np.uint8)  # uint8 images are accepted (scaled by 1/255)
    m, lv = vae.encode(p, x)
    assert m.shape == lv.shape == (3, 50) and m.dtype == jnp.float32
    assert vae.decode(p, m)["logits"].shape == (3, 784)
    xs, zs = vae.sample(jax.random.key(1), p, 4)
    assert xs.shape == (4, 784) and zs.shape == (4, 50) and float(xs.min()) >= 0 and float(xs.max()) <= 1
    xb, _ = vae.sample(jax.random.key(1), p, 4, mean=False)
    assert set(np.unique(np.asarray(xb))) <= {0.0, 1.0}


def test_training_reduces_loss_and_loss_is_negative_bound():
    cfg = vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(16,), architecture="mlp")
    p = vae.init(jax.random.key(0), cfg)
    x = (np.random.default_rng(0).random((32, 16)) < np.linspace(0.1, 0.9, 16)).astype(np.float32)
    key = jax.random.key(5)
    loss, metrics = vae.loss_fn(name="elbo")(p, {"x": x}, key)
    np.testing.assert_allclose(loss, -np.mean(vae.elbo(p, x, jax.random.split(key)[1])), rtol=1e-5)
    assert set(metrics) == {"elbo", "recon", "kl", "kl_weight"}
    # KL warm-up: the weight ramps linearly with the step.
    warm = vae.loss_fn(name="elbo", warmup_steps=10, beta=2.0)
    assert float(warm(p, x, key, step=5)[1]["kl_weight"]) == pytest.approx(1.0)
    iwae = vae.loss_fn(vae.Objective("iwae", k=5, binarize=True))
    opt = optax.adam(3e-2)

    @jax.jit
    def step(p, s, k):
        (l, _), g = jax.value_and_grad(iwae, has_aux=True)(p, x, k)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    s, losses = opt.init(p), []
    for i in range(60):
        p, s, l = step(p, s, jax.random.key(i))
        losses.append(float(l))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0


def test_conv_vae_gradients_finite():
    # 12 x 10: the decoder starts from ceil(10 / 4) = 3 columns and crops 12 back to 10.
    cfg = vae.VAEConfig(image_shape=(12, 10, 1), latent_dim=2, architecture="conv", conv_features=(4, 8),
                        conv_dense=16, likelihood="gaussian", activation="relu", prior="vamp", n_components=2)
    p = vae.init(jax.random.key(0), cfg)
    x = np.random.default_rng(0).random((3, 12, 10)).astype(np.float32)
    assert vae.reconstruct(p, x).shape == (3, 120)
    g = jax.jit(jax.grad(lambda q: vae.loss_fn("iwae", k=2)(q, x.reshape(3, -1), jax.random.key(0))[0]))(p)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(g))
    assert float(jnp.linalg.norm(g.prior["pseudo_inputs"])) > 0  # the VampPrior's pseudo-inputs learn


def test_fit_trains_vae_data_parallel():
    """The loss plugs into jaxgen.train.fit: uint8 data, dynamic binarisation, batches split over 4 devices."""
    from jaxgen import train

    assert len(jax.devices()) == 4  # conftest's virtual CPU devices
    cfg = vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(16,))
    x = (np.random.default_rng(0).random((64, 16)) * np.linspace(0, 255, 16)).astype(np.uint8)
    state, hist = train.fit(vae.loss_fn("elbo", binarize=True), vae.init(jax.random.key(0), cfg), optax.adam(3e-2), x,
                            key=jax.random.key(1), epochs=8, batch_size=16, progress=False, tensorboard=False)
    assert isinstance(state.params, vae.VAEParams) and state.params.config == cfg
    assert hist[-1]["loss"] < hist[0]["loss"] - 0.5
    assert hist[-1]["elbo"] == pytest.approx(-hist[-1]["loss"], rel=1e-5)  # beta = 1: loss = -ELBO


# --------------------------------------------------------------------------------------------
# latent space tools


def test_interpolation_and_attributes():
    cfg = vae.VAEConfig(image_shape=(3, 3, 1), latent_dim=3, hidden=(8,))
    p = vae.init(jax.random.key(0), cfg)
    rng = np.random.default_rng(0)
    x0, x1 = rng.random((2, 9)).astype(np.float32), rng.random((2, 9)).astype(np.float32)
    for method in ("linear", "slerp"):
        imgs, z = vae.interpolate(p, x0, x1, n=5, method=method)
        assert imgs.shape == (2, 5, 9) and z.shape == (2, 5, 3)
        np.testing.assert_allclose(imgs[:, 0], vae.reconstruct(p, x0), atol=1e-5)
        np.testing.assert_allclose(imgs[:, -1], vae.reconstruct(p, x1), atol=1e-5)
    # slerp between vectors of equal norm stays on their sphere.
    m0 = np.asarray(vae.encode(p, x0)[0])
    t = np.linspace(0, 1, 5)
    from jaxgen.models._latent import latent_path
    z = np.asarray(latent_path(jnp.asarray(m0), jnp.asarray(-m0[:, ::-1].copy() * 1.0), jnp.asarray(t), "slerp"))
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), np.linalg.norm(m0, axis=-1)[:, None] * np.ones(5), rtol=1e-4)

    x = rng.random((20, 9)).astype(np.float32)
    labels = np.arange(20) % 2
    v = np.asarray(vae.attribute_vector(p, x, labels, 0, 1))
    mu = np.asarray(vae.encode(p, x)[0])
    np.testing.assert_allclose(v, mu[1::2].mean(0) - mu[::2].mean(0), atol=1e-6)
    out = vae.apply_attribute(p, x[:4], v, alpha=[0.0, 1.0])
    assert out.shape == (2, 4, 9)
    np.testing.assert_allclose(out[0], vae.reconstruct(p, x[:4]), atol=1e-6)
    np.testing.assert_allclose(out[1], vae.decode_mean(p, mu[:4] + v), atol=1e-6)
    with pytest.raises(ValueError, match="no example has label b=7"):
        vae.attribute_vector(p, x, labels, 0, 7)


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_clear_errors():
    p = vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(4,)))
    x = np.random.default_rng(0).random((3, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=r"shape \(N, 16\) or \(N, 4, 4, 1\)"):
        vae.encode(p, x[:, :15])
    with pytest.raises(ValueError, match=r"\[0, 1\] for the Bernoulli likelihood"):
        vae.elbo(p, x * 255, jax.random.key(0))
    with pytest.raises(ValueError, match="NaN"):
        vae.reconstruct(p, np.where(x > 0.5, np.nan, x))
    for bad_k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            vae.log_prob(p, x, jax.random.key(0), k=bad_k)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        vae.iwae_bound(p, x, jax.random.key(0), 0)
    with pytest.raises(ValueError, match=r"likelihood must be one of \['bernoulli', 'gaussian'\]"):
        vae.VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match=r"prior must be one of \['mog', 'normal', 'vamp'\]"):
        vae.VAEConfig(prior="flow")
    with pytest.raises(ValueError, match="architecture must be one of"):
        vae.VAEConfig(architecture="resnet")
    with pytest.raises(ValueError, match="objective must be one of"):
        vae.loss_fn(name="vae")
    with pytest.raises(ValueError, match="unknown objective setting"):
        vae.loss_fn({"name": "elbo", "kk": 3})
    # uint8 bytes are scaled by 1/255, the same as jaxgen.data.to_float.
    u8 = (x * 255).astype(np.uint8)
    np.testing.assert_allclose(vae.encode(p, u8)[0], vae.encode(p, to_float(u8))[0], atol=1e-6)


def test_uint8_input_same_under_jit_and_warmup_needs_the_step():
    p = vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(2, 2, 1), latent_dim=2, hidden=(8,)))
    x = np.random.default_rng(0).integers(0, 256, (3, 4)).astype(np.uint8)
    key = jax.random.key(1)
    np.testing.assert_allclose(jax.jit(lambda p, x: vae.elbo(p, x, key))(p, x), vae.elbo(p, x, key), rtol=1e-6)
    loss = vae.loss_fn(vae.Objective(warmup_steps=10))
    with pytest.raises(ValueError, match="warm-up"):
        loss(p, x.astype(np.float32) / 255.0, key)


def test_config_widths_are_not_truncated():
    assert vae.VAEConfig(hidden=200).hidden == (200,)
    with pytest.raises(ValueError, match="hidden"):
        vae.VAEConfig(hidden=(200.5,))
    with pytest.raises(ValueError, match="image_shape"):
        vae.VAEConfig(image_shape=784)


def test_fit_rejects_unscaled_pixels_and_wrong_width_before_training():
    """scikit-learn's digits hold 0..16: a Bernoulli VAE must refuse them before any step (they used
    to train silently); data of the wrong width are a ValueError too, also under jit. JAX arrays are
    checked on their device with the same results as NumPy input."""
    from jaxgen import train

    p = vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(8, 8, 1), latent_dim=2, hidden=(8,)))
    X = np.random.default_rng(0).integers(0, 17, (32, 64)).astype(np.float32)
    X[0, 0] = 16.0
    run = dict(key=jax.random.key(1), epochs=1, batch_size=16, progress=False, tensorboard=False)
    loss = vae.loss_fn("elbo", binarize=True)
    for data in (X, jnp.asarray(X), {"x": X}, X.astype(np.int64)):
        with pytest.raises(ValueError, match=r"train_data must lie in \[0, 1\] for the Bernoulli likelihood, got "
                           r"range \[0, 16\]\. Scale the data"):
            train.fit(loss, p, optax.adam(1e-3), data, **run)
    with pytest.raises(ValueError, match=r"train_data must have shape \(N, 64\) or \(N, 8, 8, 1\) for this VAE"):
        train.fit(loss, p, optax.adam(1e-3), X[:, :60] / 16, **run)
    with pytest.raises(ValueError, match=r"batch must have shape \(N, 64\)"):
        jax.jit(loss)(p, jnp.zeros((4, 60)), jax.random.key(0))
    # scaled data train; device arrays give the same numbers as host arrays
    state, _ = train.fit(loss, p, optax.adam(1e-3), jnp.asarray(X / 16), **run)
    assert int(state.step) == 2
    np.testing.assert_allclose(vae.encode(p, jnp.asarray(X / 16))[0], vae.encode(p, X / 16)[0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        vae.encode(p, jnp.asarray(X))
    with pytest.raises(ValueError, match="1 NaN or inf"):
        vae.encode(p, jnp.asarray(X / 16).at[3, 5].set(jnp.nan))
    with pytest.raises(ValueError, match=r"z must have shape \(M, 2\)"):
        vae.decode(p, jnp.zeros((3, 5)))


class TestWithAndWithoutJit(chex.TestCase):
    """The public functions and the training loss give the same numbers jitted and not (chex.variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_loss_and_bounds(self):
        p = vae.init(jax.random.key(0), vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(8,)))
        x = jnp.asarray(np.random.default_rng(0).random((6, 16)), jnp.float32)
        key = jax.random.key(3)
        for objective in (vae.Objective("elbo", warmup_steps=4), vae.Objective("iwae", k=3, binarize=True)):
            loss = vae.loss_fn(objective)
            got, metrics = self.variant(lambda p, x, key: loss(p, {"x": x, "step": jnp.int32(2)}, key))(p, x, key)
            want, want_metrics = loss(p, {"x": x, "step": 2}, key)
            chex.assert_trees_all_close((got, metrics), (want, want_metrics), rtol=1e-5)
            chex.assert_shape(got, ())
        chex.assert_trees_all_close(self.variant(lambda p, x: vae.iwae_bound(p, x, key, 4))(p, x),
                                    vae.iwae_bound(p, x, key, 4), rtol=1e-5)


def test_inpaint_samples_the_ppca_conditional(ppca_case, x64):
    """With the exact posterior as encoder the pseudo-Gibbs chain is a Gibbs sampler of
    p(z, x_missing | x_observed): its completions have the Gaussian conditional's mean and
    covariance. An encoder that ignored the observed pixels, or a chain that kept its first draw,
    would give the prior's marginal instead (mean off by several standard errors)."""
    X, _, make = ppca_case
    p = make()
    W, mu, s2 = np.asarray(p.decoder["net"]["dense_0"]["kernel"]).T, np.asarray(p.decoder["net"]["dense_0"]["bias"]), 0.3
    obs = np.array([True, False, True, False, True, False])
    x = X[:1] + 3.0 * (X[:1] - mu)  # far from the mean, so that the conditional differs from the marginal
    S = W @ W.T + s2 * np.eye(D)
    o, m = obs, ~obs
    cond_mean = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], x[0, o] - mu[o])
    cond_cov = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    n = 4000
    out = np.asarray(vae.inpaint(jax.random.key(0), p, x, obs, n_samples=n, n_iter=30))
    assert out.shape == (1, n, D)
    assert np.array_equal(out[0][:, obs], np.broadcast_to(x[0, obs], (n, obs.sum())))  # observed pixels kept exactly
    sem = np.sqrt(np.diag(cond_cov) / n)
    np.testing.assert_array_less(np.abs(out[0][:, m].mean(0) - cond_mean), 4 * sem)
    np.testing.assert_allclose(np.cov(out[0][:, m].T), cond_cov, atol=0.1 * np.abs(cond_cov).max())
    assert np.max(np.abs(mu[m] - cond_mean) / np.sqrt(np.diag(cond_cov))) > 2  # the test can tell them apart


def test_inpaint_is_deterministic_keeps_binary_pixels_and_checks_its_mask():
    cfg = vae.VAEConfig(image_shape=(4, 4, 1), latent_dim=2, hidden=(8,))
    p = vae.init(jax.random.key(0), cfg)
    x = (np.random.default_rng(0).random((3, 4, 4)) > 0.5).astype(np.float32)
    obs = np.zeros((4, 4), bool)
    obs[:2] = True  # the upper half given
    a = np.asarray(vae.inpaint(jax.random.key(1), p, x, obs, n_samples=2, n_iter=5))
    assert a.shape == (3, 2, 16) and set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a[:, :, :8], np.repeat(x.reshape(3, 1, 16)[:, :, :8], 2, axis=1))
    np.testing.assert_array_equal(a, vae.inpaint(jax.random.key(1), p, x, obs, n_samples=2, n_iter=5))
    assert not np.array_equal(a, vae.inpaint(jax.random.key(2), p, x, obs, n_samples=2, n_iter=5))
    per_image = np.broadcast_to(obs.reshape(16), (3, 16))
    np.testing.assert_array_equal(a, vae.inpaint(jax.random.key(1), p, x, per_image, n_samples=2, n_iter=5))
    with pytest.raises(ValueError, match="observed must have shape"):
        vae.inpaint(jax.random.key(1), p, x, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="boolean mask"):
        vae.inpaint(jax.random.key(1), p, x, obs.astype(int))
    with pytest.raises(ValueError, match="n_iter"):
        vae.inpaint(jax.random.key(1), p, x, obs, n_iter=-1)
