"""Timing torch eager per IR node: the torch side of latency calibration.

onnxruntime has a profiler that times every node; for torch eager on the CPU a cheaper
and exact route exists: the model is an ``fx.GraphModule`` whose nodes carry the IR node
they compute (``meta["ir"]``, set by the torch lowering), and eager CPU ops run
synchronously, so a copy of the forward with a clock read (:func:`_tick`, one
``perf_counter_ns`` appended to a list: well under a microsecond) after the input and
after every node times each node as the interval since the previous tick. What a tick
costs is taken out per node as the onnxruntime profiler's cost is
(:func:`~archspec.latency.attribution.profiler_cost`: timed sum minus the unticked
wall time, per node).

The model is built and run as ``archspec bench --backend torch`` runs it: the torch
backend's module (seeded), ``eval()``, ``torch.inference_mode``, ``torch.set_num_threads``.
"""
from __future__ import annotations

import time

_TICKS: list[int] = []


def _tick() -> None:
    _TICKS.append(time.perf_counter_ns())


def instrumented(model):
    """A copy of ``model`` (an fx ``GraphModule`` from the torch backend) that ticks after
    its input and after every node it computes, and per interval the IR node it times
    (None for a node without one)."""
    import copy

    from torch import fx

    graph = copy.deepcopy(model.graph)
    names: list = []
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    work = [n for n in graph.nodes if n.op in ("call_module", "call_function", "call_method")]
    with graph.inserting_after(placeholders[-1]):
        graph.call_function(_tick)
    for n in work:
        with graph.inserting_after(n):
            graph.call_function(_tick)
        names.append(n.meta.get("ir"))
    graph.lint()
    return fx.GraphModule(model, graph), names


def pin_threads(threads: int) -> None:
    """torch's intra-op threads, as ``archspec bench`` sets them."""
    from ..bench import Settings, _pin_threads

    _pin_threads(Settings("torch", threads))


def node_runs(graph, threads: int, *, runs: int, warmup: int, seed: int = 0,
              batch: int = 1) -> tuple[list[dict], dict]:
    """Run ``graph``'s torch model ``warmup`` + ``runs`` times on ``batch`` images with
    a tick per node; per timed run: IR node -> us (a node without an IR name is charged
    to the one before it), and per IR node the fx nodes that compute it."""
    import torch

    from ..backends import get_backend

    pin_threads(threads)
    model = get_backend("torch").build(graph, seed=seed).eval()
    timed, names = instrumented(model)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *graph.input_shape, generator=gen)
    counts: dict = {}
    last = None
    owners = []
    for name in names:
        last = name if name is not None else last
        owners.append(last)
        if last is not None:
            counts[last] = counts.get(last, 0) + 1
    from ..bench import flush_denormals

    out = []
    with torch.inference_mode(), flush_denormals():
        for i in range(warmup + runs):
            _TICKS.clear()
            timed(x)
            ticks = list(_TICKS)
            if i < warmup:
                continue
            per: dict = {}
            for name, a, b in zip(owners, ticks, ticks[1:]):
                if name is not None:
                    per[name] = per.get(name, 0.0) + (b - a) / 1000.0
            out.append(per)
    _TICKS.clear()
    return out, counts
