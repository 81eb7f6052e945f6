"""Each op kind is defined once (archspec/ir/ops.py) and every consumer of the IR keeps one
handler per kind (archspec.ir.dispatch.OpTable): the coverage check over every consumer's
tables, hand-computed counts on a tiny graph holding every op kind (the fvcore way), the
memory traits and PyTorch's autograd rule by hand, and an unknown op kind as an error in
every consumer."""
import importlib
import inspect
import re
from dataclasses import dataclass

import pytest

from archspec.analysis import memory
from archspec.analysis.cost import cost
from archspec.backends import torch_rules
from archspec.errors import CompileError
from archspec.ir.dispatch import OpTable, UnknownOp
from archspec.ir.graph import Graph
from archspec.ir.ops import (ACTIVATIONS, OPS, Activation, Add, AnchorFlatten, AvgPool,
                             BatchNorm, ChannelShuffle, Concat, Conv2d, Dropout, Flatten,
                             GlobalAvgPool, Input, Linear, MaxPool, Mul, Replicate, Resize,
                             Slice, _vocabulary)

# The ONNX importer's table is keyed by ONNX op type and the latency model reads kernel
# families: tests/test_passes.py checks that every IR kind is importable and fused into a
# kernel of a declared family.
CONSUMERS = ("archspec.backends.torch_lower", "archspec.backends.torch_summary",
             "archspec.backends.torch_memory", "archspec.backends.torch_rules",
             "archspec.backends.onnx_lower", "archspec.latency.kernels")
# a table that serves a subset of the kinds by design -> the kinds it must serve
PARTIAL = {  # a splittable block (analysis.memory.splittable_blocks): convs, replicate,
    "torch t-slice execution":   # per-channel ops
        {"conv2d", "replicate"} | {k for k, cls in OPS.items() if cls.per_channel},
}


def _consumer_module(path: str):
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name in ("torch", "onnx", "onnxruntime"):
            pytest.skip(f"{path} needs {e.name}, which is not installed")
        raise


def _tables(module) -> list[OpTable]:
    """The module's tables keyed by IR op kind (not by activation or foreign op type)."""
    return [v for v in vars(module).values() if isinstance(v, OpTable) and v.keys == "op kind"]


def _lacks(table: OpTable, kinds) -> list[str]:
    return [f"consumer {table.consumer!r} lacks op kind {k!r}"
            for k in sorted(set(kinds) - set(table.kinds()))]


# ---- every consumer handles every op kind ---------------------------------------------------
@pytest.mark.parametrize("path", CONSUMERS)
def test_every_consumer_handles_every_op_kind(path):
    tables = _tables(_consumer_module(path))
    assert tables, f"{path} defines no OpTable keyed by op kind"
    problems = [p for t in tables for p in _lacks(t, PARTIAL.get(t.consumer, OPS))]
    assert not problems, "\n".join(problems)


def test_the_coverage_check_names_the_consumer_and_the_op_kind():
    half = OpTable("half lowering")
    half.register("conv2d", "batchnorm")(lambda node: None)
    lacks = _lacks(half, OPS)
    assert "consumer 'half lowering' lacks op kind 'slice'" in lacks
    assert len(lacks) == len(OPS) - 2


def test_partial_tables_exist():
    found = {t.consumer for path in CONSUMERS if path.startswith("archspec.backends.torch")
             for t in _tables(_consumer_module(path))}
    assert set(PARTIAL) <= found


def test_the_vocabulary_refuses_a_kind_without_a_formula_or_defined_twice():
    @dataclass(frozen=True)
    class NoCost:
        kind = "no_cost"

        def infer(self, shapes):
            return shapes[0]

    with pytest.raises(TypeError, match="op class NoCost lacks cost"):
        _vocabulary(Conv2d, NoCost)
    with pytest.raises(TypeError, match="op kind `conv2d` defined twice"):
        _vocabulary(Conv2d, Conv2d)


