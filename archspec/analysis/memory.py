"""Peak activation memory under the op-by-op execution model.

Every primitive op materialises its output; a tensor stays alive until its last
consumer has run (graph outputs until the end), so residual inputs and SE inputs stay
alive across their block. Ops that only re-view their input (flatten, dropout at
inference, channel slice) allocate nothing and extend the life of the tensor they view.
The schedule is the graph's topological order unless another is given. Weights are not
counted (they are not activations). See docs/memory.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Graph
from .cost import DTYPE_BYTES, _numel

VIEW_OPS = frozenset({"flatten", "dropout", "slice"})


@dataclass
class MemoryReport:
    model: str
    peak_bytes: int
    peak_at: str                      # the op running when the peak occurs
    live_at_peak: list = field(default_factory=list)   # tensors (producer names) alive then
    timeline: list = field(default_factory=list)       # (op name, live bytes) per step
    batch: int = 1
    dtype: str = "fp32"

    def to_dict(self) -> dict:
        return {"model": self.model, "peak_bytes": self.peak_bytes, "peak_at": self.peak_at,
                "live_at_peak": self.live_at_peak, "batch": self.batch, "dtype": self.dtype,
                "timeline": [{"op": n, "live_bytes": b} for n, b in self.timeline]}


def _roots(graph: Graph) -> dict[str, str]:
    """Each node -> the node whose buffer holds its output (itself unless a view)."""
    root = {}
    for node in graph:
        root[node.name] = root[node.inputs[0]] if node.kind in VIEW_OPS else node.name
    return root


def op_by_op(graph: Graph, order: list[str] | None = None, *, batch: int = 1,
             dtype: str = "fp32") -> MemoryReport:
    """Peak of the sum of live activation tensors over the schedule ``order``."""
    size = DTYPE_BYTES[dtype]
    order = list(order) if order is not None else [n.name for n in graph]
    root = _roots(graph)
    step = {name: i for i, name in enumerate(order)}
    last_use: dict[str, int] = {}
    for node in graph:
        r = root[node.name]
        last_use[r] = max(last_use.get(r, 0), step[node.name])
        for i in node.inputs:
            last_use[root[i]] = max(last_use.get(root[i], 0), step[node.name])
    for out in graph.outputs.values():
        last_use[root[out]] = len(order)
    nbytes = {n.name: _numel(n.shape) * batch * size for n in graph}
    live: dict[str, int] = {}
    peak, peak_at, live_at_peak, timeline = -1, "", [], []
    for i, name in enumerate(order):
        if root[name] == name:
            live[name] = nbytes[name]
        total = sum(live.values())
        timeline.append((name, total))
        if total > peak:
            peak, peak_at, live_at_peak = total, name, sorted(live, key=step.get)
        for r in [r for r in live if last_use.get(r, -1) <= i]:
            del live[r]
    return MemoryReport("op_by_op", peak, peak_at, live_at_peak, timeline, batch, dtype)
