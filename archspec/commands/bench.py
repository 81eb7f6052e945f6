"""`archspec bench`: measure a spec's latency on a backend (engine: archspec.bench)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..bench import BACKENDS, Settings, run, steps_per_resolution
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


@click.command()
@click.argument("spec")
@click.option("--backend", "-b", type=click.Choice(BACKENDS), default="onnxruntime",
              show_default=True, help="What runs the model.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="CPU threads (torch.set_num_threads / onnxruntime intra-op).")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--resolution", "-r", default=None,
              help="Input resolutions, comma-separated (default: the spec's).")
@click.option("--train-step", is_flag=True, help="Time forward + backward (torch backends).")
@click.option("--repeats", type=int, default=30, show_default=True, help="Timed steps.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed steps first.")
@click.option("--width", "-w", type=float, default=None, help="Width multiplier.")
@click.option("--classes", type=int, default=None, help="Number of classes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON record here (atomically).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(spec, backend, threads, batch, resolution, train_step, repeats, warmup, width,
          classes, seed, fmt, output, no_progress):
    """Latency of SPEC's model: warm-up, repeats, median / p90 / min, per resolution."""
    from ..spec import load

    settings = Settings(backend, threads, batch, _resolutions(resolution), train_step,
                        repeats, warmup, seed)
    settings.check()
    s = load(spec, width=width, classes=classes)
    doc = _run_with_progress(s, settings, quiet=no_progress or not sys.stderr.isatty())
    text = json.dumps(doc, indent=2)
    if output is not None:
        from ..fsutil import atomic_write_text

        atomic_write_text(output, text + "\n")
        print(f"wrote {output}", file=sys.stderr)
    if fmt == "json":
        sys.stdout.write(text + "\n")
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 160).print(table(doc))


def _run_with_progress(spec, settings: Settings, quiet: bool) -> dict:
    if quiet:
        return run(spec, settings)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    n = len(settings.resolutions or (spec.resolution,)) * steps_per_resolution(settings)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(f"{spec.name} on {settings.backend}", total=n)
        return run(spec, settings, lambda k=1: progress.advance(task, k))
