"""Mode counting on stacked MNIST (1000 modes): the classifier applied to each RGB channel.

Protocol (Metz et al., Unrolled GAN, 2017; Srivastava et al., VEEGAN, 2017, Table 2; Lin et al.,
PacGAN, 2018, Table 3): generate samples, classify the digit of each of the three channels with a
pre-trained MNIST classifier, and report

* **modes**: the number of the 1000 digit triples that occur at least once;
* **KL**: ``KL(p || uniform) = sum_k p_k log(1000 p_k)`` of the histogram ``p`` of the triples
  (empty modes contribute 0; in nats), the same convention as :func:`jaxgen.metrics.mode_metrics`.

VEEGAN and PacGAN use 26 000 samples (:data:`LITERATURE_N_SAMPLES`), Unrolled GAN 25 600; we use
26 000 by default. With that many samples a perfect (uniform) generator covers all 1000 modes except
with probability ~5e-9 (:func:`expected_coverage`), and its KL is not 0 but about
``999 / (2 * 26000) = 0.019`` (the G-test statistic ``2 n KL`` is chi-square with 999 degrees of
freedom). A generator's count is only as good as the classifier: with the project's classifier
(99.07 % per digit on MNIST test) 2.7 % of real stacked triples built from the test split are
misread (1.5 % from the train split).

Measured with that classifier on 26 000 real stacked images (key 0): balanced, from the test
split: 1000 modes, KL 0.0193 (true digits: 1000, 0.0195); from the train split: 1000, 0.0195;
the literature's independent sampling from the train split: 1000 modes, KL 0.0257 (true digits:
0.0254; the excess over 0.019 is MNIST's unequal digit frequencies).
"""
from __future__ import annotations

import numpy as np

from jaxgen.data.stacked import N_STACKED_MODES, stacked_mode_id
from jaxgen.metrics.classifier import MNISTClassifier, default_classifier, prepare_images
from jaxgen.metrics.modes import reverse_kl_to_uniform
from jaxgen.validation import check_positive_int

__all__ = ["LITERATURE_N_SAMPLES", "expected_coverage", "mode_count_metrics", "stacked_digits",
           "stacked_mode_metrics"]

LITERATURE_N_SAMPLES = 26_000


def stacked_digits(images, *, classifier: MNISTClassifier | None = None) -> np.ndarray:
    """The classifier's digit for each channel of stacked images.

    Args:
      images: (N, 28, 28, 3), uint8 0..255 or floats in [0, 1].
      classifier: default :func:`jaxgen.metrics.classifier.default_classifier`.

    Returns:
      int64 (N, 3) predicted digits (channel order).
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1:] != (28, 28, 3) or x.shape[0] == 0:
        raise ValueError(f"stacked MNIST images must be (N, 28, 28, 3) with N >= 1, got shape {x.shape}.")
    clf = default_classifier() if classifier is None else classifier
    per_channel = np.moveaxis(x, -1, 1).reshape(-1, 28, 28)  # (3N, 28, 28): image i's channels are rows 3i..3i+2
    return clf.predict(prepare_images(per_channel, "images")).reshape(-1, 3)


def mode_count_metrics(mode_ids, n_modes: int = N_STACKED_MODES) -> dict:
    """Coverage and KL to uniform of a sample of mode ids.

    Args:
      mode_ids: (N,) integers in 0..n_modes-1.
      n_modes: K.

    Returns:
      dict ``modes`` (int, modes with >= 1 sample), ``reverse_kl`` (float, ``KL(p || uniform)``),
      ``histogram`` (int64 (K,)), ``n_modes``, ``n_samples``.
    """
    k = check_positive_int(n_modes, "n_modes")
    ids = np.asarray(mode_ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"mode_ids must be a non-empty 1-D integer array, got {ids.dtype} {ids.shape}.")
    if ids.min() < 0 or ids.max() >= k:
        raise ValueError(f"mode_ids must lie in 0..{k - 1}, got range [{ids.min()}, {ids.max()}].")
    hist = np.bincount(ids, minlength=k).astype(np.int64)
    return {"modes": int(np.sum(hist > 0)), "reverse_kl": reverse_kl_to_uniform(hist), "histogram": hist,
            "n_modes": k, "n_samples": int(ids.size)}


def stacked_mode_metrics(images, *, classifier: MNISTClassifier | None = None) -> dict:
    """Modes covered (of 1000) and KL to uniform of generated stacked-MNIST images.

    Args:
      images: (N, 28, 28, 3), uint8 or floats in [0, 1]; the protocol uses N = 26 000.
      classifier: default :func:`jaxgen.metrics.classifier.default_classifier`.

    Returns:
      :func:`mode_count_metrics` of the predicted triples (``histogram`` (1000,) indexed by
      ``100 d0 + 10 d1 + d2``), plus ``digits`` (N, 3) int64.
    """
    digits = stacked_digits(images, classifier=classifier)
    out = mode_count_metrics(stacked_mode_id(digits), N_STACKED_MODES)
    out["digits"] = digits
    return out


def expected_coverage(n_samples: int, n_modes: int = N_STACKED_MODES, probs=None) -> tuple[float, float]:
    """Exact mean and standard deviation of the number of modes hit by ``n_samples`` multinomial draws.

    ``E[C] = sum_k 1 - (1 - p_k)^n``; ``Var[C] = sum_{j,k} P(j, k both missed) - P(j missed) P(k missed)``
    with ``P(j, k both missed) = (1 - p_j - p_k)^n`` for j != k.

    Args:
      n_samples: n.
      n_modes: K (used when ``probs`` is None: uniform ``p_k = 1/K``).
      probs: optional (K,) mode probabilities summing to 1.

    Returns:
      ``(mean, std)`` floats.
    """
    n = check_positive_int(n_samples, "n_samples")
    p = (np.full(check_positive_int(n_modes, "n_modes"), 1.0 / n_modes) if probs is None
         else np.asarray(probs, np.float64))
    if p.ndim != 1 or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        raise ValueError("probs must be a 1-D probability vector summing to 1.")
    miss = np.exp(n * np.log1p(-np.minimum(p, 1.0)))  # (1 - p_k)^n, exp/log1p for accuracy at small p
    both = np.clip(1.0 - p[:, None] - p[None, :], 0.0, None)
    pair = np.exp(n * np.log(np.where(both > 0, both, 1.0))) * (both > 0)
    np.fill_diagonal(pair, miss)  # P(k missed and k missed) = P(k missed)
    var = float(pair.sum() - miss.sum() ** 2)
    return float(len(p) - miss.sum()), float(np.sqrt(max(var, 0.0)))
