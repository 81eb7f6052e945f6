"""Sweeps: evaluate many variants of one spec (width, resolution, expansion, alpha,
channel-schedule end) from their compiled graphs, and mark the Pareto front.

Without accuracy numbers the default front is the capacity-for-compute proxy the papers
plot against: fewest MAdds for the most parameters (``--minimize``/``--maximize`` choose
other figures). Evaluation runs in worker processes (one per core by default).
"""
from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass

from ..spec.model import Spec
from .cost import totals

FIGURES = ("params", "madds", "elementwise", "peak_bytes")
WIDTH_RANGE = (0.35, 1.4)
RESOLUTIONS = tuple(range(96, 225, 16))


@dataclass(frozen=True)
class Variant:
    width: float | None = None
    resolution: int | None = None
    t: float | None = None
    alpha: float | None = None
    schedule_end: float | None = None

    def label(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in dataclasses.asdict(self).items()
                         if v is not None)


def vary(spec: Spec, v: Variant) -> Spec:
    """The spec with the variant's free parameters applied."""
    spec = spec.with_(width=v.width, resolution=v.resolution)
    changes = {}
    if v.t is not None:
        changes["t"] = v.t
    if v.alpha is not None:
        changes["alpha"] = v.alpha
    if changes:
        rows = []
        for row in spec.stages:
            fields = dict(row.fields)
            for key, value in changes.items():
                # expansion applies to expanding rows only (t = 1 rows stay 1)
                if key in fields and fields[key] is not None and \
                        not (key == "t" and fields[key] == 1):
                    fields[key] = value
            rows.append(dataclasses.replace(row, fields=fields))
        spec = dataclasses.replace(spec, stages=tuple(rows))
    if v.schedule_end is not None and spec.schedule:
        spec = dataclasses.replace(spec, schedule={**spec.schedule, "end": v.schedule_end})
    return spec


def evaluate(spec: Spec, v: Variant, memory: bool = False) -> dict:
    """Totals of one variant: a flat dict (variant fields + figures)."""
    graph = vary(spec, v).compile()
    t = totals(graph)
    out = {k: val for k, val in dataclasses.asdict(v).items() if val is not None}
    out.update(params=t.params, madds=t.madds, elementwise=t.elementwise)
    if memory:
        from .memory import op_by_op

        out["peak_bytes"] = op_by_op(graph).peak_bytes
    return out


def grid(widths=None, resolutions=None, ts=None, alphas=None, ends=None) -> list[Variant]:
    axes = [widths or [None], resolutions or [None], ts or [None], alphas or [None],
            ends or [None]]
    return [Variant(*combo) for combo in itertools.product(*axes)]


def random_variants(n: int, seed: int, spec: Spec, *, widths=None, resolutions=None, ts=None,
                    alphas=None) -> list[Variant]:
    """Random samples: width uniform in its range, resolution from a list, expansion and
    alpha from lists where the spec has them; given lists restrict the choice."""
    rng = random.Random(seed)
    has = {k: any(k in r.fields for r in spec.stages) for k in ("t", "alpha")}
    lo, hi = (min(widths), max(widths)) if widths else WIDTH_RANGE
    out = []
    for _ in range(n):
        out.append(Variant(
            width=round(rng.uniform(lo, hi), 3),
            resolution=rng.choice(resolutions or RESOLUTIONS),
            t=rng.choice(ts or (3, 4, 5, 6)) if has["t"] else None,
            alpha=rng.choice(alphas or (1, 1 / 2, 1 / 3, 1 / 6)) if has["alpha"] else None,
        ))
    return out


def _work(args):
    spec, chunk, memory = args
    return [evaluate(spec, v, memory) for v in chunk]


def run(spec: Spec, variants: list[Variant], *, memory=False, workers: int = 0,
        progress=None) -> list[dict]:
    """Evaluate all variants (in ``workers`` processes; 0 = one per core, 1 = in-process).
    ``progress(n_done)`` is called as chunks finish."""
    import os

    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(variants) < 64:
        out = []
        for v in variants:
            out.append(evaluate(spec, v, memory))
            if progress:
                progress(1)
        return out
    from concurrent.futures import ProcessPoolExecutor

    size = max(16, len(variants) // (workers * 8))
    chunks = [variants[i:i + size] for i in range(0, len(variants), size)]
    out = []
    with ProcessPoolExecutor(workers) as pool:
        for result in pool.map(_work, [(spec, c, memory) for c in chunks]):
            out.extend(result)
            if progress:
                progress(len(result))
    return out


def pareto(rows: list[dict], minimize=("madds",), maximize=("params",)) -> list[bool]:
    """For each row: is it on the Pareto front (no other row at least as good in every
    objective and better in one)?"""
    keys = [(k, 1) for k in minimize] + [(k, -1) for k in maximize]
    points = [tuple(sign * r[k] for k, sign in keys) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: points[i])
    front = [False] * len(rows)
    kept: list[tuple] = []
    for i in order:
        p = points[i]
        if not any(all(q[j] <= p[j] for j in range(len(p))) and q != p for q in kept):
            front[i] = True
            kept.append(p)
    return front
