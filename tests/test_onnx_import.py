"""Importing ONNX files: our own exports cost exactly what their specs cost (unfolded:
every figure; BN-folded: MAdds exactly, params as folded), files written by
torch.onnx.export import too, unsupported ops are named, and the CLI takes .onnx files."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.errors import ArchspecError
from archspec.ir.tensors import numel
from archspec.spec.loader import SHIPPED

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from archspec.backends import get_backend  # noqa: E402
from archspec.backends.onnx_lower import folded_params  # noqa: E402
from archspec import onnx_import  # noqa: E402
from archspec.onnx_import import load_onnx  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

SPECS = sorted(SHIPPED.glob("*.yaml"))
FIGURES = ("params", "buffers", "madds", "elementwise", "mem_bytes")


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnx")


def _export(backend, graph, path, **options):
    backend.save(backend.build(graph, seed=0, check=False, **options), path)
    return path


def _figures(entry):
    return {k: getattr(entry, k) for k in FIGURES}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_own_export_costs_equal_the_spec(backend, path, tmp_path):
    graph = archspec.load(path).compile()  # at the spec's own resolution
    want = cost(graph)
    unfolded = cost(load_onnx(_export(backend, graph, tmp_path / "u.onnx", fold_bn=False)))
    assert _figures(unfolded.totals) == _figures(want.totals)
    assert [(e.name, _figures(e)) for e in unfolded.blocks] == \
        [(e.name, _figures(e)) for e in want.blocks]
    assert unfolded.peak_bytes == want.peak_bytes
    folded = cost(load_onnx(_export(backend, graph, tmp_path / "f.onnx")))
    assert folded.totals.madds == want.totals.madds
    assert folded.totals.params == folded_params(graph)
    folded_bns = backend.build(graph, check=False).folded
    assert folded.totals.buffers == \
        want.totals.buffers - 2 * sum(graph[bn].op.channels for bn in folded_bns)


def test_resolution_override(backend, tmp_path):
    graph = archspec.load("mobilenetv2").compile()
    path = _export(backend, graph, tmp_path / "m.onnx", fold_bn=False)
    at160 = cost(load_onnx(path, resolution=160)).totals
    assert _figures(at160) == _figures(cost(archspec.load("mobilenetv2", resolution=160)
                                            .compile()).totals)


def _torch_export(name, tmp_path, dynamic_hw=False):
    torch = pytest.importorskip("torch")
    graph = archspec.load(name, resolution=64).compile()
    model = get_backend("torch").build(graph, seed=0).eval()
    path = tmp_path / f"{name}_torch.onnx"
    axes = {"x": {0: "n", 2: "h", 3: "w"} if dynamic_hw else {0: "n"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes=axes)
    return graph, path


@pytest.mark.parametrize("name", ["mobilenetv3_small", "rexnet", "mobilenetv2_replication_b"])
def test_torch_onnx_export_imports(name, tmp_path):
    graph, path = _torch_export(name, tmp_path)  # torch folds BN when exporting eval models
    got = cost(load_onnx(path)).totals
    assert got.madds == cost(graph).totals.madds
    assert got.params == folded_params(graph)


def test_dynamic_spatial_axes_need_a_resolution(tmp_path):
    graph, path = _torch_export("mobilenetv1", tmp_path, dynamic_hw=True)
    with pytest.raises(ArchspecError, match="dynamic height/width; pass --resolution"):
        load_onnx(path)
    assert cost(load_onnx(path, resolution=64)).totals.madds == cost(graph).totals.madds


def _tiny(nodes, inits=(), opset=17):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "tiny", [x], [y], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_op_is_named(tmp_path):
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    model = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="stem", pads=[1] * 4),
                   helper.make_node("Tanh", ["c"], ["y"], name="stem.act")], [w])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ArchspecError, match=r"node `stem.act` \(Tanh\).*cannot import"):
        load_onnx(path)
    r = run_cli("cost", path)
    assert r.returncode == 2 and "Tanh" in r.stderr and "stem.act" in r.stderr


def test_wrong_padding_and_clip_are_explained(tmp_path):
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    bad_pad = _tiny([helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[0] * 4)], [w])
    onnx.save(bad_pad, str(tmp_path / "p.onnx"))
    with pytest.raises(ArchspecError, match="padding"):
        load_onnx(tmp_path / "p.onnx")
    clip = _tiny([helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1] * 4),
                  helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip")],
                 [w, numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(1.0, np.float32), "hi")])
    onnx.save(clip, str(tmp_path / "c.onnx"))
    with pytest.raises(ArchspecError, match=r"Clip\(-1.0, 1.0\)"):
        load_onnx(tmp_path / "c.onnx")


def test_not_an_onnx_file(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ArchspecError, match="not a readable ONNX file|expected one image"):
        load_onnx(tmp_path / "junk.onnx")
    with pytest.raises(ArchspecError, match="file not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_cli_cost_and_diff(backend, tmp_path):
    graph = archspec.load("mobilenetv3_small").compile()
    path = _export(backend, graph, tmp_path / "v3s.onnx", fold_bn=False)
    r = run_cli("cost", path, "-f", "json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["totals"]
    want = cost(graph).totals
    assert (got["params"], got["madds"]) == (want.params, want.madds)
    r = run_cli("diff", "mobilenetv3_small", path, "-f", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "mobilenetv3_small" in json.dumps(d)
    r = run_cli("cost", path, "--width", "0.5")
    assert r.returncode == 2 and "--width" in r.stderr


def test_cost_of_yaml_does_not_import_onnx():
    code = ("import sys; from archspec.cli import main\n"
            "try: main(['cost', 'mobilenetv2', '-f', 'json'])\n"
            "except SystemExit: pass\n"
            "assert 'onnx' not in sys.modules and 'torch' not in sys.modules, 'imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _mutate(model, rng):
    """One to three structural edits of ``model``: a dropped or extra input, a dropped or
    changed attribute, another op type, a resized initialiser, a deleted node."""
    nodes, inits = model.graph.node, model.graph.initializer
    for _ in range(rng.randint(1, 3)):
        n = nodes[rng.randrange(len(nodes))]
        r = rng.random()
        if r < 0.2 and n.input:
            del n.input[rng.randrange(len(n.input))]
        elif r < 0.35 and n.attribute:
            del n.attribute[rng.randrange(len(n.attribute))]
        elif r < 0.5:
            n.input.append(inits[rng.randrange(len(inits))].name)
        elif r < 0.6:
            n.op_type = rng.choice(["Conv", "Add", "Mul", "Concat", "Slice", "Gemm",
                                    "Reshape", "Squeeze", "ReduceMean", "Clip"])
        elif r < 0.7 and n.attribute and n.attribute[0].ints:
            n.attribute[0].ints[0] = rng.choice([0, -1, 7, 2 ** 40])
        elif r < 0.85:
            t = inits[rng.randrange(len(inits))]
            if t.dims:
                t.dims[0] = rng.choice([0, 1, 3, 1000])
        else:
            del nodes[rng.randrange(len(nodes))]


def test_malformed_files_are_located_errors(backend):
    import copy
    import random

    graph = archspec.load("rexnet", width=0.5, resolution=32, classes=10).compile()
    base = backend.build(graph, seed=0, check=False).proto
    rng = random.Random(0)
    failed = 0
    for _ in range(300):
        model = copy.deepcopy(base)
        _mutate(model, rng)
        try:
            cost(onnx_import.from_proto(model, source="m.onnx"))
        except ArchspecError as e:
            failed += 1
            assert str(e).startswith("m.onnx: ") and "\n" not in str(e)
    assert failed > 100  # the edits do break files; none escapes as another exception


def _runtime_sized_resize(hw_of):
    """Conv(3 -> 4) then a Resize whose sizes are Concat(Slice(Shape(c), 0:2), hw), as
    torch.onnx exports ``F.interpolate(c, size=...)``; ``hw_of(shape)`` returns the nodes
    and initialisers that compute ``hw`` from the Shape output ``shape``."""
    import numpy as np
    from onnx import numpy_helper

    def const(name, values):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
            np.array(values, np.int64), name))

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    hw_nodes, hw_inits = hw_of("shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4),
             helper.make_node("Shape", ["c"], ["shape"], name="up/Shape"),
             const("axes", [0]), const("starts", [0]), const("ends", [2]),
             helper.make_node("Slice", ["shape", "starts", "ends", "axes"], ["nc"],
                              name="up/Slice"),
             *hw_nodes,
             helper.make_node("Concat", ["nc", "hw"], ["sizes"], name="up/Concat", axis=0),
             helper.make_node("Resize", ["c", "", "", "sizes"], ["y"], name="up/Resize",
                              mode="linear", coordinate_transformation_mode="half_pixel")]
    model = _tiny(nodes, [w, *hw_inits])
    for axis, name in ((2, "h"), (3, "w")):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = name
    return model


def _fixed_hw(shape):
    import numpy as np
    from onnx import numpy_helper

    return [], [numpy_helper.from_array(np.array([16, 12], np.int64), "hw")]


def _twice_hw(shape):
    """hw = Slice(shape, -2:) * 2 (a negative start, an open end, explicit steps)."""
    import numpy as np
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             (("s", [-2]), ("e", [2 ** 63 - 1]), ("a", [0]), ("st", [1]), ("two", [2]))]
    return [helper.make_node("Slice", [shape, "s", "e", "a", "st"], ["hw_in"], name="hw"),
            helper.make_node("Mul", ["hw_in", "two"], ["hw"], name="hw/Mul")], inits


def _gathered_hw(shape):
    """hw = Cast(Concat(Unsqueeze(Gather(shape, 2)), Unsqueeze(Gather(shape, 3)))): torch's
    ``size=x.shape[-2:]`` exported with dynamic H and W."""
    import numpy as np
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             (("two", 2), ("three", 3), ("zero", [0]))]
    nodes = []
    for axis, index in (("rows", "two"), ("cols", "three")):
        nodes += [helper.make_node("Gather", [shape, index], [f"{axis}0"], name=f"{axis}/G"),
                  helper.make_node("Unsqueeze", [f"{axis}0", "zero"], [axis], name=f"{axis}/U")]
    nodes += [helper.make_node("Concat", ["rows", "cols"], ["hw_raw"], name="hw/Concat", axis=0),
              helper.make_node("Cast", ["hw_raw"], ["hw"], name="hw/Cast", to=TensorProto.INT64)]
    return nodes, inits


@pytest.mark.parametrize("hw_of", [_fixed_hw, _twice_hw, _gathered_hw])
def test_resize_to_sizes_computed_from_shape_folds(hw_of, tmp_path):
    """torchvision's segmentation models spell their upsampling sizes this way; the
    output shape is onnxruntime's, the conv's MAdds come from its weight shape and the
    resize counts one elementwise op per output element (docs/conventions.md)."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    model = _runtime_sized_resize(hw_of)
    path = tmp_path / "up.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in (8, 6):
        x = np.zeros((1, 3, size, size), np.float32)
        want = sess.run(None, {"x": x})[0].shape
        graph = load_onnx(path, resolution=size)
        out = graph[graph.outputs["output"]]
        assert (1, *out.shape) == want
        assert [n.kind for n in graph] == ["input", "conv2d", "resize"]
        got = cost(graph).totals
        assert got.madds == 4 * 3 * 3 * 3 * size * size
        assert got.elementwise == numel(out.shape)
        assert got.params == 4 * 3 * 3 * 3


