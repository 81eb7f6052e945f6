"""The activations ReXNet Table 11 compares (GELU, ELU, softplus, leaky ReLU, beside swish) in
every backend: named as papers and timm write them, costed (elementwise, no MAdds), built
in torch (params and FlopCounterMode equal the cost), lowered to ONNX (onnxruntime equals
torch, GELU at opset 17 as its erf formula), imported back to the same IR, fused into a
conv only where onnxruntime fuses them, and predicted by a profile calibrated without
them."""
import subprocess
import sys

import numpy as np
import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.ir.ops import ACTIVATION_CONSTANTS
from archspec.vocab import nonlinearity

NEW = ("swish", "gelu", "elu", "softplus", "leaky_relu")
ALIASES = {"silu": "swish", "swish": "swish", "gelu": "gelu", "GELU": "gelu", "elu": "elu",
           "ELU": "elu", "softplus": "softplus", "leaky_relu": "leaky_relu",
           "lrelu": "leaky_relu", "LeakyReLU": "leaky_relu"}
RES = 16


def spec_text(nl: str, resolution: int = RES) -> str:
    return (f"name: act_{nl}\ninput: {{resolution: {resolution}, channels: 3}}\nclasses: 10\n"
            f"defaults: {{nl: {nl}}}\nstages:\n  columns: [block, t, c, n, s]\n  rows:\n"
            "    - [conv, -, 16, 1, 2]\n    - [ir, 4, 16, 2, 1]\n    - [dwsep, -, 24, 1, 2]\n"
            "head:\n  - {block: pool}\n  - {block: classifier}\n")


def graph_of(nl: str, resolution: int = RES):
    return archspec.loads(spec_text(nl, resolution)).compile()


def activations(graph) -> list[tuple[str, str]]:
    return [(n.name, n.op.fn) for n in graph if n.kind == "activation"]


# ---- names -------------------------------------------------------------------------------
@pytest.mark.parametrize("word,fn", sorted(ALIASES.items()))
def test_aliases_name_the_canonical_activation(word, fn):
    assert nonlinearity(word) == (fn, "")
    assert {f for _, f in activations(graph_of(word))} == {fn}


