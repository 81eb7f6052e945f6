"""The command line's conventions: every `--format json` output carries its schema tag
(docs/json.md), old option spellings still work with a deprecation note, and shell
completion offers shipped spec names and spec files."""
import json
import os
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

PROFILE = ROOT / "profiles" / "cpu-ort-1t.json"
CHEAP = [
    ("cost", ["cost", "mobilenetv3_small"], "totals"),
    ("diff", ["diff", "mobilenetv2", "mobilenetv3_small"], "rows"),
    ("sweep", ["sweep", "mobilenetv2", "-w", "0.5,1.0", "-r", "96"], "front"),
    ("validate", ["validate", "mobilenetv2", "mobilenetv3_small"], "results"),
    ("memory", ["memory", "mobilenetv2", "-r", "96"], "peak_bytes"),
    ("latency", ["latency", "mobilenetv3_small", "-p", PROFILE], "kernels"),
    ("specs", ["specs"], "specs"),
    ("blocks", ["blocks"], "blocks"),
    ("profiles", ["profiles", "--no-probe"], "profiles"),
]


def _json(*args):
    r = run_cli(*args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("kind,args,field", CHEAP, ids=[c[0] for c in CHEAP])
def test_json_outputs_carry_their_schema(kind, args, field):
    doc = _json(*args)
    assert next(iter(doc)) == "schema" and doc["schema"] == f"archspec.{kind}/1"
    assert doc[field]


def test_json_schemas_are_documented():
    text = (ROOT / "docs" / "json.md").read_text()
    for kind in [c[0] for c in CHEAP] + ["bench", "eval"]:
        assert f"`archspec.{kind}/1`" in text, kind


def test_bench_json_schema():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    doc = _json("bench", "mobilenetv3_small", "-r", "32", "--repeats", "2", "--warmup", "0",
                "--no-progress")
    assert doc["schema"] == "archspec.bench/1" and doc["results"][0]["resolution"] == 32


def test_train_eval_new_and_deprecated_spellings(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tiny = ["mobilenetv2_cifar", "-w", "0.35", "-r", "16", "--data", "synthetic:64",
            "--epochs", "1", "--limit-batches", "1", "-q", "--no-plot"]
    r = run_cli("train", *tiny, "--out", tmp_path / "old", "-b", "12", env=env)
    assert r.returncode == 0, r.stderr
    assert "--out is deprecated; use --output" in r.stderr
    assert "--batch-size/-b is deprecated; use --batch" in r.stderr
    assert json.loads((tmp_path / "old" / "run.json").read_text())["recipe"]["batch_size"] == 12
    r = run_cli("train", *tiny, "--output", tmp_path / "new", "--batch", "8", env=env)
    assert r.returncode == 0 and "deprecated" not in r.stderr, r.stderr
    assert json.loads((tmp_path / "new" / "run.json").read_text())["recipe"]["batch_size"] == 8
    best = tmp_path / "new" / "best.pt"
    ev = ["eval", best, "--data", "synthetic:64", "--limit-batches", "1", "-f", "json"]
    doc = json.loads(run_cli(*ev, "--batch", "8", env=env).stdout)
    assert doc["schema"] == "archspec.eval/1" and doc["images"] == 8
    r = run_cli(*ev, "--batch-size", "4", env=env)
    assert json.loads(r.stdout)["images"] == 4 and "deprecated" in r.stderr


def _complete(*words):
    env = {**os.environ, "_ARCHSPEC_COMPLETE": "complete_bash",
           "COMP_WORDS": " ".join(["archspec", *words]), "COMP_CWORD": str(len(words))}
    r = run_cli(env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_completion_of_spec_names_and_files(tmp_path):
    assert _complete("cost", "mobilenetv3_s") == ["mobilenetv3_small", "mobilenetv3_small_075"]
    assert "mobilenext_variant_a" in _complete("sweep", "mobilenext_")
    assert _complete("diff", "mobilenetv2", "rexnet_p") == ["rexnet_plain"]
    assert _complete("cost", "specs/mobilenetv2_c") == ["specs/mobilenetv2_cifar.yaml"]
    assert _complete("cost", "mobilenetv2", "--per", "") == ["stage", "block", "layer"]
    from archspec.cli_common import complete_spec

    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "sub").mkdir()
    assert complete_spec(f"{tmp_path}/") == [f"{tmp_path}/a.yaml", f"{tmp_path}/sub/"]
    assert complete_spec(str(Path(tmp_path) / "nope" / "x")) == []


@pytest.mark.parametrize("written", [False, True])
def test_sweep_suggests_o_only_when_not_given(capsys, written):
    from archspec.commands.sweep import _print_front

    rows = [{"width": 1.0, "resolution": 8 * i, "params": i, "madds": i} for i in range(1, 61)]
    _print_front("x", rows, rows, written=written)
    out = capsys.readouterr().out
    assert "... 10 more on the front" in out
    assert ("use -o to write all" in out) is not written
