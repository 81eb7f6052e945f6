"""Align two compiled networks stage by stage and block by block, and say how they differ.

Blocks are grouped by the total stride of their output (the paper's "stages": 1/2,
1/4, ... of the input resolution, so networks at different resolutions still align),
and aligned within a group by position (difflib's longest matching run of block
signatures first, so an inserted block does not shift every pair after it). Totals
equal the two sides' `cost` totals.

Two matched blocks of one type are compared op by op: ops pair up by their name inside
the block (``expand.act``, ``se.fc1``), and every setting of an op's payload that differs
(nonlinearity, kernel, stride, groups, dilation, bias, dropout, shortcut, identity
fraction alpha...) is a named change, as is a part present on one side only (SE, a
variant's extra depthwise). Channel counts are summed up by the block's out channels and
widest tensor.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field

from ..ir.graph import Graph, Node
from .cost import CostReport, cost

FIGURES = ("params", "madds", "elementwise", "mem_bytes", "peak_bytes")
# peak_bytes: the most activation memory alive while the block (stage) runs, op-by-op
# model; it aggregates by max, the others by sum
_MAX = {"peak_bytes"}
# payload fields that are channel counts (summed up per block instead), and how a
# reader names the others
_CHANNEL_FIELDS = {"in_channels", "out_channels", "channels", "in_features", "out_features",
                   "shape", "start", "stop"}
_LABELS = {"fn": "nl", "p": "dropout", "partial": "shortcut"}
# the value a setting has where its op is absent (no identity slice: alpha 1)
_ABSENT = {"alpha": 1.0}
_PART_NAMES = {"se": "SE", "add": "shortcut"}


@dataclass
class BlockInfo:
    """What a reader compares between two blocks."""

    name: str
    type: str
    shape: list
    stage: str = ""
    stride: int = 1           # input resolution / output resolution
    kernel: int = 1           # largest spatial kernel in the block
    se: bool = False          # has a squeeze-excite (channel scaling)
    hidden: int = 0           # widest tensor inside the block (channels)
    residual: bool = False
    nl: tuple = ()            # the nonlinearities used, sorted
    figures: dict = field(default_factory=dict)
    ops: dict = field(default_factory=dict)   # name inside the block -> op settings
    layers: dict = field(default_factory=dict)  # name inside the block -> node name

    def signature(self) -> tuple:
        return (self.type, self.kernel, self.se, self.hidden, tuple(self.shape), self.residual)


@dataclass
class Change:
    """One difference between matched blocks: ``field`` went from ``a`` to ``b`` in the
    block's parts ``where`` (a part present on one side only: field ``part``, the
    missing side None)."""

    field: str
    a: object
    b: object
    where: list = field(default_factory=list)

    def __str__(self) -> str:
        if self.field == "part":
            name = _PART_NAMES.get(self.a or self.b, self.a or self.b)
            return f"{name} {'added' if self.a is None else 'removed'}"
        where = f" ({', '.join(self.where)})" if self.where else ""
        return f"{self.field} {_fmt(self.a)} -> {_fmt(self.b)}{where}"


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings(node: Node, in_channels: int = 0) -> dict:
    """An op's payload as a reader names it, channel counts left out."""
    out = {}
    for f in dataclasses.fields(node.op):
        if f.name in _CHANNEL_FIELDS:
            continue
        value = getattr(node.op, f.name)
        if node.kind == "conv2d" and f.name == "groups" and 1 < value == node.op.in_channels:
            value = "depthwise"
        elif f.name == "partial":
            value = "partial" if value else "full"
        out[_LABELS.get(f.name, f.name)] = value
    if node.kind == "slice" and in_channels:
        out["alpha"] = round((node.op.stop - node.op.start) / in_channels, 3)
    return out


