"""Metrics for generative models.

Mode coverage on mixtures with known modes (VEEGAN / PacGAN protocol), :mod:`jaxgen.metrics.modes`:
  :func:`mode_metrics` (samples (N, D), modes (K, D), std) -> dict(modes, high_quality_pct,
  reverse_kl, histogram (K,), n_modes, n_samples); :func:`nearest_mode`; :func:`reverse_kl_to_uniform`.

Frechet distance of Gaussians fitted to features, :mod:`jaxgen.metrics.frechet`:
  :func:`frechet_distance` (mu1 (D,), cov1 (D, D), mu2, cov2) -> float; :func:`frechet_distance_features`
  ((N1, D), (N2, D) arrays or iterables of batches) -> float; :func:`sqrtm_psd` ((D, D) -> (D, D));
  :class:`FeatureStats` / :func:`feature_statistics` (streamed float64 mean (D,) and covariance (D, D));
  :func:`frechet_bias` (expected FD of two finite samples of one Gaussian).

MNIST classifier metrics, :mod:`jaxgen.metrics.classifier` (images: (N, 28, 28), (N, 28, 28, 1) or
(N, 784), uint8 or floats in [0, 1]; the classifier is the checksummed artefact
``mnist_classifier.msgpack`` + ``.json`` in the data directory, created by
``python -m jaxgen.metrics``):
  :func:`domain_fid` (real, fake) -> float, on the 128-D penultimate features;
  :func:`mnist_score` (images) -> float in [1, 10]; :func:`class_histogram` (images) -> (10,) counts;
  :func:`train_classifier`, :func:`save_classifier`, :func:`load_classifier`, :func:`default_classifier`,
  :class:`ClassifierConfig`, :class:`MNISTClassifier`.

Stacked MNIST (1000 modes), :mod:`jaxgen.metrics.stacked` (data: :func:`jaxgen.data.make_stacked_mnist`):
  :func:`stacked_mode_metrics` ((N, 28, 28, 3) images) -> dict(modes, reverse_kl, histogram (1000,),
  digits (N, 3), n_modes, n_samples); :func:`stacked_digits`; :func:`mode_count_metrics` (mode ids (N,));
  :func:`expected_coverage` (exact mean and std of the modes hit by n multinomial draws).

Disentanglement against ground-truth factors, :mod:`jaxgen.metrics.disentangle` (data: :class:`jaxgen.data.Sprites`):
  two MIG estimators, name which one a figure is: :func:`mig_histogram` (= :func:`mutual_info_gap`;
  disentanglement_lib's: 20-bin histograms of posterior means) (codes (N, q), factors (N, K) int) -> dict(mig,
  per_factor, mutual_info (q, K), entropy (K,)); :func:`mig_chen` (Chen et al. 2018: the full Gaussian posterior,
  Monte Carlo) (mean (N, q), log_var (N, q), factors, key) -> the same dict plus latent and conditional entropies;
  :func:`factor_vae_score` (encode_fn, data, key) -> dict(score, train_accuracy, active (q,),
  votes (q, K), eval_votes (q, K)).

Latent usage, :mod:`jaxgen.metrics.latents`: :func:`active_units` (posterior means (N, q), threshold=0.01) ->
  dict(n_active, variances (q,), active (q,)) (Burda et al. 2016); :func:`~jaxgen.metrics.latents.posterior_means`.
"""
from jaxgen.metrics.classifier import (
    ClassifierConfig,
    MNISTClassifier,
    class_histogram,
    default_classifier,
    domain_fid,
    load_classifier,
    mnist_score,
    save_classifier,
    train_classifier,
)
from jaxgen.metrics.disentangle import factor_vae_score, mig_chen, mig_histogram, mutual_info_gap
from jaxgen.metrics.frechet import (
    FeatureStats,
    feature_statistics,
    frechet_bias,
    frechet_distance,
    frechet_distance_features,
    sqrtm_psd,
)
from jaxgen.metrics.latents import active_units
from jaxgen.metrics.modes import mode_metrics, nearest_mode, reverse_kl_to_uniform
from jaxgen.metrics.stacked import (
    LITERATURE_N_SAMPLES,
    expected_coverage,
    mode_count_metrics,
    stacked_digits,
    stacked_mode_metrics,
)

__all__ = [
    "LITERATURE_N_SAMPLES",
    "ClassifierConfig",
    "FeatureStats",
    "MNISTClassifier",
    "active_units",
    "class_histogram",
    "default_classifier",
    "domain_fid",
    "expected_coverage",
    "factor_vae_score",
    "feature_statistics",
    "frechet_bias",
    "frechet_distance",
    "frechet_distance_features",
    "load_classifier",
    "mig_chen",
    "mig_histogram",
    "mnist_score",
    "mode_count_metrics",
    "mode_metrics",
    "mutual_info_gap",
    "nearest_mode",
    "reverse_kl_to_uniform",
    "save_classifier",
    "sqrtm_psd",
    "stacked_digits",
    "stacked_mode_metrics",
    "train_classifier",
]
