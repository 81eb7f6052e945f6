"""Activation memory at 224: estimates against measurements, and what the t-slice mode
costs in time.

    .venv/bin/python benchmarks/bench_memory.py [--specs mobilenetv2,...] [--repeats 7]
                                                [--threads 1] [--batch 1] [--markdown]

1. For every shipped spec (or --specs): the op-by-op estimate (analysis/memory.py) against
   the peak of live activation storages measured during an eval, no-grad torch forward
   (backends/torch_memory.measure), and the training-time estimate against the bytes
   autograd saves (batch 2, BatchNorm needs it).
2. For MobileNetV2: the memory-efficient mode (SlicedRunner) for t = 1..6: measured
   peak against the fused-block estimate, and median wall time per forward against the
   normal model and against the same node-by-node runner without slicing, run
   interleaved (normal, runner, normal, ...) so that load on a shared machine hits both.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import archspec
from archspec.analysis import memory as M
from archspec.backends import get_backend
from archspec.backends.torch_rules import training
from archspec.backends.torch_memory import SlicedRunner, measure, saved_for_backward
from archspec.spec.loader import SHIPPED


def _build(name, res):
    g = archspec.load(name, resolution=res).compile()
    model = get_backend("torch").build(g, seed=0).eval()
    return g, model


def estimates_vs_measured(names, res, batch) -> list[str]:
    lines = ["| spec | op-by-op estimate | measured | diff | training estimate | "
             "saved (measured) | diff |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        g, model = _build(name, res)
        x = torch.randn(batch, g[g.inputs[0]].shape[0], res, res)
        with torch.no_grad():
            meas = measure(model, x).peak_bytes
        est = M.op_by_op(g, batch=batch).peak_bytes
        x2 = torch.randn(2, *x.shape[1:])
        saved = saved_for_backward(model, x2)
        model.eval()
        tr = training(g, batch=2).peak_bytes
        lines.append(f"| {name} | {est:,} | {meas:,} | {meas / est - 1:+.2%} | {tr:,} | "
                     f"{saved:,} | {saved / tr - 1:+.2%} |")
    return lines


def _time(fn, x, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn(x)
    return (time.perf_counter() - t0) / n * 1e3


def sliced(name, res, batch, repeats, inner) -> list[str]:
    g, model = _build(name, res)
    x = torch.randn(batch, 3, res, res)
    with torch.no_grad():
        normal_peak = measure(model, x).peak_bytes
        expected = model(x)
        runners = {"node by node": SlicedRunner(model, g, None)}
        runners.update({f"t={t}": SlicedRunner(model, g, t) for t in range(1, 7)})
        times = {k: [] for k in ["normal", *runners]}
        for _ in range(repeats):
            for k, fn in [("normal", model), *runners.items()]:
                times[k].append(_time(fn, x, inner))
        base = statistics.median(times["normal"])
        lines = [f"normal model: peak {normal_peak:,} B (op-by-op estimate "
                 f"{M.op_by_op(g, batch=batch).peak_bytes:,} B), "
                 f"{base:.2f} ms per forward", "",
                 "| mode | fused estimate | measured peak | diff | vs normal peak | "
                 "max abs err | ms / forward | vs normal |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for k, runner in runners.items():
            meas = measure(runner, x).peak_bytes
            err = (runner(x) - expected).abs().max().item()
            ms = statistics.median(times[k])
            if runner.split:
                est = M.fused(g, runner.split, batch=batch).peak_bytes
                est_s, diff = f"{est:,}", f"{meas / est - 1:+.2%}"
            else:
                est_s, diff = "-", "-"
            lines.append(f"| {k} | {est_s} | {meas:,} | {diff} | {meas / normal_peak - 1:+.1%} |"
                         f" {err:.1e} | {ms:.2f} | {ms / base - 1:+.1%} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", default=None)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-specs", action="store_true", help="Only the t-slice table.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.specs.split(",") if args.specs else [p.stem for p in
                                                      sorted(SHIPPED.glob("*.yaml"))]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s), resolution {args.resolution}, batch {args.batch}\n")
    if not args.skip_specs:
        print("\n".join(estimates_vs_measured(names, args.resolution, args.batch)))
        print()
    print("\n".join(sliced("mobilenetv2", args.resolution, args.batch, args.repeats,
                           args.inner)))


if __name__ == "__main__":
    main()
