"""The command line: outputs, exit codes, no tracebacks, and a torch-free `cost`."""
import json
import subprocess
import sys

import pytest

from conftest import SPECS, run_cli


def test_cost_table():
    r = run_cli("cost", SPECS / "mobilenetv3_small.yaml")
    assert r.returncode == 0, r.stderr
    assert "2,542,856" in r.stdout and "56.51 M" in r.stdout and "stages.12" in r.stdout


def test_cost_json_schema():
    r = run_cli("cost", "mobilenetv2", "--per", "layer", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["schema"] == "archspec.cost/1"
    assert doc["input"] == {"resolution": 224, "channels": 3}
    assert doc["totals"]["params"] == 3_504_872 and doc["totals"]["madds"] == 300_774_272
    row = doc["rows"][0]
    assert {"name", "type", "output_shape", "params", "madds"} <= set(row)
    assert row["name"] == "stages.0.block0.conv" and row["output_shape"] == [32, 112, 112]
    assert sum(r["madds"] for r in doc["rows"]) == doc["totals"]["madds"]


def test_cost_overrides():
    r = run_cli("cost", "mobilenetv2", "--width", "0.75", "--resolution", "160", "--classes",
                "10", "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["input"]["resolution"] == 160 and doc["width"] == 0.75 and doc["classes"] == 10
    assert doc["rows"][-1]["output_shape"] == [10]


@pytest.mark.parametrize("fmt,needle", [("markdown", "| **total** |"), ("csv", "name,type")])
def test_cost_other_formats(fmt, needle):
    assert needle in run_cli("cost", "mobilenetv2", "-f", fmt).stdout


def test_cost_output_file(tmp_path):
    out = tmp_path / "c.json"
    r = run_cli("cost", "mobilenetv2", "-f", "json", "-o", out)
    assert r.returncode == 0 and r.stdout == ""
    assert json.loads(out.read_text())["totals"]["params"] == 3_504_872
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temp file left behind


def test_budget():
    ok = run_cli("cost", "mobilenetv3_large", "--budget", "madds<=220M,params<=5.5M")
    assert ok.returncode == 0
    over = run_cli("cost", "mobilenetv3_large", "--budget", "madds<=200M")
    assert over.returncode == 1 and "madds = 216,589,760 breaks madds<=200M" in over.stderr
    bad = run_cli("cost", "mobilenetv3_large", "--budget", "flops<=1G")
    assert bad.returncode == 2 and "unknown figure 'flops'" in bad.stderr


def test_validate_reports_all_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages:\n  - {block: irr, c: 1}\n  - {block: conv, c: 0}\n")
    r = run_cli("validate", SPECS / "mobilenetv2.yaml", bad)
    assert r.returncode == 2
    assert "ok  " in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{bad}:3:") and "did you mean" in lines[0]
    assert "Traceback" not in r.stderr
    doc = json.loads(run_cli("validate", bad, "-f", "json").stdout)
    assert doc["results"][0]["problems"][1]["path"] == "stages[1].c"


def test_validate_all_shipped_specs():
    r = run_cli("validate", *sorted(SPECS.glob("*.yaml")))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("suffix", [".dot", ".graphml", ".json"])
def test_graph_export(tmp_path, suffix):
    out = tmp_path / f"g{suffix}"
    r = run_cli("graph", "mobilenetv2", "-o", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "stages.3.block1.expand.conv" in text
    if suffix == ".json":
        doc = json.loads(text)
        assert doc["outputs"]["output"] == "head.2.fc" and "C5" in doc["taps"]


def test_graph_unknown_format(tmp_path):
    r = run_cli("graph", "mobilenetv2", "-o", tmp_path / "g.png")
    assert r.returncode == 2 and "unknown graph format" in r.stderr
    assert not (tmp_path / "g.png").exists()


def test_specs_listing():
    doc = json.loads(run_cli("specs", "-f", "json").stdout)
    names = {s["name"] for s in doc["specs"]}
    assert {"mobilenetv2", "mobilenetv3_large", "mobilenetv3_small"} <= names
    assert all(s["description"] and s["source"] for s in doc["specs"])


def test_schema_command():
    assert json.loads(run_cli("schema").stdout)["title"] == "archspec architecture spec"


@pytest.mark.parametrize("args", [["cost", "nope.yaml"], ["cost", "mobilenetv2", "--per", "x"],
                                  ["cost", "mobilenetv2", "--width", "abc"], ["frobnicate"],
                                  ["cost", "mobilenetv2", "--resolution", "99999"]])
def test_bad_input_exits_2_without_traceback(args):
    r = run_cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip()


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "cost" in r.stdout and "validate" in r.stdout


def test_cost_does_not_import_torch_or_onnx():
    code = ("import sys\nfrom archspec.cli import main\n"
            "try:\n    main(['cost', 'mobilenetv3_large', '-f', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'networkx', 'matplotlib')"
            " if m in sys.modules]\nprint('HEAVY', heavy, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in r.stderr, r.stderr


def test_build_options(tmp_path):
    r = run_cli("build", "mobilenetv3_small", "--no-fold-bn")
    assert r.returncode == 2 and "does not take --no-fold-bn" in r.stderr
    r = run_cli("build", "mobilenetv2", "--features", "C9")
    assert r.returncode == 2 and "no tap `C9`" in r.stderr
    out = tmp_path / "v3s.onnx"
    r = run_cli("build", "mobilenetv3_small", "-b", "onnx", "--no-fold-bn", "-r", "96", "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(run_cli("cost", out, "-f", "json").stdout)
    assert doc["totals"]["params"] == 2_542_856  # unfolded: the spec's own figures


@pytest.mark.parametrize("args,needle", [
    (["cost", "mobilenetv2", "-o", "/proc/archspec-test/x.json"], "cannot write"),
    (["sweep", "mobilenetv2", "-r", "inf"], "outside"),
    (["sweep", "mobilenetv2", "--t", "100"], "outside"),
    (["sweep", "mobilenetv2", "--minimize", ""], "name at least one figure"),
    (["sweep", "mobilenetv2", "-w", "0.5", "--budget", "buffers<=1M"], "unknown figure"),
])
def test_more_bad_input_exits_2(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_validate_reports_non_spec_errors_per_file(tmp_path):
    import os

    r = subprocess.run([sys.executable, "-m", "archspec", "validate", "mobilenetv2",
                        "mobilenetv3_small", "-f", "json"], capture_output=True, text=True,
                       env={**os.environ, "ARCHSPEC_MAX_NODES": "10"})
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and len(doc["results"]) == 2
    assert "exceeds 10 nodes" in doc["results"][1]["problems"][0]["message"]


def test_override_errors_blame_the_option():
    """A backbone compiles at any size (torch's conv rule); the Cityscapes LR-ASPP's 49x49
    gate window does not fit at 160 px."""
    r = run_cli("cost", "lraspp_mobilenetv3_large_cityscapes", "--resolution", "160")
    assert r.returncode == 2 and r.stderr.startswith("command line: --resolution:"), r.stderr
    assert "does not fit" in r.stderr and "Traceback" not in r.stderr
