"""`archspec bench`: measure a spec's latency on a backend (engine: archspec.bench)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..bench import BACKENDS, Settings, run, steps_per_resolution
from ..cli_common import (OUTPUT, OVERRIDES, Classes, Commands, Spec, TableOrJson, Width,
                          console, load, tagged)
from ..errors import ArchspecError


def _resolutions(text: str | None) -> tuple:
    if not text:
        return ()
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ArchspecError(f"--resolution: expected numbers separated by commas, got "
                            f"{text!r} (e.g. 96,160,224)") from None
    if not values or min(values) < 1:
        raise ArchspecError(f"--resolution: resolutions must be positive, got {text!r}")
    return values


def table(doc: dict):
    """The results as a rich table."""
    from rich.table import Table

    s = doc["settings"]
    title = (f"{doc['spec']} on {s['backend']}: {s['threads']} thread(s), batch "
             f"{s['batch']}, {s['repeats']} repeats after {s['warmup']} warm-up "
             f"({doc['machine']['cpu']})")
    t = Table("resolution", "mode", "MAdds", "median ms", "p90 ms", "min ms", "stdev ms",
              "images/s", title=title, title_justify="left")
    for r in doc["results"]:
        t.add_row(str(r["resolution"]), r["mode"], f"{r['madds'] / 1e6:.1f} M",
                  f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['min_ms']:.2f}",
                  f"{r['stdev_ms']:.2f}", f"{r['images_per_s']:.1f}")
    return t


COMMANDS = Commands()


@COMMANDS.command(panel="Models")
def bench(spec: Spec,
          backend: Annotated[Literal[BACKENDS], typer.Option(
              "--backend", "-b", help="What runs the model.")] = "onnxruntime",
          threads: Annotated[int, typer.Option(
              help="CPU threads (torch.set_num_threads / onnxruntime intra-op).")] = 1,
          batch: Annotated[int, typer.Option(help="Images per step.")] = 1,
          resolution: Annotated[Optional[str], typer.Option(
              "--resolution", "-r", rich_help_panel=OVERRIDES,
              help="Input resolutions, comma-separated (default: the spec's).")] = None,
          train_step: Annotated[bool, typer.Option(
              "--train-step", help="Time forward + backward (torch backends).")] = False,
          repeats: Annotated[int, typer.Option(help="Timed steps.")] = 30,
          warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 5,
          width: Width = None, classes: Classes = None,
          seed: Annotated[int, typer.Option(help="Seed for the weights and inputs.")] = 0,
          fmt: TableOrJson = "table",
          output: Annotated[Optional[Path], typer.Option(
              "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
              help="Also write the JSON record here (atomically).")] = None,
          no_progress: Annotated[bool, typer.Option(
              "--no-progress", help="No progress bar.")] = False) -> None:
    """Latency of SPEC's model: warm-up, repeats, median / p90 / min, per resolution."""
    settings = Settings(backend, threads, batch, _resolutions(resolution), train_step,
                        repeats, warmup, seed)
    settings.check()
    s = load(spec, width=width, classes=classes)
    doc = tagged("bench", _run_with_progress(s, settings,
                                             quiet=no_progress or not sys.stderr.isatty()))
    text = json.dumps(doc, indent=2)
    if output is not None:
        from ..fsutil import atomic_write_text

        atomic_write_text(output, text + "\n")
        print(f"wrote {output}", file=sys.stderr)
    if fmt == "json":
        sys.stdout.write(text + "\n")
    else:
        console().print(table(doc))


def _run_with_progress(spec, settings: Settings, quiet: bool) -> dict:
    if quiet:
        return run(spec, settings)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    n = len(settings.resolutions or (spec.resolution,)) * steps_per_resolution(settings)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(f"{spec.name} on {settings.backend}", total=n)
        return run(spec, settings, lambda k=1: progress.advance(task, k))
