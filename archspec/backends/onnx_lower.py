"""Lower an archspec graph to an ONNX ``ModelProto`` with ``onnx.helper`` (no torch export).

Every IR node becomes the ONNX node of the same name (``stages.3.block1.expand.conv``);
ops ONNX spells with several nodes get the IR name on the node that produces the result
and ``<name>.<part>`` on the helpers (swish: ``<name>.sigmoid`` then ``<name>``; gelu
below opset 20: see :func:`_gelu`; partial add: ``<name>.head``, ``<name>.sum``,
``<name>.tail``, ``<name>``, or ``<name>.mask`` then ``<name>`` where it adds a slice of
a tensor as wide as itself (:func:`_masked_add`); channel shuffle and anchor flatten:
``<name>.split``, ``<name>.transpose``, ``<name>``). Tensors carry the name of the IR
node that produced them, except the graph outputs, which are named after their key
(``output``, or the taps ``C4``/``C5``). Initialisers use the torch backend's ``state_dict``
keys (``<name>.weight``, ``<name>.running_mean``, ...).

For inference a batch norm whose input is a conv read by nothing else is folded into that
conv (the conv gets a bias; the BN node disappears and the conv's output tensor takes the
BN's name): the bn folding pass (``archspec.ir.passes.bn_folding``) says which. Any other
batch norm stays a ``BatchNormalization`` node.

Dispatch (``archspec.ir.dispatch.OpTable``): :data:`ONNX_LOWER` has one handler per IR op
kind, :data:`ACTIVATION` one ONNX spelling per activation, :data:`INIT` one weight
initialisation per op kind.
"""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import BackendError, did_you_mean
from ..ir.dispatch import OpTable, UnknownOp
from ..ir.graph import Graph
from ..ir.ops import ACTIVATION_CONSTANTS
from ..ir.passes import BnFolding, bn_folding, masked_source
from ..spec.embedded import overrides_of
from .common import live_nodes

OPSET = 21          # onnx >= 1.15, onnxruntime >= 1.18
MIN_OPSET = 17      # HardSwish needs 14; LayerNorm-era opsets keep the Clip/Slice forms used
INT64_MAX = 2 ** 63 - 1
HSIGMOID = {"alpha": 1.0 / 6.0, "beta": 0.5}  # torch.nn.Hardsigmoid = relu6(x + 3) / 6
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


# ---- weights ------------------------------------------------------------------------------
def random_weights(graph: Graph, seed: int | None = None) -> dict[str, np.ndarray]:
    """The torch backend's initialisation, drawn with numpy: Kaiming-normal (fan-out)
    convs with zero biases, BN gamma 1 / beta 0 / mean 0 / var 1, linear N(0, 0.01)."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for node in graph:
        for key, value in INIT[node.kind](node.op, rng).items():
            w[f"{node.name}.{key}"] = value
    return w


INIT = OpTable("onnx weight initialisation")   # op kind -> (op, rng) -> {suffix: array}


@INIT.register("conv2d")
def _init_conv(op, rng) -> dict:
    shape = (op.out_channels, op.in_channels // op.groups, op.kernel, op.kernel)
    std = math.sqrt(2.0 / (op.out_channels * op.kernel * op.kernel))
    w = {"weight": rng.normal(0.0, std, shape).astype(np.float32)}
    if op.bias:
        w["bias"] = np.zeros(op.out_channels, np.float32)
    return w


@INIT.register("batchnorm")
def _init_bn(op, rng) -> dict:
    c = op.channels
    return {"weight": np.ones(c, np.float32), "bias": np.zeros(c, np.float32),
            "running_mean": np.zeros(c, np.float32), "running_var": np.ones(c, np.float32)}


@INIT.register("linear")
def _init_linear(op, rng) -> dict:
    w = {"weight": rng.normal(0.0, 0.01, (op.out_features, op.in_features)).astype(np.float32)}
    if op.bias:
        w["bias"] = np.zeros(op.out_features, np.float32)
    return w


@INIT.register("input", "activation", "add", "mul", "global_pool", "flatten", "dropout",
               "concat", "replicate", "slice", "avg_pool", "max_pool", "resize",
               "channel_shuffle", "anchor_flatten")
def _init_none(op, rng) -> dict:
    return {}


def expected_shapes(graph: Graph) -> dict[str, tuple]:
    """The weight names and shapes ``graph`` needs (the torch backend's ``state_dict``)."""
    return {k: v.shape for k, v in random_weights(graph, 0).items()}


def as_numpy(state_dict, source: str, graph: Graph, outputs=None) -> dict[str, np.ndarray]:
    """``state_dict`` (torch tensors or arrays) as float32 arrays, checked against the
    weights that computing ``outputs`` (default: the graph's) needs; extra entries
    (``num_batches_tracked``, layers the outputs do not need) are ignored."""
    live = live_nodes(graph, (outputs or graph.outputs).values())
    needed = expected_shapes(graph)
    out = {}
    for key, shape in needed.items():
        if key.rsplit(".", 1)[0] not in live:
            continue
        if key not in state_dict:
            have = [k for k in state_dict if not k.endswith("num_batches_tracked")]
            raise BackendError(f"{source} does not match the spec: no tensor `{key}` "
                               f"({did_you_mean(key, have) if have else 'the file is empty'})")
        value = state_dict[key]
        if hasattr(value, "detach"):
            value = value.detach().cpu().float().numpy()
        value = np.asarray(value, dtype=np.float32)
        if tuple(value.shape) != tuple(shape):
            raise BackendError(f"{source} does not match the spec: {key} has shape "
                               f"{tuple(value.shape)}, the spec needs {tuple(shape)}")
        out[key] = value
    return out


# ---- lowering -----------------------------------------------------------------------------
class _Builder:
    """Collects nodes and initialisers while walking the graph."""

    def __init__(self, dtype: np.dtype, opset: int = OPSET):
        self.dtype, self.opset = dtype, opset
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}

    def init(self, name: str, value) -> str:
        value = np.asarray(value)
        if value.dtype.kind == "f":
            value = value.astype(self.dtype)
        self.inits[name] = value
        return name

    def node(self, op_type: str, inputs, output: str, name: str, doc: str = "", **attrs):
        n = helper.make_node(op_type, list(inputs), [output], name=name, **attrs)
        if doc:
            n.doc_string = doc
        self.nodes.append(n)
        return output


