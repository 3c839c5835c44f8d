"""Benchmark: training throughput of the VAE-GAN (``jaxgen.models.vaegan.VAEGANTrainer``) vs the same step in
PyTorch (eager and torch.compile).

    python scripts/bench_vaegan.py                 # 20 steps per round, 5 rounds
    python scripts/bench_vaegan.py --quick         # 3 steps, 2 rounds, no torch.compile
    python scripts/bench_vaegan.py --threads 2 --no-compile --json out.json
    python scripts/bench_vaegan.py --optimizer adam

The model: ``experiments/vaegan_mnist.py``'s default VAE-GAN on MNIST 28 x 28 x 1 grey images in
[0, 1] (float32, as the experiment passes them), batch 64: the conv VAE's encoder (4x4 stride-2
convolutions of 32, 64 channels, dense 256 ReLU, 16 latents) and decoder (dense 256, dense to 7 x 7 x
64, 4x4 stride-2 transposed convolutions of 64, 32 channels, a 3x3 output convolution, sigmoid), the
discriminator (4x4 stride-2 convolutions of 32, 64 channels with leaky ReLU 0.2, dense 256, logit;
Dis_l = the last convolution's output before its activation, 3136 features); gamma 0.1, the
non-saturating decoder GAN term, real weight 0.5, the equilibrium rule (0.68 +- 0.35), RMSProp lr 3e-4
(decay 0.9) for all three networks (``--optimizer adam``: Adam (0.5, 0.999)).

One training step (Larsen et al.'s Algorithm 1 as ``VAEGANTrainer.update``): encode, one
reparameterised z, decode z and 64 prior draws z_p, the discriminator on real, reconstructed and
prior images; the encoder's gradient of KL + the feature NLL, the decoder's of gamma * feature NLL +
its GAN loss, the discriminator's of its loss, all at the parameters before the step; the three
optimizer updates, the decoder's and the discriminator's skipped by the equilibrium rule.

  (a) jaxgen scan:      what ``jaxgen.train.fit_trainer`` runs for one log period
                        (``scripts/_machine.core_rounds``: ``make_loop_step(trainer.update)`` inside the
                        jitted, state-donating ``lax.scan`` of ``make_chunk_fn``, batches gathered on the
                        device; the skipped updates are ``where`` selections).
  (b) PyTorch eager:    the usual loop: one forward pass, three ``torch.autograd.grad`` calls (each
                        network's gradient of its own loss only, the graph retained between them), the
                        encoder's ``RMSprop.step()``, then the rule decided on the host from the two
                        costs (``if``: one device sync per step) and the decoder's / discriminator's
                        ``step()`` when on.
  (c) PyTorch compiled: the same step function under ``torch.compile`` (Inductor; the host-side ``if``
                        splits it into compiled graphs; compile time in the untimed warm-up round).

Same function: the PyTorch networks are built layer by layer like the Flax ones (see
``scripts/bench_disentangle.py``: kernels transposed / flipped, the dense rows after a flatten and the
columns before the decoder's reshape permuted NHWC -> NCHW; the feature NLL is a sum over features, so
their order does not matter) and start from jaxgen's initial weights. Before timing, the script
evaluates every loss term of ``VAEGANTrainer.loss_terms`` and the three gradients
(``VAEGANTrainer.gradients``) on the same weights, batch and noise (eps and z_p drawn from the key as
the trainer draws them, fed to PyTorch) and asserts relative differences below 1e-4 (terms) and 5e-3
(each gradient array, of its largest entry). Then it runs 5 whole steps of both from the same start
on the same batches and noise (optax's RMSProp formula written in PyTorch for this check) and asserts
the same equilibrium decisions and that the first step changed the parameters alike (largest
difference of the changes below 5% of each array's largest change; measured ~1e-3, as an optimizer
that divides each entry by its gradient's scale magnifies the round-off of near-zero gradients; the
difference after the 5th step is printed, not asserted: from other bias draws we measured 0.1-0.4
there, when a ReLU unit near zero switches on one side only and the runs drift apart).

The checks start from jaxgen's initial weights with every bias moved by N(0, 0.01^2): with the
initial zero biases, MNIST's blank pixels put the discriminator's first pre-activations exactly on
leaky ReLU's kink, where JAX (slope 1) and PyTorch (slope 0.2) take different valid subgradients.
A difference that does not change the work: optax's RMSProp divides by ``sqrt(nu + eps)``, the timed
PyTorch loop's ``torch.optim.RMSprop`` by ``sqrt(nu) + eps`` (eps 1e-8).

Threads, interleaving and ratios: as ``scripts/bench_gan.py`` (``--threads 1`` default: one compute
thread each, process pinned to one core; ``--threads 0``: library defaults, PyTorch on CUDA when JAX
runs on a GPU and PyTorch has CUDA). No timing asserts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import core_rounds, print_machine  # noqa: E402
from bench_disentangle import (copy_weights, flatten_perm, grad_difference, interleave, report,  # noqa: E402
                               torch_vae_modules)
from bench_gan import setup_threads  # noqa: E402
from _torch import REPORTS, compile_lines, compiled_step  # noqa: E402

BATCH = 64
LOG_2PI = math.log(2.0 * math.pi)
# experiments/vaegan_mnist.py's get_config(): the VAE's sizes (vae.*) and the vaegan group
SETTINGS = dict(image_shape=(28, 28, 1), latent_dim=16, conv_features=(32, 64), conv_dense=256, d_features=(32, 64),
                d_dense=256, feature_layer=-1, gamma=0.1, decoder_gan="non_saturating", real_weight=0.5,
                balance=True, equilibrium=0.68, margin=0.35, optimizer="rmsprop", lr=3e-4)


def make_trainer(optimizer: str):
    from jaxgen.models import vaegan

    return vaegan.VAEGANTrainer(**{**SETTINGS, "optimizer": optimizer})


def load_data(n: int) -> np.ndarray:
    """MNIST's first ``n`` training images, float32 ``(n, 28, 28, 1)`` in [0, 1] (as the experiment)."""
    from jaxgen.data import load_mnist
    from jaxgen.metrics.classifier import prepare_images

    return np.array(prepare_images(load_mnist("train")[0][:n]), dtype=np.float32)


