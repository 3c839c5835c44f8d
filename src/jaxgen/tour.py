"""The tour: run the project's examples in order and write one ``report.md`` a newcomer reads top to bottom.

The examples are the entries of :data:`SECTIONS`, in reading order. Each entry names an experiment
file (``experiments/<name>.py``), the settings the tour uses on top of that experiment's full config
(small enough for a laptop CPU), a short explanation of the model, captions for its figures and a
function that picks the key numbers out of its ``metrics.json``. A later example (Bayesian GMM,
robust PCA, VAE, GAN ...) joins the tour by adding one :class:`Section` to the list.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import shlex
import time
import traceback
from pathlib import Path
from typing import Callable, Mapping, Sequence

from jaxgen import runner

__all__ = ["Section", "SECTIONS", "run_tour", "write_report", "reproduce_argv"]


def _fmt(x, digits: int = 3) -> str:
    """Numbers for a table: fixed decimals, lists as ``[a, b]``, missing values as ``n/a``."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_fmt(v, digits) for v in x) + "]"
    return str(x)


@dataclasses.dataclass(frozen=True)
class Section:
    """One example of the tour.

    Attributes:
      experiment: experiment file name (``experiments/<experiment>.py``).
      title: section heading.
      intro: markdown, what the model is and what to look for (2-5 sentences).
      captions: figure name (without ``.png``) -> caption, in display order; figures the run saved
        but that are not listed here are appended without a caption.
      numbers: metrics dict -> rows ``(quantity, value)`` of the "key numbers" table.
      overrides: tour settings applied on top of the experiment's full config (ignored with
        ``--quick``, which uses the experiment's own ``QUICK``).
    """

    experiment: str
    title: str
    intro: str
    captions: Mapping[str, str]
    numbers: Callable[[dict], list[tuple[str, str]]]
    overrides: Mapping[str, object] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- the sections


def _disentangle_numbers(m: dict) -> list[tuple[str, str]]:
    rows = []
    for name, mig in m["mig_histogram"].items():
        rows.append((f"{name} (weight {m['best_weight'][name]:g}): MIG histogram (disentanglement_lib) / MIG Chen "
                     "et al. / FactorVAE score",
                     f"{_fmt(mig)} / {_fmt(m['mig_chen'][name])} / {_fmt(m['factor_vae_score'][name])}"))
    best = m["best_model"]
    rows.append(("active latents of the traversed model (variance of the posterior mean > 0.01)",
                 _fmt(m["runs"][best["objective"]][f"{best['weight']:g}"]["active_latents"], 0)))
    return rows


def _ppca_numbers(m: dict) -> list[tuple[str, str]]:
    return [
        ("held-out log-likelihood per point: true model / closed form / EM (nats)",
         f"{_fmt(m['test_loglik_true'])} / {_fmt(m['test_loglik_ml'])} / {_fmt(m['test_loglik_em'])}"),
        ("largest principal angle, true vs fitted subspace (degrees)", _fmt(m["max_angle_deg_ml"], 2)),
        ("noise variance sigma^2: true / closed form / EM",
         f"{_fmt(m['sigma2_true'], 4)} / {_fmt(m['sigma2_ml'], 4)} / {_fmt(m['sigma2_em'], 4)}"),
        ("EM vs closed form: max |difference| of the model covariance W W^T + sigma^2 I",
         f"{m['em_vs_ml_max_abs_cov_diff']:.2e} ({m['em_n_iter']} EM iterations)"),
        ("log-likelihood under the true model: generated samples vs held-out data",
         f"{_fmt(m['generated_loglik_true'])} vs {_fmt(m['test_loglik_true'])}"),
    ]


def _faithful_1d_numbers(m: dict) -> list[tuple[str, str]]:
    bic = m["bic"]
    return [
        ("total log-likelihood, K=2 (nats)", _fmt(m["loglik_total"], 2)),
        ("weights (sorted by mean)", _fmt(m["weights"])),
        ("means / standard deviations (minutes)", f"{_fmt(m['means'])} / {_fmt(m['stds'])}"),
        (f"BIC for K = 1..{len(bic)} (lower is better)", ", ".join(f"K={k}: {_fmt(v, 1)}" for k, v in bic.items())),
        ("K chosen by BIC (inside the range?); its narrowest component's sd (minutes)",
         f"{m['best_k_bic']} ({'yes' if m['best_k_interior'] else 'no: at the edge'}); {_fmt(m['best_k_min_std'])}"),
    ]


