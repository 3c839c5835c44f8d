"""Disentangling objectives: beta > 0, beta-TCVAE's minibatch-weighted decomposition (against a
brute-force numpy computation, the one-sample KL it must sum to, the analytic KL in expectation and
the closed-form total correlation of Gaussian aggregates), FactorVAE's permutation, its two separate
updates, a pinned seeded run and bad input."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from jaxgen import train
from jaxgen.data import make_sprites
from jaxgen.models import vae
from jaxgen.models.vae.objectives import _kl_normal, _tc_terms


def _tiny_vae(q=3, d=6, **kw):
    cfg = vae.VAEConfig(image_shape=(d, 1, 1), latent_dim=q, hidden=(8,), **kw)
    return vae.init(jax.random.key(0), cfg)


# ------------------------------------------------------------------------------ beta <= 0


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="beta"):
        vae.Objective("elbo", beta=beta)
    with pytest.raises(ValueError, match="beta"):
        vae.Objective("beta_tcvae", beta=beta, dataset_size=10)
    with pytest.raises(ValueError, match="beta"):
        vae.loss_fn("elbo", beta=beta)
    with pytest.raises(ValueError, match="beta"):
        vae.elbo(_tiny_vae(), np.full((2, 6), 0.5, np.float32), jax.random.key(0), beta=beta)


def test_beta_tcvae_bad_settings():
    with pytest.raises(ValueError, match="dataset_size"):
        vae.Objective("beta_tcvae", beta=2.0)
    with pytest.raises(ValueError, match="dataset_size"):
        vae.Objective("beta_tcvae", beta=2.0, dataset_size=0)
    params = _tiny_vae()
    x = np.full((8, 6), 0.5, np.float32)
    loss = vae.loss_fn("beta_tcvae", beta=2.0, dataset_size=4)  # a batch of 8 from a data set of 4
    with pytest.raises(ValueError, match="dataset_size=4"):
        loss(params, x, jax.random.key(0))
    with pytest.raises(ValueError, match="factorised prior"):
        vae.loss_fn("beta_tcvae", dataset_size=100)(_tiny_vae(prior="mog"), x, jax.random.key(0))
    with pytest.raises(ValueError, match="dataset_size"):
        vae.tc_decomposition(params, x, jax.random.key(0), dataset_size=4)


# ------------------------------------------------------------------------------ beta-TCVAE


def _brute_force(z, mean, log_var, N):
    """Chen et al.'s MWS terms with explicit loops (float64 numpy / scipy)."""
    M, q = z.shape
    sd = np.exp(0.5 * log_var)
    mi, tc, dwkl = np.zeros(M), np.zeros(M), np.zeros(M)
    for i in range(M):
        lq = np.array([[stats.norm.logpdf(z[i, d], mean[j, d], sd[j, d]) for d in range(q)] for j in range(M)])
        log_qzx = lq[i].sum()
        log_qz = logsumexp(lq.sum(1)) - math.log(N * M)
        log_prod = sum(logsumexp(lq[:, d]) - math.log(N * M) for d in range(q))
        log_pz = stats.norm.logpdf(z[i]).sum()
        mi[i], tc[i], dwkl[i] = log_qzx - log_qz, log_qz - log_prod, log_prod - log_pz
    return mi, tc, dwkl


def test_mws_terms_match_brute_force_and_sum_to_the_one_sample_kl():
    rng = np.random.default_rng(0)
    M, q, N = 5, 3, 40
    mean, log_var = rng.normal(size=(M, q)), rng.normal(scale=0.5, size=(M, q))
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(M, q))
    log_pz = stats.norm.logpdf(z).sum(1)
    got = _tc_terms(*(jnp.asarray(a, jnp.float32) for a in (z, mean, log_var, log_pz)), N)
    want = _brute_force(z, mean, log_var, N)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4)
    one_sample_kl = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1) - log_pz
    np.testing.assert_allclose(sum(np.asarray(g) for g in got), one_sample_kl, rtol=1e-4, atol=1e-4)


