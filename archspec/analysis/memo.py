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

Most blocks recur at many input sizes (a sweep's resolutions) with the same channels.
A block lowered alone is lowered with its nodes' shapes watched (:class:`_Probe`: every
use the lowering code makes of a shape it reads through ``graph[name]`` is written
down -- a channel count, two shapes compared equal, a whole shape); on another input of
the same channels and rank its ops are replayed (the same ``Graph.add`` calls, each op
inferring its shape) and kept when every recorded use gives the same answer on the
replayed shapes, the lowering code then having taken the same path; otherwise, or when a
shape escaped into an op, the block is lowered again (:func:`block_graph`).

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
from ..ir.graph import Graph, Node, _new_node
from ..spec.model import Spec
from .cost import op_cost, totals
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


class _Probe(tuple):
    """A node's shape as a block's lowering reads it (``graph[name].shape``) while the
    block is lowered alone: each use is appended to ``log`` as what a replay on other
    shapes checks (:func:`_holds`) -- ``("at", src, i, value)`` an item,
    ``("eq", src, other, result)`` two shapes (or slices of them) compared,
    ``("value", src, value)`` anything else (the whole value: iteration, hashing,
    ordering, printing...). ``src`` is (node name, the slices taken of its shape, each
    as (start, stop, step))."""

    def __getitem__(self, i):
        value = tuple.__getitem__(self, i)
        if isinstance(i, slice):
            part = (i.start, i.stop, i.step)   # hashable (slices are not, before 3.12)
            return _probe(value, (self.src[0], (*self.src[1], part)), self.log)
        self.log.append(("at", self.src, i, value))
        return value

    def _compare(self, other):
        plain = tuple.__getitem__(self, slice(None))
        if type(other) is _Probe:
            result = plain == tuple.__getitem__(other, slice(None))
            self.log.append(("eq", self.src, other.src, result))
            return result
        self._use()
        return plain == other

    def __eq__(self, other):
        return self._compare(other)

    def __ne__(self, other):
        return not self._compare(other)

    def __radd__(self, other):   # other + self: tried before tuple's own concatenation
        self._use()
        return other + tuple.__getitem__(self, slice(None))

    def __len__(self):
        n = tuple.__len__(self)
        self.log.append(("len", self.src, n))
        return n

    def _use(self):
        self.log.append(("value", self.src, tuple.__getitem__(self, slice(None))))


def _whole(name):
    method = getattr(tuple, name)

    def use(self, *args):
        self._use()
        for a in args:
            if type(a) is _Probe:
                a._use()
        return method(tuple.__getitem__(self, slice(None)),
                      *(tuple.__getitem__(a, slice(None)) if type(a) is _Probe else a
                        for a in args))
    use.__name__ = name
    return use


for _name in ("__iter__", "__hash__", "__repr__", "__str__", "__format__", "__lt__",
              "__le__", "__gt__", "__ge__", "__add__", "__mul__", "__rmul__", "__contains__",
              "__reversed__", "__reduce__", "__reduce_ex__", "__getnewargs__", "__sizeof__",
              "count", "index"):
    if hasattr(tuple, _name):
        setattr(_Probe, _name, _whole(_name))


def _probe(value: tuple, src: tuple, log: list) -> _Probe:
    out = tuple.__new__(_Probe, value)
    out.src, out.log = src, log
    return out


class _Traced(Graph):
    """A block's graph while its lowering runs: ``graph[name]`` gives the node with its
    shape as a :class:`_Probe` writing to ``reads``."""

    def __getitem__(self, name: str):
        node = self._nodes[name]
        return node._replace(shape=_probe(node.shape, (name, ()), self.reads))


class Template(NamedTuple):
    """A block lowered alone, to replay on inputs of other sizes (same channels, rank)."""

    nodes: tuple      # its nodes after the input (their shapes: of the first lowering)
    reads: tuple      # the lowering's uses of shapes (_Probe)
    out: str          # its output node
    readers: tuple    # the nodes that read the input, in graph.consumers order
    graph: Graph      # the graph of the first lowering (not to be changed)


_IDS: dict[tuple, int] = {}
_NEXT_ID = itertools.count(1)
_BLOCKS = Cache(BLOCK_ENTRIES)
_TEMPLATES = Cache(BLOCK_ENTRIES)   # (block id, input channels, input rank) -> Template
_RECENT = Cache(4096)   # the graphs of the blocks lowered last, for latency's fusion
_REPLAYED = Cache(4096)   # (block id, input shape) -> (Template, shapes) replayed last
_FAILED = object()


def clear() -> None:
    """Forget every block of this process (benchmarks start cold with it)."""
    _BLOCKS.clear()
    _RECENT.clear()
    _TEMPLATES.clear()
    _REPLAYED.clear()


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
    return _lower(entry, in_shape, spec, Graph)[:2]


