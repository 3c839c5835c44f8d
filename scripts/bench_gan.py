"""Benchmark: GAN training throughput of jaxgen's GANTrainer (as fit_trainer runs it) vs plain PyTorch.

    python scripts/bench_gan.py                 # DCGAN on MNIST and gan_ring's default (with, without R1)
    python scripts/bench_gan.py --quick         # 3 / 20 steps per round, 2 rounds, no torch.compile (its compile
                                                # takes ~40 s per setup), no fit_trainer re-run
    python scripts/bench_gan.py --diagnose      # only the XLA:CPU convolution-gradient measurements
    python scripts/bench_gan.py --lax-vjp       # also the DCGAN on Flax's own convs (JAX's VJPs; slow on CPU)
    python scripts/bench_gan.py --threads 2 --json out.json
    python scripts/bench_gan.py --setups dcgan --no-compile
    python scripts/bench_gan.py --setups dcgan --old-conv 5018d9d~1   # also the convolutions before the phases

Three setups, all with the non-saturating objective, n_critic = 1, Adam (eps 1e-8) for both players
and the generator's EMA (over its parameters and batch-norm running averages) updated after every
step, as :class:`jaxgen.models.gan.GANTrainer` does:

  dcgan:     the DCGAN of ``jaxgen.models.gan`` on 28 x 28 x 1 MNIST images in [0, 1], batch 64, latent
             64, Adam lr 1e-4 betas (0.5, 0.999), EMA 0.999: G = dense -> 7x7x128, batch norm, ReLU ->
             4x4 stride-2 transposed conv to 64 channels, batch norm, ReLU -> 4x4 stride-2 transposed
             conv to 1 channel, sigmoid; D = two 4x4 stride-2 convs (64, 128 channels, leaky ReLU 0.2)
             -> dense logit. (Not gan_mnist's config: a fixed reference setup.)
  mlp:       ``gan_ring``'s default config, read from ``experiments/_gan2d.py`` (so it cannot drift): ring
             of 8 Gaussians, 3 x 256 ReLU MLPs for G and D, latent 2, 256 discriminator inputs per step,
             no packing, Adam lr 1e-3 betas (0.5, 0.999) (the default's rate before its late decay),
             R1 gamma 0.1 on the real inputs, EMA 0.999. PyTorch computes R1 with
             ``torch.autograd.grad(..., create_graph=True)`` and differentiates it again.
  mlp_no_r1: the same without R1: ``torch.compile`` cannot compile a double backward (AOTAutograd:
             "does not currently support double backward"), so the compiled baseline exists only here.

With packing m, each of the ``batch`` discriminator inputs concatenates m samples (PacGAN's released
code): a step consumes m x batch real samples.

Each training step is one discriminator update (fresh fakes from the current G, real and fake logits,
its loss, backward, Adam) then one generator update on fresh latents (only G's gradients are formed)
and the EMA update. Three loops run it:

  (a) jaxgen scan:      ``jaxgen.train.fit_trainer``'s log period, built from the same pieces
                        (``make_loop_step(trainer.update)`` inside ``make_chunk_fn``, jitted with the
                        state donated): one compiled ``lax.scan`` over ``--steps`` steps, each gathering
                        its batch from the device-resident data by index; the timed call includes the
                        epoch permutation and fetching the per-step metrics to the host, as fit_trainer
                        does. We time this jitted scan directly rather than fit_trainer itself (a fresh
                        jit per call would recompile every round); once after the rounds, fit_trainer
                        itself runs one period of the same length (progress off, no run folder) and its
                        ``examples_per_s`` (compile excluded by the loop's own timing) is printed beside
                        (also for (a')).
  (b) PyTorch eager:    the usual loop: ``randperm`` per round, ``G(z)`` under ``no_grad``,
                        ``loss.backward()`` and ``Adam.step()`` for D; for G ``torch.autograd.grad`` with
                        respect to G's parameters only (D's weight gradients are not formed, as in JAX),
                        ``Adam.step()``; the EMA as one ``torch._foreach_lerp_``.
  (c) PyTorch compiled: the same step (both updates and the EMA) as one ``torch.compile``-d function
                        (mode "default", Inductor, not ``fullgraph``; its compile time shows in the
                        untimed warm-up round, like JAX's). The script runs ``torch._dynamo.explain`` on
                        it and prints the number of graphs and graph breaks and their reasons (the
                        backward calls, ``autograd.grad`` and ``Optimizer.zero_grad`` break the step
                        into several graphs run from Python). Compiling the two modules instead
                        (``Module.compile()``) measured no faster. Why the compiled DCGAN step is
                        slower than eager on one CPU thread (torch 2.14, ``torch.profiler`` over 5
                        steps, 2026-12-08): the convolutions are the same oneDNN calls in both (1.07 s
                        vs 0.98 s of ``convolution_backward``), but Inductor's generated kernels for
                        the rest (batch norm, leaky ReLU, the fused Adam and EMA) took 0.78 s of self
                        time against about 0.25 s for ATen's kernels in eager, plus 0.06 s of copies;
                        turning Inductor's ``layout_optimization`` off recovered a little (78 vs 71
                        images/s; eager 93, on a loaded machine). Graph breaks are not the cause.
  (a') jaxgen scan, lax VJPs (``--lax-vjp``, DCGAN only): loop (a) with the same networks on Flax's
                        ``nn.Conv`` / ``nn.ConvTranspose`` (same parameters, initial weights and
                        gradients; the relative difference is printed), i.e. JAX's own convolution
                        VJPs, which XLA:CPU runs 30-60x slower inside ``lax.scan`` than outside. The
                        DCGAN's layers are ``jaxgen.nn.convolution``'s, whose VJPs avoid that;
                        ``--diagnose`` times one convolution gradient both ways, alone and in a scan.
  (a'') jaxgen scan, conv@REV (``--old-conv REV``, DCGAN only): loop (a) with ``jaxgen/nn/convolution.py``
                        as of git revision REV (e.g. ``5018d9d~1``, before the phase convolutions), so
                        that old and new code and PyTorch are measured in the same interleaved rounds.

Equivalence: the PyTorch networks are built layer by layer like the Flax ones and start from the
Flax initial weights (copied, with the layout changes NHWC -> NCHW, flipped transposed-conv kernels,
and the permuted dense rows / columns at the reshape); the script prints both parameter counts
(asserted equal) and the largest difference of G's and D's outputs on the same inputs (asserted
below 1e-4), so the timed programs compute the same functions. Differences that do not change the
work: the random streams (JAX's threefry vs PyTorch's generator), and PyTorch's ``no_grad`` G pass
also updates the running batch-norm averages (JAX discards that pass's statistics).

Speed against the hardware: the script counts each step's multiply-adds (G forward for D's update,
D forward on real and fake, D backward for weights and inputs, about twice the forward; then G
forward, D forward, D backward for the inputs only, G backward), i.e. about 2 x (4 G + 8 D) FLOP
with G, D the forward multiply-adds of a batch (activations, batch norm and Adam not counted), and
prints each loop's achieved GFLOP/s beside the float32 1024^3 matmul rate of jnp and of torch measured
in the same run.

Threads: as ``scripts/bench_vae.py``. ``--threads 1`` (default) gives each library one compute
thread (``torch.set_num_threads(1)``; XLA ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``) and pins the process to one core. ``--threads N`` (N > 1) gives
PyTorch N threads and leaves XLA its default pool (one thread per core). ``--threads 0`` keeps the
libraries' defaults (what ``scripts/device_check.sh`` uses on a GPU; PyTorch then runs on CUDA when
JAX runs on a GPU and the installed PyTorch has CUDA, else on the CPU, which the header says).

Rounds are interleaved (a, b, c, then b, c, a, ...; a 0.5 s pause before each) after one untimed
warm-up round per loop (compiles), so that load from other processes hits all loops alike; we report
the median over rounds (images/s = real images consumed per second = steps/s x batch) and the
ratios of medians. PyTorch is imported only for (b) and (c); when it is missing the script says how
to install it and times jaxgen alone.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import core_rounds, median_time, print_machine  # noqa: E402
from _torch import explain as explain_step  # noqa: E402

# The setups. "batch" counts the discriminator's inputs per step (each of "pack" samples, as PacGAN's
# released code and experiments/_gan2d.py pack). "mlp" is gan_ring's default config, read from
# experiments/_gan2d.py (ring_default); "mlp_no_r1" the same without R1 (torch.compile cannot
# differentiate twice, so only this one has a compiled PyTorch baseline).
DCGAN_TRAIN = dict(objective="non_saturating", n_critic=1, g_lr=1e-4, d_lr=1e-4, betas=(0.5, 0.999),
                   ema_decay=0.999, r1_gamma=0.0)
SETUPS = {
    "dcgan": dict(architecture="dcgan", data_shape=(28, 28, 1), latent_dim=64, conv_base=64, batch=64, pack=1,
                  steps=10, quick_steps=3, train=DCGAN_TRAIN),
    "mlp": dict(ring_default=True, steps=200, quick_steps=20),
    "mlp_no_r1": dict(ring_default=True, r1_gamma=0.0, steps=200, quick_steps=20),
}


def ring_default(r1_gamma=None) -> dict:
    """The setup of gan_ring's default config (``experiments/_gan2d.py``): its trainer's networks,
    batch, packing, objective, Adam settings, R1 and EMA (``r1_gamma`` overrides R1). Its learning rates
    stay constant for the first ``decay_start`` (8 000) steps, longer than any round here."""
    from pathlib import Path

    from jaxgen import runner

    g = runner.sibling_module(Path(__file__).resolve().parents[1] / "experiments" / "gan_ring.py", "_gan2d")
    config = g.get_config("ring")
    trainer = g.make_trainer(config, **({} if r1_gamma is None else {"r1_gamma": r1_gamma}))
    assert trainer.g_hidden == trainer.d_hidden and trainer.d_maxout == 1 and trainer.activation == "relu"
    assert config.train.pack_batch == "inputs" and trainer.decay_start > 1000
    train = {k: getattr(trainer, k) for k in ("objective", "n_critic", "g_lr", "d_lr", "betas", "ema_decay",
                                               "r1_gamma")}
    return dict(architecture="mlp", data_shape=trainer.data_shape, latent_dim=trainer.latent_dim,
                hidden=trainer.g_hidden, batch=config.train.batch_size, pack=trainer.pack, train=train,
                decay=(trainer.decay_start, trainer.decay_steps))


def resolve(name: str) -> dict:
    setup = dict(SETUPS[name])
    if setup.pop("ring_default", False):
        setup = {**ring_default(setup.pop("r1_gamma", None)), **setup}
    t = setup["train"]
    assert t["objective"] == "non_saturating" and t["n_critic"] == 1, "the PyTorch loop implements only this"
    return setup


def make_trainer(setup: dict):
    from jaxgen.models import gan

    extra = (dict(g_hidden=setup["hidden"], d_hidden=setup["hidden"]) if setup["architecture"] == "mlp"
             else dict(conv_base=setup["conv_base"]))
    if "decay" in setup:
        extra.update(decay_start=setup["decay"][0], decay_steps=setup["decay"][1])
    return gan.GANTrainer(architecture=setup["architecture"], data_shape=setup["data_shape"],
                          latent_dim=setup["latent_dim"], pack=setup["pack"], **setup["train"], **extra)


def rows(setup: dict) -> int:
    """Real samples per step: ``pack`` per discriminator input."""
    return setup["batch"] * setup["pack"]


def load_data(name: str, setup: dict, n: int) -> np.ndarray:
    """``(n, *data_shape)`` float32 training data: MNIST's first n training images in [0, 1], or ring samples."""
    if setup["architecture"] == "dcgan":
        from jaxgen.data import load_mnist

        x = load_mnist("train")[0][:n]
        return (x.reshape(len(x), 28, 28, 1) / np.float32(255.0)).astype(np.float32)
    import jax

    from jaxgen.data import make_ring

    return np.array(make_ring(jax.random.key(0), n, std=0.01)[0], dtype=np.float32)  # writable: torch.from_numpy


