"""Human-readable renderings of a CostReport. A report of a spec with heads ends with its
parts: the backbone and each head (docs/heads.md)."""
from __future__ import annotations

import io
from dataclasses import dataclass

from ..analysis.cost import CostReport, Entry


def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_m(n: int) -> str:
    return f"{n / 1e6:,.2f} M"


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n} B"


def shape_str(shape) -> str:
    return "x".join(map(str, shape))


COLUMNS = ("name", "type", "output", "params", "MAdds", "elementwise", "mem access")


@dataclass(frozen=True)
class ExtraColumn:
    """A column added to the cost table by an analysis (e.g. predicted latency)."""

    header: str
    cells: dict          # row name -> text
    footer: str = ""


def _cells(e: Entry) -> list[str]:
    return [e.name, e.type, shape_str(e.shape), fmt_count(e.params), fmt_m(e.madds),
            fmt_m(e.elementwise), fmt_bytes(e.mem_bytes)]


def title(report: CostReport) -> str:
    inp = report.input
    height, width = inp.get("size") or (inp["resolution"], inp["resolution"])
    return (f"{report.name} @ {inp['channels']}x{height}x{width}, "
            f"width {report.width:g}, {_classes(report.classes)}, batch {report.batch}, "
            f"{report.dtype}")


def _classes(classes) -> str:
    return "classes unknown" if classes is None else f"{classes} classes"


def peak_line(report: CostReport) -> str:
    """The caption under a cost table: peak memory, the MAdds convention and any notes."""
    return "\n".join([f"peak activation memory {fmt_bytes(report.peak_bytes)} (op-by-op "
                      f"model, at {report.peak_at}); MAdds = conv + linear "
                      "multiply-accumulates", *(f"note: {n}" for n in report.notes)])


def rich_table(report: CostReport, per: str = "stage", extra=()):
    from rich.table import Table

    table = Table(title=title(report), title_justify="left", show_footer=True,
                  caption=peak_line(report), caption_justify="left")
    totals = _cells(report.totals) + [x.footer for x in extra]
    totals[0], totals[1] = "total", ""
    for i, col in enumerate((*COLUMNS, *(x.header for x in extra))):
        table.add_column(col, footer=totals[i], justify="left" if i < 3 else "right",
                         no_wrap=i == 0)
    for e in report.rows(per):
        table.add_row(*_cells(e), *(x.cells.get(e.name, "") for x in extra))
    if report.parts:
        table.add_section()
    for e in report.parts:
        table.add_row(*_part_cells(e), *("" for _ in extra), style="italic")
    return table


def _part_cells(e: Entry) -> list[str]:
    """A part's row: ``backbone`` or a head, its type ``part`` (a head: its block)."""
    cells = _cells(e)
    cells[1] = "part" if e.name == "backbone" else f"part: {e.type}"
    return cells


def markdown(report: CostReport, per: str = "stage", extra=()) -> str:
    headers = (*COLUMNS, *(x.header for x in extra))
    lines = [f"**{title(report)}**", "", "| " + " | ".join(headers) + " |",
             "|" + "---|" * len(headers)]
    for e in report.rows(per):
        lines.append("| " + " | ".join([*_cells(e), *(x.cells.get(e.name, "") for x in extra)])
                     + " |")
    totals = _cells(report.totals) + [x.footer for x in extra]
    totals[0], totals[1] = "**total**", ""
    lines.append("| " + " | ".join(totals) + " |")
    for e in report.parts:
        cells = _part_cells(e)
        cells[0] = f"*{cells[0]}*"
        lines.append("| " + " | ".join([*cells, *("" for _ in extra)]) + " |")
    return "\n".join(lines) + "\n\n" + peak_line(report) + "\n"


def csv_text(report: CostReport, per: str = "stage", extra=()) -> str:
    import csv  # only --format csv needs it

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "type", "output_shape", "params", "buffers", "madds", "elementwise",
                "mem_bytes", *(x.header for x in extra)])
    for e in report.rows(per):
        w.writerow([e.name, e.type, shape_str(e.shape), e.params, e.buffers, e.madds,
                    e.elementwise, e.mem_bytes, *(x.cells.get(e.name, "") for x in extra)])
    e = report.totals
    w.writerow([e.name, e.type, shape_str(e.shape), e.params, e.buffers, e.madds,
                e.elementwise, e.mem_bytes, *(x.footer for x in extra)])
    for e in report.parts:
        w.writerow([e.name, _part_cells(e)[1], shape_str(e.shape), e.params, e.buffers,
                    e.madds, e.elementwise, e.mem_bytes, *("" for _ in extra)])
    return buf.getvalue()
