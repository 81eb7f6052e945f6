"""benchmarks/reference_noise.py: back-to-back readings of the reference network and their
spread (the timer is injected: nothing is measured here)."""
from __future__ import annotations


import pytest


def _module():
    from conftest import benchmark

    return benchmark("reference_noise")


def test_readings_and_their_spread(capsys):
    mod = _module()
    calls = []
    times = iter([1.72, 1.70, 1.74])

    def timer(threads, batch, backend):
        calls.append((threads, batch, backend))
        return next(times)

    ms = mod.readings(3, 2, 4, "torch", timer=timer)
    assert ms == [1.72, 1.70, 1.74] and calls == [(2, 4, "torch")] * 3
    assert capsys.readouterr().out.count(" ms (") == 3
    s = mod.summary(ms)
    assert s["min_ms"] == 1.70 and s["median_ms"] == 1.72 and s["max_ms"] == 1.74
    assert s["spread"] == pytest.approx(0.0235, abs=1e-4)
    assert s["bounds"] == {"drift_faster": 1.08, "drift_slower": 1.15}   # as docs say


@pytest.mark.parametrize("option", ["--runs", "--threads", "--batch"])
def test_bad_options_are_exit_2(option, capsys):
    assert _module().main([option, "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
