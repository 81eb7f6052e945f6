"""Read an ONNX file (ours or anyone's) back into an archspec graph, so that every command
that takes a SPEC (``archspec cost model.onnx``, ``diff a.yaml b.onnx``, ``sweep``, ``plot``)
works on models archspec did not write. :class:`OnnxSource` is what
:func:`archspec.sources.load` returns for such a file; :func:`embed_spec` stores the spec an
export was built from in its metadata, so that width and classes overrides can rebuild it.

The importer understands the op set MobileNet-style networks export to: Conv,
BatchNormalization, Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Gelu, Elu, Softplus,
LeakyRelu (with archspec's constants: ELU alpha 1, leaky slope 0.01), Mul, Add,
GlobalAveragePool (and ReduceMean over H, W), AveragePool, MaxPool, Resize (bilinear,
half-pixel, constant sizes), Gemm, Flatten, Reshape/Squeeze to a vector, Concat, Slice,
Dropout/Identity, Constant, and shape arithmetic on constants (Shape, Gather, Add, Sub,
Mul, Div, Slice, Concat, Unsqueeze, Cast: torch's export of ``chunk`` and of
``F.interpolate(size=)``, whose Resize sizes are ``Concat(Slice(Shape(x), 0:2), [H, W])``),
folded to a constant when every input is one (a Slice or Concat mixing constants with a
run-time tensor is a located error). Any other op is an :class:`ArchspecError` naming
the op and the node, and so is a malformed node (wrong input count, a constant of
the wrong shape). Shapes are inferred by the IR, not read from the file, so a file with
dynamic spatial axes can be costed at any ``resolution``. The graph's ``meta`` records the
file's element type (``dtype``), its classes (from the output vector) and ``notes`` on how
its figures differ from a spec's (batch norms folded into convs).

Multi-node spellings are folded back into one IR op, so costs match the spec exactly:
``x * sigmoid(x)`` is swish; ``x * (1 + erf(x / sqrt 2)) * 0.5`` is gelu;
``Concat(Add(Slice(a, 0:c), b), Slice(a, c:))`` is a partial add, and so is
``Add(a, Mul(x, mask))`` with a constant 0/1 channel mask that keeps x's first channels
(a slice of x, then the add: archspec's own lowering of MobileNeXt's shortcut);
``Concat(x, x, ...)`` (optionally cut by a ``Slice(0:n)``) is a replicate; Reshape,
Transpose, Reshape is a channel shuffle (perm 0, 2, 1, 3, 4) or an SSD anchor flatten
(perm 0, 3, 4, 1, 2).

Dispatch: :data:`IMPORT` (an ``archspec.ir.dispatch.OpTable``) has one handler per ONNX op
type, registered with :func:`handles`, which also records its input count (:data:`ARITY`)
and the IR op kinds it makes (:data:`MAKES`); :data:`PATTERNS` lists what the multi-node
spellings and the graph input make, so :func:`importable_kinds` says which IR op kinds a
file can hold.

onnx and numpy are imported inside the functions: importing this module is free.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from .errors import ArchspecError
from .ir import ops
from .ir.dispatch import OpTable
from .ir.graph import Graph
from .ir.tensors import numel

MALFORMED = (IndexError, KeyError, TypeError, ValueError, ops.ShapeError)
OURS = re.compile(r"^(?P<stage>stages\.\d+|head)\.(?P<block>block\d+|\d+)\b")


SPEC_KEY = "archspec.spec_yaml"   # metadata key holding the spec an export was built from
OVERRIDES = {"resolution": int, "width": float, "classes": int}
DTYPES = {1: "fp32", 10: "fp16", 16: "bf16", 3: "int8", 2: "int8"}  # TensorProto elem types


class OnnxSource:
    """An ONNX file standing in for a spec (see :func:`archspec.sources.load`).

    ``compile()`` imports the file's graph, ``cost()`` costs it in the file's element
    type. ``with_(resolution=)`` re-infers the shapes at another resolution. The file's
    weights fix its channel and class counts, so ``with_(width=)`` and ``with_(classes=)``
    rebuild the spec the file carries (metadata ``archspec.spec_yaml``, see
    :func:`embed_spec`); a file without one refuses them with a located error."""

    def __init__(self, path, *, resolution: int | None = None):
        self.file = str(path)
        self.resolution = resolution if resolution is not None else \
            input_resolution(read_model(path))  # an unreadable file fails here
        self.name = Path(path).stem
        self.description = f"imported from {Path(path).name}"
        self.source = self.file

    def compile(self) -> Graph:
        return load_onnx(self.file, resolution=self.resolution)

    def cost(self, *, batch: int = 1, dtype: str | None = None):
        """The file's :class:`CostReport`; bytes in the file's element type by default."""
        from .analysis.cost import cost

        graph = self.compile()
        return cost(graph, batch=batch, dtype=dtype or graph.meta["dtype"])

    def with_(self, *, width=None, resolution=None, classes=None):
        """This file at another resolution, or (width, classes) the spec it carries."""
        if width is None and classes is None:
            if resolution is None:
                return self
            _check_overrides(resolution=resolution)
            return OnnxSource(self.file, resolution=int(resolution))
        if self.spec_text_or_none() is None:
            flag = "--width" if width is not None else "--classes"
            raise ArchspecError(
                f"{self.file}: {flag} does not apply to this ONNX file: its weights fix every "
                "channel and class count, and it carries no archspec spec to rebuild from "
                f"(metadata `{SPEC_KEY}`); vary --resolution only, or pass the spec it was "
                "exported from")
        return self.spec().with_(width=width, classes=classes,
                                 resolution=resolution if resolution is not None
                                 else self.resolution)

    def spec_text_or_none(self) -> str | None:
        return metadata(self.file).get(SPEC_KEY)

    def spec_text(self) -> str:
        """The YAML of the spec the file carries; a located error if it carries none."""
        text = self.spec_text_or_none()
        if text is None:
            raise ArchspecError(f"{self.file}: this ONNX file carries no archspec spec "
                                f"(metadata `{SPEC_KEY}`): pass the spec it was exported "
                                "from")
        return text

    def spec(self):
        """The spec the file carries, with the overrides it was exported with."""
        from .spec.embedded import embedded_spec

        return embedded_spec(self.spec_text(), stored_overrides(self.file), self.file)

    @property
    def stages(self):
        raise ArchspecError(f"{self.file}: an ONNX file has no stage table to vary (--t, "
                            "--alpha, --schedule-end and --random change a spec's rows): "
                            "pass the spec it was exported from"
                            + (" (this file carries one: --width rebuilds from it)"
                               if self.spec_text_or_none() else ""))

    schedule = head = stages


def _check_overrides(**overrides) -> None:
    """The spec's own range checks (one rule for every source), located at the option."""
    from .spec.model import Spec

    Spec(name="", stages=()).with_(**overrides)


