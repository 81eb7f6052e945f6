"""The figures quoted in the notes of MobileNetV3 Tables 6-7 (archspec/published.py) follow
from the specs: Table 6's count without BN, the V2 0.35 SSDLite candidates ruled out, and
Table 7 row 10's RF2 reading."""
from __future__ import annotations

import pytest

from archspec import published, reproduce
from archspec.spec.loader import SHIPPED, load, loads


def _loaded(spec: str, width: float | None = None, resolution: int | None = None):
    if "\n" in spec:
        return loads(spec, name="<test>", base_dir=SHIPPED).with_(width=width,
                                                                   resolution=resolution)
    return load(spec, width=width, resolution=resolution)


def _table6(key):
    if isinstance(key, float):
        return next(f for f in published.HEAD_FIGURES
                    if f.table == "Table 6" and f.network.startswith(f"V2 {key:g} "))
    return next(f for f in published.HEAD_FIGURES
                if f.paper == published.V3 and f.table == "Table 6" and f.network == key)


@pytest.mark.parametrize("key", list(published.TABLE6_NO_BN), ids=str)
def test_table6_params_without_bn_round_to_the_printed_figure(key):
    fig = _table6(key)
    report = _loaded(fig.spec, fig.width).cost()
    bn = sum(e.params for e in report.layers if e.type == "batchnorm")
    no_bn = report.totals.params - bn
    assert no_bn == published.TABLE6_NO_BN[key]
    assert f"{no_bn / 1e6:.2f}M" == fig.params
    assert f"{no_bn:,}" in fig.notes["params"]


def _ssd_035(extra=(179, 89, 89, 44), patch: str = "") -> str:
    return ("extends: ssdlite_mobilenetv2.yaml\n" + patch + "heads:\n  - {block: ssdlite, "
            f"from: [C4, C5], anchors: 6, first_anchors: 3, extra: {list(extra)}}}\n")


_MIN16 = ("patch:\n  - {rows: 1, set: {min_width: 1.0}}\n"
          "  - {rows: 2, set: {min_width: 0.6667}}\n")


@pytest.mark.parametrize("spec,width,resolution,classes,text", [
    (_ssd_035(), 0.35, None, None, "0.1667 B"),
    (_ssd_035(patch=_MIN16), 0.35, None, None, "0.236 B"),
    (_ssd_035((256, 128, 128, 64), _MIN16), 0.5, None, None, "0.313 B"),
    (_ssd_035(), 0.35, 300, None, "0.1548 B"),
    (_ssd_035((256, 128, 128, 64)), 0.5, 300, None, "0.253 B"),
    (_ssd_035(), 0.35, None, 81, "0.161 B"),
    (_ssd_035(), 0.35, None, 90, "0.1662 B"),
    (_ssd_035((176, 88, 88, 48)), 0.35, None, None, "0.1666 B"),
])
def test_v2_035_ssdlite_candidates(spec, width, resolution, classes, text):
    loaded = _loaded(spec, width, resolution)
    if classes:
        loaded = loaded.with_(classes=classes)
    madds = loaded.cost().totals.madds
    digits = len(text.split()[0].split(".")[1])
    assert f"{madds / 1e9:.{digits}f} B" == text
    assert text in published.SSD_V2_035


def test_v2_035_min_depth_16_widens_layers_2_to_4():
    graph = _loaded(_ssd_035(patch=_MIN16), 0.35).compile()
    widths = {n.name.split(".block")[0]: n.shape[0] for n in graph
              if n.name.startswith(("stages.1.", "stages.2."))}
    assert widths == {"stages.1": 16, "stages.2": 16}


def test_row10_rf2_after_the_multiplier():
    fig = next(f for f in published.CITY_FIGURES if "widths halved" in f.network)
    loaded = _loaded(fig.spec, fig.width)
    shapes = {n.name.split(".block")[0]: n.shape[0] for n in loaded.compile()
              if n.name.startswith("stages.")}
    assert (shapes["stages.5"], shapes["stages.6"], shapes["stages.7"]) == (32, 28, 56)
    params, madds = reproduce.figure_cost(fig)
    assert params == 156_582 and f"{params / 1e6:.2f}M" == fig.params
    # at DeepLab's eval crop, with the logits' bilinear upsampling counted as 4 MAdds per
    # output (the CROP hypothesis): within 1% of the printed 2.54B
    crop_fig = next(f for f in published.HEAD_FIGURES
                    if f.network == fig.network + ", at 1025x2049 (hypothesis)")
    crop = reproduce.figure_cost(crop_fig)[1]
    total = crop + 19 * 1025 * 2049 * 4
    assert f"{total / 1e9:.2f} B" == "2.52 B" and abs(total / 2.54e9 - 1) < 0.01
    # the main reading (the halved definition scaled and rounded to 8) keeps 32
    main = next(f for f in published.CITY_FIGURES
                if f.network.startswith("row 10: V2 0.35 RF2, LR-ASPP"))
    assert reproduce.figure_cost(main)[0] == 166_854
