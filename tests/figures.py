"""Every figure archspec computes for the shipped specs, as one table: cost per layer,
block and stage, peak memory (op-by-op, fused blocks at split 1 and 4, best schedule, the
Table 3 view), the training-memory estimate and the latency prediction of the shipped
profile, each at two settings per spec (as shipped, and width 0.75 at 160 px, or at the
smallest size above 160 where a head needs more: Fig. 10's 49x49 gate window, 784 px).

`python tests/figures.py` writes tests/data/figures.json (`--add-new`: only the rows it
lacks, the others kept as they are); test_figures.py recomputes the table and compares.
The file was written before the vocabulary refactor (issue 15): a refactor that keeps
behaviour keeps this table.
"""
from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = Path(__file__).resolve().parent / "data" / "figures.json"
SMALL = {"width": 0.75, "resolution": 160}
STEP = 16  # the sizes smallest_resolution tries: multiples of 16 (the 1/16 maps of heads)
FIELDS = ("params", "buffers", "madds", "elementwise", "mem_bytes", "act_bytes")


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _rows(report, per):
    return [[e.name, e.type, *(getattr(e, f) for f in FIELDS)] for e in report.rows(per)]


@functools.cache
def smallest_resolution(spec, at_least: int, width: float | None = None) -> int:
    """The smallest resolution, ``at_least`` or a multiple of 16 above it, at which
    ``spec`` (a shipped name or a path) compiles: ``at_least`` for a backbone, more for a
    head whose layers need a larger map."""
    import archspec
    from archspec.errors import SpecError

    r, limit = at_least, 8192
    while True:
        try:
            archspec.load(spec, resolution=r, width=width).compile()
            return r
        except SpecError:
            if r >= limit:
                raise
            r = (r // STEP + 1) * STEP


def settings(name: str) -> tuple[dict, dict]:
    """As shipped, and width 0.75 at 160 px or the smallest size above where it compiles."""
    return {}, {**SMALL, "resolution": smallest_resolution(name, SMALL["resolution"],
                                                           SMALL["width"])}


def figures(name: str, settings: dict, profile) -> dict:
    """The figures of one shipped spec at ``settings``."""
    import archspec
    from archspec.analysis import memory
    from archspec.analysis.cost import cost
    from archspec.backends.torch_rules import training

    graph = archspec.load(name, **settings).compile()
    report = cost(graph)
    t = report.totals
    out = {"totals": [getattr(t, f) for f in FIELDS],
           "stages": _rows(report, "stage"), "blocks": _digest(_rows(report, "block")),
           "layers": _digest(_rows(report, "layer")),
           "peak_op_by_op": [report.peak_bytes, report.peak_at],
           "peak_fused": [memory.fused(graph, s).peak_bytes for s in (1, 4)],
           "peak_best_schedule": memory.best_schedule(graph).peak_bytes,
           "by_resolution": memory.by_resolution(graph),
           "training_bytes": training(graph).peak_bytes}
    pred = profile.model.predict(profile.kernels(graph))
    out["latency_ms"] = round(pred.total_ms, 9)
    out["latency_kernels"] = _digest([[k.name, k.type, round(k.us, 6)] for k in pred.kernels])
    return out


def table(skip=()) -> dict:
    """Every shipped spec's figures at its settings, but the keys in ``skip``."""
    from archspec.latency.profile import load
    from archspec.spec.loader import SHIPPED

    profile = load(ROOT / "profiles" / "cpu-ort-1t.json")
    names = sorted(p.stem for p in SHIPPED.glob("*.yaml"))
    keys = {f"{n}@{json.dumps(s, sort_keys=True)}": (n, s) for n in names for s in settings(n)}
    return {k: figures(n, s, profile) for k, (n, s) in keys.items() if k not in skip}


if __name__ == "__main__":
    # --add-new: only the rows of specs (or settings) the table lacks; the others are kept
    TABLE.parent.mkdir(exist_ok=True)
    kept = json.loads(TABLE.read_text()) if "--add-new" in sys.argv else {}
    new = table(skip=kept)
    TABLE.write_text(json.dumps({**kept, **new}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE}: {len(new)} rows computed, {len(kept)} kept", file=sys.stderr)
