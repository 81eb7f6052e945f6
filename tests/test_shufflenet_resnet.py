"""ShuffleNetV2's unit and ResNet's bottleneck with the max-pool stem (issue 17), and the
shipped specs named after torchvision's models, proved as the other blocks are: figures
equal torchvision's (measured with FlopCounterMode / 2 in a separate venv with torch
2.14.1 / torchvision 0.29.1; see the report of the change), the built module's params and
FlopCounterMode / 2 equal the cost at two resolutions, onnxruntime equals torch, the ONNX
file imports back to the same costs, the unit does what the paper draws, the latency rules
match what onnxruntime runs, and bad rows are located errors."""
from __future__ import annotations

import functools

import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.errors import SpecError
from archspec.latency.kernels import NCHWC, kernels
from conftest import ort_kernel_runs  # noqa: E402

# torchvision.models.<name>(): sum of parameter sizes, FlopCounterMode / 2 at 224 and 160
TORCHVISION = [("shufflenet_v2_x1_0", 224, 2_278_604, 144_907_992),
               ("shufflenet_v2_x1_0", 160, 2_278_604, 74_434_200),
               ("resnet50", 224, 25_557_032, 4_089_184_256),
               ("resnet50", 160, 25_557_032, 2_087_321_600)]
NAMES = sorted({row[0] for row in TORCHVISION})


@pytest.mark.parametrize("name,resolution,params,madds", TORCHVISION)
def test_spec_reproduces_torchvision(name, resolution, params, madds):
    t = archspec.load(name, resolution=resolution).cost().totals
    assert (t.params, t.madds) == (params, madds)


def test_the_blocks_have_torchvisions_layers():
    g = archspec.load("resnet50").compile()
    stem = [n for n in g if n.stage in ("stages.0", "stages.1")]
    assert [(n.kind, n.shape) for n in stem][-1] == ("max_pool", (64, 56, 56))
    first = [n.name.rsplit(".", 2)[-2:] for n in g if n.block == "stages.3.block0"]
    assert first[:7] == [["conv1", "conv"], ["conv1", "bn"], ["conv1", "act"],
                         ["conv2", "conv"], ["conv2", "bn"], ["conv2", "act"],
                         ["conv3", "conv"]]
    assert g["stages.3.block0.conv2.conv"].op.stride == 2          # v1.5: stride on the 3x3
    assert g["stages.3.block0.downsample.conv"].op.stride == 2
    shuffle = archspec.load("shufflenet_v2_x1_0").compile()
    kinds = [n.kind for n in shuffle if n.block == "stages.3.block1"]
    assert kinds.count("slice") == 2 and kinds[-2:] == ["concat", "channel_shuffle"]
    down = [n.name for n in shuffle if n.block == "stages.3.block0" and n.kind == "conv2d"]
    assert [n.split(".")[3] for n in down] == ["branch1"] * 2 + ["branch2"] * 3


# ---- located errors --------------------------------------------------------------------------
def _spec(rows: str) -> str:
    return ("name: t\ninput: {resolution: 32, channels: 3}\nclasses: 10\ndivisor: 2\n"
            "stages:\n  - {block: conv, c: 24, s: 2}\n  - {block: maxpool}\n" + rows)


@pytest.mark.parametrize("rows,where,message", [
    ("  - {block: shuffle_unit, c: 25, s: 2}\n", "8:30", "stages[2].c: c=25 is odd"),
    ("  - {block: shuffle_unit, c: 48, s: 1}\n", "8:5",
     "a stride-1 unit keeps the width: input 24 channels, c=48"),
    ("  - {block: resnet_bottleneck, c: 30}\n", "8:35",
     "stages[2].c: c=30 is not a multiple of 4"),
    ("  - {block: maxpool, k: 4}\n", "8:25", "stages[2].k: kernel size must be odd, got 4"),
])
def test_bad_rows_are_located_errors(write, rows, where, message):
    with pytest.raises(SpecError) as e:
        archspec.load(write(_spec(rows))).compile()
    assert f"spec.yaml:{where}" in str(e.value) and message in str(e.value)


def test_mid_sets_the_bottleneck_width():
    text = _spec("  - {block: resnet_bottleneck, c: 64, mid: 8, s: 2}\n")
    g = archspec.loads(text).compile()
    assert g["stages.2.block0.conv2.conv"].op.out_channels == 8


# ---- against torch and onnxruntime -------------------------------------------------------------
torch = pytest.importorskip("torch")


@functools.cache
def _built(name: str, resolution: int):
    from archspec.backends import get_backend

    from conftest import randomise_bn

    g = archspec.load(name, resolution=resolution).compile()
    return g, randomise_bn(get_backend("torch").build(g, seed=0)).eval()


@pytest.mark.parametrize("resolution", [224, 96])
@pytest.mark.parametrize("name", NAMES)
def test_torch_model_matches_the_cost(name, resolution):
    from torch.utils.flop_counter import FlopCounterMode

    g, model = _built(name, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    totals = cost(g).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


def test_the_stride_1_unit_passes_half_its_input_through_the_shuffle():
    """Fig. 3c: the first c/2 channels pass unchanged; the shuffle (2 groups) puts input
    channel i at output channel 2i and the branch's channel i at 2i + 1."""
    from archspec.backends import get_backend
    from archspec.backends.torch_memory import EXECUTE

    g = archspec.loads(_spec("  - {block: shuffle_unit, c: 24, s: 1}\n")).compile()
    model = get_backend("torch").build(g, seed=0).eval()
    env = {}
    with torch.no_grad():
        for node in g:
            args = [env[i] for i in node.inputs] if node.inputs else [torch.randn(2, 3, 32, 32)]
            env[node.name] = EXECUTE[node.kind](node, model, args)
    x, y = env["stages.1.block0.pool"], env["stages.2.block0.shuffle"]
    assert torch.equal(y[:, 0::2], x[:, :12])
    assert not torch.equal(y[:, 1::2], x[:, 12:])


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_equals_torch(name):
    pytest.importorskip("onnxruntime")
    from conftest import onnx_and_torch_outputs

    got, want = onnx_and_torch_outputs(*_built(name, 64))
    assert abs(got - want).max() <= 1e-4 * abs(want).max()


@pytest.mark.parametrize("name", NAMES)
def test_the_onnx_file_costs_as_the_spec(name):
    pytest.importorskip("onnx")
    from archspec.backends import get_backend
    from archspec.onnx_import import from_proto

    g = archspec.load(name, resolution=64).compile()
    back = from_proto(get_backend("onnx").build(g, seed=0, fold_bn=False).proto)
    assert [(n.kind, n.shape) for n in back] == [(n.kind, n.shape) for n in g]
    assert cost(back).totals == cost(g).totals


@pytest.mark.parametrize("name", NAMES)
def test_fusion_rules_match_onnxruntime(name):
    """Every node onnxruntime runs maps to one of our kernels, every kernel is run, and
    each conv runs in the layout (NCHWc or plain) the rules predict."""
    pytest.importorskip("onnxruntime")
    from archspec.latency import probes

    g = archspec.load(name, resolution=64).compile()
    ks = kernels(g, probes.nchwc_block() or 16)
    runs, seen = ort_kernel_runs(g, ks)
    for domain, op, k in runs:
        if probes.nchwc_block() and op in ("Conv", "FusedConv", "MaxPool"):
            assert (domain == "com.microsoft.nchwc") == (k.layout == NCHWC), (k.type, op)
    assert seen == {k.name for k in ks}
