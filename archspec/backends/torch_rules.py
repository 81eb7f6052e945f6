"""PyTorch's memory behaviour, as rules over the graph IR (no torch import, so that
``archspec memory --model training`` runs without torch): which activations the torch
backend runs in place, and which tensors autograd keeps for the backward pass (PyTorch's
derivatives.yaml), one handler per op kind in :data:`AUTOGRAD`."""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis.memory import MemoryReport, buffer_roots, tensor_bytes
from ..ir.dispatch import OpTable
from ..ir.graph import Graph
from ..ir.ops import op_class
from ..ir.tensors import numel

INPLACE_FNS = frozenset({"relu", "relu6", "hswish", "hsigmoid", "swish", "elu", "leaky_relu"})
"""Activations whose torch module takes ``inplace=`` (``nn.Sigmoid``, ``nn.GELU`` and
``nn.Softplus`` do not)."""
RESULT_WHEN_INPLACE = frozenset({"relu", "elu", "leaky_relu"})
"""In-place activations whose backward reads their output: no copy of the input kept."""
BN_STAT_BYTES = 2 * 4   # save_mean and save_invstd per channel, fp32 whatever the dtype
INDEX_BYTES = 8         # int64

AUTOGRAD = OpTable("torch autograd (saved tensors)")


def inplace_activation(graph: Graph, node) -> bool:
    """Whether the torch backend runs this node in place over its input: an activation
    with an in-place torch module, reading a fresh output (conv, BN, linear) that nothing
    else reads and that is no tap or output."""
    if not op_class(node, AUTOGRAD.consumer).inplace or node.op.fn not in INPLACE_FNS:
        return False
    (source,) = node.inputs
    return (op_class(graph[source], AUTOGRAD.consumer).fresh_output
            and graph.consumers(source) == [node.name]
            and source not in graph.taps.values() and source not in graph.outputs.values())


@dataclass(frozen=True)
class Saved:
    """What one op keeps for its backward pass."""

    tensors: tuple = ()      # IR tensors (node names) saved
    clone_bytes: int = 0     # a copy of an input it overwrote in place
    stat_bytes: int = 0      # batch statistics
    mask_bytes: int = 0      # one byte per element of a dropout mask
    padded_bytes: int = 0    # the zero-padded copy of its input it reads (asymmetric pads)
    index_bytes: int = 0     # int64 argmax indices (max pooling)


@AUTOGRAD.register("avg_pool")
def _saves_its_input(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    """avg_pool2d_backward reads the input (for its shape, but autograd keeps it)."""
    return Saved((node.inputs[0],))


@AUTOGRAD.register("max_pool")
def _max_pool(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    """max_pool2d_with_indices keeps its input and an int64 index per output element."""
    return Saved((node.inputs[0],), index_bytes=numel(node.shape) * batch * INDEX_BYTES)


@AUTOGRAD.register("conv2d", "linear")
def _saves_input(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    """Its input; a conv padded asymmetrically (F.pad first) keeps the padded copy instead."""
    (source,) = node.inputs
    padded = node.op.scratch([graph[source].shape])
    if padded:
        return Saved(padded_bytes=padded * nbytes[source] // numel(graph[source].shape))
    return Saved((source,))


@AUTOGRAD.register("batchnorm")
def _batchnorm(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    return Saved((node.inputs[0],), stat_bytes=BN_STAT_BYTES * node.op.channels)


@AUTOGRAD.register("mul")
def _mul(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    return Saved(tuple(node.inputs))


@AUTOGRAD.register("activation")
def _activation(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    """ReLU and sigmoid backward from their output, the others from their input; in
    place, ReLU, ELU and leaky ReLU backward from their output (elu_, leaky_relu_ in
    derivatives.yaml), the others make autograd keep a copy of the input."""
    if inplace_activation(graph, node):
        if node.op.fn in RESULT_WHEN_INPLACE:
            return Saved((node.name,))
        kept = () if _only_padded_readers(graph, node) else (node.name,)
        return Saved(kept, clone_bytes=nbytes[node.name])
    return Saved((node.name,) if node.op.fn in ("relu", "sigmoid") else (node.inputs[0],))


def _only_padded_readers(graph: Graph, node) -> bool:
    """Whether every reader of ``node`` is a conv padded asymmetrically: they keep their
    padded copies, so ``node``'s own output is kept by none of them."""
    return all(graph[c].kind == "conv2d" and graph[c].op.scratch([node.shape])
               for c in graph.consumers(node.name))


@AUTOGRAD.register("dropout")
def _dropout(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    return Saved(mask_bytes=numel(node.shape) * batch if node.op.p > 0 else 0)


@AUTOGRAD.register("input", "add", "global_pool", "flatten", "concat", "replicate", "slice",
                   "resize", "channel_shuffle", "anchor_flatten")
def _saves_nothing(graph: Graph, node, nbytes: dict, batch: int) -> Saved:
    """Backward needs only shapes (global pooling, resize, views, permutations,
    concatenation) or nothing (add)."""
    return Saved()


def training(graph: Graph, *, batch: int = 1, dtype: str = "fp32") -> MemoryReport:
    """Bytes of the activations a training forward keeps for backward: each saved tensor's
    buffer once (an in-place activation shares its input's buffer), plus the copies, batch
    statistics and masks of :class:`Saved`. The peak of a training step is roughly this
    plus the op-by-op working set of the backward pass."""
    nbytes = tensor_bytes(graph, batch, dtype)
    buffer = buffer_roots(graph)
    for node in graph:
        if inplace_activation(graph, node):
            buffer[node.name] = buffer[node.inputs[0]]
    buffer = {name: buffer[root] for name, root in buffer.items()}   # views of those too
    saved: dict[str, int] = {}
    clones = stats = masks = padded = indices = 0
    for node in graph:
        s = AUTOGRAD[node.kind](graph, node, nbytes, batch)
        for t in s.tensors:
            saved[buffer[t]] = nbytes[buffer[t]]
        clones, stats, masks = clones + s.clone_bytes, stats + s.stat_bytes, masks + s.mask_bytes
        padded, indices = padded + s.padded_bytes, indices + s.index_bytes
    total = sum(saved.values()) + clones + stats + masks + padded + indices
    order = {n.name: i for i, n in enumerate(graph)}
    report = MemoryReport("training_saved", total, "", sorted(saved, key=order.get), [],
                          batch, dtype)
    report.details = {"saved_tensor_bytes": sum(saved.values()),
                      "inplace_clone_bytes": clones, "bn_stat_bytes": stats,
                      "dropout_mask_bytes": masks, "saved_tensors": len(saved)}
    if padded:
        report.details["padded_copy_bytes"] = padded
    if indices:
        report.details["maxpool_index_bytes"] = indices
    return report
