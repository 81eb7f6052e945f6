"""The reproduction report: official counts reproduced exactly, and docs/reproduction.md
regenerated from code (a stale checked-in copy fails)."""
import json

import pytest
from conftest import SPECS, run_cli

import archspec
from archspec import published, reproduce

# The official implementations' counts (params exact, MAdds +-0.1%), measured on the
# reference models with pretrained=False: params = sum of parameter sizes, MAdds = torch
# FlopCounterMode total / 2 (conv and linear). MobileNetV2 at every published multiplier:
# torchvision mobilenet_v2(width_mult=w) and timm mobilenetv2_035..140 (identical).
# MobileNetV1 at 0.25-1.0: TF-slim mobilenet_v1's widths, measured on timm's
# _gen_mobilenet_v1(channel_multiplier=w) (timm's mobilenetv1_100 at 1.0, mobilenetv1_125 at
# 1.25).
OFFICIAL = [
    ("rexnet", 1.0, 4_796_873, 398.37e6),
    ("rexnet", 1.3, 7_557_091, 662.23e6),
    ("rexnet", 1.5, 9_728_593, 875.83e6),
    ("rexnet", 2.0, 16_366_620, 1528.85e6),
    ("mobilenext", 1.0, 3_535_416, None),
    ("mobilenetv1", 1.0, 4_231_976, 568.74e6),
    ("mobilenetv1", 0.25, 470_072, 41.03e6),
    ("mobilenetv1", 0.5, 1_331_592, 149.50e6),
    ("mobilenetv1", 0.75, 2_585_560, 325.40e6),
    ("mobilenetv1", 1.25, 6_270_840, 879.52e6),
    ("mobilenetv2", 1.0, 3_504_872, 300.77e6),
    ("mobilenetv2", 0.35, 1_677_128, 59.29e6),
    ("mobilenetv2", 0.5, 1_968_680, 97.13e6),
    ("mobilenetv2", 0.75, 2_636_424, 209.07e6),
    ("mobilenetv2", 1.4, 6_108_776, 582.20e6),
    ("mobilenetv2_cifar", 1.0, 2_296_922, None),
]

# MobileNetV3 at every multiplier of Table 9, one spec per family. 1.0 and 0.75: TF-slim's
# released models, timm tf_mobilenetv3_{large,small}_{100,075} (1.0 also torchvision's
# mobilenet_v3_large/small; torchvision's width_mult scales exp sizes directly and gives
# 3,377,576 / 1,653,920 at 0.75, not the released models). 0.35, 0.5, 1.25 (no released
# model): TF-slim mobilenet_v3.py's depth multiplier, measured on timm's
# _gen_mobilenet_v3("tf_mobilenetv3_*_100", w) with the stem scaled too (fix_stem=False;
# timm's own mobilenetv3_small_050 keeps a 16-wide stem: 1,593,224 / 24.19 M).
OFFICIAL_V3 = [
    ("mobilenetv3_large", 0.35, 2_131_832, 39.47e6),
    ("mobilenetv3_large", 0.5, 2_689_520, 69.25e6),
    ("mobilenetv3_large", 0.75, 3_993_528, 154.56e6),
    ("mobilenetv3_large", 1.0, 5_483_032, 216.59e6),
    ("mobilenetv3_large", 1.25, 7_551_976, 355.22e6),
    ("mobilenetv3_small", 0.35, 1_358_288, 12.82e6),
    ("mobilenetv3_small", 0.5, 1_592_704, 21.05e6),
    ("mobilenetv3_small", 0.75, 2_041_872, 43.40e6),
    ("mobilenetv3_small", 1.0, 2_542_856, 56.51e6),
    ("mobilenetv3_small", 1.25, 3_205_384, 90.80e6),
    ("mobilenetv3_large_075", None, 3_993_528, 154.56e6),
    ("mobilenetv3_small_075", None, 2_041_872, 43.40e6),
]


@pytest.mark.parametrize("spec,width,params,madds", OFFICIAL + OFFICIAL_V3)
def test_official_counts(spec, width, params, madds):
    totals = archspec.load(spec, width=width).cost().totals
    assert totals.params == params
    if madds is not None:
        assert totals.madds == pytest.approx(madds, rel=1e-3)


OFFICIAL_LINES = [ln for ln in reproduce.lines() if ln.official is not None]


@pytest.mark.parametrize("line", OFFICIAL_LINES,
                         ids=[f"{ln.figure.table}-{ln.figure.network}-{ln.metric}"
                              for ln in OFFICIAL_LINES])
def test_every_official_figure_in_the_report(line):
    if line.metric == "params":
        assert line.ours == line.official
    else:
        assert line.ours == pytest.approx(line.official, rel=1e-3)


def test_every_large_difference_has_a_reason():
    for line in reproduce.lines():
        if line.needs_reason():
            assert line.reason, (line.figure.network, line.metric)


def test_report_is_not_stale():
    assert reproduce.DOC.read_text(encoding="utf-8") == reproduce.render(), \
        "docs/reproduction.md is stale: run `python -m archspec.reproduce`"


def test_write_and_check(tmp_path):
    path = reproduce.write(tmp_path / "r.md")
    assert reproduce.main([str(path), "--check"]) == 0
    path.write_text("old")
    assert reproduce.main([str(path), "--check"]) == 1


@pytest.mark.parametrize("size", ["large", "small"])
def test_075_specs_are_the_family_spec_at_width_075(size):
    a = archspec.load(f"mobilenetv3_{size}_075").compile()
    b = archspec.load(f"mobilenetv3_{size}", width=0.75).compile()
    assert [(n.name, n.op, n.shape) for n in a] == [(n.name, n.op, n.shape) for n in b]


