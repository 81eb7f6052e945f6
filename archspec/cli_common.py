"""What every `archspec` command shares: output helpers (a rich console, atomic writes,
tagged JSON), the loader call, the option types that mean the same thing everywhere
(SPEC, --width/--resolution/--classes, --output, --format, --profile), shell completion
of shipped spec names, deprecated spellings, and the command classes.

Typer (0.2x) converts every option value through a pydantic TypeAdapter; importing
pydantic and building the adapters costs ~0.1 s a call, a third of the cold
`archspec cost` budget. ``FastParams`` converts the plain types these commands use (str,
int, float, Path, bool, Literal choices, lists of str) itself, as click does, and leaves
any other type to typer.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional, get_args, get_origin

import typer
from typer.core import TyperCommand

SPEC_SUFFIXES = (".yaml", ".yml", ".onnx", ".pt")

# help panels
OVERRIDES = "Overrides"
OUTPUT = "Output"
LATENCY = "Latency"


def console(stderr: bool = False):
    """A rich console; 160 columns when stdout is not a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def emit(text: str, output: Path | None) -> None:
    """Print ``text``, or write it to ``output`` atomically."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from .fsutil import atomic_write_text

        atomic_write_text(output, text)
        print(f"wrote {output}", file=sys.stderr)


def show(renderable, output: Path | None) -> None:
    """Print a rich renderable, or write it as plain text to ``output`` (atomically)."""
    if output is None:
        console().print(renderable)
        return
    import io

    from rich.console import Console

    con = Console(record=True, width=160, file=io.StringIO())
    con.print(renderable)
    emit(con.export_text(), output)


def tagged(kind: str, payload: dict) -> dict:
    """``payload`` with the top-level ``schema`` tag ``archspec.<kind>/1`` first (a tag
    the payload already carries wins). Schemas: docs/json.md."""
    return {"schema": f"archspec.{kind}/1", **payload}


def emit_json(kind: str, payload: dict, output: Path | None = None) -> None:
    """Print (or write) ``payload`` as indented JSON with its schema tag."""
    emit(json.dumps(tagged(kind, payload), indent=2), output)


def load(source, width=None, resolution=None, classes=None):
    """The model a SPEC argument names (a YAML path, a shipped name, .onnx, .pt)."""
    from .sources import load as load_source

    return load_source(source, width=width, resolution=resolution, classes=classes)


def complete_spec(incomplete: str) -> list[str]:
    """Shell completion for SPEC: shipped spec names, then matching paths (folders and
    .yaml/.onnx/.pt files)."""
    from .spec.loader import SHIPPED

    names = sorted(p.stem for p in SHIPPED.glob("*.yaml") if p.stem.startswith(incomplete))
    return names + _matching_paths(incomplete)


def _matching_paths(incomplete: str) -> list[str]:
    folder, _, stem = incomplete.rpartition("/")
    base = Path(folder or ".") if folder or not incomplete.startswith("/") else Path("/")
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    prefix = f"{folder}/" if folder or incomplete.startswith("/") else ""
    found = []
    for entry in entries:
        if not entry.name.startswith(stem) or (entry.name.startswith(".") and not stem):
            continue
        if entry.is_dir():
            found.append(f"{prefix}{entry.name}/")
        elif entry.suffix.lower() in SPEC_SUFFIXES:
            found.append(f"{prefix}{entry.name}")
    return found


def deprecated(new: str):
    """Callback for a hidden old spelling: a one-line note on stderr when it is used."""

    def note(ctx: typer.Context, param: typer.CallbackParam, value):
        if value is not None and not ctx.resilient_parsing:
            print(f"archspec: {'/'.join(param.opts)} is deprecated; use {new}",
                  file=sys.stderr)
        return value

    return note


def pick(new, old):
    """The value of an option or, when given, of its deprecated spelling."""
    return new if old is None else old


SPEC_HELP = "A spec file (.yaml), a shipped spec name (`archspec specs`), an .onnx or a .pt."
Spec = Annotated[str, typer.Argument(metavar="SPEC", help=SPEC_HELP, show_default=False,
                                     autocompletion=complete_spec)]
Width = Annotated[Optional[float], typer.Option(
    "--width", "-w", help="Width multiplier (overrides the spec).", rich_help_panel=OVERRIDES)]
Resolution = Annotated[Optional[int], typer.Option(
    "--resolution", "-r", help="Input resolution (overrides the spec).",
    rich_help_panel=OVERRIDES)]
Classes = Annotated[Optional[int], typer.Option(
    "--classes", help="Number of classes (overrides the spec).", rich_help_panel=OVERRIDES)]
Output = Annotated[Optional[Path], typer.Option(
    "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
    help="Write to this file (atomically) instead of stdout.")]
Profile = Annotated[Optional[Path], typer.Option(
    "--profile", "-p", dir_okay=False, rich_help_panel=LATENCY,
    help="Latency profile (`archspec calibrate`; or a shipped one's name: `archspec "
    "profiles`): adds predicted ms.")]
TableOrJson = Annotated[Literal["table", "json"], typer.Option(
    "--format", "-f", rich_help_panel=OUTPUT, help="Output format.")]
Dtype = Annotated[Optional[Literal["fp32", "fp16", "bf16", "int8"]], typer.Option(
    help="Element type for the byte figures [default: the model's: fp32 for a spec, the "
    "file's element type for an ONNX file].")]


SUFFIX_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".csv": "csv"}


def output_format(fmt: str | None, output: Path | None, allowed) -> str:
    """The --format given, else the one the --output file's suffix names (``x.json`` ->
    json) when the command writes it, else a table."""
    if fmt is not None:
        return fmt
    inferred = SUFFIX_FORMATS.get(output.suffix.lower()) if output is not None else None
    return inferred if inferred in allowed else "table"


def model_dtype(dtype: str | None, graph) -> str:
    """The --dtype given, else the model's own (an ONNX file's element type), else fp32."""
    return dtype or graph.meta.get("dtype") or "fp32"


class _Plain:
    """Converts a command-line value to int, float, str, Path, bool or a Literal choice,
    with click's messages."""

    NAMES = {int: "integer", float: "float"}

    def __init__(self, kind, info, many: bool):
        self.kind, self.info, self.many = kind, info, many

    def coerce(self, value, param, ctx):
        if value is None:
            return [] if self.many else None
        if self.many:
            return [self.one(v, param, ctx) for v in value]
        return self.one(value, param, ctx)

    def one(self, value, param, ctx):
        kind = self.kind
        if get_origin(kind) is Literal:
            if value not in get_args(kind):
                choices = ", ".join(repr(c) for c in get_args(kind))
                raise typer.BadParameter(f"{value!r} is not one of {choices}.", ctx, param)
            return value
        if kind is bool:
            return value if isinstance(value, bool) else \
                str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on")
        if kind is Path:
            return self.path(value, param, ctx)
        if kind is str:
            return value if isinstance(value, str) else str(value)
        return self.number(value, param, ctx)

    def number(self, value, param, ctx):
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a valid {self.NAMES[self.kind]}.",
                                     ctx, param) from None
        lo, hi = self.info.min, self.info.max
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            bounds = f"{'' if lo is None else f'{lo}<='}x{'' if hi is None else f'<={hi}'}"
            raise typer.BadParameter(f"{number} is not in the range {bounds}.", ctx, param)
        return number

    def path(self, value, param, ctx):
        path = Path(value)
        if getattr(self.info, "exists", False) and not path.exists():
            raise typer.BadParameter(f"'{path}' does not exist.", ctx, param)
        if getattr(self.info, "dir_okay", True) is False and path.is_dir():
            raise typer.BadParameter(f"'{path}' is a directory.", ctx, param)
        return path