def _faithful_2d_numbers(m: dict) -> list[tuple[str, str]]:
    best = m["best_bic"]
    return [
        ("total log-likelihood, K=2 full covariance (nats)", _fmt(m["loglik_total"], 3)),
        (f"published optimum (rounded to {m['reference_decimals']} decimals) / gap to it",
         f"{m['reference_loglik']:.{m['reference_decimals']}f} / {m['gap']:+.1e} "
         + ("(within the rounding of the published value)" if m["gap_within_rounding"] else "(larger than its rounding)")),
        ("weights (sorted by eruption mean)", _fmt(m["weights"])),
        ("means (eruption min, waiting min)", _fmt(m["means"], 2)),
        ("best model by BIC", f"{best['covariance_type']}, K={best['K']} (BIC {_fmt(best['bic'], 1)})"),
        ("best model by AIC", f"{m['best_aic']['covariance_type']}, K={m['best_aic']['K']}"),
        ("smallest component variance of the BIC-best model", f"{m['best_bic_min_variance']:.3g}"),
    ]


def _outlier_numbers(m: dict) -> list[tuple[str, str]]:
    rows = []
    for data_name, aucs in m["auc"].items():
        rows.append((f"ROC AUC on `{data_name}` ({_fmt(m['outlier_fraction'][data_name] * 100, 0)}% outliers)",
                     ", ".join(f"{model}: {_fmt(a)}" for model, a in aucs.items())))
    return rows


def _robust_pca_numbers(m: dict) -> list[tuple[str, str]]:
    rows = []
    for part, label in (("2d", "2-D (figure)"), ("hd", "10-D")):
        angles, auc = m[part]["angle_deg"], m[part]["auc"]
        rows.append((f"{label}: largest angle to the true subspace (degrees)",
                     ", ".join(f"{name}: {_fmt(a, 2)}" for name, a in angles.items())))
        rows.append((f"{label}: outlier ROC AUC on held-out data",
                     ", ".join(f"{name}: {_fmt(a)}" for name, a in auc.items())))
    rows.append(("fitted degrees of freedom nu (2-D / 10-D)", f"{_fmt(m['2d']['nu'], 2)} / {_fmt(m['hd']['nu'], 2)}"))
    if "nuts" in m:
        n = m["nuts"]
        rows.append(("Bayesian Student-t PCA (NUTS): angle median and 90% interval (degrees)",
                     f"{_fmt(n['angle_deg_median'], 2)} [{_fmt(n['angle_deg_90ci'][0], 2)}, {_fmt(n['angle_deg_90ci'][1], 2)}]"))
    return rows


def _bayes_faithful_numbers(m: dict) -> list[tuple[str, str]]:
    rows = []
    for name, v in m["vb"].items():
        p = ", ".join(f"P({n}) = {float(x):.2f}" for n, x in enumerate(v["p_occupied"]) if x > 0.005)
        rows.append((f"{name}: components with weight > 1%; posterior of the number n of occupied clusters",
                     f"{v['n_components_used']}; {p}"))
    if "nuts" in m:
        n = m["nuts"]
        rows.append((f"NUTS (alpha0={n['alpha0']:g}): max R-hat, min bulk ESS per second, divergences",
                     f"{_fmt(n['r_hat_max'])}, {_fmt(n['ess_bulk_per_second'], 1)}, {n['divergences']}"))
    return rows


def _bayes_blobs_numbers(m: dict) -> list[tuple[str, str]]:
    return [(f"{name}: clusters found (true {m['true_k']}), ARI, held-out log p per point, fit seconds",
             f"{r['clusters_found']}, {_fmt(r['ari_test'])}, {_fmt(r['heldout_log_predictive_per_point'])}, "
             f"{_fmt(r['fit_seconds'], 2)}") for name, r in m["table"].items()]


