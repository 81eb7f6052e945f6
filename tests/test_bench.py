"""`archspec bench`: the record's structure, statistics and errors. Nothing here is a
timing assertion: runs are tiny (1-3 repeats) and only checked to be positive."""
from __future__ import annotations

import json
import os

import pytest

import archspec
from archspec.bench import (SCHEMA, Measurement, Settings, machine, measure, percentile,
                            run, summarize, versions)
from archspec.errors import ArchspecError
from tests.conftest import run_cli

torch = pytest.importorskip("torch")
TINY = dict(repeats=2, warmup=1)


def _check_doc(doc, backend, resolutions, mode="forward"):
    assert doc["schema"] == SCHEMA
    assert doc["settings"]["backend"] == backend
    assert doc["settings"]["resolutions"] == list(resolutions)
    assert doc["machine"]["cpu"] and doc["machine"]["logical_cores"] >= 1
    assert doc["versions"]["archspec"] == archspec.__version__
    assert [r["resolution"] for r in doc["results"]] == list(resolutions)
    for r in doc["results"]:
        assert r["mode"] == mode
        assert len(r["times_ms"]) == doc["settings"]["repeats"]
        assert all(t > 0 for t in r["times_ms"])
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= max(r["times_ms"])
        assert r["images_per_s"] > 0 and r["madds"] > 0 and r["params"] > 0


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_forward_record(backend):
    pytest.importorskip("onnxruntime")
    spec = archspec.load("mobilenetv3_small")
    doc = run(spec, Settings(backend, threads=1, batch=2, resolutions=(64, 96), **TINY))
    _check_doc(doc, backend, (64, 96))
    json.dumps(doc)  # JSON-ready
    assert doc["results"][0]["madds"] < doc["results"][1]["madds"]


def test_train_step_record():
    spec = archspec.load("mobilenetv2_cifar")
    steps = []
    doc = run(spec, Settings("torch", batch=2, train_step=True, **TINY),
              lambda k=1: steps.append(k))
    _check_doc(doc, "torch", (32,), mode="train_step")
    assert len(steps) == 3  # warm-up + repeats, one progress call each


def test_threads_are_pinned():
    run(archspec.load("mobilenetv1"), Settings("torch", threads=1, resolutions=(32,),
                                              repeats=1, warmup=0))
    assert torch.get_num_threads() == 1


def test_statistics():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 90) == 5
    assert percentile(list(range(11)), 90) == pytest.approx(9.0)
    m = summarize(Measurement(96, "forward", 4, 1, 1, times_ms=[4.0, 2.0, 3.0, 10.0]))
    assert (m.median_ms, m.min_ms, m.images_per_s) == (3.5, 2.0, 4 * 1000 / 3.5)
    assert m.p90_ms == pytest.approx(8.2)  # 4 + 0.7 * (10 - 4)


def test_machine_and_versions():
    info = machine()
    assert info["logical_cores"] == os.cpu_count() and info["python"]
    v = versions()
    assert v["torch"].startswith(torch.__version__.split("+")[0])


@pytest.mark.parametrize("settings, match", [
    (Settings("onnxruntime", train_step=True), "inference only"),
    (Settings("tensorflow"), "unknown bench backend"),
    (Settings("torch", threads=0), "--threads"),
    (Settings("torch", repeats=0), "--repeats"),
])
def test_bad_settings(settings, match):
    with pytest.raises(ArchspecError, match=match):
        settings.check()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error():
    from archspec.errors import BackendError

    graph = archspec.load("mobilenetv1", resolution=32).compile()
    with pytest.raises(BackendError, match="needs a CUDA GPU"):
        measure(graph, Settings("cuda", **TINY))


@pytest.mark.skipif(not os.environ.get("ARCHSPEC_SLOW"), reason="torch.compile takes ~1 min "
                    "on a small CPU; set ARCHSPEC_SLOW=1")
def test_torch_compile_record():
    doc = run(archspec.load("mobilenetv1"), Settings("torch-compile", resolutions=(32,), **TINY))
    _check_doc(doc, "torch-compile", (32,))
    assert doc["results"][0]["first_step_s"] > 0


def test_cli(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "b.json"
    r = run_cli("bench", "mobilenetv3_small", "--backend", "onnxruntime", "--threads", "1",
                "--batch", "1", "-r", "64,96", "--repeats", "2", "--warmup", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "median ms" in r.stdout and "p90 ms" in r.stdout
    _check_doc(json.loads(out.read_text()), "onnxruntime", (64, 96))
    r = run_cli("bench", "mobilenetv2_cifar", "-b", "torch", "--train-step", "--repeats", "1",
                "--warmup", "0", "-f", "json")
    assert r.returncode == 0, r.stderr
    _check_doc(json.loads(r.stdout), "torch", (32,), mode="train_step")
    r = run_cli("bench", "mobilenetv2", "-b", "onnxruntime", "--train-step")
    assert r.returncode == 2 and "inference only" in r.stderr
    r = run_cli("bench", "mobilenetv2", "-r", "96,abc")
    assert r.returncode == 2 and "--resolution" in r.stderr
    r = run_cli("bench", "mobilenetv2", "-b", "tpu")
    assert r.returncode == 2 and "tpu" in r.stderr