def block_infos(graph: Graph, report: CostReport) -> list[BlockInfo]:
    """Each block's :class:`BlockInfo`. A 2-D (rows, features) tensor, SSDLite's (anchors,
    4) boxes, has its features as channels; a model output's rows are a setting, ``rows``."""
    from .memory import op_by_op

    live = dict(op_by_op(graph, batch=report.batch, dtype=report.dtype).timeline)
    infos: dict[str, BlockInfo] = {}
    resolution = graph.meta.get("resolution") or 1
    outputs = set(graph.outputs.values())
    for node in graph:
        if node.kind == "input":
            continue
        info = infos.setdefault(node.block, BlockInfo(node.block, node.block_type, [],
                                                      node.stage))
        rows = node.shape[:-1] if len(node.shape) == 2 else ()
        info.shape = list(node.shape[len(rows):])
        if len(node.shape) == 3:
            info.stride = max(1, round(resolution / node.shape[1]))
        if node.kind == "conv2d":
            info.kernel = max(info.kernel, node.op.kernel)
        if node.kind == "activation" and node.op.fn not in info.nl:
            info.nl = tuple(sorted((*info.nl, node.op.fn)))
        info.se |= node.kind == "mul"
        info.residual |= node.kind == "add"
        info.hidden = max(info.hidden, info.shape[0])
        in_channels = graph[node.inputs[0]].shape[0] if node.inputs else 0
        info.ops[_inner_name(node)] = settings(node, in_channels) | \
            ({"rows": rows[0]} if rows and node.name in outputs else {})
        info.layers[_inner_name(node)] = node.name
    for e in report.blocks:
        infos[e.name].figures = {k: getattr(e, k) for k in FIGURES if k not in _MAX}
        infos[e.name].figures["peak_bytes"] = 0
    for node in graph:
        if node.kind != "input":
            figures = infos[node.block].figures
            figures["peak_bytes"] = max(figures["peak_bytes"], live[node.name])
    return list(infos.values())


def _inner_name(node: Node) -> str:
    prefix = node.block + "."
    return node.name[len(prefix):] if node.block and node.name.startswith(prefix) else node.name


