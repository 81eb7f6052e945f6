"""Comparisons that must not mislead: diff names every setting that changes between
matched blocks, plot aligns two networks as diff does, the sweep plot shows its settings,
training curves show a single epoch."""
import json

import pytest

import archspec
from archspec.analysis import sweep as sw
from archspec.analysis.diff import diff, slots
from archspec.report import plots
from conftest import run_cli

SMALL = ("name: a\ninput: {resolution: 32}\nstages:\n  - {block: conv, c: 16, s: 2}\n"
         "  - {block: conv, c: 32, groups: 1}\n  - {block: ir, t: 6, c: 32, d: 1}\n"
         "  - {block: sandglass, t: 2, c: 48}\n"
         "head:\n  - {block: pool}\n  - {block: classifier, dropout: 0.2}\n")


def _notes(d) -> list[str]:
    return [n for r in d.rows for n in r.notes]


def test_nonlinearity_everywhere_is_a_difference_in_every_block(write):
    write(open(archspec.load("mobilenetv2").file).read(), "mobilenetv2.yaml")
    hs = write("extends: mobilenetv2.yaml\nname: v2_hswish\ndefaults: {nl: hswish}\n",
               "hs.yaml")
    ga, gb = archspec.load("mobilenetv2").compile(), archspec.load(hs).compile()
    with_relu6 = {n.block for n in ga if n.kind == "activation" and n.op.fn == "relu6"}
    d = diff(ga, gb)
    changed = {r.a.name for r in d.rows if any(n.startswith("nl relu6 -> hswish")
                                               for n in r.notes)}
    assert changed == with_relu6 and len(changed) == 19
    doc = json.loads(run_cli("diff", "mobilenetv2", hs, "--per", "block", "-f", "json").stdout)
    fields = {(c["field"], c["a"], c["b"]) for row in doc["rows"] for c in row["changes"]}
    assert fields == {("nl", "relu6", "hswish")}
    md = run_cli("diff", "mobilenetv2", hs, "-f", "markdown").stdout
    assert "nl relu6 -> hswish (expand, dw) (x7)" in md


def test_every_changed_setting_is_named():
    b = (SMALL.replace("groups: 1", "groups: 4").replace("d: 1", "d: 2")
         .replace("c: 48}", "c: 48, variant: full}").replace("dropout: 0.2", "dropout: 0.1")
         .replace("t: 6, c: 32,", "t: 6, c: 32, k: 5, se: yes,"))
    d = diff(archspec.loads(SMALL).compile(), archspec.loads(b).compile())
    notes = _notes(d)
    for note in ("groups 1 -> 4 (conv)", "kernel 3 -> 5 (dw)", "dilation 1 -> 2 (dw)",
                 "SE added", "dw1 added", "dw2 added", "dropout 0.2 -> 0.1"):
        assert note in notes, (note, notes)
    assert all(r.a and r.b for r in d.rows)


def test_stride_and_bias_are_named():
    a = SMALL.replace("{block: conv, c: 16, s: 2}", "{block: conv, c: 16, s: 1}")\
        .replace("c: 32, groups: 1}", "c: 32, groups: 1, s: 2}")
    b = SMALL.replace("{block: pool}",
                      "{block: pool}\n  - {block: conv, k: 1, c: 64, bn: false}")
    a2 = SMALL.replace("{block: pool}", "{block: pool}\n  - {block: conv, k: 1, c: 64}")
    notes = _notes(diff(archspec.loads(a).compile(), archspec.loads(SMALL).compile()))
    assert "stride 2 -> 1 (conv)" in notes
    notes = _notes(diff(archspec.loads(a2).compile(), archspec.loads(b).compile()))
    assert "bias False -> True (conv)" in notes and "bn removed" in notes


def test_identity_multiplier_alpha_is_named():
    mnx = archspec.load("mobilenext")
    d = diff(mnx.compile(), sw.vary(mnx, sw.Variant(alpha=0.5)).compile())
    with_shortcut = sum(r.a.residual for r in d.rows)
    assert _notes(d).count("alpha 1 -> 0.5 (identity)") == with_shortcut > 0
    assert _notes(d).count("shortcut full -> partial (add)") == with_shortcut


def test_identical_networks_have_no_changes():
    g = archspec.load("mobilenext").compile()
    assert all(r.changes == [] and r.notes == [] for r in diff(g, g).rows)


def _capture(monkeypatch) -> list:
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    return figures


