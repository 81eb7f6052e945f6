"""Sweeps: evaluate many variants of one spec (width, resolution, expansion, alpha,
channel-schedule end) from their compiled graphs, and mark the Pareto front.

Without accuracy numbers the default front keeps what the papers trade accuracy for: the
fewest MAdds for the most capacity, capacity being both parameters (width) and input
resolution (MobileNetV1 section 3.4, MobileNetV2 figure 5), so a width x resolution grid
is not reduced to its lowest resolution. ``--minimize``/``--maximize`` choose other
objectives. Evaluation runs in worker processes (one per core by default).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import random

from ..errors import ArchspecError
from ..spec.model import Spec
from .cost import totals
from .variants import Variant, row_changes, vary

__all__ = ["Evaluator", "Variant", "evaluate", "grid", "objectives", "pareto",
           "random_variants", "row_changes", "run", "shortfall", "vary"]

FIGURES = ("params", "madds", "elementwise", "peak_bytes")
MINIMIZE = ("madds",)
MAXIMIZE = ("params", "resolution")
# objectives besides the figures: a variant's own settings, more being more capacity
SETTINGS = ("width", "resolution")
WIDTH_RANGE = (0.35, 1.4)
WIDTH_STEP = 1000   # random widths are drawn to 1/1000
RESOLUTIONS = tuple(range(96, 225, 16))
EXPANSIONS = (3, 4, 5, 6)
ALPHAS = (1, 1 / 2, 1 / 3, 1 / 6)


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


class _Space:
    """The random sampler's space: width uniform in a range (to 1/1000), resolution,
    expansion and alpha from lists. Two widths that round every layer to the same channel
    counts build the same network, so a network is identified by its channel counts (at
    the spec's own t and alpha: expansion and alpha act on those counts), resolution, t
    and alpha."""

    def __init__(self, spec: Spec, widths, resolutions, ts, alphas):
        has = {k: any(k in r.fields for r in spec.stages) for k in ("t", "alpha")}
        lo, hi = (min(widths), max(widths)) if widths else WIDTH_RANGE
        self.spec, self.lo, self.hi = spec, lo, hi
        self.resolutions = list(resolutions or RESOLUTIONS)
        self.ts = list(ts or EXPANSIONS) if has["t"] else [None]
        self.alphas = list(alphas or ALPHAS) if has["alpha"] else [None]
        self._channels: dict[float, tuple] = {}

    def draw(self, rng: random.Random) -> Variant:
        return Variant(
            width=round(rng.uniform(self.lo, self.hi), 3),
            resolution=rng.choice(self.resolutions),
            t=rng.choice(self.ts) if self.ts != [None] else None,
            alpha=rng.choice(self.alphas) if self.alphas != [None] else None)

    def key(self, v: Variant) -> tuple:
        return (self.channels(v.width), v.resolution, v.t, v.alpha)

    def channels(self, width: float) -> tuple:
        if width not in self._channels:
            try:
                graph = self.spec.with_(width=width).compile()
                self._channels[width] = tuple(n.shape[0] for n in graph)
            except ArchspecError:   # a width the spec cannot take: sampled, and fails alone
                self._channels[width] = ("width", width)
        return self._channels[width]

    def widths(self) -> list[float]:
        """One width per distinct network (the narrowest that builds it)."""
        first: dict[tuple, float] = {}
        for k in range(round(self.lo * WIDTH_STEP), round(self.hi * WIDTH_STEP) + 1):
            first.setdefault(self.channels(k / WIDTH_STEP), k / WIDTH_STEP)
        return list(first.values())

    def every(self) -> list[Variant]:
        """One variant per distinct network of the space."""
        return [Variant(width=w, resolution=r, t=t, alpha=a) for w, r, t, a in
                itertools.product(self.widths(), self.resolutions, self.ts, self.alphas)]


def random_variants(n: int, seed: int, spec: Spec, *, widths=None, resolutions=None, ts=None,
                    alphas=None) -> list[Variant]:
    """``n`` random variants, each a different network: width uniform in its range,
    resolution from a list, expansion and alpha from lists where the spec has them; given
    lists restrict the choice. A draw that repeats a network already drawn is redrawn;
    once redraws outnumber ``n`` the rest is sampled from the networks not drawn yet. A
    space with fewer than ``n`` networks gives all of them (the list is shorter than
    ``n``: see :func:`shortfall`)."""
    rng = random.Random(seed)
    space = _Space(spec, widths, resolutions, ts, alphas)
    out, seen, redraws = [], set(), 0
    while len(out) < n and redraws <= n:
        v = space.draw(rng)
        key = space.key(v)
        if key in seen:
            redraws += 1
            continue
        seen.add(key)
        out.append(v)
    if len(out) < n:
        rest = [v for v in space.every() if space.key(v) not in seen]
        out += rng.sample(rest, min(n - len(out), len(rest)))
    return out


def shortfall(asked: int, variants: list[Variant]) -> str:
    """What to tell a user whose ``--random`` asked for more networks than the space
    holds (empty when it did not)."""
    if len(variants) >= asked:
        return ""
    return (f"--random {asked:,}: the space holds only {len(variants):,} distinct networks "
            f"(widths that round to the same channels build the same network); "
            f"evaluating all {len(variants):,}")


def objectives(minimize: str, maximize: str, *, memory: bool = False,
               latency: bool = False) -> tuple[list[str], list[str]]:
    """The comma-separated ``--minimize``/``--maximize`` lists, checked: figures
    (peak_bytes with memory, latency_ms with a latency profile) or the settings width and
    resolution."""
    mins = [m.strip() for m in minimize.split(",") if m.strip()]
    maxs = [m.strip() for m in maximize.split(",") if m.strip()]
    if not mins:
        raise ArchspecError("--minimize: name at least one figure (e.g. madds)")
    known = [*FIGURES[:3], *(["peak_bytes"] if memory else []),
             *(["latency_ms"] if latency else []), *SETTINGS]
    for name in (*mins, *maxs):
        if name not in known:
            raise ArchspecError(
                f"--minimize/--maximize: unknown figure {name!r} (one of {', '.join(known)}"
                f"{'' if memory else '; peak_bytes with --memory'}"
                f"{'' if latency else '; latency_ms with --profile'})")
    return mins, maxs


class Evaluator:
    """Evaluates variants of one spec: from memoised blocks (:mod:`.memo`) where it can,
    by a full compile where it cannot or where asked (``memo=False``, or ``memory``, which
    needs the whole graph) or where the variants share too few blocks for the memo to pay
    (``SweepMemo.worthwhile``); the rows are those of :func:`evaluate` either way. ``extra``,
    if given, adds figures to each row: ``extra(memo, spec, v, row)`` with ``memo`` the
    :class:`~.memo.SweepMemo` or None (predicted latency: archspec.latency.memo)."""

    def __init__(self, spec: Spec, *, memory: bool = False, memo: bool = True, extra=None):
        from .memo import SweepMemo

        self.spec, self.memory, self.extra = spec, memory, extra
        self.memo = SweepMemo(spec) if memo else None

    def __call__(self, v: Variant) -> dict:
        row = None if self.memo is None or self.memory else self.memo.evaluate(v)
        if self.memo is not None and not self.memo.worthwhile:
            self.memo = None   # too few blocks shared: compiling in full is faster
        if row is None:
            row = evaluate(self.spec, v, self.memory)
        if self.extra is not None:
            self.extra(self.memo, self.spec, v, row)
        return row


_EVALUATOR: Evaluator | None = None   # a worker process's, set by _start
YOUNG_COLLECTION = 100_000   # allocations between two young-generation collections in a sweep


@contextlib.contextmanager
def fewer_collections():
    """A sweep allocates millions of short-lived objects beside a large memo: while it
    runs, the objects alive at its start are frozen (the cyclic collector skips them;
    not when the caller has frozen some already: unfreezing would undo theirs) and the
    young generation is collected less often; both are restored after."""
    threshold, freeze = gc.get_threshold(), gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], YOUNG_COLLECTION), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def _start(evaluator: Evaluator, queue) -> None:
    global _EVALUATOR, _PROGRESS
    _EVALUATOR, _PROGRESS = evaluator, queue
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], YOUNG_COLLECTION), *gc.get_threshold()[1:])


_PROGRESS = None   # a worker's queue for progress counts, set by _start
PROGRESS_EVERY = 32


def _work(part: list[Variant]) -> list[dict]:
    out = []
    for v in part:
        out.append(_EVALUATOR(v))
        if len(out) % PROGRESS_EVERY == 0:
            _PROGRESS.put(PROGRESS_EVERY)
    _PROGRESS.put(len(out) % PROGRESS_EVERY)
    return out


def run(spec: Spec, variants: list[Variant], *, memory=False, workers: int = 0,
        progress=None, memo: bool = True, extra=None) -> list[dict]:
    """Evaluate all variants (in ``workers`` processes; 0 = one per core, 1 = in-process).
    ``progress(n_done)`` is called as chunks finish. ``memo=False`` compiles every
    variant in full (the same rows, slower); ``extra``: see :class:`Evaluator`."""
    import os

    evaluator = Evaluator(spec, memory=memory, memo=memo, extra=extra)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(variants) < 64:
        out = []
        with fewer_collections():
            for v in variants:
                out.append(evaluator(v))
                if progress:
                    progress(1)
        return out
    return _in_workers(evaluator, variants, workers, progress)


def _in_workers(evaluator: Evaluator, variants: list[Variant], workers: int,
                progress) -> list[dict]:
    """The variants sorted so that those sharing blocks are neighbours, cut into one
    contiguous part per worker (each worker's memo then holds its own blocks, not
    everyone's); progress comes back through a queue."""
    import multiprocessing
    import queue as queues
    from concurrent.futures import ProcessPoolExecutor, wait

    order = sorted(range(len(variants)), key=lambda i: _similar(variants[i]))
    parts = [order[k * len(order) // workers:(k + 1) * len(order) // workers]
             for k in range(workers)]
    counts = multiprocessing.get_context().Queue()
    out: list = [None] * len(variants)
    with ProcessPoolExecutor(workers, initializer=_start,
                             initargs=(evaluator, counts)) as pool:
        futures = {pool.submit(_work, [variants[i] for i in part]): part for part in parts}
        pending = set(futures)
        while pending:
            pending = wait(pending, timeout=0.2)[1]
            _report(counts, progress, queues.Empty)
        for future, part in futures.items():
            for i, row in zip(part, future.result()):
                out[i] = row
    _report(counts, progress, queues.Empty)
    return out


def _report(counts, progress, empty) -> None:
    """Pass the workers' progress counts on to ``progress``."""
    while True:
        try:
            n = counts.get_nowait()
        except empty:
            return
        if progress and n:
            progress(n)


def _similar(v: Variant) -> tuple:
    """A sort key that puts variants sharing blocks next to each other (same width first):
    each worker gets runs of them, and its memo repeats less of another's work."""
    return tuple((x is None, x or 0) for x in (v.width, v.schedule_end, v.t, v.alpha,
                                               v.resolution))


def pareto(rows: list[dict], minimize=MINIMIZE, maximize=MAXIMIZE) -> list[bool]:
    """For each row: is it on the Pareto front (no other row at least as good in every
    objective and better in one)? An objective no row has (a setting the sweep does not
    vary) is the same for every row and is left out. O(n log n) for up to three
    objectives (:func:`front`)."""
    keys = [(k, sign) for names, sign in ((minimize, 1), (maximize, -1)) for k in names
            if any(k in r for r in rows)]
    missing = [k for k, _ in keys if not all(k in r for r in rows)]
    if missing:
        raise ValueError(f"pareto: some rows lack {missing[0]!r}")
    points = [tuple(sign * r[k] for k, sign in keys) for r in rows]
    kept = front(set(points))
    return [p in kept for p in points]


def front(points: set[tuple]) -> set[tuple]:
    """The points no other point dominates (is <= in every coordinate; the points are
    distinct, so it differs in one), all minimised. Taken in lexicographic order, a
    point is dominated only by one before it, which is <= in the first coordinate: in
    two dimensions, iff the least second coordinate so far is <= its own; in three, iff
    the least third coordinate among the points so far whose second is <= its own is
    <= its own (a staircase, searched by bisection); beyond, by the kept points."""
    order = sorted(points)
    if not order or len(order[0]) < 2:
        return set(order[:1])
    if len(order[0]) == 2:
        kept, least = set(), None
        for p in order:
            if least is None or p[1] < least:
                kept.add(p)
                least = p[1]
        return kept
    if len(order[0]) == 3:
        return _front3(order)
    kept_list: list[tuple] = []
    for p in order:
        if not any(all(a <= b for a, b in zip(q, p)) for q in kept_list):
            kept_list.append(p)
    return set(kept_list)


def _front3(order: list[tuple]) -> set[tuple]:
    """:func:`front` of distinct 3-d points in lexicographic order. The staircase holds
    the (second, third) coordinates of the kept points that no other kept point's pair
    dominates: seconds ascending, thirds descending."""
    import bisect

    seconds: list = []
    thirds: list = []
    kept = set()
    for p in order:
        _, y, z = p
        i = bisect.bisect_right(seconds, y) - 1
        if i >= 0 and thirds[i] <= z:
            continue
        kept.add(p)
        at = bisect.bisect_left(seconds, y)
        end = at
        while end < len(seconds) and thirds[end] >= z:
            end += 1
        seconds[at:end] = [y]
        thirds[at:end] = [z]
    return kept
