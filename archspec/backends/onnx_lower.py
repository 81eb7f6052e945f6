"""Lower an archspec graph to an ONNX ``ModelProto`` with ``onnx.helper`` (no torch export).

Every IR node becomes the ONNX node of the same name (``stages.3.block1.expand.conv``);
ops ONNX spells with several nodes get the IR name on the node that produces the result
and ``<name>.<part>`` on the helpers (swish: ``<name>.sigmoid`` then ``<name>``; partial
add: ``<name>.head``, ``<name>.sum``, ``<name>.tail``, ``<name>``). Tensors carry the name
of the IR node that produced them, except the graph outputs, which are named after their
key (``output``, or the taps ``C4``/``C5``). Initialisers use the torch backend's
``state_dict`` keys (``<name>.weight``, ``<name>.running_mean``, ...).

For inference a batch norm whose input is a conv read by nothing else is folded into that
conv (the conv gets a bias; the BN node disappears and the conv's output tensor takes the
BN's name). Any other batch norm stays a ``BatchNormalization`` node.
"""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import BackendError, did_you_mean
from ..ir.graph import Graph
from .common import live_nodes

OPSET = 21          # onnx >= 1.15, onnxruntime >= 1.18
MIN_OPSET = 17      # HardSwish needs 14; LayerNorm-era opsets keep the Clip/Slice forms used
BN_EPS = 1e-5       # torch's BatchNorm default; the IR does not vary it
INT64_MAX = 2 ** 63 - 1
HSIGMOID = {"alpha": 1.0 / 6.0, "beta": 0.5}  # torch.nn.Hardsigmoid = relu6(x + 3) / 6


