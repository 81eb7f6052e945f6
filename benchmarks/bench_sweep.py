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

Absolute rates on machines of different speeds do not compare (the issue's 1,800/s and
180/s were measured elsewhere), so ``--baseline REV`` measures an older revision's sweep
in the same run: ``git archive REV`` is unpacked into a temporary directory and a
subprocess with it on PYTHONPATH times that code's own full compile
(``archspec.analysis.sweep.run``; predicted latency by the loop of its
``latency.report.sweep_latency``, serial after the sweep, with its own
``profiles/cpu-ort-1t.json`` and without its machine-fingerprint probe) on the same
variants of the same spec name, once before today's code is timed and once after (this
machine's speed drifts by tens of percent within minutes); each current rate is then
printed divided by the mean of the baseline's two timings in the same column, beside
the issue's target ratios (10,000 / 1,800 = 5.6x cost only, 2,000 / 180 = 11.1x with
latency). The revision to give is 692308d, the parent of the first sweep-memo commit
(bbcde32, ``git log --oneline -- archspec/analysis/memo.py | tail -1``): the last code
whose sweep compiled every variant, which is what "today" meant when the issue was filed.

    .venv/bin/python benchmarks/bench_sweep.py --baseline 692308d
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import archspec
from archspec.analysis import memo as block_memo
from archspec.analysis.sweep import random_variants, run, vary

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "cpu-ort-1t.json"
TARGETS = {"cost": 10_000 / 1_800, "cost + latency": 2_000 / 180}   # issue 19, as ratios

# Run by the baseline's Python with the old package first on sys.path: a JSON job on
# stdin, the rates (wall, CPU) and rows as JSON on stdout. Uses only what the revision
# before the memo had: sweep.run/vary/Variant, latency.kernels.kernels, profile.load.
BASELINE_SNIPPET = r"""
import json, resource, sys, time
import archspec
from archspec.analysis import sweep as sw
from archspec.latency.kernels import kernels as fuse
from archspec.latency.profile import load

job = json.load(sys.stdin)
assert archspec.__file__.startswith(job["root"]), archspec.__file__
spec = archspec.load(job["spec"])
variants = [sw.Variant(**v) for v in job["variants"]]
profile = load(job["profile"])
model, block = profile.model, profile.nchwc_block


def cpu():
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def with_latency(rows, subset):
    # latency.report.sweep_latency's loop, without its machine-fingerprint probe
    for v, row in zip(subset, rows):
        graph = sw.vary(spec, v).compile()
        row["latency_ms"] = round(model.predict(fuse(graph, block), graph).total_ms, 4)
    return rows


with_latency(sw.run(spec, variants[:2], workers=1), variants[:2])   # first-use costs
out = {"rates": {}, "rows": {}}
for label, n in (("cost", job["cost_n"]), ("cost + latency", job["latency_n"])):
    subset = variants[:n]
    for workers in job["workers"]:
        t, c = time.perf_counter(), cpu()
        rows = sw.run(spec, subset, workers=workers)
        if label != "cost":
            with_latency(rows, subset)
        out["rates"][f"{label}|{workers}"] = (n / (time.perf_counter() - t), n / (cpu() - c))
        out["rows"][label] = rows
json.dump(out, sys.stdout)
"""


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


