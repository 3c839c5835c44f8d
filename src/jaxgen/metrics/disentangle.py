"""Disentanglement metrics against ground-truth factors: MIG (two estimators) and the FactorVAE score.

The mutual information gap of Chen et al. (2018, beta-TCVAE) is
``MIG = mean_k (I_(1)k - I_(2)k) / H(v_k)``, with ``I_(1)k >= I_(2)k`` the two largest values of
``I(z_j; v_k)`` over latents: 1 = each factor is captured by one latent alone; 0 = the two best
latents know as much. Two estimators of ``I(z_j; v_k)`` give different numbers; name which one a
figure is:

* :func:`mig_histogram` (also :func:`mutual_info_gap`) -- disentanglement_lib's (Locatello et al.
  2019): each latent's *posterior mean* is cut into ``n_bins`` equal-width bins between its minimum
  and maximum and ``I`` is the discrete (plug-in) mutual information of the binned latent and the
  factor; ``H(v_k)`` is the factor's empirical entropy; disentanglement_lib averages over all
  factors. Discretisation caps it below 1: a factor with more values than occupied bins (40
  orientations in 20 bins) cannot be resolved, ``I <= log(n_bins) < H(v)``.
* :func:`mig_chen` -- Chen et al.'s own: ``I(z_j; v_k) = H(z_j) - H(z_j | v_k)`` of the *full
  posterior* ``q(z_j | x)`` (a Gaussian per image), with ``q(z_j) = mean_n q(z_j | x_n)`` over the
  evaluated images, ``q(z_j | v_k = v)`` the mean over the images with that value, and the
  entropies estimated by Monte Carlo with samples ``z ~ q(z | x_n)``; on dSprites Chen et al.
  average over scale, orientation, x and y (:data:`CHEN_DSPRITES_FACTORS`, shape excluded). It
  needs no bins, so a perfect encoder with small posterior variance reaches 1 on every factor;
  a latent whose posterior ignores the image has ``I = 0`` (up to rounding).
* :func:`factor_vae_score` -- Kim & Mnih (2018), Sec. 4: latents are divided by their standard
  deviation over ``n_global`` random images; latents with std < ``prune_threshold`` are "collapsed"
  and ignored. A vote fixes one random factor at a random value, draws ``batch_size`` images that
  share it, and names the active latent with the smallest normalised variance. A majority-vote
  classifier (latent -> factor) is fitted to ``n_train`` votes; the score is its accuracy on
  ``n_eval`` fresh votes. Chance is about 1 / K, the best 1.

The histogram MIG and the FactorVAE score run on the host in float64 and hold O(N q) memory (codes
and binned codes); images are rendered and encoded in fixed-size chunks, so a jitted ``encode_fn``
compiles once. :func:`mig_chen` evaluates the N x N Gaussian densities in float32 blocks of
``chunk_size x block_size x q`` (one compiled shape), so its memory is bounded and its time grows as
``N^2 q``.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.keys import streams
from jaxgen.validation import check_key, check_positive_float, check_positive_int

__all__ = ["CHEN_DSPRITES_FACTORS", "discrete_entropy", "discretize", "factor_vae_score", "mig_chen", "mig_histogram",
           "mutual_info_gap", "mutual_info_matrix"]

# Chen et al. (2018) average MIG over these dSprites factors (shape, with its 3 values, is left out).
CHEN_DSPRITES_FACTORS = ("scale", "orientation", "x", "y")

_FACTOR_DATA_ATTRS = ("factor_names", "factor_sizes", "sample_factors", "render")


# ----------------------------------------------------------------------------------------- checks
def _check_codes(codes, name: str = "codes") -> np.ndarray:
    if codes is None:
        raise ValueError(f"{name} is None: pass the (N, q) latent codes (posterior means) of N images.")
    c = np.asarray(codes)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise ValueError(f"{name} must be an (N, q) array of latent codes with N >= 2, got shape {c.shape}.")
    if not (np.issubdtype(c.dtype, np.number) or c.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {c.dtype}.")
    c = c.astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(c)).sum())} non-finite values (NaN/inf): a diverged encoder?")
    return c


def _check_factors(factors, n: int, metric: str) -> np.ndarray:
    need = (f"{metric} needs ground-truth factors: an (N, K) integer array of factor indices aligned with the "
            "codes, e.g. the factors returned by jaxgen.data.Sprites().sample(key, n)")
    if factors is None:
        raise ValueError(f"{need}; got None (a data set without factors, such as MNIST, has no disentanglement metric).")
    if any(hasattr(factors, a) for a in ("render", "sample_factors")):
        raise ValueError(f"{need}; got a data set object ({type(factors).__name__}): sample from it and pass its factors.")
    f = np.asarray(factors)
    if f.ndim != 2 or f.shape[1] < 1:
        hint = " (one factor, e.g. class labels? use labels[:, None])" if f.ndim == 1 else ""
        raise ValueError(f"{need}; got shape {f.shape}{hint}.")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{need}; got dtype {f.dtype} (discrete factor indices are integers: pass the indices, "
                         "not physical values such as Sprites.values).")
    if f.shape[0] != n:
        raise ValueError(f"codes and factors must describe the same images: {n} codes but {f.shape[0]} factor rows.")
    return f


def _check_factor_names(factor_names, K: int) -> tuple[str, ...]:
    if factor_names is None:
        return tuple(f"factor_{k}" for k in range(K))
    names = tuple(factor_names)
    if len(names) != K or len(set(names)) != K or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"factor_names must be {K} distinct non-empty strings, one per factor column, got {factor_names!r}.")
    return names


def _check_factor_data(data, metric: str) -> None:
    missing = [a for a in _FACTOR_DATA_ATTRS if not hasattr(data, a)]
    if missing:
        what = (f"an array of shape {np.shape(data)}" if isinstance(data, (np.ndarray, jax.Array))
                else "None" if data is None else f"a {type(data).__name__}")
        raise ValueError(
            f"{metric} needs a data set with ground-truth factors: an object with factor_names, factor_sizes, "
            f"sample_factors(key, n) and render(factors), such as jaxgen.data.Sprites(); got {what}, which lacks "
            f"{', '.join(missing)} (images alone, such as MNIST, have no factors to measure against).")
    names, sizes = tuple(data.factor_names), tuple(data.factor_sizes)
    if len(names) != len(sizes) or not names:
        raise ValueError(f"data.factor_names {names} and data.factor_sizes {sizes} must be non-empty and of equal length.")
    for nm, n in zip(names, sizes):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"data.factor_sizes[{nm!r}] must be an integer >= 1, got {n!r}.")


# -------------------------------------------------------------------------------- discrete pieces
def discretize(codes, n_bins: int = 20) -> np.ndarray:
    """Equal-width histogram bins of each latent between its minimum and maximum.

    Args:
      codes: (N, q) floats.
      n_bins: bins per latent (>= 2).

    Returns:
      (N, q) int64 bin indices in [0, n_bins); a constant latent falls into bin 0 (zero information).
    """
    c = _check_codes(codes)
    n_bins = check_positive_int(n_bins, "n_bins", minimum=2)
    lo, hi = c.min(axis=0), c.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.floor((c - lo) / width * n_bins), 0, n_bins - 1).astype(np.int64)


def _relabel(column: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(column, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(values)


def discrete_entropy(factors) -> np.ndarray:
    """(N, K) integer factors -> (K,) empirical entropies in nats (0 for a constant column)."""
    f = np.asarray(factors)
    out = np.empty(f.shape[1])
    for k in range(f.shape[1]):
        p = np.bincount(_relabel(f[:, k])[0]) / f.shape[0]
        out[k] = -(p * np.log(p)).sum()
    return out


def mutual_info_matrix(binned, factors) -> np.ndarray:
    """Empirical mutual information (nats) of every discrete latent with every factor.

    Args:
      binned: (N, q) integer latents (e.g. :func:`discretize`).
      factors: (N, K) integer factors.

    Returns:
      (q, K) float64 ``I(z_j; v_k)`` of the empirical joint distributions (the plug-in estimate, as
      ``sklearn.metrics.mutual_info_score``); memory O(N q) per factor.
    """
    z, f = np.asarray(binned), np.asarray(factors)
    N, q = z.shape
    zl = np.empty_like(z, dtype=np.int64)
    nz = np.empty(q, np.int64)
    for j in range(q):
        zl[:, j], nz[j] = _relabel(z[:, j])
    nb = int(nz.max())
    out = np.empty((q, f.shape[1]))
    for k in range(f.shape[1]):
        v, nv = _relabel(f[:, k])
        # one bincount for all q contingency tables of factor k: cell (j, a, b) at (j * nb + a) * nv + b
        cells = ((np.arange(q, dtype=np.int64) * nb + zl) * nv + v[:, None]).reshape(-1)
        joint = np.bincount(cells, minlength=q * nb * nv).reshape(q, nb, nv) / N
        pz, pv = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(joint > 0, joint * np.log(joint / (pz * pv)), 0.0)
        out[:, k] = np.maximum(terms.sum((1, 2)), 0.0)  # clip the -1e-17 of rounding
    return out


# ------------------------------------------------------------------------------------------ MIG
def _chosen_factors(names: tuple[str, ...], subset) -> tuple[str, ...]:
    chosen = names if subset is None else tuple(subset)
    unknown = [n for n in chosen if n not in names]
    if unknown or not chosen:
        raise ValueError(f"unknown factor name(s) {unknown or chosen!r} in subset: the factors are {names}.")
    return chosen


def _gap(mi: np.ndarray, h: np.ndarray, names: tuple[str, ...], chosen: tuple[str, ...]) -> tuple[float, dict]:
    """(q, K) mutual information and (K,) factor entropies -> (MIG over ``chosen``, per-factor gaps)."""
    top2 = -np.sort(-mi, axis=0)[:2]  # (2, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(h > 0, (top2[0] - top2[1]) / h, np.nan)
    per_factor = {n: float(gap[k]) for k, n in enumerate(names)}
    used = [per_factor[n] for n in chosen if h[names.index(n)] > 0]
    if not used:
        raise ValueError(f"every factor in {chosen} is constant in this sample (zero entropy): MIG is undefined; "
                         "sample factors that vary.")
    return float(np.mean(used)), per_factor


def mig_histogram(codes, factors, *, n_bins: int = 20, factor_names=None, subset: Sequence[str] | None = None) -> dict:
    """Mutual information gap with disentanglement_lib's histogram estimator (posterior means, binned).

    Args:
      codes: (N, q) float latent codes (posterior means), q >= 2.
      factors: (N, K) integer ground-truth factor indices of the same N images.
      n_bins: equal-width bins per latent (20 as disentanglement_lib).
      factor_names: K names for ``per_factor`` (default ``factor_0`` ...; pass ``data.factor_names``).
      subset: names of the factors to average over (default all, as disentanglement_lib); an unknown
        name is a ValueError.

    Returns:
      ``{"mig": float, "per_factor": {name: float}, "mutual_info": (q, K) ndarray (nats),
      "entropy": (K,) ndarray (nats)}``. A factor that is constant in the sample (H = 0) has no gap:
      its ``per_factor`` entry is nan and it is left out of ``mig``.
    """
    c = _check_codes(codes)
    f = _check_factors(factors, c.shape[0], "MIG")
    if c.shape[1] < 2:
        raise ValueError(f"MIG compares the two most informative latents: codes need q >= 2 columns, got {c.shape[1]}.")
    names = _check_factor_names(factor_names, f.shape[1])
    chosen = _chosen_factors(names, subset)
    mi = mutual_info_matrix(discretize(c, n_bins), f)
    h = discrete_entropy(f)
    mig, per_factor = _gap(mi, h, names, chosen)
    return {"mig": mig, "per_factor": per_factor, "mutual_info": mi, "entropy": h}


mutual_info_gap = mig_histogram  # the name before the Chen et al. estimator was added


_LOG_2PI = float(np.log(2 * np.pi))


@jax.jit
def _log_sum_q(z, mean, log_var, valid):
    """``log sum_b [valid_b] N(z_cj; mean_bj, exp(log_var_bj))``: z (C, q); mean, log_var (B, q); valid (B,)
    bool -> (C, q) float32 (every block holds at least one valid row)."""
    lp = -0.5 * ((z[:, None, :] - mean[None]) ** 2 * jnp.exp(-log_var)[None] + log_var[None] + _LOG_2PI)
    return jax.nn.logsumexp(jnp.where(valid[None, :, None], lp, -jnp.inf), axis=1)


def _cross_entropy(z, mean, log_var, chunk_size: int, block_size: int) -> np.ndarray:
    """``-mean_s log q(z_sj)`` per latent, ``q(z_j) = mean_b N(z_j; mean_bj, exp(log_var_bj))``.

    z: (S, q) samples; mean, log_var: (B, q). Both sides are cut into fixed-size pieces (padded:
    repeated samples whose output is dropped, invalid rows that add nothing), so the jitted block
    compiles once; the blocks' log-sums are combined on the host in float64. Returns (q,) nats."""
    S, q = z.shape
    B = mean.shape[0]
    nb = -(-B // block_size) * block_size
    mean_p = np.zeros((nb, q), np.float32)
    lv_p = np.zeros((nb, q), np.float32)
    mean_p[:B], lv_p[:B] = mean, log_var
    valid = np.arange(nb) < B
    total = np.zeros(q)
    for s0 in range(0, S, chunk_size):
        part = z[s0:s0 + chunk_size]
        n = part.shape[0]
        if n < chunk_size:
            part = np.concatenate([part, np.repeat(part[-1:], chunk_size - n, axis=0)])
        acc = np.full((n, q), -np.inf)
        for b0 in range(0, nb, block_size):
            sl = slice(b0, b0 + block_size)
            acc = np.logaddexp(acc, np.asarray(_log_sum_q(part, mean_p[sl], lv_p[sl], valid[sl]), np.float64)[:n])
        total += acc.sum(axis=0)
    return -(total / S - np.log(B))


def mig_chen(mean, log_var, factors, key, *, n_samples: int = 1, factor_names=None,
             subset: Sequence[str] | None = None, chunk_size: int = 256, block_size: int = 1024) -> dict:
    """Mutual information gap with Chen et al.'s (2018) estimator from the full Gaussian posterior.

    For every latent j and factor k, with the N evaluated images standing for the data set,
    ``q(z_j) = (1/N) sum_n q(z_j | x_n)`` and ``q(z_j | v_k = v)`` the mean over the images with
    ``v_k = v``; ``H(z_j) = -E log q(z_j)`` and ``H(z_j | v_k) = sum_v p(v) H(z_j | v_k = v)`` are
    estimated with ``n_samples`` draws ``z ~ q(z | x_n)`` from every image (the same draws for both),
    and ``I(z_j; v_k) = H(z_j) - H(z_j | v_k)``, normalised by the factor's empirical entropy
    (``log`` of its number of values on the full grid or any balanced subgrid; Chen et al. divide by
    that). On a random sample instead of the full grid the mixtures are estimated from the sample, so
    ``I`` carries a small positive bias for latents that encode *other* factors (it vanishes on a full
    product grid, where ``q(z_j | v_k) = q(z_j)`` for them). The estimate is not clipped: Monte Carlo
    noise can make an uninformative latent's ``I`` slightly negative.

    Args:
      mean, log_var: (N, q) floats, the Gaussian posterior ``q(z | x_n)`` of each image; q >= 2.
      factors: (N, K) integer ground-truth factor indices of the same images.
      key: PRNG key for the samples of z (one draw of shape (n_samples, N, q)).
      n_samples: draws per image (cost and Monte Carlo noise scale as n_samples and 1 / sqrt).
      factor_names, subset: as :func:`mig_histogram`; on dSprites-like data Chen et al. average over
        :data:`CHEN_DSPRITES_FACTORS`.
      chunk_size, block_size: samples x images per jitted density block (memory
        ``chunk_size * block_size * q`` float32; time ``O(n_samples N^2 q)``).

    Returns:
      ``{"mig": float, "per_factor": {name: float}, "mutual_info": (q, K) ndarray (nats),
      "entropy": (K,) factor entropies, "latent_entropy": (q,) H(z_j), "conditional_entropy": (q, K)
      H(z_j | v_k)}`` (nats; continuous entropies of the latents, which may be negative).
    """
    mu = _check_codes(mean, "mean")
    lv = _check_codes(log_var, "log_var")
    if lv.shape != mu.shape:
        raise ValueError(f"mean and log_var must have the same shape (N, q), got {mu.shape} and {lv.shape}.")
    f = _check_factors(factors, mu.shape[0], "MIG")
    if mu.shape[1] < 2:
        raise ValueError(f"MIG compares the two most informative latents: mean and log_var need q >= 2 columns, "
                         f"got {mu.shape[1]}.")
    key = check_key(key)
    n_samples = check_positive_int(n_samples, "n_samples")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    block_size = check_positive_int(block_size, "block_size")
    names = _check_factor_names(factor_names, f.shape[1])
    chosen = _chosen_factors(names, subset)
    N, q = mu.shape
    mu, lv = mu.astype(np.float32), lv.astype(np.float32)
    eps = np.asarray(jax.random.normal(key, (n_samples, N, q)))
    z = mu + np.exp(0.5 * lv) * eps  # (n_samples, N, q)

    def entropy(rows):
        return _cross_entropy(z[:, rows].reshape(-1, q), mu[rows], lv[rows], chunk_size, block_size)

    h_z = entropy(np.arange(N))
    h_cond = np.zeros((q, f.shape[1]))
    for k in range(f.shape[1]):
        for v in np.unique(f[:, k]):
            rows = np.flatnonzero(f[:, k] == v)
            h_cond[:, k] += len(rows) / N * entropy(rows)
    mi = h_z[:, None] - h_cond
    h = discrete_entropy(f)
    mig, per_factor = _gap(mi, h, names, chosen)
    return {"mig": mig, "per_factor": per_factor, "mutual_info": mi, "entropy": h, "latent_entropy": h_z,
            "conditional_entropy": h_cond}


# --------------------------------------------------------------------------------- FactorVAE score
def _encode_factors(encode_fn: Callable, data, factors: np.ndarray, chunk_size: int) -> np.ndarray:
    """Codes (M, q) of the images of ``factors`` (M, K): rendered and encoded ``chunk_size`` at a
    time, the last chunk padded by repeating its last row so that every call sees one shape."""
    M = factors.shape[0]
    size = min(chunk_size, M)
    out = []
    for start in range(0, M, size):
        part = factors[start:start + size]
        n = part.shape[0]
        if n < size:
            part = np.concatenate([part, np.repeat(part[-1:], size - n, axis=0)])
        codes = np.asarray(encode_fn(data.render(part)))
        if codes.ndim != 2 or codes.shape[0] != size:
            raise ValueError(f"encode_fn must map images (M, ...) to codes (M, q); for M = {size} it returned "
                             f"shape {codes.shape}.")
        if out and codes.shape[1] != out[0].shape[1]:
            raise ValueError(f"encode_fn returned {codes.shape[1]} latents, earlier {out[0].shape[1]}.")
        out.append(_check_codes(codes, "encode_fn's codes")[:n])
    return np.concatenate(out)


def _votes(encode_fn, data, key, n_votes, batch_size, scale, active, chunk_size) -> np.ndarray:
    """(q, K) counts: for each vote, the active latent of least normalised variance vs the fixed factor."""
    K = len(data.factor_sizes)
    ks = streams(key, "factor", "value", "others")
    sizes = np.asarray(data.factor_sizes, np.int64)
    fixed = np.asarray(jax.random.randint(ks["factor"], (n_votes,), 0, K))
    value = np.asarray(jax.random.randint(ks["value"], (n_votes,), 0, sizes[fixed].astype(np.int32)))
    factors = np.array(data.sample_factors(ks["others"], n_votes * batch_size)).reshape(n_votes, batch_size, K)
    factors[np.arange(n_votes), :, fixed] = value[:, None]
    codes = _encode_factors(encode_fn, data, factors.reshape(-1, K), chunk_size)
    if codes.shape[1] != active.shape[0]:
        raise ValueError(f"encode_fn returned {codes.shape[1]} latents for the votes but {active.shape[0]} before.")
    var = (codes / scale).reshape(n_votes, batch_size, -1).var(axis=1, ddof=1)[:, active]
    chosen = np.flatnonzero(active)[var.argmin(axis=1)]
    votes = np.zeros((active.shape[0], K), np.int64)
    np.add.at(votes, (chosen, fixed), 1)
    return votes


def factor_vae_score(encode_fn: Callable, data, key, *, n_train: int = 800, n_eval: int = 800, batch_size: int = 64,
                     n_global: int = 10_000, prune_threshold: float = 0.05, chunk_size: int = 1024) -> dict:
    """The FactorVAE disentanglement score (Kim & Mnih 2018).

    Args:
      encode_fn: images (M, S, S, 1) uint8 -> codes (M, q) (posterior means); called on chunks of
        ``min(chunk_size, total)`` images of one shape.
      data: an object with ``factor_names``, ``factor_sizes``, ``sample_factors(key, n)`` and
        ``render(factors)`` (e.g. :class:`jaxgen.data.Sprites`).
      key: PRNG key; streams "global", "train", "eval".
      n_train, n_eval: votes to fit and to evaluate the majority-vote classifier.
      batch_size: images per vote (>= 2), all sharing the fixed factor's value.
      n_global: random images for the latents' standard deviations (ddof 1).
      prune_threshold: latents whose std is below it are collapsed and never voted for.
      chunk_size: images rendered and encoded per call.

    Returns:
      ``{"score": float (eval accuracy), "train_accuracy": float, "active": (q,) bool,
      "votes": (q, K) int train votes, "eval_votes": (q, K) int}``. With no active latent the
      classifier cannot vote: score and train_accuracy are 0.
    """
    if not callable(encode_fn):
        raise ValueError(f"encode_fn must be a function images -> codes, got {type(encode_fn).__name__}.")
    _check_factor_data(data, "factor_vae_score")
    key = check_key(key)
    n_train = check_positive_int(n_train, "n_train")
    n_eval = check_positive_int(n_eval, "n_eval")
    batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
    n_global = check_positive_int(n_global, "n_global", minimum=2)
    prune_threshold = check_positive_float(prune_threshold, "prune_threshold", allow_zero=True)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    ks = streams(key, "global", "train", "eval")
    K = len(data.factor_sizes)

    codes = _encode_factors(encode_fn, data, np.asarray(data.sample_factors(ks["global"], n_global)), chunk_size)
    std = codes.std(axis=0, ddof=1)
    active = std >= prune_threshold
    q = codes.shape[1]
    del codes
    if not active.any():
        zeros = np.zeros((q, K), np.int64)
        return {"score": 0.0, "train_accuracy": 0.0, "active": active, "votes": zeros, "eval_votes": zeros.copy()}
    scale = np.where(active, std, 1.0)
    train = _votes(encode_fn, data, ks["train"], n_train, batch_size, scale, active, chunk_size)
    evals = _votes(encode_fn, data, ks["eval"], n_eval, batch_size, scale, active, chunk_size)
    classifier = train.argmax(axis=1)  # (q,) the majority factor of each latent (latents never voted: factor 0)
    rows = np.arange(q)
    return {"score": float(evals[rows, classifier].sum() / n_eval),
            "train_accuracy": float(train[rows, classifier].sum() / n_train),
            "active": active, "votes": train, "eval_votes": evals}
