"""Predicted latency of sweep variants from memoised blocks (``archspec sweep --profile``).

The kernels of a network are its blocks' kernels when no kernel crosses a block boundary.
So each block is fused alone (:class:`.kernels._Fuser` on the block's own graph, from
archspec.analysis.memo), with what fusion can see of its surroundings: the layout of its
input (and whether a kernel computed it), whether its output is a graph output or tap, and
the ops of the next block that read its output, added after it as stubs. A block whose
kernel takes in a stub crosses the boundary: that variant is predicted from its full
graph. A block is fused once per (block, input channels, layout, surroundings) with its
heights and widths as symbols (:class:`SpatialTemplate`, latency/spatial.py) and its kernels'
figures evaluated at the other input sizes of the sweep; a fusion that reads a size
otherwise than as a product is fused concretely at each size. A kernel's predicted time
depends on the whole network only through the trees'
``log_net`` feature, compared with the trees' thresholds, so it is memoised per bucket
between two thresholds, and the missing times of a variant are boosted together
(:class:`Forest`: numpy, the same floats as the model's own loop). The
sum is the model's own (``LatencyModel.total_ms``, which ``LatencyModel.predict`` sums
with); tests/test_sweep_memo.py checks the figures equal the full path's on random
samples.
"""
from __future__ import annotations

import bisect
import math
from typing import NamedTuple

from ..analysis.memo import Cache, _bid, take_lowered, template_of, template_shapes
from ..ir import ops
from . import spatial
from .kernels import Kernel, _Fuser, backend_kernels
from .model import FEATURES, TREE_FEATURES, tree_row

ORT = "onnxruntime"

BLOCK_ENTRIES = 50_000     # fused blocks kept per process
KERNEL_ENTRIES = 200_000   # kernel times (per network-size bucket) kept per process
NET = TREE_FEATURES.index("log_net")
_FULL_GRAPH = object()


class FusedBlock(NamedTuple):
    kernels: tuple      # (kernel id, type, features without net_elems) per kernel
    net_elems: int      # the block's share of the network's net_elems
    layout: str         # the layout of the block's output


class SpatialTemplate(NamedTuple):
    """A block fused once with symbolic heights and widths (latency/spatial.py), for the
    same block, input channels, layout and surroundings at any input size where its
    cost-memo template holds and its symbols bind."""

    source: object      # the cost memo's Template (analysis/memo.py) whose ops were fused
    binding: tuple      # spatial.symbolic_shapes' binding of the block's nodes
    stubs: tuple        # the next block's readers (op, input shapes, None: this block's)
    stub_binding: tuple # and of the nodes fusion added for them (_with_stubs)
    kernels: tuple | None   # (type, feature names) per kernel; None: a kernel crosses
                            # the boundary (the full graph is needed)
    figures: object     # spatial.Figures: the kernels' features in order, then net_elems
    layout: str         # the layout of the block's output

    def at(self, values: dict):
        """The :class:`FusedBlock` at the symbols' ``values`` (spatial.bind)."""
        if self.kernels is None:
            return _FULL_GRAPH
        figures = self.figures.at(values)
        out, i = [], 0
        for type_, names in self.kernels:
            f = dict(zip(names, figures[i:i + len(names)]))
            i += len(names)
            out.append((_bid(("kernel", type_, tuple(f.items()))), type_, f))
        return FusedBlock(tuple(out), figures[-1], self.layout)


