"""The ops of the detection and segmentation heads (avg_pool, resize, elementwise mul, concat
of prediction tables, anchor_flatten) and of ShuffleNet / ResNet (max_pool,
channel_shuffle), proved as the other ops are: built torch params and FlopCounterMode / 2
equal the cost, onnxruntime equals torch, the ONNX file imports back to the same graph,
pool counts equal what torch sums, the memory models equal torch's measured memory, the
latency rules cover what onnxruntime runs, and bad shapes are plain-words errors."""
from __future__ import annotations

import functools

import pytest

from archspec.analysis import memory as M
from archspec.analysis.cost import cost
from archspec.backends.torch_rules import training
from archspec.ir.graph import Graph
from archspec.ir.ops import (Activation, AnchorFlatten, AvgPool, BatchNorm, ChannelShuffle,
                             Concat, Conv2d, Input, MaxPool, Mul, Resize, ShapeError, Slice)
from archspec.latency.kernels import FAMILIES, kernels
from archspec.latency.model import family


def _stem(g: Graph, c: int, res: tuple[int, int], out: int = 8) -> str:
    g.add("input", Input((c, *res)))
    g.add("stem.conv", Conv2d(c, out, 3, 1), ["input"])
    g.add("stem.bn", BatchNorm(out), ["stem.conv"])
    return g.add("stem.act", Activation("relu"), ["stem.bn"])


def lraspp(res=(33, 47)) -> Graph:
    """LR-ASPP's gate (paper version): a large-stride average pool, 1x1 conv, sigmoid,
    bilinear upsampling, elementwise product; then a bilinear resize of the result."""
    g = Graph("lraspp")
    x = _stem(g, 3, res)
    p = g.add("gate.pool", AvgPool((9, 11), (4, 6)), [x])
    p = g.add("gate.conv", Conv2d(8, 8, 1, bias=True), [p])
    p = g.add("gate.act", Activation("sigmoid"), [p])
    p = g.add("gate.up", Resize(res), [p])
    y = g.add("gate.mul", Mul(), [x, p])
    g.outputs["output"] = g.add("up", Resize((2 * res[0] + 1, 2 * res[1] - 3)), [y])
    return g


def pools(res=(33, 47)) -> Graph:
    """ResNet's stem pool, then ceil-mode pools: at 33x47 one whose last row window torch
    drops (ONNX spells it with end padding), one ONNX's ceil_mode computes as torch
    does with the padding averaged, one without; then a channel shuffle."""
    g = Graph("pools")
    x = _stem(g, 3, res)
    x = g.add("max", MaxPool(3, 2, 1), [x])
    x = g.add("max_ceil", MaxPool((2, 3), (2, 3), (1, 1), ceil_mode=True), [x])
    x = g.add("avg_pad", AvgPool((3, 5), (2, 3), (1, 2), ceil_mode=True), [x])
    x = g.add("avg", AvgPool(3, 2, 1, ceil_mode=True, count_include_pad=False), [x])
    g.outputs["output"] = g.add("shuffle", ChannelShuffle(4), [x])
    return g


def ssd(res=(33, 47)) -> Graph:
    """Two prediction maps as SSD's tables of K = 4 values per anchor, concatenated."""
    g = Graph("ssd")
    x = _stem(g, 3, res)
    y = g.add("down", Conv2d(8, 16, 3, 2), [x])
    a = g.add("head.0", Conv2d(8, 3 * 4, 3, bias=True), [x])
    b = g.add("head.1", Conv2d(16, 2 * 4, 1, bias=True), [y])
    rows = [g.add("rows.0", AnchorFlatten(4), [a]), g.add("rows.1", AnchorFlatten(4), [b])]
    g.outputs["output"] = g.add("cat", Concat(), rows)
    return g


def shuffle_unit(res=(33, 47)) -> Graph:
    """ShuffleNetV2's stride-1 unit: a channel split, one branch, concat, shuffle."""
    g = Graph("shuffle_unit")
    x = _stem(g, 3, res)
    left = g.add("left", Slice(0, 4), [x])
    right = g.add("right", Slice(4, 8), [x])
    r = g.add("branch.conv", Conv2d(4, 4, 3, groups=4), [right])
    r = g.add("branch.bn", BatchNorm(4), [r])
    y = g.add("cat", Concat(), [left, r])
    g.outputs["output"] = g.add("shuffle", ChannelShuffle(2), [y])
    return g


GRAPHS = {f.__name__: f for f in (lraspp, pools, ssd, shuffle_unit)}


