"""Benchmark: training throughput of the disentangling objectives (beta-TCVAE, FactorVAE) on the sprites,
jaxgen vs the same model and loss written in PyTorch (eager and torch.compile).

    python scripts/bench_disentangle.py                  # both objectives, MLP (the experiment's default) and conv
    python scripts/bench_disentangle.py --quick          # MLP only, few steps, 2 rounds, no torch.compile
    python scripts/bench_disentangle.py --archs conv --models factor_vae --threads 2 --json out.json

The models: ``experiments/disentangle_sprites.py``'s VAE on 64 x 64 x 1 binary sprites
(``jaxgen.data.make_sprites``, uint8 bytes, scaled by 1/255 inside each step), 10 latents, ReLU,
Bernoulli decoder, N(0, I) prior, batch 64, in one of two architectures:

  mlp:  the experiment's default (CPU) run: encoder 4096-512-256 -> (mean, log_var), decoder
        10-256-512-4096; Adam 1e-3 (0.9, 0.999); FactorVAE's discriminator 4 x 256 leaky ReLU (0.2),
        Adam 1e-3 (0.5, 0.9).
  conv: the experiment's ``ACCELERATOR`` protocol (Kim & Mnih 2018): ``jaxgen.nn.ConvEncoder`` with
        4x4 stride-2 convolutions of 32, 32, 64, 64 channels and a dense 256, the mirrored
        ``ConvDecoder`` (dense 256, dense to 4 x 4 x 64, 4x4 stride-2 transposed convolutions of 64,
        64, 32, 32 channels, a 3x3 output convolution); Adam 1e-4; the discriminator 6 x 1000, Adam
        1e-4 (0.5, 0.9).

Two objectives, each one training step per batch:

  beta_tcvae: ``vae.Objective("beta_tcvae", beta=6, dataset_size=50_000)`` (the experiment's beta and
              N) through ``jaxgen.train.LossTrainer``: encode, one reparameterised z, decode,
              ``-(E log p(x|z) - (mi + beta tc + dwkl))`` with Chen et al.'s minibatch-weighted
              estimator (the (64, 64, 10) table of log q(z_i | x_j) per dimension), backward, Adam.
  factor_vae: ``jaxgen.models.vae.FactorVAETrainer`` (gamma 35), each step 2 x 64 images: one VAE
              update on the even rows (``-ELBO + gamma mean D(z)``, gradients for the VAE only), the
              codes of the odd rows from the updated encoder, each latent permuted independently
              across the batch, one discriminator update (logistic loss, codes of the even rows vs
              permuted ones). images/s counts both halves (128 per step).

Three loops of the same step (as ``scripts/bench_gan.py``):

  (a) jaxgen scan:      what ``jaxgen.train.fit`` / ``fit_trainer`` run for one log period
                        (``scripts/_machine.core_rounds``: the trainer's update in ``make_loop_step``
                        inside the jitted, state-donating ``lax.scan`` of ``make_chunk_fn``, batches
                        gathered on the device from the uint8 data; the permutation and fetching the
                        per-step metrics are timed too).
  (b) PyTorch eager:    the usual loop (``randperm`` per round, ``loss.backward()`` or
                        ``torch.autograd.grad`` for the VAE only, ``Adam.step()``); per-column
                        permutations as ``argsort`` of uniform noise.
  (c) PyTorch compiled: the same step as one ``torch.compile``-d function (Inductor; compile time in
                        the untimed warm-up round, like JAX's).

Same function: the PyTorch networks are built layer by layer like the Flax ones and start from
jaxgen's initial weights (dense kernels transposed; conv kernels HWIO -> OIHW; transposed-conv
kernels flipped to (in, out, kh, kw); the dense rows after the encoder's flatten and the columns
before the decoder's reshape permuted NHWC -> NCHW). Before timing, the script evaluates both losses
on the same weights, the same batch and the same noise (jaxgen's reparameterisation eps, drawn from
the key as the loss draws it, fed to PyTorch; for the discriminator the same joint and permuted
codes) and asserts relative differences below 1e-4 for the loss values (and the
mi / tc / dwkl terms) and below 5e-3 for every parameter gradient (of the array's largest entry; float32
round-off of sums over up to 64 x 64 x 64 terms gives ~1e-4, a wrong layout or term gives order 1).

Threads: as ``scripts/bench_gan.py`` (``--threads 1`` default: one compute thread each, process
pinned to one core; ``--threads N``: PyTorch N threads, XLA its default pool; ``--threads 0``: the
libraries' defaults, PyTorch on CUDA when JAX runs on a GPU and PyTorch has CUDA). Rounds are
interleaved (a, b, c, then b, c, a, ...; 0.5 s pause before each) after one untimed warm-up round
per loop; we report medians over rounds and ratios of medians (images/s). No timing asserts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import core_rounds, print_machine  # noqa: E402
from bench_gan import setup_threads  # noqa: E402
from _torch import REPORTS, compile_lines, compiled_step  # noqa: E402

LOG_2PI = math.log(2.0 * math.pi)
BATCH = 64
LATENT = 10
BETA = 6.0  # beta-TCVAE's weight of the total correlation (experiment default)
GAMMA = 35.0  # FactorVAE's gamma (experiment default)
DATASET_SIZE = 50_000  # the experiment's n_train: N of the minibatch-weighted estimator
ARCHS = {
    "mlp": dict(vae=dict(architecture="mlp", hidden=(512, 256)), lr=1e-3, d_hidden=(256,) * 4, d_lr=1e-3,
                steps=40, quick_steps=4),
    "conv": dict(vae=dict(architecture="conv", conv_features=(32, 32, 64, 64), conv_dense=256), lr=1e-4,
                 d_hidden=(1000,) * 6, d_lr=1e-4, steps=5, quick_steps=2),
}
MODELS = ("beta_tcvae", "factor_vae")
VAE_BETAS, D_BETAS = (0.9, 0.999), (0.5, 0.9)


def vae_config(arch: str):
    from jaxgen.models import vae

    return vae.VAEConfig(image_shape=(64, 64, 1), latent_dim=LATENT, activation="relu", likelihood="bernoulli",
                         **ARCHS[arch]["vae"])


def load_data(n: int) -> np.ndarray:
    """``(n, 64, 64, 1)`` uint8 sprites in {0, 255}, deterministic."""
    import jax

    from jaxgen.data import make_sprites

    return np.asarray(make_sprites(jax.random.key(0), n)[0])


# ------------------------------------------------------------------------------- PyTorch networks
def flatten_perm(h: int, w: int, c: int) -> np.ndarray:
    """Index map between the flat features of an NCHW map (PyTorch, position j) and of the same
    NHWC map (Flax): ``perm[c_ * h * w + h_ * w + w_] = (h_ * w + w_) * c + c_``."""
    f = np.arange(h * w * c)
    return (f % (h * w)) * c + f // (h * w)


def torch_vae_modules(cfg):
    """``(encoder, decoder, layout)``: PyTorch modules built like ``jaxgen.models.vae``'s Encoder /
    Decoder for ``cfg`` (a VAEConfig, ReLU): ``encoder(x (N, D)) -> (mean, log_var)``,
    ``decoder(z) -> (N, D)`` outputs in NHWC order; ``layout``: ``[(torch parameter, ("encoder" |
    "decoder", *Flax path), transform)]`` where ``transform(flax array) -> torch-layout array`` (also
    for gradients: each is a transpose / permutation)."""
    import torch
    from torch import nn

    H, W, C = cfg.image_shape
    D, q = cfg.data_dim, cfg.latent_dim
    dense = lambda k: k.T  # noqa: E731
    ident = lambda b: b  # noqa: E731
    conv = lambda k: k.transpose(3, 2, 0, 1)  # noqa: E731  (kh, kw, in, out) -> (out, in, kh, kw)
    deconv = lambda k: k[::-1, ::-1].transpose(2, 3, 0, 1)  # noqa: E731  unflipped -> PyTorch's (in, out, kh, kw)
    layout = []

    def add(module, path, w_tf=dense, b_tf=ident):
        layout.append((module.weight, (*path, "kernel"), w_tf))
        layout.append((module.bias, (*path, "bias"), b_tf))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            if cfg.architecture == "mlp":
                dims = (D, *cfg.hidden)
                self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
                for i, lin in enumerate(self.trunk):
                    add(lin, ("encoder", "trunk", f"dense_{i}"))
                width = dims[-1]
            else:
                chans = (C, *cfg.conv_features)
                self.trunk = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
                for i, c in enumerate(self.trunk):  # = Flax 4x4 stride 2 "SAME" on even sizes
                    add(c, ("encoder", "trunk", f"conv_{i}"), conv)
                L = len(cfg.conv_features)
                h, w, c = H // 2**L, W // 2**L, chans[-1]
                self.dense = nn.Linear(h * w * c, cfg.conv_dense)
                perm = flatten_perm(h, w, c)
                add(self.dense, ("encoder", "trunk", "dense"), lambda k: k[perm].T)
                width = cfg.conv_dense
            self.mean, self.log_var = nn.Linear(width, q), nn.Linear(width, q)
            add(self.mean, ("encoder", "mean"))
            add(self.log_var, ("encoder", "log_var"))

        def forward(self, x):
            if cfg.architecture == "mlp":
                h = x
                for lin in self.trunk:
                    h = torch.relu(lin(h))
            else:
                h = x.view(x.shape[0], H, W, C).permute(0, 3, 1, 2)
                for c in self.trunk:
                    h = torch.relu(c(h))
                h = torch.relu(self.dense(h.flatten(1)))
            return self.mean(h), self.log_var(h)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            if cfg.architecture == "mlp":
                dims = (q, *reversed(cfg.hidden), D)
                self.net = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
                for i, lin in enumerate(self.net):
                    add(lin, ("decoder", "net", f"dense_{i}"))
                return
            feats = tuple(reversed(cfg.conv_features))
            L = len(feats)
            self.h0, self.w0, self.c0 = math.ceil(H / 2**L), math.ceil(W / 2**L), feats[0]
            assert (self.h0 * 2**L, self.w0 * 2**L) == (H, W), "image sizes divisible by 2^layers only"
            self.dense = nn.Linear(q, cfg.conv_dense)
            self.project = nn.Linear(cfg.conv_dense, self.h0 * self.w0 * self.c0)
            add(self.dense, ("decoder", "net", "dense"))
            perm = flatten_perm(self.h0, self.w0, self.c0)
            add(self.project, ("decoder", "net", "project"), lambda k: k[:, perm].T, lambda b: b[perm])
            chans = (feats[0], *feats)
            # = jaxgen.nn.ConvTranspose 4x4 stride 2 "SAME" (a conv over the 2-dilated input padded 2 | 2)
            self.deconvs = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
            for i, d in enumerate(self.deconvs):
                add(d, ("decoder", "net", f"deconv_{i}"), deconv)
            self.out = nn.Conv2d(feats[-1], C, 3, 1, 1)
            add(self.out, ("decoder", "net", "out"), conv)

        def forward(self, z):
            if cfg.architecture == "mlp":
                h = z
                for i, lin in enumerate(self.net):
                    h = lin(h)
                    if i < len(self.net) - 1:
                        h = torch.relu(h)
                return h
            h = torch.relu(self.dense(z))
            h = torch.relu(self.project(h)).view(z.shape[0], self.c0, self.h0, self.w0)
            for d in self.deconvs:
                h = torch.relu(d(h))
            return self.out(h).permute(0, 2, 3, 1).reshape(z.shape[0], -1)  # NHWC order, as the Flax decoder

    return Encoder(), Decoder(), layout


def torch_mlp_discriminator(hidden, q: int, prefix: str = "dis"):
    """Kim & Mnih's latent discriminator (``LatentDiscriminator``): ``(M, q) -> (M,)`` logits, and its layout."""
    import torch
    from torch import nn

    layout = []

    class Dis(nn.Module):
        def __init__(self):
            super().__init__()
            dims = (q, *hidden)
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
            self.logit = nn.Linear(dims[-1], 1)
            for i, lin in enumerate(self.hidden):
                layout.extend([(lin.weight, (prefix, f"dense_{i}", "kernel"), lambda k: k.T),
                               (lin.bias, (prefix, f"dense_{i}", "bias"), lambda b: b)])
            layout.extend([(self.logit.weight, (prefix, "logit", "kernel"), lambda k: k.T),
                           (self.logit.bias, (prefix, "logit", "bias"), lambda b: b)])

        def forward(self, z):
            h = z
            for lin in self.hidden:
                h = torch.nn.functional.leaky_relu(lin(h), 0.2)
            return self.logit(h)[:, 0]

    return Dis(), layout