def stored_overrides(path) -> dict:
    """{resolution, width, classes} an archspec export records in its metadata."""
    out = {}
    for key, kind in OVERRIDES.items():
        value = metadata(path).get(f"archspec.{key}")
        if value in (None, "None"):
            continue
        try:
            out[key] = kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ArchspecError(f"{path}: metadata `archspec.{key}` is {value!r}, not a "
                                "number") from None
    return out


def embed_spec(proto, spec, graph=None):
    """``proto`` with the spec it was built from in its metadata (``archspec.spec_yaml``),
    so that ``archspec cost FILE --width 0.5`` can rebuild it. ``spec``: a path, shipped
    name, YAML text or loaded spec (see :func:`archspec.spec.embedded.spec_text`); with
    ``graph``, the spec is first checked to compile to it. A spec that has no text (built
    in memory, or a foreign ONNX file) leaves ``proto`` unchanged."""
    from .spec.embedded import check_describes, overrides_of, spec_text

    try:
        text = spec_text(spec)
    except ArchspecError:
        return proto
    if graph is not None:
        overrides = overrides_of(graph)
        check_describes(text, overrides, graph, "onnx save")
    props = {p.key: p.value for p in proto.metadata_props}
    props[SPEC_KEY] = text
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def input_resolution(model) -> int | None:
    """The fixed height of a model's image input (when it equals the width), else None."""
    inputs = [v for v in model.graph.input
              if v.name not in {t.name for t in model.graph.initializer}]
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
    return dims[2] if len(dims) == 4 and dims[2] and dims[2] == dims[3] else None


def metadata(path) -> dict:
    """The model metadata (``metadata_props``) of the ONNX file at ``path``."""
    return {p.key: p.value for p in read_model(path).metadata_props}