def _lower(entry: Entry, in_shape: tuple, spec, kind) -> tuple[Graph, str, list]:
    """:func:`lower_alone` on a graph of class ``kind`` (:class:`_Traced` records the
    lowering's reads of shapes), with those reads."""
    graph = kind(spec.name, max_nodes=compiler.MAX_GRAPH_NODES)
    graph.reads = []
    graph.meta, graph.taps, graph.outputs = _Watched(), _Watched(), _Watched()
    graph.add("input", ops.Input(in_shape))
    out = compiler.lower_block(graph, entry.row, entry.fields, "input", entry.prefix,
                               entry.stage, spec)
    graph.__class__ = Graph
    if not isinstance(out, str):
        raise ContextUsed("the block has several outputs")
    graph.meta, graph.taps, graph.outputs = {}, {}, {}
    reads = graph.__dict__.pop("reads")
    return graph, out, reads


def block_graph(entry: Entry, in_shape: tuple, spec) -> tuple[Graph, str]:
    """:func:`lower_alone`'s graph: the block's template replayed on ``in_shape`` where
    one of the same input channels and rank holds there (see the module docstring), else
    the block lowered alone with its reads of shapes recorded (its template)."""
    template = _TEMPLATES.get((entry.bid, in_shape[0], len(in_shape)))
    if template is not None:
        found = _replay(template, in_shape, spec)
        if found is not None:
            return found
    return _lower_traced(entry, in_shape, spec)


def _lower_traced(entry: Entry, in_shape: tuple, spec) -> tuple[Graph, str]:
    """:func:`lower_alone`, its reads of shapes recorded: the block's template."""
    graph, out, reads = _lower(entry, in_shape, spec, _Traced)
    nodes = tuple(n for n in graph if n.name != "input")
    if any(map(_escaped, (n.op for n in nodes))):   # a shape kept in an op: no template
        return lower_alone(entry, in_shape, spec)
    _TEMPLATES.put((entry.bid, in_shape[0], len(in_shape)),
                   Template(nodes, tuple(dict.fromkeys(reads)), out,
                            tuple(graph[c] for c in graph.consumers("input")), graph.copy()))
    return graph, out


def _escaped(op) -> bool:
    """Does ``op`` hold a watched shape (a :class:`_Probe`) in one of its fields (or is it
    not a dataclass, whose fields could not be looked at)?"""
    def holds(v):
        return type(v) is _Probe or (isinstance(v, (tuple, list, set, frozenset))
                                     and any(map(holds, v))) or \
            (isinstance(v, dict) and any(map(holds, (*v.keys(), *v.values()))))
    values = getattr(op, "__dict__", None)
    if values is None:
        if not dataclasses.is_dataclass(op):
            return True
        values = {f.name: getattr(op, f.name) for f in dataclasses.fields(op)}
    return any(map(holds, values.values()))


def _replay(template: Template, in_shape: tuple, spec) -> tuple[Graph, str] | None:
    """The template's ops added again on an input of ``in_shape`` (``Graph.add``), or
    None where an op does not apply there or a recorded use of a shape gives another
    answer."""
    graph = Graph(spec.name, max_nodes=compiler.MAX_GRAPH_NODES)
    try:
        graph.add("input", ops.Input(in_shape))
        for n in template.nodes:
            graph.add(n.name, n.op, n.inputs, block=n.block, stage=n.stage,
                      block_type=n.block_type)
        shapes = {n.name: n.shape for n in graph}
        if all(_holds(shapes, r) for r in template.reads):
            return graph, template.out
    except Exception:   # noqa: BLE001 -- lowered again: the lowering reports it
        pass
    return None


def template_of(entry: Entry, in_shape: tuple, graph: Graph) -> Template | None:
    """The block's template where ``graph`` (:func:`take_lowered`'s for ``entry`` on
    ``in_shape``, before anything is added to it) holds its ops, else None."""
    template = _TEMPLATES.get((entry.bid, in_shape[0], len(in_shape)))
    if template is None:
        return None
    nodes = [n for n in graph if n.name != "input"]
    if len(nodes) != len(template.nodes) or any(
            (a.name, a.op, a.inputs) != (b.name, b.op, b.inputs)
            for a, b in zip(nodes, template.nodes)):
        return None
    return template


def template_shapes(entry: Entry, in_shape: tuple, template: Template) -> dict | None:
    """The shapes of ``template``'s nodes (and ``input``) replayed on ``in_shape`` --
    those the cost memo replayed last, else inferred again -- or None where the template
    does not hold there (the block lowers to other ops: see :func:`_replay`)."""
    found = _REPLAYED.get((entry.bid, in_shape))
    if found is not None and found[0] is template:
        return found[1]
    if template.graph.input_shape == in_shape:
        return {n.name: n.shape for n in template.graph}
    shapes = {"input": in_shape}
    try:
        for n in template.nodes:
            inputs = n.inputs
            shape = n.op.infer([shapes[inputs[0]]] if len(inputs) == 1 else
                               [shapes[i] for i in inputs])
            if min(shape) < 1:
                return None
            shapes[n.name] = shape
        if all(_holds(shapes, r) for r in template.reads):
            return shapes
    except Exception:   # noqa: BLE001 -- lowered again: the lowering reports it
        pass
    return None


