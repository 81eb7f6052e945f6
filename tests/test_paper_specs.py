"""The shipped paper specs load, compile and cost; each new block's counts on a tiny
one-block spec match arithmetic done by hand (written out in each test)."""
from pathlib import Path

import pytest

import archspec
from archspec.compiler import schedule_channels
from archspec.spec.loader import SHIPPED

SPECS = sorted(p.stem for p in Path(SHIPPED).glob("*.yaml"))
NEW = ["mobilenetv1", "mobilenetv2_cifar", "mobilenetv2_replication_b",
       "mobilenetv2_replication_c", "mobilenetv2_replication_d", "mobilenetv3_large_075",
       "mobilenetv3_small_075", "rexnet", "rexnet_plain", "mobilenext",
       "mobilenext_variant_a", "mobilenext_variant_b", "mobilenext_variant_c",
       "mobilenetv2_2dwise"]


def test_all_issue_specs_ship():
    assert set(NEW) <= set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_shipped_spec_loads_compiles_costs(name):
    spec = archspec.load(name)
    assert spec.name == name
    assert spec.description and "\n" not in spec.description
    assert spec.source
    graph = spec.compile()
    report = spec.cost()
    assert report.totals.params > 0 and report.totals.madds > 0
    outputs = {name: tuple(graph[node].shape) for name, node in graph.outputs.items()}
    if not spec.heads:
        assert outputs == {"output": (spec.classes,)}
        return
    assert [p.name for p in report.parts] == ["backbone", *(f"heads.{h.label}"
                                                             for h in spec.heads)]
    for name, shape in outputs.items():
        _check_head_output(name.rsplit(".", 1)[-1], shape, spec.classes, graph, outputs)


def _check_head_output(kind, shape, classes, graph, outputs):
    """A head's output as docs/heads.md describes it (the shipped heads use the spec's
    classes and upsample their logits)."""
    if kind == "out":
        assert shape == (classes, *graph.input_shape[1:])
    elif kind == "cls_logits":
        assert shape[1] == classes and (shape[0], 4) == outputs["bbox_regression"]
    else:
        assert kind == "bbox_regression" and shape[1] == 4, kind


@pytest.mark.parametrize("name", SPECS)
def test_diff_against_mobilenetv2_covers_every_block(name):
    from archspec.analysis.diff import diff
    from figures import smallest_resolution

    graph = archspec.load(name, resolution=smallest_resolution(name, 64)).compile()
    ref = archspec.load("mobilenetv2", resolution=64).compile()
    d = diff(graph, ref)
    assert sum(r.a.figures["params"] for r in d.rows if r.a) == d.a.totals.params
    assert sum(r.b.figures["madds"] for r in d.rows if r.b) == d.b.totals.madds


def tiny(body: str, channels=8, resolution=8):
    """Cost a one-block spec on a channels x resolution x resolution input."""
    text = f"name: tiny\ninput: {{resolution: {resolution}, channels: {channels}}}\n{body}"
    return archspec.loads(text).cost().totals


def kinds(body: str, channels=8, resolution=8):
    text = f"name: tiny\ninput: {{resolution: {resolution}, channels: {channels}}}\n{body}"
    graph = archspec.loads(text).compile()
    return [(n.kind, getattr(n.op, "partial", None)) for n in graph]


def test_dwsep_counts():
    t = tiny("stages: [{block: dwsep, c: 16}]")
    # dw 3x3 on 8 ch: 9*8 = 72 weights + BN 2*8 = 88; MAdds 72 * 8*8 = 4608
    # pw 8->16: 128 weights + BN 2*16 = 160; MAdds 128 * 64 = 8192
    assert (t.params, t.madds) == (88 + 160, 4608 + 8192)


def test_rexnet_bottleneck_counts():
    t = tiny("stages: [{block: rexnet_bneck, t: 6, c: 16, se: true}]")
    # hidden 8*6 = 48. expand 8*48 = 384 + BN 96 = 480; MAdds 384*64 = 24576
    # dw 9*48 = 432 + BN 96 = 528; MAdds 432*64 = 27648
    # SE squeeze 48 // 12 = 4: fc1 48*4 + 4 = 196, BN 8, fc2 4*48 + 48 = 240 -> 444; MAdds 384
    # project 48*16 = 768 + BN 32 = 800; MAdds 768*64 = 49152
    assert (t.params, t.madds) == (480 + 528 + 444 + 800, 24576 + 27648 + 384 + 49152)
    # partial residual: 8 input channels added to the first 8 of 16
    assert ("add", True) in kinds("stages: [{block: rexnet_bneck, t: 6, c: 16, se: true}]")