class Forest:
    """A profile's boosted trees as arrays (numpy): :meth:`boost` gives, for many kernels
    at once, what :func:`archspec.latency.model.boost` gives for each -- the same leaves
    (the trees' own comparisons: ``x <= threshold`` goes left, a NaN right), their
    ``lr x value`` added to the offset one tree after the other (``np.add.accumulate``
    adds in order), so the same floats.

    Trees of depth <= 4 (the shipped profile's) are laid out complete, 16 places a tree:
    nodes 0-14 in heap order (children of i at 2i + 1, 2i + 2; a leaf above depth 4 turns
    into nodes that go left whatever the kernel, down to its value), then a spare. A
    kernel's 200 trees are then 200 16-bit words, one bit a node (1: left), and a word
    gives its leaf by a table (``lut``). The bits of the nodes that do not test ``net``
    (the feature at index ``net``) are a kernel's own, computed once
    (:meth:`static_bits`); those that test it are the network's (:meth:`net_bits`); a
    prediction ORs the two (:meth:`boost_bits`). Deeper forests walk their trees node by
    node (:meth:`_walk`)."""

    CODED_DEPTH = 4

    def __init__(self, trees: dict, net: int | None = None):
        import numpy as np

        self.np, self.lr, self.offset = np, trees["learning_rate"], trees["offset"]
        forest = trees["trees"]
        self.depth = _depth(forest)
        self.n = len(forest)
        self.coded = self.depth <= self.CODED_DEPTH
        if not self.coded:
            self._init_walk(forest)
            return
        inner = 2 ** self.CODED_DEPTH - 1                  # 15 nodes, then a spare
        self.feat = np.zeros((self.n, inner + 1), np.int64)
        self.thr = np.full((self.n, inner + 1), np.inf)
        self.always = np.ones((self.n, inner + 1), bool)   # nodes that go left anyway
        self.leaf = np.zeros((self.n, inner + 1))
        for t, (feat, thr, left, right, value) in enumerate(forest):
            stack = [(0, 0, 0)]   # (node of the tree, place in the complete tree, depth)
            while stack:
                i, at, d = stack.pop()
                if d == self.CODED_DEPTH:
                    self.leaf[t, at - inner] = self.lr * value[i]
                elif left[i] < 0:   # a leaf above the last level: left, down to it
                    stack.append((i, 2 * at + 1, d + 1))
                else:
                    self.feat[t, at], self.thr[t, at] = feat[i], thr[i]
                    self.always[t, at] = False
                    stack += [(left[i], 2 * at + 1, d + 1), (right[i], 2 * at + 2, d + 1)]
        self.tests_net = (self.feat == net) & ~self.always
        self.feat, self.thr, self.always, self.tests_net, self.leaf = (
            a.ravel() for a in (self.feat, self.thr, self.always, self.tests_net, self.leaf))
        self.leaf_at = np.arange(self.n) * (inner + 1)
        # the leaf of each 16-bit word: node j is bit 15 - j (np.packbits: first is high)
        words = np.arange(2 ** (inner + 1))
        at = np.zeros_like(words)
        for _ in range(self.CODED_DEPTH):
            at = 2 * at + 2 - ((words >> (inner - at)) & 1)
        self.lut = (at - inner).astype(np.uint8)

    def boost(self, x) -> list[float]:
        """The trees' sum for each row of ``x`` (a 2-d array of tree features)."""
        if not self.coded:
            return self._walk(x)
        return self.boost_bits(self.static_bits(x, every=True), 0)

    def static_bits(self, x, every: bool = False):
        """Each row's node bits (1: left), 16 to a tree, packed: those of the nodes that
        test ``net`` left 0 unless ``every``."""
        np = self.np
        left = (np.take(x, self.feat, axis=1) <= self.thr) | self.always
        if not every:
            left &= ~self.tests_net
        return np.packbits(left, axis=1)

    def net_bits(self, x_net: float):
        """The bits of the nodes that test ``net`` for a network whose feature is
        ``x_net``, packed as :meth:`static_bits`."""
        return self.np.packbits((x_net <= self.thr) & self.tests_net)

    def boost_bits(self, bits, net_bits) -> list[float]:
        """The trees' sums of kernels whose node bits are ``bits | net_bits``."""
        np = self.np
        leaves = np.take(self.lut, (bits | net_bits).view(">u2").T)   # tree x kernel
        terms = np.empty((self.n + 1, len(bits)))
        terms[0] = self.offset
        terms[1:] = np.take(self.leaf, self.leaf_at[:, None] + leaves)
        return np.add.accumulate(terms, axis=0)[-1].tolist()

    def _init_walk(self, forest) -> None:
        np = self.np
        width = max(len(t[0]) for t in forest)
        shape = (len(forest), width)
        self.wfeat = np.zeros(shape, np.int64)
        self.wthr = np.full(shape, np.inf)       # a leaf goes "left" to itself
        self.wleft = np.tile(np.arange(width), (len(forest), 1))
        self.wright = self.wleft.copy()
        self.wvalue = np.zeros(shape)
        for n, (feat, thr, left, right, value) in enumerate(forest):
            for i in range(len(feat)):
                self.wvalue[n, i] = value[i]
                if left[i] >= 0:
                    self.wfeat[n, i], self.wthr[n, i] = feat[i], thr[i]
                    self.wleft[n, i], self.wright[n, i] = left[i], right[i]
        self.wbase = np.arange(len(forest))[None, :] * width
        self.wleft, self.wright = self.wleft + self.wbase[0][:, None], \
            self.wright + self.wbase[0][:, None]
        self.wfeat, self.wthr, self.wleft, self.wright, self.wvalue = (
            a.ravel() for a in (self.wfeat, self.wthr, self.wleft, self.wright, self.wvalue))

    def _walk(self, x) -> list[float]:
        np = self.np
        flat = x.ravel()
        offsets = (np.arange(len(x)) * x.shape[1])[:, None]
        at = np.repeat(self.wbase, len(x), axis=0)
        for _ in range(self.depth):
            go_left = flat[offsets + self.wfeat[at]] <= self.wthr[at]
            at = np.where(go_left, self.wleft[at], self.wright[at])
        terms = np.empty((len(x), at.shape[1] + 1))
        terms[:, 0] = self.offset
        terms[:, 1:] = self.lr * self.wvalue[at]
        return np.add.accumulate(terms, axis=1)[:, -1].tolist()