# ---------------------------------------------------------------------------------------- PyTorch
def torch_networks(trainer):
    """``(encoder, decoder, discriminator, layout)``: PyTorch modules like the trainer's Flax networks;
    ``discriminator(x NCHW) -> (logit (N,), features (N, k))``; layout as ``bench_disentangle``'s with
    the Flax tree ``{"encoder", "decoder", "dis"}``."""
    from torch import nn
    from torch.nn import functional as F

    enc, dec, layout = torch_vae_modules(trainer.vae_config)
    H, W, C = trainer.image_shape
    feats = trainer.d_features
    layer = trainer.feature_layer % len(feats)

    class Dis(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (C, *feats)
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(chans[:-1], chans[1:]))
            h, w = H // 2 ** len(feats), W // 2 ** len(feats)
            assert (h * 2 ** len(feats), w * 2 ** len(feats)) == (H, W), "sizes divisible by 2^layers only"
            self.dense = nn.Linear(h * w * feats[-1], trainer.d_dense)
            self.logit = nn.Linear(trainer.d_dense, 1)
            for i, c in enumerate(self.convs):
                layout.extend([(c.weight, ("dis", f"conv_{i}", "kernel"), lambda k: k.transpose(3, 2, 0, 1)),
                               (c.bias, ("dis", f"conv_{i}", "bias"), lambda b: b)])
            perm = flatten_perm(h, w, feats[-1])
            layout.extend([(self.dense.weight, ("dis", "dense", "kernel"), lambda k: k[perm].T),
                           (self.dense.bias, ("dis", "dense", "bias"), lambda b: b),
                           (self.logit.weight, ("dis", "logit", "kernel"), lambda k: k.T),
                           (self.logit.bias, ("dis", "logit", "bias"), lambda b: b)])

        def forward(self, x):
            f = None
            for i, c in enumerate(self.convs):
                x = c(x)
                if i == layer:
                    f = x.flatten(1)
                x = F.leaky_relu(x, 0.2)
            return self.logit(F.leaky_relu(self.dense(x.flatten(1)), 0.2))[:, 0], f

    return enc, dec, Dis(), layout