def test_rexnet_bottleneck_t1_has_no_expansion():
    t = tiny("stages: [{block: rexnet_bneck, t: 1, c: 8}]")
    # dw 72 + 16 = 88 (4608); project 64 + 16 = 80 (4096); full residual
    assert (t.params, t.madds) == (168, 8704)


def test_sandglass_full_counts_and_alpha():
    body = "stages: [{block: sandglass, t: 2, c: 16}]"
    t = tiny(body, channels=16)
    # hidden 16 // 2 = 8 (not below 16/6). dw1 9*16 + 32 = 176 (144*64 = 9216);
    # reduce 16*8 + 16 = 144 (8192); expand 8*16 + 32 = 160 (8192); dw2 176 (9216)
    assert (t.params, t.madds) == (176 + 144 + 160 + 176, 9216 + 8192 + 8192 + 9216)
    assert ("add", False) in kinds(body, channels=16)
    half = "stages: [{block: sandglass, t: 2, c: 16, alpha: 0.5}]"
    assert (tiny(half, channels=16).params, tiny(half, channels=16).madds) == \
        (t.params, t.madds)
    assert ("slice", None) in kinds(half, channels=16)
    assert ("add", True) in kinds(half, channels=16)


def test_sandglass_auto_drops_depthwise_where_width_changes():
    t = tiny("stages: [{block: sandglass, t: 6, c: 32}]", channels=16)
    # hidden 16 // 6 = 2 < 32/6, so make_divisible(ceil(5.33) = 6, 16) = 16.
    # pw 16->16: 256 + 32 = 288 (16384); pw 16->32: 512 + 64 = 576 (32768); no dw, no add
    assert (t.params, t.madds) == (288 + 576, 16384 + 32768)
    t = tiny("stages: [{block: sandglass, t: 6, c: 32, s: 2}]", channels=16)
    # + dw2 3x3 s2 on 32 ch: 288 + 64 = 352, MAdds 288 * 4*4 = 4608
    assert (t.params, t.madds) == (288 + 576 + 352, 16384 + 32768 + 4608)


def test_replication_variants():
    body = "stages: [{{block: rep_ir, t: 2, c: 8, variant: {v}}}]"
    # hidden 16. (a) expand 8*16 + 32 = 160 (8192), dw 9*16 + 32 = 176 (9216),
    # project 16*8 + 16 = 144 (8192)
    assert (tiny(body.format(v="a")).params, tiny(body.format(v="a")).madds) == (480, 25600)
    # (b) replication + BN(16) = 32 params, 0 MAdds, replaces the expansion conv
    assert (tiny(body.format(v="b")).params, tiny(body.format(v="b")).madds) == (352, 17408)
    # (c) (b) without the projection's BN (16)
    assert (tiny(body.format(v="c")).params, tiny(body.format(v="c")).madds) == (336, 17408)
    # (d) dw on 8 ch: 72 + 16 = 88 (4608), replicate + BN 32, project 144 (8192)
    assert (tiny(body.format(v="d")).params, tiny(body.format(v="d")).madds) == (264, 12800)
    assert ("replicate", None) in kinds(body.format(v="b"))


def test_replication_projection_shortcut():
    t = tiny("stages: [{block: rep_ir, t: 1, c: 16}]")
    # expand 8*8 + 16 = 80 (4096), dw 72 + 16 = 88 (4608), project 8*16 + 32 = 160 (8192),
    # shortcut conv 8*16 + BN 32 = 160 (8192)
    assert (t.params, t.madds) == (488, 25088)


def test_ir_2dw_counts():
    t = tiny("stages: [{block: ir_2dw, t: 2, c: 8, s: 2}]")
    # expand 160 (128*64 = 8192); dw0 stride 1: 176 (144*64 = 9216);
    # dw stride 2: 176 (144*16 = 2304); project 144 (128*16 = 2048); no residual
    assert (t.params, t.madds) == (656, 21760)


def test_classic_dw_counts():
    t = tiny("stages: [{block: classic_dw, t: 2, c: 16}]", channels=16)
    # hidden 8. reduce 128 + 16 = 144 (8192); dw 72 + 16 = 88 (4608); expand 128 + 32 = 160
    assert (t.params, t.madds) == (392, 20992)
    t = tiny("stages: [{block: classic_dw, t: 2, c: 16, dw2: true}]", channels=16)
    assert (t.params, t.madds) == (392 + 88, 20992 + 4608)