def _doc(node) -> str:
    """Where an ONNX node came from, read back by archspec.onnx_import."""
    return "archspec " + json.dumps({"block": node.block, "stage": node.stage,
                                     "block_type": node.block_type}, separators=(",", ":"))


def foldable(graph: Graph, outputs=()) -> dict[str, str]:
    """BN name -> conv name for every batch norm that folds into the conv before it (the
    bn folding pass, :func:`archspec.ir.passes.bn_folding`, keeping ``outputs``)."""
    return dict(bn_folding(graph, outputs).into)


def _fold(conv_w, conv_b, bn: dict, eps: float) -> tuple[np.ndarray, np.ndarray]:
    scale = bn["weight"] / np.sqrt(bn["running_var"].astype(np.float64) + eps)
    w = conv_w.astype(np.float64) * scale[:, None, None, None]
    b = ((conv_b if conv_b is not None else 0.0) - bn["running_mean"]) * scale + bn["bias"]
    return w.astype(np.float32), np.asarray(b, dtype=np.float32)


class _Lowering:
    """One lowering under way: the builder, the weights, the folded batch norms and the
    ONNX tensor holding each IR node's value (outputs are named after their key)."""

    def __init__(self, graph: Graph, weights: dict, outputs: dict[str, str],
                 folds: BnFolding, dtype, opset: int = OPSET):
        self.graph, self.weights, self.folds = graph, weights, folds
        self.b = _Builder(dtype, opset)
        self.out_names: dict[str, str] = {}
        for key, ir in outputs.items():
            self.out_names.setdefault(ir, key)
        self.tensor: dict[str, str] = {}

    def name_of(self, ir: str) -> str:
        return self.out_names.get(ir, ir)

    def args(self, node) -> list[str]:
        return [self.tensor[i] for i in node.inputs]

    def emit(self, op_type: str, node, inputs=None, **attrs) -> str:
        """One ONNX node computing IR ``node`` (from its inputs unless given)."""
        ins = self.args(node) if inputs is None else inputs
        return self.b.node(op_type, ins, self.name_of(node.name), node.name, _doc(node),
                           **attrs)


