"""`archspec adapt`: NetAdapt under a latency target (MobileNetV3 section 4.2;
docs/search.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_common import OUTPUT, Commands, Spec, TableOrJson, emit_json
from .search import (ProxyBatch, ProxyBatches, ProxyData, ProxyEpochs, ProxyResolution,
                     make_proxy)

COMMANDS = Commands()


@COMMANDS.command(panel="Search")
def adapt(spec: Spec,
          target_ms: Annotated[float, typer.Option(
              "--target-ms", min=0.001, help="Latency target (ms, predicted).")] = ...,
          profile: Annotated[Path, typer.Option(
              "--profile", "-p", dir_okay=False,
              help="Latency profile (a file, or a shipped one's name: archspec "
              "profiles).")] = ...,
          delta: Annotated[float, typer.Option(
              min=0.0001, max=0.5,
              help="Each step cuts predicted latency by at least this fraction.")] = 0.01,
          max_steps: Annotated[int, typer.Option(
              min=1, max=10_000, help="Stop after this many steps.")] = 50,
          proxy: Annotated[str, typer.Option(
              "--proxy", help="Accuracy proxy: rank (zero-cost) or train.")] = "rank",
          data: ProxyData = "digits", epochs: ProxyEpochs = 1,
          proxy_resolution: ProxyResolution = None, limit_batches: ProxyBatches = None,
          batch: ProxyBatch = None,
          seed: Annotated[int, typer.Option(help="Seed of the proxy.")] = 0,
          output: Annotated[Optional[Path], typer.Option(
              "--output", "-o", file_okay=False, rich_help_panel=OUTPUT,
              help="Folder for step_NNN.yaml, adapt.json and adapt.png [default: "
              "runs/adapt-SPEC].")] = None,
          no_plot: Annotated[bool, typer.Option(
              "--no-plot", rich_help_panel=OUTPUT, help="Do not draw adapt.png.")] = False,
          fmt: TableOrJson = "table") -> None:
    """Shrink SPEC step by step (NetAdapt) until its predicted latency meets --target-ms;
    write every step as a spec, the decision log and a plot."""
    from ..errors import ArchspecError
    from ..fsutil import atomic_write_text
    from ..search.adapt import Adapter, adapt as run_adapt

    if proxy not in ("rank", "train"):
        raise ArchspecError(f"--proxy: {proxy!r} is not one of 'rank', 'train'")
    from ..search.study import load_base
    from .search import check_inputs

    profile = check_inputs(profile, output, target_ms)
    base = load_base(spec)
    out = output or Path("runs") / f"adapt-{base.name}"
    adapter = Adapter(base, str(profile), make_proxy(proxy, data, epochs, proxy_resolution,
                                                     limit_batches, batch, seed), delta)
    from rich.progress import Progress

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("NetAdapt", total=None)
        result = run_adapt(adapter, target_ms, max_steps, progress=lambda ms: bar.update(
            task, advance=1, description=f"NetAdapt: {ms:.3f} ms"))
    log = {**result["log"], "proxy": proxy, "specs": []}
    for i, text in enumerate(result["texts"]):
        path = out / f"step_{i:03d}.yaml"
        atomic_write_text(path, text)
        log["specs"].append(str(path))
    atomic_write_text(out / "adapt.json", json.dumps(log, indent=1) + "\n")
    if not no_plot:
        from ..search.plots import adapt_plot

        adapt_plot(log, out / "adapt.png")
    print(f"wrote {len(log['specs'])} specs, adapt.json{'' if no_plot else ', adapt.png'} "
          f"in {out}", file=sys.stderr)
    if fmt == "json":
        emit_json("adapt", log)
    else:
        _print(log)


def _print(log: dict) -> None:
    from rich.table import Table

    from ..cli_common import console

    table = Table("step", "kept", "ms", "proxy", "score", "proposals", title_justify="left",
                  title=f"NetAdapt {log['spec']}: {log['start']['latency_ms']:.3f} -> "
                  f"{log['final']['latency_ms']:.3f} ms (target {log['target_ms']:g}, "
                  f"{'reached' if log['reached'] else 'not reached'})")
    table.add_row("0", "seed", f"{log['start']['latency_ms']:.3f}",
                  f"{log['start']['accuracy']:.4f}", "", "")
    for s in log["steps"]:
        k = s["kept"]
        table.add_row(str(s["step"]), k["change"], f"{k['latency_ms']:.3f}",
                      f"{k['accuracy']:.4f}", f"{k['score']:.4g}", str(len(s["proposals"])))
    console().print(table)
