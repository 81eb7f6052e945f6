"""`calibrate --quick` and the calibration's own validation figure (held-out networks).
One tiny real calibration runs (a few networks, one round, injected probe); no test
asserts a time."""
from __future__ import annotations

import json

import pytest

from archspec.latency import calibrate as cal
from archspec.latency import fitting
from archspec.latency import raw as rawfile
from archspec.latency.check import predict
from archspec.latency.networks import holdout_networks, variant_networks
from archspec.latency.raw import networks_record

KERNELS = {"conv1x1": 280.0, "dwconv3x3": 200.0, "hswish": 135.0, "copy": 76.0,
           "gemm": 70.0}


def fake_probe():
    calls = []

    def probe(threads):
        calls.append(threads)
        return {k: v * (1 + 0.1 * len(calls)) for k, v in KERNELS.items()}
    probe.calls = calls
    return probe


def test_holdout_networks_are_not_calibration_variants():
    cal_names = {g.name + str([n.op for n in g]) for g in variant_networks(6, 0)}
    held = holdout_networks(6, 0)
    assert len(held) == 6
    assert not cal_names & {g.name + str([n.op for n in g]) for g in held}
    assert [str([n.op for n in g]) for g in holdout_networks(6, 0)] == \
        [str([n.op for n in g]) for g in held]


def test_validation_figure_counts_held_out_networks_within_tolerance():
    from test_fingerprint import fingerprinted

    p = fingerprinted()
    graphs = holdout_networks(4, 1)
    pred = [predict(g, p).total_ms for g in graphs]
    factors = [1.05, 0.95, 1.25, 0.80]          # measured = predicted * factor
    held = {"networks_ir": networks_record(graphs, "measured"), "rounds": 2,
            "measured_ms": [x * f for x, f in zip(pred, factors)],
            "spread": [0.1, 0.2, 0.3, 0.4]}
    v = fitting.validation(p, held)
    errors = sorted(1 / f - 1 for f in factors)
    assert (v["networks"], v["within"], v["share_within"]) == (4, 2, 0.5)
    assert v["abs_error_max"] == pytest.approx(0.25, abs=1e-4)
    assert v["signed_error_median"] == pytest.approx((errors[1] + errors[2]) / 2, abs=1e-4)
    assert v["spread_median"] == pytest.approx(0.25) and v["rounds"] == 2
    assert v["estimator"] == "median of all runs" and v["all_runs"]["within"] == 2
    assert fitting.validation(p, None) == {}
    # with the round medians, the fastest round is what the profile is compared with
    held["round_ms"] = [[x * f, x] for x, f in zip(pred, (1.3, 1.0, 1.0, 1.0))]
    v = fitting.validation(p, held)
    assert v["estimator"] == "fastest round median" and v["within"] == 4
    assert v["all_runs"]["within"] == 2 and v["abs_error_max"] == pytest.approx(0.0)


def test_a_tiny_quick_calibration_yields_a_profile_with_fingerprint_and_validation(
        tmp_path):
    pytest.importorskip("onnxruntime")
    probe = fake_probe()
    # seed 43: two small motif networks (~75 M MAdds together) and a small held-out one
    order, times = [], iter([3.3, 3.1, 3.4])

    def probed(threads):
        order.append("probe")
        return probe(threads)

    def reference(threads, batch):
        order.append(("reference", threads, batch))
        return next(times)

    raw = cal.calibrate(threads=1, networks=2, variants=0, repeats=2, rounds=1, warmup=1,
                        min_round_ms=0, holdout=1, seed=43, probe=probed,
                        reference=reference, progress=lambda n=1: order.append("net"))
    # before, between (after the calibration networks, before the held-out one) and after
    assert order == ["probe", ("reference", 1, 1), "net", "net", "probe",
                     ("reference", 1, 1), "net", "probe", ("reference", 1, 1)], order
    assert probe.calls == [1, 1, 1]
    fp = raw["fingerprint"]
    assert fp["kernels"] == {k: pytest.approx(v * 1.1) for k, v in KERNELS.items()}
    assert len(fp["probes"]) == 3 and fp["env"]["threads"] == 1
    # the reference network, timed at the same three points: what a later use compares
    net = fp["network"]
    assert (net["name"], net["resolution"], net["batch"]) == ("mobilenetv2", 128, 1)
    assert net["runs"] == [3.3, 3.1, 3.4] and net["ms"] == 3.1
    held = raw["holdout"]
    assert len(held["measured_ms"]) == len(held["networks_ir"]["graphs"]) == 1
    assert len(held["round_ms"]) == 1 and len(held["round_ms"][0]) == 1
    # profiled reorders were charged to the kernel that reads them, and the profile says so
    assert raw["reorders"] == "reader"
    profile = fitting.build(raw, n_trees=0)
    assert profile.calibration["reorders"] == "reader"
    older = {k: v for k, v in raw.items() if k != "reorders"}   # a raw file before it
    assert fitting.build(older, n_trees=0).calibration["reorders"] == "next kernel"
    assert profile.fingerprint == fp
    v = profile.validation
    assert v["networks"] == 1 and 0 <= v["within"] <= 1 and v["rounds"] == 1
    # the raw file keeps fingerprint and held-out networks: a refit reports the same
    rawfile.save_raw(raw, tmp_path / "raw.json")
    again = fitting.build(rawfile.load_raw(tmp_path / "raw.json"), n_trees=0)
    assert again.fingerprint == fp and again.validation == v
    assert again.calibration["raw_sha256"] == profile.calibration["raw_sha256"]