# ---- hand-computed counts on a tiny graph with every op kind --------------------------------
def every_kind() -> Graph:
    g = Graph("every_kind")
    g.add("x", Input((4, 5, 5)))
    g.add("conv", Conv2d(4, 6, 3, stride=2, groups=2, bias=True), ["x"])    # (6, 3, 3)
    g.add("bn", BatchNorm(6), ["conv"])
    g.add("act", Activation("hswish"), ["bn"])
    g.add("dw", Conv2d(6, 6, 3, groups=6, dilation=2), ["act"])            # padding 2
    g.add("pool", GlobalAvgPool(), ["act"])                                 # (6, 1, 1)
    g.add("gate", Activation("sigmoid"), ["pool"])
    g.add("mul", Mul(), ["dw", "gate"])
    g.add("rep", Replicate(8), ["mul"])                                     # (8, 3, 3)
    g.add("add", Add(partial=True), ["rep", "act"])
    g.add("sl", Slice(2, 6), ["add"])                                       # (4, 3, 3)
    g.add("cat", Concat(), ["sl", "add"])                                   # (12, 3, 3)
    g.add("pool2", GlobalAvgPool(), ["cat"])
    g.add("flat", Flatten(), ["pool2"])                                     # (12,)
    g.add("drop", Dropout(0.2), ["flat"])
    g.add("fc", Linear(12, 10), ["drop"])
    g.add("bn1d", BatchNorm(10), ["fc"])
    g.add("mp", MaxPool(3, 2, 1), ["act"])                                  # (6, 2, 2)
    g.add("ap", AvgPool(2, 1), ["mp"])                                      # (6, 1, 1)
    g.add("up", Resize((3, 3)), ["ap"])                                     # (6, 3, 3)
    g.add("gmul", Mul(), ["dw", "up"])                                      # elementwise
    g.add("shuf", ChannelShuffle(2), ["gmul"])
    g.add("rows", AnchorFlatten(3), ["shuf"])                               # (18, 3)
    g.add("rows2", AnchorFlatten(2), ["dw"])                                # (27, 2)
    g.add("rows3", AnchorFlatten(3), ["dw"])
    g.add("table", Concat(), ["rows", "rows3"])                             # (36, 3)
    g.outputs["output"] = "bn1d"
    g.taps.update({"table": "table", "rows2": "rows2"})
    return g


# node -> (params, buffers, MAdds, elementwise), each written out by hand
HAND = {
    "conv": (6 * (2 * 9) + 6, 0, 6 * 9 * (2 * 9), 0),    # weights + bias; out x (Cin/g) k k
    "bn": (2 * 6, 2 * 6, 0, 2 * 54),                     # gamma/beta, mean/var, scale+shift
    "act": (0, 0, 0, 54),
    "dw": (6 * 9, 0, 54 * 9, 0),
    "pool": (0, 0, 0, 54),                               # one per input element
    "gate": (0, 0, 0, 6),
    "mul": (0, 0, 0, 54),
    "rep": (0, 0, 0, 0),
    "add": (0, 0, 0, 54),                                # partial: the 6-channel input only
    "sl": (0, 0, 0, 0),
    "cat": (0, 0, 0, 0),
    "pool2": (0, 0, 0, 108),
    "flat": (0, 0, 0, 0),
    "drop": (0, 0, 0, 0),
    "fc": (12 * 10 + 10, 0, 12 * 10, 0),
    "bn1d": (2 * 10, 2 * 10, 0, 2 * 10),
    "mp": (0, 0, 0, 6 * 4 * 4),        # windows at rows -1..1 and 1..3 of 3 read 2 + 2 rows
    "ap": (0, 0, 0, 6 * 4),            # one 2x2 window
    "up": (0, 0, 0, 54),               # one per output element, not MAdds
    "gmul": (0, 0, 0, 54),
    "shuf": (0, 0, 0, 0),
    "rows": (0, 0, 0, 0),
    "rows2": (0, 0, 0, 0),
    "rows3": (0, 0, 0, 0),
    "table": (0, 0, 0, 0),
}


def test_the_tiny_graph_holds_every_op_kind():
    assert {n.kind for n in every_kind()} == set(OPS)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_counts_per_op(name):
    row = {e.name: e for e in cost(every_kind()).layers}[name]
    assert (row.params, row.buffers, row.madds, row.elementwise) == HAND[name]


def test_memory_access_and_totals_by_hand():
    report = cost(every_kind(), batch=2, dtype="fp16")
    conv = report.layers[0]
    assert conv.mem_bytes == ((4 * 25 + 54) * 2 + 114) * 2   # (in + out) x batch + params
    assert conv.act_bytes == 54 * 2 * 2
    assert report.totals.madds == 2 * sum(h[2] for h in HAND.values())
    assert report.totals.params == sum(h[0] for h in HAND.values())


def test_view_ops_share_their_source_buffer():
    roots = memory.buffer_roots(every_kind())
    assert roots["sl"] == "add" and roots["drop"] == roots["flat"] == "pool2"
    assert {n for n, r in roots.items() if r != n} == {"sl", "flat", "drop"}


