"""Benchmark: the gated PixelCNN's training throughput (jaxgen vs PyTorch) and sampling speed (naive vs cached).

    python scripts/bench_pixelcnn.py                # 5 steps per round, 5 rounds; sampling n = 16, 2 rounds
    python scripts/bench_pixelcnn.py --quick        # 2 steps, 2 rounds, sampling n = 2, 1 round; no torch.compile
                                                    # (its compile takes about a minute), no fit re-run, no
                                                    # PyTorch sampler
    python scripts/bench_pixelcnn.py --threads 2 --json out.json
    python scripts/bench_pixelcnn.py --no-compile --n-sample 4

The model: ``jaxgen.models.pixelcnn`` with its default ``PixelCNNConfig()`` (gated, Bernoulli, 28 x 28 x 1,
p = 32 features, 8 layers, first kernel 7, then 5, a 64-wide 1 x 1 head; 304 961 parameters), trained
on MNIST's first training images with dynamic binarisation (each step draws binary pixels with the grey
values as probabilities), Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8), batch 64; the loss is the exact
negative log-likelihood in nats per image (``pixelcnn.loss_fn(binarize=True)``).

Training, three loops of the same step (binarise the batch, forward, backward, Adam):

  (a) jaxgen scan:      ``jaxgen.train.fit``'s log period, built from the same pieces (its
                        :class:`~jaxgen.train.LossTrainer` around the PixelCNN loss, ``make_loop_step``
                        inside ``make_chunk_fn``, jitted with the state donated): one compiled
                        ``lax.scan`` over ``--steps`` steps, each gathering its batch from the
                        device-resident data by index; the timed call includes the epoch permutation
                        and fetching the per-step metrics to the host, as fit does. Once after the
                        rounds (not under ``--quick``), ``fit`` itself runs one period of the same
                        length (progress off, no run folder) and its ``examples_per_s`` (compile
                        excluded by the loop's own timing) is printed beside.
  (b) PyTorch eager:    the usual loop: ``randperm`` per round, ``torch.bernoulli`` of the batch, the
                        log-likelihood, ``loss.backward()``, ``Adam.step()``.
  (c) PyTorch compiled: the same step as one ``torch.compile``-d function (Inductor; its compile time
                        shows in the untimed warm-up round, like JAX's).

Equivalence: the PyTorch network is built layer by layer like the Flax one (NCHW): per layer a vertical
convolution ``(k//2 + 1) x k`` padded ``k//2`` rows on top and ``k//2`` columns either side; the
horizontal convolution ``1 x (k//2 + 1)`` left-padded by ``k//2`` (mask B), or for the first layer
(mask A) ``1 x (k0//2)`` over the input left-padded by ``k0//2`` with its last column dropped; the vertical
pre-activations down-shifted one row into a 1 x 1 link added to the horizontal ones; gates
``tanh(a) * sigmoid(b)`` over the two channel halves; a 1 x 1 convolution of the horizontal gate,
residual from the second layer on; the head ``1x1(relu(1x1(relu(h))))``. It starts from the Flax
initial weights (kernels HWIO -> OIHW). The script asserts equal parameter counts, the same
log-likelihood of the same binary images (relative difference < 1e-4) and the same loss gradient
(largest difference < 1e-3 of each array's largest entry), so the timed programs compute the same
function and the same gradients. What differs and does not change the work: the random streams
(JAX's threefry vs PyTorch's generator).

Speed against the hardware: a forward pass costs ``M`` multiply-adds per image (every convolution tap
counted, also over the zero padding: that is what the convolutions compute), the training step about
3 forward passes, i.e. ``6 M`` FLOP per image; each loop's GFLOP/s is printed beside the float32 1024^3
matmul rate of jnp and of torch measured in the same run.

Sampling: ``pixelcnn.sample(key, params, n, method=...)`` (each jitted once around ``sample``, compiled
ahead and timed apart): ``"naive"`` reruns the whole network on the whole canvas for each of the 784
pixels; ``"cached"`` keeps every layer's output and computes one new row of each vertical layer per image
row and one new column of each horizontal layer per pixel. Both draw pixel p with ``fold_in(key, p)``, so for the same key they must return the same images:
asserted (exactly; on a GPU, whose default float32 precision (TF32) moves the logits by ~1e-3 and can
flip a draw that later pixels then follow, the check is repeated at ``jax.default_matmul_precision
("highest")`` when the timed images differ, and the assertion applies there). Rounds alternate the two
methods; the median per method is reported, and the speed-up cached / naive. Without ``--quick`` a PyTorch naive sampler (eager, ``no_grad``, the whole network per
pixel on the whole canvas) runs once for reference (``--no-torch-sample`` skips it).

Threads: as ``scripts/bench_gan.py``: ``--threads 1`` (default) gives each library one compute thread
and pins the process to one core; ``--threads N`` gives PyTorch N threads and XLA its default pool;
``--threads 0`` keeps the libraries' defaults (``scripts/device_check.sh`` on a GPU; PyTorch then runs
on CUDA when JAX runs on a GPU and PyTorch has CUDA). Training rounds are interleaved (a, b, c, then
b, c, a, ...; a 0.5 s pause before each) after one untimed warm-up round per loop, so that load from
other processes hits all loops alike; images/s = images consumed per second (steps/s x batch), ratios
are ratios of medians.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import core_rounds, median_time, print_machine  # noqa: E402
from bench_gan import matmul_rates, setup_threads  # noqa: E402
from _torch import REPORTS, compile_lines, compiled_step  # noqa: E402

BATCH = 64
LR = 1e-3
LOOPS = ("jaxgen scan", "PyTorch eager", "PyTorch compiled")


def make_config():
    from jaxgen.models import pixelcnn

    return pixelcnn.PixelCNNConfig()


def load_data(n: int) -> np.ndarray:
    """``(n, 28, 28, 1)`` float32 grey values in [0, 1]: MNIST's first ``n`` training images."""
    from jaxgen.data import load_mnist

    x = load_mnist("train")[0][:n]
    return (x.reshape(len(x), 28, 28, 1) / np.float32(255.0)).astype(np.float32)