def test_plot_aligns_blocks_as_diff_does(monkeypatch):
    a, b = archspec.load("mobilenetv2"), archspec.load("mobilenext")
    d = diff(a.compile(), b.compile())
    positions = slots(d, "block")
    assert [(p[1], p[2]) for p in positions] == \
        [([r.a.name] if r.a else [], [r.b.name] if r.b else []) for r in d.rows]
    figures = _capture(monkeypatch)
    plots.depth_plot([a, b], "x.png")
    madds = figures[0].axes[0]
    bars_a, bars_b = madds.containers
    heights = [(pa.get_height(), pb.get_height()) for pa, pb in zip(bars_a, bars_b)]
    head = [p[1] for p in positions].index(["head.0"])
    # MobileNetV2's 1x1 head conv has no counterpart: a gap beside it, not stages.8
    assert heights[head][0] == pytest.approx(a.cost().blocks[-3].madds / 1e6)
    assert heights[head][1] == 0
    stages8 = [p[2] for p in positions].index(["stages.8.block0"])
    assert positions[stages8][0] == "1/32" and heights[stages8][0] == 0
    texts = [t.get_text() for t in madds.texts]
    assert texts == ["1/2", "1/4", "1/8", "1/16", "1/32", "head"]


def test_plot_per_layer_pairs_ops_by_name(write):
    base = SMALL
    other = SMALL.replace("t: 6, c: 32, d: 1}", "t: 6, c: 32, d: 1, se: yes}")
    d = diff(archspec.loads(base).compile(), archspec.loads(other).compile())
    positions = slots(d, "layer")
    only_b = [p[2][0] for p in positions if not p[1]]
    assert only_b and all(".se." in n for n in only_b)
    paired = [p for p in positions if p[1] and p[2]]
    assert all(p[1] == p[2] for p in paired)
    stages = slots(d, "stage")
    assert [s[0] for s in stages] == ["1/2", "head"]


def test_plot_one_network_unchanged_order(monkeypatch):
    figures = _capture(monkeypatch)
    spec = archspec.load("mobilenetv3_small")
    plots.depth_plot([spec.compile()], "x.png", per="stage")
    labels = [t.get_text() for t in figures[0].axes[-1].get_xticklabels()]
    assert labels == [e.name for e in spec.cost().stages]


def _grid_rows():
    spec = archspec.load("mobilenetv2")
    return sw.run(spec, sw.grid([0.35, 0.5, 0.75, 1.0, 1.4], [96, 128, 160, 192, 224]),
                  workers=1)


def test_pareto_plot_labels_each_point_and_draws_iso_lines(monkeypatch):
    rows = _grid_rows()
    figures = _capture(monkeypatch)
    plots.pareto_plot(rows, sw.pareto(rows), "x.png", objectives=(sw.MINIMIZE, sw.MAXIMIZE))
    ax = figures[0].axes[0]
    labels = {t.get_text() for t in ax.texts}
    assert labels == {f"{w:g}\u00d7{r}" for w in (0.35, 0.5, 0.75, 1.0, 1.4)
                      for r in (96, 128, 160, 192, 224)}
    drawn = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    assert len(drawn) == 10   # 5 resolutions along the widths, 5 widths along resolutions
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("max params, resolution" in t and "25 of 25" in t for t in legend)
    assert ax.get_xscale() == "log"


def test_pareto_plot_of_many_points_labels_none(monkeypatch):
    spec = archspec.load("mobilenetv3_small")
    rows = sw.run(spec, sw.random_variants(150, 0, spec), workers=1)
    front = sw.pareto(rows)
    figures = _capture(monkeypatch)
    plots.pareto_plot(rows, front, "x.png")
    ax = figures[0].axes[0]
    assert len(ax.texts) == (sum(front) if sum(front) <= plots.MAX_LABELS else 0)
    assert any("dominated" in t.get_text() for t in ax.get_legend().get_texts())


def test_training_curves_of_one_epoch_are_drawn():
    pytest.importorskip("torch")
    from archspec.train.plots import curves_figure

    record = {"epoch": 1, "train_loss": 2.0, "val_loss": 1.9, "train_acc": 0.3,
              "val_acc": 0.35}
    fig = curves_figure([record])
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 4
    assert all(line.get_marker() not in (None, "", "None", " ") for line in lines)
    assert all(list(line.get_xdata()) == [1] for line in lines)


def test_float32_settings_of_an_onnx_file_are_not_changes():
    import struct

    from archspec.analysis.diff import op_changes

    single = struct.unpack("f", struct.pack("f", 0.2))[0]
    assert single != 0.2
    assert op_changes({"dropout": {"dropout": 0.2}}, {"dropout": {"dropout": single}}) == []
    changes = op_changes({"dropout": {"dropout": 0.2}}, {"dropout": {"dropout": 0.1}})
    assert [str(c) for c in changes] == ["dropout 0.2 -> 0.1"]
