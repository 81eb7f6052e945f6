"""diff: totals equal each side's cost; alignment; notes. Memory: op-by-op peak by hand."""
import json

import archspec
from archspec.analysis.diff import diff
from archspec.analysis.memory import op_by_op
from conftest import run_cli


def test_diff_totals_equal_cost():
    a, b = archspec.load("mobilenetv2"), archspec.load("mobilenetv3_large")
    d = diff(a.compile(), b.compile())
    assert d.a.totals.madds == a.cost().totals.madds
    assert d.b.totals.params == b.cost().totals.params
    rows = d.stage_rows()
    assert sum(r["b"]["madds"] for r in rows) == b.cost().totals.madds
    assert sum(r["a"]["params"] for r in rows) == a.cost().totals.params


def test_diff_identical_is_zero():
    g = archspec.load("mobilenetv3_small").compile()
    d = diff(g, g)
    assert all(r.notes == [] for r in d.rows)
    assert all(v == 0 for v in d.to_dict()["totals"]["delta"].values())


def test_diff_names_changes(write):
    base = ("name: a\ninput: {resolution: 32}\nstages:\n  - {block: conv, c: 16, s: 2}\n"
            "  - {block: ir, t: 6, c: 16}\n  - {block: ir, t: 6, c: 24, s: 2}\n")
    a = archspec.load(write(base, "a.yaml"))
    b = archspec.load(write(base.replace("{block: ir, t: 6, c: 16}",
                                         "{block: ir, t: 6, c: 16, k: 5, se: yes}")
                            + "  - {block: ir, t: 6, c: 24}\n", "b.yaml"))
    d = diff(a.compile(), b.compile())
    notes = [n for r in d.rows for n in r.notes]
    assert "kernel 3 -> 5 (dw)" in notes and "SE added" in notes
    assert any(n.startswith("only in b") for n in notes)


def test_diff_cli_json_schema():
    r = run_cli("diff", "mobilenetv2", "mobilenetv3_large", "-f", "json")
    doc = json.loads(r.stdout)
    assert doc["a"]["totals"]["madds"] == 300_774_272
    assert doc["b"]["totals"]["params"] == 5_483_032
    assert doc["totals"]["delta"]["params"] == 5_483_032 - 3_504_872
    assert doc["rows"][0]["level"] == "1/2"


def test_diff_cli_budget():
    r = run_cli("diff", "mobilenetv2", "mobilenetv3_large", "--budget", "params<=4M")
    assert r.returncode == 1 and "b (mobilenetv3_large): over budget" in r.stderr


def test_op_by_op_peak_by_hand():
    text = ("name: m\ninput: {resolution: 4, channels: 2}\nstages:\n"
            "  - {block: conv, c: 8, k: 1, nl: linear}\n  - {block: ir, t: 2, c: 8}\n")
    g = archspec.loads(text).compile()
    m = op_by_op(g)
    px = 16 * 4  # 4x4 pixels x fp32 bytes
    # during stages.1.block0.expand.bn: block input (8 ch, kept for the residual),
    # expand.conv output (16 ch) and expand.bn output (16 ch) are alive
    assert m.peak_bytes == (8 + 16 + 16) * px
    assert m.peak_at == "stages.1.block0.expand.bn"
    assert "stages.0.block0.bn" in m.live_at_peak
    assert op_by_op(g, batch=2, dtype="fp16").peak_bytes == m.peak_bytes


def test_views_allocate_nothing():
    g = archspec.load("mobilenetv2", resolution=96).compile()
    m = op_by_op(g)
    steps = dict(m.timeline)
    assert steps["head.2.flatten"] <= steps["head.1.pool"]


def test_diff_peak_memory_per_stage_is_a_max():
    g = archspec.load("mobilenetv2").compile()
    d = diff(g, archspec.load("mobilenext").compile())
    rows = d.stage_rows()
    assert max(r["a"]["peak_bytes"] for r in rows) == d.a.peak_bytes == op_by_op(g).peak_bytes
    assert max(r["b"]["peak_bytes"] for r in rows) == d.b.peak_bytes


def test_diff_with_latency_profile():
    from conftest import ROOT

    from archspec.latency.report import latency_column

    profile = ROOT / "profiles" / "cpu-ort-1t.json"
    r = run_cli("diff", "mobilenetv2", "mobilenetv3_small", "--profile", profile, "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    g = archspec.load("mobilenetv3_small").compile()
    column = latency_column(g, "block", profile)
    assert doc["totals"]["latency_ms"]["b"] == column.total_ms
    rows_b = sum(row["b"]["latency_ms"] for row in doc["rows"])
    assert abs(rows_b + column.overhead_ms - column.total_ms) < 1e-6
    md = run_cli("diff", "mobilenetv2", "mobilenetv3_small", "--profile", profile, "-f",
                 "markdown").stdout
    assert "| ms a | ms b | Δ ms |" in md