def _replay_cost(template: Template, in_shape: tuple, key: tuple) -> BlockCost | None:
    """What :func:`block_cost` gives for the block of ``template`` on ``in_shape``
    without a graph: each op's shape inferred as ``Graph.add`` infers it (an empty one
    refused as there) and costed by the cost pass's ``op_cost``; None where that fails
    or a recorded use of a shape gives another answer. The shapes are kept a while under
    ``key`` for :func:`take_lowered`."""
    shapes = {"input": in_shape}
    params = buffers = madds = elementwise = 0
    try:
        for n in template.nodes:
            inputs = n.inputs
            ins = [shapes[inputs[0]]] if len(inputs) == 1 else [shapes[i] for i in inputs]
            shape = n.op.infer(ins)
            if min(shape) < 1:
                return None
            shapes[n.name] = shape
            c = op_cost(_new_node(Node, (n.name, n.op, inputs, shape, n.block, n.stage,
                                         n.block_type)), ins)
            params += c.params
            buffers += c.buffers
            madds += c.madds
            elementwise += c.elementwise
        for r in template.reads:
            if not _holds(shapes, r):
                return None
    except Exception:   # noqa: BLE001 -- lowered again: the lowering reports it
        return None
    readers = tuple((node.op, tuple(None if i == "input" else shapes[i]
                                    for i in node.inputs))
                    for node in template.readers)
    out = template.out
    _REPLAYED.put(key, (template, shapes))
    return BlockCost(shapes[out], params, buffers, madds, elementwise, len(template.nodes),
                     readers, _bid(("consumers", readers)), out == "input")


def _shape_of(shapes: dict, src: tuple) -> tuple:
    shape = shapes[src[0]]
    for part in src[1]:
        shape = shape[slice(*part)]
    return shape


def _holds(shapes: dict, read: tuple) -> bool:
    """Does a recorded use of a shape (:class:`_Probe`) give the same answer on the
    shapes ``shapes`` (node name -> shape)?"""
    kind, src = read[0], read[1]
    if kind == "at":
        return _shape_of(shapes, src)[read[2]] == read[3]
    if kind == "eq":
        return (_shape_of(shapes, src) == _shape_of(shapes, read[2])) == read[3]
    if kind == "len":
        return len(_shape_of(shapes, src)) == read[2]
    return _shape_of(shapes, src) == read[2]


def take_lowered(entry: Entry, in_shape: tuple, spec) -> tuple[Graph, str]:
    """:func:`block_graph`, or a copy of the graph :func:`block_cost` lowered (or
    replayed: its template's graph with the replay's shapes) for the same block and input
    not long ago (the caller may add to it)."""
    key = (entry.bid, in_shape)
    found = _RECENT.get(key)
    if found is not None:
        return found[0].copy(), found[1]
    found = _REPLAYED.get(key)
    if found is not None:
        return found[0].graph.reshaped(found[1]), found[0].out
    return block_graph(entry, in_shape, spec)


def consumers(graph: Graph, name: str) -> tuple:
    """The ops that read node ``name``, each with its inputs' shapes (None for ``name``
    itself), in graph order."""
    return tuple((graph[c].op, tuple(None if i == name else graph[i].shape
                                     for i in graph[c].inputs))
                 for c in graph.consumers(name))


def block_cost(entry: Entry, in_shape: tuple, spec) -> BlockCost | None:
    """The memoised cost of ``entry`` on ``in_shape``, or None where it cannot be had
    alone (the caller compiles in full): from the block's template replayed
    (:func:`_replay_cost`) where one holds, else from the block lowered alone."""
    key = (entry.bid, in_shape)
    found = _BLOCKS.get(key)
    if found is None:
        template = _TEMPLATES.get((entry.bid, in_shape[0], len(in_shape)))
        found = None if template is None else _replay_cost(template, in_shape, key)
        if found is None:
            try:
                graph, out = _lower_traced(entry, in_shape, spec)
            except Exception:   # noqa: BLE001 -- the full compile reports it, or needs context
                _BLOCKS.put(key, _FAILED)
                return None
            _RECENT.put(key, (graph, out))
            t, readers = totals(graph), consumers(graph, "input")
            found = BlockCost(graph[out].shape, t.params, t.buffers, t.madds, t.elementwise,
                              len(graph) - 1, readers, _bid(("consumers", readers)),
                              out == "input")
        _BLOCKS.put(key, found)
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
