"""Evaluating a generative model's MNIST samples the same way for every family.

* :func:`classifier_for` - the measuring instrument: the project's classifier artefact
  (``"full"``) or a small one trained once per process (``"quick"``, for quick runs and tests; its
  numbers are not comparable with the full classifier's).
* :func:`draw` - ``n`` samples from any sampler ``fn(key, batch) -> images`` in batches of one
  compiled size (batch i uses ``fold_in(key, i)``).
* :func:`image_metrics` - domain FID against real images, MNIST score, class histogram, class
  coverage and the KL of the class histogram to uniform.
* :func:`spread`, :func:`real_floor` - reference images spread over the whole test set, and the
  FID floor of real data at a given sample size. MNIST's test set is not in random order (its
  first 5 000 images come from cleaner writers than the last 5 000: FID 22.07 between them, 1.95
  between two random halves, with the full classifier), so a reference of its first n images is
  biased and its two halves are not a floor.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np

from jaxgen.metrics import classifier as cls
from jaxgen.metrics.frechet import FeatureStats

__all__ = ["CLASSIFIERS", "classifier_for", "draw", "image_metrics", "spread", "real_floor"]

CLASSIFIERS = ("full", "quick")
_QUICK: list = []


def classifier_for(kind: str, log: Callable | None = None) -> cls.MNISTClassifier:
    """The MNIST classifier behind the metrics, a fixed instrument (never drawn from a run's key).

    Args:
      kind: ``"full"``: the artefact in the data directory (:func:`~jaxgen.metrics.load_classifier`,
        trained and saved once if missing: a few minutes); ``"quick"``: ``ClassifierConfig.quick()``
        with seed 0, trained on first use and kept for the rest of the process.
      log: where to say how long the quick classifier took (e.g. ``run.log``).
    """
    if kind not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {kind!r}.")
    if kind == "full":
        return cls.load_classifier(train_if_missing=True)
    if not _QUICK:
        t0 = time.perf_counter()
        _QUICK.append(cls.train_classifier(cls.ClassifierConfig.quick(), progress=False, log=None))
        if log is not None:
            log(f"quick MNIST classifier trained in {time.perf_counter() - t0:.1f} s")
    return _QUICK[0]


def draw(fn: Callable, key: jax.Array, n: int, batch: int = 1000) -> np.ndarray:
    """``n`` samples as one NumPy array: ``fn(fold_in(key, i), b)`` for i = 0, 1, ... with one batch
    size ``b = min(batch, n)`` (one compiled program), the surplus of the last batch dropped."""
    b = min(batch, n)
    return np.concatenate([np.asarray(fn(jax.random.fold_in(key, i), b)) for i in range(-(-n // b))])[:n]


def image_metrics(images, real: FeatureStats | np.ndarray, classifier: cls.MNISTClassifier) -> dict:
    """How MNIST-like a set of samples is, by the classifier's eyes.

    Args:
      images: (N, 28, 28[, 1]) or (N, 784), uint8 or floats in [0, 1].
      real: the real images to compare with, or their :class:`FeatureStats` (computed once).
      classifier: an :class:`~jaxgen.metrics.MNISTClassifier`.

    Returns:
      dict: ``fid`` (domain FID), ``mnist_score``, ``class_histogram`` (10 counts),
      ``classes_covered`` (digits predicted for at least 1 % of the samples) and
      ``class_kl_to_uniform`` (KL(histogram || uniform) in nats; 0 for perfect balance, log 10 for
      one class).
    """
    hist = np.asarray(cls.class_histogram(images, classifier=classifier), float)
    p = hist / hist.sum()
    return {
        "fid": cls.domain_fid(real, images, classifier=classifier),
        "mnist_score": cls.mnist_score(images, classifier=classifier),
        "class_histogram": hist.astype(int).tolist(),
        "classes_covered": int(np.sum(p >= 0.01)),
        "class_kl_to_uniform": float(np.sum(p[p > 0] * np.log(p[p > 0] * len(p)))),
    }


def spread(x, n: int):
    """``n`` rows of ``x`` at evenly spaced positions (all of it when ``n >= len(x)``), so that a
    reference set covers every part of a data set that is not in random order."""
    if n >= len(x):
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


def real_floor(x, n: int, classifier: cls.MNISTClassifier) -> tuple[float, int]:
    """The FID between two disjoint sets of real images (even and odd rows of ``x``, each
    :func:`spread` to ``h = min(n, len(x) // 2)`` images): what a perfect generator would score at
    that sample size. Returns ``(fid, h)``."""
    h = min(n, len(x) // 2)
    return cls.domain_fid(spread(x[0::2], h), spread(x[1::2], h), classifier=classifier), h
