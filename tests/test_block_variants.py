"""Issue 17's block fields and blocks: SE inside `dwsep` (PP-LCNet) and `sandglass`
(MobileNeXt†), per-conv nonlinearity (`nl_<conv>`), `ir`'s `keep_expand`, the top-level
`depth`, EfficientNetV2's `fused_mbconv` and MixNet's `mix_ir`. Each is checked by hand on a
small input, refused with a located error when misused, and proved as the other blocks are:
the built torch model's parameters and FlopCounterMode equal `cost` at two resolutions, and
onnxruntime equals torch."""
import pytest

import archspec
from archspec.blocks.mixnet import split_channels
from archspec.errors import SpecError


def _spec(rows: str, channels: int = 12, resolution: int = 8, extra: str = ""):
    return archspec.loads(f"name: tiny\ndivisor: 1\n{extra}input: {{resolution: {resolution}, "
                          f"channels: {channels}}}\nstages: [{rows}]\n")


def _fn(graph, name):
    return graph[name].op.fn


def _kinds(graph, prefix="stages.0.block0."):
    return [n.name[len(prefix):] for n in graph if n.name.startswith(prefix)]


# ---- SE in dwsep and sandglass ------------------------------------------------------------
def test_dwsep_squeeze_excite_as_lcnet():
    graph = _spec("{block: dwsep, c: 16, se: true, nl: hswish, se_divisor: none}").compile()
    names = _kinds(graph)
    assert names.index("dw.act") < names.index("se.pool") < names.index("pw.conv")
    assert graph["stages.0.block0.se.fc1"].shape[0] == 3          # round(12 x 0.25)
    assert _fn(graph, "stages.0.block0.se.gate") == "hsigmoid"
    assert _fn(graph, "stages.0.block0.se.act") == "relu"
    assert not any(n.startswith("se.") for n in _kinds(_spec("{block: dwsep, c: 16}").compile()))


def test_dwsep_se_adds_exactly_its_two_convs():
    plain = _spec("{block: dwsep, c: 16}").cost().totals.params
    se = _spec("{block: dwsep, c: 16, se: true, se_divisor: none}").cost().totals.params
    assert se - plain == (12 * 3 + 3) + (3 * 12 + 12)


@pytest.mark.parametrize("at,before,after", [("dw1", "dw1.act", "reduce.conv"),
                                             ("dw2", "dw2.bn", "add")])
def test_sandglass_se_position(at, before, after):
    graph = _spec(f"{{block: sandglass, t: 2, c: 12, se: true, se_at: {at}}}").compile()
    names = _kinds(graph)
    assert names.index(before) < names.index("se.pool") < names.index("se.scale") \
        < names.index(after)
    assert graph["stages.0.block0.se.fc1"].shape[0] == 3           # 12 x 0.25


def test_mobilenext_se_against_table_6():
    """MobileNeXt† prints 3.94M / 330M; our reading (spec comment) is within 4% / 1.5%."""
    t = archspec.load("mobilenext_se").cost().totals
    assert abs(t.params / 3.94e6 - 1) < 0.04 and abs(t.madds / 330e6 - 1) < 0.015
    plain = archspec.load("mobilenext").cost().totals
    assert t.params > plain.params and t.madds > plain.madds


# ---- per-conv nonlinearity ----------------------------------------------------------------
def test_ir_non_linear_bottleneck():
    """MobileNetV2 Fig. 6: ReLU6 after the projection; nl_expand: linear removes one."""
    graph = _spec("{block: ir, t: 6, c: 12, nl_project: relu6, nl_expand: linear}").compile()
    names = _kinds(graph)
    assert _fn(graph, "stages.0.block0.project.act") == "relu6"
    assert "expand.act" not in names and _fn(graph, "stages.0.block0.dw.act") == "relu6"
    plain = _kinds(_spec("{block: ir, t: 6, c: 12}").compile())
    assert "project.act" not in plain and "expand.act" in plain


def test_sandglass_relu6_on_the_last_conv():
    graph = _spec("{block: sandglass, t: 2, c: 12, nl_dw2: relu6, nl_reduce: hswish}").compile()
    assert _fn(graph, "stages.0.block0.dw2.act") == "relu6"
    assert _fn(graph, "stages.0.block0.reduce.act") == "hswish"
    assert "dw2.act" not in _kinds(_spec("{block: sandglass, t: 2, c: 12}").compile())


def test_rexnet_positions():
    graph = _spec("{block: rexnet_bneck, t: 6, c: 16, nl_dw: linear, nl_project: swish}")\
        .compile()
    names = _kinds(graph)
    assert "act" not in names and _fn(graph, "stages.0.block0.project.act") == "swish"
    assert _fn(_spec("{block: rexnet_bneck, t: 6, c: 16}").compile(), "stages.0.block0.act") \
        == "relu6"