def _at(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def copy_weights(layout, flax_tree) -> None:
    """Load Flax arrays (``flax_tree[path]``, transformed) into the PyTorch parameters of ``layout``."""
    import torch

    with torch.no_grad():
        for p, path, tf in layout:
            a = np.array(tf(np.asarray(_at(flax_tree, path), dtype=np.float32)), dtype=np.float32)  # a writable copy
            assert a.shape == tuple(p.shape), f"{path}: Flax {a.shape} vs PyTorch {tuple(p.shape)}"
            p.copy_(torch.from_numpy(a))


def grad_difference(layout, flax_grads, grads=None) -> float:
    """Largest ``max |g_jax - g_torch| / max |g_jax|`` over the parameters of ``layout`` (PyTorch
    gradients from ``.grad``, or ``grads``: {id(param): tensor})."""
    worst = 0.0
    for p, path, tf in layout:
        if not isinstance(path, tuple) or _maybe(flax_grads, path) is None:
            continue
        a = np.asarray(tf(np.asarray(_at(flax_grads, path), dtype=np.float32)))
        g = (grads[id(p)] if grads is not None else p.grad).detach().cpu().numpy()
        worst = max(worst, float(np.max(np.abs(a - g)) / (np.max(np.abs(a)) + 1e-30)))
    return worst


def _maybe(tree, path):
    try:
        return _at(tree, path)
    except (KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------- PyTorch losses
def torch_bernoulli_ll(x, logits):
    import torch.nn.functional as F

    return (x * logits - F.softplus(logits)).sum(-1)


def torch_tc_terms(z, mean, log_var, dataset_size: int):
    """Chen et al.'s minibatch-weighted sampling: ``(mi, tc, dwkl)``, each ``(M,)`` (as jaxgen's ``_tc_terms``)."""
    import torch

    M = z.shape[0]
    per_dim = -0.5 * (LOG_2PI + log_var[None] + (z[:, None] - mean[None]) ** 2 * torch.exp(-log_var[None]))  # (M, M, q)
    log_nm = math.log(dataset_size * M)
    log_q_zx = per_dim.diagonal(dim1=0, dim2=1).sum(0)
    log_q_z = torch.logsumexp(per_dim.sum(-1), dim=1) - log_nm
    log_prod = (torch.logsumexp(per_dim, dim=1) - log_nm).sum(-1)
    log_p = -0.5 * (LOG_2PI + z**2).sum(-1)
    return log_q_zx - log_q_z, log_q_z - log_prod, log_prod - log_p


def torch_tcvae_loss(enc, dec, x, eps):
    """``(loss, (rec, mi, tc, dwkl))`` of the beta-TCVAE on flat ``x (B, D)`` in [0, 1], noise ``eps (B, q)``."""
    import torch

    mean, log_var = enc(x)
    z = mean + torch.exp(0.5 * log_var) * eps
    rec = torch_bernoulli_ll(x, dec(z)).mean()
    mi, tc, dwkl = (t.mean() for t in torch_tc_terms(z, mean, log_var, DATASET_SIZE))
    return -(rec - (mi + BETA * tc + dwkl)), (rec, mi, tc, dwkl)


def torch_fvae_vae_loss(enc, dec, dis, x, eps):
    """``(-ELBO + gamma mean D(z), z)`` (FactorVAE's VAE loss)."""
    import torch

    mean, log_var = enc(x)
    z = mean + torch.exp(0.5 * log_var) * eps
    rec = torch_bernoulli_ll(x, dec(z)).mean()
    kl = (0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)).mean()
    return -(rec - kl) + GAMMA * dis(z).mean(), z


def torch_d_loss(dis, z_joint, z_perm):
    import torch.nn.functional as F

    return 0.5 * (F.softplus(-dis(z_joint)).mean() + F.softplus(dis(z_perm)).mean())


def torch_permute_dims(z):
    """Each column of ``z (M, q)`` permuted independently (argsort of uniform noise per column)."""
    import torch

    idx = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


# ------------------------------------------------------------------------------- jaxgen trainers
def make_trainer(model: str, arch: str):
    """``(jaxgen trainer, batch rows per step)``."""
    import jax
    import optax

    from jaxgen import keys
    from jaxgen.models import vae
    from jaxgen.train import LossTrainer

    cfg, a = vae_config(arch), ARCHS[arch]
    if model == "beta_tcvae":
        params0 = vae.init(keys.stream(jax.random.key(0), "params"), cfg)
        objective = vae.Objective("beta_tcvae", beta=BETA, dataset_size=DATASET_SIZE)
        return LossTrainer(vae.loss_fn(objective), params0, optax.adam(a["lr"], *VAE_BETAS)), BATCH
    from jaxgen.models.vae.factorvae import FactorVAETrainer

    return FactorVAETrainer(vae=cfg, gamma=GAMMA, d_hidden=a["d_hidden"], vae_lr=a["lr"], vae_betas=VAE_BETAS,
                            d_lr=a["d_lr"], d_betas=D_BETAS), 2 * BATCH


def flax_tree(model: str, state0) -> dict:
    """{"encoder", "decoder"[, "dis"]} of a trainer's initial state."""
    if model == "beta_tcvae":
        return {"encoder": state0.params.encoder, "decoder": state0.params.decoder}
    return {"encoder": state0.vae.encoder, "decoder": state0.vae.decoder, "dis": state0.d_params}


def check_same_function(model: str, trainer, state0, x: np.ndarray) -> dict:
    """jaxgen's and PyTorch's loss values and gradients on the same weights, batch and noise."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxgen import keys
    from jaxgen.models.vae.factorvae import permute_dims

    cfg = trainer.vae if model == "factor_vae" else trainer.params.config
    enc, dec, layout = torch_vae_modules(cfg)
    tree = flax_tree(model, state0)
    out = {}
    key = jax.random.key(42)
    xb = x[:BATCH]
    xf = (xb.reshape(BATCH, -1).astype(np.float32) / 255.0)
    with jax.default_matmul_precision("highest"):
        if model == "beta_tcvae":
            copy_weights(layout, tree)
            (lj, mj), gj = jax.value_and_grad(trainer.loss_fn, has_aux=True)(state0.params, jnp.asarray(xb), key)
            eps = np.array(jax.random.normal(jax.random.split(key)[1], (BATCH, cfg.latent_dim)))  # as loss_fn draws it
            lt, (rec, mi, tc, dwkl) = torch_tcvae_loss(enc, dec, torch.from_numpy(xf), torch.from_numpy(eps))
            lt.backward()
            terms_j = {"loss": float(lj), "recon": float(mj["recon"]), "mi": float(mj["mi"]), "tc": float(mj["tc"]),
                       "dwkl": float(mj["dwkl"])}
            terms_t = {k: float(v.detach()) for k, v in zip(("loss", "recon", "mi", "tc", "dwkl"), (lt, rec, mi, tc, dwkl))}
            grads = {"encoder": gj.encoder, "decoder": gj.decoder}
        else:
            dis, d_layout = torch_mlp_discriminator(trainer.d_hidden, cfg.latent_dim)
            copy_weights(layout + d_layout, tree)
            k_z = keys.stream(key, "vae")
            (lj, (mj, zj)), gj = jax.value_and_grad(trainer.vae_loss, has_aux=True)(
                state0.vae, state0.d_params, jnp.asarray(xf), k_z)
            eps = np.array(jax.random.normal(k_z, (BATCH, cfg.latent_dim)))
            lt, zt = torch_fvae_vae_loss(enc, dec, dis, torch.from_numpy(xf), torch.from_numpy(eps))
            vae_params = [p for p, path, _ in layout]
            g_vae = dict(zip(map(id, vae_params), torch.autograd.grad(lt, vae_params)))
            # the discriminator's loss on the same joint and permuted codes
            z_perm = permute_dims(keys.stream(key, "permute"), zj)
            (dj, _), gdj = jax.value_and_grad(trainer.d_loss, has_aux=True)(state0.d_params, zj, z_perm)
            dt = torch_d_loss(dis, torch.from_numpy(np.array(zj)), torch.from_numpy(np.array(z_perm)))
            dt.backward()
            terms_j = {"loss": float(lj), "tc": float(mj["tc"]), "d_loss": float(dj)}
            terms_t = {"loss": float(lt.detach()), "tc": float(dis(zt).mean().detach()), "d_loss": float(dt.detach())}
            grads = {"encoder": gj.encoder, "decoder": gj.decoder}
            out["grad_rel_dis"] = grad_difference(d_layout, {"dis": gdj})
            out["grad_rel_vae"] = grad_difference(layout, grads, g_vae)
    if model == "beta_tcvae":
        out["grad_rel_vae"] = grad_difference(layout, grads)
    out["jaxgen"], out["PyTorch"] = terms_j, terms_t
    out["value_rel"] = max(abs(terms_j[k] - terms_t[k]) / max(abs(terms_j[k]), 1e-6) for k in terms_j)
    return out


# ---------------------------------------------------------------------------------- PyTorch loops
def torch_loops(model: str, trainer, state0, x: np.ndarray, steps: int, device: str, seed: int = 0) -> dict:
    """{name: (fresh, run_round)} for PyTorch eager and compiled."""
    import torch

    torch.manual_seed(seed)
    cfg = trainer.vae if model == "factor_vae" else trainer.params.config
    a = ARCHS["mlp" if cfg.architecture == "mlp" else "conv"]
    tree = flax_tree(model, state0)
    data = torch.from_numpy(np.array(x.reshape(len(x), -1))).to(device)  # uint8, scaled per batch like jaxgen's
    rows = 2 * BATCH if model == "factor_vae" else BATCH
    q = cfg.latent_dim

    def fresh():
        enc, dec, layout = torch_vae_modules(cfg)
        mods = [enc, dec]
        if model == "factor_vae":
            dis, d_layout = torch_mlp_discriminator(trainer.d_hidden, q)
            layout = layout + d_layout
            mods.append(dis)
        copy_weights(layout, tree)
        mods = [m.to(device).train() for m in mods]
        vae_params = [p for m in mods[:2] for p in m.parameters()]
        vae_opt = torch.optim.Adam(vae_params, lr=a["lr"], betas=VAE_BETAS, eps=1e-8)
        if model == "beta_tcvae":
            return (*mods, vae_opt)
        return (*mods, vae_opt, torch.optim.Adam(mods[2].parameters(), lr=a["d_lr"], betas=D_BETAS, eps=1e-8))

    def tcvae_step(enc, dec, opt, xb):
        x = xb.float() / 255.0
        loss, _ = torch_tcvae_loss(enc, dec, x, torch.randn(x.shape[0], q, device=x.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def fvae_step(enc, dec, dis, vae_opt, d_opt, xb):
        x = xb.float() / 255.0
        x1, x2 = x[0::2], x[1::2]  # jaxgen's split_batch: rows 0, 2, ... and 1, 3, ...
        loss, z1 = torch_fvae_vae_loss(enc, dec, dis, x1, torch.randn(x1.shape[0], q, device=x.device))
        vae_params = list(enc.parameters()) + list(dec.parameters())
        for p, g in zip(vae_params, torch.autograd.grad(loss, vae_params)):  # D's weight gradients not formed
            p.grad = g
        vae_opt.step()
        with torch.no_grad():  # codes of the second half from the updated encoder
            mean, log_var = enc(x2)
            z2 = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        d_loss = torch_d_loss(dis, z1.detach(), torch_permute_dims(z2))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        return loss.detach()

    step = tcvae_step if model == "beta_tcvae" else fvae_step

    def make_round(step_fn):
        def run_round(state, r):
            perm = torch.randperm(len(data), device=device)[: steps * rows]
            total = 0.0
            for i in range(steps):
                total = total + step_fn(*state, data[perm[i * rows:(i + 1) * rows]])  # no sync inside the round
            return state, (float(total) / steps,)

        return run_round

    return {"PyTorch eager": (fresh, make_round(step)), "PyTorch compiled": (fresh, make_round(compiled_step(step, fresh, f"{model}/{cfg.architecture} step")))}


# ---------------------------------------------------------------------------------------- timing
def interleave(loops: dict, rounds: int, main: str = "jaxgen scan") -> tuple[dict, dict, dict]:
    """Run ``loops`` ({name: [run_round, state]}) for 1 untimed + ``rounds`` timed rounds each, the order
    rotating every round (0.5 s pause before each call). A loop other than ``main`` that raises (e.g.
    no compiler for torch.compile) is reported and dropped. Returns ``(times, first, last metrics)``."""
    times = {k: [] for k in loops}
    first, last = {}, {}
    names = list(loops)
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            entry = loops[name]
            time.sleep(0.5)
            t0 = time.perf_counter()
            try:
                entry[1], last[name] = entry[0](entry[1], r)
            except Exception as e:
                if name == main:
                    raise
                print(f"  !! {name} failed, dropped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                names.remove(name)
                loops.pop(name)
                times.pop(name)
                continue
            dt = time.perf_counter() - t0
            (times[name].append(dt) if r else first.__setitem__(name, dt))
    return times, first, last


def report(times: dict, first: dict, last: dict, steps: int, rows: int, metric: str = "loss") -> dict:
    """Per-loop medians and the ratios of jaxgen's images/s to each PyTorch loop's; printed."""
    res = {"loops": {}, "ratios": {}}
    for name in times:
        med = statistics.median(times[name])
        rec = {"images_per_s_median": steps * rows / med, "steps_per_s_median": steps / med, "round_s_median": med,
               "round_s_all": times[name], "first_round_s": first[name], f"{metric}_last_round": last[name][0]}
        res["loops"][name] = rec
        print(f"  {name:18s} {rec['images_per_s_median']:8.0f} images/s {rec['steps_per_s_median']:7.2f} steps/s "
              f"(median round {med:.3f} s, warm-up round {first[name]:.1f} s; last round {metric} {last[name][0]:.2f})")
    base = res["loops"]
    for ref in ("PyTorch eager", "PyTorch compiled"):
        if ref in base and "jaxgen scan" in base:
            ratio = base["jaxgen scan"]["images_per_s_median"] / base[ref]["images_per_s_median"]
            res["ratios"][f"jaxgen / {ref}"] = ratio
            print(f"  ratio jaxgen / {ref}: {ratio:.2f}x (images/s, ratio of medians)")
    return res


def bench(model: str, arch: str, args, torch_ok: bool, device: str) -> dict:
    import jax

    a = ARCHS[arch]
    steps = args.steps or (a["quick_steps"] if args.quick else a["steps"])
    trainer, rows = make_trainer(model, arch)
    x = load_data(steps * rows)
    fresh, run_round, state0 = core_rounds(trainer, x, rows, steps)
    tree = flax_tree(model, state0)
    n_params = {k: sum(int(np.size(v)) for v in jax.tree.leaves(t)) for k, t in tree.items()}
    what = (f"beta-TCVAE (beta {BETA:g}, N {DATASET_SIZE})" if model == "beta_tcvae"
            else f"FactorVAE (gamma {GAMMA:g}, D {'-'.join(map(str, a['d_hidden']))}, 2 x {BATCH} images per step)")
    print(f"\n[{model}, {arch}] {what}; {arch} VAE {ARCHS[arch]['vae']}, 64 x 64 sprites, batch {BATCH}, Adam "
          f"{a['lr']:g}; {steps} steps per round, {args.rounds} timed rounds per loop (interleaved)")
    result = {"model": model, "arch": arch, "steps_per_round": steps, "rounds": args.rounds, "rows_per_step": rows,
              "params": {"jaxgen": n_params}}
    loops = {"jaxgen scan": [lambda s, r: run_round(s, r), fresh()]}
    print("  parameters: jaxgen " + ", ".join(f"{k} {v:,}" for k, v in n_params.items()), end="")
    if torch_ok:
        cfg = trainer.vae if model == "factor_vae" else trainer.params.config
        enc, dec, _ = torch_vae_modules(cfg)
        t_params = {"encoder": sum(p.numel() for p in enc.parameters()),
                    "decoder": sum(p.numel() for p in dec.parameters())}
        if model == "factor_vae":
            t_params["dis"] = sum(p.numel() for p in torch_mlp_discriminator(trainer.d_hidden, LATENT)[0].parameters())
        print("; PyTorch " + ", ".join(f"{k} {v:,}" for k, v in t_params.items()))
        assert t_params == n_params, f"parameter counts differ: jaxgen {n_params}, PyTorch {t_params}"
        same = check_same_function(model, trainer, state0, x)
        print("  same function from the same weights, batch and noise: "
              + ", ".join(f"{k} jaxgen {same['jaxgen'][k]:.4f} / PyTorch {same['PyTorch'][k]:.4f}" for k in same["jaxgen"])
              + f"; largest relative difference {same['value_rel']:.1e}; gradients differ by at most "
              + ", ".join(f"{k[9:]} {v:.1e}" for k, v in same.items() if k.startswith("grad_rel"))
              + " of each array's largest entry")
        assert same["value_rel"] < 1e-4, "the PyTorch loss differs from jaxgen's"
        # float32 sums over up to 64 x 64 x 64 terms (the output bias) and ReLU kinks give ~1e-4 here; a wrong
        # layout or loss term gives differences of order 1
        assert all(v < 5e-3 for k, v in same.items() if k.startswith("grad_rel")), "the gradients differ"
        result["same_function"] = same
        for name, (t_fresh, t_round) in torch_loops(model, trainer, state0, x, steps, device).items():
            if name == "PyTorch compiled" and args.no_compile:
                continue
            loops[name] = [t_round, t_fresh()]
    else:
        print()
    times, first, last = interleave(loops, args.rounds)
    jax.block_until_ready(loops["jaxgen scan"][1])
    result.update(report(times, first, last, steps, rows))
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="MLP only, few steps, 2 rounds, no torch.compile")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--archs", default=None, help="comma-separated subset of: mlp, conv (default both; quick: mlp)")
    ap.add_argument("--steps", type=int, default=None, help="steps per round (default mlp 40 / conv 5; quick 4 / 2)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per loop (default 5, quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per library (0: library defaults)")
    ap.add_argument("--no-torch", action="store_true", help="jaxgen only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.archs = args.archs or ("mlp" if args.quick else "mlp,conv")
    if args.quick:
        args.no_compile = True
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    archs = [m.strip() for m in args.archs.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        ap.error(f"--models must name some of {MODELS}, got {args.models!r}")
    if not archs or any(m not in ARCHS for m in archs):
        ap.error(f"--archs must name some of {tuple(ARCHS)}, got {args.archs!r}")
    if args.threads < 0 or args.rounds < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--threads must be >= 0, --rounds and --steps >= 1")
    torch, device = setup_threads(args.threads, args.no_torch)
    torch_ok = torch is not None

    import jax
    print_machine(["torch"])
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}"
          + (f"; PyTorch {torch.__version__} on {device} with {torch.get_num_threads()} threads" if torch_ok else "")
          + "; " + (f"threads={args.threads}" if args.threads else "default threads"))
    out = {"threads": args.threads, "quick": args.quick, "torch_device": device, "runs": {}}
    for arch in archs:
        for model in models:
            out["runs"][f"{model}/{arch}"] = bench(model, arch, args, torch_ok, device)
    print("\n== ratios (jaxgen images/s over PyTorch's, medians) ==")
    for name, res in out["runs"].items():
        print(f"  {name:18s} " + ", ".join(f"{k}: {v:.2f}x" for k, v in res["ratios"].items()))
    for line in compile_lines():
        print(line)
    out["torch_compile"] = REPORTS
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