def _depth(forest) -> int:
    """The most splits on any root-to-leaf path of the trees."""
    def depth(tree, i):
        left, right = tree[2], tree[3]
        return 0 if left[i] < 0 else 1 + max(depth(tree, left[i]), depth(tree, right[i]))
    return max(depth(t, 0) for t in forest)


class SweepLatency:
    """``extra`` for archspec.analysis.sweep.run: adds ``latency_ms``, the predicted
    latency of the variant's compiled graph (``LatencyModel.predict``, rounded to 4
    decimals), from
    memoised blocks where the variant allows, else from its full graph."""

    def __init__(self, profile):
        self.model, self.block = profile.model, profile.nchwc_block
        self.batch = self.model.batch   # the profile's (Profile sets the model's)
        # torch eager runs every node alone: no block memo (it mirrors onnxruntime's
        # fusion); every variant's full graph is predicted
        self.backend = profile.backend
        self._start()

    def _start(self) -> None:
        self._statics: dict = {}   # kernel id -> (linear (type, us), row of _rows, correction)
        self._rows = None          # the kernels' tree features, a row each (numpy)
        self._fused = Cache(BLOCK_ENTRIES)
        self._spatial = Cache(BLOCK_ENTRIES)   # blocks fused with symbolic sizes
        self._times = Cache(KERNEL_ENTRIES)
        self._taps = Cache(BLOCK_ENTRIES)   # the blocks' output shapes -> _outputs
        self._forest = Forest(self.model.trees, NET) if self.model.trees else None
        self._bits = None          # the kernels' node bits (Forest.static_bits), a row each
        self._ready = 0            # rows of _bits computed
        self._net_bits: dict = {}  # network-size bucket -> Forest.net_bits
        trees = self.model.trees or {}
        reads_net = len(trees.get("features", ())) > NET and "net_elems" not in FEATURES
        self._thresholds = sorted({thr[i] for feat, thr, left, _, _ in trees.get("trees", ())
                                   for i in range(len(feat))
                                   if left[i] >= 0 and feat[i] == NET}) if reads_net else []
        self._exact_net = "net_elems" in FEATURES

    def __getstate__(self):
        return {"model": self.model, "block": self.block, "batch": self.batch,
                "backend": self.backend}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start()

    def __call__(self, memo, spec, v, row: dict) -> None:
        ms = self.memoised(memo, v) if memo is not None and self.backend == ORT else None
        if ms is None:
            from ..analysis.variants import vary

            graph = vary(spec, v).compile()
            ms = self.model.predict(backend_kernels(graph, self.backend, self.block,
                                                    **self.model.fusion()),
                                    graph).total_ms
        row["latency_ms"] = round(ms, 4)

    # ---- from memoised blocks ---------------------------------------------------------
    def memoised(self, memo, v) -> float | None:
        """Predicted ms of ``v`` from its blocks, or None where a full graph is needed."""
        chain = memo.chain(v)
        if chain is None or any(c.passthrough for _, _, c in chain):
            return None
        resolution = memo.input_shape(v.resolution)[1]
        key = (resolution, tuple([(e.in_stages, c.out_shape) for e, _, c in chain]))
        outputs = self._taps.get(key)
        if outputs is None:
            outputs = self._taps.put(key, self._outputs(chain, resolution))
        kernels, net, layout = [], 0, None
        fused_cache = self._fused
        recent = fused_cache.new.get
        afters = [c for _, _, c in chain[1:]] + [None]
        for i, (entry, shape, _) in enumerate(chain):
            after = afters[i]
            key = (entry.bid, shape, layout, i in outputs, _context(after))
            fused = recent(key) or fused_cache.get(key)
            if fused is None:
                fused = self._fused.put(key, self._block(
                    key, entry, shape, after.consumers if after else (), memo.spec))
            if fused is _FULL_GRAPH:
                return None
            kernels.extend(fused.kernels)
            net += fused.net_elems
            layout = fused.layout
        return self._predict(kernels, net)

    @staticmethod
    def _outputs(chain, resolution: int) -> set[int]:
        """The blocks whose output is a graph output or a C<k> tap (compiler.mark_level
        on the blocks' output shapes)."""
        from ..compiler import mark_level

        shapes = _Shapes(chain)
        for i, (entry, _, _) in enumerate(chain):
            if entry.in_stages:
                mark_level(shapes, i, resolution)
        return set(shapes.taps.values()) | {len(chain) - 1}

    def _block(self, key: tuple, entry, shape, after: tuple, spec):
        """The block's :class:`FusedBlock` (or _FULL_GRAPH) under ``key`` (see
        :meth:`memoised`): from its :class:`SpatialTemplate` at another input size where
        one holds, else fused (:meth:`_fuse`)."""
        _, _, layout, is_output, context = key
        skey = (entry.bid, shape[0], len(shape), layout, is_output, context)
        template = self._spatial.get(skey)
        if template is not None:
            shapes = template_shapes(entry, shape, template.source)
            if shapes is not None:
                values = spatial.bind(template.binding, shapes)
                if values is not None and template.stub_binding:
                    values = spatial.bind(template.stub_binding,
                                          _stub_shapes(shapes, template, after), values)
                if values is not None:
                    return template.at(values)
        fused, template = self._fuse(entry, shape, layout, is_output, after, spec)
        if template is not None:
            self._spatial.put(skey, template)
        return fused

    def _fuse(self, entry, shape, layout, is_output: bool, after: tuple, spec):
        """The block's kernels fused alone (see the module docstring), or _FULL_GRAPH
        (a kernel crosses the boundary, or the block cannot be fused alone); with its
        :class:`SpatialTemplate` where the fusion goes through with symbolic sizes (else
        None)."""
        try:
            graph, out = take_lowered(entry, shape, spec)
        except Exception:   # noqa: BLE001 -- the full path reports it
            return _FULL_GRAPH, None
        source = template_of(entry, shape, graph)
        own = [n.name for n in graph if n.name != "input"]
        graph.meta, graph.taps = {}, {}
        graph.outputs = {"output": out} if is_output else {}
        for j, (op, shapes) in enumerate(after):
            inputs = [out if s is None else graph.add(f"~next{j}.in{k}", ops.Input(s))
                      for k, s in enumerate(shapes)]
            graph.add(f"~next{j}", op, inputs)
        template = None
        if source is not None:
            symbols, binding = spatial.symbolic_shapes(graph)
            stubs = tuple(b for b in binding if b[0].startswith("~next"))
            try:
                found = self._fused_alone(graph.reshaped(symbols), own, out, layout)
                template = SpatialTemplate(source, binding[:len(binding) - len(stubs)],
                                           after, stubs, *_compiled(found))
            except Exception:   # noqa: BLE001 -- spatial.Unknown, or any failure: fused
                template = None  # concretely below, where a failure is the full path's
        if template is not None:
            return template.at(spatial.bind(binding, {n.name: n.shape for n in graph})), \
                template
        try:
            found = self._fused_alone(graph, own, out, layout)
        except Exception:   # noqa: BLE001 -- the full path reports it, named after its pass
            return _FULL_GRAPH, None
        if found is None:
            return _FULL_GRAPH, None
        kernels, net, out_layout = found
        out_kernels = []
        for type_, f in kernels:
            out_kernels.append((_bid(("kernel", type_, tuple(f.items()))), type_, f))
        return FusedBlock(tuple(out_kernels), net, out_layout), None

    def _fused_alone(self, graph, own: list, out: str, layout):
        """(per kernel (type, features without net_elems), the kernels' net_elems share,
        the output's layout) of the block's own nodes of ``graph`` (with the next
        block's stubs), or None where a kernel crosses the boundary; figures for the
        profile's batch (Kernel.features, as LatencyModel.predict reads them)."""
        fz = _Fuser(graph, self.block, **self.model.fusion())
        if layout is not None:
            fz.owner["input"] = Kernel("input", "", layout=layout)
        mine = set(own)
        kernels = [k for k in fz.run() if k.name in mine]
        if any(n not in mine for k in kernels for n in k.nodes):
            return None
        found, batch = [], self.batch
        for k in kernels:
            f = k.features(batch)
            f.pop("net_elems", None)
            found.append((k.type, f))
        net = sum(k.params + k.out_elems for k in kernels) if batch == 1 else \
            sum(k.params + batch * k.out_elems for k in kernels)
        return found, net, fz.owner[out].layout

    def _predict(self, kernels: list, net: int) -> float:
        """The model's prediction for these kernels in a network of ``net`` elements:
        each kernel's time from the memo (per kernel and network-size bucket), the
        missing ones computed together (:meth:`_kernel_us`)."""
        bucket = net if self._exact_net else bisect.bisect_left(self._thresholds,
                                                                math.log1p(net))
        times = self._times
        recent = times.new.get
        found = [recent((k[0], bucket)) for k in kernels]
        missing = []
        for i, t in enumerate(found):
            if t is None:
                t = found[i] = times.get((kernels[i][0], bucket))   # the older generation
                if t is None:
                    missing.append(i)
        if missing:
            timed = self._kernel_us([kernels[i] for i in missing], net, bucket)
            for i, t in zip(missing, timed):
                found[i] = times.put((kernels[i][0], bucket), t)
        return self.model.total_ms([us for _, us in found])[0]

    def _kernel_us(self, kernels: list, net: int, bucket=None) -> list[tuple[str, float]]:
        """LatencyModel.kernel_us of each kernel: its linear time memoised per kernel,
        its trees' sum computed for all of them at once by :class:`Forest` (the float
        boost gives; from the kernels' own node bits and those of the network's size
        bucket, where the forest allows), combined by the model's own kernel_us."""
        if self._exact_net:   # the linear model reads the network's size: no shortcut
            return [self.model.kernel_us(type_, {**f, "net_elems": net})
                    for _, type_, f in kernels]
        known, forest = self._statics, self._forest
        if len(known) + len(kernels) > KERNEL_ENTRIES:   # start the table afresh
            known.clear()
        statics = [known.get(kid) or self._static(kid, type_, f) for kid, type_, f in kernels]
        totals = [None] * len(kernels)
        if forest is not None:
            rows = [row for _, row, _ in statics]
            x_net = math.log1p(net)
            if forest.coded and bucket is not None:
                if self._ready < len(known):   # the node bits of the kernels new here
                    self._bits[self._ready:len(known)] = forest.static_bits(
                        self._rows[self._ready:len(known)])
                    self._ready = len(known)
                net_bits = self._net_bits.get(bucket)
                if net_bits is None:
                    net_bits = self._net_bits[bucket] = forest.net_bits(x_net)
                totals = forest.boost_bits(self._bits[rows], net_bits)
            else:
                x = self._rows[rows]
                x[:, NET] = x_net
                totals = forest.boost(x)
        corrected = self.model.corrected_us   # LatencyModel.kernel_us's arithmetic
        if forest is None:
            return [(t, corrected(c, us)) for (t, us), _, c in statics]
        boosted = self.model.boosted_us
        return [(t, corrected(c, boosted(us, total)))
                for ((t, us), _, c), total in zip(statics, totals)]

    def _static(self, kid: int, type_: str, f: dict) -> tuple:
        """(linear model's (type, us), the row of ``_rows`` (and ``_bits``) for the
        kernel's tree features, its family's correction) of a kernel: none reads the
        network's size."""
        row = None
        if self._forest is not None:
            x = tree_row(type_, f)
            row = len(self._statics)
            if row == 0:
                self._ready = 0
            if self._rows is None or row >= len(self._rows):
                import numpy as np

                size = max(1024, 2 * row)
                grown = np.zeros((size, len(x)))
                bits = np.zeros((size, 2 * self._forest.n), np.uint8)
                if self._rows is not None:
                    grown[:row], bits[:row] = self._rows[:row], self._bits[:row]
                self._rows, self._bits = grown, bits
            self._rows[row] = x
        model = self.model
        found = self._statics[kid] = (model.linear_us(type_, f), row,
                                      model.correction_of(type_))
        return found


