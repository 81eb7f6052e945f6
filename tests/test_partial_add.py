"""The partial add's lowerings: ONNX keeps slice + add + concat (what the shipped latency
profile was calibrated on), torch copies ``a`` and adds in place; both agree with the
concatenation, and a traced add is the concatenation the ONNX importer reads."""
from __future__ import annotations

import numpy as np
import pytest

import archspec
from archspec.spec.loader import SHIPPED

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from archspec.backends import get_backend  # noqa: E402
from archspec.backends.torch_lower import partial_add  # noqa: E402


def mobilenext(tmp_path, alpha: float, resolution: int = 64):
    spec = tmp_path / f"mnx_{alpha}.yaml"
    spec.write_text(f"extends: {SHIPPED / 'mobilenext.yaml'}\n"
                    f"name: mnx_alpha\ndefaults: {{alpha: {alpha}}}\n")
    return archspec.load(spec, resolution=resolution).compile()


def reference(a, b):
    """The concatenation the lowerings replace."""
    return torch.cat([a[:, :b.shape[1]] + b, a[:, b.shape[1]:]], 1)


def test_torch_partial_add_equals_concatenation_and_leaves_its_inputs_alone():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 12, 3, 3, generator=gen, requires_grad=True)
    b = torch.randn(2, 4, 3, 3, generator=gen, requires_grad=True)
    before = a.detach().clone()
    got = partial_add(a, b)
    assert torch.equal(got, reference(a, b))
    assert torch.equal(a.detach(), before)
    w = torch.randn(got.shape, generator=gen)
    ga, gb = torch.autograd.grad((got * w).sum(), (a, b))
    ra, rb = torch.autograd.grad((reference(a, b) * w).sum(), (a, b))
    assert torch.equal(ga, ra) and torch.equal(gb, rb)


def _torch_model(graph):
    """Every BN statistic and affine random (a fresh model's zero-init gammas would make
    the comparison one between zeros)."""
    model = get_backend("torch").build(graph, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and t.dim() == 1:
                low = 0.25 if name.endswith("running_var") else 0.5
                t.copy_(torch.rand(t.shape, generator=gen) + low)
    return model.eval()


def _onnx_vs_torch(graph):
    tmodel = _torch_model(graph)
    model = get_backend("onnx").build(graph, weights=tmodel.state_dict())
    onnx.checker.check_model(model.proto, full_check=True)
    sess = ort.InferenceSession(model.serialize(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, *graph.input_shape)).astype(np.float32)
    (got,) = sess.run(None, {"input": x})
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    assert np.abs(want).max() > 1e-2
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())
    return model.proto


def test_mobilenext_below_alpha_1_keeps_slice_add_concat(tmp_path):
    """The ONNX lowering the shipped latency profile was calibrated on (the masked full add
    measured faster in benchmarks/bench_partial_add.py ships with the next calibration:
    docs/latency.md, "Partial add")."""
    graph = mobilenext(tmp_path, 0.5)
    proto = _onnx_vs_torch(graph)
    partial = [n for n in graph if n.kind == "add"]
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert partial and all(graph[n.inputs[1]].shape[0] < n.shape[0] for n in partial)
    assert all(ops[n.name] == "Concat" for n in partial)


def test_rexnet_keeps_slice_add_concat():
    graph = archspec.load("rexnet", width=0.5, resolution=32, classes=10).compile()
    proto = _onnx_vs_torch(graph)
    partial = [n for n in graph if n.kind == "add"
               and graph[n.inputs[1]].shape[0] < n.shape[0]]
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert partial and all(ops[n.name] == "Concat" for n in partial)


def test_a_traced_partial_add_is_the_concatenation():
    """torch.onnx.export traces: the trace must be Slice + Add + Concat (what the ONNX
    importer reads), not the eager copy-and-add."""
    class Add(torch.nn.Module):
        def forward(self, a, b):
            return partial_add(a, b)

    a, b = torch.randn(1, 8, 2, 2), torch.randn(1, 4, 2, 2)
    traced = torch.jit.trace(Add(), (a, b))
    kinds = {n.kind() for n in traced.graph.nodes()}
    assert "aten::cat" in kinds and "aten::add_" not in kinds
    assert torch.equal(traced(a, b), reference(a, b))
