"""Batch-norm epsilon and momentum per spec (top-level ``bn: {eps, momentum}``), for models
trained with TensorFlow's settings: validated with located errors, carried by every IR
batch norm into torch (nn.BatchNorm2d), ONNX (the folded convs and BatchNormalization's
epsilon) and back through the importer; the shipped MobileNetV3 specs use the official
0.001 / 0.01, and no count changes."""
import numpy as np
import pytest

import archspec
from archspec.errors import SpecError
from archspec.ir.ops import BN_EPS, BN_MOMENTUM

BASE = """name: bn_demo
input: {resolution: 16, channels: 3}
classes: 10
stages:
  columns: [block, t, c, n, s]
  rows:
    - [conv, -, 16, 1, 2]
    - [ir, 4, 16, 2, 1]
head:
  - {block: pool}
  - {block: classifier}
"""
TF = BASE.replace("classes: 10\n", "classes: 10\nbn: {eps: 0.001, momentum: 0.01}\n")


def bns(graph) -> set:
    return {(n.op.eps, n.op.momentum) for n in graph if n.kind == "batchnorm"}


def test_default_is_torchs_and_the_setting_reaches_every_batch_norm():
    assert bns(archspec.loads(BASE).compile()) == {(BN_EPS, BN_MOMENTUM)} == {(1e-5, 0.1)}
    assert bns(archspec.loads(TF).compile()) == {(0.001, 0.01)}
    only_eps = BASE.replace("classes: 10\n", "classes: 10\nbn: {eps: 0.002}\n")
    assert bns(archspec.loads(only_eps).compile()) == {(0.002, 0.1)}


def test_the_setting_changes_no_figure():
    a, b = archspec.loads(BASE).cost().totals, archspec.loads(TF).cost().totals
    assert (a.params, a.buffers, a.madds, a.elementwise, a.mem_bytes) == \
        (b.params, b.buffers, b.madds, b.elementwise, b.mem_bytes)


@pytest.mark.parametrize("name", ["mobilenetv3_large", "mobilenetv3_small",
                                  "mobilenetv3_large_075", "mobilenetv3_small_075"])
def test_shipped_mobilenetv3_uses_the_official_batch_norm(name):
    assert bns(archspec.load(name).compile()) == {(0.001, 0.01)}


@pytest.mark.parametrize("setting,col,words", [
    ("bn: {eps: 0}", 11, "0 is less than or equal to the minimum of 0"),
    ("bn: {eps: -0.001}", 11, "less than or equal to the minimum of 0"),
    ("bn: {eps: .inf}", 11, "inf is not a finite number"),
    ("bn: {eps: .nan}", 11, "nan is not a finite number"),
    ("bn: {momentum: 0}", 16, "less than or equal to the minimum of 0"),
    ("bn: {momentum: 1.5}", 16, "1.5 is greater than the maximum of 1"),
    ("bn: {eps: small}", 11, 'expected number, got "small"'),
    ("bn: {epsilon: 0.001}", 15, "unknown key `epsilon`did you mean `eps`?"),
    ("bn: 0.001", 5, "expected object, got 0.001"),
])
def test_bad_settings_are_located_errors(setting, col, words):
    text = BASE.replace("classes: 10\n", f"classes: 10\n{setting}\n")
    with pytest.raises(SpecError) as e:
        archspec.loads(text).compile()
    (p,) = e.value.problems
    assert (p.location.line, p.location.column) == (4, col), p
    assert words in p.message + (p.hint or ""), p


def test_validate_cli_locates_a_bad_momentum(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("classes: 10\n", "classes: 10\nbn: {momentum: 2}\n"))
    r = subprocess.run([sys.executable, "-m", "archspec", "validate", str(path)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and f"{path}:4:16" in out and "Traceback" not in out


def test_torch_batch_norms_take_the_setting():
    torch = pytest.importorskip("torch")
    from archspec.backends import get_backend

    model = get_backend("torch").build(archspec.loads(TF).compile())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and {(m.eps, m.momentum) for m in norms} == {(0.001, 0.01)}


def _randomised(model, seed=1):
    """BN statistics with small variances, where epsilon matters."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) * 0.01 + 1e-4)
            elif t.is_floating_point() and name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    return model


@pytest.mark.parametrize("fold_bn", [True, False])
def test_onnx_uses_the_epsilon_and_imports_it_back(fold_bn):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from archspec.backends import get_backend
    from archspec.onnx_import import from_proto

    graph = archspec.loads(TF).compile()
    model = _randomised(get_backend("torch").build(graph, seed=0).eval())
    proto = get_backend("onnx").build(graph, weights=model.state_dict(), fold_bn=fold_bn).proto
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    (got,) = sess.run(None, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eps = BN_EPS
        other = model(torch.from_numpy(x)).numpy()
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale < np.abs(other - want).max()
    eps = {a.f for n in proto.graph.node if n.op_type == "BatchNormalization"
           for a in n.attribute if a.name == "epsilon"}
    assert eps == (set() if fold_bn else {np.float32(0.001)})
    if not fold_bn:
        assert bns(from_proto(proto)) == {(0.001, BN_MOMENTUM)}   # momentum: training only
