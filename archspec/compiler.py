"""Spec -> graph IR: expand each table row into its blocks (repeats, strides, width
scaling) and let each block's lowering add its primitive ops; then name the taps and
lower the heads, whose outputs become the graph's (docs/heads.md)."""
from __future__ import annotations

import itertools
import math

from .blocks import BLOCKS, BlockBuilder
from .spec.blame import RowFailure, blame
from .errors import CompileError, Problem, SpecError, close_match
from .ir import ops
from .ir.graph import MAX_GRAPH_NODES, Graph
from .ir.ops import ShapeError
from .spec.model import Row, Spec
from .vocab import make_divisible


def scaled_fields(row: Row, spec: Spec) -> dict:
    """Row fields with channel counts scaled by the width multiplier and rounded."""
    f = dict(row.fields)
    if row.section == "head" and row.block == "classifier" and f.get("c") is None:
        f["c"] = spec.classes
    if not f.get("scale", True):
        return f
    width = max(spec.width, f.get("min_width") or 0.0)
    for key in block_def(row.block)[1]:
        if f.get(key) is not None:
            f[key] = make_divisible(f[key] * width, spec.divisor)
    return f


_DEFS: dict = {}   # block name -> (registry generation, BlockDef, its scaled fields)


def block_def(name: str) -> tuple:
    """(the BlockDef, its scaled fields) of a block name, looked up once per registry
    generation (sweeps look blocks up by the million)."""
    found = _DEFS.get(name)
    if found is None or found[0] != BLOCKS.generation:
        block = BLOCKS.get(name)
        found = _DEFS[name] = (BLOCKS.generation, block, block.scaled)
    return found[1:]


def compile_spec(spec: Spec, *, max_nodes: int | None = None) -> Graph:
    """Lower a spec to its graph. Shape problems become located SpecErrors, blamed on
    what caused them: an override, a `patch:` entry, or else the row itself.

    ``max_nodes`` bounds the graph (default: $ARCHSPEC_MAX_NODES or 200,000)."""
    if max_nodes is None:
        max_nodes = _env_max_nodes()
    try:
        return _compile(spec, max_nodes)
    except RowFailure as failure:
        raise SpecError(blame(spec, failure, lambda s: _failure(s, max_nodes))) from None


def _compile(spec: Spec, max_nodes: int) -> Graph:
    graph = Graph(spec.name, meta=_meta(spec), max_nodes=max_nodes)
    x = graph.add("input", ops.Input((spec.channels, *spec.size)))
    scopes = {"input": x}  # each row's and block's output, by name
    for row, fields, prefix, stage in walk_blocks(spec):
        x = scopes[prefix] = lower_block(graph, row, fields, x, prefix, stage, spec)
        if row.section == "stages":
            scopes[stage] = x
            mark_level(graph, x, spec.resolution)
    if spec.head or not spec.heads:
        graph.outputs["output"] = x
    _name_taps(graph, spec, scopes)
    for row in spec.heads:
        for name, node in _lower_head(graph, row, spec).items():
            graph.outputs[f"{row.label}.{name}" if len(spec.heads) > 1 else name] = node
    return graph


def walk_blocks(spec: Spec, rows=None):
    """Each block of the spec's stages and head in compile order: (row, its fields --
    scaled, repeated, scheduled --, prefix ``stages.3.block1`` or ``head.0``, stage
    ``stages.3`` or ``head``). ``rows``: only the blocks of the rows at these indices of
    ``spec.stages + spec.head``."""
    for i, walked in enumerate(walk_rows(spec)):
        if rows is None or i in rows:
            for fields, prefix, stage in row_blocks(*walked):
                yield walked[0], fields, prefix, stage


def walk_rows(spec: Spec):
    """Each row of the spec's stages and head in compile order, with what its blocks are
    made of (:func:`row_blocks` makes them): (row, its scaled fields -- a stage row's
    without ``n`` --, how many blocks, the scheduled ``c`` of each block or None)."""
    scheduled = iter(schedule_channels(spec))
    for row in spec.stages:
        fields = scaled_fields(row, spec)
        count = repeat_count(fields.pop("n", 1), _depth(row, spec))
        channels = tuple(itertools.islice(scheduled, count)) \
            if _takes_schedule(row, spec) else None
        yield row, fields, count, channels
    for row in spec.head:
        yield row, scaled_fields(row, spec), 1, None


