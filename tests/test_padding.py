"""TensorFlow "same" padding (top-level ``padding: same``, for TF-trained models such as
timm's tf_mobilenetv3_*): the rule on small cases worked by hand, equal counts in archspec,
torch and FlopCounterMode, onnxruntime equal to torch with asymmetric pads on Conv and no
extra node, the ONNX round trip, and located errors for a bad setting or bad pads."""
import numpy as np
import pytest

import archspec
from archspec.errors import ArchspecError, SpecError
from archspec.ir.ops import Conv2d

BASE = """name: pad_demo
input: {resolution: 16, channels: 3}
classes: 10
stages:
  columns: [block, t, c, n, s, k]
  rows:
    - [conv, -, 16, 1, 2, 3]
    - [ir, 4, 24, 1, 2, 5]
    - [ir, 4, 24, 1, 1, 3]
head:
  - {block: pool}
  - {block: classifier}
"""
SAME = BASE.replace("classes: 10\n", "classes: 10\npadding: same\n")


# (k, s, H) -> (pad before, pad after, H out), worked by hand from
# total = max((ceil(H/s) - 1) s + k - H, 0), before = total // 2
@pytest.mark.parametrize("k,s,h,want", [
    (3, 1, 8, (1, 1, 8)), (3, 1, 7, (1, 1, 7)), (5, 1, 8, (2, 2, 8)),
    (3, 2, 8, (0, 1, 4)),          # (4-1)*2 + 3 - 8 = 1
    (3, 2, 7, (1, 1, 4)),          # (4-1)*2 + 3 - 7 = 2
    (5, 2, 8, (1, 2, 4)),          # (4-1)*2 + 5 - 8 = 3
    (5, 2, 7, (2, 2, 4)),          # (4-1)*2 + 5 - 7 = 4
    (5, 2, 16, (1, 2, 8)),         # (8-1)*2 + 5 - 16 = 3
    (1, 2, 8, (0, 0, 4)),          # (4-1)*2 + 1 - 8 < 0
])
def test_the_same_rule_by_hand(k, s, h, want):
    op = Conv2d(2, 4, k, s, pad_mode="same")
    top, left, bottom, right = op.pads(h, h)
    assert (top, bottom) == (left, right) == want[:2]
    assert op.infer([(2, h, h)]) == (4, want[2], want[2])


def test_same_pads_each_axis_on_its_own_and_symmetric_is_unchanged():
    assert Conv2d(2, 4, 3, 2, pad_mode="same").pads(8, 7) == (0, 1, 1, 1)
    assert Conv2d(2, 4, 3, 2).pads(8, 7) == (1, 1, 1, 1)
    assert Conv2d(2, 4, 3, 2).infer([(2, 8, 8)]) == (4, 4, 4)
    assert Conv2d(2, 4, 3, 2, dilation=2, pad_mode="same").pads(8, 8) == (1, 1, 2, 2)


def test_the_setting_reaches_every_conv_and_changes_no_count():
    a, b = archspec.loads(BASE).compile(), archspec.loads(SAME).compile()
    assert {n.op.pad_mode for n in a if n.kind == "conv2d"} == {"symmetric"}
    assert {n.op.pad_mode for n in b if n.kind == "conv2d"} == {"same"}
    assert [n.shape for n in a] == [n.shape for n in b]
    ta, tb = archspec.loads(BASE).cost().totals, archspec.loads(SAME).cost().totals
    assert (ta.params, ta.madds, ta.elementwise) == (tb.params, tb.madds, tb.elementwise)


@pytest.mark.parametrize("name,base", [("tf_mobilenetv3_large_100", "mobilenetv3_large"),
                                       ("tf_mobilenetv3_small_100", "mobilenetv3_small")])
def test_shipped_tf_specs_are_mobilenetv3_with_same_padding(name, base):
    tf, ref = archspec.load(name), archspec.load(base)
    assert (tf.padding, ref.padding, tf.bn_eps) == ("same", "symmetric", 0.001)
    a, b = tf.cost().totals, ref.cost().totals
    assert (a.params, a.madds) == (b.params, b.madds)


def _torch_model(text):
    from archspec.backends import get_backend

    return get_backend("torch").build(archspec.loads(text).compile(), seed=0).eval()


