"""Renderings of a DiffReport: a rich table with gains in green and losses in red, and
markdown for pull requests."""
from __future__ import annotations

from ..analysis.diff import DiffReport
from .tables import fmt_bytes, fmt_count, fmt_m

COLUMNS = ("stage", "blocks", "params a", "params b", "Δ params", "MAdds a", "MAdds b",
           "Δ MAdds", "peak mem a", "peak mem b", "differences")


def _delta(n: int, fmt, colour: bool) -> str:
    text = ("+" if n > 0 else "") + fmt(n) if n else "0"
    if colour and n:
        return f"[{'red' if n > 0 else 'green'}]{text}[/]"
    return text


def _rows(d: DiffReport, per: str, colour: bool):
    if per == "stage":
        for r in d.stage_rows():
            yield [r["level"], f"{r['a_blocks']} -> {r['b_blocks']}",
                   fmt_count(r["a"]["params"]), fmt_count(r["b"]["params"]),
                   _delta(r["delta"]["params"], fmt_count, colour),
                   fmt_m(r["a"]["madds"]), fmt_m(r["b"]["madds"]),
                   _delta(r["delta"]["madds"], fmt_m, colour), fmt_bytes(r["a"]["peak_bytes"]),
                   fmt_bytes(r["b"]["peak_bytes"]), "; ".join(r["notes"])]
        return
    for r in d.rows:
        fa = r.a.figures if r.a else {}
        fb = r.b.figures if r.b else {}
        delta = r.delta()
        yield [r.level, f"{r.a.name if r.a else '-'} | {r.b.name if r.b else '-'}",
               fmt_count(fa.get("params", 0)), fmt_count(fb.get("params", 0)),
               _delta(delta["params"], fmt_count, colour),
               fmt_m(fa.get("madds", 0)), fmt_m(fb.get("madds", 0)),
               _delta(delta["madds"], fmt_m, colour), fmt_bytes(fa.get("peak_bytes", 0)),
               fmt_bytes(fb.get("peak_bytes", 0)), "; ".join(r.notes)]


def _totals(d: DiffReport, colour: bool) -> list[str]:
    ta, tb = d.a.totals, d.b.totals
    return ["total", "", fmt_count(ta.params), fmt_count(tb.params),
            _delta(tb.params - ta.params, fmt_count, colour), fmt_m(ta.madds),
            fmt_m(tb.madds), _delta(tb.madds - ta.madds, fmt_m, colour),
            fmt_bytes(d.a.peak_bytes), fmt_bytes(d.b.peak_bytes), ""]


def title(d: DiffReport) -> str:
    return f"a = {d.a.name}  vs  b = {d.b.name}  (@ {d.a.input['resolution']} / " \
           f"{d.b.input['resolution']} px)"


def rich_diff(d: DiffReport, per: str = "stage"):
    from rich.table import Table

    totals = _totals(d, True)
    table = Table(title=title(d), title_justify="left", show_footer=True)
    for i, col in enumerate(COLUMNS):
        table.add_column(col, footer=totals[i], justify="right" if 2 <= i <= 9 else "left")
    for row in _rows(d, per, True):
        table.add_row(*row)
    return table


def markdown_diff(d: DiffReport, per: str = "stage") -> str:
    lines = [f"**{title(d)}**", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in [*_rows(d, per, False), _totals(d, False)]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"
