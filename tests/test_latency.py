"""Latency prediction: fusion rules, attribution, fitting, profiles, check, CLI.

Nothing here times anything: measurement is replaced by fake clocks, fake steps and fake
profiler traces. The one test that asks onnxruntime for its optimised graph (the fusion
rules' ground truth) builds sessions but never runs them.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.analysis.cost import cost
from archspec.errors import ArchspecError
from archspec.ir.graph import Graph
from archspec.ir.ops import (Activation, Add, BatchNorm, Concat, Conv2d, Dropout, Flatten,
                             GlobalAvgPool, Input, Linear, Mul, Replicate)
from archspec.latency import attribution, fitting, probes
from archspec.latency import networks as nets
from archspec.latency import raw as rawfile
from archspec.latency import check as chk
from archspec.latency.kernels import kernels, nchwc_ok
from conftest import ort_kernel_runs  # noqa: E402
from archspec.latency.model import FEATURES, FUSION_FLAGS, LatencyModel, ancestors, fit, row
from archspec.latency.profile import Profile, load, setup_warnings
from archspec.latency.timing import optimized_nodes
from archspec.spec import load as load_spec
from archspec.spec.loader import SHIPPED

SPECS = sorted(SHIPPED.glob("*.yaml"))
PROFILES = Path(__file__).resolve().parent.parent / "profiles"


# ---- helpers ---------------------------------------------------------------------------------
def conv_bn(g, name, x, cout, k=1, s=1, groups=1, act=None):
    cin = g[x].shape[0]
    y = g.add(f"{name}.conv", Conv2d(cin, cout, k, s, groups), [x])
    y = g.add(f"{name}.bn", BatchNorm(cout), [y])
    if act:
        y = g.add(f"{name}.act", Activation(act), [y])
    return y


def tiny(act="relu", se=False, partial=False):
    """stem -> inverted residual (optionally SE, partial add) -> head."""
    g = Graph("tiny", {"resolution": 32, "channels": 3})
    x = g.add("input", Input((3, 32, 32)))
    x = conv_bn(g, "stem", x, 16, 3, 2, act="hswish")
    h = conv_bn(g, "b.expand", x, 64, act=act)
    h = conv_bn(g, "b.dw", h, 64, 3, 1, 64, act="relu")
    if se:
        p = g.add("b.se.pool", GlobalAvgPool(), [h])
        r = g.add("b.se.fc1", Conv2d(64, 16, 1, bias=True), [p])
        r = g.add("b.se.act", Activation("relu"), [r])
        r = g.add("b.se.fc2", Conv2d(16, 64, 1, bias=True), [r])
        r = g.add("b.se.gate", Activation("hsigmoid"), [r])
        h = g.add("b.se.scale", Mul(), [h, r])
    y = conv_bn(g, "b.project", h, 24 if partial else 16)
    y = g.add("b.add", Add(partial=partial), [y, x])
    y = g.add("head.pool", GlobalAvgPool(), [y])
    y = g.add("head.flatten", Flatten(), [y])
    y = g.add("head.dropout", Dropout(0.2), [y])
    g.outputs["output"] = g.add("head.fc", Linear(g[y].shape[0], 10), [y])
    return g


def by_name(ks):
    return {k.name: k for k in ks}


def fake_profile(coef=None, overhead=(10.0, 1.0), machine=None, versions=None):
    coef = coef or {"*": [5.0, 10.0, 1.0, 1.0, 1.0, 1.0, 0, 0],
                    "conv": [2.0, 20.0, 0, 0, 0, 0, 0, 0]}
    from archspec.bench import machine as m, versions as v

    return Profile("onnxruntime", {"threads": 1, "batch": 1, "nchwc_block": 16,
                                   "dtype": "fp32"},
                   machine or m(), versions or v(), LatencyModel(coef, overhead),
                   {"networks": 1}, "now")


# ---- fusion rules ----------------------------------------------------------------------------
def test_conv_bn_act_and_residual_add_fuse_into_one_kernel():
    ks = by_name(kernels(tiny()))
    assert ks["stem.conv"].nodes == ["stem.conv", "stem.bn", "stem.act"]
    assert ks["b.expand.conv"].nodes == ["b.expand.conv", "b.expand.bn", "b.expand.act"]
    assert ks["b.project.conv"].nodes == ["b.project.conv", "b.project.bn", "b.add"]
    assert ks["b.project.conv"].in_elems == 64 * 16 * 16 + 16 * 16 * 16  # + the residual
    assert [k.type for k in kernels(tiny())][-2:] == ["pool", "linear"]
    assert ks["head.flatten"].nodes == ["head.flatten", "head.dropout", "head.fc"]


def test_kernels_carry_their_shape_and_the_network_footprint():
    ks = kernels(tiny())
    k = by_name(ks)["b.expand.conv"]
    assert (k.cin, k.cout, k.hw) == (16, 64, 16 * 16)
    net = sum(x.params + x.out_elems for x in ks)
    assert {x.features()["net_elems"] for x in ks} == {net}


def test_swish_is_its_own_kernel():
    ks = by_name(kernels(tiny(act="swish")))
    assert ks["b.expand.conv"].nodes == ["b.expand.conv", "b.expand.bn"]
    assert ks["b.expand.act"].type == "act.swish"


def test_se_is_one_kernel_and_partial_add_is_not_fused():
    ks = by_name(kernels(tiny(se=True, partial=True)))
    assert ks["b.se.pool"].type == "se"
    assert ks["b.se.pool"].nodes == ["b.se.pool", "b.se.fc1", "b.se.act", "b.se.fc2",
                                     "b.se.gate", "b.se.scale"]
    assert ks["b.se.pool"].macs == 64 * 16 * 2
    assert ks["b.add"].type == "add_partial"
    assert ks["b.project.conv"].nodes == ["b.project.conv", "b.project.bn"]


def test_conv_feeding_two_consumers_does_not_fuse():
    g = Graph("fork", {})
    x = g.add("input", Input((16, 8, 8)))
    c = g.add("c", Conv2d(16, 16, 1), [x])
    g.add("a1", Activation("relu"), [c])
    g.outputs["output"] = g.add("a2", Activation("relu"), [c])
    assert [k.nodes for k in kernels(g)] == [["c"], ["a1"], ["a2"]]


def test_unknown_op_is_an_error():
    g = tiny()

    class Weird:
        kind = "weird"

        def infer(self, shapes):
            return shapes[0]

    g.add("w", Weird(), ["head.fc"])
    with pytest.raises(Exception, match="no kernel rule for op kind 'weird'"):
        kernels(g)


@pytest.mark.parametrize("cin,cout,groups,blocked", [
    (3, 16, 1, True),       # stem: NCHW input read directly
    (24, 72, 1, True),      # padded to whole blocks
    (27, 162, 1, False),    # not a multiple of 4
    (228, 228, 228, True),  # depthwise, padded
    (162, 162, 162, False),
    (64, 64, 4, True),      # 16 per group
    (64, 64, 8, False),
])
def test_nchwc_rule(cin, cout, groups, blocked):
    assert nchwc_ok(Conv2d(cin, cout, 3, 1, groups), 16) is blocked
    assert nchwc_ok(Conv2d(cin, cout, 3, 1, groups), 0) is False


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_node_in_exactly_one_kernel_and_macs_add_up(path):
    g = load_spec(path).compile()
    ks = kernels(g)
    covered = [n for k in ks for n in k.nodes]
    assert sorted(covered) == sorted(n.name for n in g if n.kind != "input")
    assert sum(k.macs for k in ks) == cost(g).totals.madds


@pytest.mark.parametrize("name", ["mobilenetv3_small", "rexnet", "mobilenetv2_replication_d",
                                  "mobilenext_variant_c"])
def test_fusion_rules_match_onnxruntime(name):
    """Every node onnxruntime runs maps to one of our kernels, every kernel is run, and
    each conv runs in the layout (NCHWc or plain) the rules predict."""
    pytest.importorskip("onnxruntime")
    g = load_spec(name).compile()
    ks = kernels(g, probes.nchwc_block() or 16)
    runs, seen = ort_kernel_runs(g, ks)
    for domain, op, k in runs:
        if k.type.startswith("conv") and op in ("Conv", "FusedConv") and probes.nchwc_block():
            assert (domain == "com.microsoft.nchwc") == k.type.endswith(".c"), (k.type, op)
    assert seen == {k.name for k in ks}


def _ghost_like(c: int) -> Graph:
    """A 1x1 conv's and a depthwise conv's outputs (``c`` channels each) concatenated and
    read by a 1x1 conv: GhostNet's ghost module."""
    g = Graph("ghost", {"resolution": 28, "channels": 16})
    x = g.add("input", Input((16, 28, 28)))
    x = g.add("s.conv", Conv2d(16, 16, 1, 1, 1, 1, False), [x])
    a = g.add("a.conv", Conv2d(16, c, 1, 1, 1, 1, False), [x])
    b = g.add("b.conv", Conv2d(c, c, 3, 1, c, 1, False), [a])
    y = g.add("cat", Concat(), [a, b])
    y = g.add("c.conv", Conv2d(2 * c, 32, 1, 1, 1, 1, False), [y])
    g.outputs["output"] = g.add("p", GlobalAvgPool(), [y])
    return g