# ---- PyTorch's rules (backends/torch_rules.py), by hand ------------------------------------
def conv_bn(act: str, *, dropout: float = 0.0) -> Graph:
    g = Graph("conv_bn")
    g.add("x", Input((2, 4, 4)))
    g.add("conv", Conv2d(2, 4, 1), ["x"])
    g.add("bn", BatchNorm(4), ["conv"])
    g.add("act", Activation(act), ["bn"])
    g.add("act2", Activation("hswish"), ["act"])
    g.add("drop", Dropout(dropout), ["act2"])
    g.outputs["output"] = "drop"
    return g


def test_torch_runs_an_activation_in_place_only_over_a_fresh_private_tensor():
    g = conv_bn("relu")
    assert torch_rules.inplace_activation(g, g["act"])          # over BN's fresh output
    assert not torch_rules.inplace_activation(g, g["act2"])     # over an activation
    g = conv_bn("sigmoid")
    assert not torch_rules.inplace_activation(g, g["act"])       # nn.Sigmoid has no inplace


def test_saved_for_backward_by_hand():
    relu = torch_rules.training(conv_bn("relu", dropout=0.5))
    # conv keeps x (32 el.), BN keeps conv (64), ReLU in place keeps its output = BN's
    # buffer (64), hswish keeps its input (the same buffer); fp32
    assert relu.live_at_peak == ["x", "conv", "bn"]
    assert relu.details == {"saved_tensor_bytes": (32 + 64 + 64) * 4, "inplace_clone_bytes": 0,
                    "bn_stat_bytes": 4 * 2 * 4, "dropout_mask_bytes": 64,
                    "saved_tensors": 3}
    hswish = torch_rules.training(conv_bn("hswish")).details
    # in place over BN's output: autograd keeps a copy of the overwritten input
    assert hswish["inplace_clone_bytes"] == 64 * 4 and hswish["dropout_mask_bytes"] == 0
    sigmoid = torch_rules.training(conv_bn("sigmoid"), batch=2)
    # sigmoid is not run in place: it keeps its own output, which hswish keeps too
    assert sigmoid.live_at_peak == ["x", "conv", "act"]
    assert sigmoid.peak_bytes == (32 + 2 * 64) * 4 * 2 + 4 * 2 * 4


def test_inplace_fns_are_the_torch_activations_that_take_inplace():
    pytest.importorskip("torch")
    from archspec.backends import torch_lower, torch_memory

    assert sorted(torch_lower.ACTIVATIONS) == sorted(ACTIVATIONS)
    assert sorted(torch_memory._INPLACE) == sorted(ACTIVATIONS)
    takes = {fn for fn, cls in torch_lower.ACTIVATIONS.items()
             if "inplace" in inspect.signature(cls).parameters}
    assert takes == torch_rules.INPLACE_FNS


# ---- an unknown op kind is an error in every consumer ----------------------------------------
@dataclass(frozen=True)
class Mystery:
    kind = "mystery"

    def infer(self, shapes):
        return shapes[0]


def mystery() -> Graph:
    g = Graph("mystery")
    g.add("x", Input((3, 4, 4)))
    g.add("conv", Conv2d(3, 4, 1), ["x"])
    g.add("m", Mystery(), ["conv"])
    g.outputs["output"] = "m"
    return g


@pytest.mark.parametrize("path", CONSUMERS)
def test_every_table_refuses_an_unknown_op_kind(path):
    tables = _tables(_consumer_module(path))
    assert tables, f"{path} defines no OpTable keyed by op kind"
    for table in tables:
        message = f"{table.consumer}: no handler for op kind `mystery`"
        with pytest.raises(UnknownOp, match="^" + re.escape(message)):
            table["mystery"]


def _analyses():
    return {"cost": cost, "op_by_op": memory.op_by_op, "best_schedule": memory.best_schedule,
            "fused": memory.fused, "training": torch_rules.training}


@pytest.mark.parametrize("analysis", sorted(_analyses()))
def test_an_unknown_op_kind_is_an_error_in_every_analysis(analysis):
    with pytest.raises(CompileError, match="op kind 'mystery'"):
        _analyses()[analysis](mystery())


def test_an_unknown_op_kind_is_an_error_in_the_torch_lowering():
    pytest.importorskip("torch")
    from archspec.backends.torch_lower import build_module

    with pytest.raises(UnknownOp, match="^torch lowering: no handler for op kind `mystery`"):
        build_module(mystery())
