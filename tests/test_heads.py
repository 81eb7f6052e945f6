"""Backbones with detection and segmentation heads (docs/heads.md): the built torch module
has the parameters and FlopCounterMode MAdds that `cost` reports, for every head spec at two
input sizes; onnxruntime computes torch's outputs under the heads' names; taps, outputs
and parts; located errors for what a spec can get wrong."""
from __future__ import annotations

import pytest

import archspec
import archspec.backends
from archspec.analysis.cost import cost
from archspec.errors import SpecError
from archspec.spec.loader import SHIPPED

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from conftest import randomise_bn  # noqa: E402

HEAD_SPECS = sorted(p.stem for p in SHIPPED.glob("*.yaml") if "heads:" in p.read_text())
# two sizes each (the first key in the name), small enough to be fast; at 64 and 96
# SSDLite's extra layers run stride-2 convs on 1x1 maps (torch's rule: padded, they fit);
# Fig. 10's 49x49 gate needs a 1/16 map of 49 rows
SIZES = {"cityscapes": (784, [784, 800]), "ssdlite": (320, [64, 96]),
         "lraspp": (96, [32, 64]), "deeplabv3": (96, [32, 64])}
PAPER_GATE = """
extends: lraspp_mobilenet_v3_large
name: gate
input: {resolution: [96, 160]}
heads:
  - {block: lraspp, from: [low, high], pool_k: [3, 5], pool_s: [2, 3]}
"""
TWO_HEADS = """
extends: lraspp_mobilenet_v3_large
name: two
input: {resolution: 64}
taps: {C4: stages.13.block0.expand, C5: stages.16}
heads:
  - {block: lraspp, name: seg, from: [low, high], classes: 5}
  - {block: deeplabv3, name: aspp, from: C5, rates: [], head_conv: false, upsample: false}
"""


def _sizes(name: str):
    head = next(k for k in SIZES if k in name)
    return SIZES[head]


def _model(graph):
    from archspec.backends import get_backend

    return get_backend("torch").build(graph, seed=0).eval()


def _madds(model, shape) -> int:
    """FlopCounterMode's count / 2, run on the meta device (shapes only: fast)."""
    model = model.to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops() // 2


def _cases():
    return [(n, s) for n in HEAD_SPECS for s in _sizes(n)[1]]


def test_the_head_specs_are_found():
    assert {"ssdlite320_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
            "deeplabv3_mobilenet_v3_large"} <= set(HEAD_SPECS)


@pytest.mark.parametrize("name,size", _cases())
def test_params_and_madds_of_the_module_equal_cost(name, size):
    graph = archspec.load(name, resolution=size).compile()
    model = _model(graph)
    totals = cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert _madds(model, graph.input_shape) == totals.madds


@pytest.mark.parametrize("text", [PAPER_GATE, TWO_HEADS], ids=["paper_gate", "two_heads"])
def test_params_and_madds_equal_cost_for_written_heads(write, text):
    graph = archspec.load(write(text, "h.yaml")).compile()
    model = _model(graph)
    totals = cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert _madds(model, graph.input_shape) == totals.madds


def _onnx_and_torch(graph, model):
    import numpy as np
    import onnxruntime as ort

    from archspec.backends import get_backend

    proto = get_backend("onnx").build(graph, weights=model.state_dict())
    sess = ort.InferenceSession(proto.serialize(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, *graph.input_shape)).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {"input": x})))
    with torch.no_grad():
        want = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    return got, want


@pytest.mark.parametrize("name", [n for n in HEAD_SPECS if "cityscapes" not in n]
                         + [PAPER_GATE])
def test_onnxruntime_equals_torch_under_the_head_names(name, write):
    import numpy as np

    graph = (archspec.load(write(name, "g.yaml")) if "\n" in name else
             archspec.load(name, resolution=_sizes(name)[1][0])).compile()
    model = randomise_bn(_model(graph))
    got, want = _onnx_and_torch(graph, model)
    assert list(got) == list(want) == list(graph.outputs)
    for key in want:
        scale = np.abs(want[key]).max()
        assert scale > 0 and np.abs(got[key] - want[key]).max() <= 1e-4 * scale, key


