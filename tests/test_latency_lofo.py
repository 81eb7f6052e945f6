"""benchmarks/latency_lofo.py: the family table and the dropping of a family's calibration
networks (no fitting, no timing)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "profiles" / "cpu-ort-1t.raw.json"


@pytest.fixture(scope="module")
def lofo():
    spec = importlib.util.spec_from_file_location(
        "latency_lofo", ROOT / "benchmarks" / "latency_lofo.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["latency_lofo"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_shipped_spec_has_exactly_one_family(lofo):
    shipped = set(lofo.shipped_specs())
    listed = [s for specs in lofo.FAMILIES.values() for s in specs]
    assert len(listed) == len(set(listed)), "a spec in two families"
    assert set(listed) - shipped == set(), "a family lists a spec that is not shipped"
    assert shipped - set(listed) == set(), \
        "a shipped spec without a family: add it to FAMILIES in benchmarks/latency_lofo.py"


def _synthetic():
    """3 motif networks and 4 variants (2 MobileNetV1, 1 ReXNet, 1 MobileNetV1), one
    sample per kernel, per-network lists whose entries name their network."""
    graphs = [{"name": f"calib{i}", "meta": {}} for i in range(3)] + [
        {"name": "mobilenetv1", "meta": {"spec": "mobilenetv1"}},
        {"name": "rexnet", "meta": {"spec": "rexnet"}},
        {"name": "mobilenetv1", "meta": {"spec": "mobilenetv1"}},
        {"name": "ssdlite_rexnet [width=0.5]", "meta": {}}]
    samples = [{"net": i, "type": f"t{i}.{j}", "us": float(i)} for i in range(7)
               for j in range(i % 3 + 1)]
    return {"networks": 3, "variants": 4, "samples": samples,
            "walls": [100.0 + i for i in range(7)],
            "overhead": [[i, float(i)] for i in range(7)],
            "wall_rounds": [[i, i] for i in range(7)],
            "networks_ir": {"format": "x", "graphs": graphs}, "seed": 0}


def test_drop_a_family_synthetic(lofo):
    raw = _synthetic()
    fams = lofo.family_networks(raw)
    assert fams == {None: [0, 1, 2], "MobileNetV1": [3, 5], "ReXNet": [4, 6]}
    out = lofo.drop_networks(raw, fams["MobileNetV1"])
    kept = [0, 1, 2, 4, 6]
    assert (out["networks"], out["variants"]) == (3, 2)
    assert out["walls"] == [100.0 + i for i in kept]
    assert out["overhead"] == [[i, float(i)] for i in kept]
    assert out["wall_rounds"] == [[i, i] for i in kept]
    assert [g["name"] for g in out["networks_ir"]["graphs"]] == \
        ["calib0", "calib1", "calib2", "rexnet", "ssdlite_rexnet [width=0.5]"]
    # every kept sample, renumbered in order; none of the dropped networks'
    assert [(s["net"], s["type"]) for s in out["samples"]] == \
        [(kept.index(s["net"]), s["type"]) for s in raw["samples"] if s["net"] in kept]
    assert raw["walls"][3] == 103.0 and len(raw["samples"]) == 13   # the input is untouched
    # a motif network dropped lowers the motif count
    assert (lofo.drop_networks(raw, [1])["networks"], lofo.drop_networks(raw, [1])["variants"]) \
        == (2, 4)


def test_a_variant_of_an_unknown_spec_is_an_error(lofo):
    raw = _synthetic()
    raw["networks_ir"]["graphs"][3] = {"name": "x", "meta": {"spec": "not_a_shipped_spec"}}
    with pytest.raises(SystemExit, match="no family"):
        lofo.family_networks(raw)


@pytest.mark.skipif(not RAW.exists(), reason="no shipped raw file")
def test_drop_a_family_shipped_raw_refits(lofo, tmp_path):
    """On the shipped raw file: dropping a family removes exactly its calibration variants
    (their samples, walls, overheads), and what is left still loads as --from-raw loads a
    file (every remaining network's kernels are its samples)."""
    from archspec.latency.raw import load_raw, save_raw

    raw = lofo.read_raw(RAW)
    base = lofo.drop_networks(raw, lofo.unmatched_networks(raw))
    fams = lofo.family_networks(base)
    assert len(fams[None]) == base["networks"]      # the motif networks, no family
    fam = max((f for f in fams if f is not None), key=lambda f: len(fams[f]))
    drop = set(fams[fam])
    out = lofo.drop_networks(base, drop)
    n = lofo.network_count(base)
    assert lofo.network_count(out) == n - len(drop)
    assert len(out["samples"]) == sum(s["net"] not in drop for s in base["samples"])
    assert out["walls"] == [w for i, w in enumerate(base["walls"]) if i not in drop]
    assert fam not in lofo.family_networks(out)
    path = tmp_path / "raw.json"
    save_raw({k: v for k, v in out.items() if k != "schema"}, path)
    loaded = load_raw(path)
    assert len(loaded["samples"]) == len(out["samples"])


def test_doc_block_is_in_place(lofo):
    text = (ROOT / "docs" / "latency.md").read_text()
    assert text.count(lofo.BEGIN) == 1 and text.count(lofo.END) == 1
    assert text.index(lofo.BEGIN) < text.index(lofo.END)


def test_inputs_of_different_backends_are_refused(lofo):
    """A torch raw file scored against onnxruntime's check (the script's defaults are
    onnxruntime's) would refit eager kernels and predict onnxruntime times: refused."""
    args = lofo.parser().parse_args([
        "--raw", str(ROOT / "profiles" / "cpu-torch-1t-zen3.raw.json"),
        "--profile", str(ROOT / "profiles" / "cpu-ort-1t-zen3.json"),
        "--check", str(ROOT / "benchmarks" / "latency_check.json")])
    with pytest.raises(SystemExit, match="different backends.*--raw torch, --profile "
                                         "onnxruntime, --check onnxruntime"):
        lofo.run(args)


def test_a_partial_check_is_scored_only_without_the_doc(lofo, tmp_path):
    """A stopped latency_check run holds its first chunks (the shipped specs first): its
    leave-one-family-out figure is not the doc's."""
    import json

    partial = tmp_path / "run.partial.json"
    partial.write_text(json.dumps({"partial": {"measured": 20, "models": 150},
                                   "results": []}))
    args = lofo.parser().parse_args(["--check", str(partial)])
    assert args.doc      # the script's default writes docs/latency.md
    with pytest.raises(SystemExit, match=r"stopped run's \(partial: 20 of 150 models\): "
                                         "give --doc ''"):
        lofo.run(args)


def _benchmark(name: str):
    """benchmarks/<name>.py as a module."""
    from conftest import benchmark

    return benchmark(name)


@pytest.fixture(scope="module")
def pairs():
    return _benchmark("latency_pairs")


def test_pairs_repredict_checks_the_saved_predictions_and_measures_nothing(pairs, tmp_path,
                                                                           monkeypatch):
    """latency_pairs.py --repredict: the saved measurements, predicted by another profile
    (a refit), with the ratios recomputed; a wrong OLD_PROFILE is refused."""
    import json
    import shutil
    import tempfile

    from archspec.latency import check as chk
    from archspec.latency.profile import load

    saved = tmp_path / "pairs.json"
    shutil.copy(ROOT / "benchmarks" / "latency_pairs.json", saved)
    before = json.loads(saved.read_text())
    monkeypatch.setattr(chk, "measure", lambda *a, **k: pytest.fail("measured"))
    old = ROOT / "profiles" / "cpu-ort-1t-zen3.json"     # what the saved file was predicted by
    new = ROOT / "profiles" / "cpu-ort-1t-xeon.json"
    assert pairs.main(["--repredict", str(old), "--profile", str(new), "--json", str(saved),
                       "--doc", ""]) == 0
    after = json.loads(saved.read_text())
    assert [r["measured_ms"] for r in after["networks"]] == \
        [r["measured_ms"] for r in before["networks"]]
    xeon = load(new)
    with tempfile.TemporaryDirectory() as tmp:
        nets = pairs.networks(Path(tmp))
    first = after["networks"][0]
    assert first["predicted_ms"] == chk.predict(nets[first["name"]], xeon).total_ms
    ratio = after["networks"][1]["predicted_ms"] / first["predicted_ms"]
    assert after["pairs"][0]["predicted"] == pytest.approx(ratio)
    assert after["repredicted"]["profile_created"] == xeon.created
    assert "Predictions recomputed" in pairs.render(after)
    # the file now holds the Xeon profile's predictions: the Zen 3 one did not make them
    with pytest.raises(SystemExit, match="not the profile"):
        pairs.main(["--repredict", str(old), "--profile", str(new), "--json", str(saved),
                    "--doc", ""])


@pytest.fixture(scope="module")
def check():
    return _benchmark("latency_check")


@pytest.mark.parametrize("saved, profile", [
    ("latency_check.json", "cpu-ort-1t-zen3.json"),
    ("latency_check_2t.json", "cpu-ort-2t-zen3.json"),
    ("latency_check_xeon.json", "cpu-ort-1t-xeon.json"),
    ("latency_check_xeon_repeat.json", "cpu-ort-1t-xeon.json"),
    ("latency_check_2t_xeon.json", "cpu-ort-2t-xeon.json"),
    ("latency_check_b4_xeon.json", "cpu-ort-1t-b4-xeon.json"),
    ("latency_check_torch_xeon.json", "cpu-torch-1t-xeon.json"),
    ("latency_check_zen1.json", "cpu-ort-1t-zen1.json"),
])
def test_every_shipped_check_is_predicted_by_its_shipped_profile(check, saved, profile,
                                                                 tmp_path, monkeypatch):
    """Each saved latency check is rebuilt model by model (the validation models and the
    in-sample calibration networks, drawn by the profile's sampling plan) and predicted
    by the profile shipped beside it exactly as saved: --repredict refuses otherwise.
    Nothing is measured."""
    import json
    import shutil

    from archspec.latency import check as chk

    monkeypatch.setattr(chk, "measure", lambda *a, **k: pytest.fail("measured"))
    copy = tmp_path / saved
    shutil.copy(ROOT / "benchmarks" / saved, copy)
    before = json.loads(copy.read_text())
    path = str(ROOT / "profiles" / profile)
    assert check.main(["--repredict", path, "--profile", path, "--json", str(copy),
                       "--doc", ""]) == 0
    after = json.loads(copy.read_text())
    assert after["summary"]["within"] == before["summary"]["within"]
    assert after["repredicted"]["shift_all"]["max"] == 0.0


def test_a_stopped_latency_check_writes_what_it_measured_marked_partial(check, tmp_path,
                                                                        monkeypatch):
    """2026-12-04, a busy Zen 1 host: a run takes well over an hour; stopped (SIGTERM or
    Ctrl-C) it keeps the finished chunks in a file of their own, marked partial, out of
    the doc, exits 130, and a partial file can be predicted again. Nothing is measured:
    the chunks' times are made up."""
    import json
    import os
    import signal

    from archspec.latency import check as chk

    monkeypatch.setenv("ARCHSPEC_NO_PROBE", "1")
    calls = []

    def fake_check(chunk, profile, **kw):
        calls.append(len(chunk))
        if len(calls) == 3:
            assert signal.getsignal(signal.SIGTERM) is check._interrupt
            os.kill(os.getpid(), signal.SIGTERM)        # as `kill` or `timeout` would
        return [chk.Checked(name, chk.predict(g, profile).total_ms,
                            chk.predict(g, profile).total_ms * 1.02, 0.03, 4, 6)
                for name, g in chunk]

    monkeypatch.setattr(chk, "check", fake_check)
    doc, out = tmp_path / "latency.md", tmp_path / "run.json"
    doc.write_text("untouched\n")
    out.write_text("a finished run\n")
    profile = str(ROOT / "profiles" / "cpu-ort-1t-xeon.json")
    handler = signal.getsignal(signal.SIGTERM)
    assert check.main(["--profile", profile, "--json", str(out), "--doc", str(doc),
                       "--quiet-range", "0", "--calib-nets", "2"]) == 130
    assert signal.getsignal(signal.SIGTERM) is handler   # restored
    assert out.read_text() == "a finished run\n" and doc.read_text() == "untouched\n"
    partial = tmp_path / "run.partial.json"
    saved = json.loads(partial.read_text())
    # the shipped specs + 102 variants + 2 calibration networks; two chunks of 10 finished
    shipped = len(list(check.SHIPPED.glob("*.yaml")))
    assert saved["partial"] == {"measured": 20, "models": shipped + 102 + 2}
    assert len(saved["results"]) + len(saved["in_sample_results"]) == 20
    assert saved["summary"]["within"] == 1.0
    assert check.main(["--repredict", profile, "--profile", profile, "--json", str(partial),
                       "--doc", str(doc)]) == 0
    assert json.loads(partial.read_text())["partial"]["measured"] == 20
    assert doc.read_text() == "untouched\n"

    # stopped before any validation model finished (the first chunk of one model is a
    # calibration network): nothing is written, the stop goes on
    calls[:] = [0]
    with pytest.raises(KeyboardInterrupt):
        check.main(["--profile", profile, "--json", str(tmp_path / "none.json"),
                    "--quiet-range", "0", "--doc", "", "--chunk", "1"])
    assert not list(tmp_path.glob("none*"))
    assert signal.getsignal(signal.SIGTERM) is handler


@pytest.mark.parametrize("saved, says", [
    ("latency_check_zen1.json", "the bar for a full calibration (>= 95% within +-10%)"),
    ("latency_check_zen1_quick.json", "meets the bar for a quick calibration (>= 85%"),
])
def test_a_check_block_states_its_bar_and_the_fastest_round_figure(check, saved, says):
    import json

    doc = json.loads((ROOT / "benchmarks" / saved).read_text())
    text = check.render(doc)
    assert says in text
    fr = doc["summary"]["fastest_round"]
    assert f"{fr['within']:.1%} / {fr['signed_error_median']:+.1%}" in text
    for r in doc["results"]:   # an older run's results: no such row
        r.pop("round_ms", None)
    doc["summary"].pop("fastest_round")
    assert "fastest round median" not in check.render(doc)