def test_validate_accepts_the_names_and_an_unknown_one_gets_did_you_mean(tmp_path):
    files = []
    for word in ALIASES:
        files.append(tmp_path / f"{word}.yaml")
        files[-1].write_text(spec_text(word))
    ok = subprocess.run([sys.executable, "-m", "archspec", "validate", *map(str, files)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec_text("gelus"))
    r = subprocess.run([sys.executable, "-m", "archspec", "validate", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown nonlinearity `gelus`" in r.stdout + r.stderr
    assert "did you mean `gelu`" in r.stdout + r.stderr and "Traceback" not in r.stderr


# ---- cost --------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", NEW)
def test_an_activation_costs_one_elementwise_op_per_output_and_no_madds(fn):
    graph = graph_of(fn)
    base = cost(graph_of("relu"))
    report = cost(graph)
    acts = [n for n in graph if n.kind == "activation"]
    assert acts and all(n.op.fn == fn for n in acts)
    assert (report.totals.params, report.totals.madds) == (base.totals.params,
                                                           base.totals.madds)
    assert report.totals.elementwise == base.totals.elementwise
    for row in report.layers:
        if row.name in {n.name for n in acts}:
            assert row.madds == 0 and row.elementwise == int(np.prod(graph[row.name].shape))


# ---- torch -------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", NEW)
@pytest.mark.parametrize("resolution", [RES, 24])
def test_torch_params_and_flops_equal_the_cost(fn, resolution):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archspec.backends import get_backend

    graph = graph_of(fn, resolution)
    model = get_backend("torch").build(graph).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    totals = cost(graph).totals
    assert sum(p.numel() for p in model.parameters()) == totals.params
    assert counter.get_total_flops() == 2 * totals.madds


def test_torch_modules_keep_the_documented_constants():
    pytest.importorskip("torch")
    from archspec.backends.torch_lower import ACTIVATIONS

    for fn, constants in ACTIVATION_CONSTANTS.items():
        module = ACTIVATIONS[fn]()
        assert {k: getattr(module, k) for k in constants} == constants
    assert ACTIVATIONS["gelu"]().approximate == "none"


@pytest.mark.parametrize("fn", ("gelu", "elu", "softplus", "leaky_relu"))
def test_training_memory_rule_matches_what_autograd_saves(fn):
    """The saved-tensor rule (torch_rules.training) against autograd's hooks, to the byte:
    ELU and leaky ReLU in place keep their output (no copy), GELU and softplus their
    input."""
    torch = pytest.importorskip("torch")
    from archspec.backends import get_backend
    from archspec.backends.torch_memory import saved_for_backward
    from archspec.backends.torch_rules import training

    graph = graph_of(fn)
    model = get_backend("torch").build(graph)
    x = torch.zeros(2, 3, RES, RES)
    assert saved_for_backward(model, x) == training(graph, batch=2).peak_bytes


# ---- onnx --------------------------------------------------------------------------------
def onnx_vs_torch(graph, opset=None):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from archspec.backends import get_backend
    from conftest import randomise_bn

    model = randomise_bn(get_backend("torch").build(graph, seed=0).eval(), scale=0.5)
    proto = get_backend("onnx").build(graph, weights=model.state_dict(), opset=opset).proto
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, RES, RES)).astype(np.float32) * 3
    (got,) = sess.run(None, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    return proto, got, want


@pytest.mark.parametrize("fn,opset", [(fn, None) for fn in NEW] + [("gelu", 17)])
def test_onnxruntime_equals_torch_and_the_file_imports_back(fn, opset):
    from archspec.onnx_import import from_proto

    graph = graph_of(fn)
    proto, got, want = onnx_vs_torch(graph, opset)
    assert np.abs(want).max() > 1e-2
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    types = {n.op_type for n in proto.graph.node}
    if fn == "gelu":
        assert ("Gelu" in types) == (opset is None) and ("Erf" in types) == (opset == 17)
    back = from_proto(proto)
    assert activations(back) == activations(graph)


def test_an_onnx_activation_with_other_constants_is_refused():
    pytest.importorskip("onnx")
    from onnx import helper

    from archspec.errors import ArchspecError
    from archspec.onnx_import import from_proto

    graph = graph_of("leaky_relu")
    from archspec.backends import get_backend

    proto = get_backend("onnx").build(graph, seed=0).proto
    node = next(n for n in proto.graph.node if n.op_type == "LeakyRelu")
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("alpha", 0.2))
    with pytest.raises(ArchspecError, match=rf"`{node.name}` \(LeakyRelu\): alpha=0.2"):
        from_proto(proto)


# ---- latency -----------------------------------------------------------------------------
@pytest.mark.parametrize("fn", NEW)
def test_kernel_fusion_matches_onnxruntime(fn):
    """Every node onnxruntime runs maps to one of our kernels and every kernel is run:
    leaky ReLU fuses into its conv, the others run as kernels of their own."""
    pytest.importorskip("onnxruntime")
    from archspec.latency import attribution, probes, timing
    from archspec.latency.kernels import kernels

    graph = graph_of(fn)
    ks = kernels(graph, probes.nchwc_block() or 16)
    owner = {n: k for k in ks for n in k.nodes}
    seen = set()
    for _, op, node in timing.optimized_nodes(graph):
        ir = attribution.ir_name(node, owner)
        if ir is None:
            assert "Reorder" in op or node == "", (op, node)
            continue
        seen.add(owner[ir].name)
    assert seen == {k.name for k in ks}
    alone = {k.type for k in ks if k.type.startswith("act.")}
    assert alone == (set() if fn == "leaky_relu" else {f"act.{fn}"})


@pytest.mark.parametrize("fn", NEW)
def test_shipped_profile_predicts_a_spec_with_the_activation(fn):
    from pathlib import Path

    from archspec.latency.check import predict
    from archspec.latency.profile import load

    profile = load(Path(archspec.__file__).parents[1] / "profiles" / "cpu-ort-1t.json")
    kernels = {k.type: k.model for k in predict(graph_of(fn), profile).kernels}
    if fn != "leaky_relu":
        assert kernels[f"act.{fn}"] in (f"act.{fn}", "act")
