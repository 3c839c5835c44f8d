"""The PyTorch ``torch.compile`` baseline the benchmarks share, with its graph breaks reported.

A compiled baseline is only as strong as the graphs Dynamo captures: a training step that calls
``loss.backward()`` and ``opt.step()`` splits into several graphs, and every break runs Python in
between. :func:`compiled_step` compiles a step the way a user would (``torch.compile(step)``, the
default mode, Inductor) and, on its first call, runs ``torch._dynamo.explain`` on a throwaway copy
of the state, so that each benchmark can print how many graphs and breaks its baseline has and why
(:func:`compile_lines`).
"""
from __future__ import annotations

from typing import Callable

MODE = "default"  # torch.compile's default mode: what a user who writes torch.compile(step) gets
REPORTS: dict[str, dict] = {}


def explain(step: Callable, args: tuple) -> dict:
    """Dynamo's view of ``step(*args)``: graphs, graph breaks, ops and the first break reasons."""
    import torch

    e = torch._dynamo.explain(step)(*args)
    reasons = []
    for b in e.break_reasons:
        reason = str(getattr(b, "reason", b)).strip().splitlines()[0][:160]
        if reason not in reasons:
            reasons.append(reason)
    return {"mode": MODE, "graphs": int(e.graph_count), "graph_breaks": int(e.graph_break_count),
            "ops": int(e.op_count), "break_reasons": reasons[:4]}


def compiled_step(step: Callable, fresh: Callable, name: str) -> Callable:
    """``torch.compile(step)``; its first call also records :func:`explain` of ``step`` on
    ``(*fresh(), *batch)`` (a throwaway state: the explained step trains nothing that is timed)
    under ``REPORTS[name]``."""
    import torch

    compiled = None

    def call(*args):
        nonlocal compiled
        if compiled is None:  # first call: explain on a throwaway state, then compile from scratch
            state = fresh()
            REPORTS[name] = explain(step, (*state, *args[len(state):]))
            torch._dynamo.reset()  # explain's graphs must not stand in for the compiled ones
            compiled = torch.compile(step, mode=None if MODE == "default" else MODE)
        return compiled(*args)

    return call


def compile_lines() -> list[str]:
    """One line per explained baseline: mode, graphs, breaks and why."""
    out = []
    for name, r in REPORTS.items():
        why = "; ".join(r["break_reasons"]) or "none"
        out.append(f"torch.compile {name} (mode {r['mode']}): {r['graphs']} graph(s), {r['graph_breaks']} graph "
                   f"break(s), {r['ops']} ops; breaks: {why}")
    return out
