"""The `archspec` command line. Every user error prints one line per problem and exits 2;
an exceeded budget exits 1 (docs/errors.md). Heavy libraries (torch, onnx, networkx,
matplotlib) are imported only by the commands that need them: `archspec cost` starts in
well under half a second.

Built on click (typer's foundation): typer's runtime coercion alone costs ~0.2 s a call.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import ArchspecError, Location, Problem, SpecError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PER = click.Choice(["stage", "block", "layer"])
FORMATS = click.Choice(["table", "json", "markdown", "csv"])


class LazyGroup(click.Group):
    """A group whose extra commands (archspec.commands.LAZY) are imported on first use."""

    def list_commands(self, ctx):
        from .commands import LAZY

        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from .commands import LAZY

        if name not in LAZY:
            return None
        import importlib

        module, attr = LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name="archspec", prog_name="archspec")
def app():
    """Architecture-spec compiler and cost estimator for MobileNet-style CNNs.

    Write a paper's stage table as YAML; validate, compile, cost and build it.
    A SPEC argument is a file or the name of a shipped spec (see `archspec specs`).
    """


def overrides(f):
    """The --width/--resolution/--classes options every spec command takes."""
    f = click.option("--classes", type=int, default=None, help="Number of classes.")(f)
    f = click.option("--resolution", "-r", type=int, default=None,
                     help="Input resolution (overrides the spec).")(f)
    f = click.option("--width", "-w", type=float, default=None,
                     help="Width multiplier (overrides the spec).")(f)
    return f


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _emit(text: str, output: Path | None) -> None:
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from .fsutil import atomic_write_text

        atomic_write_text(output, text)


def _show(renderable, output: Path | None) -> None:
    """Print a rich renderable, or write it as plain text to ``output`` (atomically)."""
    if output is None:
        _console().print(renderable)
        return
    import io

    from rich.console import Console

    con = Console(record=True, width=160, file=io.StringIO())
    con.print(renderable)
    _emit(con.export_text(), output)


def _load(spec: str, width, resolution, classes):
    from .sources import load

    return load(spec, width=width, resolution=resolution, classes=classes)


@app.command()
@click.argument("spec")
@click.option("--per", type=PER, default="stage", show_default=True,
              help="Rows per stage, block or layer.")
@click.option("--format", "-f", "fmt", type=FORMATS, default="table", show_default=True)
@overrides
@click.option("--batch", type=click.IntRange(1, 1_000_000), default=1, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default="fp32",
              show_default=True, help="Element type for the byte figures.")
@click.option("--budget", default=None,
              help='Exit 1 if over, e.g. "madds<=220M,params<=5.5M".')
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (atomically) instead of stdout.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Latency profile (archspec calibrate): adds predicted ms.")
def cost(spec, per, fmt, width, resolution, classes, batch, dtype, budget, output,
         profile_path):
    """Parameters, multiply-adds, elementwise work and memory access, per stage/block/layer."""
    from .analysis.budget import check_budget, parse_budget
    from .analysis.cost import cost as run_cost

    constraints = parse_budget(budget) if budget else None
    graph = _load(spec, width, resolution, classes).compile()
    report = run_cost(graph, batch=batch, dtype=dtype)
    lat = None
    if profile_path is not None:  # docs/latency.md
        from .latency.report import latency_column

        lat = latency_column(graph, per, profile_path, batch=batch, dtype=dtype)
    extra = [lat.column()] if lat else []
    if fmt == "json":
        _emit(json.dumps(lat.apply(report.to_dict(per)), indent=2) if lat
              else report.to_json(per), output)
    elif fmt == "markdown":
        from .report.tables import markdown

        _emit(markdown(report, per, extra) + (f"\n{lat.line()}\n" if lat else ""), output)
    elif fmt == "csv":
        from .report.tables import csv_text

        _emit(csv_text(report, per, extra), output)
    else:
        from .report.tables import rich_table

        table = rich_table(report, per, extra)
        _show(table, output)
    if constraints:
        check_budget(report.totals, constraints, report.name)


@app.command()
@click.argument("spec_a")
@click.argument("spec_b")
@click.option("--per", type=click.Choice(["stage", "block"]), default="stage",
              show_default=True, help="Align and show per stage or per block.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
@overrides
@click.option("--budget", default=None, help="Budget both sides must meet (exit 1 if not).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Latency profile (archspec calibrate): adds predicted ms.")
def diff(spec_a, spec_b, per, fmt, width, resolution, classes, budget, output, profile_path):
    """Compare two specs stage by stage (or block by block): figures, deltas, changes."""
    from .analysis.budget import check_budget, parse_budget
    from .analysis.diff import diff as run_diff

    constraints = parse_budget(budget) if budget else None
    latency = None
    if profile_path is not None:  # docs/latency.md
        from .latency.report import latency_column

        def latency(graph):
            column = latency_column(graph, "block", profile_path)
            return column.per_row, column.total_ms

    report = run_diff(_load(spec_a, width, resolution, classes).compile(),
                      _load(spec_b, width, resolution, classes).compile(), latency=latency)
    if fmt == "json":
        _emit(json.dumps(report.to_dict(per), indent=2), output)
    elif fmt == "markdown":
        from .report.diff import markdown_diff

        _emit(markdown_diff(report, per), output)
    else:
        from .report.diff import rich_diff

        _show(rich_diff(report, per), output)
    if constraints:
        check_budget(report.a.totals, constraints, f"a ({report.a.name})")
        check_budget(report.b.totals, constraints, f"b ({report.b.name})")


@app.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
def validate(specs, fmt):
    """Check specs against the schema and the semantic rules; report every problem."""
    from .spec import load

    results, failed = [], 0
    for path in specs:
        try:
            s = load(path)
            s.compile()
            results.append({"file": path, "ok": True, "name": s.name, "problems": []})
        except ArchspecError as e:
            failed += 1
            problems = e.problems if isinstance(e, SpecError) else \
                [Problem(Location(path), str(e))]
            results.append({"file": path, "ok": False,
                            "problems": [{"file": p.location.file, "line": p.location.line,
                                          "column": p.location.column, "path": p.location.path,
                                          "message": p.message, "hint": p.hint}
                                         for p in problems]})
            if fmt != "json":
                for p in problems:
                    print(p, file=sys.stderr)
    if fmt == "json":
        print(json.dumps({"schema": "archspec.validate/1", "results": results}, indent=2))
    else:
        for r in results:
            if r["ok"]:
                print(f"ok  {r['file']} ({r['name']})")
    if failed:
        sys.exit(2)


@app.command()
@click.argument("spec")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .dot, .graphml or .json.")
@overrides
def graph(spec, output, width, resolution, classes):
    """Write the compiled IR graph (nodes = primitive ops, edges = tensors with shapes)."""
    g = _load(spec, width, resolution, classes).compile()
    if output.suffix.lower() not in (".dot", ".graphml", ".json"):
        raise ArchspecError(f"{output}: unknown graph format (use .dot, .graphml or .json)")
    g.write(output)
    print(f"wrote {output} ({len(g)} nodes)", file=sys.stderr)


@app.command("specs")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_specs(fmt):
    """List the shipped specs with a one-line description and their source."""
    from .spec.loader import SHIPPED
    from .spec import load

    rows = []
    for path in sorted(SHIPPED.glob("*.yaml")):
        s = load(path)
        rows.append({"name": path.stem, "description": s.description, "source": s.source,
                     "file": str(path)})
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("spec", "description", "source", title="shipped specs", title_justify="left")
    for r in rows:
        table.add_row(r["name"], r["description"], r["source"])
    _console().print(table)


@app.command("blocks")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
def list_blocks(fmt):
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
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("block", "aliases", "fields (default)", "what it is", title="blocks",
                  title_justify="left", show_lines=True)
    for r in rows:
        fields = ", ".join(f"{k}={v}" for k, v in r["fields"].items())
        table.add_row(r["block"], ", ".join(r["aliases"]), fields, r["summary"])
    _console().print(table)


@app.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Exit 1 if the checked-in report is stale.")
def reproduce(path, check):
    """Regenerate docs/reproduction.md: every paper figure against ours, with reasons."""
    from . import reproduce as rep

    target = path or rep.DOC
    if check:
        if not Path(target).exists() or Path(target).read_text() != rep.render():
            print(f"{target} is stale: run `archspec reproduce`", file=sys.stderr)
            sys.exit(1)
        print(f"{target} is up to date")
        return
    rep.write(target)
    print(f"wrote {target}", file=sys.stderr)


@app.command()
def schema():
    """Print the JSON Schema that spec files follow."""
    from .spec import schema as get_schema

    print(json.dumps(get_schema(), indent=2))


@app.command()
@click.argument("spec")
@click.option("--backend", "-b", default="torch", show_default=True, help="Backend name.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (spec + weights).")
@click.option("--summary", is_flag=True, help="Print the module tree with per-layer costs.")
@click.option("--seed", type=int, default=None, help="Seed for the initial weights.")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Weights (.pt) to load instead of random ones (onnx).")
@click.option("--fp16", is_flag=True, help="Half-precision weights and I/O (onnx).")
@click.option("--features", default=None,
              help="Return these taps instead of the logits, e.g. C4,C5 (detection heads).")
@click.option("--no-fold-bn", "no_fold_bn", is_flag=True,
              help="Keep batch norm as separate nodes (onnx; folded by default).")
@overrides
def build(spec, backend, output, summary, seed, weights, fp16, features, no_fold_bn, width,
          resolution, classes):
    """Lower a spec to a backend model and (optionally) save it."""
    import inspect

    from .analysis.cost import cost as run_cost
    from .backends import get_backend

    s = _load(spec, width, resolution, classes)
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
    model = be.build(g, seed=seed, **options)
    if summary:
        print(be.summary(model, g, run_cost(g)))
    if output is not None:
        be.save(model, output, s, g)
        print(f"wrote {output}", file=sys.stderr)
    elif not summary:
        print(model)


def main(argv: list | None = None) -> None:
    """Entry point: run the CLI and turn every user error into a one-line message."""
    try:
        # standalone: click turns usage errors into exit 2 and handles --help itself
        app.main(args=argv, prog_name="archspec", standalone_mode=True)
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
