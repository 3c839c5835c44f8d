"""Tests for jaxgen.metrics: mode coverage (VEEGAN/PacGAN), Frechet distance, MNIST classifier metrics, stacked MNIST."""
import jax
import numpy as np
import pytest
from scipy import stats

from jaxgen import data as D
from jaxgen import metrics as M

KEY = jax.random.key(0)


# ------------------------------------------------------------------------------ modes (VEEGAN / PacGAN)
def test_three_sigma_ball_mass_in_2d():
    # the HQ percentage of perfect samples: P(chi2_2 <= 9) = 1 - exp(-4.5)
    assert stats.chi2(2).cdf(9.0) == pytest.approx(0.988891, abs=1e-6)
    assert stats.chi2(2).cdf(9.0) == pytest.approx(1 - np.exp(-4.5), rel=1e-12)


@pytest.mark.parametrize("which", ["ring", "grid"])
def test_true_samples_capture_every_mode(which):
    n = 2500
    if which == "ring":
        X, _ = D.make_ring(KEY, n)
        modes, std = D.ring_modes(), 0.01
    else:
        X, _ = D.make_grid(KEY, n)
        modes, std = D.grid_modes(), 0.05
    k = modes.shape[0]
    out = M.mode_metrics(X, modes, std)
    assert out["modes"] == k and out["n_modes"] == k and out["n_samples"] == n
    p = stats.chi2(2).cdf(9.0)
    se = np.sqrt(p * (1 - p) / n)  # binomial standard error of the HQ fraction: 0.21 %
    assert abs(out["high_quality_pct"] / 100 - p) < 4 * se
    n_hq = int(out["histogram"].sum())
    assert n_hq == round(out["high_quality_pct"] * n / 100)
    # 2 n_hq KL is the G statistic of a uniform multinomial: chi2(K - 1); its 99.9 % quantile bounds KL
    bound = stats.chi2(k - 1).ppf(0.999) / (2 * n_hq)  # 0.0049 (ring), 0.0105 (grid)
    assert 0 <= out["reverse_kl"] < bound


def test_collapsed_and_far_samples():
    modes = D.ring_modes()
    X, _ = D.make_ring(KEY, 2500, n_modes=1)  # every sample at mode 0 = (1, 0)
    out = M.mode_metrics(X, modes, 0.01)
    assert out["modes"] == 1 and out["histogram"][0] == out["histogram"].sum() > 2400
    assert out["reverse_kl"] == pytest.approx(np.log(8), rel=1e-12)
    far = M.mode_metrics(np.asarray(X) + 0.5, modes, 0.01)  # off the ring, between modes
    assert far["high_quality_pct"] == 0.0 and far["modes"] == 0 and far["reverse_kl"] is None
    assert far["histogram"].sum() == 0


def test_mode_rule_threshold_and_kl_convention():
    modes = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # 3 HQ samples at mode 0, 1 HQ at mode 1, one sample at mode 2 just outside 3 std (0.031 > 0.03)
    X = np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.029], [1.0, 0.0], [0.0, 1.031]])
    out = M.mode_metrics(X, modes, 0.01)
    np.testing.assert_array_equal(out["histogram"], [3, 1, 0, 0])
    assert out["modes"] == 2 and out["high_quality_pct"] == pytest.approx(80.0)
    p = np.array([0.75, 0.25])
    assert out["reverse_kl"] == pytest.approx(np.sum(p * np.log(4 * p)), rel=1e-12)  # empty modes add 0
    assert M.mode_metrics(X, modes, 0.01, min_count=2)["modes"] == 1
    assert M.mode_metrics(X, modes, 0.01, n_sigma=3.2)["modes"] == 3
    idx, dist = M.nearest_mode(X, modes, chunk_size=2)
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 2])
    np.testing.assert_allclose(dist, [0, 0.01, 0.029, 0, 0.031], atol=1e-12)
    assert M.reverse_kl_to_uniform([5, 5, 5]) == 0.0
    assert M.reverse_kl_to_uniform([0, 0]) is None  # undefined: no histogram


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.zeros((4, 3)), np.zeros((8, 2)), 0.01), {}, "same D"),
        ((np.zeros(4), np.zeros((8, 2)), 0.01), {}, "2-D"),
        ((np.full((4, 2), np.nan), np.zeros((8, 2)), 0.01), {}, "NaN"),
        ((np.zeros((4, 2)), np.zeros((8, 2)), 0.0), {}, "std"),
        ((np.zeros((4, 2)), np.zeros((8, 2)), 0.01), {"min_count": 0}, "min_count"),
    ],
)
def test_mode_metrics_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.mode_metrics(*args, **kwargs)
    with pytest.raises(ValueError, match="counts"):
        M.reverse_kl_to_uniform([[1, 2]])


