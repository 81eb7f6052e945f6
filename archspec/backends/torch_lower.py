"""Lower an archspec graph to a ``torch.fx.GraphModule``.

Each IR node becomes one fx node: ops with parameters or state (conv, batch norm,
activation, pooling, resize, flatten, linear, dropout) become ``call_module`` nodes whose targets
are the IR names (``stages.3.block1.expand.conv``), so the module tree follows the IR and
``state_dict`` keys match the rows of the cost table; tensor plumbing (add, mul, concat,
replicate, slice, channel shuffle, anchor flatten) becomes ``call_function`` nodes. The
forward is fx-generated Python: the same straight call chain a hand-written model has,
with no walk over the graph per call.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from ..errors import BackendError
from ..ir.dispatch import OpTable
from ..ir.graph import Graph
from .common import live_nodes, outputs_for
from .torch_rules import inplace_activation

ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "hsigmoid": nn.Hardsigmoid,
    "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,          # approximate="none": the exact erf form
    "elu": nn.ELU,            # alpha 1.0
    "softplus": nn.Softplus,  # beta 1, threshold 20
    "leaky_relu": nn.LeakyReLU,   # negative_slope 0.01
}
"""Each activation's torch module; the parametric ones keep torch's defaults, which are
archspec.ir.ops.ACTIVATION_CONSTANTS (a test checks)."""
ALL_CHANNELS = slice(None)


class Container(nn.Module):
    """A level of the IR name hierarchy. It only holds modules: the generated forward of
    the enclosing :class:`ArchspecModel` calls its leaves directly."""

    def __init__(self, label: str = ""):
        super().__init__()
        self.label = label

    def extra_repr(self) -> str:
        return self.label


class Stage(Container):
    """One row of the stage table (``stages.3``), or the head."""


class Block(Container):
    """One block (``stages.3.block1``); its label is the block type."""


class Group(Container):
    """Any other level: ``stages``, or a part of a block (``expand``, ``se``)."""


class ArchspecModel(fx.GraphModule):
    """The generated model. ``print`` shows the module tree; ``.code`` the forward."""

    def __str__(self) -> str:
        return nn.Module.__repr__(self)


# ---- one handler per op kind: (lowering, node, fx args) -> fx node ---------------------
TORCH = OpTable("torch lowering")


@dataclass
class _Lowering:
    """The fx graph being built, the IR it comes from, and the modules made so far."""

    fxg: fx.Graph
    graph: Graph
    modules: dict = field(default_factory=dict)


def _module(make):
    """A handler that adds the module ``make(node, graph)`` under the node's IR name and
    calls it."""
    def handler(low: _Lowering, node, args):
        low.modules[node.name] = make(node, low.graph)
        return low.fxg.call_module(node.name, tuple(args))
    return handler


@TORCH.register("input")
def _input(low, node, args):
    return low.fxg.placeholder("x")


class PaddedConv2d(nn.Conv2d):
    """A conv after an asymmetric zero padding (TensorFlow's "same" on some sizes):
    ``pads`` is F.pad's (left, right, top, bottom). Its parameters are nn.Conv2d's."""

    def __init__(self, *args, pads: tuple[int, int, int, int], **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.pads = pads

    def forward(self, x):
        return super().forward(nn.functional.pad(x, self.pads))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pads={self.pads}"


@TORCH.register("conv2d")
@_module
def _conv(node, graph):
    op = node.op
    args = (op.in_channels, op.out_channels, op.kernel)
    kw = {"stride": op.stride, "dilation": op.dilation, "groups": op.groups, "bias": op.bias}
    top, left, bottom, right = op.pads(*graph[node.inputs[0]].shape[1:])
    if (top, left) == (bottom, right) and top == left:
        return nn.Conv2d(*args, padding=top, **kw)
    return PaddedConv2d(*args, pads=(left, right, top, bottom), **kw)


@TORCH.register("batchnorm")
@_module
def _batchnorm(node, graph):
    op = node.op
    return (nn.BatchNorm1d if len(node.shape) == 1 else nn.BatchNorm2d)(
        op.channels, eps=op.eps, momentum=op.momentum)


@TORCH.register("activation")
@_module
def _activation(node, graph):
    # the training-memory model reads the same rule, so estimate and measurement agree
    inplace = inplace_activation(graph, node)
    return ACTIVATIONS[node.op.fn](**({"inplace": True} if inplace else {}))


@TORCH.register("global_pool")
@_module
def _global_pool(node, graph):
    return nn.AdaptiveAvgPool2d(1)


@TORCH.register("flatten")
@_module
def _flatten(node, graph):
    return nn.Flatten(1)


@TORCH.register("linear")
@_module
def _linear(node, graph):
    return nn.Linear(node.op.in_features, node.op.out_features, bias=node.op.bias)


@TORCH.register("dropout")
@_module
def _dropout(node, graph):
    return nn.Dropout(node.op.p)


@TORCH.register("avg_pool")
@_module
def _avg_pool(node, graph):
    op = node.op
    return nn.AvgPool2d(op.kernel, op.stride, op.padding, op.ceil_mode, op.count_include_pad)


@TORCH.register("max_pool")
@_module
def _max_pool(node, graph):
    op = node.op
    return nn.MaxPool2d(op.kernel, op.stride, op.padding, ceil_mode=op.ceil_mode)


@TORCH.register("resize")
@_module
def _resize(node, graph):
    return nn.Upsample(size=node.op.size, mode="bilinear", align_corners=False)


def channel_shuffle(x, groups: int):
    """ShuffleNet's shuffle as torchvision writes it: (N, g, C/g, H, W), transposed."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def anchor_flatten(x, per_anchor: int):
    """torchvision's SSD head: (N, A*K, H, W) -> (N, H*W*A, K)."""
    n, _, h, w = x.shape
    return x.view(n, -1, per_anchor, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, per_anchor)


@TORCH.register("channel_shuffle")
def _channel_shuffle(low, node, args):
    return low.fxg.call_function(channel_shuffle, (args[0], node.op.groups), name=node.name)


@TORCH.register("anchor_flatten")
def _anchor_flatten(low, node, args):
    return low.fxg.call_function(anchor_flatten, (args[0], node.op.per_anchor),
                                 name=node.name)


def _channels(fxg, x, start, stop, name):
    return fxg.call_function(operator.getitem, (x, (ALL_CHANNELS, slice(start, stop))),
                             name=name)


def partial_add(a, b):
    """``a`` with ``b`` added into its first channels (ReXNet, MobileNeXt), as a new tensor:
    a copy of ``a`` and an in-place add on its first channels, faster in eager mode than
    a concatenation (benchmarks/bench_partial_add.py). A traced or exported model
    (``torch.onnx.export``) gets the concatenation, Slice + Add + Concat in ONNX: the
    spelling ``archspec.onnx_import`` reads."""
    cb = b.shape[1]
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        return torch.cat([a[:, :cb] + b, a[:, cb:]], 1)
    out = a.clone()
    out[:, :cb].add_(b)
    return out


@TORCH.register("add")
def _add(low, node, args):
    fxg, graph = low.fxg, low.graph
    if not node.op.partial or graph[node.inputs[0]].shape[0] == graph[node.inputs[1]].shape[0]:
        return fxg.call_function(operator.add, tuple(args), name=node.name)
    return fxg.call_function(partial_add, tuple(args), name=node.name)


@TORCH.register("mul")
def _mul(low, node, args):
    return low.fxg.call_function(operator.mul, tuple(args), name=node.name)


@TORCH.register("concat")
def _concat(low, node, args):
    return low.fxg.call_function(torch.cat, (list(args), 1), name=node.name)


@TORCH.register("replicate")
def _replicate(low, node, args):
    (x,) = args
    c = low.graph[node.inputs[0]].shape[0]
    copies, rest = divmod(node.op.out_channels, c)
    if copies == 1 and not rest:
        return x
    parts = [x] * copies + ([_channels(low.fxg, x, 0, rest, node.name + ".rest")]
                            if rest else [])
    return low.fxg.call_function(torch.cat, (parts, 1), name=node.name)


@TORCH.register("slice")
def _slice(low, node, args):
    return _channels(low.fxg, args[0], node.op.start, node.op.stop, node.name)


# ---- the graph ----------------------------------------------------------------------------
def lower(graph: Graph, features=None) -> tuple[fx.Graph, dict[str, nn.Module]]:
    """The fx graph and its modules (by IR name) computing ``graph``'s outputs, or the
    taps named in ``features`` (then nodes the taps do not need are left out). The forward
    returns the one output as a tensor, or a dict by name (heads, taps)."""
    outputs = outputs_for(graph, features)
    live = live_nodes(graph, outputs.values())
    low = _Lowering(fx.Graph(), graph)
    env = {}
    for node in graph:
        if node.name in live:
            tail = _last(low.fxg)
            env[node.name] = TORCH[node.kind](low, node, [env[i] for i in node.inputs])
            _tag(low.fxg, tail, node.name)
    low.fxg.output(env[outputs["output"]] if list(outputs) == ["output"] and features is None
                   else {key: env[name] for key, name in outputs.items()})
    low.fxg.lint()
    return low.fxg, low.modules


def _last(fxg: fx.Graph):
    return next(iter(reversed(fxg.nodes)), None)


def _tag(fxg: fx.Graph, tail, name: str) -> None:
    """Record in ``meta["ir"]`` the IR node that the fx nodes after ``tail`` compute
    (what latency calibration times a torch model by)."""
    for n in reversed(fxg.nodes):
        if n is tail:
            return
        n.meta["ir"] = name


def module_tree(graph: Graph, modules: dict[str, nn.Module]) -> nn.Module:
    """A module whose children nest ``modules`` by their dotted IR names."""
    root = nn.Module()
    for name, module in modules.items():
        node = graph[name]
        *path, leaf = name.split(".")
        parent, prefix = root, ""
        for part in path:
            prefix = f"{prefix}.{part}" if prefix else part
            child = parent._modules.get(part)
            if child is None:
                child = _container(prefix, node)
                parent.add_module(part, child)
            elif not isinstance(child, Container):
                raise BackendError(f"torch backend: IR name {prefix!r} is both a layer and a "
                                   f"prefix of {name!r}")
            parent = child
        if leaf in parent._modules:
            raise BackendError(f"torch backend: IR name {name!r} is a layer and a prefix")
        parent.add_module(leaf, module)
    return root


def _container(prefix: str, node) -> Container:
    if prefix == node.block:
        return Block(node.block_type)
    if prefix == node.stage:
        return Stage()
    return Group()


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """torchvision's MobileNet initialisation: Kaiming normal (fan-out) convolutions with
    zero biases, batch norm gamma 1 and beta 0 with fresh statistics, classifier weights
    from N(0, 0.01) with zero biases."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def build_module(graph: Graph, *, features=None, seed: int | None = None) -> ArchspecModel:
    """An initialised :class:`ArchspecModel` computing ``graph`` (or its taps)."""
    with torch.device("meta"):  # allocate and initialise once, below
        fxg, modules = lower(graph, features)
    tree = module_tree(graph, modules)
    model = ArchspecModel(tree, fxg, class_name=_class_name(graph.name))
    for name, child in tree.named_children():  # keep the Stage / Block / Group containers
        setattr(model, name, child)
    model.to_empty(device="cpu")
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    init_weights(model, generator)
    model.meta["archspec"] = {"graph": graph.name,
                              "features": None if features is None else list(
                                  outputs_for(graph, features))}
    return model


def _class_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "Model"
    return cleaned if cleaned[0].isalpha() or cleaned[0] == "_" else f"_{cleaned}"