def baseline(rev: str, spec_name: str, variants, cost_n: int, latency_n: int,
             cores: int) -> dict:
    """The full-compile rates and rows of revision ``rev``'s sweep (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_baseline_") as tmp:
        tree = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                              capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=tree, check=True)
        job = {"root": tmp, "spec": spec_name, "cost_n": cost_n, "latency_n": latency_n,
               "workers": [1, cores], "profile": str(Path(tmp) / "profiles" / PROFILE.name),
               "variants": [{k: x for k, x in dataclasses.asdict(v).items() if x is not None}
                            for v in variants[:max(cost_n, latency_n)]]}
        done = subprocess.run([sys.executable, "-c", BASELINE_SNIPPET], input=json.dumps(job),
                              capture_output=True, text=True, cwd=tmp,
                              env={**os.environ, "PYTHONPATH": tmp})
    if done.returncode:
        raise SystemExit(f"--baseline {rev}: its sweep failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """Date, CPU, versions and revision: what every figure is read beside."""
    import platform

    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "archspec"], capture_output=True, text=True).stdout.strip()
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}, "
            f"{os.cpu_count()} logical cores; Python {platform.python_version()}, numpy "
            f"{numpy.__version__}; archspec at {head}{' + uncommitted changes' if dirty else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="variants swept from memoised blocks")
    ap.add_argument("--full-n", type=int, default=800,
                    help="variants compiled in full (cost; a quarter of it with latency)")
    ap.add_argument("--spec", default="mobilenetv3_large")
    ap.add_argument("--torch-n", type=int, default=10)
    ap.add_argument("--baseline", metavar="REV",
                    help="also time revision REV's full-compile sweep in this run, before "
                         "and after, and print the ratios (692308d: the code before the "
                         "sweep memo)")
    args = ap.parse_args()
    from archspec.latency.memo import SweepLatency
    from archspec.latency.profile import load

    spec = archspec.load(args.spec)
    variants = random_variants(args.n, 0, spec)
    latency = SweepLatency(load(PROFILE))
    cores = os.cpu_count() or 1
    print(machine())
    olds = [time_baseline(args, variants, cores, "before")] if args.baseline else []
    print(f"spec {args.spec}: {len(variants)} random variants (width, resolution, "
          f"expansion), {cores} cores; load average before: {load_average()}")
    print(header_line(cores) + "   (architectures/s of wall time and of CPU time)")
    same, reference, rates = True, [], {}
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
            rates[label, way] = (one, one_cpu, many, many_cpu)
            print(f"  {label + ', ' + way:32}{one:11,.0f}{one_cpu:11,.0f}{many:11,.0f}"
                  f"{many_cpu:11,.0f}")
            if not memo:
                rates[label, "rows"] = rows
    more = random_variants(args.n, 1, spec)
    for label, extra in (("cost", None), ("cost + latency", latency)):
        run(spec, variants, workers=1, extra=extra)
        t, c = time.perf_counter(), cpu_seconds()
        run(spec, more, workers=1, extra=extra)
        warm = (len(more) / (time.perf_counter() - t), len(more) / (cpu_seconds() - c))
        rates[label, "memo warm"] = (*warm, None, None)
        print(f"  {label + ', memo warm':32}{warm[0]:11,.0f}{warm[1]:11,.0f}"
              f"   (a second sample after the first: what a long search sees)")
    try:
        torch_rate = torch_way(spec, variants[: args.torch_n])
    except ImportError:
        torch_rate = float("nan")
    print(f"  {'torch build + FlopCounterMode':32}{torch_rate:11,.1f}")
    print(f"memoised rows equal to the full compile's: {'yes' if same else 'NO'}")
    print(f"load average after: {load_average()}")
    if args.baseline:
        olds.append(time_baseline(args, variants, cores, "after"))
        print_ratios(args, rates, olds, cores)


def time_baseline(args, variants, cores: int, when: str) -> dict:
    """Time ``args.baseline``'s full compile now and print its rates (module docstring)."""
    print(f"\nbaseline {args.baseline} {when} (its own sweep.run, full compile, its own "
          f"profile), load average before: {load_average()}")
    old = baseline(args.baseline, args.spec, variants, args.full_n, args.full_n // 4, cores)
    print(header_line(cores))
    for label in ("cost", "cost + latency"):
        (one, one_cpu), (many, many_cpu) = (old["rates"][f"{label}|{w}"] for w in (1, cores))
        print(f"  {label + ', full compile':32}{one:11,.0f}{one_cpu:11,.0f}{many:11,.0f}"
              f"{many_cpu:11,.0f}")
    print(f"load average after: {load_average()}")
    return old


def print_ratios(args, rates: dict, olds: list, cores: int) -> None:
    """Every rate now divided by the baseline's full compile in the same column (1 process
    by 1 process, workers by workers, CPU by CPU), the baseline's rate being the mean of
    its timings before and after ours (the machine's speed drifts)."""
    for label in ("cost", "cost + latency"):
        ours = rates[label, "rows"]
        for old in olds:
            theirs = old["rows"][label]
            figures = ("params", "madds", "elementwise")
            differ = sum(any(a[k] != b[k] for k in figures) for a, b in zip(ours, theirs))
            line = (f"baseline rows ({label}): params, MAdds, elementwise "
                    + ("equal to today's full compile" if not differ and len(ours) ==
                       len(theirs) else f"differ in {differ} of {len(ours)} rows"))
            if label != "cost":
                gaps = [abs(a["latency_ms"] / b["latency_ms"] - 1) for a, b in zip(ours, theirs)]
                line += (f"; latency_ms (its own profile and model) {max(gaps):.1%} apart at "
                         "most" if max(gaps) else "; latency_ms equal")
            print(line)
            break   # both timings return the same rows
    print(f"\nratios: rate now / {args.baseline}'s full compile in the same column, its rate "
          f"the mean of {len(olds)} timings (target: issue 19's 10,000/1,800 and 2,000/180)")
    print(header_line(cores) + f"{'target':>9}")
    for label in ("cost", "cost + latency"):
        timed = [[x for pair in (old["rates"][f"{label}|{w}"] for w in (1, cores)) for x in pair]
                 for old in olds]
        base = [sum(col) / len(col) for col in zip(*timed)]
        for way in ("full compile", "memoised blocks", "memo warm"):
            cells = "".join(f"{'':>11}" if x is None else f"{x / b:10.1f}x"
                            for x, b in zip(rates[label, way], base))
            target = f"{TARGETS[label]:8.1f}x" if way != "full compile" else ""
            print(f"  {label + ', ' + way:32}{cells}{target}")
    if len(olds) > 1:
        drift = max(abs(a / b - 1) for label in ("cost", "cost + latency")
                    for a, b in zip(*(old["rates"][f"{label}|1"] for old in olds[:2])))
        print(f"  (the baseline's two timings differ by up to {drift:.0%} in one process)")


def header_line(cores: int) -> str:
    return (f"{'':34}{'1 process':>11}{'per CPU-s':>11}{f'{cores} workers':>11}"
            f"{'per CPU-s':>11}")


if __name__ == "__main__":
    main()
