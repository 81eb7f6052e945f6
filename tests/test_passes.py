"""IR -> IR passes (archspec/ir/passes.py): each pass on a tiny graph, a failing pass named in
its error, and the dispatch tables of the ONNX and latency consumers covering every op kind
(a new kind without a handler fails here, naming the consumer)."""
from __future__ import annotations

import pytest

import archspec
from archspec.analysis.cost import totals
from archspec.errors import CompileError
from archspec.ir.graph import Graph
from archspec.ir.ops import (ACTIVATIONS, OPS, Activation, BatchNorm, Conv2d, Flatten,
                             GlobalAvgPool, Input, Linear, ShapeError)
from archspec.ir.passes import BnFolding, PassError, bn_folding, graph_pass, run_pass
from archspec.latency.kernels import FAMILIES, RULES, kernels
from archspec.latency.model import TREE_FAMILIES, family
from archspec.onnx_import import IMPORT, MAKES, importable_kinds
from archspec.spec.loader import SHIPPED


def small() -> Graph:
    """conv -> BN -> relu; conv -> BN read twice; a BN after a pool; a conv output."""
    g = Graph("small")
    x = g.add("input", Input((8, 8, 8)))
    a = g.add("a.conv", Conv2d(8, 8, 3), [x])
    a = g.add("a.bn", BatchNorm(8), [a])
    a = g.add("a.act", Activation("relu"), [a])
    b = g.add("b.conv", Conv2d(8, 8, 1), [a])
    g.add("b.bn", BatchNorm(8), [b])
    g.add("b.side", Activation("relu"), [b])          # b.conv has two readers
    p = g.add("p.pool", GlobalAvgPool(), [a])
    p = g.add("p.bn", BatchNorm(8), [p])               # not after a conv
    c = g.add("c.conv", Conv2d(8, 8, 1), [p])
    c = g.add("c.bn", BatchNorm(8), [c])
    y = g.add("head.flatten", Flatten(), [c])
    g.outputs["output"] = g.add("head.fc", Linear(8, 4), [y])
    return g


# ---- the bn folding pass -----------------------------------------------------------------------
def test_bn_folding_folds_a_bn_into_the_conv_that_feeds_only_it():
    folds = bn_folding(small())
    assert isinstance(folds, BnFolding)
    assert folds.into == {"a.bn": "a.conv", "c.bn": "c.conv"}
    assert folds.convs == {"a.conv": "a.bn", "c.conv": "c.bn"}
    assert len(folds) == 2


def test_bn_folding_keeps_a_conv_whose_value_must_stay_visible():
    assert bn_folding(small(), keep=["c.conv"]).into == {"a.bn": "a.conv"}


def test_bn_folding_returns_a_result_and_leaves_the_graph_alone():
    g = small()
    before = [(n.name, n.op, n.inputs) for n in g]
    bn_folding(g)
    assert [(n.name, n.op, n.inputs) for n in g] == before


# ---- the kernel fusion pass --------------------------------------------------------------------
def test_kernel_fusion_groups_a_conv_with_its_folded_bn_and_activation():
    ks = {k.name: k for k in kernels(small())}
    assert ks["a.conv"].nodes == ["a.conv", "a.bn", "a.act"]
    assert ks["b.conv"].nodes == ["b.conv"]          # its BN is not folded: two readers
    assert ks["b.bn"].type.startswith("bn.")
    assert ks["c.conv"].nodes == ["c.conv", "c.bn"]
    assert ks["head.flatten"].nodes == ["head.flatten", "head.fc"]


def test_kernel_fusion_takes_macs_and_weights_from_the_cost_pass():
    ks = {k.name: k for k in kernels(small())}
    assert (ks["a.conv"].macs, ks["a.conv"].params) == (8 * 8 * 8 * 8 * 9, 8 * 8 * 9)
    assert (ks["head.flatten"].macs, ks["head.flatten"].params) == (32, 32)


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3_small", "rexnet"])
def test_kernels_hold_every_madd_of_the_cost_pass(name):
    graph = archspec.load(name).compile()
    assert sum(k.macs for k in kernels(graph)) == totals(graph).madds


