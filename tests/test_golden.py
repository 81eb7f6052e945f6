"""Golden behaviour of the core specs beyond the official counts."""

import archspec

# The official counts (params exact, MAdds within 0.1%) of every shipped spec that has an
# official implementation are checked in tests/test_reproduction.py::test_official_counts.


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
