"""A profile's batch (``calibrate --batch N``): the calibration networks are run on N
images, the raw file and the profile record N, refits keep it, the kernels' features are
for N images wherever the model reads them (calibration, refit, prediction, sweeps) and
asking a profile for another batch is an error. One tiny real calibration at batch 4
runs (two small networks, one round, injected probe); no test asserts a time."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import archspec
import pytest

from archspec.latency import calibrate as cal
from archspec.latency import fitting
from archspec.latency import raw as rawfile
from archspec.latency.kernels import PER_IMAGE
from archspec.latency.kernels import kernels as fuse
from archspec.latency.model import LatencyModel
from archspec.latency.profile import Profile, load
from archspec.latency.raw import networks_from_record
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "cpu-ort-1t.json"
ENV = {**os.environ, "ARCHSPEC_NO_PROBE": "1"}


def _graph(name="mobilenetv2", resolution=96):
    return archspec.load(name, resolution=resolution).compile()


def _at_batch(profile: Profile, batch: int) -> Profile:
    """``profile`` as if calibrated at ``batch`` (same model; Profile sets its batch)."""
    return dataclasses.replace(profile, settings={**profile.settings, "batch": batch})


def test_features_for_a_batch_scale_per_image_figures_not_weights():
    for k in fuse(_graph("mobilenetv3_large"), 16):
        one, four = k.features(), k.features(4)
        assert one == k.features(1)
        for key in PER_IMAGE:
            assert four[key] == 4 * one[key], (k.name, key)
        for key in ("params", "cin", "cout", "hw", "act"):
            assert four[key] == one[key], (k.name, key)
        assert four["net_elems"] == k.net_params + 4 * (one["net_elems"] - k.net_params)
        assert four["net_elems"] > one["net_elems"] > k.net_params > 0


def test_a_batch_4_profile_predicts_from_features_of_4_images():
    model = LatencyModel({"*": [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0]}, (10.0, 0.0))
    p1 = Profile("onnxruntime", {"threads": 1, "nchwc_block": 16}, {}, {}, model)
    assert p1.batch == 1 and p1.model.batch == 1        # a missing batch is 1
    ks = fuse(_graph(), 16)
    per_image = p1.model.predict(ks).total_ms
    p4 = _at_batch(p1, 4)
    assert p4.batch == 4 and p4.model.batch == 4
    four = p4.model.predict(ks)
    # linear, every coefficient 1 per million (and 2 us a kernel): the work is 4x, the
    # weights once
    work = sum(sum(k.features()[f] for f in PER_IMAGE) for k in ks)
    params = sum(k.params for k in ks)
    expect = (2.0 * len(ks) + (4 * work + params) / 1e6 + 10.0) / 1000
    assert four.total_ms == pytest.approx(expect, rel=1e-12)
    assert per_image == pytest.approx((2.0 * len(ks) + (work + params) / 1e6 + 10.0) / 1000,
                                      rel=1e-12)


def test_a_missing_batch_loads_as_1_and_a_bad_one_is_refused(tmp_path):
    from archspec.errors import ArchspecError

    doc = json.loads(PROFILE.read_text())
    assert load(PROFILE).batch == doc["settings"].get("batch", 1) == 1
    doc["settings"].pop("batch", None)
    (tmp_path / "nobatch.json").write_text(json.dumps(doc))
    assert load(tmp_path / "nobatch.json").batch == 1
    doc["settings"]["batch"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ArchspecError, match="batch 0"):
        load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def raw4(tmp_path_factory):
    """A tiny real calibration at batch 4, saved (seed 43: two small motif networks and
    a small held-out one, as tests/test_calibrate_quick.py)."""
    pytest.importorskip("onnxruntime")
    from test_calibrate_quick import fake_probe

    raw = cal.calibrate(threads=1, networks=2, variants=0, repeats=2, rounds=1, warmup=1,
                        min_round_ms=0, holdout=1, seed=43, probe=fake_probe(), batch=4)
    path = tmp_path_factory.mktemp("batch") / "raw4.json"
    rawfile.save_raw(raw, path)
    return raw, path


def test_a_batch_4_calibration_records_and_fits_batch_4(raw4, tmp_path):
    raw, path = raw4
    assert raw["batch"] == 4 and raw["fingerprint"]["network"]["batch"] == 4
    graphs = networks_from_record(raw["networks_ir"])
    want = [k.features(4) for g in graphs for k in fuse(g, raw["nchwc_block"])]
    assert [s["features"] for s in raw["samples"]] == want
    profile = fitting.build(raw, n_trees=0)
    assert profile.settings["batch"] == 4 and profile.model.batch == 4
    assert profile.validation["networks"] == 1
    profile.save(tmp_path / "p4.json")
    again = load(tmp_path / "p4.json")
    assert again.batch == again.model.batch == 4
    # the raw file keeps the batch: a refit fits the same features to batch 4
    loaded = rawfile.load_raw(path)
    assert loaded["batch"] == 4
    assert [s["features"] for s in loaded["samples"]] == want
    refit = fitting.build(loaded, n_trees=0)
    assert refit.settings["batch"] == 4
    assert refit.calibration["raw_sha256"] == profile.calibration["raw_sha256"]
    assert refit.validation == profile.validation
    # the digest covers the batch: the same samples at another batch are other data
    assert rawfile.digest({**raw, "batch": 2}) != rawfile.digest(raw)
    without = {k: v for k, v in raw.items() if k != "batch"}
    assert rawfile.raw_batch(without) == 1


def test_the_onnx_file_takes_a_batch_4_feed():
    pytest.importorskip("onnxruntime")
    from archspec.latency.timing import session

    g = _graph(resolution=64)
    sess, feed = session(g, 1, profile=False, batch=4)
    (x,) = feed.values()
    assert x.shape == (4, *g.input_shape)
    assert sess.run(None, feed)[0].shape[0] == 4


def test_memo_sweep_equals_full_path_for_a_batch_4_profile():
    from archspec.analysis import memo as block_memo
    from archspec.analysis.memo import SweepMemo
    from archspec.analysis.sweep import random_variants, vary
    from archspec.latency.memo import SweepLatency

    one = load(PROFILE)
    profile = _at_batch(load(PROFILE), 4)
    for name in ("mobilenetv3_large", "mobilenext", "efficientnet_b0"):
        block_memo.clear()
        spec = archspec.load(name)
        variants = random_variants(8, 3, spec, resolutions=[96, 128, 160])
        latency, memo = SweepLatency(profile), SweepMemo(spec)
        assert latency.batch == 4
        for v in variants:
            graph = vary(spec, v).compile()
            full = profile.model.predict(fuse(graph, profile.nchwc_block), graph).total_ms
            ms = latency.memoised(memo, v)
            assert ms is not None and ms == full, v
            row = {}
            latency(None, spec, v, row)       # the full path of a sweep
            assert row["latency_ms"] == round(full, 4)
            assert full > 1.5 * one.model.predict(fuse(graph, 16), graph).total_ms


def test_calibrate_batch_option_reaches_the_campaign(tmp_path, monkeypatch):
    from test_calibrate_quick import _main

    got = {}
    _main(["calibrate", "--quick", "--batch", "4", "-o", str(tmp_path / "p.json"),
           "--no-progress", "--trees", "0"], monkeypatch, got)
    assert got["batch"] == 4
    got.clear()
    _main(["calibrate", "--quick", "-o", str(tmp_path / "p.json"), "--no-progress",
           "--trees", "0"], monkeypatch, got)
    assert got["batch"] == 1


def test_cli_refit_keeps_batch_and_other_batches_are_errors(raw4, tmp_path):
    _, path = raw4
    p4 = tmp_path / "p4.json"
    r = run_cli("calibrate", "--from-raw", path, "-o", p4, "--trees", "0", env=ENV)
    assert r.returncode == 0, r.stderr
    assert "batch 4" in r.stderr and json.loads(p4.read_text())["settings"]["batch"] == 4
    r = run_cli("calibrate", "--from-raw", path, "-o", p4, "--batch", "2", env=ENV)
    assert r.returncode == 2 and "--batch" in r.stderr
    # latency predicts the profile's batch and says so
    r = run_cli("latency", "mobilenetv2", "-r", "96", "-p", p4, "-f", "json", env=ENV)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["batch"] == 4
    r = run_cli("latency", "mobilenetv2", "-r", "96", "-p", p4, env=ENV)
    assert r.returncode == 0 and "for a batch of 4" in " ".join(r.stdout.split())
    # cost without --batch: the profile's batch, figures and latency alike
    r = run_cli("cost", "mobilenetv2", "-r", "96", "-p", p4, "-f", "json", env=ENV)
    assert r.returncode == 0, r.stderr
    totals = json.loads(r.stdout)["totals"]
    assert totals.pop("latency_ms") > 0
    r = run_cli("cost", "mobilenetv2", "-r", "96", "--batch", "4", "-f", "json", env=ENV)
    assert json.loads(r.stdout)["totals"] == totals
    # another batch: exit 2, naming the profile's batch and the command that makes one
    for argv in (("latency", "mobilenetv2", "-p", p4, "--batch", "1"),
                 ("cost", "mobilenetv2", "-p", p4, "--batch", "8")):
        r = run_cli(*argv, env=ENV)
        assert r.returncode == 2, argv
        err = " ".join(r.stderr.split())
        assert "predicts batch 4" in err and "calibrate --batch" in err, err


def test_a_batch_1_profile_refuses_batch_8():
    r = run_cli("cost", "mobilenetv2", "--batch", "8", "--profile", PROFILE, env=ENV)
    assert r.returncode == 2
    err = " ".join(r.stderr.split())
    assert "predicts batch 1, not batch 8" in err
    assert "archspec calibrate --batch 8" in err
    r = run_cli("cost", "mobilenetv2", "--batch", "1", "--profile", PROFILE, "-f", "json",
                env=ENV)
    assert r.returncode == 0 and json.loads(r.stdout)["totals"]["latency_ms"] > 0