def torch_loss_terms(trainer, enc, dec, dis, x, eps, z_p) -> dict:
    """Every term of ``VAEGANTrainer.loss_terms`` for NHWC images ``x (B, H, W, C)`` in [0, 1]."""
    import torch
    from torch.nn import functional as F

    B = x.shape[0]
    H, W, C = trainer.image_shape
    mean, log_var = enc(x.reshape(B, -1))
    z = mean + torch.exp(0.5 * log_var) * eps
    fakes = torch.sigmoid(dec(torch.cat([z, z_p]))).view(-1, H, W, C)
    logits, feats = dis(torch.cat([x, fakes]).permute(0, 3, 1, 2))
    l_x, l_rec, l_p = logits[:B], logits[B:2 * B], logits[2 * B:]
    prior = (0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)).mean()
    f_x, f_rec = feats[:B], feats[B:2 * B]
    llike = (0.5 * ((f_x - f_rec) ** 2).sum(-1) + 0.5 * f_x.shape[-1] * LOG_2PI).mean()
    real_cost = F.softplus(-l_x).mean()
    fake_rec, fake_p = F.softplus(l_rec).mean(), F.softplus(l_p).mean()
    fake_cost = 0.5 * (fake_rec + fake_p)
    if trainer.decoder_gan == "non_saturating":
        dec_gan = F.softplus(-l_rec).mean() + F.softplus(-l_p).mean()
    else:
        dec_gan = -(fake_rec + fake_p)
    w = trainer.real_weight
    return {"prior": prior, "llike": llike, "gan": -(real_cost + fake_rec + fake_p),
            "dis": w * real_cost + (1.0 - w) * fake_cost, "dec_gan": dec_gan, "enc": prior + llike,
            "dec": trainer.gamma * llike + dec_gan, "real_cost": real_cost, "fake_cost": fake_cost,
            "recon_mse": ((fakes[:B] - x) ** 2).mean()}


def torch_optimizers(trainer, nets):
    import torch

    if trainer.optimizer == "rmsprop":
        return [torch.optim.RMSprop(n.parameters(), lr=trainer.lr, alpha=0.9, eps=1e-8) for n in nets]
    return [torch.optim.Adam(n.parameters(), lr=trainer.lr, betas=(0.5, 0.999), eps=1e-8) for n in nets]


def torch_step(trainer, enc, dec, dis, opts, x, eps, z_p):
    """One VAE-GAN step; returns ``(terms (detached), dec_on, dis_on)``."""
    import torch

    t = torch_loss_terms(trainer, enc, dec, dis, x, eps, z_p)
    nets = (enc, dec, dis)
    for i, (net, name) in enumerate(zip(nets, ("enc", "dec", "dis"))):
        params = list(net.parameters())
        for p, g in zip(params, torch.autograd.grad(t[name], params, retain_graph=i < 2)):
            p.grad = g
    opts[0].step()
    dec_on = dis_on = True
    if trainer.balance:  # the released code's equilibrium rule, decided on the host
        real, fake = float(t["real_cost"].detach()), float(t["fake_cost"].detach())
        lo, hi = trainer.equilibrium - trainer.margin, trainer.equilibrium + trainer.margin
        dis_on = not (real < lo or fake < lo)
        dec_on = not (real > hi or fake > hi)
        if not (dis_on or dec_on):
            dis_on = dec_on = True
    if dec_on:
        opts[1].step()
    if dis_on:
        opts[2].step()
    return {k: v.detach() for k, v in t.items()}, dec_on, dis_on


