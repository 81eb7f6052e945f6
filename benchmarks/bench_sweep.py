"""Sweep throughput: architectures per second, from memoised blocks and by a full compile of
every variant, cost only and with predicted latency, in one process and on every core; and
the usual way (build the torch model, count parameters, run FlopCounterMode).

    .venv/bin/python benchmarks/bench_sweep.py [--n 4000] [--spec mobilenetv3_large]

Every rate starts cold (the memo of the process emptied, fresh worker processes), and the
memoised rows are checked equal to the full compile's on the variants both evaluate.
Targets (issue 19): >= 10,000 architectures/s cost only and >= 2,000/s with predicted
latency on 2 cores; the full compile was ~1,800/s and ~180/s. Other processes on the
machine lower every rate: the load average is printed before and after, and the rate per
CPU second (this process's and its workers' CPU time) beside each wall-clock rate.
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import time
from pathlib import Path

import archspec
from archspec.analysis import memo as block_memo
from archspec.analysis.sweep import random_variants, run, vary

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "cpu-ort-1t.json"


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


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def rate(spec, variants, workers: int, memo: bool, extra) -> tuple[float, float, list]:
    """Architectures per second of wall time and per CPU second of one cold sweep, and
    its rows."""
    block_memo.clear()
    extra = copy.copy(extra)   # its memo emptied too
    t, c = time.perf_counter(), cpu_seconds()
    rows = run(spec, variants, workers=workers, memo=memo, extra=extra)
    return (len(variants) / (time.perf_counter() - t), len(variants) / (cpu_seconds() - c),
            rows)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="variants swept from memoised blocks")
    ap.add_argument("--full-n", type=int, default=800,
                    help="variants compiled in full (cost; a quarter of it with latency)")
    ap.add_argument("--spec", default="mobilenetv3_large")
    ap.add_argument("--torch-n", type=int, default=10)
    args = ap.parse_args()
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    spec = archspec.load(args.spec)
    variants = random_variants(args.n, 0, spec)
    latency = SweepLatency(load(PROFILE))
    cores = os.cpu_count() or 1
    print(f"spec {args.spec}: {len(variants)} random variants (width, resolution, "
          f"expansion), {cores} cores; load average before: {load_average()}")
    print(f"{'':32}{'1 process':>11}{'per CPU-s':>11}{f'{cores} workers':>11}"
          f"{'per CPU-s':>11}   (architectures/s of wall time and of CPU time)")
    same, reference = True, []
    for label, extra, full_n in (("cost", None, args.full_n),
                                 ("cost + latency", latency, args.full_n // 4)):
        for memo, subset in ((False, variants[:full_n]), (True, variants)):
            (one, one_cpu, rows), (many, many_cpu, _) = (rate(spec, subset, w, memo, extra)
                                                         for w in (1, cores))
            if memo:
                same &= rows[:full_n] == reference
            else:
                reference = rows
            way = "memoised blocks" if memo else "full compile"
            print(f"  {label + ', ' + way:30}{one:11,.0f}{one_cpu:11,.0f}{many:11,.0f}"
                  f"{many_cpu:11,.0f}")
    more = random_variants(args.n, 1, spec)
    for label, extra in (("cost", None), ("cost + latency", latency)):
        run(spec, variants, workers=1, extra=extra)
        t, c = time.perf_counter(), cpu_seconds()
        run(spec, more, workers=1, extra=extra)
        print(f"  {label + ', memo warm':30}{len(more) / (time.perf_counter() - t):11,.0f}"
              f"{len(more) / (cpu_seconds() - c):11,.0f}"
              f"   (a second sample after the first: what a long search sees)")
    try:
        torch_rate = torch_way(spec, variants[: args.torch_n])
    except ImportError:
        torch_rate = float("nan")
    print(f"  {'torch build + FlopCounterMode':30}{torch_rate:11,.1f}")
    print(f"memoised rows equal to the full compile's: {'yes' if same else 'NO'}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
