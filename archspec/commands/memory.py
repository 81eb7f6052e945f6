"""`archspec memory`: peak activation memory under an execution model (docs/memory.md),
the Table 3 view, an arena plan and a timeline plot. Pure analysis: no torch."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..cli_common import (OUTPUT, Classes, Commands, Dtype, Output, Resolution, Spec,
                          TableOrJson, Width, console, emit, emit_json, load, model_dtype)

MODELS = ("op_by_op", "fused", "training")


COMMANDS = Commands()


@COMMANDS.command(panel="Inspect")
def memory(spec: Spec,
           model: Annotated[Literal[MODELS], typer.Option(
               "--model", "-m", help="Execution model the peak is for.")] = "op_by_op",
           split: Annotated[int, typer.Option(
               "--split", "-t", min=1, max=100_000,
               help="t-way split of the expansion in fused blocks (MobileNetV2 section "
               "5.1).")] = 1,
           batch: Annotated[int, typer.Option(
             min=1, max=1_000_000, help="Batch size the byte figures assume.")] = 1,
           dtype: Dtype = None,
           per: Annotated[Literal["block", "layer"], typer.Option(
               rich_help_panel=OUTPUT,
               help="Timeline rows: the largest step per block, or every op.")] = "block",
           by_resolution: Annotated[bool, typer.Option(
               "--by-resolution", rich_help_panel=OUTPUT,
               help="Table 3 view: the largest materialised tensor per spatial size.")]
           = False,
           plan_path: Annotated[Optional[Path], typer.Option(
               "--plan", dir_okay=False, rich_help_panel=OUTPUT,
               help="Write tensor offsets in one arena to this JSON file.")] = None,
           plot_path: Annotated[Optional[Path], typer.Option(
               "--plot", dir_okay=False, rich_help_panel=OUTPUT,
               help="Plot live bytes along the schedule (.png, .svg, .pdf).")] = None,
           fmt: TableOrJson = "table", output: Output = None,
           width: Width = None, resolution: Resolution = None, classes: Classes = None
           ) -> None:
    """Peak activation memory: where it occurs, the live tensors, a per-op timeline."""
    from ..analysis import memory as mem

    graph = load(spec, width, resolution, classes).compile()
    dtype = model_dtype(dtype, graph)
    report = _report(graph, model, split, batch, dtype)
    doc = _document(graph, report, model, split, batch, dtype, by_resolution)
    if plan_path is not None:
        from ..analysis.arena import plan

        schedule = doc.get("schedule", {}).get("order") if model == "op_by_op" else None
        arena = plan(graph, schedule, batch=batch, dtype=dtype)
        arena.write(plan_path, graph)
        doc["arena"] = {k: v for k, v in arena.to_dict().items() if k != "tensors"}
        doc["arena"]["file"] = str(plan_path)
        print(f"wrote {plan_path} ({len(arena.buffers)} tensors, "
              f"{arena.arena_bytes:,} B arena)", file=sys.stderr)
    if plot_path is not None:
        _plot(graph, plot_path, split, batch, dtype, mem)
        print(f"wrote {plot_path}", file=sys.stderr)
    doc.get("schedule", {}).pop("order", None)
    if fmt == "json":
        emit_json("memory", doc, output)
    else:
        _print(graph, doc, per, output)


def _report(graph, model, split, batch, dtype):
    from ..analysis import memory as mem
    from ..backends.torch_rules import training

    if model == "fused":
        return mem.fused(graph, split, batch=batch, dtype=dtype)
    if model == "training":
        return training(graph, batch=batch, dtype=dtype)
    return mem.op_by_op(graph, batch=batch, dtype=dtype)


def _document(graph, report, model, split, batch, dtype, by_resolution) -> dict:
    from ..analysis import memory as mem
    from ..backends.torch_rules import training

    nbytes = mem.tensor_bytes(graph, batch, dtype)
    doc = {"schema": "archspec.memory/1", "name": graph.name,
           "resolution": graph.meta.get("resolution"), "model": report.model,
           "batch": batch, "dtype": dtype, "peak_bytes": report.peak_bytes,
           "peak_at": report.peak_at,
           "breakdown": [{"tensor": t, "shape": list(graph[t].shape), "bytes": nbytes[t]}
                         for t in report.live_at_peak],
           **report.details}
    if model != "training":
        work = report.peak_bytes - sum(nbytes[t] for t in report.live_at_peak)
        if work:
            doc["breakdown"].append({"tensor": "(slice working set)", "shape": [],
                                     "bytes": work})
        doc["timeline"] = [{"op": n, "live_bytes": b} for n, b in report.timeline]
    if model == "op_by_op":
        s = mem.best_schedule(graph, batch=batch, dtype=dtype)
        doc["schedule"] = {"method": s.method, "default_peak_bytes": s.default_peak_bytes,
                           "best_peak_bytes": s.peak_bytes, "saving_bytes": s.saving_bytes,
                           "order_differs": s.orders_differ, "order": s.order}
    doc["models"] = {
        "op_by_op": mem.op_by_op(graph, batch=batch, dtype=dtype).peak_bytes,
        "fused": {str(t): mem.fused(graph, t, batch=batch, dtype=dtype).peak_bytes
                  for t in sorted({1, 2, 4, 6, split})},
        "training_saved": training(graph, batch=batch, dtype=dtype).peak_bytes,
    }
    if by_resolution:
        doc["by_resolution"] = {
            "paper_conventions": mem.by_resolution(graph, batch=batch, dtype=dtype),
            "every_block_output": mem.by_resolution(graph, batch=batch, dtype=dtype,
                                                    paper=False)}
    return doc


def _print(graph, doc, per, output) -> None:

    from ..report.tables import fmt_bytes, shape_str

    lines = [f"{doc['name']} @ {doc['resolution']}: peak {fmt_bytes(doc['peak_bytes'])} "
             f"({doc['peak_bytes']:,} B, {doc['model']}"
             + (f", t={doc['split']}" if "split" in doc else "")
             + f", batch {doc['batch']}, {doc['dtype']})"
             + (f" at {doc['peak_at']}" if doc["peak_at"] else "")]
    if "schedule" in doc:
        s = doc["schedule"]
        lines.append(f"best schedule: {fmt_bytes(s['best_peak_bytes'])}, saves "
                     f"{fmt_bytes(s['saving_bytes'])} over the default order ({s['method']})")
    m = doc["models"]
    lines.append("models: op by op " + fmt_bytes(m["op_by_op"]) + "; fused "
                 + ", ".join(f"t={t} {fmt_bytes(b)}" for t, b in m["fused"].items())
                 + "; saved for backward " + fmt_bytes(m["training_saved"]))
    if "arena" in doc:
        a = doc["arena"]
        lines.append(f"arena: {fmt_bytes(a['arena_bytes'])} ({a['method']}, "
                     f"{a['overhead']:+.1%} over the peak); greedy by size "
                     f"{fmt_bytes(a['baseline']['arena_bytes'])}")
    tables = [_table("live at the peak", ("tensor", "shape", "bytes"),
                     [(b["tensor"], shape_str(b["shape"]), f"{b['bytes']:,}")
                      for b in doc["breakdown"]])]
    if "timeline" in doc:
        tables.append(_table(f"timeline (per {per})", ("step", "live"),
                             [(n, fmt_bytes(b)) for n, b in _rows(graph, doc, per)]))
    if "by_resolution" in doc:
        rows = doc["by_resolution"]["paper_conventions"]
        tables.append(_table("largest materialised tensor per resolution (Table 3 view)",
                             ("size", "channels", "bytes", "tensor"),
                             [(f"{r['resolution']}x{r['resolution']}", str(r["channels"]),
                               f"{r['bytes']:,}", r["tensor"]) for r in rows]))
    if output is not None:
        import io

        from rich.console import Console

        con = Console(record=True, width=160, file=io.StringIO())
        for t in tables:
            con.print(t)
        emit("\n".join(lines) + "\n" + con.export_text(), output)
        return
    print("\n".join(lines))
    con = console()
    for t in tables:
        con.print(t)


def _table(title, columns, rows):
    from rich.table import Table

    table = Table(*columns, title=title, title_justify="left")
    for r in rows:
        table.add_row(*r)
    return table


def _rows(graph, doc, per):
    timeline = [(t["op"], t["live_bytes"]) for t in doc["timeline"]]
    if per == "layer":
        return timeline
    best: dict[str, tuple] = {}
    for name, b in timeline:
        key = graph[name].block or name if name in graph else name.split(" ")[0]
        if key not in best or b > best[key][1]:
            best[key] = (name, b)
    return [(k, b) for k, (_, b) in best.items()]


def _plot(graph, path, split, batch, dtype, mem) -> None:
    from ..report.plots import memory_plot

    position = {n.name: i for i, n in enumerate(graph)}
    first_in_block: dict[str, int] = {}
    for i, n in enumerate(graph):
        first_in_block.setdefault(n.block, i)

    def xy(report):
        xs = [position.get(n, first_in_block.get(n.split(" ")[0], 0)) for n, _ in
              report.timeline]
        return xs, [b for _, b in report.timeline]

    reports = {"op by op": mem.op_by_op(graph, batch=batch, dtype=dtype),
               "fused, t=1": mem.fused(graph, 1, batch=batch, dtype=dtype)}
    t = split if split > 1 else 4
    reports[f"fused, t={t}"] = mem.fused(graph, t, batch=batch, dtype=dtype)
    memory_plot({k: xy(r) for k, r in reports.items()}, path,
                peaks={k: r.peak_bytes for k, r in reports.items()},
                title=f"{graph.name} @ {graph.meta.get('resolution')}: live activations "
                      f"(batch {batch}, {dtype})")
