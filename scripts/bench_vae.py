"""Benchmark: VAE training throughput of jaxgen (scan epochs / per-batch steps) vs plain PyTorch on CPU.

    python scripts/bench_vae.py            # 10 000 MNIST images per epoch, 5 rounds, NLL at k=5000
    python scripts/bench_vae.py --quick    # 2 000 images, 3 rounds, k=500: seconds
    python scripts/bench_vae.py --json out.json
    python scripts/bench_vae.py --threads 0  # each library's default thread count (see below)

Model: Burda et al.'s 784-200-200-50 tanh MLPs, Bernoulli decoder, N(0, I) prior, negative ELBO
(one sample, analytic KL), dynamic binarisation of every batch, Adam(lr 1e-3, betas 0.9/0.999,
eps 1e-4), batch size 100. Three training loops on the same uint8 MNIST images:

  (a) jaxgen scan:      one epoch = one jitted program (on-device shuffle + ``lax.scan`` over the
                        steps of :func:`jaxgen.train.make_train_step`), state donated: what
                        ``jaxgen.train.fit(use_scan=True)`` runs.
  (b) jaxgen per-batch: the same jitted step called once per batch from Python, batches gathered on
                        the host (``fit(use_scan=False)``).
  (c) PyTorch eager:    the usual eager loop (``randperm``, ``torch.bernoulli``, ``loss.backward()``,
                        ``Adam.step()``).
  (d) PyTorch compiled: the same step (binarisation, forward, backward and the Adam update) as one
                        ``torch.compile``-d function (Inductor, the strongest easily available PyTorch
                        setting; its compile time is reported separately, like JAX's).

Speed against the hardware: one training step costs about 2.54 MFLOP per image (3 x 2 x 423 600
multiply-adds: forward, and twice that backward); each loop's achieved GFLOP/s is printed beside
the float32 matmul rate measured with jnp in the same run, both of a large square GEMM and of the
step's own GEMM shapes at batch 100 (forward and backward of the five layers), so that the fraction
of what the chips (and GEMMs of this thin shape) can do shows.

Threads: ``--threads 1`` (default) gives each library one compute thread (``torch.set_num_threads``;
XLA's ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``) and pins the process to
one core (Linux ``sched_setaffinity``; XLA otherwise still runs some work on helper threads).
``--threads N`` (N > 1) gives PyTorch N threads and leaves XLA its default pool (one thread per core). On a shared, loaded
2-core machine PyTorch's default OpenMP pool (2 threads) collapses to ~200 images/s from busy-wait
contention, which would flatter jaxgen; one thread each is the steady, fair comparison (XLA gains
nothing from more threads at this size either). ``--threads 0`` keeps the libraries' defaults.

Epochs are interleaved (a, b, c, d, then b, c, d, a, ...: the order rotates, with a 0.5 s pause
before each epoch) after one untimed warm-up epoch each (JAX compile excluded), so that load from other processes hits all loops alike; we report medians over the
rounds and the ratios of medians. Then the NLL evaluation throughput of ``vae.log_prob`` (images/s
and importance samples/s at k samples per image). PyTorch is imported only for (c); when it is
missing the script says how to install it and skips (c).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import core_rounds, median_time, print_machine  # noqa: E402
from _torch import REPORTS, compile_lines, compiled_step  # noqa: E402

HIDDEN, LATENT, BATCH = (200, 200), 50, 100
_MACS = 784 * 200 + 200 * 200 + 2 * 200 * 50 + 50 * 200 + 200 * 200 + 200 * 784  # forward, per image
FLOP_PER_IMAGE = 3 * 2 * _MACS  # forward + backward (twice the forward): ~2.54 MFLOP


def _matmul_rates(repeats: int = 7) -> tuple[float, float]:
    """float32 GFLOP/s with jnp on the default device: a 1024^3 GEMM, and the step's GEMMs at batch
    100 (each layer's forward x @ W, and backward g @ W^T and x^T @ g), chained in one program."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)

    a = jax.device_put(rng.standard_normal((1024, 1024)).astype(np.float32))
    square = 2 * 1024**3 / median_time(jax.jit(lambda a: a @ a), a, repeats=repeats) / 1e9
    dims = [(784, 200), (200, 200), (200, 100), (50, 200), (200, 200), (200, 784)]  # (mean, log_var) as one 200x100
    ws = [jax.device_put(rng.standard_normal(d).astype(np.float32) * 0.05) for d in dims]
    xs = [jax.device_put(rng.standard_normal((BATCH, d[0])).astype(np.float32)) for d in dims]
    gs = [jax.device_put(rng.standard_normal((BATCH, d[1])).astype(np.float32)) for d in dims]
    steps = 50

    @jax.jit
    def chain(ws, xs, gs):
        def body(c, _):
            tot = c
            for w, x, g in zip(ws, xs, gs):
                # max, not sum: XLA may rewrite sum(a @ b) into a cheaper product of sums
                tot = tot + jnp.max((x + c) @ w) + jnp.max(g @ w.T) + jnp.max(x.T @ (g + c))
            return tot * 1e-30, None
        return jax.lax.scan(body, jnp.zeros((), jnp.float32), None, length=steps)[0]

    flop = steps * 3 * 2 * BATCH * sum(i * o for i, o in dims)
    return square, flop / median_time(chain, ws, xs, gs, repeats=repeats) / 1e9


def _jax_setup(x_u8: np.ndarray, seed: int):
    import jax
    import jax.numpy as jnp
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxgen.models import vae
    from jaxgen.sharding import data_mesh
    from jaxgen.train import LossTrainer, create_train_state, make_train_step

    params = vae.init(jax.random.key(seed), vae.VAEConfig(latent_dim=LATENT, hidden=HIDDEN, activation="tanh"))
    opt = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-4)
    loss = vae.loss_fn("elbo", binarize=True)
    n_batches = len(x_u8) // BATCH
    # the scan path: fit()'s own loop (one jitted lax.scan per epoch over device-resident data)
    fresh_scan, scan_round, _ = core_rounds(LossTrainer(loss, params, opt), x_u8, BATCH, n_batches, seed=seed)
    step_jit = jax.jit(make_train_step(loss, opt), donate_argnums=0)
    order = jax.jit(lambda k: jax.random.permutation(k, len(x_u8))[: n_batches * BATCH].reshape(n_batches, BATCH))
    replicated = NamedSharding(data_mesh(jax.devices()[:1]), P())

    def fresh():  # a private copy (the steps donate their input state), placed as fit() places it
        return jax.device_put(jax.tree.map(jnp.copy, create_train_state(jax.random.key(seed + 1), params, opt)), replicated)

    def run_scan(state, epoch):
        state, (loss_mean,) = scan_round(state, epoch)
        return state, loss_mean

    def run_batches(state, epoch):
        idx = np.asarray(order(jax.random.key(epoch)))
        losses = []
        for i in range(n_batches):
            state, m = step_jit(state, jax.device_put(x_u8[idx[i]]))
            losses.append(m["loss"])
        return state, float(np.mean(np.asarray(jax.block_until_ready(losses))))

    return fresh_scan, fresh, run_scan, run_batches, vae


