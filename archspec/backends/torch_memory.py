"""Measured activation memory of a torch forward, and the memory-efficient execution mode.

``measure(fn)`` runs ``fn`` under a ``TorchDispatchMode`` that sees every aten op's
outputs. Each new storage that is not a parameter or buffer counts as an activation from
its creation until its storage object dies (torch keeps one Python object per storage,
so a weak reference to it tells us exactly when the memory is given back). The peak of the
running sum is the peak of live activation bytes; the allocator and kernel workspaces are
left out on purpose, since the analyses in :mod:`archspec.analysis.memory` count
activation tensors only.

``SlicedRunner`` executes a built model node by node from the IR, calling the model's
own submodules by IR name, and runs every splittable inverted residual block (1x1 expand,
per-channel ops, 1x1 project; MobileNetV2 section 5.1) as ``t`` slices of the expansion
whose projections are accumulated into the output, so at most one slice of the wide
tensor is alive. ``saved_for_backward`` measures what a training forward keeps for the
backward pass.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import fx
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..analysis.memory import Splittable, splittable_blocks
from ..ir.dispatch import OpTable
from .torch_lower import anchor_flatten, channel_shuffle


@dataclass
class Measurement:
    peak_bytes: int
    peak_op: str                 # the aten op that completed at the peak
    final_bytes: int             # activation bytes still alive when the run ended
    ops: int = 0
    timeline: list = field(default_factory=list)   # live bytes after each aten op


class _LiveTensors(TorchDispatchMode):
    """Counts live activation storages; ``peak`` is the largest total seen."""

    def __init__(self, exclude: set[int]):
        super().__init__()
        self.exclude = exclude
        self.seen: dict[int, weakref.ref] = {}
        self.live = 0
        self.peak = 0
        self.peak_op = ""
        self.ops = 0
        self.timeline: list[int] = []

    def track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = id(st)
        if st.data_ptr() in self.exclude or st.nbytes() == 0:
            return
        ref = self.seen.get(key)
        if ref is not None and ref() is st:
            return
        self.seen[key] = weakref.ref(st)
        self.live += st.nbytes()
        weakref.finalize(st, self._free, st.nbytes())

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        self.ops += 1
        self.timeline.append(self.live)
        if self.live > self.peak:
            self.peak, self.peak_op = self.live, str(func)
        return out


def _state_ptrs(model: torch.nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}


def measure(model: torch.nn.Module, x: torch.Tensor, run=None, *,
            keep_input: bool = False) -> Measurement:
    """Peak live activation bytes while ``run(x)`` (default ``model(x)``) executes, the
    input counted. The run gets a private copy of ``x`` that it may free after its last
    use, as a caller that hands its input over would (``keep_input`` keeps it alive).
    Use it under ``torch.no_grad()`` for inference figures."""
    mode = _LiveTensors(_state_ptrs(model))
    box = [x if keep_input else x.clone()]
    mode.track(box[0])
    if run is None:
        run = model if isinstance(model, SlicedRunner) else _taking_from_box(model)
    if keep_input:
        run, inner = (lambda box: inner(box[0])), run
    with mode:
        out = run(box)
    final = mode.live
    del out
    return Measurement(mode.peak, mode.peak_op, final, mode.ops, mode.timeline)


def _taking_from_box(model):
    """A callable that takes a one-element list, pops the input from it and runs the fx
    ``model``: nothing but the model then holds the input, so it is freed after its last
    use (an argument passed directly stays referenced by the calling frames)."""
    if not isinstance(model, fx.GraphModule):
        return lambda box: model(box.pop())
    graph = fx.Graph()
    env = {}
    box = graph.placeholder("box")
    for node in model.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.call_method("pop", (box,))
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    return fx.GraphModule(model, graph)


def saved_for_backward(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct activation storages autograd saves for the backward pass during
    one training-mode forward (parameters excluded, the input included if saved)."""
    exclude = _state_ptrs(model)
    storages: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in exclude:
            storages[st.data_ptr()] = st.nbytes()
        return t

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x.requires_grad_(False))
        del out
    finally:
        model.train(was_training)
    return sum(storages.values())


# ---- node-by-node execution from the IR: (node, model, input tensors) -> tensor ----------
EXECUTE = OpTable("torch node-by-node execution")


@EXECUTE.register("input")
def _input(node, model, args):
    return args[0]


@EXECUTE.register("conv2d", "batchnorm", "activation", "global_pool", "flatten", "linear",
                  "dropout", "avg_pool", "max_pool", "resize")
