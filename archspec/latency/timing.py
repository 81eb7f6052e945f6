"""Timing on onnxruntime: a session of an IR graph with ``archspec bench``'s options
(profiled or not; a feed of the profile's batch), a timed step as ``archspec bench``
runs it, wall-clock timing of repeated runs, the profiler's trace, and the nodes
onnxruntime runs after optimising."""
from __future__ import annotations

import time


def session(graph, threads: int, *, profile: bool, seed: int = 0, batch: int = 1,
            readers: dict | None = None):
    """An onnxruntime session for ``graph`` with ``archspec bench``'s options, and a feed
    of ``batch`` images (the ONNX backend writes a dynamic batch axis). ``readers``: a
    dict to fill with :func:`reorder_readers` of the session's optimised graph."""
    import numpy as np

    from ..backends import get_backend
    from ..bench import ort_session, ort_session_options

    model = get_backend("onnx").build(graph, seed=seed, check=False)
    opts = ort_session_options(threads, profile=profile)
    if readers is None:
        sess = ort_session(model.serialize(), opts)
    else:
        sess, proto = _with_optimised(model.serialize(), opts, ort_session)
        readers.update(reorder_readers(proto))
    x = np.random.default_rng(seed).standard_normal((batch, *graph.input_shape))
    return sess, {sess.get_inputs()[0].name: x.astype(np.float32)}


def _with_optimised(model: bytes, opts, make):
    """(``make(model, opts)``, the optimised ONNX graph onnxruntime saved while making the
    session: the nodes it runs)."""
    import os
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        sess = make(model, opts)
        proto = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    return sess, proto


def reorder_readers(proto) -> dict[str, str]:
    """Layout reorder node -> the node that reads its output (the first in the graph's
    order; followed through a chain of reorders), for every reorder whose output a node
    reads, in an optimised ONNX model: the kernel a reorder works for
    (:func:`.attribution.attribute`)."""
    readers: dict[str, list[str]] = {}
    for n in proto.graph.node:
        for t in n.input:
            readers.setdefault(t, []).append(n.name)
    reorders = {n.name: n for n in proto.graph.node if n.op_type.startswith("Reorder")}
    out = {}
    for name, n in reorders.items():
        seen = {name}
        reader = (readers.get(n.output[0]) or [None])[0]
        while reader in reorders and reader not in seen:   # a reorder of a reorder
            seen.add(reader)
            reader = (readers.get(reorders[reader].output[0]) or [None])[0]
        if reader is not None and reader not in reorders:
            out[name] = reader
    return out


def wall_step(graph, threads: int, batch: int = 1, backend: str = "onnxruntime"):
    """One unprofiled run of ``graph`` on ``batch`` images as ``archspec bench --backend
    backend`` times it (a fresh session or model)."""
    from ..bench import Settings, make_step

    if backend == "torch":
        from .torch_timing import pin_threads

        pin_threads(threads)
    return make_step(graph, Settings(backend, threads, batch, (), False, 1, 0, 0))


def time_runs(step, n: int, *, clock=time.perf_counter, unit: float = 1e6) -> list[float]:
    """The times of ``n`` calls of ``step``, in 1/``unit`` seconds (default us)."""
    from ..bench import flush_denormals

    out = []
    with flush_denormals():
        for _ in range(n):
            t = clock()
            step()
            out.append((clock() - t) * unit)
    return out


def profile_events(sess, feed, n: int) -> list[dict]:
    """Run a profiling session ``n`` times; its trace (the trace file removed)."""
    import json
    import os

    from ..bench import flush_denormals

    with flush_denormals():
        for _ in range(n):
            sess.run(None, feed)
    path = sess.end_profiling()
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.unlink(path)


def optimized_nodes(graph, threads: int = 1) -> list[tuple[str, str, str]]:
    """(domain, op type, name) of every node onnxruntime runs for ``graph`` after its
    optimisations: what the fusion rules are checked against (tests)."""
    import onnxruntime as ort

    from ..backends import get_backend
    from ..bench import ort_session_options

    model = get_backend("onnx").build(graph, seed=0, check=False)
    _, proto = _with_optimised(model.serialize(), ort_session_options(threads),
                               lambda m, o: ort.InferenceSession(
                                   m, o, providers=["CPUExecutionProvider"]))
    return [(n.domain, n.op_type, n.name) for n in proto.graph.node]