def read_model(path):
    """The ``onnx.ModelProto`` at ``path`` (cached while the file is unchanged)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise ArchspecError(f"{path}: file not found") from None
    if not path.is_file():
        raise ArchspecError(f"{path}: not a file")
    return _read_model(str(path), (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _read_model(path: str, stamp: tuple):
    try:
        import onnx
    except ImportError:
        raise ArchspecError("reading .onnx files needs `onnx`, which is not installed: "
                            "pip install onnx") from None
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ArchspecError(f"{path}: not a readable ONNX file ({str(e)[:200]})") from None


def load_onnx(path, *, resolution: int | None = None) -> Graph:
    """The archspec graph of the ONNX model at ``path`` (at ``resolution`` if given)."""
    return from_proto(read_model(path), name=Path(path).stem, source=str(path),
                      resolution=resolution)


# ---- the importer -------------------------------------------------------------------------
class _Importer:
    def __init__(self, model, name: str, source: str, resolution):
        self.model, self.where = model, source
        g = model.graph
        self.consts = {t.name: self.initializer(t) for t in g.initializer}
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.readers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
        for o in g.output:
            self.readers.setdefault(o.name, []).append(None)
        props = {p.key: p.value for p in model.metadata_props}
        self.graph = Graph(props.get("archspec.graph", name))
        self.tensor: dict[str, str] = {}   # ONNX tensor -> IR node name
        self.skip: set[int] = set()        # ONNX nodes folded into a later one
        self.fused: dict[int, tuple] = {}  # ONNX node -> (IR op, inputs) replacing it
        self.resolution = resolution

    # -- helpers --
    def initializer(self, tensor):
        """An initialiser's array; external data is read from the model file's folder."""
        from onnx import numpy_helper

        folder = Path(self.where).parent if Path(self.where).is_file() else Path(".")
        try:
            return numpy_helper.to_array(tensor, base_dir=str(folder))
        except Exception as e:  # missing or unsafe external data, bad raw bytes
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ArchspecError(f"{self.where}: initializer `{tensor.name}` cannot be read "
                                f"({first[:200]})") from None

    def fail(self, node, why: str):
        label = node.name or (node.output[0] if node.output else "?")
        raise ArchspecError(f"{self.where}: node `{label}` ({node.op_type}): {why}")

    def const(self, name: str, node=None):
        if name in self.consts:
            return self.consts[name]
        if node is not None:
            self.fail(node, f"input `{name}` must be a constant")
        return None

    def attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def only_reader(self, tensor: str, node) -> bool:
        return self.readers.get(tensor, []) == [node]

    def ir_name(self, node) -> str:
        base = node.name or node.output[0]
        name, k = base, 1
        while name in self.graph:
            k += 1
            name = f"{base}_{k}"
        return name

    def where_in_net(self, node, name: str) -> dict:
        doc = node.doc_string or ""
        if doc.startswith("archspec "):
            try:
                return json.loads(doc[len("archspec "):])
            except ValueError:
                pass
        m = OURS.match(name)
        if m:
            return {"block": m.group(0), "stage": m.group("stage"), "block_type": ""}
        parts = [p for p in re.split(r"[/.]", name.strip("/")) if p]
        block = ".".join(parts[:2]) if len(parts) > 2 else (parts[0] if parts else name)
        return {"block": block, "stage": parts[0] if parts else name, "block_type": ""}

    def add(self, node, op, inputs, name=None):
        name = name or self.ir_name(node)
        if not all(i in self.tensor for i in inputs):
            missing = next(i for i in inputs if i not in self.tensor)
            self.fail(node, f"input `{missing}` is not computed by a supported node")
        loc = self.where_in_net(node, name)
        try:
            self.graph.add(name, op, [self.tensor[i] for i in inputs], block=loc["block"],
                           stage=loc["stage"], block_type=loc.get("block_type", ""))
        except ops.ShapeError as e:
            self.fail(node, str(e))
        for o in node.output[:1]:
            self.tensor[o] = name
        return name

    def shape(self, tensor: str):
        return self.graph[self.tensor[tensor]].shape

    def slice_range(self, node):
        """(start, stop) of a channel Slice with unit step, else None."""
        if node is None or node.op_type != "Slice" or len(node.input) < 3:
            return None
        vals = [self.const(i) if i else None for i in node.input[1:]]
        if any(v is None for v in vals[:2]) or any(
                i and v is None for i, v in zip(node.input[3:], vals[2:])):
            return None
        starts, ends = vals[0].tolist(), vals[1].tolist()
        axes = vals[2].tolist() if len(vals) > 2 and vals[2] is not None else [0]
        steps = vals[3].tolist() if len(vals) > 3 and vals[3] is not None else [1]
        if len(starts) != 1 or axes[0] not in (1, -3) or steps[0] != 1:
            return None
        return int(starts[0]), int(ends[0])

    # -- patterns (found before the walk) --
    def find_patterns(self):
        index = {id(n): n for n in self.nodes}
        for n in self.nodes:   # the patterns read Constant nodes' values too
            if n.op_type == "Constant" and "value" in self.attrs(n):
                self.consts[n.output[0]] = self.initializer(self.attrs(n)["value"])
        for n in self.nodes:
            if n.op_type == "Mul" and len(n.input) == 2 and self._gelu(n):
                continue
            if n.op_type == "Mul" and len(n.input) == 2:
                for x, s in (n.input, n.input[::-1]):
                    p = self.producer.get(s)
                    if (p is not None and p.op_type == "Sigmoid" and p.input[0] == x
                            and self.only_reader(s, n)):
                        self.skip.add(id(p))
                        self.fused[id(n)] = (ops.Activation("swish"), [x])
                        break
            elif n.op_type == "Concat" and self.attrs(n).get("axis") in (1, -3):
                self._partial_add(n) or self._replicate(n)
            elif n.op_type == "Add" and len(n.input) == 2:
                self._masked_add(n)
            elif n.op_type == "Transpose":
                self._permutation(n)
        return index

    def scalar(self, name: str):
        """The value of a one-element constant (initialiser or Constant node), else None."""
        value = self.consts.get(name)
        p = self.producer.get(name)
        if value is None and p is not None and p.op_type == "Constant":
            value = self.attrs(p).get("value")
            value = None if value is None else self.initializer(value)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def _operands(self, n, op_type: str, value: float | None = None):
        """(node, other input) when ``n`` is ``op_type`` with one input the constant
        ``value`` (any input order), or (node, inputs) when ``value`` is None."""
        if n is None or n.op_type != op_type or len(n.input) != 2:
            return None
        if value is None:
            return n, list(n.input)
        for c, other in (n.input, n.input[::-1]):
            v = self.scalar(c)
            if v is not None and abs(v - value) <= 1e-6 * abs(value):
                return n, other
        return None

    def _gelu(self, n) -> bool:
        """Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5), the exact GELU torch exports
        below opset 20 (Mul(x, 1/sqrt 2) for the division, any operand order)."""
        half = self._operands(n, "Mul", 0.5)
        prod = half and self._operands(self.producer.get(half[1]), "Mul")
        if not prod:
            return False
        for x, a in (prod[1], prod[1][::-1]):
            plus = self._operands(self.producer.get(a), "Add", 1.0)
            erf = plus and self.producer.get(plus[1])
            if not erf or erf.op_type != "Erf" or len(erf.input) != 1:
                continue
            scaled = self.producer.get(erf.input[0])
            div = (self._operands(scaled, "Div", 2 ** 0.5)
                   or self._operands(scaled, "Mul", 2 ** -0.5))
            if not div or div[1] != x or (scaled.op_type == "Div" and scaled.input[0] != x):
                continue
            chain = (scaled, erf, plus[0], prod[0])
            if all(self.only_reader(m.output[0], nxt)
                   for m, nxt in zip(chain, (*chain[1:], n))):
                self.skip.update(id(m) for m in chain)
                self.fused[id(n)] = (ops.Activation("gelu"), [x])
                return True
        return False

    def _partial_add(self, n) -> bool:
        if len(n.input) != 2:
            return False
        total, tail = (self.producer.get(i) for i in n.input)
        if total is None or tail is None or total.op_type != "Add":
            return False
        head = self.producer.get(total.input[0])
        hr, tr = self.slice_range(head), self.slice_range(tail)
        if (hr is None or tr is None or hr[0] != 0 or tr[0] != hr[1]
                or head.input[0] != tail.input[0]):
            return False
        if not (self.only_reader(head.output[0], total) and self.only_reader(n.input[0], n)
                and self.only_reader(n.input[1], n)):
            return False
        self.skip.update({id(head), id(total), id(tail)})
        self.fused[id(n)] = (ops.Add(partial=True), [head.input[0], total.input[1]])
        return True

    def _masked_add(self, n) -> bool:
        """Add(a, Mul(x, mask)), the mask a constant (1, C, 1, 1) of cb ones then zeros,
        0 < cb < C: a slice of x's first cb channels (named after the Mul) and a partial
        add."""
        for a, m in (n.input, n.input[::-1]):
            mul = self.producer.get(m)
            if mul is None or mul.op_type != "Mul" or len(mul.input) != 2:
                continue
            if not self.only_reader(m, n):
                continue
            for x, c in (mul.input, mul.input[::-1]):
                mask = self.consts.get(c)
                cb = _mask_width(mask)
                if cb is not None and x not in self.consts and a not in self.consts:
                    self.skip.add(id(mul))
                    self.fused[id(n)] = ("masked", (a, x, cb, mask.size, mul))
                    return True
        return False

    def _permutation(self, n) -> bool:
        """Reshape(x, [N, g, C/g, H, W]) -> Transpose(0, 2, 1, 3, 4) -> Reshape(4-D): a
        channel shuffle; Reshape(x, [N, A, K, H, W]) -> Transpose(0, 3, 4, 1, 2) ->
        Reshape([N, -1, K]): an anchor flatten (SSD)."""
        split = self.producer.get(n.input[0])
        readers = self.readers.get(n.output[0], [])
        merge = readers[0] if len(readers) == 1 else None
        if (split is None or merge is None or split.op_type != "Reshape"
                or merge.op_type != "Reshape" or len(split.input) != 2
                or len(merge.input) != 2 or not self.only_reader(split.output[0], n)):
            return False
        dims, out = self.const(split.input[1]), self.const(merge.input[1])
        perm = list(self.attrs(n).get("perm", []))
        if dims is None or out is None or dims.size != 5:
            return False
        if perm == [0, 2, 1, 3, 4] and out.size == 4:
            op = ops.ChannelShuffle(int(dims[1]))
        elif perm == [0, 3, 4, 1, 2] and out.size == 3 and int(out[-1]) == int(dims[2]):
            op = ops.AnchorFlatten(int(dims[2]))
        else:
            return False
        self.skip.update({id(split), id(n)})
        self.fused[id(merge)] = (op, [split.input[0]])
        return True

    def _replicate(self, n) -> bool:
        """Concat(x, x, ...), Concat(x, ..., Slice(x, 0:r)) or Concat(x, x, ...) then
        Slice(0:n): x's channels repeated cyclically (IR replicate)."""
        x, m = n.input[0], len(n.input)
        last = self.producer.get(n.input[-1])
        rest = self.slice_range(last)
        if all(i == x for i in n.input):
            readers = self.readers.get(n.output[0], [])
            after = readers[0] if len(readers) == 1 else None
            cut = self.slice_range(after)
            if cut is not None and cut[0] == 0 and after.input[0] == n.output[0]:
                self.skip.add(id(n))
                self.fused[id(after)] = (x, lambda c: min(cut[1], m * c))
            else:
                self.fused[id(n)] = (x, lambda c: m * c)
            return True
        if (m >= 2 and all(i == x for i in n.input[:-1]) and rest is not None
                and rest[0] == 0 and last.input[0] == x and self.only_reader(n.input[-1], n)):
            self.skip.add(id(last))
            self.fused[id(n)] = (x, lambda c: (m - 1) * c + min(rest[1], c))
            return True
        return False

    # -- the walk --
    def run(self) -> Graph:
        for n in self.nodes:
            self.check_arity(n)
        self.guarded(None, self.find_patterns)
        self.add_input()
        for n in self.nodes:
            if id(n) in self.skip:
                continue
            if id(n) in self.fused:
                self.guarded(n, self.emit_fused, n, self.fused[id(n)])
                continue
            if n.op_type not in IMPORT:
                self.fail(n, "archspec cannot import this op (supported: "
                             + ", ".join(IMPORT.kinds()) + ")")
            self.guarded(n, IMPORT[n.op_type], self, n)
        outputs = [o.name for o in self.model.graph.output]
        if not outputs or outputs[0] not in self.tensor:
            raise ArchspecError(f"{self.where}: the graph output is not computed by "
                                "supported nodes")
        self.graph.outputs["output"] = self.tensor[outputs[0]]
        for o in outputs[1:]:
            if o in self.tensor:
                self.graph.taps[o] = self.tensor[o]
        self.describe()
        return self.graph

    def describe(self):
        """Graph metadata: classes from the output, and notes on how to read the figures."""
        meta, props = self.graph.meta, {p.key: p.value for p in self.model.metadata_props}
        out = self.graph[self.graph.outputs["output"]].shape
        meta["classes"] = out[0] if len(out) == 1 else None
        if props.get("archspec.width") not in (None, "None"):
            try:
                meta["width"] = float(props["archspec.width"])
            except ValueError:
                pass
        meta["notes"] = [note for note in (self.folding_note(props), self.dtype_note())
                         if note]

    def folding_note(self, props) -> str:
        bns = sum(n.op_type == "BatchNormalization" for n in self.nodes)
        biased = any(n.op_type == "Conv" and len(n.input) > 2 and n.input[2]
                     for n in self.nodes)
        if props.get("archspec.fold_bn") == "true":
            return ("params count the tensors in this file: batch norms were folded into "
                    "their convs when it was exported (each one's gamma and beta are gone, "
                    "its conv gained a bias), so they are below the spec's")
        if props.get("archspec.fold_bn") is None and bns == 0 and biased:
            return ("params count the tensors in this file: it has no BatchNormalization "
                    "node, so any batch norms were folded into the convs (biases), and "
                    "params are below those of the model with batch norms")
        return ""

    def dtype_note(self) -> str:
        dtype = self.graph.meta["dtype"]
        return "" if dtype == "fp32" else f"the file stores {dtype}: byte figures use it"

    def check_arity(self, n):
        lo, hi = ARITY.get(n.op_type, (0, None))
        count = len(n.input)
        if count < lo or (hi is not None and count > hi) or \
                (n.op_type in ARITY and len(n.output) < 1):
            most = "" if hi == lo else f"..{hi if hi is not None else 'n'}"
            self.fail(n, f"takes {lo}{most} inputs and an output, has {count} inputs and "
                         f"{len(n.output)} outputs")

    def guarded(self, node, step, *args):
        """Run one step of the import; a malformed node or constant is a located error."""
        try:
            return step(*args)
        except MALFORMED as e:
            why = f"malformed ({type(e).__name__}: {str(e)[:160]})"
            if node is None:
                raise ArchspecError(f"{self.where}: {why}") from None
            self.fail(node, why)

    def add_input(self):
        inputs = [v for v in self.model.graph.input if v.name not in self.consts]
        if len(inputs) != 1:
            raise ArchspecError(f"{self.where}: expected one image input, found "
                                f"{len(inputs)} ({', '.join(v.name for v in inputs)})")
        v = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in v.type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[1] is None:
            raise ArchspecError(f"{self.where}: input `{v.name}` must be N x C x H x W with "
                                f"a fixed C, got {dims}")
        h, w = dims[2], dims[3]
        if self.resolution is not None:
            h = w = int(self.resolution)
        if h is None or w is None:
            raise ArchspecError(f"{self.where}: input `{v.name}` has dynamic height/width; "
                                "pass --resolution")
        try:
            self.graph.add(v.name, ops.Input((dims[1], h, w)))
        except ops.ShapeError as e:
            raise ArchspecError(f"{self.where}: input `{v.name}`: {e}") from None
        self.tensor[v.name] = v.name
        elem = v.type.tensor_type.elem_type
        if elem not in DTYPES:
            raise ArchspecError(f"{self.where}: input `{v.name}` has element type "
                                f"{elem} (archspec reads float32, float16, bfloat16 or int8)")
        self.graph.meta.update({"resolution": h, "channels": dims[1], "width": 1.0,
                                "file": self.where, "imported": True, "dtype": DTYPES[elem]})

    def emit_fused(self, n, fused):
        op, inputs = fused
        if op == "masked":  # Add(a, Mul(x, mask)): a slice of x, then a partial add
            a, x, cb, width, mul = inputs
            self.add(mul, ops.Slice(0, cb), [x])       # fails if x is not computed
            if self.shape(x)[0] != width:
                self.fail(mul, f"a channel mask of {width} multiplies a map of "
                               f"{self.shape(x)[0]} channels")
            self.add(n, ops.Add(partial=True), [a, mul.output[0]])
        elif callable(inputs):  # a replicate: (x, channels as a function of x's channels)
            self.add(n, ops.Replicate(inputs(self.shape(op)[0])), [op])
        else:
            self.add(n, op, inputs)