def forward_macs(cfg) -> int:
    """Multiply-adds of one forward pass of the gated network over one image (taps over the padding counted)."""
    H, W, _ = cfg.image_shape
    p, macs = cfg.features, 0
    for i in range(cfg.n_layers):
        k = cfg.first_kernel if i == 0 else cfg.kernel_size
        c, cin = k // 2, (1 if i == 0 else p)
        h_taps = c if i == 0 else c + 1
        # vertical, link, horizontal, h_out
        macs += (c + 1) * k * cin * 2 * p + 2 * p * 2 * p + h_taps * cin * 2 * p + p * p
    macs += p * cfg.out_features + cfg.out_features * 1  # the head
    return macs * H * W


# ----------------------------------------------------------------------------------------- jaxgen
def jax_setup(cfg, x: np.ndarray, steps: int, seed: int = 0):
    """The loop of fit's log period; returns (fresh_state, run_round, params0, trainer)."""
    import jax
    import optax

    from jaxgen import keys
    from jaxgen.models import pixelcnn
    from jaxgen.train import LossTrainer

    params0 = pixelcnn.init(keys.stream(jax.random.key(seed), "params"), cfg)
    trainer = LossTrainer(pixelcnn.loss_fn(binarize=True), params0, optax.adam(LR))
    fresh, rounds, _ = core_rounds(trainer, x, BATCH, steps, seed)

    def run_round(state, r):
        state, (loss,) = rounds(state, r)
        return state, loss

    return fresh, run_round, params0, trainer


