"""Lowerings of the partial add (MobileNeXt / ReXNet shortcut: ``b`` added into the first
channels of ``a``), measured side by side in onnxruntime (1 thread, the shipped profile's
setting) and torch eager CPU (1 thread).

Two levels, each in interleaved rounds (every candidate once per round, a fresh
onnxruntime session per candidate per round), medians, ratios:

- the block tail: input -> dw conv -> x -> dw conv -> a; a (+) x[:, :cb] -> dw conv, on
  the shapes MobileNeXt has at alpha 0.5, against Slice + Add + Concat (the earlier
  lowering), with the full add (alpha 1) as reference; in torch the op alone;
- whole MobileNeXt at alpha 1 and 0.5, its partial adds lowered by each candidate
  ("shipped": the backend's own lowering), against alpha 1.

Usage: .venv/bin/python benchmarks/bench_partial_add.py [--rounds 7] [--only onnx|torch]
       [--whole]
The machine may be shared: the load average is printed with the figures; rely on ratios
(each row: the median of the rounds' medians, and the fastest round's).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archspec.backends import get_backend, onnx_lower, torch_lower  # noqa: E402
from archspec.bench import ort_session_options  # noqa: E402
from archspec.spec import load  # noqa: E402

ALPHAS = (1.0, 0.5)


# ---- ONNX candidates: (builder, a, x_full, x_cut, ca, cb, name) -> output tensor ------------
def _ints(b, name, values):
    return b.init(name, np.array(values, np.int64))


def onnx_slice_concat(b, a, x_full, x_cut, ca, cb, n):
    head = b.node("Slice", [a, _ints(b, f"{n}.s0", [0]), _ints(b, f"{n}.s1", [cb]),
                            _ints(b, f"{n}.ax", [1])], f"{n}.head", f"{n}.head")
    total = b.node("Add", [head, x_cut], f"{n}.sum", f"{n}.sum")
    tail = b.node("Slice", [a, _ints(b, f"{n}.t0", [cb]), _ints(b, f"{n}.t1", [ca]),
                            _ints(b, f"{n}.ax2", [1])], f"{n}.tail", f"{n}.tail")
    return b.node("Concat", [total, tail], n, n, axis=1)


def onnx_split_concat(b, a, x_full, x_cut, ca, cb, n):
    parts = helper.make_node("Split", [a, _ints(b, f"{n}.sizes", [cb, ca - cb])],
                             [f"{n}.head", f"{n}.tail"], name=f"{n}.split", axis=1)
    b.nodes.append(parts)
    total = b.node("Add", [f"{n}.head", x_cut], f"{n}.sum", f"{n}.sum")
    return b.node("Concat", [total, f"{n}.tail"], n, n, axis=1)


def onnx_pad_add(b, a, x_full, x_cut, ca, cb, n):
    pads = _ints(b, f"{n}.pads", [0, 0, 0, 0, 0, ca - cb, 0, 0])
    padded = b.node("Pad", [x_cut, pads], f"{n}.pad", f"{n}.pad")
    return b.node("Add", [a, padded], n, n)


def onnx_scatter_add(b, a, x_full, x_cut, ca, cb, n):
    idx = _ints(b, f"{n}.idx", np.arange(cb).reshape(1, cb, 1, 1))
    shape = b.node("Shape", [x_cut], f"{n}.shape", f"{n}.shape")
    full = b.node("Expand", [idx, shape], f"{n}.indices", f"{n}.indices")
    return b.node("ScatterElements", [a, full, x_cut], n, n, axis=1, reduction="add")


def _mask(b, n, ca, cb, shape):
    return b.init(f"{n}.mask", (np.arange(ca) < cb).astype(np.float32).reshape(shape))


def onnx_mul_mask(b, a, x_full, x_cut, ca, cb, n):
    masked = b.node("Mul", [x_full, _mask(b, n, ca, cb, (1, ca, 1, 1))], f"{n}.m", f"{n}.m")
    return b.node("Add", [a, masked], n, n)


def onnx_dw_mask(b, a, x_full, x_cut, ca, cb, n):
    masked = b.node("Conv", [x_full, _mask(b, n, ca, cb, (ca, 1, 1, 1))], f"{n}.m", f"{n}.m",
                    group=ca, kernel_shape=[1, 1])
    return b.node("Add", [a, masked], n, n)


ONNX_CANDIDATES = {"slice_concat": onnx_slice_concat, "split_concat": onnx_split_concat,
                   "pad_add": onnx_pad_add, "scatter_add": onnx_scatter_add,
                   "mul_mask(x)": onnx_mul_mask, "dwconv_mask(x)": onnx_dw_mask}
LOOK_THROUGH = {"mul_mask(x)", "dwconv_mask(x)"}   # read x itself, not the identity slice


# ---- torch candidates: (a, b) -> a with b added into its first channels ---------------------
def torch_cat(a, b):
    cb = b.shape[1]
    return torch.cat([a[:, :cb] + b, a[:, cb:]], 1)


def torch_clone_add(a, b):
    y = a.clone()
    y[:, :b.shape[1]].add_(b)
    return y


def torch_inplace(a, b):
    """Writes into ``a`` (timed on the same ``a`` again and again: values drift, not time)."""
    a[:, :b.shape[1]].add_(b)
    return a


def torch_pad_add(a, b):
    return a + F.pad(b, (0, 0, 0, 0, 0, a.shape[1] - b.shape[1]))


def torch_slice_scatter(a, b):
    cb = b.shape[1]
    return torch.slice_scatter(a, a[:, :cb] + b, 1, 0, cb)


def torch_index_add(a, b):
    return a.index_add(1, torch.arange(b.shape[1]), b)


TORCH_CANDIDATES = {"cat": torch_cat, "clone_add": torch_clone_add,
                    "inplace(a)": torch_inplace, "pad_add": torch_pad_add,
                    "slice_scatter": torch_slice_scatter, "index_add": torch_index_add}


# ---- shapes ---------------------------------------------------------------------------------
def mobilenext(alpha: float):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(f"extends: {ROOT / 'archspec/specs/mobilenext.yaml'}\n"
                f"name: mobilenext_alpha\ndefaults: {{alpha: {alpha}}}\n")
    try:
        return load(f.name).compile()
    finally:
        os.unlink(f.name)


def partial_add_shapes(graph) -> list[tuple[int, int, int, int]]:
    """(ca, cb, h, w) of every partial add, once each, in graph order."""
    seen: dict = {}
    for node in graph:
        if node.kind == "add" and node.op.partial:
            ca, h, w = graph[node.inputs[0]].shape
            seen.setdefault((ca, graph[node.inputs[1]].shape[0], h, w), None)
    return list(seen)


# ---- ONNX models ----------------------------------------------------------------------------
def _dw(b, x, c, n, rng):
    w = b.init(f"{n}.w", rng.standard_normal((c, 1, 3, 3)).astype(np.float32) * 0.3)
    return b.node("Conv", [x, w], n, n, group=c, kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def tail_model(cand: str, ca: int, cb: int, h: int, w: int) -> bytes:
    """input -> dw conv -> x (blocked, as a block's input is) -> dw conv -> a;
    a (+) x[:, :cb] -> dw conv (alpha 1: cand 'full'). The look-through candidates read
    x and have no slice."""
    rng = np.random.default_rng(0)
    b = onnx_lower._Builder(np.float32)
    x = _dw(b, "input", ca, "x", rng)
    a = _dw(b, x, ca, "pre", rng)
    if cand == "full":
        y = b.node("Add", [a, x], "add", "add")
    else:
        cut = None if cand in LOOK_THROUGH else b.node(
            "Slice", [x, _ints(b, "c0", [0]), _ints(b, "c1", [cb]), _ints(b, "cax", [1])],
            "identity", "identity")
        y = ONNX_CANDIDATES[cand](b, a, x, cut, ca, cb, "add")
    out = _dw(b, y, ca, "post", rng)
    g = helper.make_graph(b.nodes, "tail",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["batch", ca, h, w])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(v, k) for k, v in b.inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def _onnx_handler(cand: str):
    def handler(lw, node):
        graph = lw.graph
        a, x_cut = lw.args(node)
        ca, cb = graph[node.inputs[0]].shape[0], graph[node.inputs[1]].shape[0]
        if ca == cb:
            return lw.b.node("Add", [a, x_cut], lw.name_of(node.name), node.name)
        x_full = None
        src = graph[node.inputs[1]]
        if src.kind == "slice" and graph[src.inputs[0]].shape[0] == ca:
            x_full = lw.tensor[src.inputs[0]]
        if cand in LOOK_THROUGH and x_full is None:
            raise ValueError(f"{cand}: {node.name} adds no slice of a {ca}-channel tensor")
        return ONNX_CANDIDATES[cand](lw.b, a, x_full, x_cut, ca, cb, lw.name_of(node.name))
    return handler


def whole_onnx(graph, cand: str) -> bytes:
    table = onnx_lower.ONNX_LOWER._handlers
    saved = table["add"]
    if cand != "shipped":
        table["add"] = _onnx_handler(cand)
    try:
        return get_backend("onnx").build(graph, seed=0, check=False).serialize()
    finally:
        table["add"] = saved


def ort_ms(model: bytes, shape, repeats: int) -> float:
    """Median ms of ``repeats`` runs in a fresh 1-thread session (after 3 warm-up runs)."""
    sess = ort.InferenceSession(model, ort_session_options(1),
                                providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name:
            np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def ort_output(model: bytes, shape):
    sess = ort.InferenceSession(model, ort_session_options(1),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def ort_ops(model: bytes) -> str:
    """The op types onnxruntime runs for ``model`` after its optimisations (counts)."""
    from collections import Counter
    opts = ort_session_options(1)
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        proto = onnx.load(opts.optimized_model_filepath)
    c = Counter(n.op_type for n in proto.graph.node if n.op_type != "Conv")
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


# ---- torch models ---------------------------------------------------------------------------
def whole_torch(graph, fn):
    table = torch_lower.TORCH._handlers
    saved = table["add"]

    def handler(low, node, args):
        if graph[node.inputs[0]].shape[0] == graph[node.inputs[1]].shape[0] or fn is None:
            return saved(low, node, args)
        return low.fxg.call_function(fn, tuple(args), name=node.name)

    table["add"] = handler
    try:
        return get_backend("torch").build(graph, seed=0).eval()
    finally:
        table["add"] = saved


def torch_ms(fn, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


# ---- runs -----------------------------------------------------------------------------------
def rounds(named: dict, n: int) -> dict[str, list[float]]:
    """Each callable's figure in ``n`` interleaved rounds (rotated start each round)."""
    keys, got = list(named), {k: [] for k in named}
    for r in range(n):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            got[k].append(named[k]())
    return got


def show(title: str, got: dict[str, list[float]], ref: str):
    """Median of the rounds and the fastest round (the quiet-machine figure), with ratios."""
    med = {k: statistics.median(v) for k, v in got.items()}
    best = {k: min(v) for k, v in got.items()}
    print(f"\n{title}  (load {os.getloadavg()[0]:.2f}; median of rounds | fastest round)")
    for k in got:
        print(f"  {k:<24} {med[k]:8.3f} ms  x{med[k] / med[ref]:.3f}   |"
              f" {best[k]:8.3f} ms  x{best[k] / best[ref]:.3f}")


def onnx_tail(ca: int, cb: int, h: int, w: int, n: int):
    models = {"full (alpha 1)": tail_model("full", ca, cb, h, w)}
    models.update({c: tail_model(c, ca, cb, h, w) for c in ONNX_CANDIDATES})
    ref = ort_output(models["slice_concat"], (ca, h, w))
    for c, m in models.items():
        if c != "full (alpha 1)":
            assert np.allclose(ort_output(m, (ca, h, w)), ref, atol=1e-4), c
    ms = rounds({c: (lambda m=m: ort_ms(m, (ca, h, w), 50)) for c, m in models.items()}, n)
    show(f"ORT block tail {ca}x{h}x{w}, add {cb} channels", ms, "slice_concat")


def bench_onnx(n: int, tails: bool = True):
    for ca, cb, h, w in partial_add_shapes(mobilenext(0.5)) if tails else ():
        onnx_tail(ca, cb, h, w, n)
    graphs = {a: mobilenext(a) for a in ALPHAS}
    shape = graphs[1.0].input_shape
    models = {"alpha 1": whole_onnx(graphs[1.0], "shipped"),
              "alpha 0.5 shipped": whole_onnx(graphs[0.5], "shipped")}
    models.update({f"alpha 0.5 {c}": whole_onnx(graphs[0.5], c) for c in ONNX_CANDIDATES})
    ref = ort_output(models["alpha 0.5 slice_concat"], shape)
    for c, m in models.items():
        if c.startswith("alpha 0.5"):
            assert np.allclose(ort_output(m, shape), ref, atol=1e-3), c
        print(f"  {c:<28} runs: {ort_ops(m)}")
    ms = rounds({c: (lambda m=m: ort_ms(m, shape, 20)) for c, m in models.items()}, n)
    show("ORT whole MobileNeXt", ms, "alpha 1")


def torch_tail(ca: int, cb: int, h: int, w: int, n: int):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, ca, h, w, generator=gen), torch.randn(1, cb, h, w, generator=gen)
    x = torch.cat([b, torch.randn(1, ca - cb, h, w, generator=gen)], 1)
    mask = (torch.arange(ca) < cb).float().view(1, -1, 1, 1)
    for name, fn in TORCH_CANDIDATES.items():
        assert torch.equal(fn(a.clone(), b), torch_cat(a, b)), name
    assert torch.equal(torch.addcmul(a, x, mask), torch_cat(a, b))
    calls = {"full add (alpha 1)": lambda: a + x}
    calls.update({k: (lambda fn=fn: fn(a, b)) for k, fn in TORCH_CANDIDATES.items()})
    calls["clone only (a.clone())"] = a.clone
    calls["addcmul(a, x, mask)"] = lambda: torch.addcmul(a, x, mask)
    calls["shipped"] = lambda: torch_lower.partial_add(a, b)
    ms = rounds({k: (lambda f=f: torch_ms(f, 200)) for k, f in calls.items()}, n)
    show(f"torch add {ca}x{h}x{w} (+{cb})", ms, "cat")


