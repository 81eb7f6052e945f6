"""The machine fingerprint of a latency profile: the probe kernels, the comparison of this
machine with the one that calibrated a profile, the one warning, its cache and the
command line. Nothing here times anything: probe results are injected."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from archspec.latency import profile as prof
from archspec.latency import probes
from archspec.latency.model import LatencyModel
from archspec.latency.profile import Profile, load, machine_check

KERNELS = {"conv1x1": 280.0, "dwconv3x3": 200.0, "hswish": 135.0, "copy": 76.0,
           "gemm": 70.0}
ENV = {"cpu": "AMD EPYC", "cpu_flags": ["avx2", "avx512f"], "logical_cores": 2,
       "usable_cores": 2, "onnxruntime": "1.32.0", "numpy": "2.4.6", "threads": 1,
       "OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, "OPENBLAS_NUM_THREADS": None}


def fingerprinted(kernels=None, env=None, network_ms=None, batch=1) -> Profile:
    """A profile with a fingerprint; ``network_ms``: the reference network's time
    recorded at calibration (on ``batch`` images)."""
    fp = {"version": probes.PROBE_VERSION, "kernels": kernels or KERNELS,
          "probes": [kernels or KERNELS], "env": env or ENV}
    if network_ms is not None:
        fp = probes.fingerprint("onnxruntime", 1, [kernels or KERNELS], [network_ms], batch)
        fp["env"] = env or ENV
    return Profile("onnxruntime", {"threads": 1, "batch": 1, "nchwc_block": 16},
                   {"cpu": "AMD EPYC"}, {"onnxruntime": "1.32.0"},
                   LatencyModel({"*": [5.0, 1.0, 0, 0, 0, 0, 0, 0]}, (10.0, 1.0)),
                   {"networks": 1}, "now", fingerprint=fp)


def scaled(factor: float, **override) -> dict:
    return {**{k: v * factor for k, v in KERNELS.items()}, **override}


def fake_probe(kernels, again=None):
    calls = []

    def run(threads, fresh=False):
        calls.append((threads, fresh))
        return (again if fresh and again else kernels), "measured"
    run.calls = calls
    return run


def predicted_reference_ms(profile) -> float:
    g = probes.reference_graph()
    return profile.model.predict(profile.kernels(g), g).total_ms


def fake_network(profile, ratio=1.0, again=None):
    """The reference network measured at ``ratio`` x its time at calibration, if the
    fingerprint recorded one, else x the profile's prediction (``again``: the ratio a
    fresh measurement gives)."""
    ms = prof.calibrated_network(profile) or predicted_reference_ms(profile)
    calls = []

    def run(threads, batch, fresh=False):
        calls.append((threads, batch, fresh))
        return ms * (again if fresh and again else ratio), "measured"
    run.calls = calls
    return run


def check(profile, this_kernels, env=ENV, again=None, network=1.0, **how):
    how.setdefault("run_network", fake_network(profile, network))
    return machine_check(profile, "p.json", env=env,
                         run_probe=fake_probe(this_kernels, again), **how)


@pytest.fixture(autouse=True)
def _probe_on(monkeypatch):
    monkeypatch.delenv("ARCHSPEC_NO_PROBE", raising=False)


# ---- the comparison --------------------------------------------------------------------------
def test_the_same_machine_within_the_noise_is_silent():
    c = check(fingerprinted(), scaled(1.04, gemm=75.0))
    assert c.matches and c.message() is None
    assert c.ratio == pytest.approx(1.04, abs=0.02) and c.probe == "measured"
    assert set(c.kernels) == set(KERNELS)


@pytest.mark.parametrize("error, spread, says", [
    (0.268, 0.042, "drifted"),        # the torch case of docs/latency.md: probe passed
    (-0.12, 0.03, "drifted"),
    (0.08, 0.03, None),               # within +-10%
    (0.14, 0.20, None),               # within the measurement's own spread
])
def test_latency_check_says_what_to_do_when_the_measurement_is_far_off(error, spread, says):
    from archspec.commands.latency import miss_hint

    same = check(fingerprinted(), scaled(1.0))
    hint = miss_hint(error, spread, same, "torch")
    if says is None:
        assert hint is None
        return
    assert says in hint and "archspec calibrate --backend torch" in hint
    other = check(fingerprinted(), scaled(0.5))        # a machine the probe flags
    assert "machine warning above" in miss_hint(error, spread, other, "onnxruntime")


def test_a_slower_machine_warning_reads_as_a_sentence():
    # 2026-12-04, a Zen 1 EPYC with the Zen 3 profile: the busy-machine caveat once sat
    # between "slower than" and "the one that calibrated it"
    msg = check(fingerprinted(), scaled(3.3)).message()
    assert ("this machine runs the probe kernels 3.3x slower than the one that calibrated "
            "it (a busy machine also looks slower)") in msg
    # a calibration times a fixed set of networks: a slower machine takes longer (that
    # machine took 2104 s where the Xeon took 531 s: rounded up)
    assert msg.endswith("(about 10 min), times on the project's hosts; on this machine "
                        "allow about 4x as long")
    assert "allow about" not in check(fingerprinted(), scaled(1 / 1.8)).message()
    # slower, but within the probe's bounds: a check for another reason says nothing
    other = check(fingerprinted(), scaled(1.4), env={**ENV, "onnxruntime": "1.31.1"})
    assert "onnxruntime" in other.message() and "allow about" not in other.message()
    assert prof.calibrate_hint("torch", 1.5).endswith("about 13 min), times on the "
                                                      "project's hosts; on this machine "
                                                      "allow about 2x as long")


def test_a_faster_machine_warns_with_the_ratio_and_the_commands():
    c = check(fingerprinted(), scaled(1 / 1.8))
    msg = c.message()
    assert c.probe == "measured, measured again"
    assert not c.matches and c.ratio == pytest.approx(1 / 1.8)
    assert "1.8x faster than the one that calibrated it" in msg and "p.json" in msg
    assert "archspec calibrate --quick" in msg and "archspec calibrate -o" in msg
    d = c.to_dict()
    assert d["matches"] is False and d["ratio"] == pytest.approx(0.5556, abs=1e-4)
    assert d["kernels"]["conv1x1"]["ratio"] == pytest.approx(1 / 1.8, abs=1e-4)
    assert d["warning"] == msg and d["thresholds"] == {"faster": prof.PROBE_FASTER,
                                                       "slower": prof.PROBE_SLOWER,
                                                       "shape": prof.PROBE_SHAPE,
                                                       "network_faster": prof.NETWORK_FASTER,
                                                       "network_slower": prof.NETWORK_SLOWER,
                                                       "network_drift_faster": prof.DRIFT_FASTER,
                                                       "network_drift_slower": prof.DRIFT_SLOWER}
    assert d["shape"] == pytest.approx(1.0)


def test_kernels_far_apart_warn_though_the_mean_is_in_bounds():
    # measured 2026-12-03: an AMX Xeon against the Zen 3 host's ORT fingerprint (same
    # versions): 1x1 conv 1.9x faster, the copy 2.3x slower, geometric mean 1.41 (in bounds)
    this = {"conv1x1": 280.0 * 0.533, "dwconv3x3": 200.0 * 1.273, "hswish": 135.0 * 2.027,
            "copy": 76.0 * 2.278, "gemm": 70.0 * 1.796}
    c = check(fingerprinted(), this)
    assert 1 / prof.PROBE_FASTER <= c.ratio <= prof.PROBE_SLOWER and not c.speed_differs
    assert c.shape == pytest.approx(2.278 / 0.533, rel=1e-3) and c.shape_differs
    assert not c.matches and c.probe == "measured, measured again"
    msg = c.message()
    assert "the probe kernels run 4.3x apart" in msg
    assert "copy 2.3x slower" in msg and "conv1x1 1.9x faster" in msg
    assert msg.index("copy 2.3x") < msg.index("conv1x1 1.9x")     # slowest first
    assert "archspec calibrate --quick" in msg and "by as much" in msg


def test_a_slow_spell_on_the_memory_bound_kernels_alone_is_not_another_machine():
    # the worst spell seen on the calibrating host: HardSwish and the copy up to 1.7x
    # slower, the convolutions and the Gemm as calibrated
    c = check(fingerprinted(), {**KERNELS, "hswish": 135.0 * 1.7, "copy": 76.0 * 1.45})
    assert c.shape == pytest.approx(1.7) and not c.shape_differs
    assert c.matches and c.message() is None


def test_kernels_apart_in_a_first_probe_that_clear_when_measured_again_match():
    # a first probe whose copy ran in a slow spell (3x), then a quiet one: the faster
    # of the two per kernel is kept, and the machine is the profile's
    first = {**KERNELS, "copy": 76.0 * 3.0}
    c = check(fingerprinted(), first, again=scaled(1.02))
    assert c.probe == "measured, measured again"
    assert c.shape == pytest.approx(1.0, abs=0.03) and c.matches and c.message() is None


def test_a_kernel_ratio_rounded_to_zero_does_not_break_the_warning():
    c = prof.MachineCheck("p.json", True, ratio=1.0,
                          kernels={"conv1x1": {"ratio": 0.0}, "copy": {"ratio": 3.0},
                                   "gemm": {"ratio": 1.0}})
    assert c.shape == pytest.approx(3.0) and c.shape_differs
    assert "copy 3.0x slower" in c.message() and "conv1x1" not in c.message()


def test_a_much_slower_machine_warns_and_a_busy_spell_does_not():
    assert "1.6x slower" in check(fingerprinted(), scaled(1.6)).message()
    # the worst slow spell seen on the calibrating machine (~1.4x) stays silent
    assert check(fingerprinted(), scaled(1.35)).message() is None
    # a first probe in a slow spell is measured again and the faster kept
    c = check(fingerprinted(), scaled(1.7), again=scaled(1.05))
    assert c.matches and c.ratio == pytest.approx(1.05) and c.probe.endswith("again")
    # faster than a spell at calibration can explain (~1.16x seen) warns
    assert "1.3x faster" in check(fingerprinted(), scaled(1 / 1.3)).message()
    assert check(fingerprinted(), scaled(1 / 1.18)).message() is None


def test_versions_and_cpu_that_differ_are_named_even_at_the_same_speed():
    env = {**ENV, "onnxruntime": "1.31.1", "cpu_flags": ["avx2"]}
    c = check(fingerprinted(), KERNELS, env=env)
    msg = c.message()
    assert not c.matches and c.ratio == pytest.approx(1.0)
    assert "onnxruntime '1.32.0' there, '1.31.1' here" in msg
    assert "cpu_flags ['avx2', 'avx512f'] there, ['avx2'] here" in msg
    assert "faster" not in msg and "slower" not in msg


def test_another_cpu_generation_of_the_same_name_is_named():
    """Cloud hosts name Zen 3 and Zen 4 both "AMD EPYC": family / model / stepping tell
    them apart; a fingerprint recorded before archspec read them compares the rest."""
    there = {**ENV, "cpu_id": "AuthenticAMD 25/17/1"}
    c = check(fingerprinted(env=there), KERNELS, env={**ENV, "cpu_id": "AuthenticAMD 25/1/1"})
    assert not c.matches
    assert "cpu_id 'AuthenticAMD 25/17/1' there, 'AuthenticAMD 25/1/1' here" in c.message()
    older = check(fingerprinted(env=ENV), KERNELS, env={**ENV, "cpu_id": "AuthenticAMD 25/1/1"})
    assert older.matches and older.message() is None


def test_cpu_id_reads_vendor_family_model_and_stepping(tmp_path, monkeypatch):
    import builtins

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
                    "model\t\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 1\n\n"
                    "processor\t: 1\nvendor_id\t: Other\n")
    real = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: real(
        info if f == "/proc/cpuinfo" else f, *a, **k))
    assert probes.cpu_id() == "AuthenticAMD 25/1/1"
    info.write_text("processor\t: 0\nmodel name\t: something\n")
    assert probes.cpu_id() is None


@pytest.mark.parametrize("ratio, again, warns", [
    (1.0, None, False), (1 / 1.24, None, False), (1.49, None, False),   # within bounds
    (0.86, None, False),         # a fresh torch profile's own bias at 128 px: silent
    (0.75, None, True),          # networks 1.33x faster than predicted: drifted
    (1.6, None, True),           # 1.6x slower, and again
    (1.6, 1.1, False),           # a busy spell: the second measurement is in bounds
])
def test_the_reference_network_against_the_profiles_prediction(ratio, again, warns):
    p = fingerprinted()
    net = fake_network(p, ratio, again)
    c = check(p, scaled(1.0), run_network=net)
    assert c.network_differs == warns and c.matches == (not warns)
    slow = ratio > prof.NETWORK_SLOWER     # only a slow reading is timed again
    assert [f for _, _, f in net.calls] == ([False, True] if slow else [False])
    if warns:
        msg = c.message()
        assert "does not fit this machine now" in msg and "mobilenetv2 at 128 px" in msg
        assert f"{c.network['measured_ms']:.2f} ms" in msg and "\n" not in msg
        assert "off by roughly as much" in msg and "predicts" in msg
        assert ("a busy machine" in msg) == (ratio > 1)
    assert c.to_dict()["network"]["predicted_ms"] == pytest.approx(
        predicted_reference_ms(p), abs=1e-3)
    assert c.network["against"] == "prediction"


@pytest.mark.parametrize("ratio, again, warns", [
    (1.0, None, False), (1 / 1.07, None, False), (1.14, None, False),   # within bounds
    (1 / 1.12, None, True),      # 12% faster than at calibration: predictions ~12% slow
    (1.3, None, True),           # 1.3x slower, and again
    (1.3, 1.05, False),          # a busy spell: the second timing is in bounds
    (0.86, None, True),          # what passes against a prediction warns against a time
])
def test_the_reference_network_against_its_time_at_calibration(ratio, again, warns):
    """A fingerprint that recorded the reference network's time is compared with that
    (drift alone, tighter bounds), not with the profile's prediction; only a slow
    reading is timed again (a busy spell only ever slows a run)."""
    p = fingerprinted(network_ms=3.2)
    net = fake_network(p, ratio, again)
    c = check(p, scaled(1.0), run_network=net)
    assert c.network["against"] == "calibration" and c.network["calibrated_ms"] == 3.2
    assert c.network_differs == warns and c.matches == (not warns)
    assert [f for _, _, f in net.calls] == ([False, True] if ratio > prof.DRIFT_SLOWER
                                            else [False])
    if warns:
        msg = c.message()
        assert "when the profile was calibrated (3.20 ms)" in msg and "\n" not in msg
        assert (f"{1 / ratio:.2f}x faster" in msg) == (ratio < 1)
        assert ("a busy machine also runs slower, and it was timed twice" in msg) == (
            ratio > 1)
    assert c.to_dict()["thresholds"]["network_drift_faster"] == prof.DRIFT_FASTER


def test_a_calibration_time_of_another_reference_is_not_compared():
    """A recorded time of another reference network, timing method or batch falls back
    to the prediction."""
    for change in ({"version": probes.REFERENCE_VERSION + 1}, {"resolution": 160},
                   {"batch": 4}):
        p = fingerprinted(network_ms=3.2)
        p.fingerprint["network"].update(change)
        assert prof.calibrated_network(p) is None
        assert check(p, scaled(1.0)).network["against"] == "prediction"
    p = fingerprinted(network_ms=3.2, batch=4)
    p.settings["batch"] = 4
    assert prof.calibrated_network(p) == 3.2


@pytest.mark.parametrize("ratio, says", [
    (1.1502, "1.1502x slower"), (1 / 1.0801, "1.0801x faster"), (1.3, "1.30x slower"),
    (1 / 1.2, "1.20x faster"),
])
def test_a_ratio_just_past_a_bound_is_not_printed_as_the_bound(ratio, says):
    p = fingerprinted(network_ms=3.2)
    c = check(p, scaled(1.0), run_network=fake_network(p, ratio))
    assert c.network_differs and says in c.message()


def test_a_calibration_time_of_hours_still_compares_without_breaking():
    """A hostile fingerprint time (3.2e6 ms) against a measured millisecond: the ratio
    keeps its significant digits (not rounded to 0) and the warning is a warning."""
    p = fingerprinted(network_ms=3.2e6)
    c = check(p, scaled(1.0), run_network=lambda threads, batch, fresh=False: (1.7, "m"))
    assert c.network["ratio"] > 0 and c.network_differs and "faster" in c.message()


def test_a_slow_reading_that_cannot_be_timed_again_stands():
    p = fingerprinted()
    ms = predicted_reference_ms(p)

    def run(threads, batch, fresh=False):
        if fresh:
            raise RuntimeError("out of memory")
        return 2 * ms, "measured"

    c = check(p, scaled(1.0), run_network=run)
    assert c.network_differs and not c.matches and c.network["ratio"] == pytest.approx(2)
    assert "measuring again failed (RuntimeError: out of memory)" in c.network["measured"]
    msg = c.message()
    assert "2.00x slower" in msg and "a busy machine also runs slower" in msg
    assert "timed twice" not in msg


@pytest.mark.parametrize("ms", [0.0, float("nan"), -1.0, None])
def test_a_reference_time_that_is_not_a_time_is_not_compared(ms):
    c = check(fingerprinted(network_ms=3.2), scaled(1.0),
              run_network=lambda threads, batch, fresh=False: (ms, "measured"))
    assert c.matches and "not run" in c.network["measured"] and c.message() is None


def test_a_profile_that_predicts_nothing_for_the_reference_network_is_not_compared():
    p = fingerprinted()
    p.model = LatencyModel({"*": [0.0] * 8}, (0.0, 0.0))
    c = check(p, scaled(1.0))
    assert c.matches and "not run" in c.network["measured"] and "ratio" not in c.network


def test_another_machine_is_not_made_to_time_the_reference_network():
    """Kernels or setup apart already say another machine: no network is timed; a
    network that cannot run is said in the JSON and does not stop the prediction."""
    p = fingerprinted()
    net = fake_network(p, 0.5)
    c = check(p, scaled(1 / 1.8), run_network=net)
    assert not net.calls and c.network == {} and "1.8x faster" in c.message()

    def broken(threads, batch, fresh=False):
        raise ImportError("No module named 'onnx'")

    c = check(p, scaled(1.0), run_network=broken)
    assert c.matches and "ImportError" in c.network["measured"]


def test_the_reference_network_is_cached_per_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prof, "_PROBED", {})
    runs = []

    def run(threads, batch):
        runs.append((threads, batch))
        return 3.0 * batch + len(runs)

    assert prof.cached_network(1, 1, now=10.0, run=run) == (4.0, "measured")
    assert prof.cached_network(1, 1, now=20.0, run=run) == (4.0, "cached (age 10 s)")
    assert prof.cached_network(1, 4, now=20.0, run=run) == (14.0, "measured")
    assert prof.cached_network(1, 1, now=30.0, run=run, fresh=True) == (4.0, "measured")
    assert runs == [(1, 1), (1, 4), (1, 1)]
    # a cache file without the network's time, or with one that is not a time (broken,
    # or another writer's), is a miss
    key = prof.network_key(1, 1)
    for bad in ({}, {"network": 0}, {"network": True}, {"network": float("nan")},
                {"network": "4.0"}):
        monkeypatch.setattr(prof, "_PROBED", {})
        (tmp_path / "probe" / f"{key}.json").write_text(json.dumps({"time": 30.0,
                                                                    "kernels": bad}))
        assert prof.cached_network(1, 1, now=31.0, run=run)[1] == "measured"
    for when in ("30", True, None, float("nan"), -1):     # nor is a time that is not one
        monkeypatch.setattr(prof, "_PROBED", {})
        (tmp_path / "probe" / f"{key}.json").write_text(json.dumps(
            {"time": when, "kernels": {"network": 4.0}}))
        assert prof.cached_network(1, 1, now=31.0, run=run)[1] == "measured"
    assert len(runs) == 13


def test_the_network_cache_key_names_the_reference_network_and_how_it_is_timed(
        monkeypatch):
    a = prof.network_key(1, 1)
    monkeypatch.setattr(probes, "REFERENCE_VERSION", probes.REFERENCE_VERSION + 1)
    b = prof.network_key(1, 1)
    monkeypatch.setattr(probes, "REFERENCE_NETWORK", ("mobilenetv3_small", 128))
    c = prof.network_key(1, 1)
    assert len({a, b, c, prof.network_key(1, 4), prof.network_key(2, 1)}) == 5
    assert a.startswith(prof.probe_key(1)) and "mobilenetv2-128px-b1" in a


def test_a_time_measured_again_expires_with_the_first_one(tmp_path, monkeypatch):
    """Measured again, the faster of the two is kept under the first one's time: a fast
    reading is not renewed for ever by slow ones measured after it."""
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prof, "_PROBED", {})
    times = iter([2.0, 5.0, 5.0])

    def run(threads, batch):
        return next(times)

    assert prof.cached_network(1, 1, now=100.0, run=run) == (2.0, "measured")
    assert prof.cached_network(1, 1, now=500.0, run=run, fresh=True) == (2.0, "measured")
    assert prof.cached_network(1, 1, now=600.0, run=run) == (2.0, "cached (age 500 s)")
    later = 100.0 + prof.PROBE_TTL_S + 1    # past the first reading's time to live
    assert prof.cached_network(1, 1, now=later, run=run) == (5.0, "measured")


def test_a_profile_without_a_fingerprint_says_so_in_one_line():
    p = fingerprinted()
    p.fingerprint = {}
    c = machine_check(p, "old.json", run_probe=fake_probe(KERNELS))
    msg = c.message()
    assert not c.fingerprinted and c.probe == "not run" and "\n" not in msg
    assert "old.json has no machine fingerprint" in msg and "cannot be checked" in msg
    assert "archspec calibrate --quick" in msg


def test_the_probe_can_be_skipped(monkeypatch):
    def boom(threads):
        raise AssertionError("the probe ran")

    c = machine_check(fingerprinted(), "p.json", env=ENV, run_probe=boom,
                      skip="skipped (--no-probe)")
    assert c.matches and c.ratio is None and c.probe == "skipped (--no-probe)"
    monkeypatch.setenv("ARCHSPEC_NO_PROBE", "1")
    c = machine_check(fingerprinted(), "p.json", env={**ENV, "numpy": "1.0"},
                      run_probe=boom)
    assert c.probe == "skipped (ARCHSPEC_NO_PROBE)" and "numpy" in c.message()


def test_a_probe_that_cannot_run_is_said_and_does_not_stop_the_prediction():
    def broken(threads, fresh=False):
        raise ImportError("No module named 'onnxruntime'")

    c = machine_check(fingerprinted(), "p.json", env=ENV, run_probe=broken)
    assert c.ratio is None and "ImportError" in c.probe and "could not be probed" in \
        c.message()


def test_a_broken_fingerprint_is_a_load_error(tmp_path):
    from archspec.errors import ArchspecError

    for broken in ({"kernels": {"conv1x1": "fast"}, "env": {}}, {"kernels": {}},
                   {"kernels": KERNELS, "env": {"threads": "abc"}},
                   {"kernels": KERNELS, "env": {"threads": True}},
                   {"version": 1, "env": {}},
                   {"kernels": KERNELS, "env": {}, "network": {"ms": 0}},
                   {"kernels": KERNELS, "env": {}, "network": [3.2]},
                   {"kernels": {"conv1x1": True}, "env": {}}):
        d = {**fingerprinted().to_dict(), "fingerprint": broken}
        (tmp_path / "p.json").write_text(json.dumps(d))
        with pytest.raises(ArchspecError, match="broken machine fingerprint"):
            load(tmp_path / "p.json")
    # a null network is none (as a null fingerprint is)
    d = {**fingerprinted().to_dict(), "fingerprint": {"kernels": KERNELS, "env": ENV,
                                                      "network": None}}
    (tmp_path / "p.json").write_text(json.dumps(d))
    assert prof.calibrated_network(load(tmp_path / "p.json")) is None


def test_a_probe_of_another_version_is_not_compared():
    p = fingerprinted()
    p.fingerprint["version"] = probes.PROBE_VERSION + 1
    c = check(p, scaled(0.5))
    assert c.ratio is None and "probe version" in c.probe and c.message() is None


def test_the_fingerprint_travels_in_the_profile_file(tmp_path):
    p = fingerprinted()
    p.validation = {"networks": 3, "within": 2}
    p.save(tmp_path / "p.json")
    q = load(tmp_path / "p.json")
    assert q.fingerprint == p.fingerprint and q.validation == p.validation
    p.fingerprint, p.validation = {}, {}
    assert "fingerprint" not in p.to_dict() and "validation" not in p.to_dict()


# ---- the probe and the fingerprint record -----------------------------------------------------
def test_fingerprint_keeps_the_fastest_of_the_probes_and_the_timing_environment():
    fp = probes.fingerprint("onnxruntime", 1, [scaled(1.0), scaled(1.3, gemm=60.0)])
    assert fp["kernels"] == {**KERNELS, "gemm": 60.0} and len(fp["probes"]) == 2
    assert "network" not in fp
    fp = probes.fingerprint("onnxruntime", 1, [scaled(1.0)], [3.3, 3.1, 3.4], batch=2)
    assert fp["network"] == {"name": "mobilenetv2", "resolution": 128, "batch": 2,
                             "version": probes.REFERENCE_VERSION, "ms": 3.1,
                             "runs": [3.3, 3.1, 3.4]}
    env = fp["env"]
    assert env["threads"] == 1 and "onnxruntime" in env and "numpy" in env
    assert {"cpu", "cpu_flags", "logical_cores", "usable_cores"} <= set(env)
    assert set(env["cpu_flags"]) <= set(probes.SIMD_FLAGS)


def test_probe_takes_each_kernels_fastest_round_median_with_fresh_sessions(monkeypatch):
    from archspec.latency import timing

    built, timed = [], {}

    def fake_time_runs(step, n, unit=1e6):
        if unit == 1000.0:                 # warm-up runs (ms): 1 ms each
            return [1.0] * n
        i = timed[step] = timed.get(step, 0) + 1
        return [50.0, 10.0, 60.0] if i == 2 else [100.0 * i + 1, 100.0 * i + 2, 1e4]

    monkeypatch.setattr(probes, "_probe_step",
                        lambda name, threads, backend: built.append(name) or name)
    monkeypatch.setattr(timing, "time_runs", fake_time_runs)
    out = probes.probe(1, rounds=3)
    # round medians 102, 50, 302: the second round's is the kernel's time
    assert out == {name: 50.0 for name in probes.PROBE_KERNELS}
    assert built == list(probes.PROBE_KERNELS) * 3


def test_probe_kernels_compute_what_they_say():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    for name, (_op, shape, arg) in probes.PROBE_KERNELS.items():
        sess = ort.InferenceSession(probes.probe_model(name),
                                    providers=["CPUExecutionProvider"])
        x = rng.standard_normal(shape).astype(np.float32)
        (y,) = sess.run(None, {"x": x})
        if name == "hswish":
            np.testing.assert_allclose(y, x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)
        elif name == "copy":
            np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))
        elif name == "conv1x1":
            assert y.shape == (1, arg, 28, 28)
        elif name == "dwconv3x3":
            assert y.shape == shape
        else:
            assert y.shape == (1, arg)


# ---- the cache -------------------------------------------------------------------------------
def test_the_probe_is_cached_per_process_and_on_disk_for_a_while(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prof, "_PROBED", {})
    runs = []

    def run(threads):
        runs.append(threads)
        return scaled(1.0 + 0.1 * len(runs))

    k, how = prof.cached_probe(1, now=1000.0, run=run)
    assert k == scaled(1.1) and how == "measured" and runs == [1]
    assert prof.cached_probe(1, now=1100.0, run=run)[1] == "cached (age 100 s)"
    monkeypatch.setattr(prof, "_PROBED", {})          # a new process: the disk copy
    assert prof.cached_probe(1, now=1200.0, run=run)[1] == "cached (age 200 s)"
    assert runs == [1]
    later = 1000.0 + prof.PROBE_TTL_S + 1
    assert prof.cached_probe(1, now=later, run=run) == (scaled(1.2), "measured")
    # measured again while one is cached: the faster of the two per kernel is kept
    assert prof.cached_probe(1, now=later + 1, run=run, fresh=True) == (scaled(1.2),
                                                                         "measured")
    assert runs == [1, 1, 1] and len(list((tmp_path / "probe").glob("*.json"))) == 1


def test_a_broken_cache_file_is_measured_over(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prof, "_PROBED", {})
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / f"{prof.probe_key(1)}.json").write_text("{not json")
    assert prof.cached_probe(1, now=5.0, run=lambda t: KERNELS)[1] == "measured"
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", "")      # cache off: nothing written
    monkeypatch.setattr(prof, "_PROBED", {})
    assert prof.cached_probe(1, now=5.0, run=lambda t: KERNELS)[1] == "measured"


# ---- command line (the probe result is seeded in the cache: nothing is timed) ---------------
def _seeded(tmp_path, factor: float, network: float = 1.0, network_ms=None) -> dict:
    """An environment whose probe cache holds this machine's probe at ``factor`` x the
    profile's kernels and the reference network at ``network`` x its prediction
    (:func:`fingerprinted`'s model) or x ``network_ms``, measured just now."""
    import os
    import time

    cache = tmp_path / "cache"
    (cache / "probe").mkdir(parents=True)
    (cache / "probe" / f"{prof.probe_key(1)}.json").write_text(
        json.dumps({"time": time.time(), "kernels": scaled(factor)}))
    ms = (network_ms or predicted_reference_ms(fingerprinted())) * network
    (cache / "probe" / f"{prof.network_key(1, 1)}.json").write_text(
        json.dumps({"time": time.time(), "kernels": {"network": ms}}))
    env = {k: v for k, v in os.environ.items() if k != "ARCHSPEC_NO_PROBE"}
    return {**env, "ARCHSPEC_CACHE_DIR": str(cache)}


def _profile_here(tmp_path, network_ms=None):
    p = fingerprinted(env=probes.timing_env("onnxruntime", 1), network_ms=network_ms)
    p.save(tmp_path / "p.json")
    return tmp_path / "p.json"


def _latency(path, env, *extra):
    return subprocess.run([sys.executable, "-m", "archspec", "latency", "mobilenetv3_small",
                           "--profile", str(path), *extra], capture_output=True, text=True,
                          env=env, timeout=120)


def test_latency_warns_before_predicting_and_its_json_carries_the_comparison(tmp_path):
    path = _profile_here(tmp_path)
    r = _latency(path, _seeded(tmp_path, 1 / 1.8), "-f", "json")
    assert r.returncode == 0, r.stderr
    assert "1.8x faster" in r.stderr and "archspec calibrate --quick" in r.stderr
    mc = json.loads(r.stdout)["machine_check"]
    assert mc["matches"] is False and mc["ratio"] == pytest.approx(1 / 1.8, abs=1e-3)
    assert mc["probe"].startswith("cached") and mc["warning"] in r.stderr


def test_latency_on_the_same_machine_says_nothing(tmp_path):
    path = _profile_here(tmp_path)
    r = _latency(path, _seeded(tmp_path, 1.02), "-f", "json")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["machine_check"]["matches"] is True


def test_latency_warns_when_the_reference_network_is_off_though_the_probe_agrees(tmp_path):
    """The same machine in another state (torch ran whole networks ~25% faster on the
    Xeon host hours after its calibration while the probe kernels moved < 5%): the
    profile's own prediction of the reference network, timed, says so."""
    path = _profile_here(tmp_path)
    r = _latency(path, _seeded(tmp_path, 1.02, network=0.75), "-f", "json")
    assert r.returncode == 0, r.stderr
    assert "does not fit this machine now" in r.stderr and "1.33x faster" in r.stderr
    assert "mobilenetv2 at 128 px" in r.stderr and "archspec calibrate" in r.stderr
    mc = json.loads(r.stdout)["machine_check"]
    assert mc["matches"] is False and mc["network"]["ratio"] == pytest.approx(0.75, abs=1e-3)
    assert mc["thresholds"]["network_faster"] == prof.NETWORK_FASTER


def test_latency_no_probe_skips_it(tmp_path):
    path = _profile_here(tmp_path)
    env = {**_seeded(tmp_path, 1 / 1.8), "ARCHSPEC_CACHE_DIR": str(tmp_path / "empty")}
    r = _latency(path, env, "--no-probe", "-f", "json")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["machine_check"]["probe"] == "skipped (--no-probe)"
    assert not (tmp_path / "empty" / "probe").exists()


def test_cost_with_a_profile_reports_the_same_check(tmp_path):
    path = _profile_here(tmp_path)
    r = subprocess.run([sys.executable, "-m", "archspec", "cost", "mobilenetv2", "--profile",
                        str(path)], capture_output=True, text=True,
                       env=_seeded(tmp_path, 1 / 1.8), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("1.8x faster") == 1


def test_latency_warns_when_the_reference_network_drifted_since_the_calibration(tmp_path):
    """A profile whose fingerprint recorded the reference network's time compares this
    machine's time of it with that: 1.15x faster warns (against the prediction it would
    not), 1.05x does not."""
    path = _profile_here(tmp_path, network_ms=3.2)
    r = _latency(path, _seeded(tmp_path, 1.02, network=1 / 1.15, network_ms=3.2), "-f",
                 "json")
    assert r.returncode == 0, r.stderr
    assert "1.15x faster than when the profile was calibrated (3.20 ms)" in r.stderr
    mc = json.loads(r.stdout)["machine_check"]
    assert mc["matches"] is False and mc["network"]["against"] == "calibration"
    r = _latency(tmp_path / "p.json", _seeded(tmp_path / "b", 1.02, network=1 / 1.05,
                                              network_ms=3.2), "-f", "json")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_calibrate_says_how_the_fingerprint_moved_during_the_campaign():
    from archspec.commands.latency import _fingerprint_line

    p = fingerprinted()
    p.fingerprint["probes"] = [KERNELS, scaled(1.1)]
    line = _fingerprint_line(p)
    assert "5 probe kernels timed 2 times" in line and "(last / first: 1.10x)" in line
    assert "mobilenetv2" not in line
    p.fingerprint = probes.fingerprint("onnxruntime", 1, [KERNELS, KERNELS],
                                       [3.0, 3.1, 3.3])
    line = _fingerprint_line(p)
    assert "mobilenetv2 at 128 px timed 3.00, 3.10, 3.30 ms (the fastest kept)" in line


def test_calibrate_warns_when_its_rounds_were_too_noisy():
    """A Zen 1 EPYC guest, 2026-12-04 15:55-16:31 UTC: round spread median 0.4427."""
    from archspec.commands.latency import NOISY_ROUNDS, _noisy_rounds

    p = fingerprinted()
    for quiet in (None, "n/a", 0.0186, 0.1522, NOISY_ROUNDS):   # shipped: 1.9-15.2%
        p.calibration = {"round_spread_median": quiet}
        assert _noisy_rounds(p) is None
    p.calibration = {"round_spread_median": 0.4427}
    msg = _noisy_rounds(p)
    assert "moved a median 44% between rounds" in msg
    assert "calibrate again when the machine is quiet" in msg and "--quick" in msg


def test_calibrate_warns_when_the_machine_changed_speed_during_the_campaign():
    """torch on the Xeon host, 2026-12-04 13:49-13:57 UTC: the reference network ran
    6.25, 7.20, 8.43 ms before, between and after the campaign."""
    from archspec.commands.latency import _moved_during

    p = fingerprinted()
    assert _moved_during(p) is None                       # nothing recorded
    p.fingerprint = probes.fingerprint("onnxruntime", 1, [KERNELS], [1.75, 1.747, 1.786])
    assert _moved_during(p) is None                       # 2% apart
    p.fingerprint = probes.fingerprint("torch", 1, [KERNELS], [6.25, 7.20, 8.43])
    p.backend = "torch"
    msg = _moved_during(p)
    assert "6.25, 7.20, 8.43 ms" in msg and "1.35x apart" in msg
    assert "calibrate again when the machine is quiet: " in msg
    assert "`archspec calibrate --backend torch --quick" in msg


# ---- archspec profiles, and profiles by name ------------------------------------------------
def test_the_verdict_names_what_differs_in_a_few_words():
    p = fingerprinted()
    assert check(p, scaled(1.02)).verdict() == "yes"
    assert check(p, scaled(1 / 1.8)).verdict() == "no: probe 1.8x faster"
    other = {**ENV, "cpu_id": "AuthenticAMD 23/1/2", "onnxruntime": "1.31.1"}
    mine = {**ENV, "cpu_id": "AuthenticAMD 25/1/1"}
    assert (check(fingerprinted(env=other), scaled(2.0), env=mine).verdict()
            == "no: cpu_id, onnxruntime differ; probe 2.0x slower")
    assert (check(p, scaled(1.0), network=0.75).verdict()
            == "no: reference network 1.33x faster")
    skipped = check(p, scaled(1.0), skip="skipped (--no-probe)")
    assert skipped.matches and skipped.verdict() == "setup matches; probe skipped"
    bare = Profile("onnxruntime", {"threads": 1}, {}, {}, p.model)
    assert machine_check(bare, "old.json").verdict().startswith("unknown: no fingerprint")


def test_a_shipped_profile_is_found_by_its_name(tmp_path, monkeypatch):
    names = [p.stem for p in prof.shipped()]
    assert "cpu-ort-1t-xeon" in names and not any(n.endswith(".raw") for n in names)
    assert prof.locate("cpu-ort-1t-xeon") == prof.SHIPPED / "cpu-ort-1t-xeon.json"
    assert prof.locate("cpu-ort-1t-xeon.json") == prof.SHIPPED / "cpu-ort-1t-xeon.json"
    # a path with a folder, a raw file's name and a file of that name here are not renamed
    assert prof.locate("some/cpu-ort-1t-xeon") == prof.Path("some/cpu-ort-1t-xeon")
    assert prof.locate("cpu-ort-1t-xeon.raw") == prof.Path("cpu-ort-1t-xeon.raw")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu-ort-1t-xeon.json").write_text("{}")
    assert prof.locate("cpu-ort-1t-xeon.json") == prof.Path("cpu-ort-1t-xeon.json")
    with pytest.raises(prof.ArchspecError, match="not found .*shipped, by name: .*"
                       "cpu-ort-1t-xeon"):
        load("cpu-ort-9t-nowhere")


def test_search_and_adapt_read_a_shipped_profile_named_on_the_command_line(monkeypatch):
    from archspec.commands.search import check_inputs

    monkeypatch.setenv("ARCHSPEC_NO_PROBE", "1")
    assert check_inputs(prof.Path("cpu-ort-1t-zen1"), None, None) == (
        prof.SHIPPED / "cpu-ort-1t-zen1.json").resolve()
    with pytest.raises(prof.ArchspecError, match="profile not found"):
        check_inputs(prof.Path("nowhere.json"), None, None)


def test_profiles_without_a_shipped_folder_says_what_to_do(tmp_path, monkeypatch):
    from archspec.commands.latency import list_profiles

    monkeypatch.setattr(prof, "SHIPPED", tmp_path / "none")
    assert prof.shipped() == []
    with pytest.raises(prof.ArchspecError, match="no shipped profiles.*archspec calibrate"):
        list_profiles(paths=None, no_probe=True, fmt="json")


def _profiles(env, *args):
    return subprocess.run([sys.executable, "-m", "archspec", "profiles", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_profiles_lists_every_shipped_one_with_its_setting_and_validation(tmp_path):
    import os

    env = {**os.environ, "ARCHSPEC_CACHE_DIR": str(tmp_path / "empty")}
    r = _profiles(env, "--no-probe", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "archspec.profiles/1"
    rows = {row["name"]: row for row in doc["profiles"]}
    assert list(rows) == sorted(p.stem for p in prof.shipped())
    x = rows["cpu-ort-2t-xeon"]
    assert (x["backend"], x["threads"], x["batch"]) == ("onnxruntime", 2, 1)
    assert rows["cpu-ort-1t-b4-xeon"]["batch"] == 4 and rows["cpu-torch-1t-xeon"][
        "backend"] == "torch"
    assert x["cpu_id"] == "GenuineIntel 6/167/1" and x["fit_rules"] >= 9
    assert x["validation"]["networks"] == 48 and 0 < x["validation"]["share_within"] <= 1
    assert x["machine_check"]["probe"] == "skipped (--no-probe)"
    assert not (tmp_path / "empty" / "probe").exists()   # nothing timed
    assert rows["cpu-ort-1t"]["fits_this_machine"].startswith("unknown: no fingerprint")
    table = _profiles(env, "--no-probe")
    assert table.returncode == 0 and "cpu-ort-1t-zen3" in table.stdout


def test_profiles_says_which_fits_this_machine(tmp_path):
    here = _profile_here(tmp_path)
    r = _profiles(_seeded(tmp_path, 1.02), here, "-f", "json")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["profiles"]
    assert row["fits_this_machine"] == "yes" and row["file"] == str(here)
    r = _profiles(_seeded(tmp_path / "b", 1 / 1.8), here)
    assert r.returncode == 0 and "probe 1.8x faster" in r.stdout, r.stderr


def test_latency_takes_a_shipped_profile_by_name(tmp_path):
    import os

    env = {**os.environ, "ARCHSPEC_CACHE_DIR": str(tmp_path)}
    r = _latency("cpu-ort-1t-xeon", env, "--no-probe", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["profile"] == str(prof.SHIPPED / "cpu-ort-1t-xeon.json")
    assert doc["total_ms"] > 0
    r = _latency("cpu-ort-1t-nowhere", env)
    assert r.returncode == 2 and "shipped, by name" in r.stderr and "Traceback" not in r.stderr


def test_a_probe_that_failed_is_unknown_not_another_machine():
    def broken(threads, fresh=False):
        raise ModuleNotFoundError("No module named 'onnxruntime'")

    c = machine_check(fingerprinted(), "p.json", env=ENV, run_probe=broken)
    assert c.verdict() == "unknown: the probe failed (ModuleNotFoundError)"
    other = {**ENV, "numpy": "2.0.0"}
    c = machine_check(fingerprinted(env=other), "p.json", env=ENV, run_probe=broken)
    assert c.verdict() == "unknown: the probe failed (ModuleNotFoundError); numpy differs"


def test_a_probe_is_measured_again_once_per_process_while_its_reading_lives(tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(prof, "_PROBED", {})
    runs = []

    def run(threads):
        runs.append(threads)
        return scaled(2.0)

    assert prof.cached_probe(1, now=10.0, run=run)[1] == "measured"
    assert prof.cached_probe(1, now=11.0, run=run, fresh=True)[1] == "measured"
    # a second profile's check in the same process: not timed a third time
    assert (prof.cached_probe(1, now=12.0, run=run, fresh=True)[1]
            == "measured again earlier in this process") and len(runs) == 2
    assert prof._again("measured again earlier in this process") == (
        ", measured again earlier in this process")
    later = 10.0 + prof.PROBE_TTL_S + 1          # the reading expired: measured anew
    assert prof.cached_probe(1, now=later, run=run, fresh=True)[1] == "measured"
    assert len(runs) == 3


def test_a_local_file_or_folder_is_not_taken_for_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu-ort-1t-zen1").mkdir()          # a folder does not shadow the name
    assert prof.locate("cpu-ort-1t-zen1") == prof.SHIPPED / "cpu-ort-1t-zen1.json"
    assert prof.locate("./cpu-ort-1t-zen1.json") == prof.Path("cpu-ort-1t-zen1.json")
    assert prof.locate("") == prof.Path("")


def test_profiles_lists_an_unreadable_shipped_file_and_refuses_a_given_one(
        tmp_path, monkeypatch, capsys):
    from archspec.commands.latency import list_profiles

    folder = tmp_path / "profiles"
    folder.mkdir()
    fingerprinted().save(folder / "good.json")
    (folder / "wip.json").write_text("{not json")
    (folder / "good.raw.json").write_text("{}")
    monkeypatch.setattr(prof, "SHIPPED", folder)
    list_profiles(paths=None, no_probe=True, fmt="json")
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["profiles"]}
    assert sorted(rows) == ["good", "wip"]
    assert rows["wip"]["fits_this_machine"].startswith("unreadable: ")
    assert rows["good"]["backend"] == "onnxruntime"
    with pytest.raises(prof.ArchspecError, match="not a readable profile"):
        list_profiles(paths=[folder / "wip.json"], no_probe=True, fmt="json")
    (folder / "good.json").unlink()
    (folder / "wip.json").unlink()
    with pytest.raises(prof.ArchspecError, match="has no profiles"):
        list_profiles(paths=None, no_probe=True, fmt="json")


def test_the_verdict_does_not_print_a_ratio_as_the_bound_it_crossed():
    p = fingerprinted()
    assert check(p, scaled(1.503)).verdict() == "no: probe 1.503x slower"
    assert check(p, scaled(1.6)).verdict() == "no: probe 1.6x slower"
    far = check(p, scaled(1.0, conv1x1=280.0 * 2.52))
    assert far.verdict().startswith("no: ") and "probe kernels 2.52x apart" in far.verdict()
    timed = fingerprinted(network_ms=3.2)
    c = check(timed, scaled(1.0), run_network=fake_network(timed, 1 / 1.0804))
    assert c.verdict() == "no: reference network 1.0804x faster"


@pytest.mark.parametrize("command", [["cost", "mobilenetv3_small"],
                                     ["sweep", "mobilenetv3_small", "-w", "0.5,1.0", "-r",
                                      "96"]])
def test_cost_and_sweep_take_a_shipped_profile_by_name(tmp_path, command):
    import os

    env = {**os.environ, "ARCHSPEC_CACHE_DIR": str(tmp_path), "ARCHSPEC_NO_PROBE": "1"}
    r = subprocess.run([sys.executable, "-m", "archspec", *command, "--profile",
                        "cpu-ort-1t-xeon", "-f", "json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "latency_ms" in r.stdout