def _vae_numbers(m: dict) -> list[tuple[str, str]]:
    change = m["heldout_elbo_change_last_quarter"]
    return [
        (f"VAE: held-out log-likelihood per image, k={m['test_loglik_k']} importance samples (nats)",
         _fmt(m["test_loglik_nats"], 2)),
        ("VAE: held-out ELBO per image (a lower bound of the above)", _fmt(m["test_elbo_nats"], 2)),
        ("same noise model (one variance per pixel): independent Gaussian per pixel, no latent / factor analysis, "
         "q=2 (nats)", f"{_fmt(m['test_loglik_diag_nats'], 2)} / {_fmt(m['test_loglik_fa_nats'], 2)}"),
        ("VAE minus factor analysis / minus the per-pixel Gaussian (nats per image)",
         f"{m['vae_minus_fa_nats']:+.2f} / {m['vae_minus_diag_nats']:+.2f}"),
        ("a different noise model, for reference: PPCA, q=2, one shared variance (nats)", _fmt(m["test_loglik_ppca_nats"], 2)),
        (f"pixels with training variance below the floor {m['min_obs_var']:g} (every per-pixel model pins them there)",
         f"{m['n_pixels_at_floor']} of {m['n_pixels']}"),
        ("training: epochs, seconds; held-out ELBO change over the last quarter (nats)",
         f"{m['epochs']}, {_fmt(m['train_seconds'], 1)} s; " + ("n/a" if change is None else f"{change:+.2f}")),
    ]


def _pixelcnn_numbers(m: dict) -> list[tuple[str, str]]:
    rows = [
        (f"held-out negative log-likelihood, exact, {m['test_n']} binarised test images: nats per image / bits per pixel",
         f"{_fmt(m['test_nll_nats'], 2)} / {_fmt(m['test_bits_per_dim'], 4)}"),
        ("parameters; share of the earlier pixels the last pixel's prediction sees",
         f"{m['n_params']}; {_fmt(100 * m['receptive_field_coverage'], 1)}%"),
        ("training: epochs, seconds, images per second",
         f"{m['epochs']}, {_fmt(m['train_seconds'], 1)} s, {_fmt(m['train_images_per_s'], 0)}"),
        (f"sampling {m['n_samples']} images pixel by pixel (compile included)", f"{_fmt(m['sample_seconds'], 1)} s"),
    ]
    if m.get("vae"):
        rows.append(("the VAE of the comparison: held-out ELBO (a lower bound of its log-likelihood), parameters",
                     f"{_fmt(m['vae']['test_elbo_nats'], 2)} nats, {m['vae']['n_params']}"))
    return rows