# ---- one handler per ONNX op type ----------------------------------------------------------
IMPORT = OpTable("onnx import", keys="ONNX op type")
ARITY: dict[str, tuple[int, int | None]] = {}  # ONNX op type -> (fewest, most) inputs
MAKES: dict[str, tuple[str, ...]] = {}         # ONNX op type -> the IR op kinds it becomes
PATTERNS = {  # what the importer makes outside the per-op handlers -> the IR op kinds
    "the graph input": ("input",),
    "Mul(x, Sigmoid(x))": ("activation",),
    "Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)": ("activation",),
    "Concat(Add(Slice(a, 0:c), b), Slice(a, c:))": ("add",),
    "Add(a, Mul(x, 0/1 channel mask))": ("slice", "add"),
    "Concat(x, x, ...), optionally cut by Slice(0:n)": ("replicate",),
    "Reshape, Transpose(0, 2, 1, 3, 4), Reshape": ("channel_shuffle",),
    "Reshape, Transpose(0, 3, 4, 1, 2), Reshape(N, -1, K)": ("anchor_flatten",),
}


def handles(op_type: str, *, inputs: tuple[int, int | None], makes: tuple[str, ...]):
    """Decorator: the handler ``(importer, node)`` of ONNX ``op_type``, which takes
    ``inputs`` (fewest, most; None: any) and becomes IR op kinds ``makes``."""
    def add(fn):
        IMPORT.register(op_type)(fn)
        ARITY[op_type], MAKES[op_type] = inputs, makes
        return fn
    return add


