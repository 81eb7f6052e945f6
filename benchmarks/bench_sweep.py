"""Sweep throughput: architectures costed per second from their graphs (all cores), side
by side with the usual way (build the torch model, count parameters, run FlopCounterMode).

    .venv/bin/python benchmarks/bench_sweep.py [--n 4000]

Target (issue 7): >= 1,000 MobileNetV3-Large-sized architectures per second on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import time

import archspec
from archspec.analysis.sweep import random_variants, run, vary


def torch_way(spec, variants) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    t = time.perf_counter()
    for v in variants:
        s = vary(spec, v)
        m = archspec.build(s, backend="torch").eval()
        sum(p.numel() for p in m.parameters())
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(torch.zeros(1, 3, s.resolution, s.resolution))
        fc.get_total_flops()
    return len(variants) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--spec", default="mobilenetv3_large")
    ap.add_argument("--torch-n", type=int, default=10)
    args = ap.parse_args()
    spec = archspec.load(args.spec)
    variants = random_variants(args.n, 0, spec)
    rates = {}
    for workers in (1, os.cpu_count() or 1):
        run(spec, variants[:200], workers=workers)  # warm up (and spawn once)
        t = time.perf_counter()
        run(spec, variants, workers=workers)
        rates[workers] = args.n / (time.perf_counter() - t)
    try:
        torch_rate = torch_way(spec, variants[: args.torch_n])
    except ImportError:
        torch_rate = float("nan")
    best = max(rates.values())
    print(f"spec {args.spec}, {args.n} random variants (width, resolution, expansion)")
    for workers, rate in rates.items():
        print(f"  archspec, {workers} worker(s): {rate:10,.0f} architectures/s")
    print(f"  torch build + FlopCounterMode:  {torch_rate:10,.1f} architectures/s")
    print(f"  ratio: {best / torch_rate:,.0f}x;  target >= 1,000/s: "
          f"{'PASS' if best >= 1000 else 'FAIL'}")


if __name__ == "__main__":
    main()
