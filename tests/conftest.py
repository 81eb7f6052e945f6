import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archspec" / "specs"


@pytest.fixture(scope="session", autouse=True)
def _validation_cache(tmp_path_factory):
    """The tests' own validation cache (spec/validcache.py), not the user's; commands run
    in subprocesses inherit it."""
    import os

    os.environ["ARCHSPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("archspec-cache"))


@pytest.fixture
def write(tmp_path):
    """Write a spec text to a file in tmp_path and return its path."""

    def _write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


def benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_cli(*args, **kw):
    import subprocess

    return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kw)


def randomise_bn(model, seed: int = 1, scale: float = 0.1):
    """A torch model with BN statistics and biases away from the identity (so that a wrong
    epsilon or BN fold shows in the outputs)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.is_floating_point() and name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=gen) * scale)
    return model


def onnx_and_torch_outputs(graph, model, batch: int = 2):
    """(onnxruntime's, torch's) outputs of ``model`` exported through the ONNX backend,
    on one seeded random batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from archspec.backends import get_backend

    proto = get_backend("onnx").build(graph, weights=model.state_dict())
    sess = ort.InferenceSession(proto.serialize(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, *graph.input_shape)).astype(np.float32)
    (got,) = sess.run(None, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    return got, want


def ort_kernel_runs(graph, ks):
    """(domain, op, kernel) for every node onnxruntime runs of ``graph``, mapped to the
    kernel of ``ks`` (the latency rules) it belongs to; a node no kernel owns must be a
    layout reorder. Also returns the names of the kernels seen."""
    from archspec.latency import attribution, timing

    owner = {n: k for k in ks for n in k.nodes}
    runs, seen = [], set()
    for domain, op, node in timing.optimized_nodes(graph):
        ir = attribution.ir_name(node, owner)
        if ir is None:
            assert "Reorder" in op or node == "", (op, node)
            continue
        runs.append((domain, op, owner[ir]))
        seen.add(owner[ir].name)
    return runs, seen