def test_runtime_values_in_shape_arithmetic_are_located_errors(tmp_path):
    """A Slice or Concat that mixes shape values with a tensor computed at run time is
    refused naming the node and the run-time input, on the CLI too (exit 2)."""
    import numpy as np
    from onnx import numpy_helper

    def concat_of_feature_map(shape):   # hw is the feature map itself
        return [helper.make_node("Identity", ["c"], ["hw"], name="hw")], []

    def slice_to_pooled_end(shape):     # hw's end is a value pooled from the feature map
        ends = helper.make_node("GlobalAveragePool", ["c"], ["pooled"], name="pool")
        start = numpy_helper.from_array(np.array([2], np.int64), "two")
        return [ends, helper.make_node("Slice", [shape, "two", "pooled"], ["hw"],
                                       name="hw/Slice")], [start]

    for hw_of, node, runtime in ((concat_of_feature_map, "up/Concat", "hw"),
                                 (slice_to_pooled_end, "hw/Slice", "pooled")):
        path = tmp_path / f"{node.replace('/', '_')}.onnx"
        onnx.save(_runtime_sized_resize(hw_of), str(path))
        pattern = (rf"{re.escape(str(path))}: node `{node}` .*input `{runtime}` is "
                   "computed at run time")
        with pytest.raises(ArchspecError, match=pattern):
            load_onnx(path, resolution=8)
        r = run_cli("cost", path, "--resolution", "8")
        assert r.returncode == 2 and f"`{node}`" in r.stderr and "Traceback" not in r.stderr