@pytest.mark.parametrize("fill", [True, False])
def test_concat_of_blocked_tensors_stays_blocked_when_they_fill_blocks(fill):
    """onnxruntime concatenates NCHWc tensors in NCHWc when each input's channels fill
    whole blocks, and else reorders each to NCHW and the result back: the fusion (fit
    rules 7 on) says the same; the older fusion reorders every concat."""
    pytest.importorskip("onnxruntime")
    block = probes.nchwc_block()
    if not block:
        pytest.skip("no NCHWc layout on this CPU")
    g = _ghost_like(block if fill else block + 4)
    ks = {k.name: k for k in kernels(g, block)}
    reorders = [op for _, op, _ in optimized_nodes(g) if op.startswith("Reorder")]
    # the input's ReorderInput and the output's ReorderOutput, + 2 out and 1 back
    assert len(reorders) == (2 if fill else 5)
    assert (ks["cat"].layout == "nchwc") == fill
    assert (ks["cat"].reorder_elems == 0) == fill
    assert (ks["c.conv"].reorder_elems == 0) == fill
    old = {k.name: k for k in kernels(g, block, blocked_concat=False)}
    assert old["cat"].layout == "nchw" and old["cat"].reorder_elems > 0
    assert old["c.conv"].reorder_elems > 0


def _replicated(c: int, out: int) -> Graph:
    """A 1x1 conv's ``c`` channels replicated to ``out`` and read by a 1x1 conv (the
    replication note's block)."""
    g = Graph("rep", {"resolution": 28, "channels": 16})
    x = g.add("input", Input((16, 28, 28)))
    x = g.add("s.conv", Conv2d(16, 16, 1, 1, 1, 1, False), [x])
    a = g.add("a.conv", Conv2d(16, c, 1, 1, 1, 1, False), [x])
    y = g.add("rep", Replicate(out), [a])
    y = g.add("c.conv", Conv2d(out, 32, 1, 1, 1, 1, False), [y])
    g.outputs["output"] = g.add("p", GlobalAvgPool(), [y])
    return g


@pytest.mark.parametrize("channels, copies, reorders", [
    (1, 1, 2),        # one copy: a one-input blocked Concat
    (1, 2, 2),        # whole blocks, whole copies: a blocked Concat
    (1, 2.5, 4),      # whole blocks, a cut-short copy: Concat, ReorderOutput, Slice, back
    (1.5, 2, 4),      # part of a block: reordered out, concatenated, back
])
def test_replicate_of_a_blocked_tensor_is_laid_out_as_onnxruntime_runs_it(channels, copies,
                                                                          reorders):
    """A replicate (a Concat of copies in the ONNX file) keeps the blocked layout when its
    input's channels fill whole blocks; a cut-short last copy reorders the copies for the
    Slice. The fusion (fit rules 8 on) says where the reorders are and how big; the older
    fusion reorders the input of every replicate."""
    pytest.importorskip("onnxruntime")
    block = probes.nchwc_block()
    if not block:
        pytest.skip("no NCHWc layout on this CPU")
    c = int(block * channels)
    out = int(c * copies)
    g = _replicated(c, out)
    ks = {k.name: k for k in kernels(g, block)}
    ops = [op for _, op, _ in optimized_nodes(g)]
    assert len([op for op in ops if op.startswith("Reorder")]) == reorders
    rep, reader = ks["rep"], ks["c.conv"]
    hw = 28 * 28
    if reorders == 2:
        assert rep.layout == "nchwc" and rep.reorder_elems == 0 == reader.reorder_elems
    elif channels == 1:
        assert "Slice" in ops
        assert rep.layout == "nchw" and rep.reorder_elems == 3 * c * hw
        assert reader.reorder_elems == out * hw
        # the profiled reorders go where these features are: the copies' ReorderOutput
        # to the replicate (its Slice reads it), the ReorderInput to the reading conv
        from archspec.latency.timing import session

        readers: dict = {}
        session(g, 1, profile=False, readers=readers)
        owner = {n: k.name for k in ks.values() for n in k.nodes}
        assert sorted(owner[attribution.ir_name(r, owner)] for r in readers.values()) == \
            ["c.conv", "rep", "s.conv"]   # and the input's ReorderInput: the stem
    else:
        assert rep.layout == "nchw" and rep.reorder_elems == c * hw
        assert reader.reorder_elems == out * hw
    old = {k.name: k for k in kernels(g, block, blocked_replicate=False)}
    assert old["rep"].layout == "nchw" and old["rep"].reorder_elems == c * hw
    assert old["c.conv"].reorder_elems == out * hw


def _bn_after(c: int, out: int, act: str | None, source: str = "replicate") -> Graph:
    """An unfolded BN (+ ``act``) on ``out`` channels read by a depthwise and a 1x1 conv;
    its input a replicate of a 1x1 conv's ``c`` channels (the replication note's block)
    or the add of two 1x1 convs' ``c`` channels (``source="add"``, ``out`` = ``c``)."""
    g = Graph("bn", {"resolution": 28, "channels": 16})
    x = g.add("input", Input((16, 28, 28)))
    x = g.add("s.conv", Conv2d(16, 16, 1, 1, 1, 1, False), [x])
    a = g.add("a.conv", Conv2d(16, c, 1, 1, 1, 1, False), [x])
    if source == "add":
        b = g.add("b.conv", Conv2d(16, c, 1, 1, 1, 1, False), [x])
        y = g.add("src", Add(), [a, b])
    else:
        y = g.add("src", Replicate(out), [a])
    y = g.add("bn", BatchNorm(out), [y])
    if act:
        y = g.add("act", Activation(act), [y])
    y = g.add("dw", Conv2d(out, out, 3, 1, out, 1, False), [y])
    y = g.add("c.conv", Conv2d(out, 32, 1, 1, 1, 1, False), [y])
    g.outputs["output"] = g.add("p", GlobalAvgPool(), [y])
    return g


_ORT_ACT = {"relu": ["Relu"], "relu6": ["Clip"], "hswish": ["HardSigmoid", "Mul"],
            "sigmoid": ["Sigmoid"], "swish": ["QuickGelu"], "leaky_relu": ["LeakyRelu"],
            "elu": ["Elu"], "softplus": ["Softplus"], "hsigmoid": ["HardSigmoid"],
            "gelu": ["Gelu"]}


@pytest.mark.parametrize("act", [None, "relu", "relu6", "hswish", "sigmoid", "swish",
                                 "leaky_relu", "elu", "softplus", "hsigmoid", "gelu"])
@pytest.mark.parametrize("blocks, copies, source", [
    (1, 2, "replicate"),      # a blocked input: a blocked BN (depthwise conv)
    (1.5, 6, "replicate"),    # a plain input (24 -> 144 at block 16): plain BN, aligned
    (1, 2.5, "replicate"),    # a cut-short replicate: plain
    (1.25, 1, "add"),         # a blocked add of 20 channels: blocked, not aligned
])
def test_an_unfolded_bn_is_laid_out_as_onnxruntime_runs_it(blocks, copies, source, act):
    """onnxruntime runs an unfolded BN blocked when its input is (whatever its channels),
    fusing relu, sigmoid, hswish into it; relu6 and leaky_relu run in NCHW (reordered out
    and back), swish as a blocked kernel of its own. The fusion (fit rules 9 on) has
    the same kernels and reorders; the older one blocked a BN by its channels."""
    pytest.importorskip("onnxruntime")
    block = probes.nchwc_block()
    if not block:
        pytest.skip("no NCHWc layout on this CPU")
    c = int(block * blocks)
    g = _bn_after(c, int(c * copies), act, source)
    ks = kernels(g, block)
    owner = {n: k for k in ks for n in k.nodes}
    ops = [op for _, op, _ in optimized_nodes(g)]
    blocked = "BatchNormalization" not in ops
    assert owner["bn"].type == ("bn.c" if blocked else "bn.p")
    assert owner["bn"].layout == ("nchwc" if blocked else "nchw")
    if act:   # run apart by onnxruntime <=> a kernel of its own here
        assert (_ORT_ACT[act][0] in ops) == (owner["act"] is not owner["bn"]), ops
    # one reorder per kernel that reorders an input (the first conv's: the image's
    # ReorderInput), plus a final ReorderOutput of the pooled output when the tail runs
    # blocked (in the network's overhead). At block 8 (AVX2: a Zen 1 EPYC, 2026-12-04)
    # the add of 10 channels leaves a plain depthwise conv and a plain tail: no final one
    tail = ops[-1] == "ReorderOutput"
    assert sum(op.startswith("Reorder") for op in ops) == \
        tail + sum(k.reorder_elems > 0 for k in ks), \
        (ops, [(k.name, k.reorder_elems) for k in ks])
    old = {n: k for k in kernels(g, block, blocked_bn_acts=False) for n in k.nodes}
    assert old["bn"].type == ("bn.c" if c * copies % block == 0 else "bn.p")


@pytest.mark.parametrize("graph, rules, moved", [
    ("ghost", 6, ["cat", "c.conv"]), ("ghost", 7, []),
    ("replicate", 7, ["rep", "c.conv"]), ("replicate", 6, ["rep", "c.conv"]),
    ("replicate", 8, []),
])
def test_older_rules_are_fitted_on_the_older_fusions_features(graph, rules, moved):
    """fitting.build(rules < FIT_RULES) fits the features of the fusion those rules had
    (before 7 every concat reorders, before 8 every replicate), not the raw samples'
    (this fusion's): the blocked copy and the conv reading it differ there, every other
    kernel is the same."""
    g = {"ghost": _ghost_like(16), "replicate": _replicated(16, 32)}[graph]
    ks = kernels(g, 16)
    raw = {"samples": [{"type": k.type, "features": k.features(), "net": 0, "us": 1.0}
                       for k in ks],
           "networks_ir": rawfile.networks_record([g], "measured"), "nchwc_block": 16,
           "fusion": {"blocked_bn_acts": False}}     # no BN here: measured before rules 9
    older = fitting._older_fusion(raw, rules)
    assert [k.name for k, s, o in zip(ks, raw["samples"], older)
            if s["features"] != o["features"]] == moved
    assert [o["type"] for o in older] == [s["type"] for s in raw["samples"]]
    if moved:
        assert older[[k.name for k in ks].index(moved[0])]["features"]["reorder_elems"] > 0


