"""NetAdapt (archspec adapt): each kept step cuts predicted latency by at least delta,
the written step specs predict what the log says, and the run stops at the target."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT

pytest.importorskip("torch")
PROFILE = ROOT / "profiles" / "cpu-ort-1t.json"


def test_a_few_netadapt_steps(tmp_path):
    from archspec.search.objectives import latency_ms
    from archspec.sources import load

    seed = latency_ms(load("mobilenetv2_cifar", width=0.35, resolution=16).compile(),
                      PROFILE)
    spec = tmp_path / "tiny.yaml"
    spec.write_text("extends: mobilenetv2_cifar\nwidth: 0.35\ninput: {resolution: 16}\n")
    from typer.testing import CliRunner

    from archspec.commands.adapt import COMMANDS

    target = round(seed * 0.9, 4)
    out = tmp_path / "out"
    r = CliRunner().invoke(COMMANDS["adapt"], [
        str(spec), "--target-ms", str(target), "-p", str(PROFILE), "--delta", "0.05",
        "--proxy-resolution", "16", "--max-steps", "3", "-o", str(out), "-f", "json"])
    assert r.exit_code == 0, r.output
    log = json.loads(r.stdout[r.stdout.index("{"):])
    assert log["schema"] == "archspec.adapt/1"
    assert log["start"]["latency_ms"] == pytest.approx(seed, abs=1e-3)
    assert log["reached"] and log["final"]["latency_ms"] <= target
    previous = log["start"]["latency_ms"]
    for step in log["steps"]:
        kept = step["kept"]
        assert kept["latency_ms"] <= previous * 0.95 + 1e-4
        assert kept["score"] == max(p["score"] for p in step["proposals"])
        previous = kept["latency_ms"]
    assert len(log["specs"]) == len(log["steps"]) + 1
    for path, point in zip(log["specs"], [log["start"], *(s["kept"] for s in log["steps"])]):
        assert latency_ms(load(path).compile(), PROFILE) == pytest.approx(
            point["latency_ms"], abs=1e-3)
    assert (out / "adapt.png").stat().st_size > 0
    assert json.loads((out / "adapt.json").read_text())["steps"] == log["steps"]


@pytest.mark.parametrize("args, words", [
    (("mobilenetv2_cifar", "--target-ms", "nan"), "--target-ms nan: not a finite number"),
    (("mobilenetv2_cifar", "--target-ms", "inf"), "--target-ms inf: not a finite number"),
    (("mobilenetv2_cifar", "--target-ms", "1", "-o", "AFILE"), "not a directory"),
    (("ONNX", "--target-ms", "1"), "not a model file"),
])
def test_adapt_refuses_user_mistakes(tmp_path, args, words):
    from conftest import run_cli

    (tmp_path / "afile").write_text("x")
    subs = {"AFILE": tmp_path / "afile", "ONNX": _onnx(tmp_path)
            if "ONNX" in args else None}
    r = run_cli("adapt", *(subs.get(a) or a for a in args), "-p", PROFILE)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert "--t," not in r.stderr and "Traceback" not in r.stderr


def _onnx(tmp_path):
    pytest.importorskip("onnx")
    import archspec
    from archspec.backends import get_backend

    backend, path = get_backend("onnx"), tmp_path / "m.onnx"
    graph = archspec.load("mobilenetv2_cifar", width=0.35, resolution=16).compile()
    backend.save(backend.build(graph, seed=0, check=False), path)
    return path