def row_blocks(row: Row, fields: dict, count: int, channels):
    """The blocks of one row of :func:`walk_rows`: (fields, prefix, stage) of each; the
    first block has the row's stride, the others stride 1."""
    if row.section == "head":
        yield fields, f"head.{row.index}", "head"
        return
    stage = f"stages.{row.index}"
    for j in range(count):
        block = fields if j == 0 or "s" not in fields else {**fields, "s": 1}
        if channels is not None:
            block = {**block, "c": channels[j]}
        yield block, f"{stage}.block{j}", stage


def _meta(spec: Spec) -> dict:
    meta = {"spec": spec.name, "file": spec.file, "resolution": spec.resolution,
            "channels": spec.channels, "width": spec.width, "classes": spec.classes}
    if spec.input_width:
        meta["input_size"] = list(spec.size)
    if spec.heads:
        meta["heads"] = {row.prefix: row.block for row in spec.heads}
    return meta


def _name_taps(graph: Graph, spec: Spec, scopes: dict) -> None:
    """Add the spec's `taps:` to the graph's taps (beside the automatic C<k>); a path
    that names no row, block or layer is a located problem."""
    problems = []
    for tap in spec.taps:
        node = tap_node(graph, scopes, tap.path)
        if node is None:
            close = _suggestion(graph, scopes, tap.path)
            problems.append(Problem(tap.location, f"tap `{tap.name}`: {spec.name} has no "
                                    f"row, block or layer `{tap.path}`",
                                    (f"did you mean `{close}`? " if close else "")
                                    + "name a row (stages.16), a block (stages.13.block0) or "
                                    "a layer inside one (stages.13.block0.expand); `archspec "
                                    "cost --per layer` lists the names"))
        else:
            graph.taps[tap.name] = node
    if problems:
        raise SpecError(problems)


def tap_node(graph: Graph, scopes: dict, path: str) -> str | None:
    """The node a tap path names: a row's or block's output, a layer, or the last node
    of a part of a block (``stages.13.block0.expand``: its activation); None if none."""
    if path in scopes:
        return scopes[path]
    if path in graph:
        return path
    inside = [n.name for n in graph if n.name.startswith(path + ".")]
    return inside[-1] if inside else None


def _suggestion(graph: Graph, scopes: dict, path: str) -> str | None:
    """A path close to ``path`` that names a node: the same with ``block0`` after the row
    (``stages.13.expand``), else the closest name."""
    parts = path.split(".")
    if len(parts) > 2 and not parts[2].startswith("block"):
        guess = ".".join([*parts[:2], "block0", *parts[2:]])
        if tap_node(graph, scopes, guess):
            return guess
    return close_match(path, _scope_names(graph, scopes))


def _scope_names(graph: Graph, scopes: dict) -> list[str]:
    names = set(scopes)
    for node in graph:
        parts = node.name.split(".")
        names.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return sorted(names)


def _lower_head(graph: Graph, row: Row, spec: Spec) -> dict[str, str]:
    """Lower a `heads` entry on the taps it reads: its outputs by name."""
    missing = [t for t in row.inputs if t not in graph.taps]
    if missing:
        close = close_match(missing[0], graph.taps)
        raise SpecError(Problem(row.where("from"), f"head `{row.label}` reads tap "
                                f"`{missing[0]}`, which {spec.name} does not have",
                                (f"did you mean `{close}`? " if close else "") + "taps: "
                                + (", ".join(sorted(graph.taps)) or "none")
                                + " (name more under `taps:`)"))
    return lower_block(graph, row, dict(row.fields), tuple(graph.taps[t] for t in row.inputs),
                       row.prefix, row.prefix, spec)