def bench_torch(n: int, tails: bool = True):
    torch.set_num_threads(1)
    for ca, cb, h, w in partial_add_shapes(mobilenext(0.5)) if tails else ():
        torch_tail(ca, cb, h, w, n)
    graphs = {a: mobilenext(a) for a in ALPHAS}
    x = torch.randn(1, *graphs[1.0].input_shape)
    models = {"alpha 1": whole_torch(graphs[1.0], None),
              "alpha 0.5 shipped": whole_torch(graphs[0.5], None)}
    models.update({f"alpha 0.5 {k}": whole_torch(graphs[0.5], fn)
                   for k, fn in TORCH_CANDIDATES.items()})
    with torch.inference_mode():
        ref = models["alpha 0.5 cat"](x)
        for k, m in models.items():
            if k.startswith("alpha 0.5"):
                assert torch.allclose(m(x), ref, atol=1e-4), k
    ms = rounds({k: (lambda m=m: torch_ms(lambda: m(x), 10)) for k, m in models.items()}, n)
    show("torch eager whole MobileNeXt", ms, "alpha 1")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", choices=("onnx", "torch"))
    p.add_argument("--whole", action="store_true", help="whole networks only (no tails)")
    args = p.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; onnxruntime "
          f"{ort.__version__}, torch {torch.__version__}; cpus {os.cpu_count()}")
    if args.only != "torch":
        bench_onnx(args.rounds, not args.whole)
    if args.only != "onnx":
        bench_torch(args.rounds, not args.whole)


if __name__ == "__main__":
    main()
