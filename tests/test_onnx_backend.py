"""The ONNX backend: for every shipped spec the exported model passes onnx.checker and
shape inference, has a dynamic batch axis, and onnxruntime computes what the torch backend
computes with the same weights (BN statistics randomised, so folding is really tested)."""
from __future__ import annotations

import numpy as np
import pytest

import archspec
from archspec.errors import BackendError
from archspec.spec.loader import SHIPPED

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from archspec.backends import get_backend  # noqa: E402
from archspec.backends.onnx_lower import OPSET, foldable  # noqa: E402
from archspec.spec.loader import loads  # noqa: E402
from figures import smallest_resolution  # noqa: E402

SMALL = 64  # resolution for ImageNet specs (or the smallest above where heads compile);
# CIFAR specs stay at 32
TOL = 1e-4
# The Cityscapes LR-ASPP specs compile from 784 px (Fig. 10's 49x49 gate window), minutes
# in onnxruntime and torch here: each runs at 96 px with a 3x5 window instead, the rest of
# the spec (RF2, the atrous last block) as shipped.
HEAVY = ("lraspp_mobilenetv3_large_cityscapes", "lraspp_mobilenetv3_small_cityscapes")
SMALL_GATE = """
extends: {name}
name: {name}_small_gate
heads:
  - {{block: lraspp, from: [low, high], filters: 128, pool_k: [3, 5], pool_s: [2, 3]}}
"""
SPECS = [p if p.stem not in HEAVY else f"{p.stem}_small_gate"
         for p in sorted(SHIPPED.glob("*.yaml"))]


def _graph(path, resolution=None):
    if str(path).endswith("_small_gate"):
        name = str(path).removesuffix("_small_gate")
        spec = loads(SMALL_GATE.format(name=name), f"{path}.yaml", SHIPPED)
        return spec.with_(resolution=96).compile()
    spec = archspec.load(path)
    if resolution is None:
        resolution = smallest_resolution(path, min(spec.resolution, SMALL))
    return spec.with_(resolution=resolution).compile()


def _torch_model(graph, seed=0):
    """A torch model with every weight and BN statistic random and non-trivial."""
    model = get_backend("torch").build(graph, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) * 1.5 + 0.25)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
            elif name.endswith("weight") and t.dim() == 1:  # BN gamma
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 2:  # classifier: unit-scale logits, not torchvision's 0.01
                t.copy_(torch.randn(t.shape, generator=gen) / t.shape[1] ** 0.5)
    return model.eval()


