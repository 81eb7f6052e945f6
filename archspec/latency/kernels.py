"""Fusion rules: an IR graph as the list of kernels a backend runs (onnxruntime CPU).

The rules mirror what the ONNX backend emits (``backends/onnx_lower.py``: a batch norm
whose conv feeds only it is folded into the conv) and what onnxruntime's graph optimiser
then fuses (ENABLE_ALL, CPU execution provider), checked against its optimised graphs:

1. ``conv``: conv2d + its folded batch norm + a following activation that a conv kernel
   applies in place (:data:`CONV_ACTS`: all but swish, gelu, elu, softplus) + a following
   full residual add (NCHWc ``Conv`` with a ``Sum`` input, or ``FusedConv`` with ``Z``) +
   an activation after that add. Each step needs the tail to have exactly one consumer
   and not to be a graph output. swish is not fused (onnxruntime turns ``x*sigmoid(x)``
   into QuickGelu), nor are gelu, elu and softplus (each its own ``act.<fn>`` kernel).
2. ``se``: global pool -> 1x1 convs / batch norms / activations -> channel ``mul`` by the
   gate (squeeze-excite), one kernel: its work is dominated by reading the map twice.
3. ``add`` (a residual add not fused into a conv), ``add_partial`` (slice + add +
   concat: ReXNet's shortcut), ``add.masked`` (MobileNeXt's shortcut at alpha < 1, the
   slice of ``x`` and the add: ``x`` times a 0/1 channel mask, a blocked 1x1 depthwise
   conv, added into the conv before it; in the ``add`` family), ``act.<fn>`` (an
   activation left alone), ``bn.c``/``bn.p`` (an unfolded batch norm; blocked, it runs as
   a depthwise conv and takes a following activation in place), ``pool`` (a global pool
   outside SE), ``linear`` (Gemm, with the flatten / dropout in front of it), ``concat``,
   ``replicate``,
   ``slice`` (slices that split a tensor's channels into consecutive parts are one:
   onnxruntime fuses them into a Split), ``reshape`` (a flatten or dropout with no linear
   after it), ``mul``.
4. ``pool.avg.k<k>s<s>`` / ``pool.max.k<k>s<s>`` (windowed pools, in the ``pool``
   family), ``replicate.resize`` (bilinear Resize: a small read, a large write, predicted
   by the ``replicate`` family) and ``concat.transpose`` (channel shuffle and SSD's
   anchor flatten: Reshape + Transpose + Reshape, a full copy, predicted by the
   ``concat`` family). Each has a type of its own, so a profile calibrated on them fits
   it; until then the model predicts it by its family (see latency/model.py).

:func:`kernels` is a pass (``archspec.ir.passes``): the folded batch norms come from the
bn folding pass, MACs and weights from the cost pass, and each op kind has one rule in
:data:`RULES`, registered with the kernel families it starts (:data:`FAMILIES`); an op
kind without a rule is an error naming the pass.

Layout: onnxruntime's NCHWc transformer runs a conv in the blocked layout when its
channels allow (``nchwc_ok``); moving a tensor between blocked and plain layout costs a
reorder, which this pass records per kernel as ``reorder_elems`` (the elements of the
inputs whose layout differs from what the kernel reads).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..analysis.cost import op_cost
from ..errors import CompileError
from ..ir.dispatch import OpTable
from ..ir.ops import ACTIVATIONS
from ..ir.passes import bn_folding, graph_pass, masked_source
from ..ir.tensors import numel

# activations a conv kernel applies in place: all but swish, which onnxruntime's optimiser
# rewrites to QuickGelu, a kernel of its own, and gelu, elu and softplus, which it runs as
# kernels of their own (checked against its optimised graphs, tests/test_activations.py)
UNFUSED_ACTS = frozenset({"swish", "gelu", "elu", "softplus"})
CONV_ACTS = frozenset(ACTIVATIONS) - UNFUSED_ACTS
# onnxruntime's NCHWc transformer (graph level 3, after the conv-activation fusion) turns
# an unfolded BN of a blocked tensor into a blocked depthwise conv and fuses into it only
# these activations; of the others, relu6 (Clip), leaky_relu, elu and softplus run in NCHW
# only (a blocked input is reordered out, their output is plain) and swish (QuickGelu),
# gelu run blocked as kernels of their own. Checked against its optimised graphs
# (onnxruntime 1.32.0, tests/test_latency.py)
BN_CONV_ACTS = frozenset({"relu", "sigmoid", "hswish", "hsigmoid"})
PLAIN_ONLY_ACTS = frozenset({"relu6", "leaky_relu", "elu", "softplus"})
SE_INNER = ("conv2d", "batchnorm", "activation")
NCHWC = "nchwc"
PLAIN = "nchw"


@dataclass
class Kernel:
    """One backend kernel: the IR nodes it computes and the figures the model reads."""

    name: str                 # the IR node that starts it (conv, pool, add, ...)
    type: str                 # e.g. conv.dw.k3s1.c, conv.pw.p, se, add, act.swish, linear
    nodes: list = field(default_factory=list)   # IR node names, in order
    macs: int = 0
    in_elems: int = 0         # elements read from the inputs (per image)
    out_elems: int = 0        # elements written
    params: int = 0           # weights read
    reorder_elems: int = 0    # elements moved between layouts before this kernel runs
    layout: str = PLAIN       # layout of the output
    block: str = ""
    stage: str = ""
    cin: int = 0              # channels of the (first) input
    cout: int = 0             # channels of the output
    hw: int = 0               # output pixels (height x width; 1 for vectors)
    net_elems: int = 0        # the whole network's weights + outputs: what a run touches
                              # between two uses of this kernel's weights (cache context)
    act: int = 0              # the class of the dearest activation it applies (ACT_CLASS)
    net_params: int = 0       # the whole network's weights (net_elems' part a batch shares)
    taps: tuple | None = None  # a blocked full / grouped conv's (interior, edge) tap shares:
                               # conv_taps; None for every other kernel
    act_pass: bool = False    # a conv whose activation onnxruntime applies in a pass of its
                              # own over the output (activation_pass)

    def features(self, batch: int = 1) -> dict:
        """The figures the latency model reads, for a run of ``batch`` images: the one
        place a profile's batch enters (calibration samples, refits, predictions and
        sweeps all read them here). Work and data per image (:data:`PER_IMAGE`) are
        times ``batch``, and the activations' part of ``net_elems``; weights, channels,
        ``hw`` (the map's size: a shape, as the kernel loops over the images) and the
        activation class are not. ``batch`` 1: the per-image figures, untouched."""
        f = {"macs": self.macs, "in_elems": self.in_elems, "out_elems": self.out_elems,
             "params": self.params, "reorder_elems": self.reorder_elems,
             "cin": self.cin, "cout": self.cout, "hw": self.hw,
             "net_elems": self.net_elems, "act": self.act}
        if self.taps is not None:
            f["taps_int"], f["taps_edge"] = self.taps
        if self.act_pass:
            f["act_pass"] = 1
        if batch != 1:
            for key in PER_IMAGE:
                f[key] = batch * f[key]
            f["net_elems"] = self.net_params + batch * (self.net_elems - self.net_params)
        return f


# the figures of a kernel that grow with the batch (Kernel.features)
PER_IMAGE = ("macs", "in_elems", "out_elems", "reorder_elems")


# the class of an activation as the latency model reads it (``act`` and ``act_elems``): 0
# none, 1 a clip (relu, relu6, leaky_relu: free when fused), 2 piecewise-linear products
# (hswish, hsigmoid), 3 anything else (a transcendental)
ACT_CLASS = {"relu": 1, "relu6": 1, "leaky_relu": 1, "hswish": 2, "hsigmoid": 2}


def activation_class(graph, nodes) -> int:
    """The ``act`` of a kernel covering IR ``nodes`` of ``graph``."""
    return max((ACT_CLASS.get(graph[n].op.fn, 3) for n in nodes
                if graph[n].kind == "activation"), default=0)


def activation_pass(graph, nodes, blocked: bool) -> bool:
    """Does onnxruntime apply the activation of a conv kernel covering IR ``nodes`` in a
    pass over the output of its own? Its blocked (NCHWc) conv applies a ReLU inside the
    kernel and any other activation (relu6 = Clip, leaky_relu, hswish, ...) afterwards
    over the output; its plain conv clips (relu, relu6) as it writes and runs the dearer
    activations (hswish, hsigmoid, transcendentals) apart. Measured on the Xeon host
    (2026-12-04, onnxruntime 1.32.0, 1 thread): a blocked 1x1 conv 16 -> 64 on 112 x 112
    took 244 us bare, 247 with relu, 370 with relu6, 384 with leaky_relu, 376 with hswish;
    a plain one 18 -> 64: 291, 295, 299, 330, 833 (docs/latency.md, "The activation pass")."""
    fns = [graph[n].op.fn for n in nodes if graph[n].kind == "activation"]
    if blocked:
        return any(fn != "relu" for fn in fns)
    return any(ACT_CLASS.get(fn, 3) >= 2 for fn in fns)


def nchwc_ok(op, block: int, input_blocked: bool = False) -> bool:
    """Does onnxruntime's NCHWc transformer run this conv in the blocked layout?
    Checked against onnxruntime 1.31's optimised graphs (tests/test_latency.py): channel
    counts are padded to whole blocks, but the input channels must be a multiple of 4
    (what the reorder kernels handle) or, for a plain conv, fewer than a block (the stem
    reads NCHW directly). A grouped, non-depthwise conv needs whole blocks per group.
    ``input_blocked`` is accepted for symmetry and does not change the answer."""
    if block <= 1:
        return False
    cin_g = op.in_channels // op.groups
    if op.groups == 1 or (cin_g == 1 and op.out_channels == op.groups):
        return op.in_channels % 4 == 0 or (op.groups == 1 and op.in_channels < block)
    return (op.out_channels % block == 0 and cin_g % block == 0
            and (op.out_channels // op.groups) % block == 0)


def _axis_taps(size: int, out: int, pad: int, k: int, s: int, d: int) -> tuple[int, int]:
    """Along one axis of a conv: (outputs whose k taps all fall inside the input, taps
    inside the input of the other outputs)."""
    interior = edge = 0
    for j in range(out):
        inside = sum(1 for t in range(k) if 0 <= j * s - pad + t * d < size)
        if inside == k:
            interior += 1
        else:
            edge += inside
    return interior, edge


def conv_taps(op, h: int, w: int, ho: int, wo: int) -> tuple[float, float]:
    """The shares of a conv's MACs that onnxruntime's blocked (NCHWc) conv computes on an
    ``h`` x ``w`` input (``ho`` x ``wo`` output), as (interior, edge): it skips the kernel
    rows that fall in the padding, runs the outputs whose kernel columns all fall inside
    the input in its fast loop (interior) and the others one by one over their columns
    inside the input (edge, dearer per MAC). A dilated conv on a small map (DeepLabv3's
    ASPP, rates 12 / 24 / 36 on 33 x 33) computes a fraction of its MACs, most of them on
    the edge path (docs/latency.md, "Dilated convs: conv taps"). Read by fit rules 4 on
    (:func:`archspec.latency.model.row`)."""
    top, left, _, _ = op.pads(h, w)
    k, s, d = op.kernel, op.stride, op.dilation
    inner_r, edge_r = _axis_taps(h, ho, top, k, s, d)
    inner, edge = _axis_taps(w, wo, left, k, s, d)
    rows = (inner_r * k + edge_r) / (ho * k)
    return rows * inner / wo, rows * edge / (wo * k)


def conv_type(op, nchwc: bool) -> str:
    if op.groups == op.in_channels == op.out_channels and op.groups > 1:
        sub = f"dw.k{op.kernel}s{op.stride}"
    elif op.groups == 1:
        sub = "pw" if op.kernel == 1 else "full"
    else:
        sub = "group"
    return f"conv.{sub}.{'c' if nchwc else 'p'}"


class _Fuser:
    """The state of one fusion: the graph, its folded batch norms, and which kernel owns
    each IR node so far."""

    def __init__(self, graph, block: int, partial_add: str = "masked",
                 blocked_concat: bool = True, blocked_replicate: bool = True,
                 blocked_bn_acts: bool = True):
        self.g = graph
        self.block = block
        self.masked = partial_add == "masked"
        self.blocked_concat = blocked_concat
        self.blocked_replicate = blocked_replicate
        self.blocked_bn_acts = blocked_bn_acts
        self.outputs = set(graph.outputs.values()) | set(graph.taps.values())
        self.folds = bn_folding(graph, self.outputs).convs   # conv -> its folded BN
        self.owner: dict[str, Kernel] = {}
        self.kernels: list[Kernel] = []

    def sole(self, name: str, kind: str):
        """The single consumer of ``name`` if it has that kind and ``name`` is internal."""
        cons = self.g.consumers(name)
        if len(cons) != 1 or name in self.outputs:
            return None
        node = self.g[cons[0]]
        return node if node.kind == kind else None

    def sole_act(self, name: str):
        """The single consumer of ``name`` if it is an activation a conv kernel applies."""
        act = self.sole(name, "activation")
        return act if act is not None and act.op.fn in CONV_ACTS else None

    def layout_of(self, name: str) -> str:
        k = self.owner.get(name)
        return k.layout if k is not None else PLAIN

    def new(self, node, type_: str, nodes) -> Kernel:
        k = Kernel(node.name, type_, list(nodes), block=node.block, stage=node.stage)
        for n in nodes:
            self.owner[n] = k
        self.kernels.append(k)
        return k

    def work(self, name: str) -> tuple[int, int]:
        """(MACs, weights read) of a conv or linear node, from the cost pass: each weight
        is used once per output pixel."""
        node = self.g[name]
        madds = op_cost(node, [self.g[i].shape for i in node.inputs]).madds
        return madds, madds // numel(node.shape[1:])

    def simple(self, node, type_: str, nodes=None, same_layout=False) -> Kernel:
        """A kernel of ``nodes`` (default: ``node`` alone) that reads ``node``'s inputs
        in their layout: it keeps a blocked layout when ``same_layout`` and every input is
        blocked, else it reorders the blocked ones."""
        g = self.g
        k = self.new(node, type_, nodes or [node.name])
        ins = [g[i].shape for i in node.inputs]
        k.in_elems = sum(numel(s) for s in ins)
        tail = g[k.nodes[-1]]
        k.out_elems = numel(tail.shape)
        k.cin, k.cout, k.hw = ins[0][0], tail.shape[0], numel(tail.shape[1:])
        if tail.kind == "linear":
            k.macs, k.params = self.work(tail.name)
        layouts = {self.layout_of(i) for i in node.inputs}
        if same_layout and layouts == {NCHWC}:
            k.layout = NCHWC
        else:
            k.reorder_elems = sum(numel(g[i].shape) for i in node.inputs
                                  if self.layout_of(i) == NCHWC)
        return k

    def run(self) -> list[Kernel]:
        for node in self.g:
            if node.name in self.owner:
                continue
            if node.kind not in RULES:
                raise CompileError(f"no kernel rule for op kind {node.kind!r} "
                                   f"(node {node.name})")
            RULES[node.kind](self, node)
        for k in self.kernels:   # every path that fuses sees the activation (act_elems)
            k.act = activation_class(self.g, k.nodes)
        return self.kernels


# ---- rules: one per op kind, with the kernel families it makes -----------------------------
RULES = OpTable("latency kernel fusion")
FAMILIES: dict[str, tuple[str, ...]] = {}   # op kind -> families of the kernels it starts


def rule(*kinds: str, families: tuple[str, ...]) -> Callable:
    """Decorator: the fusion rule for op ``kinds``, starting kernels of ``families``
    (``archspec.latency.model.family`` of their types)."""
    def add(fn: Callable) -> Callable:
        RULES.register(*kinds)(fn)
        FAMILIES.update(dict.fromkeys(kinds, families))
        return fn
    return add


@rule("input", families=())
def _input(fz: _Fuser, node) -> None:
    """The image is read by the first kernel: no kernel of its own."""


@rule("conv2d", families=("conv.pw", "conv.dw", "conv.full", "conv.group"))
def _conv(fz: _Fuser, node) -> None:
    """conv + its folded BN + an in-place activation, or + a full residual add whose other
    input is computed already (+ an activation after it)."""
    op, g = node.op, fz.g
    nodes = [node.name]
    if node.name in fz.folds:
        nodes.append(fz.folds[node.name])
    act = fz.sole_act(nodes[-1])
    if act is not None:
        nodes.append(act.name)
    extra_in = 0
    add = fz.sole(nodes[-1], "add") if act is None else None
    if add is not None and not add.op.partial:
        other = [i for i in add.inputs if i != nodes[-1]]
        if other and other[0] in fz.owner:
            nodes.append(add.name)
            extra_in = numel(g[other[0]].shape)
            act2 = fz.sole_act(add.name)
            if act2 is not None:
                nodes.append(act2.name)
    src = node.inputs[0]
    nchwc = nchwc_ok(op, fz.block, fz.layout_of(src) == NCHWC)
    k = fz.new(node, conv_type(op, nchwc), nodes)
    in_elems = numel(g[src].shape)
    out = g[nodes[-1]].shape
    k.macs, k.params = fz.work(node.name)
    k.in_elems = in_elems + extra_in
    k.out_elems = numel(out)
    wants = NCHWC if nchwc and op.in_channels >= fz.block else PLAIN
    k.reorder_elems = in_elems if fz.layout_of(src) != wants else 0
    k.layout = NCHWC if nchwc else PLAIN
    k.cin, k.cout, k.hw = op.in_channels, out[0], numel(out[1:])
    if nchwc and k.type.startswith(("conv.full", "conv.group")):
        k.taps = conv_taps(op, *g[src].shape[1:], *g[node.name].shape[1:])
    k.act_pass = activation_pass(g, nodes, nchwc)


def _se_nodes(fz: _Fuser, pool) -> list[str] | None:
    """pool -> (conv | bn | act)* -> mul(x, gate) with x the pool's input."""
    x = pool.inputs[0]
    chain, tail = [pool.name], pool.name
    while True:
        cons = fz.g.consumers(tail)
        if len(cons) != 1 or tail in fz.outputs:
            return None
        nxt = fz.g[cons[0]]
        if nxt.kind == "mul":
            return chain + [nxt.name] if nxt.inputs == (x, tail) else None
        if nxt.kind not in SE_INNER:
            return None
        chain.append(nxt.name)
        tail = nxt.name


@rule("global_pool", families=("se", "pool"))
def _pool(fz: _Fuser, node) -> None:
    """Squeeze-excite as one kernel (its work is reading the map twice), else a pool."""
    nodes = _se_nodes(fz, node)
    if nodes is None:
        fz.simple(node, "pool", same_layout=True)
        return
    k = fz.new(node, "se", nodes)
    x = node.inputs[0]
    c, h, w = fz.g[x].shape
    for n in nodes:
        if fz.g[n].kind == "conv2d":
            macs, weights = fz.work(n)
            k.macs += macs
            k.params += weights
    k.in_elems = 2 * c * h * w          # read by the pool and by the mul
    k.out_elems = c * h * w
    k.reorder_elems = c * h * w if fz.layout_of(x) == NCHWC else 0
    k.layout = PLAIN
    k.cin, k.cout, k.hw = c, c, h * w


@rule("flatten", "dropout", families=("linear", "reshape"))
def _reshape(fz: _Fuser, node) -> None:
    """Flattens and dropouts run with the linear layer after them (Gemm)."""
    nodes, tail = [node.name], node
    while tail.kind != "linear":
        nxt = (fz.sole(tail.name, "flatten") or fz.sole(tail.name, "dropout")
               or fz.sole(tail.name, "linear"))
        if nxt is None:
            break
        nodes.append(nxt.name)
        tail = nxt
    fz.simple(node, "linear" if tail.kind == "linear" else "reshape", nodes)


@rule("linear", families=("linear",))
def _linear(fz: _Fuser, node) -> None:
    fz.simple(node, "linear")


@rule("add", families=("add", "add_partial"))
def _add(fz: _Fuser, node) -> None:
    """A residual add no conv took in (a partial one is slice + add + concat), or
    ``add.masked``: the ONNX backend's ``a + x * mask`` for ``a + x[:, :cb]``."""
    if fz.masked and masked_source(fz.g, node) is not None:
        _masked_add(fz, node)
        return
    a, b = (fz.g[i].shape for i in node.inputs)
    partial = node.op.partial and a != b
    fz.simple(node, "add_partial" if partial else "add", same_layout=not node.op.partial)


def _masked_add(fz: _Fuser, node) -> None:
    """The slice and the add as one kernel: onnxruntime runs ``x * mask`` as a 1x1
    depthwise conv (blocked when ``x`` is) and fuses the add into the conv that made
    ``a``; the work is reading ``x``, writing the masked copy and reading it again."""
    a, cut = node.inputs
    x = fz.g[cut].inputs[0]
    owner = fz.owner.pop(cut)
    owner.nodes.remove(cut)
    if not owner.nodes:
        fz.kernels.remove(owner)
    k = fz.new(node, "add.masked", [cut, node.name])
    n = numel(node.shape)
    k.in_elems, k.out_elems = 2 * n, n
    k.cin, k.cout, k.hw = node.shape[0], node.shape[0], numel(node.shape[1:])
    if fz.layout_of(x) == fz.layout_of(a) == NCHWC:
        k.layout = NCHWC
    else:
        k.reorder_elems = sum(n for i in (a, x) if fz.layout_of(i) == NCHWC)


@rule("activation", families=("act",))
def _activation(fz: _Fuser, node) -> None:
    """An activation of its own keeps a blocked input blocked, but for those onnxruntime
    runs in NCHW only (:data:`PLAIN_ONLY_ACTS`: fusions of fit rules 9 on; before, every
    activation kept it)."""
    plain_only = fz.blocked_bn_acts and node.op.fn in PLAIN_ONLY_ACTS
    fz.simple(node, f"act.{node.op.fn}", same_layout=not plain_only)


@rule("batchnorm", families=("bn",))
def _batchnorm(fz: _Fuser, node) -> None:
    """An unfolded BN. onnxruntime runs it as a blocked depthwise conv when its input is
    blocked (whatever its channels), with a following relu, sigmoid, hswish or hsigmoid
    applied in place (:data:`BN_CONV_ACTS`), and else as a plain BatchNormalization, its
    activation a kernel of its own. Measured on the Xeon host (2026-12-04, onnxruntime
    1.32.0, block 16): a 24 -> 144 replicate (plain: its input's channels are not whole
    blocks) + BN + relu ran BatchNormalization and Relu plain, then a ReorderInput for
    the depthwise conv; a block-aligned add's 20 or 24 channels + BN ran a blocked conv.
    Fusions before fit rules 9 (``blocked_bn_acts`` false) blocked a BN when its channels
    filled whole blocks, reordering a plain input, and fused any conv activation."""
    if fz.blocked_bn_acts:
        blocked = fz.block > 1 and fz.layout_of(node.inputs[0]) == NCHWC
        fused = BN_CONV_ACTS
    else:
        blocked = fz.block > 1 and node.op.channels % fz.block == 0
        fused = CONV_ACTS
    nodes = [node.name]
    act = fz.sole_act(node.name) if blocked else None
    if act is not None and act.op.fn in fused:
        nodes.append(act.name)
    k = fz.simple(node, "bn.c" if blocked else "bn.p", nodes)
    if blocked:
        k.reorder_elems = k.in_elems if fz.layout_of(node.inputs[0]) != NCHWC else 0
        k.layout = NCHWC


@rule("mul", families=("mul",))
def _mul(fz: _Fuser, node) -> None:
    fz.simple(node, "mul")


@rule("replicate", families=("replicate",))
def _replicate(fz: _Fuser, node) -> None:
    """A replicate, which the ONNX file writes as a Concat of copies of its input
    (+ a Slice when the last copy is cut short). Like any concat, onnxruntime keeps it
    blocked when the input is blocked and its channels fill whole blocks; a cut-short
    last copy then reorders all the copies to NCHW for the Slice (plain output).
    Measured on the Xeon host (2026-12-04, onnxruntime 1.32.0, 1 thread, block 16, a 1x1
    conv's output replicated at 56 x 56 and read by a 1x1 conv): 16 -> 32 / 64 and 32 ->
    96 channels ran a blocked Concat (no reorder); 24 -> 48 and 8 -> 32 reordered the
    input out and the result back; 32 -> 80 ran a blocked Concat of 96 channels, a
    ReorderOutput of those 96, the Slice and a ReorderInput of 80. Fusions before fit
    rules 8 (``blocked_replicate`` false) reordered every replicate's blocked input."""
    x = fz.g[node.inputs[0]]
    c = x.shape[0]
    if not (fz.blocked_replicate and fz.block > 1 and fz.layout_of(x.name) == NCHWC
            and c % fz.block == 0):
        fz.simple(node, "replicate")
        return
    whole = node.shape[0] % c == 0
    k = fz.simple(node, "replicate", same_layout=whole)
    if not whole:   # the blocked copies go to NCHW for the Slice
        k.reorder_elems = -(-node.shape[0] // c) * numel(x.shape)


@rule("concat", families=("concat",))
def _concat(fz: _Fuser, node) -> None:
    """A concat. onnxruntime's NCHWc transformer concatenates blocked tensors in the
    blocked layout when every input's channels fill whole blocks (24 + 24 channels at
    block 16 do not: each input is reordered to NCHW, concatenated there, and the next
    blocked conv reorders the result back). Measured on the Xeon host (2026-12-04,
    onnxruntime 1.32.0, 1 thread, block 16): a 1x1 conv's output and a depthwise conv's
    concatenated at 112 x 112 and read by a 1x1 conv to 64 channels: 24 + 24 channels,
    concat 261 us and reading conv 627 us (2 ReorderOutput, Concat, ReorderInput in the
    optimised graph); 32 + 32, 218 and 566 (a blocked Concat, no reorder). Fusions
    before fit rules 7 (``blocked_concat`` false) reordered every concat's blocked
    inputs."""
    blocked = fz.blocked_concat and fz.block > 1 and all(
        fz.layout_of(i) == NCHWC and fz.g[i].shape[0] % fz.block == 0
        for i in node.inputs)
    fz.simple(node, "concat", same_layout=blocked)


@rule("slice", families=("slice",))
def _slice(fz: _Fuser, node) -> None:
    """A slice; slices that split their input's channels into consecutive parts
    (ShuffleNetV2's channel split) are one kernel: onnxruntime fuses them into a Split."""
    fz.simple(node, "slice", _split(fz, node) or [node.name])


def _split(fz: _Fuser, node) -> list[str] | None:
    readers = [fz.g[c] for c in fz.g.consumers(node.inputs[0])]
    if len(readers) < 2 or any(r.kind != "slice" for r in readers):
        return None
    bounds = sorted((r.op.start, r.op.stop) for r in readers)
    ends = [0] + [stop for _, stop in bounds]
    if [start for start, _ in bounds] != ends[:-1] or ends[-1] != fz.g[node.inputs[0]].shape[0]:
        return None
    return [r.name for r in readers]


@rule("avg_pool", "max_pool", families=("pool",))
def _window_pool(fz: _Fuser, node) -> None:
    """A windowed pool: onnxruntime's AveragePool / MaxPool, run in the blocked layout
    after a blocked conv when its channels fill whole blocks (its work is reading the
    windows, like a global pool's)."""
    op = node.op
    blocked = fz.block > 1 and node.shape[0] % fz.block == 0
    fz.simple(node, f"pool.{node.kind[:3]}.k{op.kernel[0]}s{op.stride[0]}",
              same_layout=blocked)


@rule("resize", families=("replicate",))
def _resize(fz: _Fuser, node) -> None:
    """Bilinear Resize: a small input read, a large output written, as a replicate
    (the latency model has no family of its own for it; its type is its own)."""
    fz.simple(node, "replicate.resize")


@rule("channel_shuffle", "anchor_flatten", families=("concat",))
def _transpose(fz: _Fuser, node) -> None:
    """Reshape + Transpose + Reshape: one copy of every element into a new order, as a
    concat copies its inputs (no family of its own; its type is its own)."""
    fz.simple(node, "concat.transpose")


PARTIAL_ADD_LOWERINGS = ("masked", "concat")


@graph_pass("kernel fusion")
def kernels(graph, nchwc_block: int = 16, partial_add: str = "masked",
            blocked_concat: bool = True, blocked_replicate: bool = True,
            blocked_bn_acts: bool = True) -> list[Kernel]:
    """The kernels onnxruntime runs for ``graph`` (in execution order), each with the IR
    nodes it covers and its figures. ``nchwc_block``: the NCHWc block size of the CPU
    (16 with AVX-512, 8 with AVX2, 0 to turn the blocked layout off). ``partial_add``:
    how the ONNX file spells a partial add of an equally wide tensor's slice --
    ``masked`` (``a + x * mask``, what archspec writes) or ``concat`` (slice + add +
    concat, what it wrote before 2026-12-02: the lowering older raw measurements were
    taken with, which their refits must fuse as measured). ``blocked_concat``: a
    concat of blocked tensors whose channels fill whole blocks stays blocked (fit rules
    7 on: what onnxruntime does); false, every concat reorders (the fusion older
    profiles were fitted with and predict by). ``blocked_replicate``: the same for a
    replicate (fit rules 8 on). ``blocked_bn_acts``: an unfolded BN is blocked when its
    input is, and activations onnxruntime runs in NCHW only reorder a blocked input (fit
    rules 9 on; false: a BN is blocked when its channels fill whole blocks; unlike the
    other two, this changes which nodes a kernel covers, so measurements record it)."""
    if partial_add not in PARTIAL_ADD_LOWERINGS:
        raise ValueError(f"partial_add {partial_add!r}: one of {PARTIAL_ADD_LOWERINGS}")
    out = _Fuser(graph, nchwc_block, partial_add, blocked_concat, blocked_replicate,
                 blocked_bn_acts).run()
    params = sum(k.params for k in out)
    net = params + sum(k.out_elems for k in out)
    for k in out:
        k.net_elems, k.net_params = net, params
    return out


# ---- torch eager: every IR node is its own kernel ------------------------------------------
BACKENDS = ("onnxruntime", "torch")


@graph_pass("eager kernels")
def eager_kernels(graph) -> list[Kernel]:
    """The kernels torch runs for ``graph`` in eager mode on the CPU (``archspec bench
    --backend torch``: ``model.eval()`` under ``torch.inference_mode``): nothing is fused,
    so every IR node but the input is one call -- a conv (``conv.*.p``: the plain layout;
    oneDNN's reorders happen inside the call), its batch norm (``bn.p``) and its
    activation (``act.<fn>``) apart, squeeze-excite as its pool, convs, activations and
    ``mul``, a partial add as ``add_partial`` (a copy and an add into the first
    channels), a slice a view (``slice``), a flatten or dropout (identity in eval) a
    ``reshape``. The figures are those of :func:`kernels` with no blocked layout."""
    fz = _Fuser(graph, 0, "concat")
    for node in graph:
        if node.kind == "input":
            continue
        fz.simple(node, _eager_type(fz, node))
        if node.kind == "conv2d":
            k = fz.kernels[-1]
            k.macs, k.params = fz.work(node.name)
    for k in fz.kernels:
        k.act = activation_class(graph, k.nodes)
    params = sum(k.params for k in fz.kernels)
    net = params + sum(k.out_elems for k in fz.kernels)
    for k in fz.kernels:
        k.net_elems, k.net_params = net, params
    return fz.kernels


_EAGER_TYPES = {"batchnorm": "bn.p", "global_pool": "pool", "flatten": "reshape",
                "dropout": "reshape", "linear": "linear", "mul": "mul", "concat": "concat",
                "replicate": "replicate", "slice": "slice", "resize": "replicate.resize",
                "channel_shuffle": "concat.transpose", "anchor_flatten": "concat.transpose"}


def _eager_type(fz: _Fuser, node) -> str:
    kind, op = node.kind, node.op
    if kind == "conv2d":
        return conv_type(op, False)
    if kind == "activation":
        return f"act.{op.fn}"
    if kind == "add":
        a, b = (fz.g[i].shape for i in node.inputs)
        return "add_partial" if op.partial and a != b else "add"
    if kind in ("avg_pool", "max_pool"):
        return f"pool.{kind[:3]}.k{op.kernel[0]}s{op.stride[0]}"
    if kind not in _EAGER_TYPES:
        raise CompileError(f"no eager kernel rule for op kind {kind!r} (node {node.name})")
    return _EAGER_TYPES[kind]


def backend_kernels(graph, backend: str = "onnxruntime", nchwc_block: int = 16,
                    partial_add: str = "masked", blocked_concat: bool = True,
                    blocked_replicate: bool = True,
                    blocked_bn_acts: bool = True) -> list[Kernel]:
    """The kernels ``backend`` runs for ``graph``: :func:`kernels` for onnxruntime,
    :func:`eager_kernels` for torch (which has no blocked layout or partial-add
    lowerings to choose)."""
    if backend == "torch":
        return eager_kernels(graph)
    if backend != "onnxruntime":
        raise ValueError(f"backend {backend!r}: one of {BACKENDS}")
    return kernels(graph, nchwc_block, partial_add, blocked_concat, blocked_replicate,
                   blocked_bn_acts)
