"""The partial add's lowerings: MobileNeXt's shortcut below alpha 1 becomes ``a + x * mask``
in ONNX (onnxruntime keeps it in the blocked layout and fuses the add into a conv), ReXNet's
keeps slice + add + concat, torch copies ``a`` and adds in place; both backends agree with
the concatenation they replace, and the latency rule names what onnxruntime runs."""
from __future__ import annotations

import numpy as np
import pytest

import archspec
from archspec.latency import attribution, probes, timing
from archspec.latency.kernels import kernels
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


def test_mobilenext_below_alpha_1_lowers_to_a_masked_full_add(tmp_path):
    graph = mobilenext(tmp_path, 0.5)
    proto = _onnx_vs_torch(graph)
    adds = [n for n in graph if n.kind == "add"]
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert adds and all(graph[n.inputs[1]].shape[0] < n.shape[0] for n in adds)
    for add in adds:
        assert ops[add.name] == "Add" and ops[f"{add.name}.mask"] == "Mul"
        assert add.inputs[1] not in ops            # the identity slice is gone
    assert "Concat" not in ops.values() and "Slice" not in ops.values()
    used = {i for n in proto.graph.node for i in n.input}
    assert {t.name for t in proto.graph.initializer} <= used


def test_rexnet_keeps_slice_add_concat():
    graph = archspec.load("rexnet", width=0.5, resolution=32, classes=10).compile()
    proto = _onnx_vs_torch(graph)
    partial = [n for n in graph if n.kind == "add"
               and graph[n.inputs[1]].shape[0] < n.shape[0]]
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert partial and all(ops[n.name] == "Concat" for n in partial)


def test_masked_add_is_one_kernel_and_onnxruntime_runs_it_blocked(tmp_path):
    """The rule's kernels are exactly what onnxruntime runs: the mask a blocked conv, the
    add fused away, no reorder inside the network."""
    block = probes.nchwc_block()
    graph = mobilenext(tmp_path, 0.5)
    ks = kernels(graph, block or 16)
    masked = [k for k in ks if k.type == "add.masked"]
    assert len(masked) == sum(n.kind == "add" for n in graph)
    assert all(graph[k.nodes[0]].kind == "slice" and len(k.nodes) == 2 for k in masked)
    assert not any(k.type in ("slice", "add_partial") for k in ks)
    owner = {n: k for k in ks for n in k.nodes}
    seen = set()
    nodes = timing.optimized_nodes(graph)
    for domain, op, name in nodes:
        ir = attribution.ir_name(name, owner)
        if ir is None:
            assert "Reorder" in op or name == "", (op, name)
            continue
        seen.add(owner[ir].name)
        if owner[ir].type == "add.masked" and block:
            assert (domain, op) == ("com.microsoft.nchwc", "Conv"), (domain, op, name)
    assert seen == {k.name for k in ks}
    if block:
        assert all(k.layout == "nchwc" and k.reorder_elems == 0 for k in masked)
        assert sum("Reorder" in op for _, op, _ in nodes) == 1    # before the pool only


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


def _swap_inputs(proto, op_type: str, suffix: str) -> None:
    for n in proto.graph.node:
        if n.op_type == op_type and n.name.endswith(suffix):
            n.input[0], n.input[1] = n.input[1], n.input[0]


@pytest.mark.parametrize("order", ["as written", "Add swapped", "Mul swapped",
                                   "both swapped", "mask as a Constant node"])
def test_the_masked_spelling_imports_back_to_the_spec(tmp_path, order):
    """``Add(a, Mul(x, mask))`` reads back as the slice and the partial add it came from,
    in any operand order and with the mask an initialiser or a Constant node: every cost
    figure, per block, equal to the spec's."""
    from archspec.analysis.cost import cost
    from archspec.onnx_import import from_proto

    graph = mobilenext(tmp_path, 0.5)
    proto = get_backend("onnx").build(graph, seed=0, check=False, fold_bn=False).proto
    adds = [n.name for n in graph if n.kind == "add"]
    if order in ("Add swapped", "both swapped"):
        for name in adds:
            _swap_inputs(proto, "Add", name)
    if order in ("Mul swapped", "both swapped"):
        _swap_inputs(proto, "Mul", ".mask")
    if order == "mask as a Constant node":
        for t in [t for t in proto.graph.initializer if t.name.endswith(".keep")]:
            proto.graph.initializer.remove(t)
            proto.graph.node.insert(0, onnx.helper.make_node("Constant", [], [t.name],
                                                             value=t))
    want, got = cost(graph), cost(from_proto(proto, source="m.onnx"))
    figures = ("params", "madds", "elementwise", "mem_bytes")
    assert [(e.name, *(getattr(e, k) for k in figures)) for e in got.blocks] == \
        [(e.name, *(getattr(e, k) for k in figures)) for e in want.blocks]
    assert got.peak_bytes == want.peak_bytes


def test_masks_that_are_not_a_slice_stay_errors(tmp_path):
    """A mask that is not ones-then-zeros, or one that multiplies a constant, is a
    multiplication by a constant: a located error, not a partial add or a crash."""
    from archspec.errors import ArchspecError
    from archspec.onnx_import import from_proto

    graph = mobilenext(tmp_path, 0.5)
    backend = get_backend("onnx")
    proto = backend.build(graph, seed=0, check=False, fold_bn=False).proto
    keep = next(t for t in proto.graph.initializer if t.name.endswith(".keep"))
    values = onnx.numpy_helper.to_array(keep).copy()
    values.reshape(-1)[-1] = 1.0       # ones, zeros, then a one: not a slice
    keep.CopyFrom(onnx.numpy_helper.from_array(values, keep.name))
    with pytest.raises(ArchspecError, match="constant"):
        from_proto(proto, source="m.onnx")
    proto = backend.build(graph, seed=0, check=False, fold_bn=False).proto
    mul = next(n for n in proto.graph.node if n.op_type == "Mul" and n.name.endswith(".mask"))
    ones = onnx.numpy_helper.from_array(np.ones_like(values), "ones")
    proto.graph.initializer.append(ones)
    mul.input[0] = "ones"             # the mask multiplies a constant tensor
    with pytest.raises(ArchspecError, match="constant"):
        from_proto(proto, source="m.onnx")
