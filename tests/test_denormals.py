"""Denormal floats are flushed while archspec times a model (archspec.bench.flush_denormals):
random-weight networks' activations shrink towards denormals, which a trained network's
do not, and Intel CPUs compute on denormals in microcode (docs/latency.md, Denormals).
No timing here: each test checks what the timed code sees."""
from __future__ import annotations

import numpy as np
import pytest

import archspec
from archspec import bench
from archspec.latency import raw as rawfile
from archspec.latency.timing import time_runs

TINY = np.float32(1e-39)      # below float32's smallest normal (1.18e-38)

needs_flush = pytest.mark.skipif(bench.denormals_note() is None,
                                 reason="x86-64 Linux with glibc only")


def _survives() -> bool:
    """Does a denormal survive arithmetic on this thread (no DAZ / FTZ)?"""
    return bool(TINY * np.float32(1.0) != 0)


@needs_flush
def test_flush_denormals_flushes_inside_and_restores_after():
    assert _survives()
    with bench.flush_denormals():
        assert not _survives()
    assert _survives()
    with pytest.raises(RuntimeError):
        with bench.flush_denormals():
            raise RuntimeError("a failing step")
    assert _survives()


@needs_flush
def test_timed_runs_see_flushed_denormals_and_nothing_after():
    seen = []
    times = time_runs(lambda: seen.append(_survives()), 3)
    assert len(times) == 3 and seen == [False, False, False]
    assert _survives()


@needs_flush
def test_bench_measure_times_with_denormals_flushed(monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "make_step", lambda g, s: lambda: seen.append(_survives()))
    graph = archspec.load("mobilenetv1", resolution=32).compile()
    m = bench.measure(graph, bench.Settings("onnxruntime", repeats=2, warmup=1))
    assert len(m.times_ms) == 2 and seen == [False, False, False] and _survives()


def test_onnxruntime_sessions_flush_in_their_own_threads():
    pytest.importorskip("onnxruntime")
    opts = bench.ort_session_options(2)
    assert opts.get_session_config_entry("session.set_denormal_as_zero") == "1"


def test_the_raw_digest_covers_the_denormal_setting():
    raw = {"samples": [], "networks_ir": {"graphs": []}, "overhead": [], "walls": []}
    before = rawfile.digest(raw)
    assert rawfile.digest({**raw, "denormals": "flushed"}) != before
    assert rawfile.digest({**raw, "denormals": None}) == before