def test_decomposition_sums_to_the_analytic_kl_in_expectation():
    """mi + tc + dwkl = log q(z|x) - log p(z), whose expectation over z ~ q(z|x) is KL(q || p)."""
    params = _tiny_vae()
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(16, 6)), jnp.float32)
    mean, log_var = vae.encode(params, x)
    kl = np.asarray(_kl_normal(mean, log_var))  # (16,)
    draws = [vae.tc_decomposition(params, x, jax.random.fold_in(jax.random.key(2), t), dataset_size=1000)
             for t in range(400)]
    total = np.mean([np.asarray(d["mi"] + d["tc"] + d["dwkl"]) for d in draws], axis=0)
    sd = np.std([np.asarray(d["mi"] + d["tc"] + d["dwkl"]) for d in draws], axis=0) / math.sqrt(len(draws))
    assert np.all(np.abs(total - kl) < 4 * sd + 1e-3), (total, kl, sd)


def test_beta_one_is_the_elbo():
    """beta = 1: the loss is -(log p(x|z) - (log q(z|x) - log p(z))), IWAE with k = 1 on the same draw."""
    params = _tiny_vae()
    x = jnp.asarray(np.random.default_rng(3).uniform(size=(12, 6)), jnp.float32)
    key = jax.random.key(4)
    loss, m = vae.loss_fn("beta_tcvae", beta=1.0, dataset_size=50)(params, x, key)
    iwae, _ = vae.loss_fn("iwae", k=1)(params, x, key)
    assert float(loss) == pytest.approx(float(iwae), rel=1e-5)
    assert float(m["elbo"]) == pytest.approx(-float(loss), rel=1e-5)
    # another beta changes the loss by exactly (beta - 1) * tc
    loss6, m6 = vae.loss_fn("beta_tcvae", beta=6.0, dataset_size=50)(params, x, key)
    assert float(loss6) == pytest.approx(float(loss) + 5.0 * float(m["tc"]), rel=1e-5)
    # the ELBO in expectation: the analytic-KL ELBO averaged over keys
    keys = jax.random.split(jax.random.key(5), 200)
    tcvae, elbo = vae.loss_fn("beta_tcvae", beta=1.0, dataset_size=50), vae.loss_fn("elbo")
    a = np.asarray(jax.jit(jax.vmap(lambda k: tcvae(params, x, k)[0]))(keys))
    b = np.asarray(jax.jit(jax.vmap(lambda k: elbo(params, x, k)[0]))(keys))
    assert float(a.mean()) == pytest.approx(float(b.mean()), abs=4 * float(np.std(a - b)) / math.sqrt(200))


def _gaussian_tc(cov):
    """Total correlation of N(0, cov): 0.5 (sum log diag - log det)."""
    return 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])


@pytest.mark.parametrize("correlated", [False, True])
def test_tc_of_gaussian_aggregates(correlated):
    """Hand-built encoder outputs: means m ~ N(0, S), posteriors N(m, I); the aggregate is N(0, S + I).

    With the batch as the whole data set (N = M), MWS's ``- log(N M)`` normalisation puts the
    constant (q - 1) log N on the TC estimate (a constant: no effect on gradients); minus it, the
    estimate is the batch's TC, which must match the closed form: 0 for a factorised S = 4 I, and
    0.5 (3 log 5 - log 13) = 1.13 nats for S = 4 * ones (every latent the same value)."""
    rng = np.random.default_rng(5)
    M, q = 2000, 3
    S = 4.0 * (np.ones((q, q)) if correlated else np.eye(q))
    mean = rng.multivariate_normal(np.zeros(q), S, size=M)
    log_var = np.zeros((M, q))
    z = mean + rng.normal(size=(M, q))
    _, tc, _ = _tc_terms(*(jnp.asarray(a, jnp.float32) for a in (z, mean, log_var, np.zeros(M))), M)
    estimate = float(jnp.mean(tc)) - (q - 1) * math.log(M)
    exact = _gaussian_tc(S + np.eye(q))
    assert exact == pytest.approx(1.1315, abs=1e-3) if correlated else exact == 0.0
    assert estimate == pytest.approx(exact, abs=0.05)


# ------------------------------------------------------------------------------ FactorVAE


def test_permute_dims_keeps_marginals_and_breaks_dependence():
    rng = np.random.default_rng(6)
    t = rng.normal(size=2000)
    z = jnp.asarray(np.stack([t, t, -t, rng.normal(size=2000)], 1), jnp.float32)  # three columns perfectly dependent
    p = np.asarray(vae.permute_dims(jax.random.key(0), z))
    np.testing.assert_array_equal(np.sort(p, axis=0), np.sort(np.asarray(z), axis=0))  # each marginal kept
    corr = np.corrcoef(p.T)
    assert np.max(np.abs(corr[np.triu_indices(4, 1)])) < 0.1, corr  # |corr| 1 before
    assert not np.array_equal(p, np.asarray(z))