# ---- weights ------------------------------------------------------------------------------
def random_weights(graph: Graph, seed: int | None = None) -> dict[str, np.ndarray]:
    """The torch backend's initialisation, drawn with numpy: Kaiming-normal (fan-out)
    convs with zero biases, BN gamma 1 / beta 0 / mean 0 / var 1, linear N(0, 0.01)."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for node in graph:
        op, n = node.op, node.name
        if node.kind == "conv2d":
            shape = (op.out_channels, op.in_channels // op.groups, op.kernel, op.kernel)
            std = math.sqrt(2.0 / (op.out_channels * op.kernel * op.kernel))
            w[f"{n}.weight"] = rng.normal(0.0, std, shape).astype(np.float32)
            if op.bias:
                w[f"{n}.bias"] = np.zeros(op.out_channels, np.float32)
        elif node.kind == "batchnorm":
            c = op.channels
            w[f"{n}.weight"] = np.ones(c, np.float32)
            w[f"{n}.bias"] = np.zeros(c, np.float32)
            w[f"{n}.running_mean"] = np.zeros(c, np.float32)
            w[f"{n}.running_var"] = np.ones(c, np.float32)
        elif node.kind == "linear":
            w[f"{n}.weight"] = rng.normal(0.0, 0.01, (op.out_features, op.in_features)
                                          ).astype(np.float32)
            if op.bias:
                w[f"{n}.bias"] = np.zeros(op.out_features, np.float32)
    return w


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

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
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
    """BN name -> conv name for every batch norm that folds into the conv before it: the
    conv feeds only that BN and is not itself an output."""
    pairs = {}
    for node in graph:
        if node.kind != "batchnorm":
            continue
        (src,) = node.inputs
        if (graph[src].kind == "conv2d" and graph.consumers(src) == [node.name]
                and src not in outputs):
            pairs[node.name] = src
    return pairs


def _fold(conv_w, conv_b, bn: dict) -> tuple[np.ndarray, np.ndarray]:
    scale = bn["weight"] / np.sqrt(bn["running_var"].astype(np.float64) + BN_EPS)
    w = conv_w.astype(np.float64) * scale[:, None, None, None]
    b = ((conv_b if conv_b is not None else 0.0) - bn["running_mean"]) * scale + bn["bias"]
    return w.astype(np.float32), np.asarray(b, dtype=np.float32)


def lower(graph: Graph, weights: dict[str, np.ndarray], outputs: dict[str, str], *,
          fold_bn: bool = True, fp16: bool = False, opset: int = OPSET,
          producer_version: str = "") -> onnx.ModelProto:
    """The ONNX model computing ``outputs`` (key -> IR node) of ``graph`` with ``weights``."""
    if opset < MIN_OPSET:
        raise BackendError(f"onnx backend: opset {opset} is too old (need >= {MIN_OPSET})")
    dtype = np.float16 if fp16 else np.float32
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    b = _Builder(dtype)
    live = live_nodes(graph, outputs.values())
    folds = foldable(graph, set(outputs.values())) if fold_bn else {}
    folded_convs = set(folds.values())
    out_names: dict[str, str] = {}
    for key, ir in outputs.items():
        out_names.setdefault(ir, key)
    tensor: dict[str, str] = {}  # IR node -> the ONNX tensor holding its value

    def name_of(ir: str) -> str:
        return out_names.get(ir, ir)

    (input_name,) = graph.inputs
    for node in graph:
        if node.name not in live:
            continue
        n, op, doc = node.name, node.op, _doc(node)
        kind = node.kind
        args = [] if n in folds else [tensor[i] for i in node.inputs]
        if kind == "input":
            tensor[n] = name_of(n)
        elif kind == "conv2d":
            if n in folded_convs:
                continue  # emitted with its batch norm
            tensor[n] = _conv(b, node, args, name_of(n), n, weights.get(f"{n}.weight"),
                              weights.get(f"{n}.bias"), doc)
        elif kind == "batchnorm" and n in folds:
            conv = graph[folds[n]]
            bn = {k: weights[f"{n}.{k}"] for k in ("weight", "bias", "running_mean",
                                                   "running_var")}
            w, bias = _fold(weights[f"{conv.name}.weight"], weights.get(f"{conv.name}.bias"),
                            bn)
            tensor[conv.name] = tensor[n] = _conv(
                b, conv, [tensor[i] for i in conv.inputs], name_of(n), conv.name, w, bias,
                _doc(conv), force_bias=True)
        elif kind == "batchnorm":
            ins = [b.init(f"{n}.{k}", weights[f"{n}.{k}"])
                   for k in ("weight", "bias", "running_mean", "running_var")]
            tensor[n] = b.node("BatchNormalization", [args[0], *ins], name_of(n), n, doc,
                               epsilon=BN_EPS)
        elif kind == "activation":
            tensor[n] = _activation(b, op.fn, args[0], name_of(n), n, doc)
        elif kind == "add":
            tensor[n] = _add(b, node, graph, args, name_of(n), doc)
        elif kind == "mul":
            tensor[n] = b.node("Mul", args, name_of(n), n, doc)
        elif kind == "global_pool":
            tensor[n] = b.node("GlobalAveragePool", args, name_of(n), n, doc)
        elif kind == "flatten":
            tensor[n] = b.node("Flatten", args, name_of(n), n, doc, axis=1)
        elif kind == "linear":
            ins = [args[0], b.init(f"{n}.weight", weights[f"{n}.weight"])]
            if op.bias:
                ins.append(b.init(f"{n}.bias", weights[f"{n}.bias"]))
            tensor[n] = b.node("Gemm", ins, name_of(n), n, doc, transB=1)
        elif kind == "dropout":
            ratio = b.init(f"{n}.ratio", np.array(op.p, dtype))
            tensor[n] = b.node("Dropout", [args[0], ratio], name_of(n), n, doc)
        elif kind == "concat":
            tensor[n] = b.node("Concat", args, name_of(n), n, doc, axis=1)
        elif kind == "replicate":
            tensor[n] = _replicate(b, node, graph, args[0], name_of(n), doc)
        elif kind == "slice":
            tensor[n] = _slice(b, args[0], op.start, op.stop, name_of(n), n, doc)
        else:
            raise BackendError(f"onnx backend: no lowering for op kind `{kind}` (node {n})")

    for key, ir in outputs.items():  # a second key naming the same node gets an Identity
        if tensor[ir] != key:
            b.node("Identity", [tensor[ir]], key, f"{key}.identity")

    batch_shape = ["batch", *graph[input_name].shape]
    inputs = [helper.make_tensor_value_info(name_of(input_name), elem, batch_shape)]
    outs = [helper.make_tensor_value_info(key, elem, ["batch", *graph[ir].shape])
            for key, ir in outputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in b.inits.items()]
    g = helper.make_graph(b.nodes, graph.name, inputs, outs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(g, opset_imports=opsets, producer_name="archspec",
                              producer_version=producer_version,
                              ir_version=helper.find_min_ir_version_for(opsets))
    meta = {"archspec.graph": graph.name, "archspec.fold_bn": str(bool(fold_bn)).lower(),
            "archspec.dtype": "fp16" if fp16 else "fp32",
            **{f"archspec.{k}": str(graph.meta.get(k)) for k in
               ("spec", "resolution", "width", "classes")}}
    helper.set_model_props(model, meta)
    return model


def _conv(b: _Builder, node, args, out, name, w, bias, doc, force_bias=False):
    op = node.op
    p = op.padding
    ins = [args[0], b.init(f"{name}.weight", w)]
    if op.bias or force_bias:
        ins.append(b.init(f"{name}.bias", bias))
    return b.node("Conv", ins, out, name, doc, kernel_shape=[op.kernel, op.kernel],
                  strides=[op.stride, op.stride], pads=[p, p, p, p],
                  dilations=[op.dilation, op.dilation], group=op.groups)


def _activation(b: _Builder, fn: str, x: str, out: str, name: str, doc: str) -> str:
    if fn == "relu":
        return b.node("Relu", [x], out, name, doc)
    if fn == "relu6":
        lo = b.init("const.zero", np.array(0.0, b.dtype))
        hi = b.init("const.six", np.array(6.0, b.dtype))
        return b.node("Clip", [x, lo, hi], out, name, doc)
    if fn == "hswish":
        return b.node("HardSwish", [x], out, name, doc)
    if fn == "hsigmoid":
        return b.node("HardSigmoid", [x], out, name, doc, **HSIGMOID)
    if fn == "sigmoid":
        return b.node("Sigmoid", [x], out, name, doc)
    if fn == "swish":  # x * sigmoid(x): ONNX has no Swish before opset 24
        gate = b.node("Sigmoid", [x], f"{name}.sigmoid", f"{name}.sigmoid", doc)
        return b.node("Mul", [x, gate], out, name, doc)
    raise BackendError(f"onnx backend: no lowering for activation `{fn}` (node {name})")


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

    outputs = set((outputs or graph.outputs).values())
    total = cost(graph).totals.params
    for bn, conv in foldable(graph, outputs).items():
        c = graph[bn].op.channels
        total -= 2 * c - (0 if graph[conv].op.bias else c)
    return total