# ------------------------------------------------------------------------------------------ checks
def check_same_function(trainer, state0, x: np.ndarray, n_steps: int = 5) -> dict:
    """Loss terms and gradients of jaxgen and PyTorch on the same weights, batch and noise; then 5
    whole steps of both from the same start with the same batches and noise."""
    import jax
    import jax.numpy as jnp
    import torch

    # jaxgen's initial biases are zero, so on MNIST's blank pixels the discriminator's first pre-activations are
    # exactly 0, the kink of leaky ReLU, where JAX's gradient takes slope 1 and PyTorch's slope 0.2 (both valid
    # subgradients; central differences give their mean). The check therefore runs from the initial weights
    # with every bias moved by N(0, 0.01^2): the same weights on both sides, and no input on a kink.
    def jitter(path, a):
        if getattr(path[-1], "key", None) != "bias":
            return a
        k = jax.random.fold_in(jax.random.key(7), zlib.crc32(jax.tree_util.keystr(path).encode()) % (2**31))
        return a + 0.01 * jax.random.normal(k, a.shape, a.dtype)

    state0 = state0.replace(**{n: jax.tree_util.tree_map_with_path(jitter, getattr(state0, n))
                               for n in ("enc", "dec", "dis")})
    enc, dec, dis, layout = torch_networks(trainer)
    tree = {"encoder": state0.enc, "decoder": state0.dec, "dis": state0.dis}
    copy_weights(layout, tree)
    key = jax.random.key(42)
    xb = x[:BATCH]
    with jax.default_matmul_precision("highest"):
        g_enc, g_dec, g_dis, tj = trainer.gradients(state0, jnp.asarray(xb), key)
        eps, z_p = (np.array(a) for a in trainer._noise(key, jnp.asarray(xb)))  # the noise gradients() draws
    tt = torch_loss_terms(trainer, enc, dec, dis, torch.from_numpy(xb), torch.from_numpy(eps), torch.from_numpy(z_p))
    grads = {}
    for i, (net, name) in enumerate(zip((enc, dec, dis), ("enc", "dec", "dis"))):
        params = list(net.parameters())
        grads.update(zip(map(id, params), torch.autograd.grad(tt[name], params, retain_graph=i < 2)))
    terms_j = {k: float(v) for k, v in tj.items()}
    terms_t = {k: float(v.detach()) for k, v in tt.items()}
    out = {"jaxgen": terms_j, "PyTorch": terms_t,
           "value_rel": max(abs(terms_j[k] - terms_t[k]) / max(abs(terms_j[k]), 1e-6) for k in terms_j)}
    flax_grads = {"encoder": g_enc, "decoder": g_dec, "dis": g_dis}
    for name in ("encoder", "decoder", "dis"):
        out[f"grad_rel_{name}"] = grad_difference([e for e in layout if e[1][0] == name], flax_grads, grads)

    # whole steps (optimizer and equilibrium rule included) from the same start, same batches and noise
    enc, dec, dis, layout = torch_networks(trainer)
    copy_weights(layout, tree)
    # the timed loop uses torch.optim.RMSprop (eps outside the square root); here optax's formula, so that the
    # whole steps can agree to round-off (with eps placed apart, gradients below ~3e-4 get other step sizes)
    opts = ([_OptaxRMSProp(n.parameters(), trainer.lr) for n in (enc, dec, dis)] if trainer.optimizer == "rmsprop"
            else torch_optimizers(trainer, (enc, dec, dis)))
    update = jax.jit(trainer.update)
    state = jax.tree.map(jnp.copy, state0)
    decisions = []

    def change_difference(state):
        """Largest |jaxgen's change - PyTorch's change| of an array over its largest change; the array."""
        after = {"encoder": state.enc, "decoder": state.dec, "dis": state.dis}
        worst, worst_at = 0.0, None
        for p, path, tf in layout:
            a0 = np.asarray(tf(np.asarray(_at(tree, path))))
            a = np.asarray(tf(np.asarray(_at(after, path)))) - a0
            d = float(np.max(np.abs(a - (p.detach().numpy() - a0))) / (np.max(np.abs(a)) + 1e-30))
            if d > worst:
                worst, worst_at = d, "/".join(path)
        return worst, worst_at

    with jax.default_matmul_precision("highest"):
        for s in range(n_steps):
            k = jax.random.fold_in(key, s)
            xs = jnp.asarray(x[s * BATCH:(s + 1) * BATCH])
            state, m = update(state, xs, k)
            e, zp = (torch.from_numpy(np.array(a)) for a in trainer._noise(k, xs))
            _, dec_on, dis_on = torch_step(trainer, enc, dec, dis, opts, torch.from_numpy(np.array(xs)), e, zp)
            decisions.append(((bool(m["dec_updated"]), bool(m["dis_updated"])), (dec_on, dis_on)))
            if s == 0:
                out["step1_change_rel"], out["step1_change_worst_array"] = change_difference(state)
    out["steps_checked"] = n_steps
    out["decisions"] = [list(map(list, d)) for d in decisions]
    out["decisions_equal"] = all(a == b for a, b in decisions)
    out[f"step{n_steps}_change_rel"] = change_difference(state)[0]
    return out


