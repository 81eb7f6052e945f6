"""The families of issue 17: configurable squeeze-excite (gate, squeeze activation, the width
it is a fraction of, its rounding), ReXNet's ratio that must be 1 / an integer, and the
shipped specs named after timm models (EfficientNet-B0/B1/B2/Lite0/V2-B0, MnasNet, MixNet-S,
PP-LCNet, FBNet-C), each equal to the timm model (benchmarks/reference_check.py)."""
import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.errors import SpecError


def _block(row: str, channels: int = 12, divisor: int = 8):
    text = (f"name: tiny\ndivisor: {divisor}\ninput: {{resolution: 8, channels: {channels}}}\n"
            f"stages: [{row}]\n")
    return archspec.loads(text).compile()


def _se(graph):
    """(squeeze width, squeeze activation, gate) of the one block's SE."""
    prefix = "stages.0.block0.se"
    return (graph[f"{prefix}.fc1"].shape[0], graph[f"{prefix}.act"].op.fn,
            graph[f"{prefix}.gate"].op.fn)


IR = "{block: ir, t: 6, c: 16, se: true"


@pytest.mark.parametrize("extra,want", [
    # 72 x 0.25 = 18 -> make_divisible(18, 8) = 24 (16 is below 90%; MobileNetV3 default)
    ("", (24, "relu", "hsigmoid")),
    # from the block input: 12 x 0.25 = 3, rounded to the nearest integer
    (", se_of: input, se_divisor: none, se_nl: swish, se_gate: sigmoid", (3, "swish", "sigmoid")),
    (", se_divisor: 4", (20, "relu", "hsigmoid")),            # make_divisible(18, 4)
    (", se_ratio: 0.3, se_divisor: none", (22, "relu", "hsigmoid")),   # round(21.6)
    (", se_of: input, se_ratio: 0.3, se_divisor: none, se_nl: RE", (4, "relu", "hsigmoid")),
])
def test_ir_squeeze_excite_is_configurable(extra, want):
    assert _se(_block(IR + extra + "}")) == want


def test_se_fields_reach_bneck_ratio_and_ghost():
    graph = _block("{block: bneck_ratio, t: 4, c: 16, se: true, se_of: input, se_gate: sigmoid, "
                   "se_divisor: none}", channels=16)
    assert _se(graph) == (4, "relu", "sigmoid")
    graph = _block("{block: ghost, exp: 40, c: 16, se: true, se_nl: hswish}")
    assert _se(graph) == (12, "hswish", "hsigmoid")   # make_divisible(10, 4), ghost's default


def test_squeeze_width_from_the_input_changes_the_cost():
    exp = _block(IR + ", se_divisor: none}")
    inp = _block(IR + ", se_of: input, se_divisor: none}")
    # fc1 + fc2 with biases: 72 -> 18 -> 72 against 72 -> 3 -> 72
    assert cost(exp).totals.params - cost(inp).totals.params == (72 * 18 * 2 + 18 + 72) - \
        (72 * 3 * 2 + 3 + 72)


@pytest.mark.parametrize("extra,field", [(", se_gate: relu", "se_gate"),
                                         (", se_nl: swishh", "se_nl"),
                                         (", se_of: output", "se_of"),
                                         (", se_divisor: 0", "se_divisor"),
                                         (", se_divisor: all", "se_divisor")])
def test_bad_se_fields_are_located(extra, field):
    with pytest.raises(SpecError) as e:
        _block(IR + extra + "}")
    assert field in str(e.value) and "stages" in str(e.value)


def test_rexnet_refuses_a_ratio_it_would_change():
    row = "{block: rexnet_bneck, t: 6, c: 16, se: true, se_ratio: 0.3}"
    with pytest.raises(SpecError) as e:
        _block(row)
    assert "se_ratio 0.3 is not 1 / an integer" in str(e.value) and "stages" in str(e.value)
    assert "0.333333" in str(e.value)


@pytest.mark.parametrize("ratio,squeeze", [("0.25", 72 // 4), ("0.0833333", 72 // 12),
                                           ("0.125", 72 // 8)])
def test_rexnet_honours_a_ratio_of_one_over_an_integer(ratio, squeeze):
    row = f"{{block: rexnet_bneck, t: 6, c: 16, se: true, se_ratio: {ratio}}}"
    assert _block(row)["stages.0.block0.se.fc1"].shape[0] == squeeze


# ---- timm's models as shipped specs -------------------------------------------------------
# timm (pretrained=False): params = sum of parameter sizes, MAdds = FlopCounterMode / 2.
TIMM = [("efficientnet_b0", 224, 5_288_548, 385_814_752),
        ("efficientnet_b0", 160, 5_288_548, 197_778_400),
        ("mnasnet_100", 224, 4_383_312, 314_415_872),
        ("mnasnet_100", 160, 4_383_312, 161_043_200),
        ("efficientnet_lite0", 224, 4_652_008, 385_187_552),
        ("efficientnet_lite0", 160, 4_652_008, 197_151_200),
        ("mixnet_s", 224, 4_134_606, 239_173_360),
        ("mixnet_s", 160, 4_134_606, 123_155_056),
        ("lcnet_100", 224, 2_953_800, 155_700_480),
        ("lcnet_100", 160, 2_953_800, 80_467_200),
        ("fbnetc_100", 224, 5_572_200, 384_960_160),
        ("fbnetc_100", 160, 5_572_200, 197_380_000),
        ("tf_efficientnetv2_b0", 224, 7_139_704, 718_086_176),
        ("tf_efficientnetv2_b0", 160, 7_139_704, 367_502_624),
        ("efficientnet_b1", 224, 7_794_184, 569_651_680),
        ("efficientnet_b1", 160, 7_794_184, 291_808_480),
        ("efficientnet_b2", 224, 9_109_994, 658_963_440),
        ("efficientnet_b2", 160, 9_109_994, 337_538_928)]


@pytest.mark.parametrize("name,resolution,params,madds", TIMM)
def test_spec_reproduces_timm(name, resolution, params, madds):
    t = archspec.load(name, resolution=resolution).cost().totals
    assert (t.params, t.madds) == (params, madds)


def _torch_model(name, resolution, seed=None):
    from archspec.backends import get_backend

    graph = archspec.load(name, resolution=resolution).compile()
    return graph, get_backend("torch").build(graph, seed=seed).eval()


@pytest.mark.parametrize("name", sorted({row[0] for row in TIMM}))
@pytest.mark.parametrize("resolution", [112, 64])
def test_torch_model_matches_the_cost(name, resolution):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    graph, model = _torch_model(name, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    totals = cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


@pytest.mark.parametrize("name", sorted({row[0] for row in TIMM}))
def test_onnxruntime_equals_torch(name):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np

    from conftest import onnx_and_torch_outputs, randomise_bn

    graph, model = _torch_model(name, 64, seed=0)
    got, want = onnx_and_torch_outputs(graph, randomise_bn(model))
    assert np.abs(want).max() > 1e-2
    assert np.abs(got - want).max() < 1e-4