# ---- shapes and counts -------------------------------------------------------------------
@pytest.mark.parametrize("op,shapes,message", [
    (Mul(), [(8, 5, 5), (8, 5, 4)], "mul scales a (C, H, W) map by a (C, 1, 1) gate or"),
    (Concat(), [(6, 4), (5, 3)], "concat needs (C, H, W) maps of one spatial size or"),
    (Concat(), [(6, 4), (5, 4, 1)], "concat needs"),
    (AvgPool(9, 4), [(8, 5, 20)], "a 9x9 avg pool window with padding (0, 0) does not fit "
                                  "a 5x20 feature map"),
    (MaxPool(3, 2, 1), [(8,)], "max pool needs a (C, H, W) feature map"),
    (Resize((4, 4)), [(8,)], "resize needs a (C, H, W) feature map"),
    (ChannelShuffle(3), [(8, 4, 4)], "channel shuffle: 3 groups do not divide 8 channels"),
    (AnchorFlatten(5), [(12, 4, 4)], "anchor flatten: 12 channels are not a whole number"),
])
def test_bad_shapes_are_plain_words_errors(op, shapes, message):
    with pytest.raises(ShapeError) as e:
        op.infer(shapes)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("make,message", [
    (lambda: MaxPool(3, 2, 2), "max pool padding (2, 2) must be at most half the kernel"),
    (lambda: AvgPool((3, 0)), "avg pool kernel (3, 0) and stride (3, 0) must be >= 1"),
    (lambda: AvgPool(3, "2"), "avg pool stride must be an int or an (h, w) pair"),
    (lambda: Resize((0, 4)), "resize size (0, 4) must be >= 1"),
])
def test_bad_fields_are_plain_words_errors(make, message):
    with pytest.raises(ShapeError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_shapes_follow_torch():
    assert AvgPool(49, (16, 20)).infer([(128, 64, 128)]) == (128, 1, 4)   # LR-ASPP, 1024x2048
    assert MaxPool(3, 2, 1).infer([(64, 112, 112)]) == (64, 56, 56)        # ResNet stem
    assert AnchorFlatten(91).infer([(6 * 91, 20, 20)]) == (20 * 20 * 6, 91)
    assert Concat().infer([(2400, 4), (600, 4)]) == (3000, 4)
    assert Mul().infer([(8, 5, 7), (8, 1, 1)]) == Mul().infer([(8, 5, 7), (8, 5, 7)])


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 1, False), (3, 2, 1, True),
                                        ((3, 5), (2, 3), (1, 2), True),
                                        ((9, 11), (4, 6), 0, False), (2, 1, 0, True)])
@pytest.mark.parametrize("size", [(33, 47), (12, 13)])
def test_pool_counts_the_inputs_torch_sums(k, s, p, ceil, size):
    """avg_pool2d over ones with divisor 1 and no padding counted sums, per window, the
    input elements it reads: their total is the count of both pools."""
    import torch.nn.functional as F

    ops = [AvgPool(k, s, p, ceil), MaxPool(k, s, p, ceil)]
    shape = (3, *size)
    out = ops[0].infer([shape])
    read = F.avg_pool2d(torch.ones(1, *shape), k, s, p, ceil, count_include_pad=False,
                        divisor_override=1)
    assert tuple(read.shape[1:]) == out
    for op in ops:
        assert op.infer([shape]) == out
        assert op.cost([shape], out).elementwise == int(read.sum())


@functools.cache
def _built(name: str, res=(33, 47)):
    from archspec.backends import get_backend

    from conftest import randomise_bn

    g = GRAPHS[name](res)
    return g, randomise_bn(get_backend("torch").build(g, seed=0)).eval()


