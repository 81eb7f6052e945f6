"""IR -> IR passes, with one contract (the torch.fx way): a pass is a function that takes a
:class:`~archspec.ir.graph.Graph` (and options) and returns a new graph or a result object,
never changing the graph it was given. Declared with :func:`graph_pass`, a pass that fails
(an :class:`~archspec.errors.ArchspecError` such as an op kind it has no rule for, or a
:class:`~archspec.ir.ops.ShapeError`) raises a :class:`PassError` whose message starts with
``pass <name>:``; a pass that fails inside another is named after it
(``pass kernel fusion: pass bn folding: ...``).

    @graph_pass("bn folding")
    def bn_folding(graph, keep=()) -> BnFolding: ...

The backend-neutral passes live here: :func:`bn_folding`, used by the ONNX lowering and the
latency kernel fusion. The cost analysis is ``archspec.analysis.cost``; the latency kernel
fusion (``archspec.latency.kernels.kernels``) is a pass of this contract too.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ArchspecError, CompileError
from .graph import Graph
from .ops import ShapeError


class PassError(CompileError):
    """A graph pass failed; ``pass_name`` names it and the message starts with it."""

    def __init__(self, pass_name: str, message: str):
        self.pass_name = pass_name
        super().__init__(f"pass {pass_name}: {message}")


def run_pass(name: str, fn: Callable, graph: Graph, *args, **kwargs):
    """``fn(graph, *args, **kwargs)``; a failure comes out as a :class:`PassError` naming
    the pass ``name``."""
    try:
        return fn(graph, *args, **kwargs)
    except (ArchspecError, ShapeError) as e:
        raise PassError(name, str(e)) from e


def graph_pass(name: str):
    """Decorator: the function is the pass ``name`` (its failures are named after it)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(graph: Graph, *args, **kwargs):
            return run_pass(name, fn, graph, *args, **kwargs)

        run.pass_name = name
        return run
    return wrap


@dataclass(frozen=True)
class BnFolding:
    """The result of :func:`bn_folding`: which batch norm folds into which conv."""

    into: dict[str, str]    # batch norm -> the conv it folds into

    @property
    def convs(self) -> dict[str, str]:
        """Conv -> the batch norm folded into it."""
        return {conv: bn for bn, conv in self.into.items()}

    def __len__(self) -> int:
        return len(self.into)


@graph_pass("bn folding")
def bn_folding(graph: Graph, keep: Iterable[str] = ()) -> BnFolding:
    """The batch norms that fold into the conv before them for inference: the conv feeds
    only that batch norm and is not in ``keep`` (nodes whose own value must stay visible:
    the outputs and taps a consumer produces)."""
    keep = set(keep)
    into = {}
    for node in graph:
        if node.kind != "batchnorm":
            continue
        (src,) = node.inputs
        if (graph[src].kind == "conv2d" and graph.consumers(src) == [node.name]
                and src not in keep):
            into[node.name] = src
    return BnFolding(into)


def masked_source(graph: Graph, node) -> str | None:
    """``x`` when ``node`` is a partial add of ``a`` and ``x[:, :cb]`` with ``x`` as wide as
    ``a`` and the slice read by nothing else, not a tap or output (MobileNeXt's shortcut
    below alpha 1); else None. The ONNX lowering writes such an add as ``a + x * mask`` and
    the latency kernel fusion times it as that one kernel (``add.masked``)."""
    if node.kind != "add" or not node.op.partial:
        return None
    cut = graph[node.inputs[1]]
    if cut.kind != "slice" or cut.op.start != 0 or cut.shape[0] == node.shape[0]:
        return None
    x = cut.inputs[0]
    if graph[x].shape != node.shape or graph.consumers(cut.name) != [node.name]:
        return None
    if cut.name in graph.outputs.values() or cut.name in graph.taps.values():
        return None
    return x