def test_table3_mobilenetv1_column_is_in_the_report():
    text = reproduce.render()
    assert "## MobileNetV2 Table 3: the MobileNetV1 column" in text
    assert "| 112x112 | 64 / 1600 | 64 / 1,605,632 |" in text


def test_a_difference_without_a_reason_fails_render(monkeypatch):
    monkeypatch.setattr(reproduce, "TABLE3_MOBILENETV1_NOTES", {})
    with pytest.raises(ValueError, match="MobileNetV1 7x7"):
        reproduce.render()


def test_a_part_is_its_share_of_the_total():
    spec = "extends: ssdlite_mobilenetv2.yaml\nclasses: 81\n"
    head = reproduce.ours(spec, part="heads.ssdlite")
    backbone = reproduce.ours(spec, part="backbone")
    total = reproduce.ours(spec)
    assert head[0] + backbone[0] == total[0]
    assert head[1] + backbone[1] == pytest.approx(total[1])
    assert 0 < head[0] < total[0]


def test_an_unknown_part_is_an_error():
    with pytest.raises(ValueError, match="no part 'heads.nope'.*heads.ssdlite"):
        reproduce.ours("ssdlite_mobilenetv2", part="heads.nope")


def test_head_figures_are_in_the_report():
    text = reproduce.render()
    for spec in ("ssdlite320_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
                 "deeplabv3_mobilenet_v3_large", "ssdlite_rexnet", "mobilenext_se",
                 "lraspp_mobilenetv3_small_cityscapes", "deeplabv3_mobilenetv2_no_aspp"):
        assert f"`{spec}`" in text
    assert "(part `heads.ssdlite`)" in text


def test_scale_dimension_is_deeplabs():
    """DeepLab's scale_dimension: int((dim - 1) x scale + 1) (utils/scale_dimension)."""
    sides = [reproduce.scale_dimension(513, s) for s in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)]
    assert sides == [257, 385, 513, 641, 769, 897]
    assert reproduce.scale_dimension(512, 0.75) == 384
    assert reproduce.scale_dimension(512, 1.25) == 639


MULTI_SCALE = [f for f in published.FIGURES if f.scales and "V2*" in f.network]


@pytest.mark.parametrize("fig", MULTI_SCALE[::3], ids=lambda f: f.network)
def test_multi_scale_flip_is_the_sum_of_separate_cost_runs(fig, write):
    """The report's MS + flip MAdds equal twice the sum of `archspec cost --resolution r`
    over DeepLab's scaled sides, each run separately."""
    text = fig.spec.replace("extends: ", f"extends: {SPECS}/", 1)
    path = write(text)
    base = fig.resolution or archspec.loads(text).resolution
    total = 0
    for scale in fig.scales:
        side = reproduce.scale_dimension(base, scale)
        out = run_cli("cost", path, "--resolution", side, "-f", "json")
        assert out.returncode == 0, out.stderr
        total += json.loads(out.stdout)["totals"]["madds"]
    params, madds = reproduce.figure_cost(fig)
    assert madds == 2 * total
    assert params == archspec.loads(text).cost().totals.params


def test_output_stride_8_variant_keeps_stride_8_to_the_last_stage():
    fig = next(f for f in MULTI_SCALE if f.resolution == 513)
    graph = archspec.loads(fig.spec.replace("extends: ", f"extends: {SPECS}/", 1)) \
        .with_(resolution=513).compile()
    shapes = {n.name.split(".block")[0]: n.shape for n in graph if n.name.startswith("stages.")}
    assert shapes["stages.3"][1:] == shapes["stages.7"][1:] == (65, 65)


def test_multi_scale_needs_a_square_input():
    fig = published.Figure("p", "t", "n", "lraspp_mobilenetv3_small_cityscapes", madds="1B",
                           scales=(1.0,))
    with pytest.raises(ValueError, match="square"):
        reproduce.figure_cost(fig)


def _space_to_batch_extra(fig, tap, rates):
    """MAdds TF's space_to_batch adds to a figure's ASPP 3x3 convs over its scales and
    flips: a rate-r conv on an n x n map computes (r x ceil(n / r))² positions."""
    text = fig.spec.replace("extends: ", f"extends: {SPECS}/", 1)
    extra, sides = 0, []
    for scale in fig.scales:
        side = reproduce.scale_dimension(fig.resolution or 513, scale)
        graph = archspec.loads(text).with_(resolution=side).compile()
        c, n, _ = [node.shape for node in graph if node.name.startswith(tap)][-1]
        sides.append(n)
        extra += sum(9 * c * 256 * ((r * -(-n // r)) ** 2 - n * n) for r in rates)
    return 2 * extra, sides


@pytest.mark.parametrize("network,note,tap", [
    ("MNet V2*, OS 8, ASPP, MF at 513x513 (hypothesis)", published.S2B_MS, "stages.7"),
    ("MNet V1, OS 8, ASPP, MF at 513x513 (hypothesis)", published.S2B_MS_V1, "stages.9")])
def test_space_to_batch_figures_in_the_notes_follow_from_the_maps(network, note, tap):
    fig = next(f for f in published.FIGURES if f.network == network)
    extra, sides = _space_to_batch_extra(fig, tap, (12, 24, 36))
    assert sides == [33, 49, 65, 81, 97, 113]
    assert f"+{extra / 1e9:.2f} B" in note