# ------------------------------------------------------------------------------ Frechet distance
def _random_spd(rng, d, jitter=0.1):
    A = rng.normal(size=(d, d))
    return A @ A.T / d + jitter * np.eye(d)


def test_sqrtm_psd_matches_scipy_and_handles_singular():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    S = _random_spd(rng, 12)
    R = M.sqrtm_psd(S)
    np.testing.assert_allclose(R, np.real(sqrtm(S)), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(R, R.T, atol=0)
    B = rng.normal(size=(6, 2))
    P = B @ B.T  # rank 2 of 6: scipy's Schur method is unreliable here; check R @ R = P and PSD
    R = M.sqrtm_psd(P)
    np.testing.assert_allclose(R @ R, P, atol=1e-10)
    assert np.linalg.eigvalsh(R).min() > -1e-7


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    d = 7
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mean_term = np.sum((mu1 - mu2) ** 2)
    # diagonal covariances: sum (sqrt a - sqrt b)^2
    fd = M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert fd == pytest.approx(mean_term + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-12)
    # commuting covariances (shared eigenvectors): the same in the rotated basis
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    fd = M.frechet_distance(mu1, Q @ np.diag(a) @ Q.T, mu2, Q @ np.diag(b) @ Q.T)
    assert fd == pytest.approx(mean_term + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-10)
    # general (non-commuting) covariances: the textbook tr sqrtm(S1 S2) form, via scipy
    from scipy.linalg import sqrtm

    S1, S2 = _random_spd(rng, d), _random_spd(rng, d)
    ref = mean_term + np.trace(S1 + S2 - 2 * np.real(sqrtm(S1 @ S2)))
    fd12 = M.frechet_distance(mu1, S1, mu2, S2)
    assert fd12 == pytest.approx(ref, rel=1e-9)
    assert M.frechet_distance(mu2, S2, mu1, S1) == pytest.approx(fd12, rel=1e-10)  # symmetric
    assert M.frechet_distance(mu1, S1, mu1, S1) == pytest.approx(0.0, abs=1e-12)
    # 1-D: the Wasserstein-2 distance of two normals squared, (m1 - m2)^2 + (s1 - s2)^2
    assert M.frechet_distance([1.0], [[4.0]], [-1.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)


def test_frechet_bias_of_plugin_estimator_matches_monte_carlo():
    # two samples of n = 100 from one 4-D Gaussian: mean FD over 1000 repetitions, measured 0.1441 +- 0.0019
    # against the second-order formula's 0.1456
    rng = np.random.default_rng(0)
    d, n = 4, 100
    S = _random_spd(rng, d)
    L = np.linalg.cholesky(S)
    fds = [M.frechet_distance_features(rng.normal(size=(n, d)) @ L.T, rng.normal(size=(n, d)) @ L.T)
           for _ in range(1000)]
    assert np.mean(fds) == pytest.approx(M.frechet_bias(S, n, n), rel=0.05)
    assert M.frechet_bias(np.eye(64), 5000, 5000) == pytest.approx(2 * 64 / 5000 + 64 * 65 / (2 * 4999), rel=1e-12)


def test_streamed_feature_statistics_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1003, 5)) * 100 + 1e4  # large offset: the naive sum-of-squares would cancel
    mu, cov = M.feature_statistics(x, batch_size=64)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9)
    mu2, cov2 = M.feature_statistics(iter([x[:10], x[10:11], x[11:]]))  # an iterable of uneven batches
    np.testing.assert_allclose(cov2, cov, rtol=1e-10)
    a, b = M.FeatureStats(5).update(x[:500]), M.FeatureStats(5).update(x[500:])
    np.testing.assert_allclose(a.merge(b).cov(ddof=0), np.cov(x, rowvar=False, ddof=0), rtol=1e-9)
    y = rng.normal(size=(800, 5))
    ref = M.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert M.frechet_distance_features(x, y, batch_size=100) == pytest.approx(ref, rel=1e-10)
    assert M.frechet_distance_features(jax.numpy.asarray(y), y) < 1e-4  # JAX input (float32) accepted


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "same dimension"),
        (lambda: M.frechet_distance(np.zeros(3), np.eye(2), np.zeros(2), np.eye(2)), "mu1 has 3"),
        (lambda: M.frechet_distance(np.zeros(2), [[1.0, 0.5], [0.0, 1.0]], np.zeros(2), np.eye(2)), "symmetric"),
        (lambda: M.frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2)), "semi-definite"),
        (lambda: M.sqrtm_psd(np.ones((2, 3))), "square"),
        (lambda: M.feature_statistics(np.ones((1, 3))), "more than 1"),
        (lambda: M.feature_statistics(np.ones(3)), r"\(N, D\)"),
        (lambda: M.FeatureStats(3).update(np.ones((4, 2))), "features"),
        (lambda: M.FeatureStats(3).mean, "no features"),
    ],
)
def test_frechet_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------ MNIST classifier metrics
@pytest.fixture(scope="module")
def mnist_test():
    x, y = D.load_mnist("test")
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The quick classifier (8/16 channels, 32 features, 2 560 images, 2 epochs), saved in a temp data dir."""
    from jaxgen.metrics import classifier as C

    clf = C.train_classifier(C.ClassifierConfig.quick(), progress=False, log=None)
    folder = tmp_path_factory.mktemp("clf")
    C.save_classifier(clf, folder)
    return clf, folder


@pytest.mark.needs_data("mnist")
def test_tiny_classifier_trains_and_reports(tiny, mnist_test):
    clf, _ = tiny
    x, y = mnist_test
    # seed 0 measured 0.9035 test accuracy (1 CPU device, XLA optimisations on); a broken loss or
    # label/image mismatch gives ~0.1
    assert clf.info["test_accuracy"] == pytest.approx(clf.accuracy(x, y))
    assert clf.info["test_accuracy"] > 0.85 and clf.info["valid_accuracy"] > 0.85
    assert clf.features(x[:7]).shape == (7, 32) and clf.logits(x[:7].reshape(7, 784)).shape == (7, 10)
    np.testing.assert_allclose(clf.predict_proba(x[:5]).sum(1), 1.0, rtol=1e-12)
    assert (clf.features(x[:50]) >= 0).all()  # ReLU features
    assert set(clf.info["floors"]) == {"fid_test_halves", "fid_test_random_halves", "fid_halves_n", "mnist_score_test"}


@pytest.mark.needs_data("mnist")
def test_domain_fid_properties(tiny, mnist_test):
    clf, _ = tiny
    x, _ = mnist_test
    a, b = x[:2000], x[2000:4000]
    assert M.domain_fid(a, a, classifier=clf) < 1e-6
    ref = M.frechet_distance_features(clf.features(a), clf.features(b))
    fid_ab = M.domain_fid(a, b.astype(np.float32) / 255, classifier=clf)  # float input in [0, 1] equals uint8
    assert fid_ab == pytest.approx(ref, rel=1e-5)
    stats_a = clf.feature_stats(a)
    assert M.domain_fid(stats_a, b, classifier=clf) == pytest.approx(fid_ab, rel=1e-6)
    assert M.domain_fid((stats_a.mean, stats_a.cov()), b, classifier=clf) == pytest.approx(fid_ab, rel=1e-6)
    # corrupting the images moves their features away: FID grows with the noise level
    rng = np.random.default_rng(0)
    noise = rng.uniform(size=b.shape)
    fids = [M.domain_fid(a, np.clip(b / 255 * (1 - s) + s * noise, 0, 1), classifier=clf) for s in (0.2, 0.5, 0.8)]
    assert fid_ab < fids[0] < fids[1] < fids[2]
    assert fids[0] > 3 * fid_ab


@pytest.mark.needs_data("mnist")
def test_mnist_score_and_class_histogram(tiny, mnist_test):
    from scipy.special import rel_entr

    clf, _ = tiny
    x, y = mnist_test
    p = clf.predict_proba(x)
    score = M.mnist_score(x, classifier=clf)
    assert score == pytest.approx(np.exp(rel_entr(p, p.mean(0)).sum(1).mean()), rel=1e-10)
    # = exp(H(p(y)) - E H(p(y|x))): H(p(y)) ~ log 10 on the balanced test set, times a confidence factor
    conf = np.exp(-stats.entropy(p, axis=1).mean())
    assert score == pytest.approx(np.exp(stats.entropy(p.mean(0))) * conf, rel=1e-10)
    assert 0.8 * 10 * conf < score <= 10
    one = x[y == 3][:500]
    score_one = M.mnist_score(one, classifier=clf)  # one class: p(y|x) ~ p(y); 1.52 measured (tiny classifier)
    assert 1.0 <= score_one < 2.0 and score > 3 * score_one
    assert M.mnist_score(np.repeat(x[:1], 20, axis=0), classifier=clf) == pytest.approx(1.0, abs=1e-9)
    hist = M.class_histogram(x, classifier=clf)
    assert hist.shape == (10,) and hist.sum() == len(x)
    errors = int(np.sum(clf.predict(x) != y))
    assert np.abs(hist - np.bincount(y, minlength=10)).sum() <= 2 * errors
    assert M.class_histogram(one, classifier=clf).argmax() == 3


@pytest.mark.needs_data("mnist")
def test_classifier_artefact_round_trip_and_checksum(tiny, mnist_test, tmp_path, monkeypatch):
    import json
    import shutil

    from jaxgen.metrics import classifier as C

    clf, folder = tiny
    x, _ = mnist_test
    loaded = C.load_classifier(folder)
    np.testing.assert_array_equal(loaded.logits(x[:100]), clf.logits(x[:100]))
    assert loaded.config == clf.config and loaded.info["test_accuracy"] == clf.info["test_accuracy"]
    # the default classifier is the artefact in $JAXGEN_DATA_DIR
    monkeypatch.setenv("JAXGEN_DATA_DIR", str(folder))
    assert M.domain_fid(x[:500], x[500:1000]) == pytest.approx(M.domain_fid(x[:500], x[500:1000], classifier=clf))
    assert C.main(["--data-dir", str(folder)]) == 0  # exists and verifies: nothing retrained
    # a corrupted byte fails the sha256 check, with both digests in the message
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    blob = bytearray((bad / "mnist_classifier.msgpack").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "mnist_classifier.msgpack").write_bytes(bytes(blob))
    with pytest.raises(D.DataFileError, match="fails its checksum") as e:
        C.load_classifier(bad)
    assert e.value.expected != e.value.actual and e.value.actual is not None
    assert C.main(["--data-dir", str(bad)]) == 1
    # a sidecar describing another architecture (sha256 still matching): the structure check catches it
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    meta = json.loads((other / "mnist_classifier.json").read_text())
    meta["config"]["hidden"] = 64
    (other / "mnist_classifier.json").write_text(json.dumps(meta))
    with pytest.raises(D.DataFileError, match="does not hold the parameters"):
        C.load_classifier(other)
    # missing and incomplete artefacts say how to create them
    with pytest.raises(D.DataFileError, match="python -m jaxgen.metrics "):
        C.load_classifier(tmp_path / "empty")
    (other / "mnist_classifier.msgpack").unlink()
    with pytest.raises(D.DataFileError, match="incomplete"):
        C.load_classifier(other)
    # a folder marked read-only (like the shared data folder, mode 555; root would pass os.access) is
    # refused before any training, not after minutes of it
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(D.DataFileError, match="not writable"):
            C.load_classifier(ro, train_if_missing=True)
        assert C.main(["--out-dir", str(ro)]) == 1
    finally:
        ro.chmod(0o755)


@pytest.mark.needs_data("mnist")
@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((3, 28, 27), np.uint8), "shape"),
        (np.full((3, 28, 28), -0.5, np.float32), "rescale"),
        (np.full((3, 28, 28), np.nan, np.float32), "NaN"),
        (np.zeros((3, 28, 28), np.int32), "dtype"),
        (np.zeros((0, 28, 28), np.uint8), "N >= 1"),
    ],
)
def test_classifier_bad_images(tiny, images, match):
    clf, _ = tiny
    with pytest.raises(ValueError, match=match):
        M.mnist_score(images, classifier=clf)


def test_classifier_config_checks():
    with pytest.raises(ValueError, match="n_train"):
        M.ClassifierConfig(n_train=60_000)
    with pytest.raises(ValueError, match="dropout"):
        M.ClassifierConfig(dropout=1.0)


# ------------------------------------------------------------------------------ stacked MNIST
def test_stack_digits_puts_the_right_digit_in_each_channel():
    m = 200
    images = np.broadcast_to(np.arange(m, dtype=np.uint16)[:, None, None], (m, 28, 28))  # image i is filled with i
    labels = (np.arange(m) * 7) % 10
    for balanced in (True, False):
        st, digits = D.stack_digits(KEY, 500, images, labels, balanced=balanced)
        assert st.shape == (500, 28, 28, 3) and st.dtype == np.uint16 and digits.shape == (500, 3)
        np.testing.assert_array_equal(labels[st[:, 0, 0, :]], digits)
        st2, _ = D.stack_digits(KEY, 500, images, labels, balanced=balanced)
        np.testing.assert_array_equal(st, st2)  # deterministic from the key
        assert not np.array_equal(st, D.stack_digits(jax.random.key(1), 500, images, labels, balanced=balanced)[0])
    ids = D.stacked_mode_id(np.array([[1, 2, 3], [9, 9, 9]]))
    np.testing.assert_array_equal(ids, [123, 999])
    with pytest.raises(ValueError, match="every digit"):
        D.stack_digits(KEY, 10, images[:5], labels[:5])
    with pytest.raises(ValueError, match="digits"):
        D.stacked_mode_id(np.array([[1, 2, 10]]))


def test_expected_coverage_is_exact():
    assert M.expected_coverage(2, 2) == pytest.approx((1.5, 0.5), rel=1e-12)
    # brute force over all 3^3 outcomes of 3 draws with non-uniform probabilities
    import itertools

    p = np.array([0.5, 0.3, 0.2])
    covs, probs = [], []
    for draw in itertools.product(range(3), repeat=3):
        covs.append(len(set(draw)))
        probs.append(np.prod(p[list(draw)]))
    covs, probs = np.array(covs), np.array(probs)
    mean = np.sum(covs * probs)
    sd = np.sqrt(np.sum(probs * (covs - mean) ** 2))
    assert M.expected_coverage(3, probs=p) == pytest.approx((mean, sd), rel=1e-12)
    mean, sd = M.expected_coverage(26_000)
    assert 1000 - mean < 1e-8  # the literature's sample size covers everything for a perfect generator


@pytest.mark.needs_data("mnist")
def test_real_stacked_samples_cover_modes_like_a_uniform_multinomial():
    n = 3000
    _, digits = D.make_stacked_mnist(KEY, n, "test")
    out = M.mode_count_metrics(D.stacked_mode_id(digits))
    mean, sd = M.expected_coverage(n)  # 950.3 +- 6.3
    assert abs(out["modes"] - mean) < 4 * sd
    assert out["reverse_kl"] < stats.chi2(999).ppf(0.999) / (2 * n)  # G-test bound, 0.19
    assert out["histogram"].sum() == n


@pytest.mark.needs_data("mnist")
def test_stacked_mode_metrics_with_classifier(tiny):
    clf, _ = tiny
    n = 3000
    images, digits = D.make_stacked_mnist(KEY, n, "test")
    out = M.stacked_mode_metrics(images, classifier=clf)
    acc = clf.info["test_accuracy"]
    assert np.mean(out["digits"] == digits) > acc - 0.03  # per-channel accuracy ~ the classifier's
    mean, sd = M.expected_coverage(n)
    # misread triples are still mostly distinct modes: measured 9xx (tiny classifier, seed 0)
    assert mean - 60 < out["modes"] <= 1000
    single = np.repeat(images[:1], 500, axis=0)  # a generator stuck on one digit triple
    one = M.stacked_mode_metrics(single, classifier=clf)
    assert one["modes"] == 1 and one["reverse_kl"] == pytest.approx(np.log(1000), rel=1e-12)
    assert M.stacked_mode_metrics(images[:10].astype(np.float32) / 255, classifier=clf)["n_samples"] == 10
    with pytest.raises(ValueError, match=r"\(N, 28, 28, 3\)"):
        M.stacked_mode_metrics(images[..., 0], classifier=clf)