def test_torch_counts_equal_the_cost_and_keys_are_unchanged():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    model, plain = _torch_model(SAME), _torch_model(BASE)
    assert list(model.state_dict()) == list(plain.state_dict())
    totals = archspec.loads(SAME).cost().totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.zeros(1, 3, 16, 16))
    assert counter.get_total_flops() // 2 == totals.madds
    assert out.shape == (1, 10)
    with torch.no_grad():
        x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        plain.load_state_dict(model.state_dict())
        assert not torch.allclose(model(x), plain(x))   # the padding is not symmetric


def _onnx(text, fold_bn=True):
    from archspec.backends import get_backend

    graph = archspec.loads(text).compile()
    model = _torch_model(text)
    built = get_backend("onnx").build(graph, weights=model.state_dict(), fold_bn=fold_bn)
    return graph, model, built.proto


@pytest.mark.parametrize("fold_bn", [True, False])
def test_onnxruntime_equals_torch_with_asymmetric_pads_on_conv(fold_bn):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    graph, model, proto = _onnx(SAME, fold_bn)
    assert "Pad" not in {n.op_type for n in proto.graph.node}
    pads = [list(a.ints) for n in proto.graph.node if n.op_type == "Conv"
            for a in n.attribute if a.name == "pads"]
    assert pads[0] == [0, 0, 1, 1] and [1, 1, 2, 2] in pads   # stem k3 16->8, dw k5 8->4
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    (got,) = sess.run(None, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_onnx_round_trip_keeps_every_convs_padding():
    pytest.importorskip("onnx")
    from archspec.analysis.cost import cost
    from archspec.onnx_import import from_proto

    graph, _, proto = _onnx(SAME, fold_bn=False)
    back = from_proto(proto)

    def pads(g):
        return [n.op.pads(*g[n.inputs[0]].shape[1:]) for n in g if n.kind == "conv2d"]
    assert pads(back) == pads(graph)
    assert "same" in {n.op.pad_mode for n in back if n.kind == "conv2d"}
    a, b = cost(back).totals, cost(graph).totals
    assert (a.params, a.madds, a.elementwise) == (b.params, b.madds, b.elementwise)


def test_pads_that_are_neither_rule_are_a_located_import_error():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from archspec.onnx_import import from_proto

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="stem", pads=[1, 1, 0, 0],
                            strides=[2, 2])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], initializer=[w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ArchspecError, match=r"node `stem` \(Conv\): padding \[1, 1, 0, 0\]"):
        from_proto(model)
    same = helper.make_node("Conv", ["x", "w"], ["y"], name="stem", pads=[0, 0, 1, 1],
                            strides=[2, 2])
    model.graph.ClearField("node")
    model.graph.node.append(same)
    (conv,) = [n for n in from_proto(onnx.load_from_string(model.SerializeToString()))
               if n.kind == "conv2d"]
    assert conv.op.pad_mode == "same" and conv.shape == (4, 4, 4)


@pytest.mark.parametrize("setting,words", [
    ("padding: valid", "valid"),
    ("padding: 1", "1"),
    ("padding: [same]", "same"),
])
def test_a_bad_setting_is_a_located_error(setting, words):
    with pytest.raises(SpecError) as e:
        archspec.loads(BASE.replace("classes: 10\n", f"classes: 10\n{setting}\n")).compile()
    (p,) = e.value.problems
    assert (p.location.line, p.location.column) == (4, 10), p
    assert words in p.message and "symmetric" in p.message + (p.hint or ""), p


def test_the_padded_copy_is_counted_by_the_memory_models():
    from archspec.analysis import memory
    from archspec.backends.torch_rules import training

    op = Conv2d(3, 16, 3, 2, pad_mode="same")
    assert op.scratch([(3, 16, 16)]) == 3 * 17 * 17          # pads (0, 0, 1, 1)
    assert op.scratch([(3, 15, 15)]) == 0                    # pads (1, 1, 1, 1): none
    assert Conv2d(3, 16, 3, 2).scratch([(3, 16, 16)]) == 0
    g = archspec.loads(SAME).compile()
    stem = next(n for n in g if n.kind == "conv2d")
    steps = dict(memory.op_by_op(g).timeline)
    assert steps[stem.name] == (3 * 16 * 16 + 16 * 8 * 8 + 3 * 17 * 17) * 4
    padded = sum(n.op.scratch([g[n.inputs[0]].shape]) for n in g if n.kind == "conv2d")
    assert training(g).details["padded_copy_bytes"] == padded * 4 > 3 * 17 * 17 * 4
    assert "padded_copy_bytes" not in training(archspec.loads(BASE).compile()).details