def test_ssdlite_outputs_are_torchvisions_raw_predictions():
    graph = archspec.load("ssdlite320_mobilenet_v3_large").compile()
    maps = [20 * 20, 10 * 10, 5 * 5, 3 * 3, 2 * 2, 1]
    anchors = 6 * sum(maps)
    assert list(graph.outputs) == ["bbox_regression", "cls_logits"]
    assert graph[graph.outputs["bbox_regression"]].shape == (anchors, 4)
    assert graph[graph.outputs["cls_logits"]].shape == (anchors, 91)
    assert graph[graph.taps["C4"]].shape == (672, 20, 20)
    assert graph.taps["C4"] == "stages.13.block0.expand.act"


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_segmentation_out_is_at_the_input_size(name):
    graph = archspec.load(name).compile()
    assert graph.outputs.keys() == {"out"}
    assert graph[graph.outputs["out"]].shape == (21, 520, 520)


def test_non_square_input_and_the_paper_gate(write):
    graph = archspec.load(write(PAPER_GATE, "g.yaml")).compile()
    assert graph.input_shape == (3, 96, 160)
    assert graph[graph.outputs["out"]].shape == (21, 96, 160)
    pool = graph["heads.lraspp.scale.pool"]
    assert pool.kind == "avg_pool" and pool.shape[1:] == (2, 2)  # 6x10 map, 3x5 / (2, 3)
    assert "heads.lraspp.scale.resize" in graph


def test_two_heads_name_their_outputs_and_cost_shows_each_part(write):
    graph = archspec.load(write(TWO_HEADS, "two.yaml")).compile()
    assert list(graph.outputs) == ["seg.out", "aspp.out"]
    assert graph[graph.outputs["aspp.out"]].shape == (21, 4, 4)
    report = cost(graph)
    assert [p.name for p in report.parts] == ["backbone", "heads.seg", "heads.aspp"]
    for field in ("params", "madds", "elementwise", "buffers"):
        assert sum(getattr(p, field) for p in report.parts) == getattr(report.totals, field)
    assert report.to_dict()["parts"][1]["type"] == "lraspp"


def test_a_backbone_without_heads_has_no_parts():
    report = cost(archspec.load("mobilenetv2", resolution=64).compile())
    assert report.parts == [] and "parts" not in report.to_dict()


# ---- located errors --------------------------------------------------------------------
def _problems(write, text: str):
    with pytest.raises(SpecError) as e:
        archspec.load(write(text, "bad.yaml")).compile()
    return e.value.problems


BASE = """
name: bad
input: {resolution: 64}
stages:
  - {block: conv, c: 16, s: 2}
  - {block: ir, t: 4, c: 24, s: 2}
  - {block: ir, t: 4, c: 32, s: 2}
  - {block: conv, c: 48, k: 1}
"""


def test_a_tap_naming_no_node_is_located_with_a_suggestion(write):
    (p,) = _problems(write, BASE + "taps: {C4: stages.1.expand}\n"
                     "heads:\n  - {block: deeplabv3, from: C4}\n")
    assert p.location.line == 9 and p.location.path == "taps.C4"
    assert "has no row, block or layer `stages.1.expand`" in p.message
    assert "stages.1.block0.expand" in p.hint


def test_a_head_reading_a_missing_tap_is_located(write):
    (p,) = _problems(write, BASE + "heads:\n  - {block: deeplabv3, from: C9}\n")
    assert p.location.line == 10 and "reads tap `C9`" in p.message
    assert "C1, C2, C3" in p.hint  # the automatic taps are listed


