"""How fast is `archspec cost`? The cold command (a fresh process each time, as a user
runs it) and in-process costing, side by side with the usual way to get these numbers:
import torch, build the model (archspec.build) and count FLOPs with PyTorch's
FlopCounterMode. Both sides run interleaved in the same session; the table gives medians
and their ratio, with the date, machine, load average and library versions.

    .venv/bin/python benchmarks/bench_cost.py [--repeats 9] [--spec mobilenetv3_large]

Targets: the cold `archspec cost` under 0.3 s wall (issue 14); costing a compiled spec
in-process under 5 ms (issue 2).

Beside the cold command, the same interleaved runs time a bare Python that only imports
the command's libraries (typer, rich's console and table, PyYAML): the floor of any
command built on them. On a slow host the floor alone can take most of 0.3 s (a Zen 1
EPYC guest: about 0.2-0.26 s), so the table also gives archspec's own share (cold minus
floor), the part this project controls.

The cold command is timed twice: for a spec this machine has costed before (the usual
case: spec/validcache.py remembers that the document passed the JSON Schema, so jsonschema
is not imported) and for a spec never seen (an empty validation cache each run). The
package's bytecode is compiled first (`compileall`), as `pip install` does for an
installed package; an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise
recompile every module on every run.
"""
from __future__ import annotations

import argparse
import compileall
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import typer, rich.console, rich.table, yaml"
TORCH_WAY = """import sys, torch, archspec
from torch.utils.flop_counter import FlopCounterMode
spec = archspec.load(sys.argv[1])
m = archspec.build(spec, backend="torch").eval()
n = sum(p.numel() for p in m.parameters())
with FlopCounterMode(display=False) as fc, torch.no_grad():
    m(torch.zeros(1, 3, spec.resolution, spec.resolution))
print(n, fc.get_total_flops() // 2)
"""


def archspec_command() -> list[str]:
    """The installed `archspec` script beside this Python, else `python -m archspec`."""
    script = Path(sys.executable).with_name("archspec")
    return [str(script)] if script.exists() else [sys.executable, "-m", "archspec"]


def wall(cmd: list[str], cache: str | None = None) -> float:
    """Seconds one run of ``cmd`` takes; ``cache``: its validation cache folder (a fresh
    empty one per run when None)."""
    with tempfile.TemporaryDirectory() as fresh:
        env = {**os.environ, "ARCHSPEC_CACHE_DIR": cache or fresh}
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
        return time.perf_counter() - t


def interleaved(commands: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median wall time per command (``name: (argv, cache folder or None)``), the
    commands taking turns after one warm-up run each (file cache, validation cache)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, (cmd, cache) in commands.items():
        try:
            wall(cmd, cache)
        except (subprocess.CalledProcessError, OSError):
            times.pop(name)
    for _ in range(repeats):
        for name in times:
            times[name].append(wall(*commands[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def median_of(fn, repeats: int) -> float:
    fn()
    return statistics.median(fn() for _ in range(repeats))


def in_process(spec: str, repeats: int) -> dict[str, float]:
    """Seconds: load + compile + cost, and cost of an already compiled graph."""
    import archspec
    from archspec.analysis.cost import cost

    graph = archspec.load(spec).compile()

    def compiled() -> float:
        t = time.perf_counter()
        for _ in range(100):
            cost(graph)
        return (time.perf_counter() - t) / 100

    def full() -> float:
        t = time.perf_counter()
        archspec.load(spec).cost()
        return time.perf_counter() - t

    return {"full": median_of(full, repeats), "compiled": median_of(compiled, repeats)}


def in_process_torch(spec: str, repeats: int) -> float:
    """Seconds to build the torch model and count its FLOPs (torch already imported)."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return float("nan")
    import archspec

    def once() -> float:
        t = time.perf_counter()
        s = archspec.load(spec)
        m = archspec.build(s, backend="torch").eval()
        sum(p.numel() for p in m.parameters())
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            m(torch.zeros(1, 3, s.resolution, s.resolution))
        fc.get_total_flops()
        return time.perf_counter() - t

    return median_of(once, repeats)


def versions() -> str:
    found = []
    for name in ("archspec", "typer", "rich", "pyyaml", "jsonschema", "torch"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def header(spec: str, repeats: int) -> None:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    print(f"load average (1, 5, 15 min): {load}")
    print(f"versions: {versions()}")
    print(f"spec: {spec}; medians of {repeats} runs, the two ways interleaved\n")


def row(label: str, ours: float, theirs: float, unit: str, scale: float) -> None:
    ratio = theirs / ours if ours else float("nan")
    print(f"{label:44} {ours * scale:10.3f} {unit:2} {theirs * scale:12.3f} {unit:2} "
          f"{ratio:8.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--spec", default="mobilenetv3_large")
    args = ap.parse_args()
    header(args.spec, args.repeats)
    compileall.compile_dir(ROOT / "archspec", quiet=1)
    ours_cmd = [*archspec_command(), "cost", args.spec]
    with tempfile.TemporaryDirectory() as seen:
        cold = interleaved({"archspec": (ours_cmd, seen), "first": (ours_cmd, None),
                            "floor": ([sys.executable, "-c", FLOOR], None),
                            "torch": ([sys.executable, "-c", TORCH_WAY, args.spec], None)},
                           args.repeats)
    ours = in_process(args.spec, args.repeats)
    torch_s = in_process_torch(args.spec, args.repeats)
    print(f"{'measurement':44} {'archspec cost':>13} {'torch + FlopCounter':>15} "
          f"{'ratio':>9}")
    row("cold command, wall (new process)", cold["archspec"], cold.get("torch", float("nan")),
        "s", 1)
    row("  the same, spec never costed here before", cold["first"],
        cold.get("torch", float("nan")), "s", 1)
    floor = cold.get("floor", float("nan"))
    print(f"{'  floor: Python importing typer, rich, yaml':44} {floor:10.3f} s")
    print(f"{'  archspec own share (cold - floor)':44} {cold['archspec'] - floor:10.3f} s")
    row("in process: load + compile + cost", ours["full"], torch_s, "ms", 1e3)
    print(f"{'in process: cost of a compiled graph':44} {ours['compiled'] * 1e3:10.3f} ms")
    print(f"\ntargets: cold `archspec cost` < 0.3 s: "
          f"{'PASS' if cold['archspec'] < 0.3 else 'FAIL'} (never-seen spec: "
          f"{'PASS' if cold['first'] < 0.3 else 'FAIL'}); in-process cost < 5 ms: "
          f"{'PASS' if ours['compiled'] < 0.005 else 'FAIL'}")


if __name__ == "__main__":
    main()
