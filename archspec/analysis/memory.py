"""Peak activation memory of a graph under four execution models (docs/memory.md).

- ``op_by_op``: every primitive op materialises its output; a tensor stays alive until its
  last consumer has run (graph outputs until the end), so residual inputs and SE inputs
  stay alive across their block. Ops that only re-view their input (flatten, dropout at
  inference, channel slice) allocate nothing and extend the life of the tensor they view.
  The schedule is the graph's topological order unless another is given.
- ``best_schedule``: the same model minimised over all topological orders (MobileNetV2
  eq. 1): exact dynamic programming over the executed-op sets (downsets); when that state
  space is too large (SSDLite's twelve parallel prediction branches), a greedy order,
  proved optimal when it meets a lower bound on every order's peak; the method says which.
- ``fused``: MobileNetV2 eq. 2 with section 5.1's t-way split: every splittable inverted
  residual block (1x1 expand, per-channel ops, 1x1 project) is one operation whose memory
  is its input + its output + one slice of the expansion; other blocks run op by op.
- ``by_resolution``: Table 3, the largest tensor that must be materialised at each
  spatial size when blocks are fused.

The ops' traits (archspec/ir/ops.py) say which ops are views and which act per channel.
What a framework keeps for training is its own rule (PyTorch's autograd:
archspec/backends/torch_rules.py). Weights are not counted (they are not activations).
Bytes = elements x batch x dtype size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Graph
from ..ir.ops import op_class
from ..ir.tensors import dtype_bytes, numel

EXACT_STATE_LIMIT = 20_000
CONSUMER = "memory models"


@dataclass
class MemoryReport:
    model: str
    peak_bytes: int
    peak_at: str                      # the op running when the peak occurs
    live_at_peak: list = field(default_factory=list)   # tensors (producer names) alive then
    timeline: list = field(default_factory=list)       # (op name, live bytes) per step
    batch: int = 1
    dtype: str = "fp32"
    details: dict = field(default_factory=dict)        # model-specific figures

    def to_dict(self) -> dict:
        return {"model": self.model, "peak_bytes": self.peak_bytes, "peak_at": self.peak_at,
                "live_at_peak": self.live_at_peak, "batch": self.batch, "dtype": self.dtype,
                **self.details,
                "timeline": [{"op": n, "live_bytes": b} for n, b in self.timeline]}


def _is_view(node) -> bool:
    return op_class(node, CONSUMER).view


def _per_channel(node) -> bool:
    return op_class(node, CONSUMER).per_channel


def buffer_roots(graph: Graph) -> dict[str, str]:
    """Each node -> the node whose buffer holds its output (itself unless a view)."""
    root = {}
    for node in graph:
        root[node.name] = root[node.inputs[0]] if _is_view(node) else node.name
    return root


def scratch_bytes(graph: Graph, node, batch: int = 1, dtype: str = "fp32") -> int:
    """Bytes of the temporary ``node`` makes while it runs (a conv's padded input copy)."""
    scratch = op_class(node, CONSUMER).scratch(node.op, [graph[i].shape for i in node.inputs])
    return scratch * batch * dtype_bytes(dtype)


def tensor_bytes(graph: Graph, batch: int = 1, dtype: str = "fp32") -> dict[str, int]:
    """Bytes of each node's output tensor."""
    size = dtype_bytes(dtype)
    return {n.name: numel(n.shape) * batch * size for n in graph}


# ---- op by op -----------------------------------------------------------------------------
def lifetimes(graph: Graph, order: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Buffer (root node) -> (step it is written, last step it is read) in ``order``;
    graph outputs live to the step after the last."""
    order = list(order) if order is not None else [n.name for n in graph]
    root = buffer_roots(graph)
    step = {name: i for i, name in enumerate(order)}
    span: dict[str, tuple[int, int]] = {}
    for node in graph:
        r = root[node.name]
        first, last = span.get(r, (step[r], step[r]))
        span[r] = (first, max(last, step[node.name]))
        for i in node.inputs:
            f, last_i = span[root[i]]
            span[root[i]] = (f, max(last_i, step[node.name]))
    for out in graph.outputs.values():
        span[root[out]] = (span[root[out]][0], len(order))
    return span


def op_by_op(graph: Graph, order: list[str] | None = None, *, batch: int = 1,
             dtype: str = "fp32") -> MemoryReport:
    """Peak of the sum of live activation tensors over the schedule ``order``."""
    order = list(order) if order is not None else [n.name for n in graph]
    nbytes = tensor_bytes(graph, batch, dtype)
    span = lifetimes(graph, order)
    step = {name: i for i, name in enumerate(order)}
    live: dict[str, int] = {}
    peak, peak_at, live_at_peak, timeline = -1, "", [], []
    for i, name in enumerate(order):
        if name in span:
            live[name] = nbytes[name]
        total = sum(live.values()) + scratch_bytes(graph, graph[name], batch, dtype)
        timeline.append((name, total))
        if total > peak:
            peak, peak_at, live_at_peak = total, name, sorted(live, key=step.get)
        for r in [r for r in live if span[r][1] <= i]:
            del live[r]
    return MemoryReport("op_by_op", peak, peak_at, live_at_peak, timeline, batch, dtype)


# ---- the best topological order -----------------------------------------------------------
@dataclass
class Schedule:
    order: list
    peak_bytes: int
    default_peak_bytes: int
    method: str           # "exact (dynamic programming over N downsets)" or "greedy ..."
    orders_differ: bool

    @property
    def saving_bytes(self) -> int:
        return self.default_peak_bytes - self.peak_bytes


class _Dag:
    """The graph as bitmasks for schedule search: predecessors, buffer users, sizes."""

    def __init__(self, graph: Graph, batch: int, dtype: str):
        self.names = [n.name for n in graph]
        index = {name: i for i, name in enumerate(self.names)}
        root = buffer_roots(graph)
        nbytes = tensor_bytes(graph, batch, dtype)
        self.n = len(self.names)
        self.preds = [0] * self.n
        self.alloc = [0] * self.n
        self.scratch = [scratch_bytes(graph, n, batch, dtype) for n in graph]
        self.root = [index[root[name]] for name in self.names]
        self.users = [0] * self.n      # for a root: every node that reads it or a view of it
        for i, node in enumerate(graph):
            self.alloc[i] = 0 if _is_view(node) else nbytes[node.name]
            self.users[self.root[i]] |= 1 << i
            for src in node.inputs:
                self.preds[i] |= 1 << index[src]
                self.users[self.root[index[src]]] |= 1 << i
        self.kept = {self.root[index[o]] for o in graph.outputs.values()}
        self.reads = [sorted({self.root[index[s]] for s in node.inputs} | {self.root[i]})
                      for i, node in enumerate(graph)]

    def ready(self, done: int):
        for i in range(self.n):
            if not done >> i & 1 and self.preds[i] & ~done == 0:
                yield i

    def freed(self, done: int, i: int) -> int:
        """Bytes released once node ``i`` has run after the nodes in ``done``."""
        after = done | 1 << i
        out = 0
        for r in self.reads[i]:
            if r not in self.kept and self.users[r] & ~after == 0 and (r == i or done >> r & 1):
                out += self.alloc[r]
        return out


def best_schedule(graph: Graph, *, batch: int = 1, dtype: str = "fp32",
                  max_states: int = EXACT_STATE_LIMIT) -> Schedule:
    """The topological order with the smallest op-by-op peak. Exact dynamic programming
    over the sets of executed ops (a set's live bytes do not depend on the order that
    reached it, so the best peak to reach each set is enough); when more than
    ``max_states`` sets are reachable, a greedy order instead (run the ready op that
    leaves the fewest live bytes, ties to the default order), or the default order if
    that is better; either is exact when its peak meets ``lower_bound``."""
    dag = _Dag(graph, batch, dtype)
    default = op_by_op(graph, batch=batch, dtype=dtype).peak_bytes
    result = _exact(dag, max_states)
    if result is None:
        order, method = _greedy(dag), None
    else:
        order, states = result
        method = f"exact (dynamic programming over {states:,} op sets)"
    names = [dag.names[i] for i in order]
    peak = op_by_op(graph, names, batch=batch, dtype=dtype).peak_bytes
    if peak > default:  # greedy can lose to the default order: never report worse
        names, peak = list(dag.names), default
    if method is None:
        method = _fallback(max_states, peak, _lower_bound(dag))
    return Schedule(names, peak, default, method, names != dag.names)


def _fallback(max_states: int, peak: int, bound: int) -> str:
    many = f"more than {max_states:,} op sets reachable"
    if peak == bound:
        return f"exact ({many}; the greedy order meets the lower bound)"
    return f"greedy ({many}; at most {peak - bound:,} bytes above the best)"


def lower_bound(graph: Graph, *, batch: int = 1, dtype: str = "fp32") -> int:
    """A peak no topological order goes below (see ``_lower_bound``)."""
    return _lower_bound(_Dag(graph, batch, dtype))


def _lower_bound(dag: _Dag) -> int:
    """The largest, over the ops, of what must be live while the op runs in every order:
    its output and scratch, and each buffer written by one of its ancestors that a
    descendant (or the op itself) still reads, or that is a graph output."""
    anc, desc = [0] * dag.n, [0] * dag.n
    for i in range(dag.n):  # the graph's order is topological
        for p in _bits(dag.preds[i]):
            anc[i] |= anc[p] | 1 << p
    for i in reversed(range(dag.n)):
        for p in _bits(dag.preds[i]):
            desc[p] |= desc[i] | 1 << i
    roots = [r for r in range(dag.n) if dag.alloc[r]]
    best = 0
    for v in range(dag.n):
        later = desc[v] | 1 << v
        live = sum(dag.alloc[r] for r in roots if anc[v] >> r & 1 and
                   (r in dag.kept or dag.users[r] & later))
        best = max(best, live + dag.alloc[v] + dag.scratch[v])
    return best


def _bits(mask: int):
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1


def _exact(dag: _Dag, max_states: int):
    layer = {0: (0, 0, None)}      # done-set -> (best peak, live bytes, back-pointer)
    back: list[dict] = []
    states = 1
    for _ in range(dag.n):
        nxt: dict[int, tuple] = {}
        for done, (peak, live, _) in layer.items():
            for i in dag.ready(done):
                after = done | 1 << i
                p = max(peak, live + dag.alloc[i] + dag.scratch[i])
                old = nxt.get(after)
                if old is None or p < old[0]:
                    nxt[after] = (p, live + dag.alloc[i] - dag.freed(done, i), (done, i))
        states += len(nxt)
        if states > max_states:
            return None
        back.append(layer)
        layer = nxt
    (full, (_, _, ptr)), = layer.items()
    order = []
    for level in reversed(back):
        done, i = ptr
        order.append(i)
        ptr = level[done][2]
    return order[::-1], states


def _greedy(dag: _Dag) -> list[int]:
    done, live, order = 0, 0, []
    for _ in range(dag.n):
        i = min(dag.ready(done), key=lambda i: (dag.alloc[i] - dag.freed(done, i), i))
        live += dag.alloc[i] - dag.freed(done, i)
        done |= 1 << i
        order.append(i)
    return order


# ---- fused blocks (eq. 2) with the t-way split (section 5.1) ------------------------------
@dataclass(frozen=True)
class Splittable:
    """An inverted residual block that can run in slices of its expansion:
    ``chain`` (an expanding 1x1 conv or replicate, or a depthwise conv, then per-channel
    ops) -> ``project`` (1x1 conv) -> ``after_project`` (BN, activation) -> optional add
    of ``shortcut``."""

    name: str
    first: str
    output: str
    input: str
    chain: tuple
    project: str
    after_project: tuple
    shortcut: str | None
    hidden: int

    @property
    def reads(self) -> tuple:
        return (self.input,) + ((self.shortcut,) if self.shortcut else ())


def _depthwise(op) -> bool:
    return op.kind == "conv2d" and op.groups == op.in_channels == op.out_channels > 1


def _pointwise(op) -> bool:
    return op.kind == "conv2d" and op.kernel == 1 and op.groups == 1 and op.stride == 1


def _as_splittable(graph: Graph, name: str, nodes: list) -> Splittable | None:
    x = nodes[0].inputs[0] if nodes[0].inputs else None
    if x is None or x in {n.name for n in nodes}:
        return None
    head = nodes[0]
    if not (_pointwise(head.op) or _depthwise(head.op) or head.kind == "replicate"):
        return None
    k = 1
    while k < len(nodes) and (_per_channel(nodes[k]) or _depthwise(nodes[k].op)):
        k += 1
    if k >= len(nodes) or not _pointwise(nodes[k].op):
        return None
    chain, project = nodes[:k], nodes[k]
    k += 1
    after = []
    while k < len(nodes) and _per_channel(nodes[k]):
        after.append(nodes[k])
        k += 1
    shortcut = None
    tail = (after or [project])[-1]
    if k < len(nodes):
        add = nodes[k]
        if add.kind != "add" or k != len(nodes) - 1 or tail.name not in add.inputs:
            return None
        other = add.inputs[1] if add.inputs[0] == tail.name else add.inputs[0]
        if other in {n.name for n in nodes} or (graph[other].shape[0] > tail.shape[0]):
            return None   # the output is accumulated in place: it must be the wider one
        shortcut, tail = other, add
    for prev, node in zip(nodes, nodes[1:]):
        reads = prev.name in node.inputs if node.kind == "add" else node.inputs == (prev.name,)
        if not reads or graph.consumers(prev.name) != [node.name] or \
                prev.name in graph.outputs.values():
            return None
    hidden = head.shape[0]
    return Splittable(name, head.name, tail.name, x, tuple(n.name for n in chain),
                      project.name, tuple(n.name for n in after), shortcut, hidden)


def splittable_blocks(graph: Graph) -> list[Splittable]:
    """The blocks the t-way split applies to (SE blocks, conv shortcuts and sandglass
    blocks do not have the expand -> per-channel -> project shape and are left out)."""
    blocks: dict[str, list] = {}
    for node in graph:
        if node.block and node.kind != "input":
            blocks.setdefault(node.block, []).append(node)
    found = []
    for name, nodes in blocks.items():
        block = _as_splittable(graph, name, nodes)
        if block is not None:
            found.append(block)
    return found


def _slices(n: int, split: int) -> list[int]:
    bounds = [n * k // split for k in range(split + 1)]
    return [b - a for a, b in zip(bounds, bounds[1:]) if b > a]


def block_working_set(graph: Graph, block: Splittable, split: int, *, batch: int = 1,
                      dtype: str = "fp32") -> tuple[int, int]:
    """(peak bytes while the block runs in ``split`` slices, excluding its input, its
    output; bytes of the output). Per slice: each conv or replicate of the chain holds its
    input slice and output slice; the projection accumulates into the output in place;
    BN and activations act in place (the way torch_memory.SlicedRunner runs it)."""
    size = dtype_bytes(dtype) * batch
    out_bytes = numel(graph[block.output].shape) * size
    peak = 0
    for k, width in enumerate(_slices(block.hidden, split)):
        y = out_bytes if k else 0
        prev = 0
        for name in block.chain:
            node = graph[name]
            if _per_channel(node):
                continue
            cur = width * node.shape[1] * node.shape[2] * size
            pad = node.op.scratch([(width, *graph[node.inputs[0]].shape[1:])]) * size
            peak = max(peak, y + prev + pad + cur)
            prev = cur
        peak = max(peak, prev + out_bytes)   # projection: the slice and the output
    return peak - out_bytes if peak >= out_bytes else 0, out_bytes


def fused(graph: Graph, split: int = 1, *, batch: int = 1, dtype: str = "fp32") -> MemoryReport:
    """Peak memory when every splittable block is one operation (eq. 2) computed in
    ``split`` slices of its expansion; the other ops run op by op."""
    if split < 1:
        raise ValueError(f"split must be >= 1, not {split}")
    nbytes = tensor_bytes(graph, batch, dtype)
    blocks = {b.first: b for b in splittable_blocks(graph)}
    inside = {n for b in blocks.values() for n in (*b.chain, b.project, *b.after_project,
                                                   b.output)}
    steps = []   # (name shown, buffer written or None, transient bytes, reads)
    for node in graph:
        if node.name in blocks:
            b = blocks[node.name]
            work, _ = block_working_set(graph, b, split, batch=batch, dtype=dtype)
            steps.append((f"{b.name} (fused, t={split})", b.output, work, b.reads))
        elif node.name not in inside:
            steps.append((node.name, node.name, scratch_bytes(graph, node, batch, dtype),
                           node.inputs))
    report = _simulate(graph, steps, nbytes, "fused")
    report.batch, report.dtype = batch, dtype
    report.details = {"split": split, "fused_blocks": len(blocks)}
    return report


def _simulate(graph: Graph, steps: list, nbytes: dict, model: str) -> MemoryReport:
    root = buffer_roots(graph)
    last: dict[str, int] = {}
    for i, (_, out, _, reads) in enumerate(steps):
        last.setdefault(root[out], i)
        for r in reads:
            last[root[r]] = i
    for out in graph.outputs.values():
        last[root[out]] = len(steps)
    live: dict[str, int] = {}
    peak, peak_at, at_peak, timeline = -1, "", [], []
    for i, (label, out, work, _) in enumerate(steps):
        if root[out] == out:
            live[out] = nbytes[out]
        total = sum(live.values()) + work
        timeline.append((label, total))
        if total > peak:
            peak, peak_at, at_peak = total, label, list(live)
        for r in [r for r in live if last[r] <= i]:
            del live[r]
    return MemoryReport(model, peak, peak_at, at_peak, timeline)


# ---- Table 3: the largest materialised tensor per resolution -----------------------------
PAPER_TABLE3_MOBILENETV2 = {112: (16, 400), 56: (32, 200), 28: (64, 100), 14: (160, 62),
                            7: (320, 32), 1: (1280, 2)}   # channels / Kb, 16-bit, max 400K


def materialised(graph: Graph, *, paper: bool = True) -> list[str]:
    """Tensors that must exist in full when blocks are fused: the input and every tensor
    read by another block. With ``paper`` (Table 3's conventions), a single-conv block
    followed by a block that starts with a depthwise conv is fused into it (the caption's
    "trick" for the first layer) and a conv read only by global pooling is pooled slice by
    slice, so neither output is materialised."""
    names = []
    for node in graph:
        readers = [graph[c] for c in graph.consumers(node.name)]
        crosses = node.kind == "input" or any(r.block != node.block for r in readers)
        if node.name in graph.outputs.values():
            crosses = True
        if crosses and paper and readers and _fusable_end(graph, node, readers):
            continue
        if crosses:
            names.append(node.name)
    return names


def _fusable_end(graph: Graph, node, readers) -> bool:
    if node.kind == "input" or node.block_type != "conv":
        return False
    if all(r.kind == "global_pool" for r in readers):
        return True
    return len(readers) == 1 and _depthwise(readers[0].op)


def by_resolution(graph: Graph, *, batch: int = 1, dtype: str = "fp16",
                  paper: bool = True) -> list[dict]:
    """For each spatial size (largest first): the largest materialised tensor's channels,
    bytes and producer. Flattened tensors count at 1x1."""
    nbytes = tensor_bytes(graph, batch, dtype)
    rows: dict[int, dict] = {}
    for name in materialised(graph, paper=paper):
        shape = graph[name].shape
        res = shape[1] if len(shape) == 3 else 1
        row = rows.get(res)
        if row is None or nbytes[name] > row["bytes"]:
            rows[res] = {"resolution": res, "channels": shape[0], "bytes": nbytes[name],
                         "tensor": name}
    return [rows[r] for r in sorted(rows, reverse=True)]