def _same(a, b) -> bool:
    """Equal settings; floats to single precision (an ONNX file stores float32)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6)
    return a == b


def level_of(info: BlockInfo) -> str:
    """The stage a block is aligned in: its output resolution, or "head"."""
    if info.stage == "head" or len(info.shape) != 3:
        return "head"
    return f"1/{info.stride}"


def differences(a: BlockInfo, b: BlockInfo) -> list[Change]:
    """Every difference between two matched blocks: op by op when they are of one type,
    else in summary (kernel, SE, shortcut, nonlinearities)."""
    changes = []
    if a.type != b.type:
        changes.append(Change("block", a.type, b.type))
    if a.shape[:1] != b.shape[:1]:
        changes.append(Change("out channels", a.shape[0], b.shape[0]))
    if a.hidden != b.hidden:
        changes.append(Change("widest", a.hidden, b.hidden))
    return changes + (op_changes(a.ops, b.ops) if a.type == b.type else _summary(a, b))


def _summary(a: BlockInfo, b: BlockInfo) -> list[Change]:
    changes = []
    if a.kernel != b.kernel:
        changes.append(Change("kernel", a.kernel, b.kernel))
    for part, has_a, has_b in (("se", a.se, b.se), ("add", a.residual, b.residual)):
        if has_a != has_b:
            changes.append(Change("part", part if has_a else None, part if has_b else None))
    if a.nl != b.nl:
        changes.append(Change("nl", "/".join(a.nl) or "none", "/".join(b.nl) or "none"))
    return changes


def op_changes(a: dict, b: dict) -> list[Change]:
    """Changes between two blocks' ops (name inside the block -> settings): a setting
    that differs, grouped over the parts it differs in, or an op on one side only."""
    fields: dict[tuple, list] = {}   # (setting, value a, value b) -> parts
    parts: dict[tuple, None] = {}    # (part only in a, part only in b), in order
    for name in dict.fromkeys([*a, *b]):
        part = name.split(".")[0]
        if name in a and name in b:
            for key in dict.fromkeys([*a[name], *b[name]]):
                va, vb = a[name].get(key), b[name].get(key)
                if not _same(va, vb):
                    _add_part(fields.setdefault((key, va, vb), []), part)
        else:
            _one_sided(name, a, b, fields, parts)
    return [Change(k, va, vb, [] if where == [k] else where)
            for (k, va, vb), where in fields.items()] + \
        [Change("part", pa, pb) for pa, pb in parts]


def _one_sided(name: str, a: dict, b: dict, fields: dict, parts: dict) -> None:
    """An op on one side only: a setting with a value where it is absent (alpha) is a
    setting change, anything else names the op's part (or the op, if its part is on
    both sides) as added or removed."""
    part = name.split(".")[0]
    in_a = name in a
    present = a[name] if in_a else b[name]
    for key in present.keys() & _ABSENT.keys():
        pair = (present[key], _ABSENT[key]) if in_a else (_ABSENT[key], present[key])
        _add_part(fields.setdefault((key, *pair), []), part)
    if present and present.keys() <= _ABSENT.keys():
        return
    other = b if in_a else a
    label = name if any(n.split(".")[0] == part for n in other) else part
    parts[(label, None) if in_a else (None, label)] = None


def _add_part(where: list, part: str) -> None:
    if part not in where:
        where.append(part)


@dataclass
class DiffRow:
    level: str
    a: BlockInfo | None
    b: BlockInfo | None
    notes: list
    changes: list = field(default_factory=list)

    def delta(self) -> dict:
        fa = self.a.figures if self.a else {}
        fb = self.b.figures if self.b else {}
        return {k: fb.get(k, 0) - fa.get(k, 0) for k in dict.fromkeys([*fa, *fb])}


@dataclass
class DiffReport:
    a: CostReport
    b: CostReport
    rows: list
    latency_ms: tuple | None = None   # (a, b) predicted totals, with a latency profile

    @property
    def keys(self) -> tuple[str, ...]:
        return FIGURES + (("latency_ms",) if self.latency_ms else ())

    def stage_rows(self) -> list[dict]:
        """Rows summed per level (spatial resolution), in network order."""
        out: dict[str, dict] = {}
        for r in self.rows:
            agg = out.setdefault(r.level, {"level": r.level, "a_blocks": 0, "b_blocks": 0,
                                           "a": dict.fromkeys(self.keys, 0),
                                           "b": dict.fromkeys(self.keys, 0), "rows": []})
            for side in ("a", "b"):
                info = getattr(r, side)
                if info:
                    agg[f"{side}_blocks"] += 1
                    for k in self.keys:
                        value = info.figures.get(k, 0)
                        agg[side][k] = max(agg[side][k], value) if k in _MAX else \
                            agg[side][k] + value
            agg["rows"].append(r)
        for agg in out.values():
            agg["notes"] = merged_notes(agg.pop("rows"))
            agg["delta"] = {k: agg["b"][k] - agg["a"][k] for k in self.keys}
            if agg["a_blocks"] != agg["b_blocks"]:
                agg["notes"].insert(0, f"{agg['a_blocks']} -> {agg['b_blocks']} blocks")
        return list(out.values())

    def to_dict(self, per: str = "stage") -> dict:
        rows = self.stage_rows() if per == "stage" else [
            {"level": r.level, "a": r.a.name if r.a else None, "b": r.b.name if r.b else None,
             "a_figures": r.a.figures if r.a else None,
             "b_figures": r.b.figures if r.b else None,
             "delta": r.delta(), "notes": r.notes,
             "changes": [dataclasses.asdict(c) for c in r.changes]} for r in self.rows]
        ta, tb = self.a.to_dict("block")["totals"], self.b.to_dict("block")["totals"]
        totals = {"a": ta, "b": tb, "delta": {k: tb[k] - ta[k] for k in ta},
                  "peak_bytes": {"a": self.a.peak_bytes, "b": self.b.peak_bytes,
                                 "delta": self.b.peak_bytes - self.a.peak_bytes}}
        if self.latency_ms:
            la, lb = self.latency_ms
            totals["latency_ms"] = {"a": la, "b": lb, "delta": lb - la}
        return {"schema": "archspec.diff/1", "per": per,
                "a": self.a.to_dict(per), "b": self.b.to_dict(per),
                "rows": rows, "totals": totals}


def merged_notes(rows: list[DiffRow]) -> list[str]:
    """The notes of several rows, each change once with the union of its parts and the
    number of rows it occurs in."""
    merged: dict = {}
    for r in rows:
        for item in r.changes or r.notes:
            if isinstance(item, Change):
                key = (item.field, repr(item.a), repr(item.b))
                entry = merged.setdefault(key, [dataclasses.replace(item, where=[]), 0])
                entry[0].where += [w for w in item.where if w not in entry[0].where]
            else:
                entry = merged.setdefault(item, [item, 0])
            entry[1] += 1
    return [str(item) if n == 1 else f"{item} (x{n})" for item, n in merged.values()]


def diff(graph_a: Graph, graph_b: Graph, *, latency=None, **cost_kw) -> DiffReport:
    """``latency``: optional ``graph -> (ms per block, total ms)`` (a latency profile's
    prediction); it adds a ``latency_ms`` figure to every block and stage."""
    ra, rb = cost(graph_a, **cost_kw), cost(graph_b, **cost_kw)
    ia, ib = block_infos(graph_a, ra), block_infos(graph_b, rb)
    totals_ms = None
    if latency is not None:
        totals_ms = []
        for graph, infos in ((graph_a, ia), (graph_b, ib)):
            per_block, total = latency(graph)
            totals_ms.append(total)
            for info in infos:
                info.figures["latency_ms"] = per_block.get(info.name, 0.0)
    rows = []
    for level in _levels(ia, ib):
        la = [i for i in ia if level_of(i) == level]
        lb = [i for i in ib if level_of(i) == level]
        rows += _align(level, la, lb)
    return DiffReport(ra, rb, rows, tuple(totals_ms) if totals_ms else None)


def _levels(ia, ib) -> list[str]:
    """Levels from the finest stride to the coarsest, then the head."""
    levels = {level_of(i) for i in (*ia, *ib)}
    return sorted(levels, key=lambda lvl: float("inf") if lvl == "head" else
                  int(lvl.split("/")[1]))


def _align(level, la, lb) -> list[DiffRow]:
    sm = difflib.SequenceMatcher(a=[i.signature() for i in la], b=[i.signature() for i in lb],
                                 autojunk=False)
    rows = []
    for _tag, a0, a1, b0, b1 in sm.get_opcodes():
        pairs = max(a1 - a0, b1 - b0)
        for k in range(pairs):
            a = la[a0 + k] if a0 + k < a1 else None
            b = lb[b0 + k] if b0 + k < b1 else None
            if a and b:
                changes = differences(a, b)
                rows.append(DiffRow(level, a, b, [str(c) for c in changes], changes))
            else:
                rows.append(DiffRow(level, a, b, [f"only in {'a' if a else 'b'}: {(a or b).type}"]))
    return rows


def slots(d: DiffReport, per: str = "block") -> list[tuple[str, list, list]]:
    """Positions along the depth for a side-by-side view of the two networks, aligned as
    the diff aligns them: ``(level, names in a, names in b)`` each, a side without a
    counterpart having no names. ``per``: block, layer (the ops of matched blocks paired
    by their name inside the block) or stage (the levels)."""
    if per == "stage":
        return [(r["level"], [x.a.name for x in d.rows if x.level == r["level"] and x.a],
                 [x.b.name for x in d.rows if x.level == r["level"] and x.b])
                for r in d.stage_rows()]
    if per == "block":
        return [(r.level, [r.a.name] if r.a else [], [r.b.name] if r.b else [])
                for r in d.rows]
    if per != "layer":
        raise ValueError(f"per must be layer, block or stage, not {per!r}")
    return [(r.level, a, b) for r in d.rows for a, b in _layer_pairs(r.a, r.b)]


def _layer_pairs(a: BlockInfo | None, b: BlockInfo | None) -> list[tuple[list, list]]:
    la, lb = list(a.layers) if a else [], list(b.layers) if b else []
    sm = difflib.SequenceMatcher(a=la, b=lb, autojunk=False)
    out = []
    for tag, a0, a1, b0, b1 in sm.get_opcodes():
        if tag == "equal":
            out += [([a.layers[n]], [b.layers[n]]) for n in la[a0:a1]]
            continue
        out += [([a.layers[n]], []) for n in la[a0:a1]]
        out += [([], [b.layers[n]]) for n in lb[b0:b1]]
    return out
