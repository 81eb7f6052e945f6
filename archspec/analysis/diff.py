"""Align two compiled networks stage by stage and block by block, and say how they differ.

Blocks are grouped by the total stride of their output (the paper's "stages": 1/2,
1/4, ... of the input resolution, so networks at different resolutions still align),
and aligned within a group by position (difflib's longest matching run of block
signatures first, so an inserted block does not shift every pair after it). Totals
equal the two sides' `cost` totals.
"""
from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

from ..ir.graph import Graph
from .cost import CostReport, cost

FIGURES = ("params", "madds", "elementwise", "mem_bytes", "peak_bytes")
# peak_bytes: the most activation memory alive while the block (stage) runs, op-by-op
# model; it aggregates by max, the others by sum
_MAX = {"peak_bytes"}


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
    figures: dict = field(default_factory=dict)

    def signature(self) -> tuple:
        return (self.type, self.kernel, self.se, self.hidden, tuple(self.shape), self.residual)


def block_infos(graph: Graph, report: CostReport) -> list[BlockInfo]:
    from .memory import op_by_op

    live = dict(op_by_op(graph, batch=report.batch, dtype=report.dtype).timeline)
    infos: dict[str, BlockInfo] = {}
    resolution = graph.meta.get("resolution") or 1
    for node in graph:
        if node.kind == "input":
            continue
        info = infos.setdefault(node.block, BlockInfo(node.block, node.block_type, [],
                                                      node.stage))
        info.shape = list(node.shape)
        if len(node.shape) == 3:
            info.stride = max(1, round(resolution / node.shape[1]))
        if node.kind == "conv2d":
            info.kernel = max(info.kernel, node.op.kernel)
        info.se |= node.kind == "mul"
        info.residual |= node.kind == "add"
        info.hidden = max(info.hidden, node.shape[0])
    for e in report.blocks:
        infos[e.name].figures = {k: getattr(e, k) for k in FIGURES if k not in _MAX}
        infos[e.name].figures["peak_bytes"] = 0
    for node in graph:
        if node.kind != "input":
            figures = infos[node.block].figures
            figures["peak_bytes"] = max(figures["peak_bytes"], live[node.name])
    return list(infos.values())


def level_of(info: BlockInfo) -> str:
    """The stage a block is aligned in: its output resolution, or "head"."""
    if info.stage == "head" or len(info.shape) != 3:
        return "head"
    return f"1/{info.stride}"


def differences(a: BlockInfo, b: BlockInfo) -> list[str]:
    notes = []
    if a.type != b.type:
        notes.append(f"block {a.type} -> {b.type}")
    if a.kernel != b.kernel:
        notes.append(f"kernel {a.kernel} -> {b.kernel}")
    if a.se != b.se:
        notes.append("SE added" if b.se else "SE removed")
    if a.shape[:1] != b.shape[:1]:
        notes.append(f"out channels {a.shape[0]} -> {b.shape[0]}")
    if a.hidden != b.hidden:
        notes.append(f"widest {a.hidden} -> {b.hidden}")
    if a.residual != b.residual:
        notes.append("shortcut added" if b.residual else "shortcut removed")
    return notes


@dataclass
class DiffRow:
    level: str
    a: BlockInfo | None
    b: BlockInfo | None
    notes: list

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
                                           "b": dict.fromkeys(self.keys, 0), "notes": []})
            for side in ("a", "b"):
                info = getattr(r, side)
                if info:
                    agg[f"{side}_blocks"] += 1
                    for k in self.keys:
                        value = info.figures.get(k, 0)
                        agg[side][k] = max(agg[side][k], value) if k in _MAX else \
                            agg[side][k] + value
            agg["notes"] += r.notes
        for agg in out.values():
            counts = Counter(agg["notes"])
            agg["notes"] = [n if counts[n] == 1 else f"{n} (x{counts[n]})" for n in counts]
            agg["delta"] = {k: agg["b"][k] - agg["a"][k] for k in self.keys}
            if agg["a_blocks"] != agg["b_blocks"]:
                agg["notes"].insert(0, f"{agg['a_blocks']} -> {agg['b_blocks']} blocks")
        return list(out.values())

    def to_dict(self, per: str = "stage") -> dict:
        rows = self.stage_rows() if per == "stage" else [
            {"level": r.level, "a": r.a.name if r.a else None, "b": r.b.name if r.b else None,
             "a_figures": r.a.figures if r.a else None,
             "b_figures": r.b.figures if r.b else None,
             "delta": r.delta(), "notes": r.notes} for r in self.rows]
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
                notes = differences(a, b)
            else:
                notes = [f"only in {'a' if a else 'b'}: {(a or b).type}"]
            rows.append(DiffRow(level, a, b, notes))
    return rows
