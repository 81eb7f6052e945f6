"""Cost analysis: each op kind's formula (``cost`` in its class, archspec/ir/ops.py, the
fvcore way), summed over the graph and aggregated per layer, block and stage.

Conventions (docs/conventions.md): MAdds count one multiply-accumulate per weight use in
conv and linear layers only (bias adds and BN excluded, as in the papers and in PyTorch's
FlopCounterMode / 2). Elementwise work (activations, adds, muls, unfolded BN, pooling) and
memory access (elements read + written, params read) are reported separately. An op kind
without a formula is an error, never zero.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..ir.graph import Graph
from ..ir.ops import OpCost, op_class
from ..ir.tensors import dtype_bytes, numel


def op_cost(node, in_shapes) -> OpCost:
    """The cost of one node for one image (the formula its op class defines, ir/ops.py);
    a kind outside the vocabulary is an error."""
    return op_class(node, "cost pass").cost(node.op, in_shapes, node.shape)


def totals(graph: Graph) -> OpCost:
    """Summed params, buffers, MAdds and elementwise work of a graph (batch 1): the fast
    path for sweeps, which need no per-row breakdown."""
    params = buffers = madds = elementwise = 0
    for node in graph:
        if node.kind != "input":
            c = op_cost(node, [graph[i].shape for i in node.inputs])
            params += c.params
            buffers += c.buffers
            madds += c.madds
            elementwise += c.elementwise
    return OpCost(params, buffers, madds, elementwise)


@dataclass
class Entry:
    """One row of a cost report: a layer (primitive op), a block or a stage."""

    name: str
    type: str
    shape: list
    params: int = 0
    buffers: int = 0
    madds: int = 0
    elementwise: int = 0
    mem_bytes: int = 0
    act_bytes: int = 0

    def absorb(self, other: Entry) -> None:
        self.params += other.params
        self.buffers += other.buffers
        self.madds += other.madds
        self.elementwise += other.elementwise
        self.mem_bytes += other.mem_bytes
        self.act_bytes += other.act_bytes


@dataclass
class CostReport:
    """The cost of one graph. ``rows(per)`` gives layers, blocks or stages."""

    name: str
    input: dict
    width: float
    classes: int
    batch: int
    dtype: str
    totals: Entry
    layers: list = field(default_factory=list)
    blocks: list = field(default_factory=list)
    stages: list = field(default_factory=list)
    peak_bytes: int = 0   # peak activation memory, op-by-op model (analysis/memory.py)
    peak_at: str = ""
    notes: list = field(default_factory=list)  # how to read the figures (graph.meta)
    parts: list = field(default_factory=list)  # with heads: the backbone, then each head

    def rows(self, per: str = "stage") -> list[Entry]:
        try:
            return {"layer": self.layers, "block": self.blocks, "stage": self.stages}[per]
        except KeyError:
            raise ValueError(f"per must be layer, block or stage, not {per!r}") from None

    def to_dict(self, per: str = "stage") -> dict:
        totals = asdict(self.totals)
        for key in ("name", "type", "shape", "act_bytes"):
            totals.pop(key)
        return {
            "schema": "archspec.cost/1",
            "name": self.name,
            "input": self.input,
            "width": self.width,
            "classes": self.classes,
            "batch": self.batch,
            "dtype": self.dtype,
            "totals": totals,
            "memory": {"model": "op_by_op", "peak_bytes": self.peak_bytes,
                       "peak_at": self.peak_at},
            "per": per,
            "rows": [_row_dict(e) for e in self.rows(per)],
            "notes": list(self.notes),
            **({"parts": [_row_dict(e) for e in self.parts]} if self.parts else {}),
        }

    def to_json(self, per: str = "stage") -> str:
        return json.dumps(self.to_dict(per), indent=2)


def _row_dict(e: Entry) -> dict:
    d = asdict(e)
    d["output_shape"] = d.pop("shape")
    return d


def cost(graph: Graph, *, batch: int = 1, dtype: str = "fp32") -> CostReport:
    """Cost every node of ``graph`` and aggregate per block and per stage.

    ``mem_bytes`` is memory access: (inputs read + output written) x batch + params, in
    bytes of ``dtype``; ``act_bytes`` is the node's output tensor size."""
    size = dtype_bytes(dtype)
    layers, blocks, stages = [], {}, {}
    totals = Entry("total", graph.name, [])
    for node in graph:
        if node.kind == "input":
            continue
        in_shapes = [graph[i].shape for i in node.inputs]
        c = op_cost(node, in_shapes)
        act = numel(node.shape) * batch
        touched = sum(numel(s) for s in in_shapes) * batch + act + c.params
        e = Entry(node.name, node.kind, list(node.shape), c.params, c.buffers,
                  c.madds * batch, c.elementwise * batch, touched * size, act * size)
        layers.append(e)
        for key, table, typ in ((node.block, blocks, node.block_type),
                                (node.stage, stages,
                                 "head" if node.stage == "head" else node.block_type)):
            agg = table.setdefault(key, Entry(key, typ, []))
            agg.absorb(e)
            agg.shape = list(node.shape)
        totals.absorb(e)
    totals.shape = list(graph[next(iter(graph.outputs.values()))].shape)
    from .memory import op_by_op

    mem = op_by_op(graph, batch=batch, dtype=dtype)
    meta = graph.meta
    hw = {"size": meta["input_size"]} if meta.get("input_size") else {}
    return CostReport(graph.name, {"resolution": meta.get("resolution"),
                                   "channels": meta.get("channels"), **hw},
                      meta.get("width", 1.0), meta.get("classes"), batch, dtype, totals,
                      layers, list(blocks.values()), list(stages.values()),
                      mem.peak_bytes, mem.peak_at, list(meta.get("notes", ())),
                      _parts(graph, list(stages.values())))


def _parts(graph: Graph, stages: list[Entry]) -> list[Entry]:
    """With heads (docs/heads.md): one entry for the backbone (the stage table and its
    `head`), then one per head (``heads.<name>``); none without heads."""
    heads = graph.meta.get("heads") or {}
    if not heads:
        return []
    backbone = Entry("backbone", "backbone", [])
    out = [backbone]
    for e in stages:
        if e.name in heads:
            out.append(Entry(e.name, heads[e.name], e.shape, e.params, e.buffers, e.madds,
                             e.elementwise, e.mem_bytes, e.act_bytes))
        else:
            backbone.absorb(e)
            backbone.shape = e.shape
    return out
