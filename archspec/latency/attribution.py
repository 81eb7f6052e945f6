"""Profiler attribution: which IR node, and so which kernel, each node of an onnxruntime
profiler trace computes, and the profiler's own cost per node (which inflates profiled
kernel times)."""
from __future__ import annotations

import statistics


def ir_name(node_name: str, known) -> str | None:
    """The IR node an onnxruntime node computes, from its name (``<ir>_nchwc``,
    ``<ir>/QuickGeluFusion/``, ``<ir>.head`` ...); None for reorders and unknowns."""
    name = node_name.removesuffix("_kernel_time").split("/")[0].removesuffix("_nchwc")
    if name not in known and "_" in name:   # ``<bn>_bn_nchwc``: a BN run as a conv
        name = name.split("_")[0]
    while name:
        if name in known:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def attribute(events: list[dict], owner: dict[str, int], warmup: int,
              value=lambda e: e["dur"], readers: dict[str, str] | None = None) -> list[dict]:
    """Per timed run: kernel index -> microseconds. ``events``: the profiler's trace;
    ``owner``: IR node -> kernel index. A layout reorder is charged to the kernel of the
    node that reads its output (``readers``: reorder node -> that node, from the
    optimised graph: :func:`.timing.reorder_readers`), the kernel whose ``reorder_elems``
    count it; a reorder without a known reader to the next kernel that runs (or the last
    one at the end of a run: the graph's output). onnxruntime may run a reorder well
    before its reader (GhostNet's ghost module: a 1x1 conv, its output's ReorderOutput,
    the depthwise conv, its ReorderOutput, the Concat that reads both). Another node
    without an IR name (a helper onnxruntime made, e.g. hswish split into HardSigmoid and
    Mul) goes to the kernel before it. ``value``: what a node contributes (its duration;
    1 to count nodes)."""
    readers = readers or {}
    runs = sorted((e for e in events if e.get("cat") == "Session"
                   and e.get("name") == "model_run"), key=lambda e: e["ts"])
    nodes = sorted((e for e in events if e.get("cat") == "Node"
                    and e.get("name", "").endswith("_kernel_time")), key=lambda e: e["ts"])
    out = []
    j = 0
    for r in runs:
        end = r["ts"] + r["dur"]
        times: dict[int, float] = {}
        pending = 0.0
        last = None
        while j < len(nodes) and nodes[j]["ts"] <= end:
            e = nodes[j]
            j += 1
            if e["ts"] < r["ts"]:
                continue
            ir = ir_name(e["name"], owner)
            reorder = e["name"].startswith("Reorder")
            if reorder:
                target = ir_name(readers.get(e["name"].removesuffix("_kernel_time"), ""),
                                 owner)
                if target is not None:
                    times[owner[target]] = times.get(owner[target], 0.0) + value(e)
                    continue
            if ir is None and last is not None and not reorder:
                times[last] += value(e)   # an unnamed helper (hswish as hsigmoid * x)
                continue
            if ir is None:
                pending += value(e)
                continue
            k = owner[ir]
            times[k] = times.get(k, 0.0) + value(e) + pending
            pending, last = 0.0, k
        if pending and last is not None:
            times[last] += pending
        out.append(times)
    return out[warmup:]


def profiler_cost(medians, counts, walls) -> float:
    """The profiler's own cost per node (us), which inflates profiled kernels: the median
    over networks of (profiled kernels' sum - unprofiled wall time) / profiled nodes."""
    per = []
    for med, cnt, w in zip(medians, counts, walls):
        nodes = sum(cnt.values())
        if nodes and w:
            per.append((sum(med) - w) / nodes)
    return max(0.0, statistics.median(per)) if per else 0.0


