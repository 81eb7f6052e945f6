"""Per-block memo for sweeps: a variant's totals assembled from the costs of its blocks.

A spec compiles block by block (``compiler.walk_blocks`` gives the blocks,
``compiler.lower_block`` adds each), and what one block adds to the graph -- its ops,
hence its params, MAdds, elementwise work and output shape -- depends only on the block
(canonical name), its scaled fields, its input shape and the spec-level settings the
builder reads (divisor, batch-norm eps and momentum, padding). The variants of a sweep
share most of their blocks, so each distinct block is lowered once, alone, into a graph
of its own (the input and the block) by ``compiler.lower_block`` and costed by the cost
pass (``cost.totals``); a variant's totals are the sums over its blocks, the figures of
a full compile to the unit (tests/test_sweep_memo.py compares them on random
samples of several specs).

Where a block is not a function of that key alone -- its lowering reads the graph beyond
its input (meta, taps, outputs, another node) or fails -- or the spec has ``heads:`` or
``taps:`` or is not a spec (an ONNX file), :meth:`SweepMemo.evaluate` returns None and the
caller compiles in full, so an error is the compiler's own. The memo is bounded (least
recently used entries go) and keyed on the block registry's generation: a block
registered later starts it afresh.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

from .. import compiler
from ..blocks import BLOCKS
from ..ir import ops
from ..ir.graph import Graph
from ..spec.model import Spec
from .cost import totals
from .variants import Variant, row_changes, vary

BLOCK_ENTRIES = 100_000   # distinct (block, input shape) pairs kept per process
PLAN_ENTRIES = 100_000    # distinct plans (and rows at a width) kept per spec
MIN_VARIANTS, MISS_LIMIT = 100, 0.8   # when a sweep gives the memo up (SweepMemo.worthwhile)


class Cache:
    """A bounded memo: at most ``size`` entries; the least recently used go first (two
    generations: an entry used since the last turnover survives the next one). Lookups
    in ``new`` are plain dict lookups, for the hot loops."""

    __slots__ = ("size", "new", "old")

    def __init__(self, size: int):
        self.size, self.new, self.old = size, {}, {}

    def get(self, key):
        found = self.new.get(key)
        if found is None:
            found = self.old.pop(key, None)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key, value):
        if len(self.new) >= self.size // 2:
            self.old, self.new = self.new, {}
        self.new[key] = value
        return value

    def clear(self) -> None:
        self.new, self.old = {}, {}

    def __len__(self) -> int:
        return len(self.new) + len(self.old)


class Entry(NamedTuple):
    """One block of a variant's plan: where it sits and what it is."""

    bid: int          # the interned (generation, block, fields, spec settings)
    row: object       # the spec row (errors are blamed on it by the full compile)
    fields: dict
    prefix: str       # stages.3.block1, head.0
    stage: str
    in_stages: bool   # a stage block (its output may be a C<k> tap), not a head block
    key_name: str     # the block's canonical name
    settings: tuple   # the spec settings the builder reads


class BlockCost(NamedTuple):
    """What one block adds to a graph, lowered alone on an input of ``in_shape``."""

    out_shape: tuple
    params: int
    buffers: int
    madds: int
    elementwise: int
    nodes: int
    consumers: tuple  # the block's ops that read its input: (op, input shapes or None)
    consumers_id: int # the interned ``consumers``
    passthrough: bool # the block returns its input (adds nothing after it)


class ContextUsed(Exception):
    """A block lowering read the graph beyond its own input."""


class _Watched(dict):
    """A graph's meta, taps or outputs while a block is lowered alone: any use means the
    block depends on more than its input, and it is not memoised."""

    def _refuse(self, *args, **kwargs):
        raise ContextUsed("the block reads the graph's meta, taps or outputs")

    __getitem__ = __setitem__ = __contains__ = __iter__ = __len__ = get = _refuse
    keys = values = items = setdefault = update = pop = copy = _refuse