def _failure(spec: Spec, max_nodes: int) -> RowFailure | None:
    """The row failure compiling ``spec`` raises, or None when it compiles."""
    try:
        _compile(spec, max_nodes)
    except RowFailure as failure:
        return failure
    except CompileError:
        return None
    return None


def _takes_schedule(row: Row, spec: Spec) -> bool:
    return bool(spec.schedule) and row.fields.get("c", 0) is None and \
        "c" in block_def(row.block)[0].declared


def schedule_channels(spec: Spec) -> list[int]:
    """Output widths for the stage blocks whose `c` is blank, from the spec's `schedule`.

    ``linear`` (ReXNet appendix C.1, clovaai rexnetv1.py): block i of N gets
    ``start + i * (end - start) / N`` channels times the width multiplier, accumulated and
    rounded as the reference code does (``round: python`` is Python's round-half-even,
    ``floor`` truncates). Below width 1 the start keeps its 1.0x value and only the slope
    scales (rexnetv1.py: ``inplanes = input_ch / width_mult``)."""
    if not spec.schedule:
        return []
    rows = [r for r in spec.stages if _takes_schedule(r, spec)]
    count = sum(repeat_count(r.fields.get("n", 1), _depth(r, spec)) for r in rows)
    start, end, width = spec.schedule["start"], spec.schedule["end"], spec.width
    rounding = round if spec.schedule.get("round", "python") == "python" else math.floor
    value = start / width if width < 1.0 else start
    out = []
    for i in range(count):
        if i:
            value += (end - start) / count
        out.append(int(rounding(value * width)))
    return out


def _env_max_nodes() -> int:
    import os

    text = os.environ.get("ARCHSPEC_MAX_NODES", "")
    try:
        return int(text) if text else MAX_GRAPH_NODES
    except ValueError:
        raise CompileError(f"ARCHSPEC_MAX_NODES must be a whole number, got {text!r}") from None


UNREPEATED = ("conv", "pool", "maxpool", "dropout", "classifier")  # single layers, never deepened


def _depth(row: Row, spec: Spec) -> float:
    """The spec's depth multiplier for ``row``: 1 for single layers (the stem, the last 1x1)."""
    return 1.0 if block_def(row.block)[0].name in UNREPEATED else spec.depth


def repeat_count(n, depth: float = 1.0) -> int:
    """ceil(n x depth) blocks for a row of n (timm `_scale_stage_depth`, depth_trunc 'ceil')."""
    n = n or 1
    return n if depth == 1.0 else int(math.ceil(n * depth))


def lower_block(graph, row: Row, fields, x, prefix, stage, spec) -> str:
    """Add one block of ``row`` (its ``fields``, named ``prefix``) on node(s) ``x`` to
    ``graph``; its output node. A shape or build problem is a RowFailure on ``row``."""
    block = block_def(row.block)[0]
    builder = BlockBuilder(graph, prefix, stage, block.name, spec.divisor,
                           (spec.bn_eps, spec.bn_momentum), spec.padding)
    try:
        return block.lower(builder, x, fields)
    except ShapeError as e:
        shape = " and ".join("x".join(map(str, graph[i].shape))
                             for i in ([x] if isinstance(x, str) else x))
        raise RowFailure(row, f"{block.name} ({prefix}) on input {shape}: {e}",
                         _shape_hint(str(e))) from None
    except CompileError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        raise RowFailure(row, f"{block.name} ({prefix}) cannot be built: {e}") from None


def _shape_hint(message: str) -> str:
    """What to check for a block's shape problem, by what the op said."""
    if "groups=" in message:
        return "choose groups that divide both channel counts"
    if "does not fit" in message:
        return "a kernel or window larger than its padded map: a larger input, or a " \
               "smaller kernel, window or stride"
    return "check c, s and k against the feature map size"


def mark_level(graph: Graph, x: str, resolution: int) -> None:
    """Record the last block output at each total stride as tap ``C<log2 stride>``."""
    shape = graph[x].shape
    if len(shape) == 3 and shape[1] >= 1:
        level = round(math.log2(max(resolution / shape[1], 1)))
        graph.taps[f"C{level}"] = x