class _OptaxRMSProp:
    """``optax.rmsprop(lr, decay=0.9, eps=1e-8)`` in PyTorch: ``nu = 0.9 nu + 0.1 g^2``,
    ``p -= lr g / sqrt(nu + eps)`` (for the whole-step check only)."""

    def __init__(self, params, lr: float, decay: float = 0.9, eps: float = 1e-8):
        import torch

        self.params, self.lr, self.decay, self.eps = list(params), lr, decay, eps
        self.nu = [torch.zeros_like(p) for p in self.params]

    def step(self):
        import torch

        with torch.no_grad():
            for p, nu in zip(self.params, self.nu):
                nu.mul_(self.decay).add_((1.0 - self.decay) * p.grad**2)
                p.sub_(self.lr * p.grad / torch.sqrt(nu + self.eps))


def _at(tree, path):
    for k in path:
        tree = tree[k]
    return tree


# ------------------------------------------------------------------------------------------ loops
def torch_loops(trainer, state0, x: np.ndarray, steps: int, device: str, seed: int = 0) -> dict:
    import torch

    torch.manual_seed(seed)
    data = torch.from_numpy(x).to(device)
    tree = {"encoder": state0.enc, "decoder": state0.dec, "dis": state0.dis}
    q = trainer.latent_dim

    def fresh():
        enc, dec, dis, layout = torch_networks(trainer)
        copy_weights(layout, tree)
        nets = [n.to(device).train() for n in (enc, dec, dis)]
        return (*nets, torch_optimizers(trainer, nets))

    def step(enc, dec, dis, opts, xb):
        eps = torch.randn(xb.shape[0], q, device=xb.device)
        z_p = torch.randn(xb.shape[0], q, device=xb.device)
        t, _, _ = torch_step(trainer, enc, dec, dis, opts, xb, eps, z_p)
        return t["enc"], t["dis"]

    def make_round(step_fn):
        def run_round(state, r):
            perm = torch.randperm(len(data), device=device)[: steps * BATCH]
            e_tot = d_tot = 0.0
            for i in range(steps):
                e, d = step_fn(*state, data[perm[i * BATCH:(i + 1) * BATCH]])
                e_tot, d_tot = e_tot + e, d_tot + d
            return state, (float(e_tot) / steps, float(d_tot) / steps)

        return run_round

    return {"PyTorch eager": (fresh, make_round(step)), "PyTorch compiled": (fresh, make_round(compiled_step(step, fresh, "VAE-GAN step")))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 steps per round, 2 rounds, no torch.compile")
    ap.add_argument("--steps", type=int, default=None, help="steps per round (default 20, quick 3)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per loop (default 5, quick 2)")
    ap.add_argument("--optimizer", default="rmsprop", choices=("rmsprop", "adam"), help="all three networks'")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per library (0: library defaults)")
    ap.add_argument("--no-torch", action="store_true", help="jaxgen only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 5)
    if args.quick:
        args.no_compile = True
    if args.threads < 0 or args.rounds < 1 or args.steps < 1:
        ap.error("--threads must be >= 0, --rounds and --steps >= 1")
    torch, device = setup_threads(args.threads, args.no_torch)
    torch_ok = torch is not None

    import jax
    print_machine(["torch"])
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}"
          + (f"; PyTorch {torch.__version__} on {device} with {torch.get_num_threads()} threads" if torch_ok else "")
          + "; " + (f"threads={args.threads}" if args.threads else "default threads"))
    trainer = make_trainer(args.optimizer)
    steps = args.steps
    x = load_data(max(steps * BATCH, 5 * BATCH))
    fresh, run_round, state0 = core_rounds(trainer, x, BATCH, steps, metrics=("enc", "dis"))
    n_params = {k: sum(int(np.size(v)) for v in jax.tree.leaves(getattr(state0, k))) for k in ("enc", "dec", "dis")}
    print(f"\n[vaegan] experiments/vaegan_mnist.py's VAE-GAN on 28 x 28 MNIST, batch {BATCH}, {trainer.optimizer} lr "
          f"{trainer.lr:g}, gamma {trainer.gamma:g}, equilibrium {trainer.equilibrium} +- {trainer.margin}; {steps} "
          f"steps per round, {args.rounds} timed rounds per loop (interleaved)")
    out = {"threads": args.threads, "quick": args.quick, "torch_device": device, "settings": trainer.fingerprint(),
           "steps_per_round": steps, "rounds": args.rounds, "params": {"jaxgen": n_params}}
    loops = {"jaxgen scan": [run_round, fresh()]}
    print("  parameters: jaxgen " + ", ".join(f"{k} {v:,}" for k, v in n_params.items()), end="")
    if torch_ok:
        nets = torch_networks(trainer)[:3]
        t_params = {k: sum(p.numel() for p in n.parameters()) for k, n in zip(("enc", "dec", "dis"), nets)}
        print("; PyTorch " + ", ".join(f"{k} {v:,}" for k, v in t_params.items()))
        assert t_params == n_params, f"parameter counts differ: jaxgen {n_params}, PyTorch {t_params}"
        same = check_same_function(trainer, state0, x)
        print("  same function from the same weights, batch and noise: "
              + ", ".join(f"{k} {same['jaxgen'][k]:.4f} / {same['PyTorch'][k]:.4f}"
                          for k in ("prior", "llike", "dec_gan", "dis", "real_cost", "fake_cost"))
              + f" (jaxgen / PyTorch); largest relative difference of all {len(same['jaxgen'])} terms "
              f"{same['value_rel']:.1e}; gradients differ by at most "
              + ", ".join(f"{k[9:]} {v:.1e}" for k, v in same.items() if k.startswith("grad_rel"))
              + " of each array's largest entry")
        n = same["steps_checked"]
        print(f"  {n} whole steps from the same start, same batches and noise: equilibrium decisions (decoder, "
              f"discriminator updated) {'equal' if same['decisions_equal'] else 'DIFFER'} "
              f"({[d[0] for d in same['decisions']]}); the parameters' changes differ by at most "
              f"{same['step1_change_rel']:.1e} of each array's largest change after step 1 "
              f"({same['step1_change_worst_array']}), {same[f'step{n}_change_rel']:.1e} after step {n}")
        assert same["value_rel"] < 1e-4, "the PyTorch loss terms differ from jaxgen's"
        # float32 sums over thousands of terms give ~1e-4; a wrong layout or loss term gives order 1
        assert all(v < 5e-3 for k, v in same.items() if k.startswith("grad_rel")), "the gradients differ"
        assert same["decisions_equal"], "the equilibrium rule decided differently"
        assert same["step1_change_rel"] < 0.05, "one whole step differs (optimizer or update rule)"
        out["same_function"] = same
        for name, (t_fresh, t_round) in torch_loops(trainer, state0, x, steps, device).items():
            if name == "PyTorch compiled" and args.no_compile:
                continue
            loops[name] = [t_round, t_fresh()]
    else:
        print()
    times, first, last = interleave(loops, args.rounds)
    jax.block_until_ready(loops["jaxgen scan"][1])
    out.update(report(times, first, last, steps, BATCH, metric="enc_loss"))
    for line in compile_lines():
        print(line)
    out["torch_compile"] = REPORTS
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