def fit_rate(params0, x: np.ndarray, steps: int) -> tuple[float, float]:
    """(examples/s, compile s) of ``jaxgen.train.fit`` itself for one log period of ``steps`` steps."""
    import jax
    import optax

    from jaxgen.models import pixelcnn
    from jaxgen.train import fit

    _, history = fit(pixelcnn.loss_fn(binarize=True), params0, optax.adam(LR), x, key=jax.random.key(1),
                     steps=steps, batch_size=BATCH, log_every=steps, progress=False, tensorboard=False)
    return history[0]["examples_per_s"], history[0]["compile_time_s"]


# ---------------------------------------------------------------------------------------- PyTorch
def torch_module(cfg):
    """The gated PixelCNN as a PyTorch module (NCHW), layer by layer like ``jaxgen.models.pixelcnn.PixelCNN``.

    ``forward(x)``: binary images ``(N, 1, H, W)`` -> logits ``(N, 1, H, W)``; ``log_prob(x)``: ``(N,)`` nats."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    p, L = cfg.features, cfg.n_layers

    def gate(a):
        t, s = a.chunk(2, dim=1)
        return torch.tanh(t) * torch.sigmoid(s)

    class GatedPixelCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.kernels = [cfg.first_kernel if i == 0 else cfg.kernel_size for i in range(L)]
            self.v_convs, self.h_convs = nn.ModuleList(), nn.ModuleList()
            for i, k in enumerate(self.kernels):
                c, cin = k // 2, (1 if i == 0 else p)
                self.v_convs.append(nn.Conv2d(cin, 2 * p, (c + 1, k)))
                self.h_convs.append(nn.Conv2d(cin, 2 * p, (1, c if i == 0 else c + 1)))  # mask A: c taps, then shift
            self.v_links = nn.ModuleList(nn.Conv2d(2 * p, 2 * p, 1) for _ in range(L))
            self.h_outs = nn.ModuleList(nn.Conv2d(p, p, 1) for _ in range(L))
            self.head_0 = nn.Conv2d(p, cfg.out_features, 1)
            self.head_1 = nn.Conv2d(cfg.out_features, 1, 1)

        def forward(self, x):
            s = 2.0 * x - 1.0
            v, h = s, None
            for i, k in enumerate(self.kernels):
                c = k // 2
                a = self.v_convs[i](F.pad(v, (c, c, c, 0)))  # (left, right, top, bottom): rows up to this one
                link = self.v_links[i](F.pad(a, (0, 0, 1, 0))[:, :, :-1])  # down-shift: rows strictly above
                v = gate(a)
                if i == 0:  # mask A: the c pixels left of this one (c zero columns on the left, the last dropped)
                    hc = self.h_convs[0](F.pad(s, (c, 0, 0, 0))[:, :, :, :-1])
                else:  # mask B: this pixel and the c before it
                    hc = self.h_convs[i](F.pad(h, (c, 0, 0, 0)))
                g = self.h_outs[i](gate(hc + link))
                h = g if i == 0 else h + g
            return self.head_1(torch.relu(self.head_0(torch.relu(h))))

        def log_prob(self, x):
            out = self(x)
            return (x * out - F.softplus(out)).sum(dim=(1, 2, 3))

    return GatedPixelCNN()


def copy_flax_weights(params, model) -> None:
    """Load the Flax parameters of ``params`` (a PixelCNNParams) into the PyTorch module (HWIO -> OIHW)."""
    import torch

    net = params.net

    def load(conv, p):
        conv.weight.copy_(torch.from_numpy(np.array(p["kernel"], dtype=np.float32).transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(np.array(p["bias"], dtype=np.float32)))

    with torch.no_grad():
        for i in range(len(model.kernels)):
            load(model.v_convs[i], net[f"v_convs_{i}"]["conv"])
            load(model.h_convs[i], net[f"h_convs_{i}"]["conv"])
            load(model.v_links[i], net[f"v_links_{i}"])
            load(model.h_outs[i], net[f"h_outs_{i}"])
        load(model.head_0, net["head_0"])
        load(model.head_1, net["head_1"])


def check_same_function(params, model, x: np.ndarray, n: int = 16) -> dict:
    """Log-likelihoods and loss gradients of the Flax and PyTorch networks on the same binary images.

    Returns the largest relative difference of the log-likelihoods and, over the parameter arrays,
    the largest ``max |g_jax - g_torch| / max |g_jax|``."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxgen.models import pixelcnn
    from jaxgen.models.pixelcnn.model import _log_prob

    xb = (x[:n] > np.asarray(jax.random.uniform(jax.random.key(7), x[:n].shape))).astype(np.float32)
    with jax.default_matmul_precision("highest"):  # a GPU's TF32 default would differ at 1e-3 (no-op on CPU)
        lj = np.asarray(pixelcnn.log_prob(params, xb))
        gj = jax.grad(lambda net: -jnp.mean(_log_prob(params.replace(net=net), jnp.asarray(xb))))(params.net)
    xt = torch.from_numpy(xb.transpose(0, 3, 1, 2).copy())
    model.zero_grad(set_to_none=True)
    lt = model.log_prob(xt)
    (-lt.mean()).backward()
    ll_rel = float(np.max(np.abs(lj - lt.detach().numpy()) / np.abs(lj)))
    named = {
        **{f"v_convs_{i}": model.v_convs[i] for i in range(len(model.kernels))},
        **{f"h_convs_{i}": model.h_convs[i] for i in range(len(model.kernels))},
        **{f"v_links_{i}": model.v_links[i] for i in range(len(model.kernels))},
        **{f"h_outs_{i}": model.h_outs[i] for i in range(len(model.kernels))},
        "head_0": model.head_0, "head_1": model.head_1,
    }
    g_rel = 0.0
    for name, conv in named.items():
        g = gj[name]["conv"] if "conv" in gj[name] else gj[name]
        for a, b in ((np.asarray(g["kernel"]).transpose(3, 2, 0, 1), conv.weight.grad.numpy()),
                     (np.asarray(g["bias"]), conv.bias.grad.numpy())):
            g_rel = max(g_rel, float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-30)))
    model.zero_grad(set_to_none=True)
    return {"log_prob_rel": ll_rel, "grad_rel": g_rel, "log_prob_mean_jaxgen": float(np.mean(lj)),
            "log_prob_mean_torch": float(lt.detach().mean())}


