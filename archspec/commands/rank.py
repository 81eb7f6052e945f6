"""`archspec rank`: ReXNet's feature-rank measure per layer of a spec, or the random-network
study behind ReXNet Figure 1 (docs/search.md)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..cli_common import OUTPUT, Commands, Resolution, TableOrJson, Width, complete_spec, \
    emit_json

COMMANDS = Commands()
Measure = Annotated[Literal["effective", "threshold"], typer.Option(
    help="effective: entropy effective rank (soft); threshold: singular values above "
    "--tol x the largest.")]


@COMMANDS.command(panel="Search")
def rank(spec: Annotated[Optional[str], typer.Argument(
             metavar="SPEC", autocompletion=complete_spec, show_default=False,
             help="The spec to measure (not with --study).")] = None,
         study: Annotated[Optional[int], typer.Option(
             "--study", min=1, max=100_000,
             help="Run the random-network study (ReXNet Figure 1) with N networks per "
             "point instead.")] = None,
         measure: Measure = "effective",
         tol: Annotated[float, typer.Option(
             min=1e-12, max=1.0, help="Tolerance of the threshold measure.")] = 1e-2,
         batch: Annotated[int, typer.Option(
             min=1, max=256, help="Random input images (positions = images x H x W; a "
             "layer's rank is at most min(positions, channels)).")] = 16,
         seed: Annotated[int, typer.Option(help="Seed of weights and inputs.")] = 0,
         width: Width = None, resolution: Resolution = None,
         plot: Annotated[Optional[Path], typer.Option(
             dir_okay=False, rich_help_panel=OUTPUT,
             help="Bar plot of the layers (or the study's four panels): .png/.svg/.pdf.")]
         = None,
         fmt: TableOrJson = "table") -> None:
    """Rank of each layer's (HW x C) output with random weights (ReXNet section 3), or the
    random-network study of rank against channel ratio, expansion and nonlinearity."""
    from ..errors import ArchspecError

    if (spec is None) == (study is None):
        raise ArchspecError("rank: give a SPEC or --study N (one of them)")
    if study is not None:
        _study(study, measure, tol, seed, plot, fmt)
        return
    from ..search.rank import feature_ranks
    from ..search.study import load_base

    model = load_base(spec, "archspec rank", width=width, resolution=resolution)
    rows = feature_ranks(model, batch=batch, seed=seed, measure=measure, tol=tol)
    mean = sum(r["normalized"] for r in rows) / len(rows)
    if plot is not None:
        from ..search.plots import rank_plot

        rank_plot(rows, plot, f"{model.name}: normalised {measure} rank, random weights")
        print(f"wrote {plot}", file=sys.stderr)
    if fmt == "json":
        emit_json("rank", {"spec": model.name, "resolution": model.resolution,
                           "measure": measure, "batch": batch, "seed": seed,
                           "mean_normalized": round(mean, 4), "layers": rows})
        return
    _table(model.name, rows, mean, measure)


def _table(name: str, rows: list[dict], mean: float, measure: str) -> None:
    from rich.table import Table

    from ..cli_common import console

    table = Table("layer", "channels", "positions", "rank", "normalised",
                  title=f"{name}: {measure} rank of each layer's output (random weights); "
                  f"mean {mean:.3f}", title_justify="left")
    for r in rows:
        table.add_row(r["layer"], str(r["channels"]), f"{r['positions']:,}",
                      f"{r['rank']:.1f}", f"{r['normalized']:.3f}")
    console().print(table)


def _study(networks: int, measure: str, tol: float, seed: int, plot, fmt: str) -> None:
    from rich.progress import Progress

    from ..search import rank as rk

    ratios = [round(0.1 * i, 1) for i in range(1, 11)]
    expansions, acts = [1, 2, 3, 4, 6], rk.NONLINEARITIES
    total = rk.study_points(ratios, expansions, 5, acts)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("rank study", total=total)
        result = rk.study(networks, seed=seed, measure=measure, tol=tol, acts=acts,
                          ratios=ratios, expansions=expansions,
                          progress=lambda n: bar.advance(task, n))
    if plot is not None:
        from ..search.plots import study_plot

        study_plot(result, plot)
        print(f"wrote {plot}", file=sys.stderr)
    if fmt == "json":
        emit_json("rank-study", result)
        return
    _study_tables(result)


def _study_tables(result: dict) -> None:
    from rich.table import Table

    from ..cli_common import console

    for key, xs in (("single_layer", "ratios"), ("bottleneck", "ratios"),
                    ("expansion", "expansions"), ("expand_layers", "expand_layers")):
        table = Table(key, *(f"{x:g}" for x in result[xs]), title_justify="left",
                      title=f"{key}: mean normalised {result['measure']} rank of "
                      f"{result['networks']} random networks per point")
        for act, ys in result["panels"][key].items():
            table.add_row(act, *(f"{y:.3f}" for y in ys))
        console().print(table)