def _torch_setup(x_u8: np.ndarray, seed: int, threads: int):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: skipping the PyTorch loop. Install the CPU wheel with\n"
              "    .venv/bin/python -m pip install torch==2.13.0\n"
              "(or: pip install torch --index-url https://download.pytorch.org/whl/cpu)")
        return None
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(784, HIDDEN[0]), nn.Tanh(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.Tanh())
            self.mean, self.log_var = nn.Linear(HIDDEN[1], LATENT), nn.Linear(HIDDEN[1], LATENT)
            self.dec = nn.Sequential(nn.Linear(LATENT, HIDDEN[1]), nn.Tanh(), nn.Linear(HIDDEN[1], HIDDEN[0]), nn.Tanh(),
                                     nn.Linear(HIDDEN[0], 784))

        def loss(self, x):
            h = self.enc(x)
            m, lv = self.mean(h), self.log_var(h)
            z = m + torch.exp(0.5 * lv) * torch.randn_like(m)
            rec = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
            kl = 0.5 * (torch.exp(lv) + m**2 - 1.0 - lv).sum(1)
            return -(rec - kl).mean()

    probs = torch.from_numpy(x_u8.astype(np.float32) / 255.0)
    n_batches = len(x_u8) // BATCH

    def fresh():
        model = VAE()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)

    def eager_step(model, opt, p):
        x = torch.bernoulli(p)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x)
        loss.backward()
        opt.step()
        return loss.detach()

    def make_epoch(step):
        def run_epoch(state, epoch):
            model, opt = state[:2]
            perm = torch.randperm(len(probs))
            total = 0.0
            for i in range(n_batches):
                total += float(step(model, opt, probs[perm[i * BATCH:(i + 1) * BATCH]]))
            return state, total / n_batches

        return run_epoch

    compiled = compiled_step(eager_step, fresh, "VAE step")  # one compiled program per (model, optimizer) pair

    def fresh_compiled():
        return fresh()

    return {"PyTorch eager": (fresh, make_epoch(eager_step)),
            "PyTorch compiled": (fresh_compiled, make_epoch(compiled))}, torch.__version__, torch.get_num_threads()