def test_older_rules_cannot_refit_measurements_fused_by_rules_9():
    """Fit rules 9 change which nodes a BN kernel covers: measurements attributed so
    cannot be refitted by older rules (a clear error, not a silent misfit); older
    measurements (no ``fusion`` recorded) are refitted by rules 9 with their own BN
    fusion."""
    g = _bn_after(24, 144, "relu")
    raw = {"samples": [{"type": k.type, "features": k.features(), "net": 0, "us": 1.0}
                       for k in kernels(g, 16)],
           "networks_ir": rawfile.networks_record([g], "measured"), "nchwc_block": 16,
           "fusion": {"blocked_bn_acts": True}}
    with pytest.raises(ValueError, match="fit rules 8 cannot refit these measurements"):
        fitting._older_fusion(raw, 8)
    assert rawfile.raw_fusion({}) == {"blocked_bn_acts": False}
    assert rawfile.raw_fusion(raw) == {"blocked_bn_acts": True}
    with pytest.raises(ValueError, match="blocked_bn_acts"):
        rawfile.raw_fusion({"fusion": {"blocked_bn_acts": "yes"}})
    # the model takes the measurements' BN fusion, the rules' others
    samples = [dict(s, us=1.0 + i) for i, s in enumerate(raw["samples"] * 8)]
    old = fit(samples, [], rules=9, fusion={"blocked_bn_acts": False})
    assert old.fusion() == {"blocked_concat": True, "blocked_replicate": True,
                            "blocked_bn_acts": False}
    assert fit(samples, [], rules=9).fusion()["blocked_bn_acts"]
    with pytest.raises(ValueError, match="not a fusion flag"):
        fit(samples, [], fusion={"act_pass": False})


@pytest.mark.parametrize("flag, node", [("blocked_concat", "cat"),
                                         ("blocked_replicate", "rep"),
                                         ("blocked_bn_acts", "bn")])
def test_a_profile_fuses_as_its_model_was_fitted(flag, node):
    """A profile fitted before fit rules 7 / 8 / 9 predicts the older fusion (every
    concat / replicate reorders, a BN of aligned channels is blocked: its predictions do
    not move); one fitted since, the newer one; the flag survives the file, and each
    fusion flag is the model's own."""
    profile = load(PROFILES / "cpu-ort-1t.json")    # fit rules 1, NCHWc block 16
    assert profile.fitted_with.get("fit_rules", 1) < 7 and not getattr(profile.model, flag)
    assert profile.nchwc_block == 16
    g = {"cat": _ghost_like(16), "rep": _replicated(16, 32),
         "bn": _bn_after(24, 144, "relu")}[node]
    k = {k.name: k for k in profile.kernels(g)}[node]
    assert (k.layout == "nchw") == (node != "bn") and k.reorder_elems
    setattr(profile.model, flag, True)
    k = {k.name: k for k in profile.kernels(g)}[node]
    assert (k.layout == "nchwc") == (node != "bn") and not k.reorder_elems
    again = LatencyModel.from_dict(json.loads(json.dumps(profile.model.to_dict())))
    assert again.fusion() == {f: f == flag for f in FUSION_FLAGS}


@pytest.mark.parametrize("change, says", [
    (lambda d: d["model"].update(conv_taps="no"), "true or false expected"),
    (lambda d: d["model"].pop("conv_taps"), "coefficients for edge_macs without conv_taps"),
    (lambda d: d["model"].update(act_pass=None), "true or false expected"),
    (lambda d: d["model"].update(features=d["model"]["features"][:9],
                                 coef={t: c[:9] for t, c in d["model"]["coef"].items()}),
     "conv_taps without the feature edge_macs"),
    (lambda d: d["model"].update(coef={t: c[:9] for t, c in d["model"]["coef"].items()}),
     "coefficients for 11 features expected"),
    (lambda d: d["fitted_with"].update(fit_rules=99), "newer than this archspec's"),
    (lambda d: d["fitted_with"].update(fit_rules=2), "do not match fit rules 2"),
    (lambda d: d["model"].update(blocked_concat=not d["model"].get("blocked_concat", False)),
     "flags blocked_concat do not match"),
    (lambda d: d["model"].update(
        blocked_replicate=not d["model"].get("blocked_replicate", False)),
     "flags blocked_replicate do not match"),
    (lambda d: d["model"].update(blocked_replicate=1), "true or false expected"),
    (lambda d: d["fitted_with"].pop("fit_rules"), "fit_rules is not recorded"),
    (lambda d: (d["fitted_with"].update(fit_rules=99),
                d["model"]["features"].append("a_later_feature")), "newer than this"),
    (lambda d: d.update(model=[]), "broken profile model"),
])
def test_a_profile_whose_flags_or_rules_do_not_hold_is_refused(tmp_path, change, says):
    d = json.loads((PROFILES / "cpu-ort-1t-xeon.json").read_text())
    change(d)
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(ArchspecError, match=says):
        load(tmp_path / "p.json")


def test_random_calibration_networks_are_seeded_and_cover_the_kernel_types():
    a, b = nets.random_network(3), nets.random_network(3)
    assert [(n.name, n.shape) for n in a] == [(n.name, n.shape) for n in b]
    types = {k.type.split(".")[0] + ("." + k.type.split(".")[1] if k.type.startswith("conv")
                                     else "")
             for i in range(40) for k in kernels(nets.random_network(i))}
    assert {"conv.dw", "conv.pw", "conv.full", "conv.group", "se", "add_partial", "act",
            "bn", "replicate", "pool", "linear", "concat"} <= types


def test_variant_networks_cover_every_shipped_spec_apart_from_the_validation_variants():
    from archspec.analysis.sweep import random_variants, vary
    from archspec.errors import SpecError
    from archspec.spec import load
    from archspec.spec.loader import SHIPPED

    specs = sorted(SHIPPED.glob("*.yaml"))
    graphs = nets.variant_networks(len(specs))
    covered = {g.name for g in graphs}
    assert len(covered) == len(graphs)          # one per spec
    # every spec is covered but those whose heads refuse the drawn variant (the Cityscapes
    # LR-ASPP gate's 49x49 window at a drawn resolution below 784): left out, not an error
    for i, p in enumerate(specs):
        s = load(p)
        if s.name in covered:
            continue
        assert s.heads, f"{s.name}: a classification spec left out"
        (v,) = random_variants(1, nets.VARIANT_SEED + i, s)
        with pytest.raises(SpecError, match="does not fit"):
            vary(s, v).compile()
    again = nets.variant_networks(len(specs))
    assert [[(n.name, n.shape) for n in g] for g in graphs] == \
        [[(n.name, n.shape) for n in g] for g in again]
    # benchmarks/latency_check.py validates on random_variants(n, seed + i), seed 0 by
    # default: none of its models is a calibration variant
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "latency_check", Path(__file__).resolve().parent.parent / "benchmarks" /
        "latency_check.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    assert 'ap.add_argument("--seed", type=int, default=0)' in Path(spec.origin).read_text()
    validation = {n for n, _ in lc.models(102, 0)}
    for i, p in enumerate(specs):
        s = load(p)
        assert not set(random_variants(8, i, s)) & set(random_variants(8, nets.VARIANT_SEED + i,
                                                                       s))
        for v in random_variants(8, nets.VARIANT_SEED + i, s):
            assert f"{s.name} [{v.label()}]" not in validation


def _fake_raw(networks=3, variants=2, blocked_bn_acts=True):
    """What calibrate() returns, with made-up times (nothing is measured);
    ``blocked_bn_acts`` False: a file from before fit rules 9 (no ``fusion``)."""

    graphs = nets.calibration_graphs(networks, variants, 0)
    samples, walls = [], []
    for i, g in enumerate(graphs):
        ks = kernels(g, blocked_bn_acts=blocked_bn_acts)
        for k in ks:
            samples.append({"type": k.type, "features": k.features(), "net": i,
                            "us": round(2.0 + k.macs / 1e4 + k.in_elems / 1e3, 4)})
        walls.append(sum(s["us"] for s in samples if s["net"] == i) * 1.1)
    return {"samples": samples, "overhead": [(1, 0.0)] * len(graphs), "walls": walls,
            "networks_ir": rawfile.networks_record(graphs, "measured"),
            "nchwc_block": 16, "l2_bytes": 1 << 20, "networks": networks,
            "variants": variants, "seed": 0, "threads": 1, "repeats": 12, "rounds": 3,
            "warmup": 2, "seconds": 1.0, "round_spread_median": 0.01,
            "round_spread_p90": 0.02, "profiler_us_per_node": 1.0, "min_round_ms": 20.0,
            "versions": {"onnxruntime": "1.0"}, "machine": {"cpu": "test"},
            "sampler": nets.SAMPLER,
            **({"fusion": {"blocked_bn_acts": True}} if blocked_bn_acts else {})}


def _graph_signature(g):
    """A graph up to node names: ops, shapes, wiring, outputs and taps."""
    at = {n.name: i for i, n in enumerate(g)}
    return ([(n.op, n.shape, [at[x] for x in n.inputs]) for n in g],
            {k: at[v] for k, v in g.outputs.items()}, {k: at[v] for k, v in g.taps.items()})


def test_a_network_record_rebuilds_the_same_graph():
    from archspec.latency.raw import graph_from_record, networks_record

    graphs = [load_spec("mobilenetv3_small").compile(), load_spec("rexnet").compile(),
              nets.random_network(7)]
    record = json.loads(json.dumps(networks_record(graphs, "test")))
    for g, rec in zip(graphs, record["graphs"]):
        back = graph_from_record(rec, record["ops"])
        assert back.name == g.name and _graph_signature(back) == _graph_signature(g)
        assert [k.features() for k in kernels(back)] == [k.features() for k in kernels(g)]


