"""The shipped core specs reproduce the official implementations' counts exactly."""
import pytest

import archspec

# (spec, width, params, MAdds): torchvision's mobilenet_v2 / mobilenet_v3_* parameter
# counts and PyTorch FlopCounterMode / 2 on them (issue 2's table).
GOLDEN = [
    ("mobilenetv2", 1.0, 3_504_872, 300.77e6),
    ("mobilenetv2", 0.35, 1_677_128, 59.29e6),
    ("mobilenetv2", 0.5, 1_968_680, 97.13e6),
    ("mobilenetv2", 0.75, 2_636_424, 209.07e6),
    ("mobilenetv2", 1.4, 6_108_776, 582.20e6),
    ("mobilenetv3_large", 1.0, 5_483_032, 216.59e6),
    ("mobilenetv3_small", 1.0, 2_542_856, 56.51e6),
]


@pytest.mark.parametrize("name,width,params,madds", GOLDEN,
                         ids=[f"{g[0]}-{g[1]}" for g in GOLDEN])
def test_official_counts(name, width, params, madds):
    report = archspec.load(name, width=width).cost()
    assert report.totals.params == params
    assert abs(report.totals.madds - madds) / madds < 0.001


def test_paper_figures_are_close():
    """The papers print rounded figures: MobileNetV2 3.4M / 300M (Table 4)."""
    t = archspec.load("mobilenetv2").cost().totals
    assert round(t.params / 1e6, 1) == 3.5 and round(t.madds / 1e6) == 301


def test_resolution_scales_madds_not_params():
    a = archspec.load("mobilenetv2").cost().totals
    b = archspec.load("mobilenetv2", resolution=160).cost().totals
    assert a.params == b.params and b.madds < a.madds


def test_classes_override():
    t = archspec.load("mobilenetv2", classes=10).cost().totals
    assert t.params == 3_504_872 - 990 * 1281
