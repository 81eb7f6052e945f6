"""Arena planning: an offset for every activation buffer inside one memory block.

A buffer (a node's output; views share their source's) occupies ``[offset, offset + size)``
from the step that writes it to the last step that reads it, in an op-by-op schedule
(analysis/memory.py). Two buffers whose lifetimes overlap must not overlap in memory.
The arena is the largest ``offset + size``; it can never be below the op-by-op peak of
the same schedule (the theoretical peak), which is the figure each plan is judged by.

``greedy_by_size`` is TensorFlow Lite Micro's GreedyMemoryPlanner: buffers by size,
largest first, each at the lowest offset that fits among the already-placed buffers it
is alive with. ``plan`` also tries other placement orders (longest lifetime first, largest
size x lifetime first, by first use: the "greedy by breadth" order of Pisarchyk & Lee,
2020) and keeps the smallest arena, so it is never worse than the baseline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.graph import Graph
from .memory import lifetimes, op_by_op, scratch_bytes, tensor_bytes

ALIGN = 64   # bytes; TFLite Micro aligns to 16, CPU SIMD and cache lines prefer 64


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    method: str
    arena_bytes: int
    peak_bytes: int                 # op-by-op peak of the same schedule: the lower bound
    offsets: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)
    baseline: dict = field(default_factory=dict)   # greedy by size (TFLite Micro)
    candidates: dict = field(default_factory=dict)  # method -> arena bytes

    @property
    def overhead(self) -> float:
        return self.arena_bytes / self.peak_bytes - 1 if self.peak_bytes else 0.0

    def to_dict(self, graph: Graph | None = None) -> dict:
        rows = []
        for b in sorted(self.buffers, key=lambda b: (b.first, b.name)):
            row = {"name": b.name, "offset": self.offsets[b.name], "size": b.size,
                   "first_step": b.first, "last_step": b.last}
            if graph is not None:
                row["shape"] = list(graph[b.name].shape)
            rows.append(row)
        return {"schema": "archspec.arena/1", "method": self.method,
                "arena_bytes": self.arena_bytes, "peak_bytes": self.peak_bytes,
                "overhead": round(self.overhead, 6), "alignment": ALIGN,
                "baseline": self.baseline, "candidates": self.candidates, "tensors": rows}

    def write(self, path: str | Path, graph: Graph | None = None) -> None:
        from ..fsutil import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(graph), indent=1) + "\n")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def buffers(graph: Graph, order: list[str] | None = None, *, batch: int = 1,
            dtype: str = "fp32") -> list[Buffer]:
    """Every activation buffer, and each op's temporary (``<node>.scratch``: a conv's padded
    input copy) alive for its own step."""
    nbytes = tensor_bytes(graph, batch, dtype)
    order = list(order) if order is not None else [n.name for n in graph]
    temps = [Buffer(f"{name}.scratch", size, i, i) for i, name in enumerate(order)
             if (size := scratch_bytes(graph, graph[name], batch, dtype))]
    return [Buffer(name, nbytes[name], first, last)
            for name, (first, last) in lifetimes(graph, order).items()] + temps


def place(bufs: list[Buffer], key) -> dict[str, int]:
    """Offsets from placing ``bufs`` in the order ``key`` gives, each at the lowest
    aligned offset where it overlaps no placed buffer that is alive at the same time."""
    placed: list[tuple[int, int, Buffer]] = []   # (offset, end, buffer)
    offsets = {}
    for b in sorted(bufs, key=key):
        busy = sorted((o, e) for o, e, other in placed if other.overlaps(b))
        offset = 0
        for o, e in busy:
            if offset + b.size <= o:
                break
            offset = max(offset, _align(e))
        offsets[b.name] = offset
        placed.append((offset, offset + b.size, b))
    return offsets


ORDERS = {
    "greedy_by_size": lambda b: (-b.size, b.first),
    "greedy_by_lifetime": lambda b: (-(b.last - b.first), -b.size, b.first),
    "greedy_by_area": lambda b: (-b.size * (b.last - b.first + 1), b.first),
    "greedy_by_breadth": lambda b: (b.first, -b.size),
}


def arena_size(bufs: list[Buffer], offsets: dict[str, int]) -> int:
    return max((offsets[b.name] + b.size for b in bufs), default=0)


def check(bufs: list[Buffer], offsets: dict[str, int]) -> None:
    """Raise if two buffers alive at the same step share bytes."""
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.overlaps(b) and offsets[a.name] < offsets[b.name] + b.size and \
                    offsets[b.name] < offsets[a.name] + a.size:
                raise AssertionError(f"arena plan: {a.name} and {b.name} collide")


def plan(graph: Graph, order: list[str] | None = None, *, batch: int = 1,
         dtype: str = "fp32") -> ArenaPlan:
    """The smallest arena among the placement orders in ``ORDERS``, with the
    greedy-by-size (TFLite Micro) result as the baseline."""
    bufs = buffers(graph, order, batch=batch, dtype=dtype)
    peak = op_by_op(graph, order, batch=batch, dtype=dtype).peak_bytes
    results = {name: place(bufs, key) for name, key in ORDERS.items()}
    sizes = {name: arena_size(bufs, offs) for name, offs in results.items()}
    best = min(sizes, key=lambda name: (sizes[name], name != "greedy_by_size"))
    baseline = {"method": "greedy_by_size (TFLite Micro)", "arena_bytes":
                sizes["greedy_by_size"]}
    return ArenaPlan(best, sizes[best], peak, results[best], bufs, baseline, sizes)