def _session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.serialize(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnx")


# ---- every shipped spec -------------------------------------------------------------------
@pytest.mark.parametrize("path", SPECS, ids=[getattr(p, "stem", p) for p in SPECS])
def test_onnxruntime_equals_torch(backend, path):
    graph = _graph(path)
    tmodel = _torch_model(graph)
    model = backend.build(graph, weights=tmodel.state_dict())
    proto = model.proto
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    assert proto.opset_import[0].version == OPSET >= 17
    assert model.folded and not any(n.op_type == "BatchNormalization" and n.name in model.folded
                                    for n in proto.graph.node)
    (inp,) = proto.graph.input
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    sess = _session(model)
    rng = np.random.default_rng(0)
    names = [o.name for o in sess.get_outputs()]
    assert names == list(graph.outputs)
    for batch in (1, 3):
        x = rng.standard_normal((batch, *graph["input"].shape)).astype(np.float32)
        got = dict(zip(names, sess.run(None, {"input": x})))
        with torch.no_grad():
            want = tmodel(torch.from_numpy(x))
        want = {k: v.numpy() for k, v in (want if isinstance(want, dict)
                                          else {"output": want}).items()}
        for name, node in graph.outputs.items():
            assert got[name].shape == want[name].shape == (batch, *graph[node].shape)
            assert np.abs(want[name]).max() > 1e-2, name  # not a comparison between zeros
            # float32 round-off grows with the logits (ghostnet's reach ~130 at random init)
            assert np.abs(got[name] - want[name]).max() < \
                TOL * max(1.0, np.abs(want[name]).max()), name


def test_node_names_are_ir_names(backend):
    graph = _graph("mobilenetv3_small")
    model = backend.build(graph, seed=0)
    ir = {n.name for n in graph}
    names = [n.name for n in model.proto.graph.node]
    assert len(names) == len(set(names))
    for name in names:  # helpers carry "<ir name>.<part>"
        assert name in ir or name.rsplit(".", 1)[0] in ir, name
    folded_bns = set(model.folded)
    assert {n for n in ir if graph[n].kind == "conv2d"} <= set(names)
    assert not folded_bns & set(names)
    inits = {t.name for t in model.proto.graph.initializer}
    assert "stages.0.block0.conv.weight" in inits and "stages.0.block0.conv.bias" in inits


def test_unfolded_keeps_batchnorm_and_matches(backend):
    graph = _graph("rexnet")  # BN inside SE, partial adds, swish
    tmodel = _torch_model(graph, seed=3)
    model = backend.build(graph, weights=tmodel.state_dict(), fold_bn=False)
    bns = [n for n in model.proto.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == sum(n.kind == "batchnorm" for n in graph)
    x = np.random.default_rng(1).standard_normal((2, *graph["input"].shape)).astype(np.float32)
    (got,) = _session(model).run(None, {"input": x})
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < TOL


def test_batchnorm_after_replicate_is_not_folded(backend):
    graph = _graph("mobilenetv2_replication_b")
    model = backend.build(graph, seed=0)
    kept = [n.name for n in model.proto.graph.node if n.op_type == "BatchNormalization"]
    assert kept and all(graph[graph[k].inputs[0]].kind != "conv2d" for k in kept)
    assert len(kept) + len(foldable(graph)) == sum(n.kind == "batchnorm" for n in graph)


def test_fp16(backend):
    graph = _graph("mobilenetv3_small")
    tmodel = _torch_model(graph)
    model = backend.build(graph, weights=tmodel.state_dict(), fp16=True)
    proto = model.proto
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert all(t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.INT64)
               for t in proto.graph.initializer)
    x = np.random.default_rng(0).standard_normal((2, *graph["input"].shape)).astype(np.float32)
    (got,) = _session(model).run(None, {"input": x.astype(np.float16)})
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float16
    assert np.abs(got.astype(np.float32) - want).max() < 0.05 * np.abs(want).max() + 1e-2


def test_random_weights_are_seeded(backend):
    graph = _graph("mobilenetv1")
    a = backend.build(graph, seed=1).serialize()
    assert a == backend.build(graph, seed=1).serialize()
    assert a != backend.build(graph, seed=2).serialize()


def test_taps_become_outputs(backend):
    graph = _graph("mobilenetv2")
    model = backend.build(graph, seed=0, features=["C4", "C5"])
    assert [o.name for o in model.proto.graph.output] == ["C4", "C5"]
    tmodel = get_backend("torch").build(graph, seed=0, features=["C4", "C5"]).eval()
    model = backend.build(graph, weights=tmodel.state_dict(), features=["C4", "C5"])
    x = np.random.default_rng(0).standard_normal((1, *graph["input"].shape)).astype(np.float32)
    got = dict(zip(["C4", "C5"], _session(model).run(None, {"input": x})))
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x))
    for k in ("C4", "C5"):
        assert np.abs(got[k] - want[k].numpy()).max() < TOL
    with pytest.raises(BackendError, match="no tap `C9`"):
        backend.build(graph, features=["C9"])


def test_weights_from_files(backend, tmp_path):
    graph = _graph("mobilenetv3_small")
    tmodel = _torch_model(graph)
    torch.save(tmodel.state_dict(), tmp_path / "bare.pt")
    torch.save({"state_dict": tmodel.state_dict()}, tmp_path / "wrapped.pt")
    ref = backend.build(graph, weights=tmodel.state_dict()).serialize()
    assert backend.build(graph, weights=tmp_path / "bare.pt").serialize() == ref
    assert backend.build(graph, weights=str(tmp_path / "wrapped.pt")).serialize() == ref
    other = _graph("mobilenetv3_large")
    with pytest.raises(BackendError, match="does not match the spec"):
        backend.build(other, weights=tmp_path / "bare.pt")
    with pytest.raises(BackendError, match="not found"):
        backend.build(graph, weights=tmp_path / "missing.pt")


def test_save_is_atomic_and_loadable(backend, tmp_path):
    graph = _graph("mobilenetv1")
    model = backend.build(graph, seed=0)
    path = tmp_path / "sub" / "m.onnx"
    backend.save(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx"]
    loaded = backend.load(path)
    assert loaded.SerializeToString() == model.serialize()
    props = {p.key: p.value for p in loaded.metadata_props}
    assert props["archspec.fold_bn"] == "true" and props["archspec.spec"] == "mobilenetv1"


def test_cli_build_onnx(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "v3s.onnx"
    r = run_cli("build", "mobilenetv3_small", "--backend", "onnx", "-r", "96", "-o", out)
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(str(out), full_check=True)
    r = run_cli("build", "mobilenetv3_small", "-b", "torch", "-r", "96", "-o", tmp_path / "w.pt")
    assert r.returncode == 0, r.stderr  # an archspec torch file (spec + checksum + weights)
    r = run_cli("build", "mobilenetv3_small", "-b", "onnx", "-r", "96", "--weights",
                tmp_path / "w.pt", "--fp16", "-o", tmp_path / "h.onnx")
    assert r.returncode == 0, r.stderr
    r = run_cli("build", "mobilenetv3_small", "-b", "onnx", "-r", "96", "--summary")
    assert r.returncode == 0 and "stages.0.block0.conv" in r.stdout
    r = run_cli("build", "mobilenetv3_small", "-b", "torch", "--fp16")
    assert r.returncode == 2 and "does not take --fp16" in r.stderr