def main(argv=None) -> dict:
    global BATCH  # --batch sets the module's batch size (the loops read it)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-train", type=int, default=None, help="images per epoch (default 10000, quick 2000; at most 60000)")
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per loop (default 5, quick 3)")
    ap.add_argument("--k", type=int, default=None, help="importance samples for the NLL throughput (default 5000, quick 500)")
    ap.add_argument("--n-eval", type=int, default=None, help="test images for the NLL throughput (default 200, quick 100)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per library (0: library defaults)")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"minibatch size (default {BATCH}; Burda et al.: 20)")
    ap.add_argument("--no-torch", action="store_true", help="jaxgen loops only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile loop (its compile takes a minute)")
    args = ap.parse_args(argv)
    BATCH = args.batch
    if args.threads == 1:  # before JAX starts: XLA reads its flags once
        import os

        if hasattr(os, "sched_setaffinity"):  # one core for the whole process: XLA's helper threads included
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    n_train = args.n_train or (2000 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 5)
    k = args.k or (500 if args.quick else 5000)
    n_eval = args.n_eval or (100 if args.quick else 200)

    import jax

    from jaxgen.data import load_mnist

    x_u8 = load_mnist("train")[0]
    if n_train > len(x_u8):  # Burda et al.'s 59 600: the 50k train split, then the validation split's first images
        x_u8 = np.concatenate([x_u8, load_mnist("valid")[0]])
    x_u8 = x_u8[:n_train].reshape(-1, 784)
    x_test = load_mnist("test")[0][:n_eval].reshape(-1, 784)
    fresh_scan, fresh, run_scan, run_batches, vae = _jax_setup(x_u8, 0)
    loops = {"jaxgen scan": [run_scan, fresh_scan()], "jaxgen per-batch": [run_batches, fresh()]}
    torch_info = None if args.no_torch else _torch_setup(x_u8, 0, args.threads)
    if torch_info is not None:
        torch_loops, t_version, t_threads = torch_info
        if args.no_compile:
            torch_loops.pop("PyTorch compiled")
        for name, (t_fresh, t_epoch) in torch_loops.items():
            loops[name] = [t_epoch, t_fresh()]
    print_machine(["torch"])
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}"
          + (f"; PyTorch {t_version} with {t_threads} threads" if torch_info else "")
          + f"; {n_train} images/epoch, batch {BATCH}, {rounds} timed epochs each (interleaved); "
          + (f"threads={args.threads}" if args.threads else "default threads"))

    times = {name: [] for name in loops}
    losses = {name: [] for name in loops}
    first = {}
    names = list(loops)
    for epoch in range(rounds + 1):  # epoch 0: warm-up (compile), not timed
        # the order rotates every round and each epoch starts after a pause, so that no loop always runs
        # right after the same other one (PyTorch's worker threads may still spin for a while after its epoch)
        for name in names[epoch % len(names):] + names[:epoch % len(names)]:
            entry = loops[name]
            fn, state = entry
            time.sleep(0.5)
            t0 = time.perf_counter()
            state, loss = fn(state, epoch)
            dt = time.perf_counter() - t0
            entry[1] = state
            losses[name].append(loss)
            if epoch:
                times[name].append(dt)
            else:
                first[name] = dt
    n_used = (n_train // BATCH) * BATCH
    square, shaped = _matmul_rates()
    print(f"  float32 matmul rate (jnp, same run): {square:.1f} GFLOP/s (1024 x 1024 x 1024), {shaped:.1f} GFLOP/s "
          f"(the step's GEMM shapes at batch {BATCH})")
    result = {"n_train": n_train, "rounds": rounds, "batch_size": BATCH, "threads": args.threads, "train": {}, "ratios": {},
              "matmul_square_gflops": square, "matmul_step_shapes_gflops": shaped}
    for name in loops:
        med = statistics.median(times[name])
        result["train"][name] = {"images_per_s_median": n_used / med, "epoch_s_median": med,
                                 "epoch_s_all": times[name], "loss_last_epoch": losses[name][-1]}
        gflops = FLOP_PER_IMAGE * n_used / med / 1e9
        result["train"][name].update(gflops=gflops, first_epoch_s=first[name])
        print(f"  {name:17s} {n_used / med:9.0f} images/s  {gflops:6.1f} GFLOP/s = {gflops / square:4.0%} of the square / "
              f"{gflops / shaped:4.0%} of the step-shaped matmul rate (median epoch {med:.3f} s, first epoch "
              f"{first[name]:.1f} s; last-epoch loss {losses[name][-1]:.2f})")
    base = result["train"]
    result["ratios"]["scan / per-batch"] = base["jaxgen scan"]["images_per_s_median"] / base["jaxgen per-batch"]["images_per_s_median"]
    for ref in ("PyTorch eager", "PyTorch compiled"):
        if ref in base:
            for name in ("jaxgen scan", "jaxgen per-batch"):
                result["ratios"][f"{name} / {ref}"] = base[name]["images_per_s_median"] / base[ref]["images_per_s_median"]
    for name, r in result["ratios"].items():
        print(f"  ratio {name}: {r:.2f}x (images/s, ratio of medians)")

    # ---- NLL evaluation throughput (warm: one untimed call compiles)
    params = loops["jaxgen scan"][1].model.params
    xe = (x_test / 255.0 > 0.5).astype(np.float32)
    key = jax.random.key(3)
    jax.block_until_ready(vae.log_prob(params, xe, key, k=k))
    t_eval = []
    for _ in range(3):
        t0 = time.perf_counter()
        lp = jax.block_until_ready(vae.log_prob(params, xe, key, k=k))
        t_eval.append(time.perf_counter() - t0)
    med = statistics.median(t_eval)
    result["nll_eval"] = {"k": k, "n_images": n_eval, "seconds_median": med, "images_per_s": n_eval / med,
                          "samples_per_s": n_eval * k / med, "mean_log_prob": float(np.mean(np.asarray(lp)))}
    print(f"  NLL evaluation (k={k}): {n_eval / med:.1f} images/s = {n_eval * k / med:.3g} importance samples/s "
          f"(median of 3, {med:.2f} s for {n_eval} images)")
    for line in compile_lines():
        print(line)
    result["torch_compile"] = REPORTS
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