def importable_kinds() -> set[str]:
    """Every IR op kind an ONNX file can import to (a test checks it covers ops.OPS)."""
    return {kind for kinds in (*MAKES.values(), *PATTERNS.values()) for kind in kinds}


@handles("Constant", inputs=(0, 0), makes=())
def _constant(im: _Importer, n) -> None:
    a = im.attrs(n)
    if "value" not in a:
        im.fail(n, "only tensor constants (`value`) are supported")
    im.consts[n.output[0]] = im.initializer(a["value"])


@handles("Identity", inputs=(1, 1), makes=())
def _identity(im: _Importer, n) -> None:
    if n.input[0] in im.consts:
        im.consts[n.output[0]] = im.consts[n.input[0]]
    else:
        im.tensor[n.output[0]] = im.tensor[n.input[0]]


@handles("Dropout", inputs=(1, 3), makes=("dropout",))
def _dropout(im: _Importer, n) -> None:
    ratio = im.attrs(n).get("ratio", 0.5)
    if len(n.input) > 1 and n.input[1]:
        ratio = float(im.const(n.input[1], n))
    im.add(n, ops.Dropout(float(ratio)), [n.input[0]])


@handles("Conv", inputs=(2, 3), makes=("conv2d",))
def _conv(im: _Importer, n) -> None:
    a = im.attrs(n)
    wt = im.const(n.input[1], n)
    if wt.ndim != 4 or wt.shape[2] != wt.shape[3]:
        im.fail(n, f"only square 2-D kernels are supported, got weight {wt.shape}")
    k = int(wt.shape[2])
    strides, dil = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
    if strides[0] != strides[1] or dil[0] != dil[1]:
        im.fail(n, f"strides {strides} / dilations {dil} must be equal along H and W")
    groups = int(a.get("group", 1))
    conv = ops.Conv2d(int(wt.shape[1]) * groups, int(wt.shape[0]), k, int(strides[0]),
                      groups, int(dil[0]), bias=len(n.input) > 2 and bool(n.input[2]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        im.fail(n, f"auto_pad {a['auto_pad']!r} is not supported: write explicit pads")
    im.add(n, _padded(im, n, conv, pads), [n.input[0]])


def _padded(im: _Importer, n, conv, pads: list) -> ops.Conv2d:
    """``conv`` with the padding ``pads`` (ONNX's [top, left, bottom, right]) are: archspec's
    symmetric (k-1)/2 d, or else TensorFlow's "same" on this input."""
    if pads == [conv.padding] * 4:
        return conv
    same = replace(conv, pad_mode="same")
    shape = im.shape(n.input[0]) if n.input[0] in im.tensor else ()
    if len(shape) == 3 and pads == list(same.pads(*shape[1:])):
        return same
    k = conv.kernel
    im.fail(n, f"padding {pads} is neither archspec's symmetric padding "
               f"{[conv.padding] * 4} for a {k}x{k} kernel nor TensorFlow's 'same' "
               f"padding on this input")


@handles("BatchNormalization", inputs=(5, 5), makes=("batchnorm",))
def _batchnorm(im: _Importer, n) -> None:
    import numpy as np

    # ONNX stores a float32: read back the shortest decimal it holds (0.001, not 0.0010000000475)
    eps = float(str(np.float32(im.attrs(n).get("epsilon", 1e-5))))   # default: torch's
    if not eps > 0 or eps == float("inf"):
        im.fail(n, f"epsilon {eps} is not a positive finite number")
    im.add(n, ops.BatchNorm(int(im.const(n.input[1], n).shape[0]), eps), [n.input[0]])


ONE_NODE_ACTIVATIONS = {"Relu": "relu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid",
                        "Sigmoid": "sigmoid", "Softplus": "softplus", "Gelu": "gelu",
                        "Elu": "elu", "LeakyRelu": "leaky_relu"}   # ONNX op -> activation
FIXED_ATTRS = {  # ONNX op -> {attribute: (ONNX default, the value archspec's op has)}
    "Elu": {"alpha": (1.0, ops.ACTIVATION_CONSTANTS["elu"]["alpha"])},
    "LeakyRelu": {"alpha": (0.01, ops.ACTIVATION_CONSTANTS["leaky_relu"]["negative_slope"])},
    "Gelu": {"approximate": ("none", "none")},
}


def _activation(fn: str):
    def handler(im: _Importer, n) -> None:
        a = im.attrs(n)
        for key, (default, ours) in FIXED_ATTRS.get(n.op_type, {}).items():
            value = a.get(key, default)
            value = value.decode() if isinstance(value, bytes) else value
            if value != ours and not (isinstance(ours, float)
                                      and abs(float(value) - ours) <= 1e-6 * abs(ours)):
                im.fail(n, f"{key}={value!r} is not archspec's {fn} ({key}={ours!r})")
        im.add(n, ops.Activation(fn), [n.input[0]])
    return handler


for _op_type, _fn in ONE_NODE_ACTIVATIONS.items():
    handles(_op_type, inputs=(1, 1), makes=("activation",))(_activation(_fn))


@handles("Clip", inputs=(1, 3), makes=("activation",))
def _clip(im: _Importer, n) -> None:
    a = im.attrs(n)
    lo, hi = a.get("min"), a.get("max")
    if len(n.input) > 1 and n.input[1]:
        lo = float(im.const(n.input[1], n))
    if len(n.input) > 2 and n.input[2]:
        hi = float(im.const(n.input[2], n))
    if lo == 0 and hi == 6:
        return _activation("relu6")(im, n)
    if lo == 0 and (hi is None or hi > 3.0e38):
        return _activation("relu")(im, n)
    im.fail(n, f"Clip({lo}, {hi}) is neither relu (0, inf) nor relu6 (0, 6)")


def _folded(im: _Importer, n, fn) -> bool:
    """Shape arithmetic (torch exports ``x.chunk(2, 1)`` as Slice bounds computed from
    Shape, ``F.interpolate(size=)`` as Resize sizes ``Concat(Slice(Shape(x), 0:2), [H, W])``):
    when every given input is a constant, the output is the constant ``fn(*inputs)``
    (an omitted optional input is None)."""
    given = [i for i in n.input if i]
    if not all(i in im.consts for i in given):
        return False
    im.consts[n.output[0]] = fn(*(im.consts[i] if i else None for i in n.input))
    return True


def _not_half_constant(im: _Importer, n, inputs) -> None:
    """A located error when some of ``inputs`` are shape values (constants) and another is
    computed at run time: archspec folds shape arithmetic, it does not run it."""
    given = [i for i in inputs if i]
    if any(i in im.consts for i in given):
        runtime = next(i for i in given if i not in im.consts)
        im.fail(n, f"input `{runtime}` is computed at run time while other inputs are "
                   f"constants: only a {n.op_type} of constants (shape arithmetic) or of "
                   "feature maps imports")


@handles("Shape", inputs=(1, 1), makes=())
def _shape(im: _Importer, n) -> None:
    """The input's shape (batch 1) as a constant, cut to ``start:end``."""
    import numpy as np

    a = im.attrs(n)
    full = np.array([1, *im.shape(n.input[0])], np.int64)
    im.consts[n.output[0]] = full[a.get("start", 0):a.get("end", len(full))]


@handles("Gather", inputs=(2, 2), makes=())
def _gather(im: _Importer, n) -> None:
    import numpy as np

    if not _folded(im, n, lambda data, i: np.take(data, i, axis=im.attrs(n).get("axis", 0))):
        im.fail(n, "only a Gather of constants (shape arithmetic) imports")


@handles("Unsqueeze", inputs=(1, 2), makes=())
def _unsqueeze(im: _Importer, n) -> None:
    """Shape arithmetic only (torch's ``size=x.shape[-2:]`` with dynamic axes): axes from
    the attribute (below opset 13) or the second input, counted in the output's rank."""
    import numpy as np

    axes = im.attrs(n).get("axes")

    def unsqueeze(data, given=None):
        return np.expand_dims(data, tuple(int(a) for a in (
            axes if given is None else given.reshape(-1).tolist())))
    if not _folded(im, n, unsqueeze):
        im.fail(n, "only an Unsqueeze of constants (shape arithmetic) imports")


@handles("Cast", inputs=(1, 1), makes=())
def _cast(im: _Importer, n) -> None:
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(im.attrs(n)["to"])
    if not _folded(im, n, lambda data: data.astype(dtype)):
        im.fail(n, "only a Cast of constants (shape arithmetic) imports")


def _integer_div(a, b):
    import numpy as np

    return np.trunc(a / b).astype(a.dtype) if a.dtype.kind in "iu" else a / b


for _op_type, _fn in {"Div": _integer_div, "Sub": lambda a, b: a - b}.items():
    def _arithmetic(im: _Importer, n, fn=_fn) -> None:
        if not _folded(im, n, fn):
            im.fail(n, f"only a {n.op_type} of constants (shape arithmetic) imports")
    handles(_op_type, inputs=(2, 2), makes=())(_arithmetic)


def _mask_width(value) -> int | None:
    """cb when ``value`` is a (1, C, 1, 1) or (C, 1, 1) array of cb ones then zeros with
    0 < cb < C, else None."""
    import numpy as np

    if value is None or value.ndim not in (3, 4) or value.shape[-2:] != (1, 1) or (
            value.ndim == 4 and value.shape[0] != 1):
        return None
    v = value.reshape(-1)
    cb = int(np.count_nonzero(v))
    if not 0 < cb < v.size or not (np.all(v[:cb] == 1) and np.all(v[cb:] == 0)):
        return None
    return cb


@handles("Mul", inputs=(2, 2), makes=("mul",))
def _mul(im: _Importer, n) -> None:
    if _folded(im, n, lambda a, b: a * b):
        return
    if any(i in im.consts for i in n.input):
        im.fail(n, "multiplying by a constant is not an archspec op")
    x, g = n.input
    if im.shape(x) == (im.shape(g)[0], 1, 1):
        x, g = g, x
    im.add(n, ops.Mul(), [x, g])


@handles("Add", inputs=(2, 2), makes=("add",))
def _add(im: _Importer, n) -> None:
    if _folded(im, n, lambda a, b: a + b):
        return
    if any(i in im.consts for i in n.input):
        im.fail(n, "adding a constant is not an archspec op (bias adds belong to "
                   "Conv/Gemm)")
    a, b = n.input
    if im.shape(a)[0] < im.shape(b)[0]:
        a, b = b, a
    partial = im.shape(a)[0] != im.shape(b)[0]
    im.add(n, ops.Add(partial=partial), [a, b])


@handles("GlobalAveragePool", inputs=(1, 1), makes=("global_pool",))
def _global_pool(im: _Importer, n) -> None:
    im.add(n, ops.GlobalAvgPool(), [n.input[0]])


@handles("ReduceMean", inputs=(1, 2), makes=("global_pool", "flatten"))
def _reduce_mean(im: _Importer, n) -> None:
    """A mean over H and W: global pooling; with keepdims=0 (torch's ``x.mean([2, 3])``)
    a global pool ``<name>.pool`` and a flatten."""
    a = im.attrs(n)
    axes = a.get("axes")
    if axes is None and len(n.input) > 1 and n.input[1]:
        axes = im.const(n.input[1], n).tolist()
    if sorted(int(x) % 4 for x in axes or []) != [2, 3]:
        im.fail(n, "only a mean over H and W (global pooling) imports")
    if a.get("keepdims", 1):
        im.add(n, ops.GlobalAvgPool(), [n.input[0]])
        return
    im.add(n, ops.GlobalAvgPool(), [n.input[0]], name=f"{im.ir_name(n)}.pool")
    im.add(n, ops.Flatten(), [n.output[0]])


@handles("Flatten", inputs=(1, 1), makes=("flatten",))
def _flatten(im: _Importer, n) -> None:
    if im.attrs(n).get("axis", 1) != 1:
        im.fail(n, "only Flatten(axis=1) is supported")
    im.add(n, ops.Flatten(), [n.input[0]])


@handles("Reshape", inputs=(2, 2), makes=("flatten",))
def _reshape(im: _Importer, n) -> None:
    target = [int(v) for v in im.const(n.input[1], n).tolist()]
    size = numel(im.shape(n.input[0]))
    if len(target) != 2 or target[1] not in (-1, size):
        im.fail(n, f"only a reshape to (batch, {size}) imports, got {target}")
    im.add(n, ops.Flatten(), [n.input[0]])


@handles("Squeeze", inputs=(1, 2), makes=("flatten",))
def _squeeze(im: _Importer, n) -> None:
    shape = im.shape(n.input[0])
    if len(shape) != 3 or shape[1:] != (1, 1):
        im.fail(n, f"only squeezing a (C, 1, 1) map to a vector imports, got {shape}")
    im.add(n, ops.Flatten(), [n.input[0]])


@handles("Gemm", inputs=(2, 3), makes=("linear",))
def _gemm(im: _Importer, n) -> None:
    a = im.attrs(n)
    wt = im.const(n.input[1], n)
    if a.get("transA", 0):
        im.fail(n, "transA=1 is not supported")
    out_f, in_f = wt.shape if a.get("transB", 0) else wt.shape[::-1]
    bias = len(n.input) > 2 and bool(n.input[2])
    im.add(n, ops.Linear(int(in_f), int(out_f), bias=bias), [n.input[0]])


@handles("Concat", inputs=(1, None), makes=("concat",))
def _concat(im: _Importer, n) -> None:
    import numpy as np

    axis = im.attrs(n).get("axis", 0)
    if _folded(im, n, lambda *parts: np.concatenate(parts, axis=axis)):
        return
    _not_half_constant(im, n, n.input)
    rank = len(im.shape(n.input[0])) + 1 if n.input[0] in im.tensor else 4
    if im.attrs(n).get("axis", 0) % rank != 1:
        im.fail(n, "only concatenation along the first axis after the batch (axis 1) "
                   "imports")
    im.add(n, ops.Concat(), list(n.input))


def _pool_fields(im: _Importer, n) -> dict:
    """kernel, stride, padding, ceil_mode of an AveragePool / MaxPool with symmetric
    padding and dilation 1."""
    a = im.attrs(n)
    kernel = [int(v) for v in a.get("kernel_shape", [])]
    pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if len(kernel) != 2:
        im.fail(n, f"only 2-D pooling imports, got kernel_shape {kernel}")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        im.fail(n, f"auto_pad {a['auto_pad']!r} is not supported: write explicit pads")
    if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
        im.fail(n, "only dilations 1 import")
    if len(n.output) > 1 and n.output[1]:
        im.fail(n, "the Indices output of MaxPool is not an archspec op")
    fields = {"kernel": tuple(kernel), "stride": tuple(int(v) for v in
                                                       a.get("strides", [1, 1])),
              "padding": tuple(pads[:2]), "ceil_mode": bool(a.get("ceil_mode", 0))}
    if pads[:2] != pads[2:] and not _ceil_padding(im, n, fields, pads):
        im.fail(n, f"pads {pads} must be equal at both ends, or end where torch's "
                   "ceil_mode windows end")
    return fields


def _ceil_padding(im: _Importer, n, fields: dict, pads: list) -> bool:
    """Whether other end pads are archspec's spelling of a torch pool (see
    backends/onnx_lower.py: the windows start at the begin pads, their count is what the
    end pads give): then ``fields`` become that pool, in floor mode if it has that many
    windows, else in ceil mode."""
    if fields["ceil_mode"] or (n.op_type == "AveragePool"
                               and im.attrs(n).get("count_include_pad", 0)):
        return False
    shape = im.shape(n.input[0])
    windows = [(h + b + e - k) // s + 1 for h, b, e, k, s in
               zip(shape[1:], pads[:2], pads[2:], fields["kernel"], fields["stride"])]
    for ceil in (False, True):
        pool = ops.MaxPool(fields["kernel"], fields["stride"], fields["padding"], ceil)
        if list(pool.infer([shape])[1:]) == windows:
            fields["ceil_mode"] = ceil
            return True
    return False


@handles("AveragePool", inputs=(1, 1), makes=("avg_pool",))
def _avg_pool(im: _Importer, n) -> None:
    include = bool(im.attrs(n).get("count_include_pad", 0))
    im.add(n, ops.AvgPool(**_pool_fields(im, n), count_include_pad=include), [n.input[0]])


@handles("MaxPool", inputs=(1, 1), makes=("max_pool",))
def _max_pool(im: _Importer, n) -> None:
    if im.attrs(n).get("storage_order", 0):
        im.fail(n, "storage_order=1 is not supported")
    im.add(n, ops.MaxPool(**_pool_fields(im, n)), [n.input[0]])


RESIZE_MODES = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}


@handles("Resize", inputs=(1, 4), makes=("resize",))
def _resize(im: _Importer, n) -> None:
    """Bilinear, half-pixel (torch's align_corners=False), to constant sizes."""
    a = im.attrs(n)
    for key, want in RESIZE_MODES.items():
        got = a.get(key, b"nearest" if key == "mode" else b"half_pixel")
        got = got.decode() if isinstance(got, bytes) else got
        if got != want:
            im.fail(n, f"{key}={got!r}: only {want!r} imports (torch's bilinear, "
                       "align_corners=False)")
    if a.get("antialias", 0):
        im.fail(n, "antialias=1 is not supported")
    if len(n.input) < 4 or not n.input[3]:
        im.fail(n, "only a Resize to constant `sizes` imports (not `scales`)")
    sizes = [int(v) for v in im.const(n.input[3], n).tolist()]
    axes = [int(v) % 4 for v in a.get("axes", range(4 - len(sizes), 4))]
    if axes[-2:] != [2, 3] or len(sizes) not in (2, 4):
        im.fail(n, f"sizes {sizes} must give H and W (axes 2, 3)")
    channels = im.shape(n.input[0])[0] if n.input[0] in im.tensor else None
    if len(sizes) == 4 and channels is not None and sizes[1] != channels:
        im.fail(n, f"sizes {sizes} change the channels ({channels}): only H and W resize")
    im.add(n, ops.Resize(tuple(sizes[-2:])), [n.input[0]])


def _constant_slice(data, starts, ends, axes=None, steps=None):
    """ONNX Slice of a constant (numpy's slicing clamps the bounds as ONNX does)."""
    import numpy as np

    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    cut = [slice(None)] * data.ndim
    for a, b, e, s in zip(axes, starts, ends, steps, strict=True):
        cut[int(a) % data.ndim] = slice(int(b), int(e), int(s))
    return np.asarray(data[tuple(cut)])


@handles("Slice", inputs=(3, 5), makes=("slice",))
def _slice(im: _Importer, n) -> None:
    if _folded(im, n, _constant_slice):
        return
    if n.input[0] in im.consts:
        _not_half_constant(im, n, n.input)
    r = im.slice_range(n)
    if r is None:
        im.fail(n, "only a unit-step slice of channels (axis 1) with constant bounds "
                   "imports")
    c = im.shape(n.input[0])[0]
    start, stop = (max(0, v + c) if v < 0 else min(v, c) for v in r)
    im.add(n, ops.Slice(start, stop), [n.input[0]])


def from_proto(model, *, name: str = "onnx", source: str = "<onnx>",
               resolution: int | None = None) -> Graph:
    """The archspec graph of an in-memory ``onnx.ModelProto``."""
    return _Importer(model, name, source, resolution).run()