def _trainer(**kw):
    cfg = vae.VAEConfig(image_shape=(16, 16, 1), latent_dim=4, hidden=(32,), activation="relu")
    return vae.FactorVAETrainer(vae=cfg, d_hidden=(16, 16), **kw)


@pytest.fixture(scope="module")
def sprites16():
    return np.asarray(make_sprites(jax.random.key(0), 256, image_size=16)[0])


def _max_change(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_updates_touch_only_their_own_network(sprites16):
    batch = jnp.asarray(sprites16[:32])
    key = jax.random.key(3)
    # a D whose learning rate is negligible: the VAE step (gamma 35) must leave D's parameters alone
    t = _trainer(d_lr=1e-30)
    s0 = t.init(jax.random.key(1), batch)
    s1, _ = jax.jit(t.update)(s0, batch, key)
    assert _max_change(s0.d_params, s1.d_params) < 1e-20
    assert _max_change(s0.vae, s1.vae) > 1e-5
    # a negligible VAE learning rate: D's step must leave the VAE alone (no gradient of D's loss reaches it)
    s2, _ = jax.jit(_trainer(vae_lr=1e-30).update)(s0, batch, key)
    assert _max_change(s0.vae, s2.vae) < 1e-20
    assert _max_change(s0.d_params, s2.d_params) > 1e-5
    # gamma = 0: the TC penalty is off, so the VAE's step differs from gamma = 35's (D's logit reaches the VAE),
    # and its loss on the first half (rows 0, 2, ...) is -ELBO with the analytic KL
    s3, m = jax.jit(_trainer(gamma=0.0).update)(s0, batch, key)
    assert _max_change(s1.vae, s3.vae) > 1e-6
    x1 = batch[0::2].reshape(16, -1).astype(jnp.float32) / 255.0
    mean, log_var = vae.encode(s0.vae, x1)
    assert float(m["kl"]) == pytest.approx(float(jnp.mean(_kl_normal(mean, log_var))), rel=1e-5)
    assert float(m["loss"]) == pytest.approx(-float(m["elbo"]), rel=1e-6)


def test_factorvae_seeded_run_pinned(sprites16):
    """A tiny seeded run, pinned to its measured values (2026-11-27, CPU, 4 virtual devices, the test
    suite's XLA flags): rel. tolerance 1e-3 for float round-off across machines; the ELBO improves."""
    t = _trainer(vae_lr=1e-3, d_lr=1e-3)
    state, hist = train.fit_trainer(t, sprites16, key=jax.random.key(7), steps=60, batch_size=32, log_every=20,
                                    progress=False)
    last = hist[-1]
    assert hist[-1]["elbo"] > hist[0]["elbo"] + 10
    assert last["d_accuracy"] == pytest.approx(0.5296875, abs=0.01)
    pinned = {"loss": 123.46278915405273, "elbo": -127.77803039550781, "tc": -0.12329260809347034,
              "d_loss": 0.6990272551774979}
    for k, v in pinned.items():
        assert last[k] == pytest.approx(v, rel=1e-3), k


def test_factorvae_bad_input(sprites16):
    with pytest.raises(ValueError, match="gamma"):
        _trainer(gamma=-1.0)
    with pytest.raises(ValueError, match="even"):
        _trainer().init(jax.random.key(0), jnp.asarray(sprites16[:15]))
    with pytest.raises(ValueError, match="normal prior"):
        vae.FactorVAETrainer(vae=vae.VAEConfig(image_shape=(16, 16, 1), prior="mog"))
    with pytest.raises(ValueError, match="d_betas"):
        _trainer(d_betas=(0.5, 1.5))
    with pytest.raises(ValueError, match="not FactorVAETrainer settings"):
        vae.FactorVAETrainer.from_config({"gama": 3.0})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _trainer().check_train_data(sprites16.astype(np.float32))  # bytes as floats: values up to 255
    with pytest.raises(ValueError, match="shape"):
        _trainer().check_train_data(np.zeros((10, 28, 28, 1), np.uint8))