def _submodule(node, model, args):
    """The model's own module of the same IR name."""
    return model.get_submodule(node.name)(*args)


@EXECUTE.register("add")
def _add(node, model, args):
    a, b = args
    if a.shape[1] == b.shape[1]:
        return a + b
    return torch.cat([a[:, :b.shape[1]] + b, a[:, b.shape[1]:]], 1)


@EXECUTE.register("mul")
def _mul(node, model, args):
    return args[0] * args[1]


@EXECUTE.register("concat")
def _concat(node, model, args):
    return torch.cat(list(args), 1)


@EXECUTE.register("channel_shuffle")
def _channel_shuffle(node, model, args):
    return channel_shuffle(args[0], node.op.groups)


@EXECUTE.register("anchor_flatten")
def _anchor_flatten(node, model, args):
    return anchor_flatten(args[0], node.op.per_anchor)


@EXECUTE.register("replicate")
def _replicate(node, model, args):
    (x,) = args
    copies, rest = divmod(node.op.out_channels, x.shape[1])
    if copies == 1 and not rest:
        return x
    return torch.cat([x] * copies + ([x[:, :rest]] if rest else []), 1)


@EXECUTE.register("slice")
def _slice(node, model, args):
    return args[0][:, node.op.start:node.op.stop]


class SlicedRunner(torch.nn.Module):
    """Run ``model`` (built from ``graph`` by the torch backend) node by node, freeing
    each tensor after its last use, with every splittable block (analysis.memory.
    splittable_blocks) executed in ``split`` slices of its expansion (MobileNetV2 section
    5.1): y = sum_i project_i(N_i(expand_i(x))). Same weights, same outputs up to float
    rounding. ``split=None`` runs every node as the normal model does. The per-slice
    weights and the folded BN scales are precomputed buffers (state, not activations)."""

    def __init__(self, model: torch.nn.Module, graph, split: int | None = None):
        super().__init__()
        if split is not None and split < 1:
            raise ValueError(f"split must be >= 1, not {split}")
        self.model, self.graph, self.split = model, graph, split
        self.blocks = {b.first: b for b in splittable_blocks(graph)} if split else {}
        self.order = [n.name for n in graph]
        self.step = {name: i for i, name in enumerate(self.order)}
        self.skip = {b.first: self.step[b.output] for b in self.blocks.values()}
        self.last_use = self._last_use()
        self.after: dict[str, list] = {}
        self.plans = {first: self._plan(b) for first, b in self.blocks.items()}

    def _last_use(self) -> dict[str, int]:
        last = {}
        for node in self.graph:
            for i in node.inputs:
                last[i] = max(last.get(i, -1), self.step[node.name])
        for out in self.graph.outputs.values():
            last[out] = len(self.step)
        return last

    # -- precomputed slices -----------------------------------------------------------------
    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        name = f"_state{len(self._buffers)}"
        self.register_buffer(name, t.detach().contiguous().clone(), persistent=False)
        return getattr(self, name)

    def _bn(self, m, lo, hi):
        scale = m.weight[lo:hi] * torch.rsqrt(m.running_var[lo:hi] + m.eps)
        shift = m.bias[lo:hi] - m.running_mean[lo:hi] * scale
        return self._keep(scale[:, None, None]), self._keep(shift[:, None, None])

    def _plan(self, block: Splittable) -> list:
        """For each slice: ([step per chain node], projection weight, bias)."""
        g = self.graph
        bounds = [block.hidden * k // self.split for k in range(self.split + 1)]
        plan = []
        with torch.no_grad():
            for lo, hi in zip(bounds, bounds[1:]):
                if hi == lo:
                    continue
                ops = [SLICE[g[n].kind](self, block, g[n], lo, hi) for n in block.chain]
                m = self._module(block.project)
                w = self._keep(m.weight[:, lo:hi, 0, 0])
                b = None if m.bias is None or plan else m.bias
                plan.append((ops, w, b))
            self.after[block.first] = [SLICE[g[n].kind](self, block, g[n], 0, g[n].shape[0])
                                       for n in block.after_project]
        return plan

    def _module(self, name):
        return self.model.get_submodule(name)

    # -- running ----------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, box) -> torch.Tensor | dict[str, torch.Tensor]:
        """``box``: the input tensor, or a one-element list to take it from (so that it
        can be freed after its last use). Returns what the built model returns: the tensor
        of a single ``output``, else a dict by output name."""
        graph, env = self.graph, {}
        box = box if isinstance(box, list) else [box]
        skip_until = -1
        for i, name in enumerate(self.order):
            if i <= skip_until:
                continue
            node = graph[name]
            if name in self.blocks:
                block = self.blocks[name]
                env[block.output] = self._run_block(block, env)
                skip_until = i = self.skip[name]
            else:
                env[name] = self._run(node, env, box)
            for dead in [k for k in env if self.last_use.get(k, -1) <= i]:
                del env[dead]
        if list(graph.outputs) == ["output"]:
            return env[graph.outputs["output"]]
        return {name: env[node] for name, node in graph.outputs.items()}

    def _run(self, node, env: dict, box: list) -> torch.Tensor:
        """One node on its input tensors; the graph input is taken out of ``box``."""
        args = [env[a] for a in node.inputs] if node.inputs else [box.pop()]
        return EXECUTE[node.kind](node, self.model, args)

    def _run_block(self, block: Splittable, env: dict) -> torch.Tensor:
        x = env[block.input]
        y = None
        for ops, w, bias in self.plans[block.first]:
            h = x
            for step in ops:
                h = step(h, x)
            y = _project(h, w, bias, y)
            del h
        for step in self.after[block.first]:
            y = step(y, None)
        if block.shortcut is not None:
            s = env[block.shortcut]
            if s.shape[1] == y.shape[1]:
                y += s
            else:
                y[:, :s.shape[1]] += s
        return y


# ---- one slice of a splittable block: (runner, block, node, lo, hi) -> step(h, x) ----------
SLICE = OpTable("torch t-slice execution")
"""Handles the op kinds a splittable block holds (analysis.memory.splittable_blocks): the
convs and replicate that make the expansion, and per-channel ops. A step maps the slice so
far ``h`` (and the block input ``x``) to the next."""


@SLICE.register("conv2d")
def _conv_slice(runner, block, node, lo, hi):
    m = runner._module(node.name)
    w = runner._keep(m.weight[lo:hi])
    b = None if m.bias is None else runner._keep(m.bias[lo:hi])
    groups = 1 if node.name == block.first and node.op.groups == 1 else hi - lo
    stride, padding, dilation = m.stride, m.padding, m.dilation
    pads = getattr(m, "pads", None)   # torch_lower.PaddedConv2d: asymmetric, before the conv

    def step(h, x):
        if h is x and groups > 1:   # a depthwise conv straight on the block input
            h = x[:, lo:hi]
        if pads is not None:
            h = F.pad(h, pads)
        return F.conv2d(h, w, b, stride, padding, dilation, groups)
    return step


@SLICE.register("replicate")
def _replicate_slice(runner, block, node, lo, hi):
    index = runner._keep(torch.arange(lo, hi) % runner.graph[node.inputs[0]].shape[0])
    return lambda h, x: x.index_select(1, index)


@SLICE.register("batchnorm")
def _batchnorm_slice(runner, block, node, lo, hi):
    scale, shift = runner._bn(runner._module(node.name), lo, hi)
    return lambda h, x: h.mul_(scale).add_(shift)


@SLICE.register("activation")
def _activation_slice(runner, block, node, lo, hi):
    fn = _INPLACE[node.op.fn]
    return lambda h, x: fn(h)


def _project(h, w, bias, y):
    """Accumulate the 1x1 projection of one slice into ``y`` (allocated by the first)."""
    b, c = h.shape[0], w.shape[0]
    if y is None:
        y = torch.matmul(w, h.reshape(b, h.shape[1], -1)).view(b, c, *h.shape[2:])
        return y if bias is None else y.add_(bias[:, None, None])
    acc = y.view(b, c, -1)
    acc.baddbmm_(w.expand(b, -1, -1), h.reshape(b, h.shape[1], -1))
    return y


_INPLACE = {
    "relu": torch.relu_,
    "relu6": lambda h: h.clamp_(0.0, 6.0),
    "hswish": lambda h: F.hardswish(h, inplace=True),
    "hsigmoid": lambda h: F.hardsigmoid(h, inplace=True),
    "swish": lambda h: F.silu(h, inplace=True),
    "sigmoid": torch.sigmoid_,
    "elu": lambda h: F.elu(h, inplace=True),
    "leaky_relu": lambda h: F.leaky_relu(h, inplace=True),
    "gelu": lambda h: h.copy_(F.gelu(h)),          # no in-place kernel: a slice-sized
    "softplus": lambda h: h.copy_(F.softplus(h)),  # temporary, copied back
}