@pytest.mark.parametrize("res", [(33, 47), (20, 20)])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_built_params_and_flop_counter_equal_the_cost(name, res):
    from torch.utils.flop_counter import FlopCounterMode

    g, model = _built(name, res)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.zeros(1, *g.input_shape))
    totals = cost(g).totals
    assert tuple(out.shape[1:]) == g[g.outputs["output"]].shape
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_onnxruntime_equals_torch(name):
    pytest.importorskip("onnxruntime")
    from conftest import onnx_and_torch_outputs

    got, want = onnx_and_torch_outputs(*_built(name))
    assert got.shape == want.shape
    assert abs(got - want).max() <= 1e-5 * max(1.0, abs(want).max())


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_resize_equals_torch_at_every_opset(opset):
    """Below opset 18 the sizes are Concat(Shape(x)[:2], [H, W]); from 18 the axes."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from archspec.backends import get_backend
    from archspec.onnx_import import from_proto

    g, model = _built("lraspp")
    proto = get_backend("onnx").build(g, weights=model.state_dict(), opset=opset,
                                      fold_bn=False).proto
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, *g.input_shape)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert abs(sess.run(None, {"input": x})[0] - want).max() <= 1e-5 * abs(want).max()
    assert [(n.name, n.op) for n in from_proto(proto)] == [(n.name, n.op) for n in g]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_the_onnx_file_imports_back_to_the_same_graph(name):
    pytest.importorskip("onnx")
    from archspec.backends import get_backend
    from archspec.onnx_import import from_proto

    g = GRAPHS[name]()
    proto = get_backend("onnx").build(g, seed=0, fold_bn=False).proto
    back = from_proto(proto)
    assert [(n.name, n.op, n.inputs, n.shape) for n in back] == \
           [(n.name, n.op, n.inputs, n.shape) for n in g]


def test_the_importer_refuses_a_resize_torch_does_not_compute():
    onnx = pytest.importorskip("onnx")
    from archspec.backends import get_backend
    from archspec.errors import ArchspecError
    from archspec.onnx_import import from_proto

    proto = get_backend("onnx").build(lraspp(), seed=0).proto
    node = next(n for n in proto.graph.node if n.op_type == "Resize")
    for a in node.attribute:
        if a.name == "coordinate_transformation_mode":
            a.CopyFrom(onnx.helper.make_attribute(a.name, "align_corners"))
    with pytest.raises(ArchspecError, match=r"node `gate.up` \(Resize\): "
                                            r"coordinate_transformation_mode='align_corners'"):
        from_proto(proto)


# ---- memory ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_op_by_op_estimate_equals_the_measured_peak(name):
    from archspec.backends.torch_memory import measure

    g, model = _built(name)
    x = torch.randn(2, *g.input_shape)
    with torch.no_grad():
        measured = measure(model, x).peak_bytes
    assert abs(measured / M.op_by_op(g, batch=2).peak_bytes - 1) <= 0.05


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_training_estimate_equals_the_saved_tensors(name):
    from archspec.backends.torch_memory import saved_for_backward

    g, model = _built(name)
    measured = saved_for_backward(model, torch.randn(2, *g.input_shape))
    assert measured == training(g, batch=2).peak_bytes


def test_max_pool_keeps_int64_indices_for_backward():
    details = training(pools(), batch=2).details
    assert details["maxpool_index_bytes"] == 2 * 8 * 8 * (17 * 24 + 9 * 9)   # batch 2, int64


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_node_by_node_execution_equals_the_model(name):
    from archspec.backends.torch_memory import SlicedRunner

    g, model = _built(name)
    x = torch.randn(2, *g.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(SlicedRunner(model, g)(x), model(x))


# ---- latency and the summary -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_every_node_is_in_one_kernel_of_a_declared_family(name):
    g = GRAPHS[name]()
    ks = kernels(g)
    covered = [n for k in ks for n in k.nodes]
    assert sorted(covered) == sorted(n.name for n in g if n.kind != "input")
    for k in ks:
        assert family(k.type) in FAMILIES[g[k.name].kind], (k.name, k.type)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_kernels_are_what_onnxruntime_runs(name):
    pytest.importorskip("onnxruntime")
    from archspec.latency import attribution, probes, timing

    g = GRAPHS[name]()
    owner = {n: k for k in kernels(g, probes.nchwc_block() or 16) for n in k.nodes}
    seen = set()
    for _domain, op, node in timing.optimized_nodes(g):
        ir = attribution.ir_name(node, owner)
        assert ir is not None or "Reorder" in op or node == "", (op, node)
        if ir is not None:
            seen.add(owner[ir].name)
    assert seen == {k.name for k in owner.values()}


def test_the_shipped_profile_predicts_every_new_kernel():
    from archspec.latency.check import predict
    from archspec.latency.profile import load

    profile = load("profiles/cpu-ort-1t.json")
    for name, make in GRAPHS.items():
        assert predict(make(), profile).total_ms > 0, name


def test_the_summary_labels_every_new_op():
    from archspec.backends.torch_summary import summary

    for name in GRAPHS:
        g, model = _built(name)
        text = summary(model, g, cost(g))
        for node in g:
            if node.kind in ("avg_pool", "max_pool", "resize"):
                assert type(model.get_submodule(node.name)).__name__ in text
        assert ("channel shuffle g=" in text) == any(n.kind == "channel_shuffle" for n in g)
        assert ("anchor flatten K=4" in text) == (name == "ssd")


def test_a_torch_export_of_torchvisions_shufflenet_unit_imports():
    """torch.onnx.export writes ``x.chunk(2, 1)`` as Slice bounds computed from Shape,
    the shuffle as Reshape / Transpose / Reshape and ``x.mean([2, 3])`` as a ReduceMean
    without keepdims: all import, and cost what FlopCounterMode counts."""
    import io
    import warnings

    pytest.importorskip("onnx")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from archspec.onnx_import import from_proto

    class Unit(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
            self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(),
                                        nn.Conv2d(4, 4, 3, 1, 1, groups=4))
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = self.stem(x)
            a, b = x.chunk(2, dim=1)
            x = torch.cat((a, self.branch(b)), 1)
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
            return self.fc(x.mean([2, 3]))

    model, f = Unit().eval(), io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), f, dynamo=False,
                          opset_version=17, input_names=["input"])
    g = from_proto(_proto(f))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 16, 16))
    totals = cost(g).totals
    assert (totals.params, 2 * totals.madds) == (sum(p.numel() for p in model.parameters()),
                                                 counter.get_total_flops())
    assert [n.kind for n in g if n.kind in ("slice", "channel_shuffle", "flatten")] == \
        ["slice", "slice", "channel_shuffle", "flatten"]
    assert g[g.outputs["output"]].shape == (5,)


def _proto(buffer):
    import onnx

    return onnx.load_from_string(buffer.getvalue())