def _spec_dir_with_a_new_spec(tmp_path):
    """The shipped specs plus one more, named to sort first (variants are drawn per spec
    in name order, so every variant network moves)."""
    import shutil

    d = tmp_path / "specs"
    shutil.copytree(SHIPPED, d)
    (d / "aaa_new.yaml").write_text((SHIPPED / "mobilenetv2.yaml").read_text()
                                    .replace("name: mobilenetv2", "name: aaa_new"))
    return d


def test_a_new_shipped_spec_does_not_invalidate_raw_measurements(tmp_path, monkeypatch):
    """--from-raw reads the networks recorded in the raw file, never the current specs;
    an older file without the record is rebuilt from its seeds once and can be
    rewritten with the record."""
    import archspec.spec.loader as loader

    raw = _fake_raw()
    rawfile.save_raw(raw, tmp_path / "raw.json")
    legacy = {k: v for k, v in json.loads((tmp_path / "raw.json").read_text()).items()
              if k != "networks_ir"}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    upgraded = rawfile.load_raw(tmp_path / "old.json")        # the specs as they are now
    assert "rebuilt from the seeds" in upgraded["networks_ir"]["source"]
    assert rawfile.digest(upgraded) == rawfile.digest(raw)
    rawfile.save_raw(upgraded, tmp_path / "old.json")
    n_specs = len(list(SHIPPED.glob("*.yaml")))
    monkeypatch.setattr(loader, "SHIPPED", _spec_dir_with_a_new_spec(tmp_path))
    # the new spec is drawn now: variants rebuilt from the seeds would differ
    assert "aaa_new" in [g.name for g in nets.variant_networks(n_specs + 1)]
    for path in ("raw.json", "old.json"):
        back = rawfile.load_raw(tmp_path / path)
        assert [s["features"] for s in back["samples"]] == \
            [s["features"] for s in raw["samples"]]
    (tmp_path / "legacy.json").write_text(json.dumps(legacy))
    with pytest.raises(ArchspecError, match="rebuilt from the seeds .* do not match"):
        rawfile.load_raw(tmp_path / "legacy.json")   # why the record is needed


def test_raw_measurements_roundtrip_with_features_from_the_recorded_networks(tmp_path):
    raw = _fake_raw()
    rawfile.save_raw(raw, tmp_path / "raw.json")
    back = rawfile.load_raw(tmp_path / "raw.json")
    assert [s["features"] for s in back["samples"]] == [s["features"] for s in raw["samples"]]
    assert [s["us"] for s in back["samples"]] == pytest.approx([s["us"] for s in raw["samples"]])
    assert rawfile.digest(back) == rawfile.digest(raw)
    doc = json.loads((tmp_path / "raw.json").read_text())
    assert rawfile.digest({**doc, "samples": [{**doc["samples"][0], "us": 1.0}]
                       + doc["samples"][1:]}) != rawfile.digest(raw)
    doc["samples"][3]["type"] = "conv.pw.zz"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ArchspecError, match="do not match"):
        rawfile.load_raw(tmp_path / "bad.json")
    doc["samples"][3]["type"] = raw["samples"][3]["type"]
    ir = doc["networks_ir"]
    nodes = ir["graphs"][0]["nodes"]
    for broken in ({**ir, "format": "x"},
                   {**ir, "graphs": [{**ir["graphs"][0], "nodes": [[5, *nodes[1][1:]]]}]},
                   {**ir, "graphs": [{**ir["graphs"][0], "nodes": nodes[:1] + [[1, "weird"]]}]},
                   {**ir, "ops": {**ir["ops"], "conv2d": ["in_channels", "colour"]}},
                   {**ir, "graphs": [{**ir["graphs"][0], "outputs": {"output": 10 ** 6}}]}):
        (tmp_path / "bad.json").write_text(json.dumps({**doc, "networks_ir": broken}))
        with pytest.raises(ArchspecError, match="malformed"):
            rawfile.load_raw(tmp_path / "bad.json")
    del nodes[-2:]                                    # a network that lost its classifier
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ArchspecError, match="malformed|do not match"):
        rawfile.load_raw(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ArchspecError, match="not raw calibration"):
        rawfile.load_raw(tmp_path / "other.json")
    for bad in ({"schema": rawfile.RAW_SCHEMA}, {**doc, "networks": -3, "samples": []},
                {**doc, "seconds": "x"}, {**doc, "samples": [{"net": 0}]}):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ArchspecError, match="malformed|do not match"):
            rawfile.load_raw(tmp_path / "bad.json")


def test_a_raw_file_with_a_broken_fingerprint_is_refused_before_a_refit(tmp_path):
    """A refit copies the fingerprint into the profile, which could not then be read."""
    good = _fake_raw()
    good["fingerprint"] = {"kernels": {"conv1x1": 1.0}, "env": {"threads": 1},
                           "network": {"ms": 1.7}}
    rawfile.save_raw(good, tmp_path / "raw.json")
    rawfile.load_raw(tmp_path / "raw.json")
    for broken in ({"ms": 0}, {"ms": "1.7"}):
        rawfile.save_raw({**good, "fingerprint": {**good["fingerprint"], "network": broken}},
                         tmp_path / "raw.json")
        with pytest.raises(ArchspecError, match="malformed raw .*broken machine fingerprint"):
            rawfile.load_raw(tmp_path / "raw.json")
    r = _run("calibrate", "--from-raw", str(tmp_path / "raw.json"), "--trees", "0",
             "-o", str(tmp_path / "p.json"))
    assert r.returncode == 2 and "fingerprint" in r.stderr and not (tmp_path / "p.json").exists()