def lower(graph: Graph, weights: dict[str, np.ndarray], outputs: dict[str, str], *,
          fold_bn: bool = True, fp16: bool = False, opset: int = OPSET,
          producer_version: str = "") -> onnx.ModelProto:
    """The ONNX model computing ``outputs`` (key -> IR node) of ``graph`` with ``weights``."""
    if opset < MIN_OPSET:
        raise BackendError(f"onnx backend: opset {opset} is too old (need >= {MIN_OPSET})")
    folds = bn_folding(graph, outputs.values()) if fold_bn else BnFolding({})
    lw = _Lowering(graph, weights, outputs, folds, np.float16 if fp16 else np.float32, opset)
    live = live_nodes(graph, outputs.values())
    for node in graph:
        if node.name not in live:
            continue
        try:
            handler = ONNX_LOWER[node.kind]
        except UnknownOp as e:
            raise BackendError(f"{e} (node {node.name})") from None
        value = handler(lw, node)
        if value is not None:
            lw.tensor[node.name] = value
    for key, ir in outputs.items():  # a second key naming the same node gets an Identity
        if lw.tensor[ir] != key:
            lw.b.node("Identity", [lw.tensor[ir]], key, f"{key}.identity")
    model = _model(lw, outputs, TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT, opset,
                   producer_version)
    meta = {"archspec.graph": graph.name, "archspec.fold_bn": str(bool(fold_bn)).lower(),
            "archspec.dtype": "fp16" if fp16 else "fp32",
            "archspec.spec": str(graph.meta.get("spec")),
            **{f"archspec.{k}": str(v) for k, v in overrides_of(graph).items()}}
    helper.set_model_props(model, meta)
    return model


def _model(lw: _Lowering, outputs: dict[str, str], elem: int, opset: int,
           producer_version: str) -> onnx.ModelProto:
    """The model around the lowered nodes: the image input, the outputs, the initialisers."""
    graph = lw.graph
    (input_name,) = graph.inputs
    batch_shape = ["batch", *graph[input_name].shape]
    inputs = [helper.make_tensor_value_info(lw.name_of(input_name), elem, batch_shape)]
    outs = [helper.make_tensor_value_info(key, elem, ["batch", *graph[ir].shape])
            for key, ir in outputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in lw.b.inits.items()]
    g = helper.make_graph(lw.b.nodes, graph.name, inputs, outs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(g, opset_imports=opsets, producer_name="archspec",
                             producer_version=producer_version,
                             ir_version=helper.find_min_ir_version_for(opsets))


# ---- one handler per IR op kind: (lowering, node) -> the ONNX tensor of its value --------
ONNX_LOWER = OpTable("onnx lowering")


@ONNX_LOWER.register("input")
def _lower_input(lw: _Lowering, node) -> str:
    return lw.name_of(node.name)


@ONNX_LOWER.register("conv2d")
def _lower_conv(lw: _Lowering, node) -> str | None:
    n = node.name
    if n in lw.folds.convs:
        return None  # emitted with its batch norm
    return _conv(lw, node, lw.name_of(n), n, lw.weights.get(f"{n}.weight"),
                 lw.weights.get(f"{n}.bias"), _doc(node))


@ONNX_LOWER.register("batchnorm")
def _lower_bn(lw: _Lowering, node) -> str:
    """A folded batch norm emits its conv with the folded weights; the conv's output
    tensor takes the batch norm's name. Any other is a BatchNormalization node."""
    n, w = node.name, lw.weights
    if n not in lw.folds.into:
        ins = [lw.b.init(f"{n}.{k}", w[f"{n}.{k}"]) for k in BN_TENSORS]
        return lw.emit("BatchNormalization", node, [*lw.args(node), *ins],
                       epsilon=node.op.eps)
    conv = lw.graph[lw.folds.into[n]]
    weight, bias = _fold(w[f"{conv.name}.weight"], w.get(f"{conv.name}.bias"),
                         {k: w[f"{n}.{k}"] for k in BN_TENSORS}, node.op.eps)
    lw.tensor[conv.name] = _conv(lw, conv, lw.name_of(n), conv.name, weight, bias,
                                 _doc(conv), force_bias=True)
    return lw.tensor[conv.name]


@ONNX_LOWER.register("activation")
def _lower_activation(lw: _Lowering, node) -> str:
    n = node.name
    return ACTIVATION[node.op.fn](lw.b, lw.args(node)[0], lw.name_of(n), n, _doc(node))


@ONNX_LOWER.register("add")
def _lower_add(lw: _Lowering, node) -> str:
    x = masked_source(lw.graph, node)
    if x is not None:
        return _masked_add(lw, node, x)
    return _add(lw.b, node, lw.graph, lw.args(node), lw.name_of(node.name), _doc(node))


def _masked_add(lw: _Lowering, node, x: str) -> str:
    """``a + x * mask`` (mask: 1 on the first cb channels, 0 after) in place of
    ``a + x[:, :cb]``: onnxruntime runs the Mul as a blocked 1x1 depthwise conv and fuses
    the Add into the conv that makes ``a``, so no tensor leaves the blocked layout. The
    slice this add reads is dropped (nothing else reads it)."""
    b, n, doc = lw.b, node.name, _doc(node)
    cut = node.inputs[1]
    dropped = [m for m in b.nodes if m.name == cut]
    for m in dropped:
        b.nodes.remove(m)
        for i in m.input[1:]:
            b.inits.pop(i, None)
    ca, cb = node.shape[0], lw.graph[cut].shape[0]
    mask = (np.arange(ca) < cb).reshape(1, ca, 1, 1)
    xm = b.node("Mul", [lw.tensor[x], b.init(f"{n}.keep", mask.astype(np.float32))],
                f"{n}.mask", f"{n}.mask", doc)
    return b.node("Add", [lw.args(node)[0], xm], lw.name_of(n), n, doc)


@ONNX_LOWER.register("mul")
def _lower_mul(lw: _Lowering, node) -> str:
    return lw.emit("Mul", node)


@ONNX_LOWER.register("global_pool")
def _lower_pool(lw: _Lowering, node) -> str:
    return lw.emit("GlobalAveragePool", node)


@ONNX_LOWER.register("flatten")
def _lower_flatten(lw: _Lowering, node) -> str:
    return lw.emit("Flatten", node, axis=1)


@ONNX_LOWER.register("concat")
def _lower_concat(lw: _Lowering, node) -> str:
    return lw.emit("Concat", node, axis=1)


def _pool_attrs(node, size) -> dict:
    """kernel_shape, strides, pads and ceil_mode giving torch's windows. ONNX's ceil_mode
    lacks torch's rule that the last window starts inside the input or its left padding
    (its shape inference counts one window more), so: ceil_mode=1 where the two agree,
    ceil_mode=0 where ceil mode adds no window, else ceil_mode=0 with the end padding
    reaching the last window (exact where padding is not averaged)."""
    op = node.op
    out = node.shape[1:]
    floor = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, op.kernel, op.stride,
                                                            op.padding)]
    onnx_ceil = [-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(size, op.kernel,
                                                                     op.stride, op.padding)]
    begin = list(op.padding)
    attrs = {"kernel_shape": list(op.kernel), "strides": list(op.stride)}
    if list(out) == floor or list(out) == onnx_ceil:
        return {**attrs, "pads": begin * 2, "ceil_mode": int(list(out) != floor)}
    if getattr(op, "count_include_pad", False):
        raise BackendError(f"onnx backend: node {node.name}: ONNX cannot express this "
                           f"ceil_mode average pool on a {size[0]}x{size[1]} map with "
                           "count_include_pad (use count_include_pad: false or another "
                           "size)")
    end = [(o - 1) * s + k - n - p for o, s, k, n, p in zip(out, op.stride, op.kernel,
                                                             size, begin)]
    return {**attrs, "pads": begin + end, "ceil_mode": 0}