def torch_setup(cfg, params0, x: np.ndarray, steps: int, device: str, seed: int = 0) -> dict:
    """{name: (fresh, run_round)} for PyTorch eager and compiled."""
    import torch

    torch.manual_seed(seed)
    data = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)

    def fresh():
        model = torch_module(cfg)
        copy_flax_weights(params0, model)
        model = model.to(device).train()
        return model, torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)

    def step(model, opt, grey):
        xb = torch.bernoulli(grey)  # dynamic binarisation
        loss = -model.log_prob(xb).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def make_round(step_fn):
        def run_round(state, r):
            perm = torch.randperm(len(data), device=device)[: steps * BATCH]
            total = 0.0
            for i in range(steps):
                total = total + step_fn(*state, data[perm[i * BATCH:(i + 1) * BATCH]])  # no sync inside the round
            return state, float(total) / steps

        return run_round

    return {"PyTorch eager": (fresh, make_round(step)), "PyTorch compiled": (fresh, make_round(compiled_step(step, fresh, "PixelCNN step")))}


def torch_naive_sample(cfg, params, n: int, device: str) -> tuple[float, np.ndarray]:
    """(seconds, images ``(n, H, W, 1)``) of a PyTorch naive sampler: the whole network per pixel."""
    import torch

    model = torch_module(cfg)
    copy_flax_weights(params, model)
    model = model.to(device).eval()
    H, W, _ = cfg.image_shape
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        canvas = torch.zeros(n, 1, H, W, device=device)
        model(canvas)  # warm-up (allocations, cuDNN choices)
        sync()
        t0 = time.perf_counter()
        for i in range(H):
            for j in range(W):
                prob = torch.sigmoid(model(canvas)[:, 0, i, j])
                canvas[:, 0, i, j] = (torch.rand(n, generator=gen, device=device) < prob).float()
        sync()
        dt = time.perf_counter() - t0
    return dt, canvas.permute(0, 2, 3, 1).cpu().numpy()