def test_calibrate_from_raw_fits_a_profile_without_measuring(tmp_path):
    rawfile.save_raw(_fake_raw(), tmp_path / "raw.json")
    r = _run("calibrate", "--from-raw", str(tmp_path / "raw.json"), "--trees", "0",
             "-o", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    p = json.loads((tmp_path / "p.json").read_text())
    assert p["calibration"]["variants"] == 2 and p["model"]["trees"] == {}
    assert p["calibration"]["raw_sha256"] == rawfile.digest(_fake_raw())
    assert p["versions"] == {"onnxruntime": "1.0"} and p["machine"] == {"cpu": "test"}
    assert p["fitted_with"]["numpy"] and p["fitted_with"]["blas"]
    assert p["model"]["blocked_bn_acts"] is True
    # a file measured before fit rules 9 keeps the BN fusion it was attributed with
    old = _fake_raw(blocked_bn_acts=False)
    assert [s["type"] for s in old["samples"]] != [s["type"] for s in _fake_raw()[
        "samples"]]                                                    # it matters here
    rawfile.save_raw(old, tmp_path / "old.json")
    r = _run("calibrate", "--from-raw", str(tmp_path / "old.json"), "--trees", "0",
             "-o", str(tmp_path / "old-p.json"))
    assert r.returncode == 0, r.stderr
    q = json.loads((tmp_path / "old-p.json").read_text())
    assert "blocked_bn_acts" not in q["model"] and q["model"]["blocked_concat"] is True
    assert q["fitted_with"]["fit_rules"] == p["fitted_with"]["fit_rules"]   # today's rules
    assert load(tmp_path / "old-p.json").model.blocked_bn_acts is False
    r = _run("calibrate", "--from-raw", str(tmp_path / "missing.json"), "-o",
             str(tmp_path / "q.json"))
    assert r.returncode == 2 and not (tmp_path / "q.json").exists()
    r = _run("calibrate", "--from-raw", str(tmp_path / "raw.json"), "--seed", "3", "-o",
             str(tmp_path / "q.json"))
    assert r.returncode == 2 and "--seed" in r.stderr and not (tmp_path / "q.json").exists()


# A refit of the shipped raw file elsewhere (another CPU's BLAS and SIMD kernels, another
# release of scikit-learn or numpy) is another draw of the boosted trees: the last bits of
# the linear fit flip near-tied splits. How far that moves the 46 shipped specs was
# measured (docs/latency.md, "Raw measurements and refits"): refits with tree seeds 0-4
# differ pairwise by a median of at most 0.65%, a 90th percentile of at most 2.5%, and at
# most 12.5% on one spec (the full-size segmentation models, which the trees extrapolate
# to); the Zen 3 profiles refitted on an AMX Xeon (2026-12-03) moved by medians of
# 0.19-0.26%, at most 8.1%. The bounds sit above every pair seen; the median and the 90th
# percentile are the ones a drifting fit would cross. Each profile is refitted with the
# fitting rules that made it (fitted_with.fit_rules; none recorded: rules 1), so on its
# own host the refit is bit for bit.
REFIT_MAX_REL = 0.15
REFIT_P90_REL = 0.035
REFIT_MEDIAN_REL = 0.0075


@pytest.mark.parametrize("name", sorted(p.name.removesuffix(".raw.json")
                                         for p in PROFILES.glob("*.raw.json")))
def test_shipped_profile_is_the_fit_of_the_shipped_measurements(name):
    """profiles/NAME.json is `calibrate --from-raw profiles/NAME.raw.json`: always linked
    to those measurements (digest, seeds, counts, measuring setup) and within the refit
    tolerance of a refit here; bit for bit the refit where the fit environment (fitting
    libraries, BLAS kernels, Python, CPU) is the one recorded."""
    import statistics

    pytest.importorskip("sklearn")
    root = PROFILES
    shipped = load(root / f"{name}.json")
    raw = rawfile.load_raw(root / f"{name}.raw.json")
    c = shipped.calibration
    assert c["raw_sha256"] == rawfile.digest(raw)
    assert (c["networks"], c["variants"], c["seed"], c["kernel_samples"]) == \
        (raw["networks"], raw["variants"], raw["seed"], len(raw["samples"]))
    assert len(raw["networks_ir"]["graphs"]) == raw["networks"] + raw["variants"]
    assert (shipped.versions, shipped.machine) == (raw["versions"], raw["machine"])
    assert {"onnxruntime", "onnx", "torch", "numpy"} <= set(shipped.versions)
    assert {"scikit-learn", "numpy", "scipy", "blas", "cpu"} <= set(shipped.fitted_with)
    rules = shipped.fitted_with.get("fit_rules", 1)     # the rules that fitted it
    refit = fitting.build(raw, rules=rules)
    assert refit.model.act_in_cache == shipped.model.act_in_cache == (rules >= 3)
    graphs = [load_spec(p).compile() for p in SPECS]
    moved = [abs(chk.predict(g, refit).total_ms / chk.predict(g, shipped).total_ms - 1)
             for g in graphs]
    p90 = sorted(moved)[int(0.9 * (len(moved) - 1))]
    assert max(moved) <= REFIT_MAX_REL and p90 <= REFIT_P90_REL, moved
    assert statistics.median(moved) <= REFIT_MEDIAN_REL, moved
    if shipped.fitted_with == fitting.fit_environment(rules):
        assert json.loads(json.dumps(refit.model.to_dict())) == shipped.model.to_dict()


def test_fit_environment_names_the_fitting_libraries_and_blas():
    import inspect

    import numpy

    env = fitting.fit_environment()
    assert env["numpy"] == numpy.__version__ and "scikit-learn" in env and env["python"]
    assert env["blas"] and all(isinstance(b, str) for b in env["blas"])
    # the fitting rules' version: a profile fitted by older rules is never taken for
    # this archspec's fit (its refit is compared within the tolerance only)
    assert env["fit_rules"] == fitting.FIT_RULES >= 3
    assert "fit_rules" not in fitting.fit_environment(1)     # as rules 1 recorded it
    assert inspect.signature(fit).parameters["rules"].default == fitting.FIT_RULES


# ---- attribution of profiler events ----------------------------------------------------------
def _trace(runs):
    """A fake onnxruntime profile: runs is a list of [(node name, dur)]."""
    events, ts = [], 0
    for nodes in runs:
        start = ts
        for name, dur in nodes:
            events.append({"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur})
            ts += dur + 1
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": ts - start})
        ts += 5
    return events


def test_attribute_charges_reorders_forward_and_helpers_backward():
    owner = {"a.conv": 0, "a.bn": 0, "b.act": 1}
    run = [("a.bn_nchwc", 10), ("", 2), ("ReorderOutput_token_1", 3),
           ("b.act/QuickGeluFusion/", 7), ("ReorderOutput", 4)]
    events = _trace([run, run, [(n, d * 2) for n, d in run]])
    out = attribution.attribute(events, owner, warmup=1)
    assert out == [{0: 12, 1: 14}, {0: 24, 1: 28}]


def test_attribute_charges_a_reorder_to_the_kernel_that_reads_it():
    """A reorder onnxruntime runs ahead of its reader (the ghost module's schedule: the
    1x1 conv, its ReorderOutput, the depthwise conv, its ReorderOutput, the Concat) is
    the reader's; one without a known reader goes forward as before."""
    owner = {"a.conv": 0, "b.conv": 1, "cat": 2, "c.conv": 3}
    run = [("a.conv_nchwc", 10), ("ReorderOutput", 3), ("b.conv_nchwc", 7),
           ("ReorderOutput_token_1", 4), ("cat", 5), ("ReorderInput_token_2", 6),
           ("c.conv_nchwc", 20)]
    events = _trace([run, run])
    readers = {"ReorderOutput": "cat", "ReorderOutput_token_1": "cat"}
    assert attribution.attribute(events, owner, 1, readers=readers) == \
        [{0: 10, 1: 7, 2: 12, 3: 26}]
    assert attribution.attribute(events, owner, 1) == [{0: 10, 1: 10, 2: 9, 3: 26}]


def test_reorder_readers_of_onnxruntimes_optimised_graph():
    """The ghost module with channels that do not fill blocks: its two ReorderOutputs are
    read by the Concat, the ReorderInput after it by the next conv; the graph output's
    ReorderOutput has no reader."""
    pytest.importorskip("onnxruntime")
    block = probes.nchwc_block()
    if not block:
        pytest.skip("no NCHWc layout on this CPU")
    from archspec.latency.timing import session

    g = _ghost_like(block + 4)
    readers: dict = {}
    session(g, 1, profile=False, readers=readers)
    owner = {n: j for j, k in enumerate(kernels(g, block)) for n in k.nodes}
    got = sorted(attribution.ir_name(r, owner) for r in readers.values())
    assert got == ["c.conv", "cat", "cat", "s.conv"]   # the input's ReorderInput: the stem


def test_ir_name_strips_onnxruntime_suffixes():
    known = {"s.b.add", "s.bn", "r.rep.bn"}
    assert attribution.ir_name("s.b.add.tail/GatherSliceToSplitFusion", known) == "s.b.add"
    assert attribution.ir_name("s.bn_nchwc_kernel_time", known) == "s.bn"
    assert attribution.ir_name("r.rep.bn_bn_nchwc", known) == "r.rep.bn"
    assert attribution.ir_name("ReorderInput_token_3", known) is None


# ---- model -----------------------------------------------------------------------------------
def _samples(coef, n=40, type_="conv.pw.c", noise=0.0, seed=0):
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = {"macs": rng.uniform(1e5, 5e7), "in_elems": rng.uniform(1e3, 1e6),
             "out_elems": rng.uniform(1e3, 1e6), "params": rng.uniform(1e2, 1e5),
             "reorder_elems": rng.choice((0.0, rng.uniform(1e3, 1e5))),
             "act": rng.choice((0, 1, 2))}
        us = sum(c * x for c, x in zip(coef, row(f))) * (1 + rng.uniform(-noise, noise))
        out.append({"type": type_, "features": f, "us": us})
    return out


def test_fit_recovers_known_coefficients_and_rejects_outliers():
    coef = [3.0, 20.0, 5.0, 2.0, 0.0, 40.0, 0.0, 0.0, 4.0, 0.0, 0.0]   # act_elems: 4 us/M
    samples = _samples(coef, type_="conv.dw.k3s1.c")
    samples[0] = {**samples[0], "us": samples[0]["us"] * 5}    # a preempted measurement
    model = fit(samples, [(10, 50.0), (20, 100.0), (40, 200.0)])
    got = model.coef["conv.dw.k3s1.c"]
    assert got == pytest.approx(coef, rel=1e-3, abs=1e-3)
    assert model.stats["conv.dw.k3s1.c"]["outliers"] == 1
    # only depthwise convs price the activation (model.ACT_TYPES): a pointwise conv's
    # act_elems coefficient is held at 0 even when its times carry an activation cost
    pw = fit(_samples(coef), [])
    assert pw.coef["conv.pw.c"][8] == 0.0
    assert model.overhead == pytest.approx((0.0, 5.0))


def test_fit_coefficients_are_non_negative_and_sparse_types_fall_back():
    samples = _samples([3.0, 20.0, 0, 0, 0, 0, 0, 0], noise=0.05) + \
        _samples([1.0, 30.0, 0, 0, 0, 0, 0, 0], n=3, type_="conv.pw.p")
    model = fit(samples, [])
    assert all(c >= 0 for cs in model.coef.values() for c in cs)
    assert "conv.pw.p" not in model.coef          # 3 samples: too few
    assert model.model_for("conv.pw.p") == "conv.pw"
    assert model.model_for("linear") == "*"
    assert ancestors("conv.dw.k3s1.c") == ["conv.dw.k3s1.c", "conv.dw.k3s1", "conv.dw",
                                           "conv", "*"]


def test_conv_taps_split_a_blocked_convs_macs_as_onnxruntime_computes_them():
    from archspec.ir.graph import Graph
    from archspec.ir.ops import Conv2d, Input
    from archspec.latency.kernels import conv_taps

    def taps(h, cin, cout, k=3, s=1, d=1, groups=1):
        g = Graph("t", {"resolution": h, "channels": cin})
        x = g.add("input", Input((cin, h, h)))
        g.outputs["output"] = g.add("c", Conv2d(cin, cout, k, s, groups, d), [x])
        (ker,) = kernels(g, 16)
        return ker

    # 3x3, dilation 1 on 33 x 33: the 31 inner columns run the fast loop over the rows
    # inside (97 of 99 row taps); the 2 border columns their 2 taps inside
    k = taps(33, 256, 256)
    assert k.type == "conv.full.c"
    assert k.taps == pytest.approx((97 / 99 * 31 / 33, 97 / 99 * 4 / 99))
    # DeepLabv3's ASPP: rate 36 on 33 x 33 leaves only the centre tap inside, on the edge
    # path; rate 12 two thirds of the rows and columns
    assert taps(33, 960, 256, d=36).taps == pytest.approx((0.0, 1 / 9))
    assert sum(taps(33, 960, 256, d=12).taps) == pytest.approx((75 / 99) ** 2)
    # TensorFlow "same" padding (bottom / right only) and a stride count their own taps
    op = Conv2d(16, 16, 3, 2, pad_mode="same")
    inner, edge = conv_taps(op, 8, 8, 4, 4)
    assert (inner, edge) == pytest.approx((11 / 12 * 3 / 4, 11 / 12 * 2 / 12))
    # only blocked full / grouped convs carry taps (depthwise, pointwise and plain-layout
    # convs compute every MAC); features() passes them on, row() reads them only when asked
    assert taps(33, 64, 64, groups=64).taps is None
    assert taps(33, 64, 128, k=1).taps is None
    assert taps(33, 66, 66).taps is None and taps(33, 66, 66).type == "conv.full.p"
    f = k.features()
    assert (f["taps_int"], f["taps_edge"]) == k.taps
    macs = f["macs"] / 1e6
    assert FEATURES[9] == "edge_macs"
    assert row(f)[1] == macs and row(f)[9] == 0.0
    assert row(f, conv_taps=True)[1] == pytest.approx(macs * k.taps[0])
    assert row(f, conv_taps=True)[9] == pytest.approx(macs * k.taps[1])


def test_fit_rules_4_price_edge_taps_and_older_rules_fit_what_they_had():
    import random

    rng = random.Random(1)
    true = [2.0, 10.0, 0, 0, 0, 0, 0, 0, 0, 18.0, 0]   # edge taps: 1.8x the interior
    samples = []
    for _ in range(60):
        inner = rng.uniform(0.0, 1.0)
        f = {"macs": rng.uniform(1e6, 5e8), "in_elems": 1e3, "out_elems": 1e3,
             "params": 10.0, "reorder_elems": 0.0, "act": 0,
             "taps_int": inner, "taps_edge": rng.uniform(0.02, 1.0 - inner)}
        samples.append({"type": "conv.full.c", "features": f,
                        "us": sum(c * x for c, x in zip(true, row(f, conv_taps=True)))})
    new = fit(samples, [])
    assert new.conv_taps and new.to_dict()["conv_taps"] is True
    assert new.coef["conv.full.c"][1] == pytest.approx(10.0, rel=1e-3)
    assert new.coef["conv.full.c"][9] == pytest.approx(18.0, rel=1e-3)
    assert LatencyModel.from_dict(new.to_dict()).conv_taps
    old = fit(samples, [], rules=3)
    assert not old.conv_taps and "conv_taps" not in old.to_dict()
    assert old.coef["conv.full.c"][9] == 0.0
    # the older model reads the MACs whole (not split by taps), and is saved with the
    # features rules 3 fitted (a refit by them writes the file they wrote)
    f0 = samples[0]["features"]
    assert old.linear_us("conv.full.c", f0)[1] == pytest.approx(
        sum(c * x for c, x in zip(old.coef["conv.full.c"], row(f0))))
    assert old.linear_us("conv.full.c", f0)[1] != pytest.approx(
        sum(c * x for c, x in zip(old.coef["conv.full.c"], row(f0, conv_taps=True))))
    assert old.to_dict()["features"] == list(FEATURES[:9])
    assert len(old.to_dict()["coef"]["conv.full.c"]) == 9
    assert new.to_dict()["features"] == list(FEATURES)


def test_activation_pass_follows_onnxruntimes_conv_kernels():
    def conv_kernel(cin, act, groups=1):
        g = Graph("t", {"resolution": 28, "channels": cin})
        x = g.add("input", Input((cin, 28, 28)))
        y = g.add("c.conv", Conv2d(cin, cin, 3 if groups > 1 else 1, 1, groups), [x])
        y = g.add("c.bn", BatchNorm(cin), [y])
        if act:
            y = g.add("c.act", Activation(act), [y])
        g.outputs["output"] = y
        return kernels(g, 16)[0]   # the conv (swish runs as a kernel of its own)

    # blocked: ReLU inside the kernel, every other activation in a pass of its own
    assert conv_kernel(32, "relu").type == "conv.pw.c"
    assert [conv_kernel(32, a).act_pass for a in (None, "relu", "relu6", "leaky_relu",
                                                  "hswish", "swish")] == \
        [False, False, True, True, True, False]   # swish is a kernel of its own
    assert conv_kernel(32, "relu6", groups=32).act_pass      # depthwise too
    # plain: clips as it writes, the dearer activations apart
    assert conv_kernel(18, "relu6").type == "conv.pw.p"
    assert [conv_kernel(18, a).act_pass for a in ("relu", "relu6", "hswish")] == \
        [False, False, True]
    f = conv_kernel(32, "relu6").features()
    assert f["act_pass"] == 1 and "act_pass" not in conv_kernel(32, "relu").features()
    assert FEATURES[10] == "pass_elems"
    assert row(f)[10] == 0.0 and row(f, act_pass=True)[10] == f["out_elems"] / 1e6


def test_fit_rules_5_price_the_activation_pass_and_rules_4_do_not():
    import random

    rng = random.Random(2)
    true = [1.0, 12.0, 0, 30.0, 0, 0, 0, 0, 0, 0, 150.0]
    samples = []
    for _ in range(60):
        f = {"macs": rng.uniform(1e6, 5e7), "in_elems": rng.uniform(1e4, 1e6),
             "out_elems": rng.uniform(1e4, 1e6), "params": 1e3, "reorder_elems": 0.0,
             "act": 1, **({"act_pass": 1} if rng.random() < 0.5 else {})}
        samples.append({"type": "conv.pw.c", "features": f,
                        "us": sum(c * x for c, x in zip(true, row(f, act_pass=True)))})
    new = fit(samples, [])
    assert new.act_pass and LatencyModel.from_dict(new.to_dict()).act_pass
    assert new.coef["conv.pw.c"][10] == pytest.approx(150.0, rel=1e-3)
    old = fit(samples, [], rules=4)
    assert not old.act_pass and old.coef["conv.pw.c"][10] == 0.0
    assert "act_pass" not in old.to_dict()


def test_fit_rules_6_fall_back_to_the_conv_family_in_its_layout():
    """A plain-layout depthwise conv of a kernel size calibration has too few of (MixNet's
    9x9 and 11x11 on odd channel counts) is predicted by the plain depthwise convs, not by
    every depthwise conv of that size or all of them, which are mostly blocked and run
    another algorithm (docs/latency.md, "Layout fallback")."""
    assert ancestors("conv.dw.k9s2.p", layout=True) == [
        "conv.dw.k9s2.p", "conv.dw.p", "conv.dw.k9s2", "conv.dw", "conv", "*"]
    assert ancestors("conv.pw.c", layout=True) == ancestors("conv.pw.c")
    assert ancestors("se", layout=True) == ["se", "*"]
    # blocked ones at 1 us, plain ones at 10 us: the plain family learns the plain time
    samples = _samples([1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], n=30, type_="conv.dw.k3s1.c") + \
        _samples([10.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], n=10, type_="conv.dw.k3s1.p") + \
        _samples([10.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], n=4, type_="conv.dw.k9s2.p")
    f = samples[-1]["features"]
    new = fit(samples, [])
    assert new.model_for("conv.dw.k9s2.p") == "conv.dw.p"
    assert new.linear_us("conv.dw.k9s2.p", f)[1] == pytest.approx(10.0, rel=1e-6)
    old = fit(samples, [], rules=5)
    assert "conv.dw.p" not in old.coef and old.model_for("conv.dw.k9s2.p") == "conv.dw"


def test_spill_features_count_the_working_set_beyond_each_cache_hinge():
    f = {"macs": 0, "in_elems": 600_000, "out_elems": 300_000, "params": 100_000,
         "reorder_elems": 0}
    r = row(f, (500_000, 2_000_000))
    assert FEATURES[6:8] == ("spill_1", "spill_2")
    assert r[6:8] == [pytest.approx(0.5), 0.0]          # 1e6 - 5e5 elements, in millions
    assert row(f)[6:8] == [0.0, 0.0]                      # no hinges: no spill


def test_act_elems_counts_outputs_through_a_dear_activation_only():
    f = {"macs": 10, "in_elems": 600_000, "out_elems": 300_000, "params": 100,
         "reorder_elems": 0}
    assert FEATURES[8] == "act_elems"
    assert row(f)[8] == 0.0                                           # no graph: no act
    assert row({**f, "act": 1})[8] == 0.0                             # relu / relu6: a clip
    assert row({**f, "act": 2})[8] == pytest.approx(0.3)              # hswish
    assert row({**f, "act": 3})[8] == pytest.approx(0.3)              # sigmoid, ...


def test_a_profile_from_before_act_elems_predicts_as_it_did():
    """An 8-feature profile predicts the 8-term sum, hswish kernels included (act_elems
    counts there, with a 0 coefficient); a 9th coefficient would change it."""
    d = fake_profile().model.to_dict()
    d["features"] = d["features"][:8]
    d["coef"] = {k: v[:8] for k, v in d["coef"].items()}
    old = LatencyModel.from_dict(d)
    assert all(len(v) == len(FEATURES) and v[8] == 0.0 for v in old.coef.values())
    ks = kernels(tiny(act="hswish"))
    assert any(row(k.features())[8] > 0 for k in ks)
    pred = old.predict(ks)
    for k, p in zip(ks, pred.kernels):
        t = old.model_for(k.type)
        assert p.us == pytest.approx(sum(c * x for c, x in zip(d["coef"][t],
                                                              row(k.features())[:8])))
    dear = LatencyModel.from_dict({**d, "features": list(FEATURES[:9]),
                                   "coef": {k: v + [50.0] for k, v in d["coef"].items()}})
    assert dear.predict(ks).total_ms > pred.total_ms
    d["features"] = d["features"][:7]
    with pytest.raises(ValueError, match="other features"):
        LatencyModel.from_dict(d)


def test_fit_recovers_a_cache_spill_coefficient():
    import random

    rng = random.Random(1)
    hinges = (400_000, 3_200_000)
    true = [2.0, 10.0, 100.0, 100.0, 0.0, 0.0, 300.0, 0.0, 0.0, 0.0, 0.0]
    samples = []
    for _ in range(60):
        f = {"macs": rng.uniform(1e5, 5e7), "in_elems": rng.uniform(1e4, 2e6),
             "out_elems": rng.uniform(1e4, 2e6), "params": rng.uniform(1e2, 1e4),
             "reorder_elems": 0.0}
        samples.append({"type": "conv.dw.k3s2.c", "features": f,
                        "us": sum(c * x for c, x in zip(true, row(f, hinges)))})
    model = fit(samples, [], hinges=hinges)
    assert model.coef["conv.dw.k3s2.c"] == pytest.approx(true, rel=1e-3, abs=1e-2)
    big = {"macs": 1e6, "in_elems": 3e6, "out_elems": 1e6, "params": 1e3, "reorder_elems": 0}
    assert model.raw_us("conv.dw.k3s2.c", big)[1] == pytest.approx(
        sum(c * x for c, x in zip(true, row(big, hinges))))


def _shape_samples(n=400, seed=0):
    """Pointwise convs whose time per MAC doubles when the channels do not fill a SIMD
    block: what a linear model in MACs and bytes cannot express."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        cin, cout, hw = rng.choice((12, 16, 20, 32, 40, 64)), rng.choice((16, 24, 48, 96)), \
            rng.choice((196, 784, 3136))
        f = {"macs": cin * cout * hw, "in_elems": cin * hw, "out_elems": cout * hw,
             "params": cin * cout, "reorder_elems": 0, "cin": cin, "cout": cout, "hw": hw}
        us = 1.0 + f["macs"] / 1e4 * (1.0 if cin % 16 == 0 else 2.0)
        out.append({"type": "conv.pw.c", "features": f, "us": us, "net": i // 20})
    return out


def test_boosted_trees_learn_what_the_linear_model_misses_and_export_exactly():
    from archspec.latency.model import boost, tree_row

    pytest.importorskip("sklearn")
    samples = _shape_samples()
    linear = fit(samples, [])
    boosted = fit(samples, [], n_trees=60)

    def err(m):
        return sorted(abs(m.raw_us(s["type"], s["features"])[1] / s["us"] - 1)
                      for s in samples)[len(samples) // 2]
    assert err(linear) > 0.15 and err(boosted) < 0.03
    assert boosted.stats["trees"]["within_10pct_boosted"] > 0.95
    # the trees travel as plain lists: a JSON round trip predicts the same
    back = LatencyModel.from_dict(json.loads(json.dumps(boosted.to_dict())))
    for s in samples[:20]:
        assert back.raw_us(s["type"], s["features"])[1] == pytest.approx(
            boosted.raw_us(s["type"], s["features"])[1], rel=1e-6)
    # and the pure-Python evaluation is scikit-learn's own prediction
    assert boosted.stats["trees"]["export_max_abs_diff"] < 1e-5
    # a non-fill channel count gets a larger factor than a full block
    x12 = tree_row("conv.pw.c", {**samples[0]["features"], "cin": 12})
    x16 = tree_row("conv.pw.c", {**samples[0]["features"], "cin": 16})
    assert math.exp(boost(boosted.trees, x12) - boost(boosted.trees, x16)) > 1.3


def test_malformed_trees_in_a_profile_are_a_load_error(tmp_path):
    pytest.importorskip("sklearn")
    d = fit(_shape_samples(100), [], n_trees=5).to_dict()
    p = fake_profile().to_dict()
    for broken in ({k: v for k, v in d["trees"].items() if k != "offset"},
                   {**d["trees"], "features": ["x"]},
                   {**d["trees"], "trees": [[[99, -2, -2], [0.5, 0, 0], [1, -1, -1],
                                            [2, -1, -1], [0.0, 1.0, 2.0]]]}):
        (tmp_path / "p.json").write_text(json.dumps({**p, "model": {**d, "trees": broken}}))
        with pytest.raises(ArchspecError):
            load(tmp_path / "p.json")


def test_predict_sums_kernels_and_overhead():
    model = LatencyModel({"*": [5.0, 0, 0, 0, 0, 0, 0, 0, 0],
                          "conv": [1.0, 1.0, 0, 0, 0, 0, 0, 0, 0]},
                         (10.0, 2.0))
    ks = kernels(tiny())
    pred = model.predict(ks)
    n_conv = sum(k.type.startswith("conv") for k in ks)
    macs = sum(k.macs for k in ks if k.type.startswith("conv"))
    expect_us = n_conv + macs / 1e6 + 5.0 * (len(ks) - n_conv) + 10.0 + 2.0 * len(ks)
    assert pred.total_ms == pytest.approx(expect_us / 1000)
    assert sum(pred.per("layer").values()) + pred.overhead_ms == pytest.approx(pred.total_ms)
    assert len(FEATURES) == len(model.coef["*"])


# ---- profile ---------------------------------------------------------------------------------
def test_profile_roundtrip_and_setup_warnings(tmp_path):
    p = fake_profile()
    path = tmp_path / "p.json"
    p.save(path)
    q = load(path)
    assert q.model.coef == p.model.coef and q.nchwc_block == 16
    assert setup_warnings(q, q.machine, q.versions) == []
    other = {**q.machine, "cpu": "Some Other CPU"}
    warns = setup_warnings(q, other, {**q.versions, "onnxruntime": "0.1"}, threads=4)
    assert len(warns) == 3 and "Some Other CPU" in warns[0]


def test_profile_errors(tmp_path):

    with pytest.raises(ArchspecError, match="not found"):
        load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"schema": "x"}')
    with pytest.raises(ArchspecError, match="not a latency profile"):
        load(tmp_path / "bad.json")


# ---- check -----------------------------------------------------------------------------------
def test_measure_interleaves_rounds_with_fresh_sessions_and_reports_spread():
    order, built = [], []
    clock_t = [0.0]
    cost_ms = {"a": [1.0, 1.0, 1.2], "b": [2.0, 2.0, 2.0]}
    calls = {"a": 0, "b": 0}

    def make_step(g):
        built.append(g)

        def step():
            order.append(g)
            r = min(calls[g] // 3, 2)   # 1 warm-up + 2 timed per round
            calls[g] += 1
            clock_t[0] += cost_ms[g][r] / 1000
        return step

    out = chk.measure(["a", "b"], 1, rounds=3, repeats=2, warmup=1,
                      clock=lambda: clock_t[0], make_step=make_step, min_round_ms=0)
    assert built == ["a", "b"] * 3
    assert order == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    (ma, sa, rounds_a), (mb, sb, _) = out
    assert ma == pytest.approx(1.0) and rounds_a == pytest.approx([1.0, 1.0, 1.2])
    assert sa == pytest.approx(0.2) and sb == pytest.approx(0.0)


def test_measure_runs_a_fast_model_long_enough_per_round():
    clock_t = [0.0]
    runs = {"fast": 0, "slow": 0}
    cost_ms = {"fast": 0.25, "slow": 50.0}

    def make_step(g):
        def step():
            runs[g] += 1
            clock_t[0] += cost_ms[g] / 1000
        return step

    out = chk.measure(["fast", "slow"], 1, rounds=2, repeats=3, warmup=2,
                      clock=lambda: clock_t[0], make_step=make_step, min_round_ms=20)
    # fast: 20 ms / 0.25 ms + 1 = 81 timed runs a round; slow: the minimum, 3
    assert runs == {"fast": 2 * (2 + 81), "slow": 2 * (2 + 3)}
    assert out[0][0] == pytest.approx(0.25) and out[1][0] == pytest.approx(50.0)


def test_check_compares_prediction_with_measurement():
    g = tiny()
    p = fake_profile()
    want = chk.predict(g, p).total_ms
    t = [0.0]

    def make_step(_):
        def step():
            t[0] += want * 1.05 / 1000
        return step

    (r,) = chk.check([("tiny", g)], p, rounds=2, repeats=3, make_step=make_step,
                     clock=lambda: t[0])
    assert r.error == pytest.approx(1 / 1.05 - 1)
    assert r.round_ms == pytest.approx([want * 1.05] * 2)
    s = chk.summary([r])
    assert s["within"] == 1.0 and s["models"] == 1
    assert s["fastest_round"]["signed_error_median"] == pytest.approx(1 / 1.05 - 1)


def test_the_fastest_round_figure_sits_beside_the_median_of_all_runs():
    """A busy spell in two of four rounds moves the median of all runs; the fastest round
    (what a calibration fits) stays the quiet time."""
    busy = chk.Checked("m", 10.0, 11.5, 0.3, 4, 6, [10.2, 10.4, 13.0, 12.8])
    assert busy.error == pytest.approx(10 / 11.5 - 1)      # -13%: a miss
    assert busy.fastest_error == pytest.approx(10 / 10.2 - 1)
    fr = chk.summary([busy])["fastest_round"]
    assert fr["within"] == 1.0 and chk.summary([busy])["within"] == 0.0
    d = busy.to_dict()
    assert d["round_ms"] == [10.2, 10.4, 13.0, 12.8] and d["error"] == round(busy.error, 4)
    # measurements saved before rounds were recorded: no such figure, nothing invented
    old = chk.Checked("m", 10.0, 11.5, 0.3, 4, 6)
    assert old.fastest_error is None and "round_ms" not in old.to_dict()
    assert "fastest_round" not in chk.summary([busy, old])


# ---- command line ----------------------------------------------------------------------------
def _run(*args):
    return subprocess.run([sys.executable, "-m", "archspec", *args], capture_output=True,
                          text=True, timeout=120)


def test_latency_command_json(tmp_path):
    path = tmp_path / "p.json"
    fake_profile().save(path)
    r = _run("latency", "mobilenetv3_small", "--profile", str(path), "-f", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["total_ms"] > 0 and d["kernels"][0]["type"].startswith("conv")
    assert sum(k["ms"] for k in d["kernels"]) + d["overhead_ms"] == \
        pytest.approx(d["total_ms"], rel=1e-3)


def test_latency_command_warns_on_another_setup(tmp_path):
    path = tmp_path / "p.json"
    fake_profile(machine={"cpu": "elsewhere"}).save(path)
    r = _run("latency", "mobilenetv2", "--profile", str(path), "--per", "stage")
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "elsewhere" in r.stderr


def test_cost_profile_adds_latency_without_heavy_imports(tmp_path):
    path = tmp_path / "p.json"
    fake_profile().save(path)
    code = ("import sys, json; from archspec.cli import main\n"
            f"sys.argv = ['archspec', 'cost', 'mobilenetv2', '--profile', {str(path)!r}, "
            f"'-f', 'json', '-o', {str(tmp_path / 'c.json')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([m for m in ('torch', 'onnx', 'onnxruntime', 'networkx', "
            "'matplotlib') if m in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["totals"]["latency_ms"] == pytest.approx(d["latency"]["total_ms"])
    assert all("latency_ms" in row for row in d["rows"])
    r = _run("cost", "mobilenetv2", "--profile", str(path))
    assert r.returncode == 0 and " ms " in r.stdout


def test_sweep_profile_gives_latency_figure(tmp_path):
    path = tmp_path / "p.json"
    fake_profile().save(path)
    r = _run("sweep", "mobilenetv2", "--width", "0.5,1.0", "--profile", str(path),
             "--minimize", "latency_ms", "-f", "json")
    assert r.returncode == 0, r.stderr
    front = json.loads(r.stdout)["front"]
    assert front and all("latency_ms" in row for row in front)
    r = _run("sweep", "mobilenetv2", "--width", "0.5", "--minimize", "latency_ms")
    assert r.returncode == 2 and "latency_ms with --profile" in r.stderr


def test_network_correction_recovers_a_known_bias():
    """Second stage: walls generated as 0.8 x (first-stage sum) - 3 us per kernel + 20 us
    are matched after the correction (no timing: synthetic numbers)."""
    import random

    from archspec.latency.model import LatencyModel, fit_correction

    model = LatencyModel({"conv": [1.0, 2.0, 0, 0, 0, 0, 0, 0],
                          "*": [1.0, 0, 0, 0, 0, 0, 0, 0]}, (0, 0))
    rng = random.Random(0)
    samples, walls = [], []
    for net in range(60):
        total = 0.0
        for _ in range(rng.randint(5, 40)):
            feats = {"macs": rng.uniform(1e5, 5e7), "in_elems": 0, "out_elems": 0,
                     "params": 0, "reorder_elems": 0}
            samples.append({"type": "conv.pw.c", "features": feats, "net": net})
            total += 0.8 * model.raw_us("conv.pw.c", feats)[1] - 3.0
        walls.append(total + 20.0)
    correction, constant, stats = fit_correction(model, samples, walls, ridge=1e-6)
    scale, shift = correction["conv.pw"]
    assert scale == pytest.approx(0.8, abs=0.01) and shift == pytest.approx(-3.0, abs=0.3)
    assert constant == pytest.approx(20.0, abs=5.0)
    assert stats["within_10pct_after"] == 1.0


# ---- the activation a kernel applies ---------------------------------------------------------
def test_kernels_carry_their_activation_class_and_old_trees_ignore_it():
    from archspec.latency.model import TREES_WITHOUT_ACT, tree_row

    expand = {}
    for act in ("relu6", "hswish", "sigmoid"):
        g = tiny(act=act)
        feats = {k.name: k.features() for k in kernels(g)}
        expand[act] = feats["b.expand.conv"]
        assert feats["stem.conv"]["act"] == 2 and feats["b.dw.conv"]["act"] == 1
        assert feats["head.flatten"]["act"] == 0
    assert {a: f["act"] for a, f in expand.items()} == {"relu6": 1, "hswish": 2,
                                                         "sigmoid": 3}
    assert kernels(tiny())[0].features()["act"] == 2   # set when fused: no graph needed
    rows = {a: tree_row("conv.pw.c", f) for a, f in expand.items()}
    assert rows["relu6"][:TREES_WITHOUT_ACT] == rows["hswish"][:TREES_WITHOUT_ACT]
    assert 0 < rows["relu6"][-1] < rows["hswish"][-1] < rows["sigmoid"][-1]


def test_trees_that_read_the_activation_learn_its_cost():
    """Synthetic: hswish kernels cost 1.3x relu6 ones. On a depthwise conv the linear
    model sees it (act_elems); on a pointwise conv, where the linear model does not price
    activations (model.ACT_TYPES), only trees fitted with the activation feature do, and
    with the activation unknown nothing can (no timing: generated numbers)."""
    import random

    pytest.importorskip("sklearn")

    def samples(type_, known=True):
        rng = random.Random(0)
        out = []
        for i in range(400):
            act = rng.choice((1, 2))
            c, hw = rng.choice((16, 32, 64, 96)), rng.choice((196, 784, 3136))
            f = {"macs": 9 * c * hw, "in_elems": c * hw, "out_elems": c * hw,
                 "params": 9 * c, "reorder_elems": 0, "cin": c, "cout": c, "hw": hw,
                 "net_elems": 10 ** 6, "act": act if known else 0}
            us = (0.5 + 0.002 * c * hw) * (1.3 if act == 2 else 1.0)
            out.append({"type": type_, "features": f, "us": us, "net": i})
        return out

    dw, pw = samples("conv.dw.k3s1.c"), samples("conv.pw.c")
    linear_dw, linear_pw = fit(dw, []), fit(pw, [])
    seen, blind = fit(pw, [], n_trees=80, tree_act=True), \
        fit(samples("conv.pw.c", known=False), [], n_trees=80)
    assert seen.trees["features"][-1] == "act" and "act" not in blind.trees["features"]
    f = pw[0]["features"]

    def ratio(m, type_="conv.pw.c"):
        return (m.raw_us(type_, {**f, "act": 2})[1] / m.raw_us(type_, {**f, "act": 1})[1])
    assert ratio(linear_dw, "conv.dw.k3s1.c") == pytest.approx(1.3, abs=0.05)
    assert ratio(linear_pw) == 1.0
    assert ratio(seen) == pytest.approx(1.3, abs=0.05) and ratio(blind) == 1.0
    back = LatencyModel.from_dict(json.loads(json.dumps(seen.to_dict())))
    assert ratio(back) == pytest.approx(ratio(seen))


def test_a_kernel_type_never_timed_fits_zero_without_warnings_or_nan():
    """reshape has no onnxruntime kernel of its own, so all its samples are 0 us: its
    coefficients are 0 and its fit figures null (a NaN there made the profile invalid
    JSON and numpy warn on every calibrate)."""
    import warnings

    from archspec.latency.model import fit_type

    rows_ = [[1.0] + [float(i)] * (len(FEATURES) - 1) for i in range(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coef, stats = fit_type(rows_, [0.0] * 12, "reshape")
    assert coef == [0.0] * len(FEATURES)
    assert stats == {"n": 0, "outliers": 0, "median_abs_rel_err": None,
                     "within_10pct": None}


def test_act_elems_counts_the_in_cache_share_of_the_working_set():
    """Fit rules 3: a dear activation on a kernel whose working set outgrows L2 hides
    under its memory traffic (MobileNetV2 with hswish: +6.0 points over the measured
    ratio on the Xeon host with every element counted, docs/latency.md "Activations");
    older profiles read act_elems as they were fitted."""
    from archspec.latency.model import HINGES_L2, LatencyModel

    l2 = 1000.0
    hinges = tuple(h * l2 for h in HINGES_L2)
    act = FEATURES.index("act_elems")
    f = {"macs": 9e5, "in_elems": 400.0, "out_elems": 400.0, "params": 200.0,
         "reorder_elems": 0.0, "act": 2}
    assert row(f, hinges, True)[act] == row(f, hinges)[act] == 400 / 1e6    # fits in L2
    big = {**f, "in_elems": 2000.0, "out_elems": 1800.0}                    # 4x L2
    assert row(big, hinges)[act] == 1800 / 1e6
    assert row(big, hinges, True)[act] == pytest.approx(1800 / 4 / 1e6)
    assert row({**big, "act": 1}, hinges, True)[act] == 0.0                  # a clip: none
    m = LatencyModel({"*": [0.0] * len(FEATURES)}, (0.0, 0.0), hinges=hinges)
    assert "act_in_cache" not in m.to_dict()
    assert not LatencyModel.from_dict(m.to_dict()).act_in_cache
    m.act_in_cache = True
    assert LatencyModel.from_dict(json.loads(json.dumps(m.to_dict()))).act_in_cache
    older = load(PROFILES / "cpu-ort-1t.json")               # fitted before fit rules 3
    assert not older.model.act_in_cache


def test_a_feature_too_few_kernels_have_is_not_fitted():
    """A cache spill that two of a type's calibration kernels reach sets no slope: fitted
    from two points, the Xeon profile's full-conv spill slope (16.8 ns per element) put
    the 1024x2048 stem of LR-ASPP at 253 ms, measured 7.3 ms (docs/latency.md, "Sparse
    features"); from enough kernels the slope is fitted."""
    from archspec.latency.model import MIN_SAMPLES, fit_type

    spill = FEATURES.index("spill_2")

    def fitted(n_spilled):
        rows_, ys = [], []
        for i in range(40):
            r = [1.0] + [0.0] * (len(FEATURES) - 1)
            r[FEATURES.index("macs")] = 1.0 + i
            r[spill] = 0.5 + 0.1 * i if i < n_spilled else 0.0
            rows_.append(r)
            ys.append(2.0 + 3.0 * r[1] + 40.0 * r[spill])
        return fit_type(rows_, ys, "conv.full.c")[0]

    assert fitted(MIN_SAMPLES - 1)[spill] == 0.0
    assert fitted(MIN_SAMPLES)[spill] == pytest.approx(40.0, rel=1e-6)


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.json")), ids=lambda p: p.name)
def test_shipped_profiles_are_strict_json(path):
    def refuse(token):
        raise AssertionError(f"{path.name}: {token} is not JSON")

    json.loads(path.read_text(), parse_constant=refuse)
