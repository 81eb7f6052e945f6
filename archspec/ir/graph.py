"""The graph IR: primitive ops behind a small typed facade, exposed as a networkx ``DiGraph``.

Nodes are added in topological order, each with a hierarchical name
(``stages.3.block1.expand.conv``) that the backends reuse for modules and ONNX nodes, the
block and stage it belongs to, and its inferred output shape. Edges carry tensor shapes.

The facade keeps its nodes in an ordered dict and builds the networkx view (``graph.nx``)
on first use: importing networkx costs ~0.2 s, more than costing a network, and
``archspec cost`` never needs it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from ..errors import CompileError
from .ops import Input, Shape, ShapeError

MAX_GRAPH_NODES = 200_000


class Node(NamedTuple):
    """One op of the graph (immutable; a NamedTuple because graphs are built by the
    thousand in sweeps)."""

    name: str
    op: object
    inputs: tuple[str, ...]
    shape: Shape
    block: str = ""
    stage: str = ""
    block_type: str = ""

    @property
    def kind(self) -> str:
        return self.op.kind


_new_node = tuple.__new__   # Node(...) without its keyword handling (sweeps build millions)


class Graph:
    """A compiled network. Iterating yields :class:`Node` in topological order."""

    def __init__(self, name: str, meta: dict | None = None, max_nodes: int = MAX_GRAPH_NODES):
        self.name = name
        self.meta = dict(meta or {})
        self._nodes: dict[str, Node] = {}
        self._succ: dict[str, list[str]] = {}
        self._nx = None
        self.outputs: dict[str, str] = {}
        self.taps: dict[str, str] = {}
        self.max_nodes = max_nodes

    def add(self, name: str, op, inputs=(), *, block="", stage="", block_type="") -> str:
        """Add a node, infer its shape from its inputs, and return its name."""
        nodes = self._nodes
        if name in nodes:
            raise CompileError(f"compile: duplicate node name {name!r}")
        if len(nodes) >= self.max_nodes:
            raise CompileError(f"compile: the graph exceeds {self.max_nodes:,} nodes "
                               "(raise it with ARCHSPEC_MAX_NODES or compile(max_nodes=...))")
        if inputs.__class__ is not tuple:
            inputs = tuple(inputs)
        shape = op.infer([nodes[inputs[0]].shape] if len(inputs) == 1 else
                         [nodes[i].shape for i in inputs])
        if min(shape) < 1:
            raise ShapeError(f"{op.kind} would produce an empty tensor {shape}")
        nodes[name] = _new_node(Node, (name, op, inputs, shape, block, stage, block_type))
        succ = self._succ
        succ[name] = []
        for i in inputs:
            succ[i].append(name)
        self._nx = None
        return name

    def copy(self) -> Graph:
        """A copy to add nodes to without changing this graph (nodes are immutable and
        shared)."""
        g = Graph(self.name, self.meta, self.max_nodes)
        g._nodes = dict(self._nodes)
        g._succ = {k: list(v) for k, v in self._succ.items()}
        g.outputs, g.taps = dict(self.outputs), dict(self.taps)
        return g

    def reshaped(self, shapes: dict) -> Graph:
        """A copy with each node's shape ``shapes[name]`` (same ops and edges; an input's
        op is ``Input`` of its new shape): for a caller that inferred those shapes by the
        same ops from other inputs (sweeps replay a block's ops on inputs of other sizes:
        archspec.analysis.memo)."""
        g = self.copy()
        g._nodes = {k: _new_node(Node, (k, Input(shapes[k]) if n.op.__class__ is Input
                                        else n.op, n.inputs, shapes[k], *n[4:]))
                    for k, n in self._nodes.items()}
        return g

    @property
    def nx(self):
        """The graph as a networkx ``DiGraph`` (node attr ``node``: the :class:`Node`;
        edge attr ``shape``), built on first use."""
        if self._nx is None:
            import networkx as nx

            g = nx.DiGraph(name=self.name)
            for node in self._nodes.values():
                g.add_node(node.name, node=node)
                for i in node.inputs:
                    g.add_edge(i, node.name, shape=self._nodes[i].shape)
            self._nx = g
        return self._nx

    def __getitem__(self, name: str) -> Node:
        return self._nodes[name]

    def __iter__(self):
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name) -> bool:
        return name in self._nodes

    @property
    def inputs(self) -> list[str]:
        return [n.name for n in self if isinstance(n.op, Input)]

    @property
    def input_shape(self) -> tuple:
        """The shape (C, H, W) of the graph's one input, whatever its name (an imported
        ONNX file keeps the file's input name)."""
        return self[self.inputs[0]].shape

    def consumers(self, name: str) -> list[str]:
        return list(self._succ[name])

    # ---- export -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-ready description: nodes with op fields, inputs and shapes; outputs; taps."""
        return {
            "name": self.name,
            "meta": self.meta,
            "nodes": [
                {"name": n.name, "op": n.kind, "attrs": dataclasses.asdict(n.op),
                 "inputs": list(n.inputs), "shape": list(n.shape), "block": n.block,
                 "stage": n.stage, "block_type": n.block_type}
                for n in self
            ],
            "outputs": self.outputs,
            "taps": self.taps,
        }

    def write(self, path: str | Path) -> None:
        """Write as ``.json``, ``.dot`` or ``.graphml`` (chosen by suffix), atomically."""
        from ..fsutil import atomic_write_text

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.to_dict(), indent=1)
        elif suffix == ".dot":
            text = self._dot()
        elif suffix == ".graphml":
            import networkx as nx

            text = "\n".join(nx.generate_graphml(self._flat()))
        else:
            raise CompileError(f"graph export: unknown format {suffix!r} "
                               "(use .json, .dot or .graphml)")
        atomic_write_text(path, text)

    def _flat(self):
        import networkx as nx

        g = nx.DiGraph()
        for n in self:
            attrs = {f"op_{k}": str(v) for k, v in dataclasses.asdict(n.op).items()}
            g.add_node(n.name, op=n.kind, shape="x".join(map(str, n.shape)), block=n.block,
                       stage=n.stage, **attrs)
        for a, b, data in self.nx.edges(data=True):
            g.add_edge(a, b, shape="x".join(map(str, data["shape"])))
        return g

    def _dot(self) -> str:
        lines = [f'digraph "{self.name}" {{', "  rankdir=TB;", "  node [shape=box, fontsize=10];"]
        for n in self:
            label = f"{n.name}\\n{n.kind} -> {'x'.join(map(str, n.shape))}"
            lines.append(f'  "{n.name}" [label="{label}"];')
        for a, b, data in self.nx.edges(data=True):
            lines.append(f'  "{a}" -> "{b}" [label="{"x".join(map(str, data["shape"]))}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"
