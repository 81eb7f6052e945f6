"""The `archspec` command line (typer; help in rich panels; shell completion with
`archspec --install-completion`). Every user error prints one line per problem and exits
2; an exceeded budget exits 1 (docs/errors.md). Heavy libraries (torch, onnx, networkx,
matplotlib) are imported only by the commands that need them, and only the command run is
built (archspec.commands.LAZY): `archspec cost` starts in well under 0.3 s. Shared
helpers: archspec.cli_common.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from typer.core import TyperGroup

from .cli_common import (OUTPUT, Classes, Commands, Dtype, FastParams, Output, Profile,
                         Resolution, Spec, TableOrJson, Width, complete_spec, console, emit,
                         emit_json, load, model_dtype, output_format, show)
from .commands import LAZY
from .errors import ArchspecError, Location, Problem, SpecError

INSPECT, COMPARE, MODELS = "Inspect", "Compare", "Models"
FORMAT_HELP = "Output format [default: from the --output suffix ({suffixes}), else table]."
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
Budget = Annotated[Optional[str], typer.Option(
    help='Exit 1 if over, e.g. "madds<=220M,params<=5.5M".')]


class LazyGroup(FastParams, TyperGroup):
    """The top-level group. Its commands (archspec.commands.LAZY) are imported and built
    on first use, so `archspec cost` does not pay for torch, onnx or matplotlib, nor for
    building the other commands."""

    def list_commands(self, ctx):
        return [*super().list_commands(ctx), *(n for n in LAZY if n not in self.commands)]

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name not in LAZY:
            return None
        import importlib

        import typer.main

        commands = importlib.import_module(LAZY[name]).COMMANDS
        command = self.commands[name] = typer.main.get_command(commands[name])
        return command


app = typer.Typer(cls=LazyGroup, context_settings=CONTEXT, rich_markup_mode="markdown",
                  no_args_is_help=True, pretty_exceptions_enable=False)
COMMANDS = Commands()  # this module's commands; archspec.commands.LAZY lists them all


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"archspec, version {__version__}")
        raise typer.Exit()


@app.callback()
def archspec(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")]
        = False) -> None:
    """Architecture-spec compiler and cost estimator for MobileNet-style CNNs.

    Write a paper's stage table as YAML; validate, compile, cost and build it.
    A SPEC argument is a file or the name of a shipped spec (see `archspec specs`).
    """


@COMMANDS.command(panel=INSPECT)
def cost(spec: Spec,
         per: Annotated[Literal["stage", "block", "layer"], typer.Option(
             help="Rows per stage, block or layer.", rich_help_panel=OUTPUT)] = "stage",
         fmt: Annotated[Optional[Literal["table", "json", "markdown", "csv"]], typer.Option(
             "--format", "-f", rich_help_panel=OUTPUT,
             help=FORMAT_HELP.format(suffixes=".json, .md, .csv"))] = None,
         width: Width = None, resolution: Resolution = None, classes: Classes = None,
         batch: Annotated[Optional[int], typer.Option(
             min=1, max=1_000_000, show_default=False,
             help="Batch size the byte figures assume [default: 1; with --profile, the "
             "profile's batch, and another is an error]")] = None,
         dtype: Dtype = None, budget: Budget = None, output: Output = None,
         profile_path: Profile = None) -> None:
    """Parameters, multiply-adds, elementwise work and memory access, per stage/block/layer."""
    from .analysis.budget import check_budget, parse_budget
    from .analysis.cost import cost as run_cost

    constraints = parse_budget(budget) if budget else None
    fmt = output_format(fmt, output, ("json", "markdown", "csv"))
    graph = load(spec, width, resolution, classes).compile()
    dtype = model_dtype(dtype, graph)
    lat = None
    if profile_path is not None:  # docs/latency.md ("Batch": the profile's, or an error)
        from .latency.report import latency_column

        lat = latency_column(graph, per, profile_path, batch=batch, dtype=dtype)
        if batch is None:
            from .latency.report import profile_for

            batch = profile_for(profile_path).batch
    report = run_cost(graph, batch=batch or 1, dtype=dtype)
    extra = [lat.column()] if lat else []
    if fmt == "json":
        emit_json("cost", lat.apply(report.to_dict(per)) if lat else report.to_dict(per),
                  output)
    elif fmt == "markdown":
        from .report.tables import markdown

        emit(markdown(report, per, extra) + (f"\n{lat.line()}\n" if lat else ""), output)
    elif fmt == "csv":
        from .report.tables import csv_text

        emit(csv_text(report, per, extra), output)
    else:
        from .report.tables import rich_table

        show(rich_table(report, per, extra), output)
    if constraints:
        check_budget(report.totals, constraints, report.name)


@COMMANDS.command(panel=COMPARE)
def diff(spec_a: Annotated[str, typer.Argument(metavar="SPEC_A", autocompletion=complete_spec,
                                               help="The first spec (a).")],
         spec_b: Annotated[str, typer.Argument(metavar="SPEC_B", autocompletion=complete_spec,
                                               help="The second spec (b).")],
         per: Annotated[Literal["stage", "block"], typer.Option(
             help="Align and show per stage or per block.", rich_help_panel=OUTPUT)] = "stage",
         fmt: Annotated[Optional[Literal["table", "json", "markdown"]], typer.Option(
             "--format", "-f", rich_help_panel=OUTPUT,
             help=FORMAT_HELP.format(suffixes=".json, .md"))] = None,
         width: Width = None, resolution: Resolution = None, classes: Classes = None,
         budget: Annotated[Optional[str], typer.Option(
             help="Budget both sides must meet (exit 1 if not).")] = None,
         output: Output = None, profile_path: Profile = None) -> None:
    """Compare two specs stage by stage (or block by block): figures, deltas, changes."""
    from .analysis.budget import check_budget, parse_budget
    from .analysis.diff import diff as run_diff

    constraints = parse_budget(budget) if budget else None
    fmt = output_format(fmt, output, ("json", "markdown"))
    latency = None
    if profile_path is not None:  # docs/latency.md
        from .latency.report import latency_column

        def latency(graph):
            column = latency_column(graph, "block", profile_path)
            return column.per_row, column.total_ms

    report = run_diff(load(spec_a, width, resolution, classes).compile(),
                      load(spec_b, width, resolution, classes).compile(), latency=latency)
    if fmt == "json":
        emit_json("diff", report.to_dict(per), output)
    elif fmt == "markdown":
        from .report.diff import markdown_diff

        emit(markdown_diff(report, per), output)
    else:
        from .report.diff import rich_diff

        show(rich_diff(report, per), output)
    if constraints:
        check_budget(report.a.totals, constraints, f"a ({report.a.name})")
        check_budget(report.b.totals, constraints, f"b ({report.b.name})")


@COMMANDS.command(panel=INSPECT)
def validate(specs: Annotated[list[str], typer.Argument(
                 metavar="SPEC...", autocompletion=complete_spec, show_default=False,
                 help="Spec files or shipped names.")],
             fmt: TableOrJson = "table") -> None:
    """Check specs against the schema and the semantic rules; report every problem."""
    results = [_validate(path, quiet=fmt == "json") for path in specs]
    if fmt == "json":
        emit_json("validate", {"results": results}, None)
    else:
        for r in results:
            if r["ok"]:
                print(f"ok  {r['file']} ({r['name']})")
    if not all(r["ok"] for r in results):
        sys.exit(2)


def _validate(path: str, quiet: bool) -> dict:
    try:
        s = load(path)  # a YAML spec, or the spec a .pt / .onnx file carries
        s.compile()
        return {"file": path, "ok": True, "name": s.name, "problems": []}
    except ArchspecError as e:
        problems = e.problems if isinstance(e, SpecError) else [Problem(Location(path), str(e))]
        if not quiet:
            for p in problems:
                print(p, file=sys.stderr)
        return {"file": path, "ok": False,
                "problems": [{"file": p.location.file, "line": p.location.line,
                              "column": p.location.column, "path": p.location.path,
                              "message": p.message, "hint": p.hint} for p in problems]}


@COMMANDS.command(panel=INSPECT)
def graph(spec: Spec,
          output: Annotated[Path, typer.Option(
              "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
              help="Output file: .dot, .graphml or .json.")],
          width: Width = None, resolution: Resolution = None, classes: Classes = None) -> None:
    """Write the compiled IR graph (nodes = primitive ops, edges = tensors with shapes)."""
    g = load(spec, width, resolution, classes).compile()
    if output.suffix.lower() not in (".dot", ".graphml", ".json"):
        raise ArchspecError(f"{output}: unknown graph format (use .dot, .graphml or .json)")
    g.write(output)
    print(f"wrote {output} ({len(g)} nodes)", file=sys.stderr)


@COMMANDS.command("specs", panel=INSPECT)
def list_specs(fmt: TableOrJson = "table") -> None:
    """List the shipped specs with a one-line description and their source."""
    from .spec import load as load_spec
    from .spec.loader import SHIPPED

    rows = []
    for path in sorted(SHIPPED.glob("*.yaml")):
        s = load_spec(path)
        rows.append({"name": path.stem, "description": s.description, "source": s.source,
                     "file": str(path)})
    if fmt == "json":
        emit_json("specs", {"specs": rows})
        return
    from rich.table import Table

    table = Table("spec", "description", "source", title="shipped specs", title_justify="left")
    for r in rows:
        table.add_row(r["name"], r["description"], r["source"])
    console().print(table)


@COMMANDS.command("blocks", panel=INSPECT)
def list_blocks(fmt: TableOrJson = "table") -> None:
    """List the registered blocks, their fields and defaults."""
    from .blocks import BLOCKS, REQUIRED

    def default(block, key, value):
        group = next((g for g in block.one_of if key in g), None)
        if group:
            return "one of " + "/".join(group)
        return "required" if value is REQUIRED else value

    rows = [{"block": b.name, "aliases": list(b.aliases), "summary": b.summary,
             "fields": {k: default(b, k, v) for k, v in b.fields.items()}} for b in BLOCKS]
    if fmt == "json":
        emit_json("blocks", {"blocks": rows})
        return
    from rich.table import Table

    table = Table("block", "aliases", "fields (default)", "what it is", title="blocks",
                  title_justify="left", show_lines=True)
    for r in rows:
        fields = ", ".join(f"{k}={v}" for k, v in r["fields"].items())
        table.add_row(r["block"], ", ".join(r["aliases"]), fields, r["summary"])
    console().print(table)


@COMMANDS.command(panel=INSPECT)
def reproduce(path: Annotated[Optional[Path], typer.Argument(
                  dir_okay=False, show_default=False,
                  help="Where to write (default docs/reproduction.md).")] = None,
              check: Annotated[bool, typer.Option(
                  "--check", help="Exit 1 if the checked-in report is stale.")] = False) -> None:
    """Regenerate docs/reproduction.md: every paper figure against ours, with reasons."""
    from .reproduce import run

    code = run(path, check)
    if code:
        sys.exit(code)


@COMMANDS.command(panel=INSPECT)
def schema() -> None:
    """Print the JSON Schema that spec files follow."""
    import json

    from .spec import schema as get_schema

    print(json.dumps(get_schema(), indent=2))


PRETRAINED = "Pretrained weights"


@COMMANDS.command(panel=MODELS)
def build(spec: Spec,
          backend: Annotated[str, typer.Option("--backend", "-b", help="Backend name.")]
          = "torch",
          output: Annotated[Optional[Path], typer.Option(
              "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
              help="File to write (spec + weights).")] = None,
          summary: Annotated[bool, typer.Option(
              "--summary", help="Print the module tree with per-layer costs.",
              rich_help_panel=OUTPUT)] = False,
          seed: Annotated[Optional[int], typer.Option(
              help="Seed for the initial weights.")] = None,
          weights: Annotated[Optional[Path], typer.Option(
              exists=True, dir_okay=False,
              help="Weights (.pt) to load instead of random ones (onnx).")] = None,
          weights_from: Annotated[Optional[Path], typer.Option(
              "--weights-from", rich_help_panel=PRETRAINED,
              help="A torchvision or timm state dict (.pth) to load by position (torch); "
              "prints what was loaded.")] = None,
          partial: Annotated[bool, typer.Option(
              "--partial", rich_help_panel=PRETRAINED,
              help="With --weights-from: load the longest prefix that fits, leave the rest "
              "at random.")] = False,
          fmt: Annotated[Optional[Literal["table", "json"]], typer.Option(
              "--format", "-f", rich_help_panel=PRETRAINED,
              help="Format of the --weights-from report [default: table].")] = None,
          fp16: Annotated[bool, typer.Option(
              "--fp16", help="Half-precision weights and I/O (onnx).")] = False,
          features: Annotated[Optional[str], typer.Option(
              help="Return these taps instead of the logits, e.g. C4,C5 (detection heads).")]
          = None,
          no_fold_bn: Annotated[bool, typer.Option(
              "--no-fold-bn", help="Keep batch norm as separate nodes (onnx; folded by "
              "default).")] = False,
          width: Width = None, resolution: Resolution = None, classes: Classes = None) -> None:
    """Lower a spec to a backend model (optionally with a foreign model's weights) and save
    it."""
    import inspect

    from .analysis.cost import cost as run_cost
    from .backends import get_backend

    _check_weights_from(backend, weights_from, partial, fmt, summary)
    s = load(spec, width, resolution, classes)
    if getattr(s, "spec_text_or_none", lambda: None)():
        s = s.spec()  # an ONNX file carrying its spec: build that (BN unfolded, new weights)
    g = s.compile()
    be = get_backend(backend)
    taps = [f.strip() for f in features.split(",") if f.strip()] if features else None
    options = {"weights": weights, "fp16": fp16 or None, "features": taps,
               "fold_bn": False if no_fold_bn else None}
    options = {k: v for k, v in options.items() if v is not None}
    for key in options:
        if key not in inspect.signature(be.build).parameters:
            flag = {"fold_bn": "no-fold-bn"}.get(key, key)
            raise ArchspecError(f"the {backend} backend does not take --{flag}")
    foreign = _read_weights_from(weights_from)
    model = be.build(g, seed=seed, **options)
    report = None
    if foreign is not None:
        from .backends.torch_weights import load_foreign

        report = load_foreign(model, g, foreign, partial=partial,
                              source=f"--weights-from {weights_from}")
    if summary:
        print(be.summary(model, g, run_cost(g)))
    if output is not None:
        be.save(model, output, s, g)
        print(f"wrote {output}", file=sys.stderr)
    if report is not None:
        _print_weights_report(report, fmt)
    elif output is None and not summary:
        print(model)


def _check_weights_from(backend: str, weights_from, partial: bool, fmt, summary: bool) -> None:
    """Refuse the --weights-from options where they do not apply, before any work."""
    if weights_from is None:
        for given, flag in ((partial, "--partial"), (fmt, "--format")):
            if given:
                raise ArchspecError(f"{flag} applies to --weights-from, which is not given")
    elif backend != "torch":
        raise ArchspecError(f"the {backend} backend does not take --weights-from (build "
                            "with --backend torch -o FILE.pt, then --backend "
                            f"{backend} --weights FILE.pt)")
    elif summary and fmt == "json":
        raise ArchspecError("--summary and --format json both print to stdout: give one")


def _read_weights_from(path):
    """The tensors of the --weights-from file (read before the model is built), or None."""
    if path is None:
        return None
    from .backends.torch_weights import read_foreign

    return read_foreign(path, f"--weights-from {path}")


def _print_weights_report(report, fmt) -> None:
    """The --weights-from report: a table per block, or ``archspec.weights/1`` JSON."""
    from .backends.torch_weights import table

    if fmt == "json":
        emit_json("weights", report.to_json())
    else:
        console().print(table(report))


def main(argv: list | None = None) -> None:
    """Entry point: run the CLI and turn every user error into a one-line message."""
    import typer.main

    from .errors import overrides_are_options

    try:
        # standalone: typer turns usage errors into exit 2 and handles --help itself
        with overrides_are_options():  # a bad override blames --width, not width=
            typer.main.get_command(app).main(args=argv, prog_name="archspec",
                                             standalone_mode=True)
    except ArchspecError as e:
        print(str(e) if isinstance(e, SpecError) else f"archspec: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except RecursionError:
        print("archspec: input nests too deeply", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # a bug in archspec: one line, documented exit code 3
        import os

        print(f"archspec: internal error: {type(e).__name__}: {e} "
              "(please report it; set ARCHSPEC_DEBUG=1 for a traceback)", file=sys.stderr)
        if os.environ.get("ARCHSPEC_DEBUG"):
            raise
        sys.exit(3)


if __name__ == "__main__":
    main()