# ---- failures name the pass --------------------------------------------------------------------
def test_a_failing_pass_is_named_in_the_error():
    g = small()
    weird = type("Weird", (), {"kind": "weird", "infer": lambda self, shapes: shapes[0]})
    g.add("w", weird(), ["head.fc"])
    with pytest.raises(PassError, match=r"^pass kernel fusion: no kernel rule for op kind "
                                        r"'weird' \(node w\)") as e:
        kernels(g)
    assert e.value.pass_name == "kernel fusion"
    assert isinstance(e.value, CompileError) and e.value.exit_code == 2


def test_graph_pass_names_a_shape_error_and_a_pass_inside_another():
    @graph_pass("inner")
    def inner(graph):
        raise ShapeError("channels do not match")

    @graph_pass("outer")
    def outer(graph):
        return inner(graph)

    with pytest.raises(PassError, match="^pass inner: channels do not match$"):
        inner(small())
    with pytest.raises(PassError, match="^pass outer: pass inner: channels do not match$"):
        outer(small())
    assert outer.pass_name == "outer" and outer.__name__ == "outer"


def test_run_pass_returns_the_result_and_lets_a_bug_through():
    assert run_pass("count", len, small()) == len(small())
    with pytest.raises(ZeroDivisionError):   # a bug is not a user error
        run_pass("broken", lambda g: 1 / 0, small())


# ---- every op kind has a handler in each consumer ---------------------------------------------
def _onnx_tables():
    pytest.importorskip("onnx")
    from archspec.backends import onnx_lower

    return {"onnx lowering": onnx_lower.ONNX_LOWER, "onnx weights": onnx_lower.INIT}


def test_latency_fusion_has_a_rule_for_every_op_kind():
    assert RULES.missing() == [], "latency kernel fusion: no rule"
    assert set(FAMILIES) == set(RULES.kinds())


@pytest.mark.parametrize("consumer", ["onnx lowering", "onnx weights"])
def test_onnx_lowering_has_a_handler_for_every_op_kind(consumer):
    assert _onnx_tables()[consumer].missing() == [], consumer


def test_onnx_lowering_spells_every_activation():
    pytest.importorskip("onnx")
    from archspec.backends.onnx_lower import ACTIVATION

    assert sorted(ACTIVATION.kinds()) == sorted(ACTIVATIONS)


def test_every_op_kind_is_importable_from_onnx():
    assert sorted(set(OPS) - importable_kinds()) == []
    assert set(MAKES) == set(IMPORT.kinds())
    assert importable_kinds() <= set(OPS)


def test_kernel_families_are_the_families_the_latency_model_knows():
    declared = {f for fams in FAMILIES.values() for f in fams}
    assert declared == set(TREE_FAMILIES)


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_kernel_has_a_family_its_rule_declares(path):
    graph = archspec.load(path).compile()
    for k in kernels(graph):
        assert family(k.type) in FAMILIES[graph[k.name].kind], (k.name, k.type)



@pytest.mark.parametrize("name", ["mobilenetv3_small", "rexnet", "mobilenext"])
def test_each_imported_node_has_a_kind_its_onnx_op_declares(name):
    pytest.importorskip("onnx")
    from archspec.backends import get_backend
    from archspec.onnx_import import PATTERNS, from_proto

    graph = archspec.load(name, resolution=64).compile()
    proto = get_backend("onnx").build(graph, seed=0, fold_bn=False, check=False).proto
    op_type = {n.name: n.op_type for n in proto.graph.node}
    patterns = {k for kinds in PATTERNS.values() for k in kinds}
    for node in from_proto(proto):
        onnx_op = op_type.get(node.name)   # None: the graph input
        by_pattern = node.kind in patterns and onnx_op in (None, "Mul", "Concat", "Slice")
        assert node.kind in MAKES.get(onnx_op, ()) or by_pattern, (node.name, onnx_op)