@pytest.mark.parametrize("row,field", [
    ("{block: ir, t: 6, c: 12, nl_project: relu7}", "nl_project"),
    ("{block: sandglass, t: 2, c: 12, nl_dw2: rleu}", "nl_dw2"),
    ("{block: rexnet_bneck, t: 6, c: 16, nl_dw: nope}", "nl_dw"),
    ("{block: mix_ir, t: 3, c: 12, nl_expand: x}", "nl_expand"),
    ("{block: sandglass, t: 2, c: 12, se: true, se_at: dw3}", "se_at"),
    ("{block: mix_ir, t: 3, c: 12, k: 29, mix: 3}", "mix"),
    ("{block: mix_ir, t: 3, c: 12, mix: 0}", "mix"),
    ("{block: fused_mbconv, t: 4, c: 12, k: 4}", "k"),
    ("{block: ir, t: 1, c: 12, keep_expand: 2}", "keep_expand"),
])
def test_bad_fields_are_located(row, field):
    with pytest.raises(SpecError) as e:
        _spec(row)
    text = str(e.value)
    assert field in text and "<string>:4:" in text


@pytest.mark.parametrize("row, message", [
    ("{block: ir, t: 6, c: 12, se: true, se_divisor: 0}",
     "stages[0].se_divisor: 0 is less than the minimum of 1"),
    ("{block: ir, t: 6, c: 12, se: true, se_divisor: -8}",
     "stages[0].se_divisor: -8 is less than the minimum of 1"),
    ("{block: ir, t: 6, c: 12, se: true, se_divisor: foo}",
     "stages[0].se_divisor: `foo` is not allowed here (known: none)"),
    ("{block: conv, c: 12, groups: 0}", "stages[0].groups: 0 is less than the minimum of 1"),
    ("{block: ir, t: 1, c: 12, nl_expand: hswish}",
     "stages[0].nl_expand: t = 1 builds no expansion conv"),
    ("{block: sandglass, t: 2, c: 12, se_at: dw2}",
     "stages[0].se_at: `se_at` places a squeeze-excite, but the row has no `se`"),
])
def test_fields_that_would_mislead_or_be_ignored_are_located(row, message):
    """An out-of-range number says the range (not "'none' was expected"); a field the block
    would silently ignore is refused where it is written."""
    with pytest.raises(SpecError) as e:
        _spec(row)
    assert message in str(e.value) and "<string>:4:" in str(e.value), str(e.value)


@pytest.mark.parametrize("row, message", [
    ("{block: fused_mbconv, t: 0.01, c: 24, s: 2}",
     "t = 0.01 expands the 12 input channels to round(12 x 0.01) = 0 channels: `t` must be "
     "above 0.5 / 12"),
    ("{block: ir, t: 0.02, c: 24}", "round(12 x 0.02) = 0 channels"),
    ("{block: bneck, exp: 12, c: 12, nl_expand: hswish}",
     "the expansion keeps the 12 input channels, so there is no expansion conv for "
     "`nl_expand`"),
])
def test_build_time_field_problems_blame_the_field(row, message):
    with pytest.raises(SpecError) as e:
        _spec(row).compile()
    assert message in str(e.value) and "check c, s and k" not in str(e.value), str(e.value)
    assert "<string>:4:" in str(e.value)


def test_t1_nl_expand_with_keep_expand_and_sandglass_se_at_with_se_build():
    kept = _spec("{block: ir, t: 1, c: 12, keep_expand: true, nl_expand: hswish}").compile()
    assert _fn(kept, "stages.0.block0.expand.act") == "hswish"
    assert "se.pool" in _kinds(_spec("{block: sandglass, t: 2, c: 12, se: true}").compile())


# ---- keep_expand and depth ----------------------------------------------------------------
def test_keep_expand_builds_the_t1_expansion_conv():
    plain = _spec("{block: ir, t: 1, c: 12}").cost().totals
    kept = _spec("{block: ir, t: 1, c: 12, keep_expand: true}").cost().totals
    assert kept.params - plain.params == 12 * 12 + 2 * 12          # 1x1 conv + BN
    assert kept.madds - plain.madds == 12 * 12 * 64


def test_depth_repeats_ceil_n_times_depth():
    rows = "{block: conv, c: 8}, {block: ir, t: 2, c: 8, n: 3}, {block: ir, t: 2, c: 16, n: 1}"
    graph = _spec(rows, extra="depth: 1.4\n").compile()
    blocks = {n.block for n in graph if n.block}
    assert {b for b in blocks if b.startswith("stages.0.")} == {"stages.0.block0"}
    assert len({b for b in blocks if b.startswith("stages.1.")}) == 5    # ceil(3 x 1.4)
    assert len({b for b in blocks if b.startswith("stages.2.")}) == 2    # ceil(1.4)
    assert archspec.loads("name: x\nstages: [{block: ir, t: 2, c: 8, n: 3}]\n").depth == 1.0


def test_depth_keeps_the_rexnet_schedule_whole(tmp_path):
    """The linear channel schedule counts the deepened rows: one width per block."""
    from pathlib import Path

    from archspec.compiler import schedule_channels

    base = Path(archspec.__file__).parent / "specs" / "rexnet.yaml"
    path = tmp_path / "deeper.yaml"
    path.write_text(f"extends: {base}\nname: deeper\ndepth: 1.5\n")
    spec = archspec.load(str(path))
    blocks = {n.block for n in spec.compile() if n.block_type == "rexnet_bneck"}
    assert len(schedule_channels(spec)) == len(blocks) > 16
    assert spec.cost().totals.params > archspec.load("rexnet").cost().totals.params


