"""Renderings of a DiffReport: a rich table with gains in green and losses in red, and
markdown for pull requests."""
from __future__ import annotations

from ..analysis.diff import DiffReport
from .tables import fmt_bytes, fmt_count, fmt_m

COLUMNS = ("stage", "blocks", "params a", "params b", "Δ params", "MAdds a", "MAdds b",
           "Δ MAdds", "peak mem a", "peak mem b")
LATENCY_COLUMNS = ("ms a", "ms b", "Δ ms")


def _delta(n, fmt, colour: bool) -> str:
    text = ("+" if n > 0 else "") + fmt(n) if n else "0"
    if colour and n:
        return f"[{'red' if n > 0 else 'green'}]{text}[/]"
    return text


def _ms(v: float) -> str:
    return f"{v:.3f}"


def columns(d: DiffReport) -> tuple[str, ...]:
    return COLUMNS + (LATENCY_COLUMNS if d.latency_ms else ()) + ("differences",)


def _cells(d, level, label, fa, fb, delta, notes, colour) -> list[str]:
    cells = [level, label, fmt_count(fa.get("params", 0)), fmt_count(fb.get("params", 0)),
             _delta(delta.get("params", 0), fmt_count, colour),
             fmt_m(fa.get("madds", 0)), fmt_m(fb.get("madds", 0)),
             _delta(delta.get("madds", 0), fmt_m, colour),
             fmt_bytes(fa.get("peak_bytes", 0)), fmt_bytes(fb.get("peak_bytes", 0))]
    if d.latency_ms:
        cells += [_ms(fa.get("latency_ms", 0.0)), _ms(fb.get("latency_ms", 0.0)),
                  _delta(round(delta.get("latency_ms", 0.0), 3), _ms, colour)]
    return cells + ["; ".join(notes)]


def _rows(d: DiffReport, per: str, colour: bool):
    if per == "stage":
        for r in d.stage_rows():
            yield _cells(d, r["level"], f"{r['a_blocks']} -> {r['b_blocks']}", r["a"], r["b"],
                         r["delta"], r["notes"], colour)
        return
    for r in d.rows:
        yield _cells(d, r.level, f"{r.a.name if r.a else '-'} | {r.b.name if r.b else '-'}",
                     r.a.figures if r.a else {}, r.b.figures if r.b else {}, r.delta(),
                     r.notes, colour)


def _totals(d: DiffReport, colour: bool) -> list[str]:
    ta, tb = d.a.totals, d.b.totals
    fa = {"params": ta.params, "madds": ta.madds, "peak_bytes": d.a.peak_bytes}
    fb = {"params": tb.params, "madds": tb.madds, "peak_bytes": d.b.peak_bytes}
    if d.latency_ms:
        fa["latency_ms"], fb["latency_ms"] = d.latency_ms
    delta = {k: fb[k] - fa[k] for k in fa}
    return _cells(d, "total", "", fa, fb, delta, [], colour)


def title(d: DiffReport) -> str:
    return f"a = {d.a.name}  vs  b = {d.b.name}  (@ {d.a.input['resolution']} / " \
           f"{d.b.input['resolution']} px)"


def rich_diff(d: DiffReport, per: str = "stage"):
    from rich.table import Table

    totals = _totals(d, True)
    cols = columns(d)
    table = Table(title=title(d), title_justify="left", show_footer=True)
    for i, col in enumerate(cols):
        table.add_column(col, footer=totals[i],
                         justify="right" if 2 <= i < len(cols) - 1 else "left")
    for row in _rows(d, per, True):
        table.add_row(*row)
    return table


def markdown_diff(d: DiffReport, per: str = "stage") -> str:
    cols = columns(d)
    lines = [f"**{title(d)}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in [*_rows(d, per, False), _totals(d, False)]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"
