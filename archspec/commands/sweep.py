"""`archspec sweep` and `archspec plot`."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..analysis.sweep import MAXIMIZE, MINIMIZE
from ..cli_common import (LATENCY, OUTPUT, Classes, Commands, Resolution, Spec, TableOrJson,
                          Width, complete_spec, emit_json, load)

COMPARE, VARIANTS = "Compare", "Variants"
COMMANDS = Commands()


def _floats(text: str | None, lo: float = 0.0, hi: float = 1e6) -> list[float] | None:
    """Comma-separated finite numbers in (lo, hi]."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    bad = [v for v in values if not (math.isfinite(v) and lo < v <= hi)]
    if bad:
        raise typer.BadParameter(f"{bad[0]:g} is outside {lo:g} < value <= {hi:g}")
    return values


def _check_default_sizes(base) -> None:
    """``--random`` draws its sizes from ``RESOLUTIONS`` unless ``--resolution`` says; a
    spec that cannot take the smallest (a head's pooling window at 96 px) is told what to
    pass, instead of an error blaming a --resolution the user never gave."""
    from ..analysis.sweep import RESOLUTIONS
    from ..errors import ArchspecError

    low, high = RESOLUTIONS[0], RESOLUTIONS[-1]
    try:
        base.with_(resolution=low).compile()
    except ArchspecError as e:
        reason = str(e).splitlines()[0].split(" fail: ", 1)[-1]
        size = "x".join(map(str, getattr(base, "size", ()) or ()))
        raise ArchspecError(
            f"--random: without --resolution the sizes are drawn from {low}-{high} px, and "
            f"{base.name} does not compile at {low} ({reason}); pass --resolution with sizes "
            f"it takes" + (f" (its own input is {size})" if size else "")) from None


def _ints(text: str | None) -> list[int] | None:
    values = _floats(text, 0, 8192)
    if values and any(v != int(v) for v in values):
        raise typer.BadParameter(f"expected whole numbers, got {text!r}")
    return [int(v) for v in values] if values else None


@COMMANDS.command(panel=COMPARE)
def sweep(spec: Spec,
          widths: Annotated[Optional[str], typer.Option(
              "--width", "-w", rich_help_panel=VARIANTS,
              help="Widths, e.g. 0.35,0.5,0.75,1.0,1.4.")] = None,
          resolutions: Annotated[Optional[str], typer.Option(
              "--resolution", "-r", rich_help_panel=VARIANTS,
              help="Resolutions, e.g. 96,128,160,224.")] = None,
          ts: Annotated[Optional[str], typer.Option(
              "--t", rich_help_panel=VARIANTS,
              help="Expansion ratios for the expanding rows, e.g. 4,6.")] = None,
          alphas: Annotated[Optional[str], typer.Option(
              "--alpha", rich_help_panel=VARIANTS,
              help="Identity tensor multipliers (sandglass), e.g. 1,0.5.")] = None,
          ends: Annotated[Optional[str], typer.Option(
              "--schedule-end", rich_help_panel=VARIANTS,
              help="Channel-schedule end widths (ReXNet), e.g. 180,196.")] = None,
          n_random: Annotated[Optional[int], typer.Option(
              "--random", min=1, max=10_000_000, rich_help_panel=VARIANTS,
              help="Sample N random variants instead of the grid (lists above restrict "
              "it).")] = None,
          seed: Annotated[int, typer.Option(
              help="Seed for --random.", rich_help_panel=VARIANTS)] = 0,
          memory: Annotated[bool, typer.Option(
              "--memory", help="Also compute peak activation memory.")] = False,
          minimize: Annotated[str, typer.Option(
              help="Figures to minimise on the Pareto front (comma-separated).")]
          = ",".join(MINIMIZE),
          maximize: Annotated[str, typer.Option(
              help="Figures or settings (width, resolution: more is more capacity) to "
              "maximise on the Pareto front (comma-separated, may be empty).")]
          = ",".join(MAXIMIZE),
          budget: Annotated[Optional[str], typer.Option(
              help="Exit 1 if any variant is over this budget.")] = None,
          workers: Annotated[int, typer.Option(
              min=0, max=256, help="Worker processes (0: one per core).")] = 0,
          memo: Annotated[bool, typer.Option(
              "--memo/--no-memo", help="Reuse the figures of blocks seen before (the "
              "same results; --no-memo compiles every variant in full, to check).")] = True,
          output: Annotated[Optional[Path], typer.Option(
              "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
              help="Write every variant: .jsonl, .json or .csv.")] = None,
          plot: Annotated[Optional[Path], typer.Option(
              dir_okay=False, rich_help_panel=OUTPUT,
              help="Pareto plot: .png, .svg or .pdf.")] = None,
          fmt: TableOrJson = "table",
          profile_path: Annotated[Optional[Path], typer.Option(
              "--profile", "-p", dir_okay=False, rich_help_panel=LATENCY,
              help="Latency profile (a file, or a shipped one's name: archspec profiles): "
              "adds the figure latency_ms (predicted).")] = None
          ) -> None:
    """Evaluate a grid or random sample of a spec's variants and mark the Pareto front."""
    from ..analysis import sweep as sw
    from ..analysis.budget import parse_budget
    from ..errors import BudgetExceeded

    available = ("params", "madds", "elementwise", *(["peak_bytes"] if memory else []),
                 *(["latency_ms"] if profile_path is not None else []))
    constraints = parse_budget(budget, available) if budget else None
    mins, maxs = sw.objectives(minimize, maximize, memory=memory,
                               latency=profile_path is not None)
    base = load(spec)
    widths, ts, alphas, ends = (_floats(widths, 0, 16), _floats(ts, 0, 64),
                                _floats(alphas, 0, 1), _floats(ends, 0, 100_000))
    if n_random and resolutions is None:
        _check_default_sizes(base)
    if n_random:
        variants = sw.random_variants(n_random, seed, base, widths=widths,
                                      resolutions=_ints(resolutions), ts=ts, alphas=alphas)
    else:
        variants = sw.grid(widths, _ints(resolutions), ts, alphas, ends)
    if n_random and sw.shortfall(n_random, variants):
        print(f"archspec: {sw.shortfall(n_random, variants)}", file=sys.stderr)
    sw.vary(base, variants[0]).compile()  # fail fast, with the spec's own error
    from rich.progress import Progress

    extra = None
    if profile_path is not None:
        from ..latency.memo import SweepLatency
        from ..latency.report import profile_for

        extra = SweepLatency(profile_for(profile_path))
    with Progress(transient=True, disable=len(variants) < 200) as bar:
        task = bar.add_task("sweep", total=len(variants))
        rows = sw.run(base, variants, memory=memory, workers=workers, memo=memo,
                      extra=extra, progress=lambda n: bar.advance(task, n))
    for row, on_front in zip(rows, sw.pareto(rows, mins, maxs)):
        row["pareto"] = on_front
    over = []
    if constraints:
        for row in rows:
            failed = [c.text for c in constraints if not c.holds(row[c.figure])]
            row["within_budget"] = not failed
            if failed:
                over.append((row, failed))
    if output is not None:
        _write_rows(rows, output)
    if plot is not None:
        from ..report.plots import pareto_plot

        pareto_plot(rows, [r["pareto"] for r in rows], plot, x=mins[0],
                    y=(maxs or ["params"])[0], title=f"{base.name}: {len(rows)} variants",
                    objectives=(mins, maxs))
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r[mins[0]])
    if fmt == "json":
        emit_json("sweep", {"spec": base.name, "evaluated": len(rows), "front": front})
    else:
        _print_front(base.name, rows, front, written=output is not None)
    if over:
        row, failed = over[0]
        fields = ("width", "resolution", "t", "alpha", "schedule_end")
        label = sw.Variant(**{k: row[k] for k in fields if k in row}).label()
        raise BudgetExceeded(f"{len(over)} of {len(rows)} variants over budget; first: "
                             f"{label} breaks {', '.join(failed)}")