def _main(argv, monkeypatch, captured):
    from archspec.cli import main
    from test_fingerprint import fingerprinted

    def fake_calibrate(**kw):
        captured.update(kw)
        return {}

    def fake_build(raw, n_trees=200, **kw):
        p = fingerprinted()
        p.calibration.update(kernel_samples=1, networks=captured["networks"],
                             variants=captured["variants"], seconds=1.0,
                             round_spread_median=0.1, round_spread_p90=0.2)
        p.validation = {"networks": 20, "within": 18, "share_within": 0.9,
                        "tolerance": 0.1, "abs_error_median": 0.04,
                        "signed_error_median": -0.01}
        return p

    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(cal, "calibrate", fake_calibrate)
    monkeypatch.setattr(fitting, "build", fake_build)
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_quick_plan_fills_what_is_not_given(tmp_path, monkeypatch, capsys):
    got = {}
    out = tmp_path / "p.json"
    code = _main(["calibrate", "--quick", "--networks", "5", "-o", str(out),
                  "--no-progress", "--trees", "0"], monkeypatch, got)
    assert code in (0, None)
    assert got["networks"] == 5
    assert {k: got[k] for k in ("variants", "repeats", "rounds", "holdout")} == \
        {k: cal.QUICK[k] for k in ("variants", "repeats", "rounds", "holdout")}
    err = capsys.readouterr().err
    assert "validation: 18 of 20 held-out networks (90%)" in err
    assert json.loads(out.read_text())["validation"]["within"] == 18


def test_full_plan_is_the_options_as_given(tmp_path, monkeypatch):
    got = {}
    _main(["calibrate", "-o", str(tmp_path / "p.json"), "--no-progress", "--trees", "0"],
          monkeypatch, got)
    assert {k: got[k] for k in cal.FULL} == cal.FULL


def test_quick_does_not_combine_with_from_raw(tmp_path):
    import subprocess
    import sys

    rawfile_path = tmp_path / "raw.json"
    rawfile_path.write_text("{}")
    r = subprocess.run([sys.executable, "-m", "archspec", "calibrate", "--from-raw",
                        str(rawfile_path), "--quick", "-o", str(tmp_path / "p.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--quick" in r.stderr


@pytest.mark.parametrize("option, target, message", [
    ("-o", "{tmp}/afile/x.json", "--output {tmp}/afile/x.json: {tmp}/afile is a file"),
    ("-o", "/proc/nope/x.json", "--output /proc/nope/x.json: cannot create a file in /proc"),
    ("--save-raw", "{tmp}/afile/r/raw.json", "--save-raw {tmp}/afile/r/raw.json: {tmp}/afile "
     "is a file"),
    ("--save-raw", "/proc/nope/raw.json", "--save-raw /proc/nope/raw.json: cannot create"),
])
def test_unwritable_outputs_are_refused_before_measuring(tmp_path, monkeypatch, capsys,
                                                         option, target, message):
    (tmp_path / "afile").write_text("x")
    argv = ["calibrate", "--quick", "--no-progress", "--trees", "0", "-o",
            str(tmp_path / "p.json"), option, target.format(tmp=tmp_path)]
    got = {}
    assert _main(argv, monkeypatch, got) == 2
    assert got == {}, "measured before checking the outputs"
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