_IDS: dict[tuple, int] = {}
_NEXT_ID = itertools.count(1)
_BLOCKS = Cache(BLOCK_ENTRIES)
_RECENT = Cache(4096)   # the graphs of the blocks lowered last, for latency's fusion
_FAILED = object()


def clear() -> None:
    """Forget every block of this process (benchmarks start cold with it)."""
    _BLOCKS.clear()
    _RECENT.clear()


def _bid(key: tuple) -> int:
    """A small int for a block key (ids are never reused, so the memo's keys stay apart
    when the table is cleared)."""
    found = _IDS.get(key)
    if found is None:
        if len(_IDS) >= 4 * BLOCK_ENTRIES:
            _IDS.clear()
        found = _IDS[key] = next(_NEXT_ID)
    return found


def freeze(value):
    """A hashable copy of a field value, types included (``4`` and ``4.0`` make two keys;
    lists and dicts inside fields are frozen too). A dict's items keep their order: two
    orders make two keys, never a wrong match."""
    if isinstance(value, dict):
        return (dict, tuple((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(freeze(v) for v in value))
    return (type(value), value)


def _key(fields: dict) -> tuple:
    """The memo key of a block's fields: their items and the types of their values (a
    deep copy of any list or dict among them)."""
    items = tuple(fields.items())
    try:
        hash(items)
    except TypeError:
        return freeze(fields)
    return items, tuple(map(type, fields.values()))


def _items(fields: dict) -> tuple:
    """The items of a row's scaled fields, a key among the widths of one row (the row's
    own values, or ints that scaling wrote: a value's type is the same for the same
    items); frozen where a value is not hashable."""
    items = tuple(fields.items())
    try:
        hash(items)
    except TypeError:
        return freeze(fields)
    return items


def lower_alone(entry: Entry, in_shape: tuple, spec) -> tuple[Graph, str]:
    """The graph of one block on an input of ``in_shape`` (node ``input``, then the
    block's nodes, by compiler.lower_block, with meta, taps and outputs closed to it while
    it is lowered, empty after) and the block's output node."""
    graph = Graph(spec.name, max_nodes=compiler.MAX_GRAPH_NODES)
    graph.meta, graph.taps, graph.outputs = _Watched(), _Watched(), _Watched()
    graph.add("input", ops.Input(in_shape))
    out = compiler.lower_block(graph, entry.row, entry.fields, "input", entry.prefix,
                               entry.stage, spec)
    if not isinstance(out, str):
        raise ContextUsed("the block has several outputs")
    graph.meta, graph.taps, graph.outputs = {}, {}, {}
    return graph, out


def take_lowered(entry: Entry, in_shape: tuple, spec) -> tuple[Graph, str]:
    """:func:`lower_alone`, or a copy of the graph :func:`block_cost` lowered for the
    same block and input not long ago (the caller may add to it)."""
    found = _RECENT.get((entry.bid, in_shape))
    if found is None:
        return lower_alone(entry, in_shape, spec)
    return found[0].copy(), found[1]


def consumers(graph: Graph, name: str) -> tuple:
    """The ops that read node ``name``, each with its inputs' shapes (None for ``name``
    itself), in graph order."""
    return tuple((graph[c].op, tuple(None if i == name else graph[i].shape
                                     for i in graph[c].inputs))
                 for c in graph.consumers(name))


def block_cost(entry: Entry, in_shape: tuple, spec) -> BlockCost | None:
    """The memoised cost of ``entry`` on ``in_shape``, or None where it cannot be had
    alone (the caller compiles in full)."""
    key = (entry.bid, in_shape)
    found = _BLOCKS.get(key)
    if found is None:
        try:
            graph, out = lower_alone(entry, in_shape, spec)
        except Exception:   # noqa: BLE001 -- the full compile reports it, or needs context
            found = _BLOCKS.put(key, _FAILED)
        else:
            _RECENT.put(key, (graph, out))
            t, readers = totals(graph), consumers(graph, "input")
            found = _BLOCKS.put(key, BlockCost(graph[out].shape, t.params, t.buffers,
                                               t.madds, t.elementwise, len(graph) - 1,
                                               readers, _bid(("consumers", readers)),
                                               out == "input"))
    return None if found is _FAILED else found


class SweepMemo:
    """Variants of one spec evaluated from memoised blocks (see the module docstring).

    ``evaluate(v)`` gives the row :func:`archspec.analysis.sweep.evaluate` gives (without
    peak memory), or None where the variant needs a full compile."""

    def __init__(self, spec):
        self.spec = spec
        self.usable = isinstance(spec, Spec) and not (spec.heads or spec.taps)
        self.max_nodes = compiler._env_max_nodes()
        self.generation = BLOCKS.generation
        self._plans = Cache(PLAN_ENTRIES)      # (width, t, alpha, end) -> plan
        self._shared = Cache(PLAN_ENTRIES)     # (blocks at the width, t, alpha) -> plan
        self._rows = Cache(PLAN_ENTRIES)       # (width, end) -> rows at that width
        self._changed_ids = Cache(PLAN_ENTRIES)
        self._interned = Cache(PLAN_ENTRIES)   # a row's blocks' fields -> their entries
        self._inputs: dict = {}
        self._static: dict = {}
        self._last: tuple = (None, None)   # the last variant's chain (cost, then latency)
        self.variants = self.lookups = self.lowered = 0

    @property
    def worthwhile(self) -> bool:
        """False once the variants seen share too few blocks for the memo to pay (a
        channel schedule that gives every width its own channels, ReXNet's): after
        ``MIN_VARIANTS``, more than ``MISS_LIMIT`` of the blocks looked up were new."""
        return self.variants < MIN_VARIANTS or self.lowered <= MISS_LIMIT * self.lookups

    def plan(self, v) -> tuple[Entry, ...] | None:
        """The blocks of variant ``v`` in compile order (resolution aside), or None."""
        if BLOCKS.generation != self.generation:
            self.generation = BLOCKS.generation
            for table in (self._plans, self._shared, self._rows, self._changed_ids,
                          self._interned, self._static):
                table.clear()
        key = (v.width, v.t, v.alpha, v.schedule_end)
        found = self._plans.get(key)
        if found is None:
            try:
                found = self._make_plan(v)
            except Exception:   # noqa: BLE001 -- the full compile reports it
                found = ()
            self._plans.put(key, found)
        return found or None

    def _make_plan(self, v) -> tuple[Entry, ...]:
        """compiler.walk_blocks over ``vary(spec, v)``, each block an :class:`Entry`. The
        rows at a width are walked once (:meth:`_scaled`); ``v``'s expansion or alpha then
        replaces the field, which is what walking the changed row gives when the field is
        not one scaling reads (else the changed row is walked itself)."""
        rows, ids = self._scaled(v)
        key = (ids, v.t, v.alpha)
        found = self._shared.get(key)
        if found is not None:
            return found
        out, shared = [], True
        for i, (row, entries) in enumerate(rows):
            changes = row_changes(row.fields, v) if row.section == "stages" \
                else {}
            if not changes:
                out.extend(entries)
            elif not changes.keys() & self._reads(row):
                items = tuple(changes.items())
                out.extend(self._changed(e, items, changes) for e in entries)
            else:   # scaled after the change: depends on the width itself, not shared
                shared = False
                out.extend(self._walk(vary(self.spec, dataclasses.replace(
                    v, resolution=None)), {i})[0][1])
        return self._shared.put(key, tuple(out)) if shared else tuple(out)

    def _changed(self, e: Entry, items: tuple, changes: dict) -> Entry:
        """``e`` with ``changes`` in its fields (its id looked up by the change first)."""
        fields = {**e.fields, **changes}
        key = (e.bid, items)
        bid = self._changed_ids.get(key)
        if bid is None:
            bid = self._changed_ids.put(key, _bid((self.generation, e.key_name,
                                                   _key(fields), e.settings)))
        return Entry(bid, e.row, fields, e.prefix, e.stage, e.in_stages, e.key_name,
                     e.settings)

    def _reads(self, row) -> frozenset:
        """The fields scaling a row reads or writes (compiler.scaled_fields)."""
        key = ("reads", row.block)
        if key not in self._static:
            self._static[key] = frozenset({"c", "scale", "min_width",
                                           *compiler.block_def(row.block)[1]})
        return self._static[key]

    def _scaled(self, v) -> tuple:
        """([(row, its entries)], the ids of its blocks) at ``v``'s width and schedule end,
        before ``v``'s expansion and alpha."""
        key = (v.width, v.schedule_end)
        found = self._rows.get(key)
        if found is None:
            rows = self._walk(vary(self.spec, Variant(width=v.width,
                                                      schedule_end=v.schedule_end)))
            ids = tuple(e.bid for _, entries in rows for e in entries)
            found = self._rows.put(key, (rows, ids))
        return found

    def _walk(self, spec, rows=None) -> list[tuple[object, tuple[Entry, ...]]]:
        """[(row, the :class:`Entry` of each of its blocks)] by compiler.walk_rows and
        row_blocks (only the rows at the indices ``rows`` if given). A row's entries are
        interned by the row (its identity: each entry holds its row, so the id is not
        reused while the entry is kept) and what its blocks are made of: the many widths
        that round a row to the same channels share them."""
        settings = (spec.divisor, spec.bn_eps, spec.bn_momentum, spec.padding)
        out = []
        for i, (row, fields, count, channels) in enumerate(compiler.walk_rows(spec)):
            if rows is not None and i not in rows:
                continue
            key = (id(row), settings, _items(fields), count, channels)
            entries = self._interned.get(key)
            if entries is None:
                name = compiler.block_def(row.block)[0].name
                entries = self._interned.put(key, tuple(
                    Entry(_bid((self.generation, name, _key(f), settings)), row, f, prefix,
                          stage, row.section == "stages", name, settings)
                    for f, prefix, stage in compiler.row_blocks(row, fields, count,
                                                                channels)))
            out.append((entries[0].row, entries))
        return out

    def input_shape(self, resolution) -> tuple:
        found = self._inputs.get(resolution)
        if found is None:
            spec = vary(self.spec, Variant(resolution=resolution))
            found = self._inputs[resolution] = (spec.channels, *spec.size)
        return found

    def chain(self, v) -> list[tuple[Entry, tuple, BlockCost]] | None:
        """Each block of ``v`` with its input shape and cost, or None (compile in full)."""
        if self._last[0] is v:
            return self._last[1]
        self._last = (v, self._chain(v))
        return self._last[1]

    def _chain(self, v) -> list[tuple[Entry, tuple, BlockCost]] | None:
        plan = self.plan(v) if self.usable else None
        if plan is None:
            return None
        shape = self.input_shape(v.resolution)
        out, nodes, known = [], 1, _BLOCKS.new
        self.variants += 1
        self.lookups += len(plan)
        for entry in plan:
            c = known.get((entry.bid, shape))
            if c is None:
                self.lowered += 1
                c = block_cost(entry, shape, self.spec)
            if c is None or c is _FAILED:
                return None
            out.append((entry, shape, c))
            shape, nodes = c.out_shape, nodes + c.nodes
        return out if nodes <= self.max_nodes else None

    def evaluate(self, v) -> dict | None:
        chain = self.chain(v)
        if chain is None:
            return None
        params = madds = elementwise = 0
        for _, _, c in chain:
            params += c.params
            madds += c.madds
            elementwise += c.elementwise
        row = {k: getattr(v, k) for k in v.__dataclass_fields__ if getattr(v, k) is not None}
        row.update(params=params, madds=madds, elementwise=elementwise)
        return row
