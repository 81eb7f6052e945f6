"""The torch backend: exactness against the cost pass for every shipped spec, the module's
behaviour (modes, memory formats, export), the file format, and the backend registry."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

import archspec
from archspec.analysis.cost import cost
from archspec.errors import BackendError
from archspec.spec.loader import SHIPPED

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archspec.backends import available, get_backend, register, unregister  # noqa: E402
from figures import smallest_resolution  # noqa: E402

SPECS = sorted(SHIPPED.glob("*.yaml"))
SMALL = 96  # resolution for tests that are not about resolution (or the smallest above it
# where a spec's heads compile: SSDLite from 32 px, the Cityscapes LR-ASPP gate at 784 px)
HEAVY = 256  # above this size, shapes are checked on the meta device (no real forward)


@pytest.fixture(scope="module")
def backend():
    return get_backend("torch")


def _spec(path, resolution=None):
    spec = archspec.load(path)
    return spec.with_(resolution=resolution) if resolution else spec


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _bn_buffers(model) -> int:
    return sum(b.numel() for name, b in model.named_buffers()
               if name.endswith(("running_mean", "running_var")))


def _madds(model, shape) -> int:
    """FlopCounterMode's count / 2, on the meta device (shapes only: the count is the
    same, and the 1024x2048 Cityscapes specs take no time)."""
    model = model.eval().to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


# ---- exactness, for every shipped spec ---------------------------------------------------
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_params_and_buffers_equal_the_cost_pass(backend, path):
    graph = _spec(path).compile()
    model = backend.build(graph)
    totals = cost(graph).totals
    assert _params(model) == totals.params
    assert _bn_buffers(model) == totals.buffers


@pytest.mark.parametrize("resolution", [None, 160], ids=["spec", "r160"])
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_flop_counter_madds_equal_the_cost_pass(backend, path, resolution):
    graph = _spec(path, resolution and smallest_resolution(path, resolution)).compile()
    model = backend.build(graph, seed=0)
    assert _madds(model, graph[graph.inputs[0]].shape) == cost(graph).totals.madds


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_output_and_tap_shapes_equal_the_graph(backend, path):
    size = smallest_resolution(path, SMALL)
    graph = _spec(path, size).compile()
    device = "meta" if size > HEAVY else "cpu"
    x = torch.randn(1, *graph.input_shape, device=device)
    model = backend.build(graph, seed=0).eval().to(device)
    taps = backend.build(graph, features=list(graph.taps), seed=0).eval().to(device)
    with torch.no_grad():
        out, feats = model(x), taps(x)
    if list(graph.outputs) == ["output"]:
        out = {"output": out}  # a single `output` is returned as a tensor
    assert list(out) == list(graph.outputs)
    for name, node in graph.outputs.items():
        assert tuple(out[name].shape[1:]) == graph[node].shape, name
    assert list(feats) == list(graph.taps)
    for tap, node in graph.taps.items():
        assert tuple(feats[tap].shape[1:]) == graph[node].shape, tap


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_module_names_are_the_ir_names(backend, path):
    graph = _spec(path, smallest_resolution(path, SMALL)).compile()
    model = backend.build(graph)
    leaves = {name for name, m in model.named_modules() if not list(m.children())} - {""}
    report = {e.name for e in cost(graph).layers}
    assert leaves <= report
    for name, _ in model.named_parameters():
        assert name.rsplit(".", 1)[0] in report


# ---- the model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def v2():
    return archspec.load("mobilenetv2").with_(resolution=SMALL).compile()


@pytest.fixture(scope="module")
def v3s():
    return archspec.load("mobilenetv3_small").with_(resolution=SMALL).compile()


def test_features_returns_the_requested_taps(backend):
    graph = archspec.load("mobilenetv2").compile()
    model = backend.build(graph, features=["C4", "C5"]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert list(out) == ["C4", "C5"]
    assert tuple(out["C4"].shape) == (1, *graph[graph.taps["C4"]].shape) == (1, 96, 14, 14)
    assert tuple(out["C5"].shape) == (1, *graph[graph.taps["C5"]].shape) == (1, 320, 7, 7)
    assert not any(name.startswith("head") for name, _ in model.named_parameters())


def test_unknown_tap_lists_the_available_ones(backend, v2):
    with pytest.raises(BackendError, match=r"no tap `C9`.*available taps: C1, C2, C3, C4, C5") as e:
        backend.build(v2, features=["C4", "C9"])
    assert str(e.value).count("C5") == 1, "the known taps are listed once"


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone(backend, v2):
    state = torch.get_rng_state()
    a = backend.build(v2, seed=7).state_dict()
    b = backend.build(v2, seed=7).state_dict()
    assert torch.equal(state, torch.get_rng_state())
    c = backend.build(v2, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stages.1.block0.dw.conv.weight"],
                           c["stages.1.block0.dw.conv.weight"])


def test_init_follows_torchvision(backend, v2):
    model = backend.build(v2, seed=0)
    sd = model.state_dict()
    bn = "stages.1.block0.dw.bn"
    assert torch.all(sd[f"{bn}.weight"] == 1) and torch.all(sd[f"{bn}.bias"] == 0)
    assert torch.all(sd[f"{bn}.running_var"] == 1) and torch.all(sd[f"{bn}.running_mean"] == 0)
    fc = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert torch.all(fc.bias == 0) and abs(fc.weight.std().item() - 0.01) < 0.001
    conv = model.get_submodule("stages.0.block0.conv")
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.2 * (2 / fan_out) ** 0.5


def test_train_and_eval_modes_run_and_differ(backend, v3s):
    model = backend.build(v3s, seed=0)
    x = torch.randn(2, 3, SMALL, SMALL)
    model.train()
    loss = model(x).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.get_submodule("stages.0.block0.bn").num_batches_tracked.item() == 1
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)


def test_channels_last_matches_contiguous(backend, v3s):
    model = backend.build(v3s, seed=0).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_print_shows_the_module_tree(backend, v2):
    text = str(backend.build(v2))
    assert text.startswith("mobilenetv2(")
    assert "(expand): Group(" in text and "ReLU6(inplace=True)" in text
    assert "def forward" not in text


def test_summary_lists_every_layer_with_its_cost(backend, v2):
    model = backend.build(v2)
    report = cost(v2)
    text = backend.summary(model, v2, report)
    assert f"{report.totals.params:,}" in text and f"{report.totals.madds:,}" in text
    assert text.count("Conv2d") == sum(1 for e in report.layers if e.type == "conv2d")


def test_summary_of_a_head_spec_lists_each_output(backend):
    graph = archspec.load("ssdlite320_mobilenet_v3_large", resolution=160).compile()
    text = backend.summary(backend.build(graph), graph, cost(graph))
    total, *named = text.rstrip().split("\n")[-3:]
    assert total.split()[0] == "total" and f"{cost(graph).totals.madds:,}" in total
    for line, (name, node) in zip(named, graph.outputs.items()):
        shape = "x".join(map(str, graph[node].shape))
        assert line.split() == [name, "output", "<-", node, shape]


def test_bench_runs_a_train_step_on_a_head_spec():
    from archspec.bench import Settings, run

    spec = archspec.load("lraspp_mobilenet_v3_large")
    doc = run(spec, Settings(backend="torch", resolutions=(64,), train_step=True, repeats=1,
                             warmup=0))
    (m,) = doc["results"]
    assert (m["resolution"], m["mode"], len(m["times_ms"])) == (64, "train_step", 1)
    assert m["madds"] == cost(spec.with_(resolution=64).compile()).totals.madds


def test_partial_add_replicate_and_slice_lower_exactly(backend):
    from archspec.ir import Graph
    from archspec.ir import ops

    g = Graph("toy", meta={"resolution": 4, "channels": 3, "width": 1.0, "classes": 5})
    x = g.add("input", ops.Input((3, 4, 4)))
    r = g.add("rep", ops.Replicate(8), [x])
    s = g.add("cut", ops.Slice(1, 3), [r])
    a = g.add("add", ops.Add(partial=True), [r, s])
    c = g.add("cat", ops.Concat(), [a, x])
    g.outputs["output"] = c
    model = backend.build(g)
    t = torch.arange(1 * 3 * 4 * 4, dtype=torch.float32).reshape(1, 3, 4, 4)
    rep = torch.cat([t, t, t[:, :2]], 1)
    added = rep.clone()
    added[:, :2] += rep[:, 1:3]
    torch.testing.assert_close(model(t), torch.cat([added, t], 1))


def test_torch_export_works(backend):
    graph = archspec.load("mobilenetv3_small").with_(resolution=SMALL).compile()
    model = backend.build(graph, seed=0).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    start = time.perf_counter()
    exported = torch.export.export(model, (x,))
    assert time.perf_counter() - start < 60
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


# ---- save / load -------------------------------------------------------------------------
def test_save_load_round_trip(backend, tmp_path):
    spec = archspec.load("mobilenetv3_small", width=0.75, resolution=SMALL, classes=10)
    graph = spec.compile()
    model = backend.build(graph, seed=1)
    path = tmp_path / "v3s.pt"
    backend.save(model, path, SHIPPED / "mobilenetv3_small.yaml", graph)
    loaded = backend.load(path)
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))
    payload = torch.load(path, weights_only=True)
    assert payload["archspec_version"] == archspec.__version__
    assert payload["overrides"] == {"resolution": SMALL, "width": 0.75, "classes": 10}
    assert "MobileNetV3-Small" in payload["spec"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_load_keeps_features(backend, tmp_path, v2):
    model = backend.build(v2, features=["C5"])
    backend.save(model, tmp_path / "f.pt", "mobilenetv2", v2)
    out = backend.load(tmp_path / "f.pt")(torch.randn(1, 3, SMALL, SMALL))
    assert list(out) == ["C5"]


def test_save_refuses_a_spec_that_is_not_the_graph(backend, tmp_path, v2):
    model = backend.build(v2)
    with pytest.raises(BackendError, match="does not describe the graph"):
        backend.save(model, tmp_path / "x.pt", "mobilenetv3_small", v2)
    assert not (tmp_path / "x.pt").exists()


@pytest.fixture
def saved(backend, tmp_path, v3s):
    path = tmp_path / "v3s.pt"
    backend.save(backend.build(v3s, seed=0), path, "mobilenetv3_small", v3s)
    return path


def test_truncated_file_is_a_backend_error(backend, saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackendError, match="not a readable archspec torch file") as e:
        backend.load(saved)
    assert "\n" not in str(e.value)


def test_tampered_weights_are_a_backend_error(backend, saved):
    from archspec.backends import torch_io

    payload = torch.load(saved, weights_only=True)
    payload["state_dict"]["stages.0.block0.conv.weight"][0, 0, 0, 0] += 1.0
    torch.save(payload, saved)
    with pytest.raises(BackendError, match="checksum mismatch"):
        backend.load(saved)
    payload["state_dict"]["stages.0.block0.conv.weight"] = torch.zeros(3, 3)
    payload["sha256"] = torch_io.digest(payload)
    torch.save(payload, saved)
    with pytest.raises(BackendError, match=r"does not match its spec: stages.0.block0.conv"):
        backend.load(saved)


def test_weights_of_another_spec_are_a_backend_error(backend, saved, v2):
    from archspec.backends import torch_io

    payload = torch.load(saved, weights_only=True)
    payload["state_dict"] = backend.build(v2).state_dict()
    payload["sha256"] = torch_io.digest(payload)
    torch.save(payload, saved)
    with pytest.raises(BackendError, match="does not match its spec"):
        backend.load(saved)


def test_pickled_objects_are_refused(backend, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "archspec.torch/1", "spec": object()}, path)
    with pytest.raises(BackendError, match="not a readable archspec torch file"):
        backend.load(path)


def test_spec_with_extends_is_saved_self_contained(backend, tmp_path):
    (tmp_path / "narrow.yaml").write_text(
        f"extends: {SHIPPED / 'mobilenetv2.yaml'}\nname: narrow\nwidth: 0.5\n"
        f"input: {{resolution: {SMALL}, channels: 3}}\n")
    spec = archspec.load(tmp_path / "narrow.yaml")
    graph = spec.compile()
    backend.save(backend.build(graph), tmp_path / "n.pt", tmp_path / "narrow.yaml", graph)
    (tmp_path / "narrow.yaml").unlink()
    text = torch.load(tmp_path / "n.pt", weights_only=True)["spec"]
    assert not any(line.startswith("extends:") for line in text.splitlines())
    assert _params(backend.load(tmp_path / "n.pt")) == cost(graph).totals.params


# ---- registry ----------------------------------------------------------------------------
def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(BackendError) as e:
        get_backend("troch")
    message = str(e.value)
    assert "unknown backend `troch`" in message and "torch" in message
    assert "did you mean `torch`?" in message
    assert "known backends: " + ", ".join(available()) in message


def test_registering_a_name_twice_raises():
    class Dummy:
        def build(self, graph, **kw):
            return graph

    register("dummy-test", Dummy)
    try:
        assert isinstance(get_backend("dummy-test"), Dummy)
        with pytest.raises(BackendError, match="already registered"):
            register("dummy-test", Dummy)
        with pytest.raises(BackendError, match="already registered"):
            register("torch", Dummy)
    finally:
        unregister("dummy-test")


def test_missing_dependency_says_what_to_install(monkeypatch):
    register("needs-missing", "archspec_no_such_plugin_module:Backend", "no-such-pkg==1.0")
    try:
        with pytest.raises(BackendError, match=r"pip install no-such-pkg==1.0"):
            get_backend("needs-missing")
    finally:
        unregister("needs-missing")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendError, match=r"needs `torch`.*pip install torch==2\.13\.0"):
        get_backend("torch")


def test_importing_the_registry_does_not_import_torch():
    code = ("import sys, archspec.backends as b; names = b.available(); "
            "assert 'torch' in names, names; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