def _plain(param):
    """A ``_Plain`` for this typer parameter, or None if its type is not a plain one."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return None
    kind, many = desc.annotation, False
    if get_origin(kind) is list and get_args(kind) == (str,):
        kind, many = str, True
    plain = (str, int, float, bool, Path)
    literal = get_origin(kind) is Literal and all(isinstance(a, str) for a in get_args(kind))
    return _Plain(kind, desc.parameter_info, many) if kind in plain or literal else None


class FastParams:
    """Mixin for typer commands and groups: plain parameter types skip typer's pydantic
    conversion (see the module docstring). A no-op on typer versions without it."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "_runtime_param", False) is None:
                p._runtime_param = _plain(p)
        return params


class Command(FastParams, TyperCommand):
    """A typer command with fast plain-type conversion."""


class Commands(dict):
    """A module's commands by name, each on its own typer app, so that running one
    command converts only that one to click (the whole set costs ~10 ms a call)."""

    def command(self, name: str | None = None, *, panel: str):
        """Decorator: register a function as the command ``name`` in help panel ``panel``."""

        def register(f):
            app = typer.Typer(add_completion=False, rich_markup_mode="markdown")
            app.command(name, cls=Command, rich_help_panel=panel)(f)
            self[name or f.__name__] = app
            return f

        return register