def test_sandglass_swapped_counts():
    t = tiny("stages: [{block: sandglass_swapped, t: 2, c: 8}]")
    # dw1 88 (4608); expand 8->16: 160 (8192); project 16->8: 144 (8192); dw2 88 (4608)
    assert (t.params, t.madds) == (480, 25600)


def test_bneck_ratio_counts():
    t = tiny("stages: [{block: bneck_ratio, t: 4.5, c: 24, nl: RE}]", channels=16)
    # expansion make_divisible(16 * 4.5 = 72) = 72. expand 1152 + 144 = 1296 (73728);
    # dw 648 + 144 = 792 (41472); project 1728 + 48 = 1776 (110592)
    assert (t.params, t.madds) == (1296 + 792 + 1776, 73728 + 41472 + 110592)


def test_bneck_ratio_follows_the_rounded_input_under_a_width_multiplier():
    text = ("name: tiny\ninput: {resolution: 8, channels: 8}\nwidth: 0.75\nstages:\n"
            "  - {block: conv, c: 80, k: 1}\n  - {block: bneck_ratio, t: 2.3, c: 80}\n")
    graph = archspec.loads(text).compile()
    # input 80 x 0.75 = 60 -> 64; expansion 64 x 2.3 = 147.2 -> 144 (TF-slim, timm), where
    # scaling the 1.0 exp size (184 x 0.75 = 138) would give 136
    assert graph["stages.0.block0.conv"].shape[0] == 64
    assert graph["stages.1.block0.expand.conv"].shape[0] == 144


def test_mobilenetv3_width_keeps_the_last_1x1_and_scales_the_stem():
    for size, last in (("large", 1280), ("small", 1024)):
        graph = archspec.load(f"mobilenetv3_{size}", width=0.35).compile()
        assert graph["head.1.conv"].shape[0] == last       # scale: false
        assert graph["stages.0.block0.conv"].shape[0] == 8  # TF-slim scales the stem


def test_mobilenetv3_075_specs_at_width_1_are_the_paper_tables():
    assert archspec.load("mobilenetv3_large_075", width=1.0).cost().totals.params == 5_483_032


SCHEDULED = """name: sched
input: {resolution: 8, channels: 8}
schedule: {kind: linear, start: 8, end: 12, round: ROUND}
stages:
  - {block: rexnet_bneck, t: 1, n: 2}
  - {block: rexnet_bneck, t: 6, n: 2}
"""


def test_linear_schedule_rounds_half_to_even():
    spec = archspec.loads(SCHEDULED.replace("ROUND", "python"))
    assert schedule_channels(spec) == [8, 9, 10, 11]
    # x1.5: 12, 13.5, 15, 16.5 -> Python round() gives 12, 14, 15, 16
    assert schedule_channels(spec.with_(width=1.5)) == [12, 14, 15, 16]
    floor = archspec.loads(SCHEDULED.replace("ROUND", "floor")).with_(width=1.5)
    assert schedule_channels(floor) == [12, 13, 15, 16]
    graph = spec.with_(width=1.5).compile()
    assert graph[graph.outputs["output"]].shape[0] == 16


def test_rexnet_schedule_matches_table_8():
    assert schedule_channels(archspec.load("rexnet")) == [
        16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185]
    # below 1.0x the start stays 16 (rexnetv1.py)
    assert schedule_channels(archspec.load("rexnet", width=0.9))[:3] == [16, 26, 36]


def test_mobilenext_alpha_is_configurable():
    base = archspec.load("mobilenext").cost().totals
    half = archspec.loads("extends: mobilenext.yaml\ndefaults: {alpha: 0.5}\n",
                          base_dir=SHIPPED)
    assert half.cost().totals.params == base.params
    assert any(n.kind == "slice" for n in half.compile())


@pytest.mark.parametrize("bad,word", [
    ("{block: sandglass, t: 6, c: 16, variant: odd}", "variant"),
    ("{block: rep_ir, t: 6, c: 16, variant: e}", "variant"),
    ("{block: dwsep, c: 16, pw_nl: swishy}", "pw_nl"),
])
def test_bad_fields_are_located_errors(bad, word):
    with pytest.raises(archspec.SpecError) as e:
        archspec.loads(f"name: bad\nstages: [{bad}]\n")
    assert word in str(e.value)