def _compiled(found) -> tuple:
    """SpatialTemplate's (kernels, figures, layout) from
    :meth:`SweepLatency._fused_alone`'s symbolic answer."""
    if found is None:
        return None, None, ""
    kernels, net, layout = found
    return (tuple((type_, tuple(f)) for type_, f in kernels),
            spatial.Figures([v for _, f in kernels for v in f.values()] + [net]), layout)


def _stub_shapes(shapes: dict, template: SpatialTemplate, after: tuple) -> dict:
    """The shapes of the next block's stubs as :meth:`SweepLatency._fuse` adds them, the
    block's nodes being of ``shapes``, where ``after`` reads the block's output as the
    template's stubs did (else none: the binding then fails)."""
    if len(after) != len(template.stubs) or any(
            a[0] != b[0] or [s is None for s in a[1]] != [s is None for s in b[1]]
            for a, b in zip(after, template.stubs)):
        return {}
    out, found = shapes[template.source.out], {}
    try:
        for j, (op, ins) in enumerate(after):
            for k, s in enumerate(ins):
                if s is not None:
                    found[f"~next{j}.in{k}"] = s
            found[f"~next{j}"] = op.infer([out if s is None else s for s in ins])
    except Exception:   # noqa: BLE001 -- not bound: fused again
        return {}
    return found


def _context(after) -> int:
    """What fusing a block alone needs to know of the ops that read its output (those of
    ``after``, the next block's cost): all of them when one op reads it (a kernel may take
    that op in: the stub shows whether it does), only that there are several otherwise (no
    kernel takes in an output that several ops read)."""
    if after is None:
        return -1
    return 0 if len(after.consumers) > 1 else after.consumers_id


class _Shape(NamedTuple):
    shape: tuple


class _Shapes:
    """What compiler.mark_level reads and writes of a graph: the output shape of block
    ``i`` of a chain, and the taps (block indices)."""

    def __init__(self, chain):
        self.chain, self.taps = chain, {}

    def __getitem__(self, i: int) -> _Shape:
        return _Shape(self.chain[i][2].out_shape)