def forward_macs(setup: dict) -> tuple[int, int]:
    """Multiply-adds of one forward pass of G (per sample) and of D (per packed input)."""
    m = setup["pack"]
    if setup["architecture"] == "mlp":
        D, q, h = setup["data_shape"][0], setup["latent_dim"], setup["hidden"]
        dims_g = (q, *h, D)
        dims_d = (m * D, *h, 1)
        return (sum(a * b for a, b in zip(dims_g[:-1], dims_g[1:])), sum(a * b for a, b in zip(dims_d[:-1], dims_d[1:])))
    H, W, C = setup["data_shape"]
    b, q = setup["conv_base"], setup["latent_dim"]
    f0 = (H // 4) * (W // 4) * 2 * b
    g = q * f0 + (H // 4) * (W // 4) * 16 * 2 * b * b + (H // 2) * (W // 2) * 16 * b * C  # transposed: per input pixel
    d = (H // 2) * (W // 2) * 16 * m * C * b + (H // 4) * (W // 4) * 16 * b * 2 * b + f0  # convs: per output pixel
    return g, d


def step_flop(setup: dict) -> float:
    """FLOP of one step as counted in the module docstring (R1's extra passes not counted)."""
    g, d = forward_macs(setup)
    return 2.0 * (4 * rows(setup) * g + 8 * setup["batch"] * d)


# ----------------------------------------------------------------------------------------- jaxgen
def jax_setup(trainer, x: np.ndarray, setup: dict, steps: int, seed: int = 0):
    """The loop of fit_trainer's log period; returns (fresh_state, run_round, n_params, init_state)."""
    import jax

    fresh, run_round, model0 = core_rounds(trainer, x, trainer.data_rows(setup["batch"]), steps, seed,
                                           metrics=("d_loss", "g_loss"))
    n_params = {"G": sum(int(np.size(a)) for a in jax.tree.leaves(model0.g_vars["params"])),
                "D": sum(int(np.size(a)) for a in jax.tree.leaves(model0.d_params))}
    return fresh, run_round, n_params, model0


def fit_trainer_rate(trainer, x: np.ndarray, setup: dict, steps: int) -> tuple[float, float]:
    """(examples/s, compile s) of fit_trainer itself for one log period of ``steps`` steps."""
    import jax

    from jaxgen.train import fit_trainer

    _, history = fit_trainer(trainer, x, key=jax.random.key(1), steps=steps,
                             batch_size=trainer.data_rows(setup["batch"]),
                             log_every=steps, progress=False, tensorboard=False)
    return history[0]["examples_per_s"], history[0]["compile_time_s"]


# ------------------------------------------------- the DCGAN on Flax's own convolutions (opt-in)
# jaxgen's DCGAN layers are jaxgen.nn.convolution's Conv / ConvTranspose: the forward pass is
# lax.conv_general_dilated, the VJP is written in XLA:CPU's canonical layout. ``--lax-vjp`` adds a
# loop with the same networks on Flax's nn.Conv / nn.ConvTranspose (JAX's own VJPs, as GANTrainer
# had them before jaxgen.nn.convolution): the end-to-end cost of XLA:CPU's slow convolution
# gradients inside lax.scan, measured in the same run.
LAX = "jaxgen scan, lax VJPs"


def gradient_difference(trainer, other, model0, x) -> float:
    """Largest difference between the G and D gradients of the two trainers' networks, relative to
    each network's largest gradient entry."""
    import jax
    import jax.numpy as jnp

    z = jax.random.normal(jax.random.key(3), (len(x), trainer.latent_dim))

    def grads(t):
        g = jax.grad(lambda p: jnp.sum(jnp.sin(t.generator.apply({**model0.g_vars, "params": p}, z, train=True,
                                                                  mutable=["batch_stats"])[0])))(model0.g_vars["params"])
        d = jax.grad(lambda p: jnp.sum(jnp.sin(t.discriminator.apply({"params": p}, x))))(model0.d_params)
        return g, d

    # relative to the network's largest gradient entry, not each array's: the biases before batch norm
    # have gradient 0 up to round-off, whose relative differences are O(1)
    diffs = []
    for u_net, v_net in zip(grads(trainer), grads(other)):
        scale = max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(u_net))
        diffs += [float(jnp.max(jnp.abs(u - v))) / scale
                  for u, v in zip(jax.tree.leaves(u_net), jax.tree.leaves(v_net))]
    return max(diffs)


def conv_module_at(rev: str):
    """``jaxgen/nn/convolution.py`` as it was at git revision ``rev`` of this repository, as a module
    (it imports only flax and jax), for timing older convolution code beside the current one."""
    import subprocess
    import types

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", repo, "show", f"{rev}:src/jaxgen/nn/convolution.py"], capture_output=True,
                         text=True, check=True).stdout
    module = types.ModuleType(f"convolution_at_{rev}")
    exec(compile(src, f"{rev}:src/jaxgen/nn/convolution.py", "exec"), module.__dict__)  # noqa: S102
    return module


def flax_conv_dcgan_trainer(trainer, conv=None, conv_transpose=None):
    """``trainer`` (a DCGAN GANTrainer) with the same networks on other convolution layers: by default
    Flax's ``nn.Conv`` / ``nn.ConvTranspose`` (JAX's own VJPs); same parameter names and shapes (same
    initial weights), same functions."""
    import dataclasses

    import flax.linen as nn

    from jaxgen.models import gan

    conv, conv_transpose = conv or nn.Conv, conv_transpose or nn.ConvTranspose

    class Generator(gan.DCGANGenerator):
        @nn.compact
        def __call__(self, z, train: bool = True):
            H, W, C = (int(s) for s in self.image_shape)
            bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)  # noqa: E731
            x = nn.Dense((H // 4) * (W // 4) * 2 * self.base, name="project")(z)
            x = nn.relu(bn("bn_0")(x)).reshape(z.shape[0], H // 4, W // 4, 2 * self.base)
            x = nn.relu(bn("bn_1")(conv_transpose(self.base, (4, 4), strides=(2, 2), padding="SAME",
                                                  name="deconv_0")(x)))
            return nn.sigmoid(conv_transpose(C, (4, 4), strides=(2, 2), padding="SAME", name="deconv_1")(x))

    class Discriminator(gan.DCGANDiscriminator):
        @nn.compact
        def __call__(self, x):
            x = nn.leaky_relu(conv(self.base, (4, 4), strides=(2, 2), padding="SAME", name="conv_0")(x), 0.2)
            x = nn.leaky_relu(conv(2 * self.base, (4, 4), strides=(2, 2), padding="SAME", name="conv_1")(x), 0.2)
            return nn.Dense(1, name="logit")(x.reshape(x.shape[0], -1))[..., 0]

    @dataclasses.dataclass(frozen=True)
    class FlaxConvTrainer(gan.GANTrainer):
        @property
        def generator(self):
            return Generator(image_shape=self.data_shape, base=self.conv_base, latent_dim=self.latent_dim,
                             latent=self.latent)

        @property
        def discriminator(self):
            return Discriminator(base=self.conv_base)

    return FlaxConvTrainer(**{f.name: getattr(trainer, f.name) for f in dataclasses.fields(trainer)})


# ---------------------------------------------------------------------------------------- PyTorch
def torch_modules(setup: dict):
    """(G, D) PyTorch modules built layer by layer like the Flax networks."""
    import torch
    from torch import nn

    m = setup["pack"]
    if setup["architecture"] == "mlp":
        def mlp(sizes):
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
            return nn.Sequential(*layers)

        D_dim = setup["data_shape"][0]
        G = mlp((setup["latent_dim"], *setup["hidden"], D_dim))
        D = mlp((m * D_dim, *setup["hidden"], 1))
        return G, D
    H, W, C = setup["data_shape"]
    b, q = setup["conv_base"], setup["latent_dim"]

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(q, (H // 4) * (W // 4) * 2 * b)
            self.bn_0 = nn.BatchNorm1d((H // 4) * (W // 4) * 2 * b, eps=1e-5, momentum=0.1)  # Flax momentum 0.9
            self.deconv_0 = nn.ConvTranspose2d(2 * b, b, 4, 2, 1)  # = Flax ConvTranspose 4x4 stride 2 "SAME"
            self.bn_1 = nn.BatchNorm2d(b, eps=1e-5, momentum=0.1)
            self.deconv_1 = nn.ConvTranspose2d(b, C, 4, 2, 1)

        def forward(self, z):
            h = torch.relu(self.bn_0(self.project(z))).view(z.shape[0], 2 * b, H // 4, W // 4)
            return torch.sigmoid(self.deconv_1(torch.relu(self.bn_1(self.deconv_0(h)))))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_0 = nn.Conv2d(m * C, b, 4, 2, 1)  # = Flax Conv 4x4 stride 2 "SAME" on even sizes
            self.conv_1 = nn.Conv2d(b, 2 * b, 4, 2, 1)
            self.logit = nn.Linear((H // 4) * (W // 4) * 2 * b, 1)

        def forward(self, x):
            h = nn.functional.leaky_relu(self.conv_0(x), 0.2)
            h = nn.functional.leaky_relu(self.conv_1(h), 0.2)
            return self.logit(h.flatten(1))

    return Generator(), Discriminator()


def copy_flax_weights(setup: dict, model0, G, D) -> None:
    """Load the Flax initial variables of ``model0`` (a GANState) into the PyTorch G and D."""
    import torch

    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # a writable copy  # noqa: E731
    gp, gs, dp = model0.g_vars["params"], model0.g_vars.get("batch_stats", {}), model0.d_params
    with torch.no_grad():
        if setup["architecture"] == "mlp":
            for mod, p in ((G, gp["net"]), (D, {**dp, f"dense_{len(setup['hidden'])}": dp["logit"]})):
                linears = [layer for layer in mod if isinstance(layer, torch.nn.Linear)]
                for i, lin in enumerate(linears):
                    lin.weight.copy_(t(p[f"dense_{i}"]["kernel"]).T)
                    lin.bias.copy_(t(p[f"dense_{i}"]["bias"]))
            return
        H, W, _ = setup["data_shape"]
        c2, hw = 2 * setup["conv_base"], (H // 4) * (W // 4)
        # Flax's feature (h * W4 + w) * c2 + c at the reshape is PyTorch's c * hw + h * W4 + w (NHWC vs NCHW)
        perm = np.array([(f % hw) * c2 + f // hw for f in range(hw * c2)])
        G.project.weight.copy_(t(np.asarray(gp["project"]["kernel"])[:, perm]).T)
        G.project.bias.copy_(t(np.asarray(gp["project"]["bias"])[perm]))
        for name in ("bn_0", "bn_1"):
            sel = perm if name == "bn_0" else slice(None)
            bn = getattr(G, name)
            bn.weight.copy_(t(np.asarray(gp[name]["scale"])[sel]))
            bn.bias.copy_(t(np.asarray(gp[name]["bias"])[sel]))
            bn.running_mean.copy_(t(np.asarray(gs[name]["mean"])[sel]))
            bn.running_var.copy_(t(np.asarray(gs[name]["var"])[sel]))
        for name in ("deconv_0", "deconv_1"):  # Flax (kh, kw, in, out), unflipped -> PyTorch (in, out, kh, kw), flipped
            getattr(G, name).weight.copy_(t(np.asarray(gp[name]["kernel"])[::-1, ::-1].transpose(2, 3, 0, 1)))
            getattr(G, name).bias.copy_(t(gp[name]["bias"]))
        for name in ("conv_0", "conv_1"):  # Flax (kh, kw, in, out) -> PyTorch (out, in, kh, kw)
            getattr(D, name).weight.copy_(t(np.asarray(dp[name]["kernel"]).transpose(3, 2, 0, 1)))
            getattr(D, name).bias.copy_(t(dp[name]["bias"]))
        D.logit.weight.copy_(t(np.asarray(dp["logit"]["kernel"])[perm, 0])[None])
        D.logit.bias.copy_(t(dp["logit"]["bias"]))


def max_output_differences(trainer, setup: dict, model0, G, D, x: np.ndarray) -> tuple[float, float]:
    """Largest |Flax - PyTorch| of G(z) (training mode: batch statistics) and of D's logits on packed real data."""
    import jax
    import torch

    from jaxgen.models import gan

    B, m = rows(setup), setup["pack"]
    z = np.array(jax.random.normal(jax.random.key(5), (B, setup["latent_dim"])), dtype=np.float32)  # writable
    xj = trainer.generator.apply(model0.g_vars, z, train=True, mutable=["batch_stats"])[0]
    dj = trainer.discriminator.apply({"params": model0.d_params}, gan.pack(x[:B], m))
    G.train()
    with torch.no_grad():
        state = {k: v.clone() for k, v in G.state_dict().items()}
        xt = G(torch.from_numpy(z))
        G.load_state_dict(state)  # leave the running averages as copied
        dt = D(torch_pack(to_torch_layout(torch.from_numpy(x[:B])), m)).squeeze(-1)
    if xt.ndim == 4:
        xt = xt.permute(0, 2, 3, 1)
    gamma = setup["train"]["r1_gamma"]
    if gamma > 0:  # the R1 penalty of both on the same real inputs
        d_fn = lambda v: trainer.discriminator.apply({"params": model0.d_params}, v)  # noqa: E731
        r1_j = float(gan.r1_penalty(d_fn, gan.pack(x[:B], m), gamma))
        real_in = torch_pack(to_torch_layout(torch.from_numpy(x[:B])), m).requires_grad_(True)
        (gx,) = torch.autograd.grad(D(real_in).sum(), real_in)
        r1_t = float(0.5 * gamma * gx.pow(2).flatten(1).sum(1).mean())
        assert abs(r1_j - r1_t) <= 1e-4 * abs(r1_j) + 1e-9, f"R1 differs: jaxgen {r1_j}, PyTorch {r1_t}"
        print(f"  same R1 penalty on the same real inputs: jaxgen {r1_j:.6g}, PyTorch {r1_t:.6g}")
    return float(np.max(np.abs(np.asarray(xj) - xt.numpy()))), float(np.max(np.abs(np.asarray(dj) - dt.numpy())))


def to_torch_layout(x):
    """NHWC images -> NCHW (flat data unchanged)."""
    return x.permute(0, 3, 1, 2).contiguous() if x.ndim == 4 else x


def torch_pack(x, m: int):
    """PacGAN packing as :func:`jaxgen.models.gan.pack`: m consecutive rows -> one input (features or channels)."""
    if m == 1:
        return x
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


def torch_setup(setup: dict, model0, x: np.ndarray, steps: int, threads: int, device: str, seed: int = 0,
                variant: str = "step"):
    """``({name: (fresh, run_round)}, explain)`` for PyTorch eager and compiled; ``explain()`` runs
    ``torch._dynamo.explain`` on the compiled step (one step on a fresh state) and returns its graph and
    graph-break counts and the break reasons."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    B, m, q = rows(setup), setup["pack"], setup["latent_dim"]  # B samples = B / m packed inputs
    tr = setup["train"]
    b1, b2 = tr["betas"]
    decay, gamma = tr["ema_decay"], tr["r1_gamma"]
    data = to_torch_layout(torch.from_numpy(x)).to(device)

    def fresh(compiled_modules=False):
        G, D = torch_modules(setup)
        copy_flax_weights(setup, model0, G, D)
        G, D = G.to(device).train(), D.to(device).train()
        if compiled_modules:
            G.compile()
            D.compile()
        ema = [p.detach().clone() for p in G.parameters()] + [
            b.detach().clone() for b in G.buffers() if b.is_floating_point()]
        g_opt = torch.optim.Adam(G.parameters(), lr=tr["g_lr"], betas=(b1, b2), eps=1e-8)
        d_opt = torch.optim.Adam(D.parameters(), lr=tr["d_lr"], betas=(b1, b2), eps=1e-8)
        return G, D, g_opt, d_opt, ema

    def step(G, D, g_opt, d_opt, ema, real):
        # discriminator: fresh fakes from the current G, real and fake logits
        with torch.no_grad():
            fake = G(torch.randn(B, q, device=device))
        real_in = torch_pack(real, m)
        if gamma > 0:  # R1 on the real inputs: gamma / 2 * mean |grad_x D(x)|^2, differentiated again
            real_in = real_in.detach().requires_grad_(True)
        r, f = D(real_in), D(torch_pack(fake, m))
        d_loss = F.softplus(-r).mean() + F.softplus(f).mean()
        if gamma > 0:
            (gx,) = torch.autograd.grad(r.sum(), real_in, create_graph=True)
            d_loss = d_loss + 0.5 * gamma * gx.pow(2).flatten(1).sum(1).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        # generator (non-saturating): gradients for G's parameters only
        g_params = list(G.parameters())
        g_loss = F.softplus(-D(torch_pack(G(torch.randn(B, q, device=device)), m))).mean()
        for p, g in zip(g_params, torch.autograd.grad(g_loss, g_params)):
            p.grad = g
        g_opt.step()
        with torch.no_grad():  # EMA of G's parameters and running averages
            torch._foreach_lerp_(ema, g_params + [b for b in G.buffers() if b.is_floating_point()], 1.0 - decay)
        return d_loss.detach(), g_loss.detach()

    def make_round(step_fn):
        def run_round(state, r):
            perm = torch.randperm(len(data), device=device)[: steps * B]  # B = pack x batch samples per step
            d_tot = g_tot = 0.0
            for i in range(steps):
                d, g = step_fn(*state, data[perm[i * B:(i + 1) * B]])
                d_tot, g_tot = d_tot + d, g_tot + g  # tensors: no device sync inside the round
            return state, (float(d_tot) / steps, float(g_tot) / steps)

        return run_round

    def explain():
        out = explain_step(step, (*fresh(), data[:B]))
        torch._dynamo.reset()  # the timed loop compiles from scratch
        return out

    loops = {"PyTorch eager": (fresh, make_round(step))}
    if variant == "step":
        loops["PyTorch compiled"] = (fresh, make_round(torch.compile(step)))  # mode "default"
    else:
        loops["PyTorch compiled"] = (lambda: fresh(True), make_round(step))
    return loops, explain


def setup_threads(threads: int, no_torch: bool):
    """Before JAX starts (XLA reads its flags once): with ``threads == 1`` pin the process to one core
    and give XLA one compute thread; import PyTorch unless ``no_torch`` and give it ``threads``.
    Returns ``(torch module or None, torch device or None)``; shared by the benchmark scripts."""
    if threads == 1:
        if hasattr(os, "sched_setaffinity"):  # one core for the whole process, XLA's helper threads included
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    if no_torch:
        return None, None
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: timing jaxgen alone. Install the CPU wheel with\n"
              "    .venv/bin/python -m pip install torch==2.13.0\n"
              "(or: pip install torch --index-url https://download.pytorch.org/whl/cpu)")
        return None, None
    device = torch_device(threads)
    if threads > 0:
        torch.set_num_threads(threads)
    return torch, device


def torch_device(threads: int) -> str:
    import jax
    import torch

    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


# ------------------------------------------------------------------------------------------ rates
def matmul_rates(torch_ok: bool, device: str, repeats: int = 7) -> dict:
    """float32 GFLOP/s of a 1024^3 matmul with jnp and with torch (same threads as the loops)."""
    import jax

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    flop = 2 * 1024**3
    out = {"jnp": flop / median_time(jax.jit(lambda a: a @ a), jax.device_put(a), repeats=repeats) / 1e9}
    if torch_ok:
        import torch

        ta = torch.from_numpy(a).to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        ta @ ta
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ta @ ta
            sync()
            times.append(time.perf_counter() - t0)
        out["torch"] = flop / statistics.median(times) / 1e9
    return out


def bench_setup(name: str, args, torch_ok: bool, device: str) -> dict:
    import jax

    setup = resolve(name)
    steps = args.steps or (setup["quick_steps"] if args.quick else setup["steps"])
    if setup["architecture"] == "mlp" and args.steps:
        steps = args.steps * 10  # the MLP step is about 10x cheaper: keep the rounds of similar length
    B = rows(setup)  # real samples per step
    trainer = make_trainer(setup)
    n = max(steps * B, B)
    x = load_data(name, setup, n)
    fresh, run_round, n_params, model0 = jax_setup(trainer, x, setup, steps)
    loops = {"jaxgen scan": [run_round, fresh()]}
    others = {}  # loop name: the same networks on other convolution code
    if setup["architecture"] == "dcgan" and args.lax_vjp:
        others[LAX] = flax_conv_dcgan_trainer(trainer)
    if setup["architecture"] == "dcgan" and args.old_conv:
        old = conv_module_at(args.old_conv)
        others[f"jaxgen scan, conv@{args.old_conv}"] = flax_conv_dcgan_trainer(trainer, old.Conv, old.ConvTranspose)
    for lname, t in others.items():
        o_fresh, o_round, _, _ = jax_setup(t, x, setup, steps)
        loops[lname] = [o_round, o_fresh()]
    g_macs, d_macs = forward_macs(setup)
    flop = step_flop(setup)
    t = setup["train"]
    what = ("DCGAN, 28 x 28 x 1 MNIST" if setup["architecture"] == "dcgan" else
            f"gan_ring's default config: {len(setup['hidden'])} x {setup['hidden'][0]} ReLU MLPs, R1 {t['r1_gamma']:g}")
    print(f"\n[{name}] {what}, {setup['batch']} discriminator inputs of pack {setup['pack']} ({B} samples) per step, "
          f"latent {setup['latent_dim']}, {t['objective']}, Adam lr {t['g_lr']:g} / {t['d_lr']:g} betas {t['betas']}, "
          f"EMA {t['ema_decay']}; {steps} steps per round, {args.rounds} timed rounds per loop "
          f"(interleaved); about {flop / B / 1e6:.1f} MFLOP per real image per step (G {g_macs / 1e6:.3f} M, D "
          f"{d_macs / 1e6:.3f} M multiply-adds forward)")
    result = {"setup": {k: v for k, v in setup.items() if k not in ("steps", "quick_steps")}, "steps_per_round": steps,
              "rounds": args.rounds, "params": {"jaxgen": n_params}, "flop_per_step": flop, "train": {}, "ratios": {}}
    print(f"  parameters: jaxgen G {n_params['G']:,}, D {n_params['D']:,}", end="")
    if torch_ok:
        G, D = torch_modules(setup)
        t_params = {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())}
        print(f"; PyTorch G {t_params['G']:,}, D {t_params['D']:,}")
        assert t_params == n_params, f"parameter counts differ: jaxgen {n_params}, PyTorch {t_params}"
        result["params"]["PyTorch"] = t_params
        copy_flax_weights(setup, model0, G, D)
        dg, dd = max_output_differences(trainer, setup, model0, G, D, x)
        print(f"  same functions: max |jaxgen - PyTorch| from the same weights: G(z) {dg:.2e}, D logits {dd:.2e}")
        assert dg < 1e-4 and dd < 1e-4, "the PyTorch networks do not compute the Flax ones"
        result["max_output_difference"] = {"G": dg, "D": dd}
        torch_loops, explain = torch_setup(setup, model0, x, steps, args.threads, device)
        for lname, (t_fresh, t_round) in torch_loops.items():
            if lname == "PyTorch compiled" and args.no_compile:
                continue
            loops[lname] = [t_round, t_fresh()]
        if not args.no_compile:
            try:
                ex = explain()
            except Exception as e:  # explain runs one step; report, go on
                ex = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            result["torch_compile"] = {"fullgraph": False, **ex}
            print(f"  torch.compile (mode 'default', whole step): torch._dynamo.explain: " + (
                ex["error"] if "error" in ex else f"{ex['graphs']} graphs, {ex['graph_breaks']} graph breaks"))
            for reason in ex.get("break_reasons", []):
                print(f"    break: {reason}")
    else:
        print()

    for lname, t in others.items():
        diff = gradient_difference(trainer, t, model0, x[:B])
        print(f"  {lname} (the same networks on other convolution layers): same initial weights; gradients "
              f"differ from GANTrainer's by at most {diff:.1e} (relative to the network's largest entry)")
        result.setdefault("gradient_rel_difference", {})[lname] = diff
    times = {k: [] for k in loops}
    losses = {k: None for k in loops}
    first = {}
    names = list(loops)
    for r in range(args.rounds + 1):  # round 0: warm-up (compiles), not timed
        for lname in names[r % len(names):] + names[:r % len(names)]:
            entry = loops[lname]
            time.sleep(0.5)
            t0 = time.perf_counter()
            try:
                entry[1], losses[lname] = entry[0](entry[1], r)
            except Exception as e:  # e.g. no compiler for torch.compile on this machine: report, go on
                if lname == "jaxgen scan":
                    raise
                print(f"  !! {lname} failed, dropped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                names.remove(lname)
                loops.pop(lname)
                continue
            dt = time.perf_counter() - t0
            (times[lname].append(dt) if r else first.__setitem__(lname, dt))
    jax.block_until_ready(loops["jaxgen scan"][1])
    rates = matmul_rates(torch_ok, device)
    result["matmul_gflops"] = rates
    print("  float32 1024^3 matmul rate (same run): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    for lname in loops:
        med = statistics.median(times[lname])
        gflops = flop * steps / med / 1e9
        rec = {"images_per_s_median": steps * B / med, "steps_per_s_median": steps / med, "round_s_median": med,
               "round_s_all": times[lname], "first_round_s": first[lname], "gflops": gflops,
               "d_loss_last_round": losses[lname][0], "g_loss_last_round": losses[lname][1]}
        result["train"][lname] = rec
        print(f"  {lname:21s} {rec['images_per_s_median']:8.0f} images/s {rec['steps_per_s_median']:7.2f} steps/s "
              f"{gflops:6.1f} GFLOP/s = {gflops / rates['jnp']:4.0%} of jnp's matmul rate (median round {med:.3f} s, "
              f"warm-up round {first[lname]:.1f} s; last round d_loss {rec['d_loss_last_round']:.3f}, "
              f"g_loss {rec['g_loss_last_round']:.3f})")
    base = result["train"]
    for ref in ("PyTorch eager", "PyTorch compiled"):
        for lname, label in (("jaxgen scan", "jaxgen"), *((o, o.replace("jaxgen scan, ", "jaxgen with "))
                                                          for o in others)):
            if ref in base and lname in base:
                ratio = base[lname]["images_per_s_median"] / base[ref]["images_per_s_median"]
                result["ratios"][f"{label} / {ref}"] = ratio
                print(f"  ratio {label} / {ref}: {ratio:.2f}x (images/s, ratio of medians)")
    if not args.no_fit_check:
        for label, t in (("jaxgen", trainer), *others.items()):
            rate, compile_s = fit_trainer_rate(t, x, setup, steps)
            result.setdefault("fit_trainer", {})[label] = {"examples_per_s": rate, "compile_time_s": compile_s}
            print(f"  fit_trainer itself ({label}), one period of {steps} steps: {rate:.0f} images/s (compile "
                  f"{compile_s:.1f} s, excluded; one run, not interleaved)")
    return result


def diagnose(batch: int = 64, repeats: int = 3) -> dict:
    """Time the gradient (input and weights) of the DCGAN's two large convolutions with JAX's VJP
    (``lax.conv_general_dilated``) and with ``jaxgen.nn.convolution.conv_general_dilated``, alone and
    as the body of a ``lax.scan`` (per iteration), and count the non-canonical convolutions XLA leaves
    in each compiled program."""
    import re

    import jax
    import jax.numpy as jnp
    from jax import lax

    from jaxgen.nn.convolution import conv_general_dilated as jaxgen_conv

    key = jax.random.key(0)
    cases = {  # name: (x shape, kernel shape, strides, pads, lhs dilation)
        "D conv_1 14x14x64 -> 7x7x128 (4x4, stride 2)": ((batch, 14, 14, 64), (4, 4, 64, 128), (2, 2), ((1, 1), (1, 1)), (1, 1)),
        "G deconv_0 7x7x128 -> 14x14x64 (4x4 transposed, stride 2)": ((batch, 7, 7, 128), (4, 4, 128, 64), (1, 1),
                                                                      ((2, 2), (2, 2)), (2, 2)),
    }
    out = {}
    print(f"\n[diagnose] gradient of one convolution (input and weights), batch {batch}, median of {repeats}; per "
          "iteration inside lax.scan (4 iterations); 'odd' = convolutions left in a non-canonical layout")
    for name, (xs, ws, st, pads, ld) in cases.items():
        x, w = jax.random.normal(key, xs), 0.05 * jax.random.normal(key, ws)
        row = {}
        for label, conv in (("JAX VJP", lax.conv_general_dilated), ("jaxgen.nn VJP", jaxgen_conv)):
            f = lambda x, w, conv=conv: conv(x, w, st, pads, lhs_dilation=ld,  # noqa: E731
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            grad = jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), (0, 1))

            def looped(x, w, grad=grad):
                def body(c, _):
                    gx, gw = grad(x + c, w)
                    return c + 1e-6 * jnp.mean(gx) + 1e-6 * jnp.mean(gw), None
                return lax.scan(body, jnp.zeros((), x.dtype), None, length=4)[0]

            for where, fn, div in (("alone", grad, 1), ("in scan", looped, 4)):
                jf = jax.jit(fn)
                hlo = jf.lower(x, w).compile().as_text()
                odd = len([m for m in re.findall(r"dim_labels=([^,\s]*)", hlo) if m != "b01f_01io->b01f"])
                t = median_time(jf, x, w, repeats=repeats) / div
                row[f"{label} {where}"] = {"ms": 1e3 * t, "non_canonical_convs": odd}
        out[name] = row
        print(f"  {name}:")
        for k, v in row.items():
            print(f"    {k:24s} {v['ms']:9.2f} ms  ({v['non_canonical_convs']} odd)")
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few steps per round and 2 rounds")
    ap.add_argument("--setups", default="dcgan,mlp,mlp_no_r1", help="comma-separated subset of: " + ", ".join(SETUPS))
    ap.add_argument("--steps", type=int, default=None,
                    help="DCGAN steps per round (the MLP runs 10x as many); default 10 (quick 3)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per loop (default 5, quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per library (0: library defaults)")
    ap.add_argument("--no-torch", action="store_true", help="jaxgen only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop")
    ap.add_argument("--lax-vjp", action="store_true",
                    help="add a DCGAN loop on Flax's own conv modules (JAX's VJPs: slow on CPU inside lax.scan)")
    ap.add_argument("--old-conv", default=None, metavar="REV",
                    help="add a DCGAN loop on jaxgen/nn/convolution.py as of git revision REV (e.g. 5018d9d~1, "
                         "before the phase convolutions), timed in the same interleaved rounds")
    ap.add_argument("--no-fit-check", action="store_true", help="skip the one fit_trainer period after the rounds")
    ap.add_argument("--diagnose", action="store_true", help="only the convolution-gradient measurements")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    if args.quick:
        args.no_compile = args.no_fit_check = True
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in setups if s not in SETUPS]
    if unknown or not setups:
        ap.error(f"--setups must name some of {list(SETUPS)}, got {args.setups!r}")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    torch, device = setup_threads(args.threads, args.no_torch)
    torch_ok = torch is not None

    import jax
    print_machine(["torch"])
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}"
          + (f"; PyTorch {torch.__version__} on {device} with {torch.get_num_threads()} threads" if torch_ok else "")
          + "; " + (f"threads={args.threads}" if args.threads else "default threads")
          + "; objective non_saturating, n_critic 1 (each setup's Adam, R1 and EMA settings below)")
    out = {"threads": args.threads, "quick": args.quick, "torch_device": device, "setups": {}}
    if args.diagnose:
        out["diagnose"] = diagnose()
        setups = []
    for name in setups:
        out["setups"][name] = bench_setup(name, args, torch_ok, device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
