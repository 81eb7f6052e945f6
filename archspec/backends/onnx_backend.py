"""The ONNX backend: a compiled graph as an ONNX model, written node by node with
``onnx.helper`` (no ``torch.onnx.export``; torch is needed only to read ``.pt`` weights).

This module imports neither onnx nor numpy at import time: :class:`OnnxBackend` checks for
onnx when it is created. The lowering itself is in ``onnx_lower``. See docs/onnx.md.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackendError
from . import Backend
from .common import outputs_for

REQUIREMENT = "onnx onnxruntime"


@dataclass
class OnnxModel:
    """A built model: the ``onnx.ModelProto`` (``.proto``), the IR graph it came from and
    how it was lowered. ``str()`` is a one-screen description, not the whole protobuf."""

    proto: object
    graph: object
    outputs: dict
    fold_bn: bool = True
    fp16: bool = False
    folded: dict = field(default_factory=dict)  # BN name -> the conv it was folded into

    def serialize(self) -> bytes:
        return self.proto.SerializeToString()

    def __str__(self) -> str:
        g = self.proto.graph
        ops: dict[str, int] = {}
        for n in g.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        dims = lambda v: "x".join(d.dim_param or str(d.dim_value)  # noqa: E731
                                  for d in v.type.tensor_type.shape.dim)
        lines = [f"ONNX model {g.name!r}: opset {self.proto.opset_import[0].version}, "
                 f"{'fp16' if self.fp16 else 'fp32'}, {len(g.node)} nodes, "
                 f"{len(self.folded)} batch norms folded",
                 *(f"  input  {v.name}: {dims(v)}" for v in g.input),
                 *(f"  output {v.name}: {dims(v)}" for v in g.output),
                 "  ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))]
        return "\n".join(lines)


class OnnxBackend(Backend):
    """``build`` a graph into an :class:`OnnxModel`; ``save`` it (atomically) as
    ``.onnx``; ``load`` reads one back as an ``onnx.ModelProto``."""

    name = "onnx"

    def __init__(self):
        try:
            importlib.import_module("onnx")
        except ImportError:
            raise BackendError("the onnx backend needs `onnx`, which is not installed: "
                               f"pip install {REQUIREMENT}") from None
        from . import onnx_lower

        self._lower = onnx_lower

    def build(self, graph, *, features=None, seed: int | None = None, weights=None,
              fold_bn: bool = True, fp16: bool = False, opset: int | None = None,
              check: bool = True) -> OnnxModel:
        """The ONNX model computing ``graph`` (or the taps in ``features``).

        ``weights``: a ``state_dict`` (name -> tensor or array; the torch backend's names
        are the IR names) or the path of a ``.pt`` file (an ``archspec build --backend
        torch`` file, a bare ``state_dict``, or a dict holding one under ``state_dict``).
        Without it the weights are random (``seed``). ``fold_bn`` folds batch norms into
        the preceding convs (inference); ``fp16`` stores weights, input and output in
        half precision. With ``check`` the model is verified by ``onnx.checker`` (full
        check, strict shape inference)."""
        from .. import __version__
        outputs = outputs_for(graph, features)
        if weights is None:
            arrays = self._lower.random_weights(graph, seed)
        else:
            source = str(weights) if isinstance(weights, (str, Path)) else "weights"
            state = read_state_dict(weights) if isinstance(weights, (str, Path)) else weights
            arrays = self._lower.as_numpy(state, source, graph, outputs)
        proto = self._lower.lower(graph, arrays, outputs, fold_bn=fold_bn, fp16=fp16,
                                  opset=opset or self._lower.OPSET,
                                  producer_version=__version__)
        if check:
            proto = checked(proto)
        folded = self._lower.foldable(graph, set(outputs.values())) if fold_bn else {}
        return OnnxModel(proto, graph, outputs, fold_bn, fp16, folded)

    def save(self, model, path, spec=None, graph=None) -> None:
        """Write ``model`` (an :class:`OnnxModel` or ``ModelProto``) to ``path`` atomically."""
        from ..fsutil import atomic_write_bytes

        from ..onnx_import import embed_spec

        proto = model.proto if isinstance(model, OnnxModel) else model
        if spec is not None:  # so that `archspec cost FILE --width 0.5` can rebuild it
            proto = embed_spec(proto, spec, graph)
        atomic_write_bytes(path, proto.SerializeToString())

    def load(self, path):
        """The ``onnx.ModelProto`` stored at ``path``."""
        import onnx

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path}: file not found")
        try:
            return onnx.load(str(path))
        except Exception as e:
            raise BackendError(f"{path}: not a readable ONNX file ({e})") from None

    def summary(self, model, graph, report) -> str:
        """The ONNX nodes with the cost of the IR node each one computes."""
        rows = {e.name: e for e in report.layers}
        bn_of = {conv: bn for bn, conv in model.folded.items()}
        lines = [str(model), "", "params: of the IR node(s) a node computes (conv + folded BN)",
                 f"{'node':48} {'op':20} {'params':>10} {'MAdds':>12}"]
        for n in model.proto.graph.node:
            e = rows.get(n.name)
            params = (e.params if e else 0) + (rows[bn_of[n.name]].params
                                               if n.name in bn_of else 0)
            madds = f"{e.madds:,}" if e else ""
            lines.append(f"{n.name:48} {n.op_type:20} {params:>10,} {madds:>12}")
        return "\n".join(lines)


def checked(proto):
    """``proto`` with inferred shapes, after ``onnx.checker`` (full check) and strict shape
    inference pass; a failure is a :class:`BackendError` naming the check."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True,
                                                 data_prop=True)
    except Exception as e:  # checker and inference raise several types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendError(f"onnx backend: the model fails onnx.checker: {first}") from None


def read_state_dict(path) -> dict:
    """The weights in a ``.pt`` file: an archspec torch file (checked by the torch backend),
    a bare ``state_dict``, or a dict with one under ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path}: weights file not found")
    try:
        import torch
    except ImportError:
        raise BackendError("reading .pt weights needs `torch`, which is not installed: "
                           "pip install torch==2.13.0") from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackendError(f"{path}: not a readable torch weights file ({first[:200]})") \
            from None
    if isinstance(payload, dict) and payload.get("format", "").startswith("archspec.torch"):
        from .torch_io import read

        return read(path).state_dict
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        return payload["state_dict"]
    if isinstance(payload, dict) and all(hasattr(v, "shape") for v in payload.values()):
        return payload
    raise BackendError(f"{path}: holds no state_dict (a dict of tensors)")