@ONNX_LOWER.register("avg_pool")
def _lower_avg_pool(lw: _Lowering, node) -> str:
    size = lw.graph[node.inputs[0]].shape[1:]
    return lw.emit("AveragePool", node, count_include_pad=int(node.op.count_include_pad),
                   **_pool_attrs(node, size))


@ONNX_LOWER.register("max_pool")
def _lower_max_pool(lw: _Lowering, node) -> str:
    return lw.emit("MaxPool", node, **_pool_attrs(node, lw.graph[node.inputs[0]].shape[1:]))


RESIZE = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
"""torch's bilinear, align_corners=False: source = (dst + 0.5) * in / out - 0.5, clamped."""
AXES_OPSET = 18   # the first opset whose Resize takes ``axes`` (sizes of H and W only)


@ONNX_LOWER.register("resize")
def _lower_resize(lw: _Lowering, node) -> str:
    """Resize to explicit sizes (batch and channels kept: from the input's shape below
    opset 18)."""
    n, b = node.name, lw.b
    (x,) = lw.args(node)
    size = np.array(node.op.size, np.int64)
    if b.opset >= AXES_OPSET:
        return lw.emit("Resize", node, [x, "", "", b.init(f"{n}.sizes", size)], axes=[2, 3],
                       **RESIZE)
    shape = b.node("Shape", [x], f"{n}.shape", f"{n}.shape", _doc(node), end=2)
    sizes = b.node("Concat", [shape, b.init(f"{n}.hw", size)], f"{n}.sizes", f"{n}.sizes",
                   _doc(node), axis=0)
    return lw.emit("Resize", node, [x, "", "", sizes], **RESIZE)