SECTIONS: list[Section] = [
    Section(
        experiment="ppca_generative",
        title="PCA as a linear generative model (probabilistic PCA)",
        intro=(
            "Probabilistic PCA (Tipping & Bishop, 1999) says each data point is made from a low-dimensional "
            "latent code: draw z ~ N(0, I_q), then x = W z + mu + noise with noise ~ N(0, sigma^2 I_D). "
            "Integrating z out gives a Gaussian N(mu, W W^T + sigma^2 I): a density that is stretched along "
            "the principal subspace and thin elsewhere. Its maximum-likelihood fit is in closed form "
            "(the top eigenvectors of the sample covariance; sigma^2 = the mean of the discarded eigenvalues), "
            "and EM reaches the same answer iteratively. Here the data come from a *known* PPCA, so we can "
            "compare the fitted model with the truth, then use the fitted model to generate new points."
        ),
        captions={
            "ppca_fit": "Left: training data with the 1- and 2-sigma density ellipses of the true model (dashed) "
            "and of the closed-form fit (solid), with their principal axes. Middle: new samples generated "
            "from the fitted model over held-out real data: a generative model should be indistinguishable "
            "from the data. Right: the latent codes E[z|x] of the data against the N(0, 1) prior.",
        },
        numbers=_ppca_numbers,
    ),
    Section(
        experiment="gmm_faithful_1d",
        title="A Gaussian mixture in 1-D: Old Faithful eruption durations",
        intro=(
            "A Gaussian mixture model says each point first picks a component k with probability pi_k, then "
            "is drawn from N(mu_k, sigma_k^2). Its density is the weighted sum of the component densities; "
            "EM fits it by alternating soft assignments (responsibilities) and weighted Gaussian fits. "
            "The eruption durations of the Old Faithful geyser (272 eruptions) are clearly bimodal: short "
            "(~2 min) and long (~4.3 min) eruptions."
        ),
        captions={
            "faithful_1d_fit": "Left: the K=2 mixture density (black) over the histogram, with its two weighted "
            "components. Middle: a histogram of samples drawn from the fitted model next to the data. "
            "Right: BIC and AIC against K = 1..6, as differences from their minimum (symmetric-log axis). BIC "
            "falls steeply from one to two components (the two eruption types); K = 2, 3 and 4 are then within "
            "a few units of each other and the lowest, K = 4, lies inside the range (K = 5 and 6 are clearly "
            "worse). Its extra components refine the shape of the peaks (one is narrow: its standard deviation "
            "is in the table) rather than find new eruption types.",
        },
        numbers=_faithful_1d_numbers,
    ),
    Section(
        experiment="gmm_faithful_2d",
        title="A Gaussian mixture in 2-D: Old Faithful, and choosing K with BIC/AIC",
        intro=(
            "The same model on both Old Faithful variables (eruption duration and waiting time to the next "
            "eruption, raw minutes). With K=2 full-covariance components the maximum-likelihood fit is known: "
            "a total log-likelihood of -1130.26 (published to two decimals), which EM with a few restarts should "
            "reach. Covariances can "
            "be constrained (full, tied = shared, diag, spherical); the Bayesian and Akaike information "
            "criteria (BIC = -2 log L + p log N, AIC = -2 log L + 2p, p = number of parameters) trade fit "
            "against size. A warning comes with them: the likelihood of a mixture is unbounded. Give K more room "
            "(the full experiment goes to K=6) and a component can shrink onto tied values (14 eruptions were "
            "followed by a wait of exactly 83 minutes; times are whole minutes), its variance falls to the "
            "regulariser `reg_covar` and the criteria reward a spike, not a cluster. The smallest component "
            "variance in the table below flags this; the Bayesian mixture avoids it with a prior."
        ),
        captions={
            "faithful_2d_fit": "Filled log-density contours of the K=2 full-covariance fit over the data (the top "
            "band reaches each peak), with each component's 2-sigma ellipse and points coloured by their most "
            "likely component.",
            "faithful_2d_bic": "BIC (left) and AIC (right) against K for each covariance type, as the difference from the "
            "best model (the star) on a symmetric-log axis: models within a few units of the best are close "
            "competitors, hundreds of units means clearly worse.",
        },
        numbers=_faithful_2d_numbers,
        overrides={"k_max": 4},  # 16 fits instead of 24: each new (K, covariance type) is one compile
    ),
    Section(
        experiment="outliers",
        title="Outlier detection with a density: PPCA and GMM log-likelihoods",
        intro=(
            "A fitted density gives every new point a log-likelihood; points the model finds improbable are "
            "outlier candidates. We fit PPCA and a GMM on clean training data, then score a held-out set "
            "contaminated with outliers and measure how well the negative log-likelihood ranks the outliers "
            "first (ROC AUC: 1 = perfect, 0.5 = chance). PPCA suits data near a linear subspace "
            "(10-D points near a 2-D plane); the GMM suits clustered data (2-D blobs with uniform outliers)."
        ),
        captions={
            "outliers_scores": "Top: histograms of the outlier score (negative log-likelihood) of inliers and "
            "outliers, for the model suited to each data set (log scale: gross outliers are many nats away). "
            "Bottom: ROC curves of every score, including the distance to the training mean as a model-free "
            "baseline.",
            "outliers_blobs": "The blobs test set: GMM log-density contours, true outliers (crosses) and the "
            "points the GMM flags when it flags as many points as there are outliers (circles). Outliers that "
            "fall inside a cluster look like inliers to any density: they cap the AUC below 1.",
        },
        numbers=_outlier_numbers,
    ),
    Section(
        experiment="robust_pca",
        title="Robust PCA: a Student-t likelihood resists outliers",
        intro=(
            "Gaussian PPCA pays the *square* of a point's distance, so a few gross outliers drag its subspace "
            "towards them. Student-t PCA (Archambeau, Delannay & Verleysen, 2006) gives each point a hidden "
            "precision scale u_n ~ Gamma(nu/2, nu/2): x_n ~ N(mu + W z_n, sigma^2 I / u_n). EM estimates "
            "<u_n> = (nu + D) / (nu + delta_n), with delta_n the point's Mahalanobis distance, so far-away "
            "points get little weight, and nu itself is learned. The same model in NumPyro, sampled by NUTS, "
            "gives a credible interval for the subspace."
        ),
        captions={
            "robust_pca": "One data set, four panels on the same axes: the true model on clean data; PPCA on "
            "the clean data; PPCA on the same data with 10% gross outliers (crosses), pulled off the true "
            "direction (dashed); Student-t PCA on the contaminated data, back on the truth. Contours: the "
            "fitted log-density.",
        },
        numbers=_robust_pca_numbers,
        overrides={"hd.n_train": 1000, "nuts.num_warmup": 200, "nuts.num_samples": 200, "nuts.n_points": 200},
    ),
    Section(
        experiment="bayes_gmm_faithful",
        title="How many clusters? The Bayesian Gaussian mixture on Old Faithful",
        intro=(
            "Instead of choosing K, put K_max = 6 components and priors on everything: a symmetric "
            "Dirichlet(alpha0) on the weights and a Normal-inverse-Wishart on each mean and covariance. "
            "A small alpha0 favours few non-zero weights, so the data switch off the components they do not "
            "need; the Wishart prior keeps every covariance away from zero (no collapsed spikes as in the "
            "maximum-likelihood BIC sweep above). Variational Bayes (Bishop, PRML 10.2) gives the posterior in "
            "closed-form updates; as in PRML Fig. 10.6, alpha0 = 1e-3 leaves two clusters."
        ),
        captions={
            "bayes_gmm_faithful": "Top: posterior predictive contours, points coloured by their most probable "
            "cluster, 2-sigma ellipses of the components in use, for three values of alpha0. Bottom: the "
            "posterior mean weights; above each, the posterior over the number n of occupied clusters, P(n).",
        },
        numbers=_bayes_faithful_numbers,
        overrides={"nuts.enabled": False},
    ),
    Section(
        experiment="bayes_gmm_blobs",
        title="The Bayesian mixture on data with a known number of clusters, next to scikit-learn",
        intro=(
            "Four Gaussian blobs, K_max = 10, alpha0 = 1e-3: the number of clusters is recovered, not chosen. "
            "The adjusted Rand index measures the agreement with the true labels (1 = identical partitions), "
            "and the held-out log predictive density compares the fitted densities. scikit-learn's "
            "BayesianGaussianMixture with the same prior is the reference."
        ),
        captions={
            "bayes_gmm_blobs": "Left: predictive contours and cluster assignments. Middle: sorted posterior "
            "weights (jaxgen and scikit-learn). Right: the co-clustering matrix P(z_i = z_j) of the test "
            "points sorted by true label, a summary that does not depend on how components are labelled.",
        },
        numbers=_bayes_blobs_numbers,
        overrides={"nuts.enabled": False},
    ),
    Section(
        experiment="vae_continuous",
        title="The variational autoencoder: a non-linear latent-variable model",
        intro=(
            "Replace the linear map of factor analysis by neural networks: a decoder p(x|z) = N(f(z), "
            "diag(sigma^2)), whose mean f an MLP computes from z and whose noise variance is learned once per "
            "pixel, and an encoder q(z|x) that approximates the posterior. Training maximises the ELBO, "
            "log p(x) - KL(q(z|x) || p(z|x)), with the reparameterisation trick, in the project's one training "
            "loop (a jit-compiled optax step, each epoch one `lax.scan`, orbax checkpoints), until the held-out "
            "ELBO stops rising. The 2-D latent space of scikit-learn's 8x8 digits (or Frey Face when its file is "
            "in the data folder) can be drawn directly; log p(x) itself is estimated by importance sampling. "
            "Compare it with models that have the *same* noise model: an independent Gaussian per pixel (no "
            "latent at all) and factor analysis (the linear model, q=2, one noise variance per pixel, the same "
            "floor). PPCA, with one variance shared by all pixels, is listed for reference only: on the digits "
            "some border pixels are constant in the training set, and every per-pixel model gains about 2 nats "
            "per such pixel by putting its variance at the floor, which alone puts the per-pixel Gaussian far "
            "above PPCA."
        ),
        captions={
            "training": "Training curve: the ELBO per image on the training batches (each epoch) and on the "
            "held-out images (every few epochs), with the final importance-sampled held-out log-likelihood (star) "
            "and the baselines' held-out log-likelihoods (horizontal lines). The held-out ELBO flattens; its gap "
            "below the training ELBO is overfitting to the small training set.",
            "manifold": "The learned manifold: decoder means on a grid of z at even steps of prior probability.",
            "samples": "New images: z ~ N(0, I), shown as the decoder mean.",
            "reconstructions": "Held-out images (top row) and their reconstructions through the 2-D bottleneck "
            "(bottom row, the decoder mean at z = E[z|x]).",
            "interpolations": "Walking in latent space between two held-out images: each row starts at image A "
            "(left, the image itself) and ends at image B (right); between them the decoder means at evenly "
            "spaced points from E[z|A] to E[z|B], whose ends are the reconstructions of A and B.",
            "latent": "Posterior means of the held-out images, coloured by digit: classes form regions without labels.",
        },
        numbers=_vae_numbers,
    ),
    Section(
        experiment="pixelcnn_mnist",
        title="The PixelCNN: an exact likelihood, one pixel at a time",
        intro=(
            "An autoregressive model needs no latent variable: write p(x) = prod_i p(x_i | x_1, ..., x_{i-1}) over "
            "the pixels in raster order (row by row, left to right) and let one network give every conditional. "
            "The PixelCNN (van den Oord et al., 2016) is that network: convolutions masked so that pixel i only sees "
            "the pixels before it, all conditionals computed in one pass, so log p(x) is exact and training is "
            "plain maximum likelihood. The gated version used here has a vertical stack (rows above) and a "
            "horizontal stack (pixels to the left) and no blind spot: with enough layers the last pixel sees every "
            "earlier one. Sampling is the price: one pixel at a time. Conditioning on observed pixels is free when "
            "they come first, so completing the lower half of an image given its upper half draws exactly from "
            "p(lower | upper); a VAE can only approximate that, by alternating encoding and decoding (pseudo-Gibbs). "
            "Here on scikit-learn's 8x8 digits, binarised (pixel = 1 with probability grey level / 16); "
            "`jaxgen run pixelcnn_mnist` does the same on binarised MNIST."
        ),
        captions={
            "samples": "New digits drawn pixel by pixel from the trained PixelCNN.",
            "inpainting": "Inpainting. Left: a held-out digit, its upper half (the lower half hidden, grey) and four "
            "PixelCNN completions, exact draws of p(lower half | upper half). Right: four completions of the same "
            "upper halves by a VAE trained on the same data (50 pseudo-Gibbs steps: encode, draw z, draw the "
            "missing pixels, keep the observed ones).",
            "training_curve": "Negative log-likelihood per image during training: the training batches (freshly "
            "binarised at every step) and the held-out digits.",
        },
        numbers=_pixelcnn_numbers,
        overrides={"data": "digits", "n_train": 1500, "model.features": 16, "model.n_layers": 5,
                   "model.out_features": 32, "train.epochs": 15, "train.batch_size": 60, "train.lr": 3e-3,
                   "train.logs_per_epoch": 1, "eval.n_monitor": 297, "eval.n_samples": 64, "vae.epochs": 40,
                   "vae.hidden": (64,), "vae.latent_dim": 8, "vae.batch_size": 60},
    ),
    Section(
        experiment="disentangle_sprites",
        title="Disentangling: latent traversals on procedural sprites",
        intro=(
            "When the data are made from a few independent factors (here a sprite's shape, scale, orientation and "
            "x / y position, every combination rendered on demand), does each latent of a VAE capture one factor? "
            "The beta-VAE weights the KL term by beta > 1, pressing the aggregate posterior towards the factorised "
            "prior; beta-TCVAE penalises only its total correlation and FactorVAE estimates that with a "
            "discriminator on the codes. The ground truth gives two scores: the mutual information gap (MIG: for "
            "each factor, how much more the best latent knows about it than the second best, normalised; two "
            "estimators, disentanglement_lib's histograms of posterior means and Chen et al.'s full posterior) and the "
            "FactorVAE score (a majority-vote classifier's accuracy at naming a fixed factor from the latent of "
            "least variance). Here one small beta-TCVAE (beta = 6) on 32x32 sprites for 3000 steps: "
            "`jaxgen run disentangle_sprites` compares the three objectives over seeds."
        ),
        captions={
            "traversals": "Latent traversals: each row sets one latent to values from -2 to 2, the others held at "
            "the code of the held-out image on the left; rows sorted by the latent's mean KL to the prior (in the "
            "label). Rows with KL near 0 are unused latents and change nothing.",
            "mig_per_factor": "MIG of each ground-truth factor, by each estimator.",
        },
        numbers=_disentangle_numbers,
        overrides={"objectives": ("beta_tcvae",), "beta_tcvae": (6.0,), "n_seeds": 1, "image_size": 32,
                   "n_train": 10_000, "model.hidden": (256, 128), "model.latent_dim": 6, "train.steps": 3000,
                   "train.log_every": 500,
                   "eval.n_mig": 2000, "eval.fvs_train": 100, "eval.fvs_eval": 100, "eval.fvs_batch": 32,
                   "eval.fvs_global": 2000},
    ),
]