def test_depth_leaves_single_layers_single(tmp_path):
    """ResNet-50 deepened 2x: the max-pool stem stays one layer, each bottleneck row doubles."""
    from pathlib import Path

    base = Path(archspec.__file__).parent / "specs" / "resnet50.yaml"
    path = tmp_path / "deeper.yaml"
    path.write_text(f"extends: {base}\nname: deeper\ndepth: 2\n")
    kinds = [(n.block_type, n.block) for n in archspec.load(str(path)).compile()]
    plain = [(n.block_type, n.block) for n in archspec.load("resnet50").compile()]
    for block in ("maxpool", "conv"):
        assert len({b for t, b in kinds if t == block}) == len({b for t, b in plain if t == block})
    assert len({b for t, b in kinds if t == "resnet_bottleneck"}) == \
        2 * len({b for t, b in plain if t == "resnet_bottleneck"})


@pytest.mark.parametrize("value", ["0", "-1", "x", "17"])
def test_bad_depth_is_located(value):
    with pytest.raises(SpecError) as e:
        _spec("{block: ir, t: 2, c: 8}", extra=f"depth: {value}\n")
    assert "depth" in str(e.value) and "<string>:3:" in str(e.value)


# ---- mix_ir and fused_mbconv --------------------------------------------------------------
def test_split_channels_first_takes_the_remainder():
    assert split_channels(10, 3) == [4, 3, 3] and split_channels(12, 2) == [6, 6]


def test_mix_ir_groups_and_kernels():
    graph = _spec("{block: mix_ir, t: 3, c: 10, k: 3, mix: 3, expand_split: 2, "
                  "project_split: 3}").compile()
    p = "stages.0.block0."
    convs = [(graph[f"{p}dw.conv{i}"].op.kernel, graph[f"{p}dw.conv{i}"].op.groups,
              graph[f"{p}dw.conv{i}"].shape[0]) for i in range(3)]
    assert convs == [(3, 12, 12), (5, 12, 12), (7, 12, 12)]          # 36 channels in 3
    assert [graph[f"{p}expand.conv{i}"].op.in_channels for i in range(2)] == [6, 6]
    assert [graph[f"{p}project.conv{i}"].op.out_channels for i in range(3)] == [4, 3, 3]
    assert [graph[f"{p}project.conv{i}"].op.in_channels for i in range(3)] == [12, 12, 12]


def test_fused_mbconv_counts():
    t = _spec("{block: fused_mbconv, t: 4, c: 12, k: 3}").cost().totals
    # 3x3 conv 12 -> 48 + BN, 1x1 48 -> 12 + BN on 8x8; shortcut (no parameters)
    assert t.params == 12 * 48 * 9 + 96 + 48 * 12 + 24
    assert t.madds == (12 * 48 * 9 + 48 * 12) * 64
    graph = _spec("{block: fused_mbconv, t: 4, c: 16, s: 2}").compile()
    assert "add" not in _kinds(graph) and graph.outputs["output"]


# ---- every new field and block, lowered and proved ----------------------------------------
PROOF = ("{block: conv, c: 16, s: 2}, "
         "{block: dwsep, c: 24, se: true, nl: hswish, se_divisor: none}, "
         "{block: ir, t: 1, c: 24, keep_expand: true, nl_project: relu6, nl_dw: swish}, "
         "{block: fused_mbconv, t: 4, c: 24, se: true, se_of: input, se_gate: sigmoid}, "
         "{block: fused_mbconv, t: 2, c: 32, s: 2, k: 5, nl_expand: hswish}, "
         "{block: mix_ir, t: 3, c: 32, mix: 3, expand_split: 2, project_split: 3, se: true, "
         "nl: swish}, "
         "{block: mix_ir, t: 2.5, c: 40, s: 2, mix: 2, project_split: 2}, "
         "{block: sandglass, t: 4, c: 40, se: true, nl_dw2: relu6}, "
         "{block: sandglass, t: 4, c: 40, se: true, se_at: dw2, se_gate: sigmoid}, "
         "{block: rexnet_bneck, t: 6, c: 48, se: true, nl_dw: linear, nl_project: relu}")


@pytest.mark.parametrize("resolution", [32, 48])
def test_torch_model_matches_the_cost(resolution):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archspec.analysis.cost import cost
    from archspec.backends import get_backend

    graph = _spec(PROOF, channels=3, resolution=resolution).compile()
    model = get_backend("torch").build(graph).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    totals = cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


def test_onnxruntime_equals_torch():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np

    from archspec.backends import get_backend
    from conftest import onnx_and_torch_outputs, randomise_bn

    graph = _spec(PROOF, channels=3, resolution=32).compile()
    model = randomise_bn(get_backend("torch").build(graph, seed=0).eval())
    got, want = onnx_and_torch_outputs(graph, model)
    assert np.abs(want).max() > 1e-3
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())