def _permute(lw: _Lowering, node, split, perm, merge) -> str:
    """Reshape to ``split``, Transpose by ``perm``, Reshape to ``merge`` (0: the batch):
    ``<name>.split``, ``<name>.transpose``, ``<name>``."""
    n, b, doc = node.name, lw.b, _doc(node)
    (x,) = lw.args(node)
    t = b.node("Reshape", [x, b.init(f"{n}.split_shape", np.array(split, np.int64))],
               f"{n}.split", f"{n}.split", doc)
    t = b.node("Transpose", [t], f"{n}.transpose", f"{n}.transpose", doc, perm=perm)
    return lw.emit("Reshape", node, [t, b.init(f"{n}.shape", np.array(merge, np.int64))])


SHUFFLE_PERM = [0, 2, 1, 3, 4]
ANCHOR_PERM = [0, 3, 4, 1, 2]


@ONNX_LOWER.register("channel_shuffle")
def _lower_channel_shuffle(lw: _Lowering, node) -> str:
    c, h, w = node.shape
    g = node.op.groups
    return _permute(lw, node, [0, g, c // g, h, w], SHUFFLE_PERM, [0, c, h, w])


@ONNX_LOWER.register("anchor_flatten")
def _lower_anchor_flatten(lw: _Lowering, node) -> str:
    c, h, w = lw.graph[node.inputs[0]].shape
    k = node.op.per_anchor
    return _permute(lw, node, [0, c // k, k, h, w], ANCHOR_PERM, [0, -1, k])


@ONNX_LOWER.register("linear")
def _lower_linear(lw: _Lowering, node) -> str:
    n = node.name
    ins = [*lw.args(node), lw.b.init(f"{n}.weight", lw.weights[f"{n}.weight"])]
    if node.op.bias:
        ins.append(lw.b.init(f"{n}.bias", lw.weights[f"{n}.bias"]))
    return lw.emit("Gemm", node, ins, transB=1)


@ONNX_LOWER.register("dropout")
def _lower_dropout(lw: _Lowering, node) -> str:
    ratio = lw.b.init(f"{node.name}.ratio", np.array(node.op.p, lw.b.dtype))
    return lw.emit("Dropout", node, [*lw.args(node), ratio])


@ONNX_LOWER.register("replicate")
def _lower_replicate(lw: _Lowering, node) -> str:
    return _replicate(lw.b, node, lw.graph, lw.args(node)[0], lw.name_of(node.name),
                      _doc(node))


@ONNX_LOWER.register("slice")
def _lower_slice(lw: _Lowering, node) -> str:
    n = node.name
    return _slice(lw.b, lw.args(node)[0], node.op.start, node.op.stop, lw.name_of(n), n,
                  _doc(node))


def _conv(lw: _Lowering, node, out, name, w, bias, doc, force_bias=False):
    """A Conv node; its ``pads`` are the op's, asymmetric where TF "same" makes them so."""
    op, b = node.op, lw.b
    top, left, bottom, right = op.pads(*lw.graph[node.inputs[0]].shape[1:])
    ins = [lw.args(node)[0], b.init(f"{name}.weight", w)]
    if op.bias or force_bias:
        ins.append(b.init(f"{name}.bias", bias))
    return b.node("Conv", ins, out, name, doc, kernel_shape=[op.kernel, op.kernel],
                  strides=[op.stride, op.stride], pads=[top, left, bottom, right],
                  dilations=[op.dilation, op.dilation], group=op.groups)


# ---- one spelling per activation (archspec.ir.ops.ACTIVATIONS) --------------------------
ACTIVATION = OpTable("onnx lowering", keys="activation")
ONE_NODE = {"relu": ("Relu", {}), "hswish": ("HardSwish", {}), "sigmoid": ("Sigmoid", {}),
            "hsigmoid": ("HardSigmoid", HSIGMOID), "softplus": ("Softplus", {}),
            "elu": ("Elu", {"alpha": ACTIVATION_CONSTANTS["elu"]["alpha"]}),
            "leaky_relu": ("LeakyRelu",
                           {"alpha": ACTIVATION_CONSTANTS["leaky_relu"]["negative_slope"]})}
# activation -> (ONNX op, attributes). ONNX's Softplus has no threshold: above torch's
# (20) the two differ by log1p(exp(-x)) < 2.1e-9.
GELU_OPSET = 20   # the first opset with a Gelu op


def _one_node(op_type: str, attrs: dict):
    def spell(b: _Builder, x: str, out: str, name: str, doc: str) -> str:
        return b.node(op_type, [x], out, name, doc, **attrs)
    return spell


for _fn, (_op_type, _attrs) in ONE_NODE.items():
    ACTIVATION.register(_fn)(_one_node(_op_type, _attrs))


@ACTIVATION.register("relu6")
def _relu6(b: _Builder, x: str, out: str, name: str, doc: str) -> str:
    lo = b.init("const.zero", np.array(0.0, b.dtype))
    hi = b.init("const.six", np.array(6.0, b.dtype))
    return b.node("Clip", [x, lo, hi], out, name, doc)


@ACTIVATION.register("swish")
def _swish(b: _Builder, x: str, out: str, name: str, doc: str) -> str:
    """x * sigmoid(x): ONNX has no Swish before opset 24."""
    gate = b.node("Sigmoid", [x], f"{name}.sigmoid", f"{name}.sigmoid", doc)
    return b.node("Mul", [x, gate], out, name, doc)


@ACTIVATION.register("gelu")
def _gelu(b: _Builder, x: str, out: str, name: str, doc: str) -> str:
    """Gelu from opset 20; before it, its exact erf formula x * (1 + erf(x / sqrt 2)) * 0.5
    as torch exports it: ``<name>.div``, ``<name>.erf``, ``<name>.add``, ``<name>.mul``,
    ``<name>``."""
    if b.opset >= GELU_OPSET:
        return b.node("Gelu", [x], out, name, doc)
    root2 = b.init("const.sqrt2", np.array(math.sqrt(2.0), b.dtype))
    one = b.init("const.one", np.array(1.0, b.dtype))
    half = b.init("const.half", np.array(0.5, b.dtype))
    t = b.node("Div", [x, root2], f"{name}.div", f"{name}.div", doc)
    t = b.node("Erf", [t], f"{name}.erf", f"{name}.erf", doc)
    t = b.node("Add", [t, one], f"{name}.add", f"{name}.add", doc)
    t = b.node("Mul", [x, t], f"{name}.mul", f"{name}.mul", doc)
    return b.node("Mul", [t, half], out, name, doc)


def _slice(b: _Builder, x, start, stop, out, name, doc) -> str:
    ins = [x, b.init(f"{name}.starts", np.array([start], np.int64)),
           b.init(f"{name}.ends", np.array([INT64_MAX if stop is None else stop], np.int64)),
           b.init(f"{name}.axes", np.array([1], np.int64))]
    return b.node("Slice", ins, out, name, doc)


def _add(b: _Builder, node, graph, args, out, doc) -> str:
    a, x = args
    n = node.name
    ca, cb = graph[node.inputs[0]].shape[0], graph[node.inputs[1]].shape[0]
    if ca == cb:
        return b.node("Add", [a, x], out, n, doc)
    # ReXNet / MobileNeXt partial shortcut: x is added into the first cb channels of a.
    head = _slice(b, a, 0, cb, f"{n}.head", f"{n}.head", doc)
    total = b.node("Add", [head, x], f"{n}.sum", f"{n}.sum", doc)
    tail = _slice(b, a, cb, None, f"{n}.tail", f"{n}.tail", doc)
    return b.node("Concat", [total, tail], out, n, doc, axis=1)


def _replicate(b: _Builder, node, graph, x, out, doc) -> str:
    n = node.name
    c = graph[node.inputs[0]].shape[0]
    target = node.op.out_channels
    copies = -(-target // c)
    if target % c == 0:  # also a one-input Concat for a no-op replicate, kept as a node
        return b.node("Concat", [x] * copies, out, n, doc, axis=1)
    stacked = b.node("Concat", [x] * copies, f"{n}.copies", f"{n}.copies", doc, axis=1)
    return _slice(b, stacked, 0, target, out, n, doc)


def folded_params(graph: Graph, outputs=None) -> int:
    """The parameter count of ``graph`` after BN folding, as a folded ONNX file holds it:
    each folded BN's gamma and beta (2C) are gone and its conv gains a bias (C) if it had
    none. Buffers (running statistics) are gone too."""
    from ..analysis.cost import cost

    folds = bn_folding(graph, (outputs or graph.outputs).values())
    total = cost(graph).totals.params
    for bn, conv in folds.into.items():
        c = graph[bn].op.channels
        total -= 2 * c - (0 if graph[conv].op.bias else c)
    return total