# --------------------------------------------------------------------------- running and writing


@dataclasses.dataclass
class _Outcome:
    section: Section
    folder: str
    result: runner.RunResult | None
    error: str | None
    wall_time_s: float


def _override_text(value) -> str:
    """A config value as the CLI's ``key=value`` parser reads it back (``runner.apply_overrides``):
    sequences as comma-separated elements (``(256, 128)`` -> ``256,128``, ``(64,)`` -> ``64``)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def reproduce_argv(section: Section, quick: bool) -> list[str]:
    """The command line that reruns ``section`` as the tour ran it: ``["jaxgen", "run", NAME, ...]``.

    The report prints it through ``shlex.join``, so that it pastes into a shell as these words."""
    argv = ["jaxgen", "run", section.experiment]
    if quick:
        return argv + ["--quick"]
    return argv + [f"{k}={_override_text(v)}" for k, v in section.overrides.items()]


def _section_md(i: int, o: _Outcome, quick: bool) -> str:
    s = o.section
    lines = [f"## {i}. {s.title}", "", s.intro, ""]
    if o.error is not None:
        lines += ["**This example failed:**", "", "```", o.error.rstrip(), "```", ""]
        return "\n".join(lines)
    figures = list(s.captions) + [f[:-4] for f in o.result.figures if f[:-4] not in s.captions]
    for name in figures:
        if f"{name}.png" not in o.result.figures:
            continue
        lines += [f"![{name}]({o.folder}/{name}.png)", ""]
        if s.captions.get(name):
            lines += [f"*{s.captions[name]}*", ""]
    try:
        rows = s.numbers(o.result.metrics)
    except (KeyError, TypeError, ValueError) as e:  # a renamed metric must not lose the whole report
        rows = [("(key numbers unavailable)", f"{type(e).__name__}: {e}")]
    lines += ["**Key numbers**", "", "| quantity | value |", "|---|---|"]
    cell = lambda t: str(t).replace("|", "\\|")  # noqa: E731  (a bare | would end the table cell)
    lines += [f"| {cell(q)} | {cell(v)} |" for q, v in rows]
    cmd = shlex.join(reproduce_argv(s, quick))
    lines += ["", f"Ran in {o.wall_time_s:.1f} s. Everything is in `{o.folder}/` (`config.json`, `metrics.json`, "
              f"`log.txt`); reproduce with `{cmd}`.", ""]
    return "\n".join(lines)


def write_report(out: Path, outcomes: Sequence[_Outcome], *, quick: bool, total_s: float, pending: Sequence[Section] = ()) -> Path:
    """Write ``out/report.md`` for the sections run so far (called after each section)."""
    ok = sum(o.error is None for o in outcomes)
    head = [
        "# The jaxgen tour",
        "",
        "jaxgen builds generative models from first principles in JAX: each model is a set of pure functions "
        "(fit, log-density, sampling, encoding) over an explicit parameter pytree. This report was written by "
        "`jaxgen tour`; each section below ran one experiment file from `experiments/`, whose run folder sits "
        "next to this report. Read it top to bottom: each section says what the model is, what its figure "
        "shows and the numbers that matter.",
        "",
        f"*Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
        f"{'quick settings (smoke test)' if quick else 'tour settings'}; "
        f"{ok}/{len(outcomes)} examples succeeded in {total_s:.0f} s"
        + (f"; {len(pending)} still to run" if pending else "") + ".*",
        "",
        "**Contents**",
        "",
    ]
    for i, o in enumerate(outcomes, 1):
        head.append(f"{i}. [{o.section.title}](#{i}-{_anchor(o.section.title)})" + (" — failed" if o.error else ""))
    for j, s in enumerate(pending, len(outcomes) + 1):
        head.append(f"{j}. {s.title} (not run yet)")
    body = [_section_md(i, o, quick) for i, o in enumerate(outcomes, 1)]
    path = out / "report.md"
    path.write_text("\n".join(head) + "\n\n" + "\n".join(body), encoding="utf-8")
    return path


def _anchor(title: str) -> str:
    """GitHub-style heading anchor (lowercase, spaces -> '-', punctuation dropped)."""
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


def run_tour(out: Path | str | None = None, *, quick: bool = False, only: Sequence[str] | None = None,
             sections: Sequence[Section] | None = None, echo: bool = True) -> tuple[Path, bool]:
    """Run the sections in order into ``out/<nn>_<experiment>/`` and write ``out/report.md``.

    Args:
      out: output folder (default ``runs/tour-<timestamp>``).
      quick: use each experiment's ``QUICK`` settings instead of the tour settings.
      only: experiment names to run (in tour order); unknown names raise ``ExperimentError``.
      sections: the sections to use (default :data:`SECTIONS`).

    Returns:
      ``(path of report.md, True if every section succeeded)``. A failing section is reported
      (with its traceback) in the report and the tour goes on.
    """
    sections = list(SECTIONS if sections is None else sections)
    if only:
        names = [s.experiment for s in sections]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise runner.ExperimentError(f"Unknown tour section(s) {unknown}. Sections: {', '.join(names)}.")
        sections = [s for s in sections if s.experiment in only]
    out = Path(out) if out is not None else runner.default_out("tour")
    out.mkdir(parents=True, exist_ok=True)
    directory = runner.experiments_dir()
    for s in sections:  # fail fast on a missing file or a bad tour override, before any long run
        runner.resolve_config(runner.load_experiment(s.experiment, directory), quick=quick,
                              overrides={} if quick else s.overrides)
    outcomes: list[_Outcome] = []
    start = time.perf_counter()
    for i, s in enumerate(sections, 1):
        folder = f"{i:02d}_{s.experiment}"
        t0 = time.perf_counter()
        try:
            result = runner.run_experiment(s.experiment, quick=quick, overrides={} if quick else s.overrides,
                                           out=out / folder, echo=echo, directory=directory)
            outcomes.append(_Outcome(s, folder, result, None, time.perf_counter() - t0))
        except Exception:  # report it and go on: one broken example must not hide the others
            err = traceback.format_exc()
            if echo:
                print(err)
            outcomes.append(_Outcome(s, folder, None, err, time.perf_counter() - t0))
        report = write_report(out, outcomes, quick=quick, total_s=time.perf_counter() - start, pending=sections[i:])
    if not sections:
        report = write_report(out, outcomes, quick=quick, total_s=0.0)
    if echo:
        print(f"tour: {sum(o.error is None for o in outcomes)}/{len(outcomes)} examples in "
              f"{time.perf_counter() - start:.1f} s")
    return report, all(o.error is None for o in outcomes)