def test_a_head_with_the_wrong_number_of_taps_is_located(write):
    (p,) = _problems(write, BASE + "heads:\n  - {block: lraspp, from: C3}\n")
    assert p.location.line == 10 and "lraspp reads 2 taps" in p.message


@pytest.mark.parametrize("text,line,message", [
    (BASE + "  - {block: ssdlite}\n", 9, "is a head block"),
    (BASE + "heads:\n  - {block: ir, t: 6, c: 8, from: C3}\n", 10, "is not a head block"),
    (BASE + "heads:\n  - {block: deeplabv3}\n", 10, "reads no tap"),
    (BASE + "heads:\n  - {block: deeplabv3, from: C3}\n  - {block: deeplabv3, from: C2}\n",
     11, "two heads are named `deeplabv3`"),
    (BASE.replace("64}", "[64, 0]}"), 3, "less than the minimum"),
    (BASE + "taps: {C-4: stages.0}\n", 9, "`C-4` is not a name"),
    (BASE + "heads:\n  - {block: deeplabv3, from: C3, rates: [0]}\n", 10,
     "less than the minimum"),
])
def test_spec_mistakes_about_heads_are_located(write, text, line, message):
    problems = _problems(write, text)
    assert any(p.location.line == line and message in p.message for p in problems), problems


def test_the_cli_exits_2_on_a_bad_tap(write, tmp_path):
    from conftest import run_cli

    path = write(BASE + "taps: {C4: stages.9}\nheads:\n  - {block: deeplabv3, from: C4}\n")
    r = run_cli("cost", path)
    assert r.returncode == 2 and "bad.yaml" not in r.stdout
    assert "spec.yaml:9" in r.stderr and "stages.9" in r.stderr and "Traceback" not in r.stderr


def test_resolution_override_makes_a_non_square_input_square_and_back(write):
    spec = archspec.load(write(PAPER_GATE.replace("pool_k: [3, 5], pool_s: [2, 3]", ""),
                               "g.yaml"))
    assert spec.size == (96, 160)
    assert cost(spec.compile()).to_dict()["input"]["size"] == [96, 160]
    square = spec.with_(resolution=64)
    assert square.size == (64, 64) and square.compile().input_shape == (3, 64, 64)
    assert square.without_overrides().size == (96, 160)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_non_square_model_file_keeps_its_size(backend, tmp_path):
    """build -o of a non-square spec writes a file that reloads at the spec's own H x W
    (the stored resolution would make it square)."""
    path = tmp_path / ("m.pt" if backend == "torch" else "m.onnx")
    spec = archspec.load("lraspp_mobilenetv3_small_cityscapes")
    model = archspec.build(spec, backend=backend)
    archspec.backends.get_backend(backend).save(model, path, spec, spec.compile())
    again = archspec.load(path).compile()
    assert again.input_shape == spec.compile().input_shape == (3, 1024, 2048)
    assert cost(again).totals.madds == cost(spec.compile()).totals.madds


def test_diff_reports_ssdlite_anchors_as_rows_not_channels():
    from archspec.analysis.diff import diff

    graphs = [archspec.load(n).compile()   # 320 px: 3234 and 2034 anchors, > any width
              for n in ("ssdlite320_mobilenet_v3_large", "ssdlite_mobilenetv3_large")]
    anchors = []
    for graph in graphs:   # the built modules' (batch, anchors, 4) boxes
        with torch.no_grad():
            out = _model(graph).to("meta")(torch.zeros(1, *graph.input_shape, device="meta"))
        anchors.append(out["bbox_regression"].shape[1])
    assert anchors[0] != anchors[1]
    (head,) = [r for r in diff(*graphs).rows if r.level == "head"]
    changes = {c.field: c for c in head.changes}
    assert (changes["rows"].a, changes["rows"].b) == tuple(anchors)
    assert changes["rows"].where == ["classification", "regression"]
    assert "out channels" not in changes and changes["widest"].a < anchors[0]
