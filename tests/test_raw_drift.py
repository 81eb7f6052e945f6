"""benchmarks/raw_drift.py: kernel times of two calibrations compared over the networks
both recorded identically (nothing is measured)."""
from __future__ import annotations

import json

import pytest


def _module():
    from conftest import benchmark

    return benchmark("raw_drift")


def _raw(scale: dict, other_net: bool = False, when: str = "t0") -> dict:
    """Two networks: the first (a 1x1 conv and a relu) recorded alike in every file,
    the second differently when ``other_net``; kernel times scaled per type."""
    graphs = [{"name": "a", "nodes": [[0, "input"]]},
              {"name": "b" if not other_net else "c", "nodes": [[0, "input"]]}]
    samples = []
    for net in (0, 1):
        for type_, us in (("conv.pw.c", 100.0), ("act.relu", 5.0)):
            samples.append({"net": net, "type": type_, "us": us * scale.get(type_, 1.0)})
    return {"measured": when, "backend": "onnxruntime", "threads": 1, "batch": 1,
            "nchwc_block": 16, "networks_ir": {"graphs": graphs}, "samples": samples,
            "walls": [110.0 * scale.get("wall", 1.0), 120.0],
            "fingerprint": {"kernels": {"conv1x1": 10.0, "copy": 4.0}}}


def test_kernels_are_compared_only_over_networks_recorded_alike(tmp_path, capsys):
    mod = _module()
    old = _raw({})
    new = _raw({"conv.pw.c": 0.9, "wall": 0.92}, other_net=True, when="t1")
    new["fingerprint"]["kernels"]["conv1x1"] = 9.9
    d = mod.drift(old, new)
    assert d["networks"] == 1 and d["walls"]["median_ratio"] == 0.92
    assert d["families"] == {"conv.pw": {"kernels": 1, "median_ratio": 0.9},
                             "act": {"kernels": 1, "median_ratio": 1.0}}
    assert d["sizes"] == {"0-10 us": {"kernels": 1, "median_ratio": 1.0},
                          "50-200 us": {"kernels": 1, "median_ratio": 0.9}}
    assert d["probe_ratio"] == {"conv1x1": 0.99, "copy": 1.0}
    assert d["reference_ratio"] is None
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(new))
    assert mod.main([str(a), str(b), "--json", str(tmp_path / "d.json")]) == 0
    assert "conv.pw" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text()) == d
    old["fingerprint"]["network"], new["fingerprint"]["network"] = {"ms": 2.0}, {"ms": 1.8}
    assert mod.drift(old, new)["reference_ratio"] == 0.9
    new["fingerprint"]["network"]["version"] = 2       # another timing: not compared
    assert mod.drift(old, new)["reference_ratio"] is None


def test_files_of_other_settings_or_without_a_common_network_are_refused(tmp_path, capsys):
    mod = _module()
    with pytest.raises(ValueError, match="differ in threads"):
        mod.drift(_raw({}), {**_raw({}), "threads": 2})
    none = _raw({})
    none["networks_ir"]["graphs"][0]["name"] = "z"
    none["networks_ir"]["graphs"][1]["name"] = "y"
    with pytest.raises(ValueError, match="no network"):
        mod.drift(_raw({}), none)
    zero = _raw({"wall": 0.0})         # a wall of 0 is not divided by
    zero["walls"][1] = 0.0
    with pytest.raises(ValueError, match="no network"):
        mod.drift(zero, _raw({}))
    # kernels that cover other nodes, or were timed or charged otherwise
    for key, a, b in (("fusion", {"blocked_bn_acts": True}, None),
                      ("reorders", "reader", "next"), ("partial_add", "masked", "sliced"),
                      ("sampler", 3, 2),
                      ("denormals", "flushed while timing", None)):
        with pytest.raises(ValueError, match=f"differ in {key}"):
            mod.drift({**_raw({}), **({} if b is None else {key: b})}, {**_raw({}), key: a})
    # a setting a file did not record is what it was then
    mod.drift({**_raw({}), "sampler": 1, "reorders": "next kernel"}, _raw({}))
    with pytest.raises(ValueError, match="differ in sampler"):
        mod.drift({**_raw({}), "sampler": 2}, _raw({}))
    # the denormal note's wording alone is not a difference
    mod.drift({**_raw({}), "denormals": "flushed (one wording)"},
              {**_raw({}), "denormals": "flushed (another)"})
    (tmp_path / "a.json").write_text(json.dumps(_raw({})))
    (tmp_path / "b.json").write_text(json.dumps({**_raw({}), "threads": 2}))
    assert mod.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "differ in threads" in capsys.readouterr().err
