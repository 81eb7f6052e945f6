"""How fast is `archspec cost`? Cold CLI wall time and in-process costing, side by side
with the usual way people get these numbers today: build the torch model and run
PyTorch's FlopCounterMode on it.

    .venv/bin/python benchmarks/bench_cost.py [--repeats 7]

Targets (issue 2): cold CLI on mobilenetv3_large < 0.5 s wall; costing a compiled spec
in-process < 5 ms.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mobilenetv3_large.yaml"


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def best_of(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    py = sys.executable

    cold_cli = [py, "-m", "archspec", "cost", str(SPEC)]
    torch_cli = [py, "-c", (
        "import torch, archspec\n"
        "from torch.utils.flop_counter import FlopCounterMode\n"
        f"m = archspec.build({str(SPEC)!r}, backend='torch').eval()\n"
        "n = sum(p.numel() for p in m.parameters())\n"
        "with FlopCounterMode(display=False) as fc, torch.no_grad():\n"
        "    m(torch.zeros(1, 3, 224, 224))\n"
        "print(n, fc.get_total_flops() // 2)\n")]
    wall(cold_cli)  # warm the file cache and .pyc files
    cli_s = best_of(lambda: wall(cold_cli), args.repeats)
    try:
        wall(torch_cli)
        torch_s = best_of(lambda: wall(torch_cli), max(3, args.repeats // 2))
    except subprocess.CalledProcessError:
        torch_s = float("nan")

    import archspec
    from archspec.analysis.cost import cost

    graph = archspec.load(SPEC).compile()

    def in_process() -> float:
        t = time.perf_counter()
        for _ in range(100):
            cost(graph)
        return (time.perf_counter() - t) / 100

    def load_compile_cost() -> float:
        t = time.perf_counter()
        archspec.load(SPEC).cost()
        return time.perf_counter() - t

    cost_s = best_of(in_process, args.repeats)
    full_s = best_of(load_compile_cost, args.repeats)

    def in_process_torch() -> float:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        t = time.perf_counter()
        m = archspec.build(archspec.load(SPEC), backend="torch").eval()
        sum(p.numel() for p in m.parameters())
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(torch.zeros(1, 3, 224, 224))
        fc.get_total_flops()
        return time.perf_counter() - t

    try:
        in_process_torch()
        torch_in_s = best_of(in_process_torch, max(3, args.repeats // 2))
    except Exception:  # torch not installed
        torch_in_s = float("nan")

    print(f"spec: {SPEC.name}, median of {args.repeats} runs")
    print(f"{'measurement':48} {'archspec':>12} {'torch+FlopCounter':>18} {'ratio':>8}")
    print(f"{'cold CLI call (wall, s)':48} {cli_s:12.3f} {torch_s:18.3f} {torch_s / cli_s:7.1f}x")
    print(f"{'in-process load+compile+cost (ms)':48} {full_s * 1e3:12.2f} "
          f"{torch_in_s * 1e3:18.1f} {torch_in_s / full_s:7.1f}x")
    print(f"{'in-process cost of a compiled graph (ms)':48} {cost_s * 1e3:12.3f}")
    print(f"targets: cold CLI < 0.5 s: {'PASS' if cli_s < 0.5 else 'FAIL'}; "
          f"cost < 5 ms: {'PASS' if cost_s < 0.005 else 'FAIL'}")


if __name__ == "__main__":
    main()