# ------------------------------------------------------------------------------------------- runs
def bench_train(cfg, args, torch_ok: bool, device: str) -> dict:
    import jax

    from jaxgen.models import pixelcnn

    steps = args.steps
    x = load_data(max(steps * BATCH, BATCH))
    fresh, run_round, params0, _ = jax_setup(cfg, x, steps)
    loops = {"jaxgen scan": [run_round, fresh()]}
    macs = forward_macs(cfg)
    flop_step = 6.0 * macs * BATCH
    n_params = pixelcnn.num_params(params0)
    print(f"\n[train] gated PixelCNN {cfg}, dynamically binarised MNIST, batch {BATCH}, Adam lr {LR}; {steps} steps "
          f"per round, {args.rounds} timed rounds per loop (interleaved); forward {macs / 1e6:.1f} M multiply-adds "
          f"per image, about {flop_step / BATCH / 1e9:.2f} GFLOP per image per step")
    result = {"config": dataclasses.asdict(cfg), "batch": BATCH, "lr": LR,
              "steps_per_round": steps, "rounds": args.rounds, "params": {"jaxgen": n_params},
              "forward_macs_per_image": macs, "flop_per_step": flop_step, "loops": {}, "ratios": {}}
    print(f"  parameters: jaxgen {n_params:,}", end="")
    if torch_ok:
        model = torch_module(cfg)
        t_params = sum(p.numel() for p in model.parameters())
        print(f"; PyTorch {t_params:,}")
        assert t_params == n_params, f"parameter counts differ: jaxgen {n_params}, PyTorch {t_params}"
        result["params"]["PyTorch"] = t_params
        copy_flax_weights(params0, model)
        same = check_same_function(params0, model, x)
        print(f"  same function from the same weights, 16 binary images: log-likelihood jaxgen "
              f"{same['log_prob_mean_jaxgen']:.4f}, PyTorch {same['log_prob_mean_torch']:.4f} nats (mean); largest "
              f"relative difference {same['log_prob_rel']:.1e}; loss gradients differ by at most "
              f"{same['grad_rel']:.1e} of each array's largest entry")
        assert same["log_prob_rel"] < 1e-4, "the PyTorch network does not compute the Flax one's log-likelihood"
        assert same["grad_rel"] < 1e-3, "the PyTorch network's gradients differ from the Flax one's"
        result["same_function"] = same
        for name, (t_fresh, t_round) in torch_setup(cfg, params0, x, steps, device).items():
            if name == "PyTorch compiled" and args.no_compile:
                continue
            loops[name] = [t_round, t_fresh()]
    else:
        print()

    times = {k: [] for k in loops}
    losses, first = {}, {}
    names = list(loops)
    for r in range(args.rounds + 1):  # round 0: warm-up (compiles), not timed
        for name in names[r % len(names):] + names[:r % len(names)]:
            entry = loops[name]
            time.sleep(0.5)
            t0 = time.perf_counter()
            try:
                entry[1], losses[name] = entry[0](entry[1], r)
            except Exception as e:  # e.g. no C++ compiler for torch.compile on this machine: report, go on
                if name == "jaxgen scan":
                    raise
                print(f"  !! {name} failed, dropped: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                names.remove(name)
                loops.pop(name)
                continue
            dt = time.perf_counter() - t0
            (times[name].append(dt) if r else first.__setitem__(name, dt))
    jax.block_until_ready(loops["jaxgen scan"][1])
    rates = matmul_rates(torch_ok, device)
    result["matmul_gflops"] = rates
    print("  float32 1024^3 matmul rate (same run): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))
    for name in loops:
        med = statistics.median(times[name])
        gflops = flop_step * steps / med / 1e9
        result["loops"][name] = {"images_per_s_median": steps * BATCH / med, "steps_per_s_median": steps / med,
                                 "round_s_median": med, "round_s_all": times[name], "first_round_s": first[name],
                                 "gflops": gflops, "loss_last_round": losses[name]}
    base = result["loops"]
    for ref in ("PyTorch eager", "PyTorch compiled"):
        if ref in base:
            result["ratios"][f"jaxgen / {ref}"] = (base["jaxgen scan"]["images_per_s_median"]
                                                  / base[ref]["images_per_s_median"])
    if not args.no_fit_check:
        rate, compile_s = fit_rate(params0, x, steps)
        result["fit"] = {"examples_per_s": rate, "compile_time_s": compile_s}
    return result


def bench_sample(cfg, args, torch_ok: bool, device: str) -> dict:
    import jax

    from jaxgen.models import pixelcnn

    n = args.n_sample
    params = pixelcnn.init(jax.random.key(0), cfg)
    key = jax.random.key(11)
    print(f"\n[sample] pixelcnn.sample(key, params, {n}, method=...) from the initial weights; {args.sample_rounds} "
          "timed round(s) per method, alternating, after compiling each ahead")
    def compile_sampler(m):
        return jax.jit(lambda k, p: pixelcnn.sample(k, p, n, method=m)).lower(key, params).compile()

    compiled, compile_s = {}, {}
    for m in pixelcnn.METHODS:
        t0 = time.perf_counter()
        compiled[m] = compile_sampler(m)
        compile_s[m] = time.perf_counter() - t0
    times = {m: [] for m in pixelcnn.METHODS}
    images = {}
    methods = list(pixelcnn.METHODS)
    for r in range(args.sample_rounds):
        for m in methods[r % 2:] + methods[:r % 2]:
            time.sleep(0.5)
            t0 = time.perf_counter()
            images[m] = jax.block_until_ready(compiled[m](key, params))
            times[m].append(time.perf_counter() - t0)
    a, b = (np.asarray(images[m]) for m in ("naive", "cached"))
    n_diff = int(np.sum(a != b))
    print(f"  naive and cached, same key: {n_diff} of {a.size} pixels differ")
    result = {"n": n, "rounds": args.sample_rounds, "methods": {}, "pixels_differing": n_diff}
    if n_diff and jax.default_backend() != "cpu":
        # A GPU's default float32 precision (TF32) changes the logits at ~1e-3: a draw near its threshold can
        # flip, and every later pixel is drawn given it. Full float32 precision must give the same images.
        with jax.default_matmul_precision("highest"):
            a, b = (np.asarray(compile_sampler(m)(key, params)) for m in ("naive", "cached"))
        n_diff = result["pixels_differing_highest_precision"] = int(np.sum(a != b))
        print(f"  (default precision on {jax.default_backend()}: round-off flipped a draw); at 'highest' matmul "
              f"precision {n_diff} of {a.size} pixels differ")
    assert n_diff == 0, f"naive and cached sampling differ in {n_diff} pixels for the same key"
    for m in pixelcnn.METHODS:
        med = statistics.median(times[m])
        result["methods"][f"jaxgen {m}"] = {"images_per_s": n / med, "call_s_median": med, "call_s_all": times[m],
                                            "compile_s": compile_s[m]}
    result["speedup_cached_over_naive"] = statistics.median(times["naive"]) / statistics.median(times["cached"])
    if torch_ok and not args.no_torch_sample:
        dt, img = torch_naive_sample(cfg, params, n, device)
        result["methods"]["PyTorch naive (eager)"] = {"images_per_s": n / dt, "call_s_median": dt, "call_s_all": [dt],
                                                      "compile_s": None}
        result["torch_sample_mean_pixel"] = float(img.mean())
    return result


def print_table(train: dict, sample: dict) -> None:
    loops = train["loops"]
    print(f"\n== training throughput (batch {train['batch']}, median of {train['rounds']} rounds of "
          f"{train['steps_per_round']} steps) ==")
    print(f"  {'loop':18s} {'images/s':>9s} {'steps/s':>8s} {'GFLOP/s':>8s} {'jaxgen/this':>11s} {'warm-up s':>9s} "
          f"{'loss (nats)':>11s}")
    for name, rec in loops.items():
        ratio = loops["jaxgen scan"]["images_per_s_median"] / rec["images_per_s_median"]
        print(f"  {name:18s} {rec['images_per_s_median']:9.1f} {rec['steps_per_s_median']:8.3f} {rec['gflops']:8.1f} "
              f"{ratio:10.2f}x {rec['first_round_s']:9.1f} {rec['loss_last_round']:11.2f}")
    if "fit" in train:
        print(f"  {'jaxgen.train.fit':18s} {train['fit']['examples_per_s']:9.1f}   (one period of "
              f"{train['steps_per_round']} steps, compile {train['fit']['compile_time_s']:.1f} s excluded; not "
              "interleaved)")
    print("  matmul (same run): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in train["matmul_gflops"].items()))
    for k, v in train["ratios"].items():
        print(f"  ratio {k}: {v:.2f}x (images/s, ratio of medians)")
    print(f"\n== sampling, n = {sample['n']} images of 28 x 28 (median of {sample['rounds']} call(s)) ==")
    print(f"  {'method':22s} {'images/s':>9s} {'s per call':>10s} {'compile s':>9s}")
    for name, rec in sample["methods"].items():
        comp = "" if rec["compile_s"] is None else f"{rec['compile_s']:9.1f}"
        print(f"  {name:22s} {rec['images_per_s']:9.2f} {rec['call_s_median']:10.2f} {comp:>9s}")
    same = f"{sample['pixels_differing']} pixels differ"
    if "pixels_differing_highest_precision" in sample:
        same += f" at default precision, {sample['pixels_differing_highest_precision']} at 'highest'"
    print(f"  speed-up cached / naive: {sample['speedup_cached_over_naive']:.1f}x; same key -> same images ({same})")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2 steps per round, 2 rounds, 2 sampled images in 1 round; no torch.compile, fit or "
                         "PyTorch sampler")
    ap.add_argument("--steps", type=int, default=None, help="training steps per round (default 5, quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="timed training rounds per loop (default 5, quick 2)")
    ap.add_argument("--n-sample", type=int, default=None, help="images per sampling call (default 16, quick 2)")
    ap.add_argument("--sample-rounds", type=int, default=None, help="timed calls per sampling method (default 2, "
                                                                    "quick 1)")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per library (0: library defaults)")
    ap.add_argument("--no-torch", action="store_true", help="jaxgen only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop")
    ap.add_argument("--no-fit-check", action="store_true", help="skip the one jaxgen.train.fit period after the rounds")
    ap.add_argument("--no-torch-sample", action="store_true", help="skip the PyTorch naive sampler")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.steps = args.steps or (2 if args.quick else 5)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.n_sample = args.n_sample or (2 if args.quick else 16)
    args.sample_rounds = args.sample_rounds or (1 if args.quick else 2)
    if args.quick:
        args.no_compile = args.no_fit_check = args.no_torch_sample = True
    for name in ("steps", "rounds", "n_sample", "sample_rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    torch, device = setup_threads(args.threads, args.no_torch)
    torch_ok = torch is not None

    import jax
    print_machine(["torch"])
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}"
          + (f"; PyTorch {torch.__version__} on {device} with {torch.get_num_threads()} threads" if torch_ok else "")
          + "; " + (f"threads={args.threads}" if args.threads else "default threads"))
    cfg = make_config()
    out = {"threads": args.threads, "quick": args.quick, "torch_device": device}
    out["train"] = bench_train(cfg, args, torch_ok, device)
    out["sample"] = bench_sample(cfg, args, torch_ok, device)
    print_table(out["train"], out["sample"])
    for line in compile_lines():
        print(line)
    out["torch_compile"] = REPORTS
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
