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


def _mul_by_one(n: int) -> bytes:
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    g = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [one])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@needs_flush
def test_onnxruntime_sessions_flush_in_every_thread_and_leave_this_one_alone():
    """A two-thread session from ort_session, run under flush_denormals (as time_runs
    runs it), reads denormal inputs as 0 in all its threads (its pool thread by
    onnxruntime's option: without it half the elements stayed denormal); building it
    leaves this thread's flags as they were (the option alone flushes it for good)."""
    pytest.importorskip("onnxruntime")
    n = 1 << 20
    sess = bench.ort_session(_mul_by_one(n), bench.ort_session_options(2))
    assert _survives()
    x = np.full(n, TINY, np.float32)
    out = []
    time_runs(lambda: out.append(sess.run(None, {"x": x})[0]), 1)
    assert not out[0].any()                  # every element flushed, whichever thread
    assert sess.run(None, {"x": x})[0].any()   # outside: this thread's share survives
    assert _survives()


def test_a_reworded_denormal_note_is_the_same_setup():
    from archspec.latency.profile import env_differences

    old = {"denormals": "flushed while timing (x86 MXCSR FTZ+DAZ; onnxruntime "
                        "set_denormal_as_zero)"}
    assert env_differences(old, {"denormals": "flushed while timing (x86 MXCSR FTZ+DAZ)"}) == []
    assert env_differences(old, {"denormals": None})


def test_the_raw_digest_covers_the_denormal_setting():
    raw = {"samples": [], "networks_ir": {"graphs": []}, "overhead": [], "walls": []}
    before = rawfile.digest(raw)
    assert rawfile.digest({**raw, "denormals": "flushed"}) != before
    assert rawfile.digest({**raw, "denormals": None}) == before