def _write_rows(rows, path: Path) -> None:
    from ..fsutil import atomic_write_text

    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    elif suffix == ".json":
        text = json.dumps(rows, indent=1)
    elif suffix == ".csv":
        import csv
        import io

        buf = io.StringIO()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, keys)
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    else:
        from ..errors import ArchspecError

        raise ArchspecError(f"{path}: unknown output format (use .jsonl, .json or .csv)")
    atomic_write_text(path, text)
    print(f"wrote {path} ({len(rows)} variants)", file=sys.stderr)


def _print_front(name, rows, front, written: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..report.tables import fmt_bytes

    keys = [k for k in ("width", "resolution", "t", "alpha", "schedule_end") if
            any(k in r for r in rows)]
    optional = [(key, header, fmt) for key, header, fmt in
                (("peak_bytes", "peak", fmt_bytes), ("latency_ms", "ms", "{:.3f}".format))
                if key in rows[0]]
    table = Table(*keys, "params", "MAdds", *(header for _, header, _ in optional),
                  title=f"{name}: Pareto front, {len(front)} of {len(rows)} variants",
                  title_justify="left")
    for r in front[:50]:
        table.add_row(*(f"{r[k]:g}" if k in r else "-" for k in keys), f"{r['params']:,}",
                      f"{r['madds'] / 1e6:,.2f} M", *(fmt(r[key]) for key, _, fmt in optional))
    Console().print(table)
    if len(front) > 50:
        print(f"... {len(front) - 50} more on the front"
              + ("" if written else " (use -o to write all)"))


@COMMANDS.command(panel=COMPARE)
def plot(specs: Annotated[list[str], typer.Argument(
             metavar="SPEC...", autocompletion=complete_spec, show_default=False,
             help="One spec, or two to overlay.")],
         output: Annotated[Path, typer.Option(
             "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
             help="Plot file: .png, .svg or .pdf.")],
         per: Annotated[Literal["block", "layer", "stage"], typer.Option(
             help="Bars per block, layer or stage.", rich_help_panel=OUTPUT)] = "block",
         width: Width = None, resolution: Resolution = None, classes: Classes = None) -> None:
    """Bars of MAdds, params and activation bytes along the depth (one or two specs)."""
    from ..report.plots import depth_plot

    depth_plot([load(s, width, resolution, classes) for s in specs], output, per)
    print(f"wrote {output}", file=sys.stderr)
