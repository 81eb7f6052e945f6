"""Torch eager latency profiles (``calibrate --backend torch``): every IR node is its own
kernel, a ticked copy of the torch model times each node, and the profile, its raw file,
its fingerprint, its refit and its predictions all go through the torch path. One tiny
real calibration runs (two small networks, one round, injected probe); no test asserts a
time beyond "positive"."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import archspec
import pytest

from archspec.latency import calibrate as cal
from archspec.latency import fitting
from archspec.latency import raw as rawfile
from archspec.latency.kernels import backend_kernels, eager_kernels, kernels
from archspec.latency.model import TREE_FAMILIES, family
from archspec.latency.profile import load
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "archspec" / "specs").glob("*.yaml"))
torch = pytest.importorskip("torch")


def _graph(name, resolution=None):
    return archspec.load(name, resolution=resolution).compile()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_node_but_the_input_is_one_eager_kernel_of_a_known_family(path):
    g = _graph(str(path))
    ks = eager_kernels(g)
    assert [n for k in ks for n in k.nodes] == [n.name for n in g if n.kind != "input"]
    assert all(family(k.type) in TREE_FAMILIES for k in ks), \
        sorted({k.type for k in ks if family(k.type) not in TREE_FAMILIES})
    assert all(k.type.endswith(".p") for k in ks if k.type.startswith("conv"))
    assert all(k.reorder_elems == 0 and k.layout == "nchw" for k in ks)


def test_eager_kernels_keep_what_onnxruntime_fuses_apart():
    g = _graph("mobilenetv3_small")
    ort, eager = kernels(g, 8), eager_kernels(g)
    counts = Counter(k.type.split(".")[0] for k in eager)
    nodes = Counter(n.kind for n in g)
    assert counts["bn"] == nodes["batchnorm"] and counts["act"] == nodes["activation"]
    assert "se" not in counts and counts["mul"] == nodes["mul"]
    # the work is the same, only split differently
    assert sum(k.macs for k in eager) == sum(k.macs for k in ort)
    assert sum(k.params for k in eager) == sum(k.params for k in ort)
    # an activation's own kernel carries its class, a conv's none
    assert {k.act for k in eager if k.type == "act.hswish"} == {2}
    assert {k.act for k in eager if k.type.startswith("conv")} == {0}
    assert backend_kernels(g, "torch") == eager
    assert [k.type for k in backend_kernels(g, "onnxruntime", 8)] == [k.type for k in ort]
    with pytest.raises(ValueError, match="backend 'tvm'"):
        backend_kernels(g, "tvm")


def test_a_partial_add_is_add_partial_and_its_slice_a_kernel_of_its_own(tmp_path):
    spec = tmp_path / "mnx.yaml"      # MobileNeXt at alpha 1/2: a + x[:, :cb]
    spec.write_text(f"extends: {ROOT / 'archspec' / 'specs' / 'mobilenext.yaml'}\n"
                    "name: mnx_half\ndefaults: {alpha: 0.5}\n")
    types = Counter(k.type for k in eager_kernels(_graph(str(spec))))
    assert types["add_partial"] > 0 and types["slice"] == types["add_partial"]
    assert "add.masked" not in types     # onnxruntime's lowering, not torch's


def test_the_torch_lowering_tags_every_fx_node_with_its_ir_node():
    from archspec.backends import get_backend

    g = _graph("shufflenet_v2_x1_0", 64)
    model = get_backend("torch").build(g, seed=0)
    work = [n for n in model.graph.nodes if n.op in ("call_module", "call_function")]
    names = {n.name for n in g}
    assert work and all(n.meta.get("ir") in names for n in work)
    # the replication note's 1x1 copies: slices and concats tagged with their replicate
    g = _graph("mobilenetv2_replication_b", 64)
    model = get_backend("torch").build(g, seed=0)
    kinds = {g[n.meta["ir"]].kind for n in model.graph.nodes if "ir" in n.meta}
    assert "replicate" in kinds


def test_ticked_runs_time_every_node_and_compute_what_the_model_computes():
    from archspec.backends import get_backend
    from archspec.latency import torch_timing as tt

    g = _graph("mobilenetv3_small", 64)
    model = get_backend("torch").build(g, seed=0).eval()
    timed, names = tt.instrumented(model)
    x = torch.randn(2, *g.input_shape)
    with torch.inference_mode():
        assert torch.equal(timed(x), model(x))
    assert len(tt._TICKS) == len(names) + 1
    runs, counts = tt.node_runs(g, 1, runs=3, warmup=1, batch=2)
    assert len(runs) == 3
    computed = {n.name for n in g if n.kind != "input"}
    # a replicate of one copy, a flatten of a vector may return their input: no fx node
    assert set(counts) <= computed and len(counts) >= 0.9 * len(computed)
    assert all(set(r) == set(counts) and all(us > 0 for us in r.values()) for r in runs)


@pytest.fixture(scope="module")
def raw_torch(tmp_path_factory):
    """A tiny real torch calibration (seed 43: two small motif networks and a small
    held-out one, as tests/test_calibrate_quick.py), saved."""
    from test_calibrate_quick import fake_probe

    probe = fake_probe()
    raw = cal.calibrate(threads=1, networks=2, variants=0, repeats=2, rounds=1, warmup=1,
                        min_round_ms=0, holdout=1, seed=43, probe=probe, backend="torch")
    path = tmp_path_factory.mktemp("torch") / "raw.json"
    rawfile.save_raw(raw, path)
    return raw, path, probe


def test_a_torch_calibration_records_torch_and_fits_eager_kernels(raw_torch, tmp_path):
    raw, path, probe = raw_torch
    assert probe.calls == [1, 1, 1]
    assert raw["backend"] == "torch" and raw["nchwc_block"] == 0
    assert "partial_add" not in raw
    assert raw["fingerprint"]["env"]["torch"] == torch.__version__
    assert len(raw["fingerprint"]["network"]["runs"]) == 3   # timed in torch
    graphs = rawfile.networks_from_record(raw["networks_ir"])
    want = [(i, k.type) for i, g in enumerate(graphs) for k in eager_kernels(g)]
    assert [(s["net"], s["type"]) for s in raw["samples"]] == want
    assert all(s["us"] > 0 for s in raw["samples"] if s["type"] != "reshape")
    profile = fitting.build(raw, n_trees=0)
    assert profile.backend == "torch" and profile.settings["mode"] == "eager"
    assert profile.validation["networks"] == 1
    profile.save(tmp_path / "p.json")
    again = load(tmp_path / "p.json")
    g = graphs[0]
    assert again.kernels(g) == eager_kernels(g)
    assert again.model.predict(again.kernels(g)).total_ms > 0
    # the raw file keeps the backend: a refit fits eager kernels, the digest covers it
    refit = fitting.build(rawfile.load_raw(path), n_trees=0)
    assert refit.backend == "torch"
    assert refit.calibration["raw_sha256"] == profile.calibration["raw_sha256"]
    assert refit.model.to_dict() == profile.model.to_dict()
    assert rawfile.digest({**raw, "backend": "onnxruntime"}) != rawfile.digest(raw)


def test_a_torch_raw_file_is_not_refitted_as_onnxruntime(raw_torch, tmp_path):
    from archspec.errors import ArchspecError

    raw, path, _ = raw_torch
    doc = json.loads(path.read_text())
    doc.pop("backend")          # read as onnxruntime: the kernels no longer match
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ArchspecError, match="do not match"):
        rawfile.load_raw(tmp_path / "r.json")
    doc["backend"] = "tvm"
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ArchspecError, match="backend 'tvm'"):
        rawfile.load_raw(tmp_path / "r.json")


def test_latency_with_a_torch_profile_predicts_eager_kernels_and_measures_torch(
        raw_torch, tmp_path):
    raw, _, _ = raw_torch
    profile = fitting.build(raw, n_trees=0)
    path = tmp_path / "torch.json"
    profile.save(path)
    env = {**os.environ, "ARCHSPEC_NO_PROBE": "1"}
    r = run_cli("latency", "mobilenetv3_small", "-p", str(path), "--resolution", "64",
                "--check", "--rounds", "1", "--repeats", "2", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["backend"] == "torch"
    assert len(doc["kernels"]) == len(eager_kernels(_graph("mobilenetv3_small", 64)))
    assert doc["check"]["measured_ms"] > 0
    # the setup check compares torch's version, not onnxruntime's
    assert doc["machine_check"]["differences"] == []


def test_a_profile_of_an_unknown_backend_is_refused(tmp_path):
    doc = json.loads((ROOT / "profiles" / "cpu-ort-1t-zen3.json").read_text())
    doc["backend"] = "tvm"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    r = run_cli("cost", "mobilenetv2", "--profile", str(tmp_path / "p.json"))
    assert r.returncode == 2 and "backend 'tvm'" in r.stderr, r.stderr


def test_torch_probe_times_the_same_kernels_as_onnxruntimes():
    from archspec.latency.probes import PROBE_KERNELS, probe

    got = probe(1, rounds=1, round_ms=0, warmup=1, backend="torch")
    assert set(got) == set(PROBE_KERNELS) and all(us > 0 for us in got.values())


def test_the_probe_cache_keeps_backends_apart(tmp_path, monkeypatch):
    from archspec.latency import profile as prof

    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    assert prof.probe_key(1, "torch") != prof.probe_key(1) == prof.probe_key(1, "onnxruntime")
    prof._PROBED.clear()
    calls = []

    def run(threads):
        calls.append(threads)
        return {"conv1x1": 1.0}
    prof.cached_probe(1, now=10.0, run=run, backend="torch")
    assert prof.cached_probe(1, now=20.0, run=run, backend="torch")[1].startswith("cached")
    assert prof.cached_probe(1, now=20.0, run=run)[1] == "measured"
    assert calls == [1, 1]


def test_the_hint_for_a_torch_profile_names_the_backend():
    from archspec.latency.profile import MachineCheck

    c = MachineCheck("t.json", False, backend="torch")
    assert "archspec calibrate --backend torch --quick" in c.message()
    assert "--backend" not in MachineCheck("o.json", False).message()


def test_from_raw_refuses_a_backend_option(tmp_path):
    r = run_cli("calibrate", "--from-raw", str(ROOT / "profiles" / "cpu-ort-1t-zen3.raw.json"),
                "--backend", "torch", "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "--backend" in r.stderr
    assert not (tmp_path / "x.json").exists()


def _bench_module(name):
    from conftest import benchmark

    return benchmark(name)


def test_latency_check_keeps_a_torch_run_in_a_block_and_file_of_its_own(tmp_path):
    lc = _bench_module("latency_check")
    doc = tmp_path / "latency.md"
    doc.write_text(f"# x\n\n{lc.BEGIN}\nonnxruntime figures\n{lc.END}\n")
    begin, end = lc.markers("torch")
    lc.write_doc(doc, f"{begin}\ntorch run 1\n{end}", begin, end, missing=lc.TORCH_HEADING)
    lc.write_doc(doc, f"{begin}\ntorch run 2\n{end}", begin, end, missing=lc.TORCH_HEADING)
    text = doc.read_text()
    assert "onnxruntime figures" in text and "torch run 2" in text
    assert "torch run 1" not in text and text.count(lc.TORCH_HEADING.strip()) == 1
    assert lc.markers("onnxruntime") == (lc.BEGIN, lc.END)
    assert lc.default_json("torch").endswith("latency_check_torch.json")
    assert lc.default_json("onnxruntime").endswith("latency_check.json")


def test_torch_measurements_fix_glibcs_malloc_thresholds_and_record_it():
    import platform

    from archspec.bench import allocator_note, settle_allocator
    from archspec.latency.probes import timing_env

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    note = allocator_note()
    assert (note is not None) == glibc
    assert settle_allocator() == note
    if glibc:
        assert "M_MMAP_THRESHOLD=32 MiB" in note and "M_TRIM_THRESHOLD=1 GiB" in note
        assert "M_MMAP_MAX=0" in note
    env = timing_env("torch", 1)
    assert env["allocator"] == note and "LD_PRELOAD" in env
    assert "allocator" not in timing_env("onnxruntime", 1)


def test_the_torch_probe_leaves_torchs_threads_as_it_found_them():
    # the probe runs with the profile's threads inside search / adapt, which go on to
    # train their proxies with their own
    from archspec.latency.probes import probe

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe(1, rounds=1, round_ms=0, warmup=1, backend="torch")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_glibcs_mmap_threshold_is_what_settle_allocator_says():
    import ctypes
    import platform

    from archspec.bench import MMAP_THRESHOLD, settle_allocator

    if not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc only")
    settle_allocator()
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc older than 2.33 (no mallinfo2)")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped_after_malloc(n):   # bytes glibc mapped for one block of n bytes
        before = libc.mallinfo2().hblkhd
        p = libc.malloc(n)
        try:
            return libc.mallinfo2().hblkhd - before
        finally:
            libc.free(p)
    assert mapped_after_malloc(MMAP_THRESHOLD // 4) == 0        # from the heap: reused
    assert mapped_after_malloc(2 * MMAP_THRESHOLD) == 0         # past the ceiling too


def test_latency_check_with_a_torch_profile_and_no_torch_is_a_users_error(raw_torch,
                                                                           tmp_path):
    import subprocess
    import sys

    raw, _, _ = raw_torch
    path = tmp_path / "torch.json"
    fitting.build(raw, n_trees=0).save(path)
    hide = ("import importlib.util as u; f = u.find_spec; "
            "u.find_spec = lambda n, *a: None if n == 'torch' else f(n, *a); "
            "from archspec.cli import main; "
            f"main(['latency', 'mobilenetv3_small', '-p', {str(path)!r}, '--check'])")
    r = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "ARCHSPEC_NO_PROBE": "1"})
    assert r.returncode == 2, r.stderr
    assert "latency --check with a torch profile" in r.stderr
    assert "pip install torch" in r.stderr and "Traceback" not in r.stderr


def test_a_torch_profile_compares_torchs_version_not_onnxruntimes():
    from archspec.latency.profile import setup_warnings

    zen3_torch = load(ROOT / "profiles" / "cpu-torch-1t-zen3.json")
    here = dict(zen3_torch.versions)
    assert not [w for w in setup_warnings(zen3_torch, zen3_torch.machine, here)]
    here["torch"] = "9.9.9"
    here["onnxruntime"] = "0.0.1"        # not what a torch profile runs on
    warned = setup_warnings(zen3_torch, zen3_torch.machine, here)
    assert warned == [f"profile measured with torch {zen3_torch.versions['torch']}, "
                      "this setup has 9.9.9"]


def test_the_hint_for_a_torch_profile_gives_torchs_times():
    from archspec.latency.profile import calibrate_hint

    hint = calibrate_hint("torch")
    assert "(about 2 min)" in hint and "(about 13 min)" in hint
    assert "(about 90 s)" in calibrate_hint() and "(about 10 min)" in calibrate_hint()


def test_sweep_and_cost_with_a_torch_profile_predict_what_latency_does(raw_torch, tmp_path):
    raw, _, _ = raw_torch
    path = tmp_path / "torch.json"
    fitting.build(raw, n_trees=0).save(path)
    env = {**os.environ, "ARCHSPEC_NO_PROBE": "1"}
    lat = run_cli("latency", "mobilenetv3_small", "-p", str(path), "--resolution", "96",
                  "--format", "json", env=env)
    assert lat.returncode == 0, lat.stderr
    want = json.loads(lat.stdout)["total_ms"]
    cost = run_cli("cost", "mobilenetv3_small", "-p", str(path), "--resolution", "96",
                   "--format", "json", env=env)
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["latency"]["total_ms"] == want
    sweep = run_cli("sweep", "mobilenetv3_small", "--resolution", "96,128", "-p", str(path),
                    "--format", "json", env=env)
    assert sweep.returncode == 0, sweep.stderr
    rows = json.loads(sweep.stdout)["front"]
    at96 = [r for r in rows if r["resolution"] == 96]
    assert at96 and at96[0]["latency_ms"] == pytest.approx(want, abs=1e-3)
