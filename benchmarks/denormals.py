"""Denormal floats in random-weight networks, timed side by side with and without
archspec's flush (archspec.bench.flush_denormals), in one process on one thread.

    python benchmarks/denormals.py [--backend onnxruntime|torch] [SPEC ...]

Prints, per kernel and per network, the median time per run with denormals as the CPU
handles them and with them flushed to zero, and their ratio (docs/latency.md,
"Denormals"). The sigmoid kernel is onnxruntime's Sigmoid + Mul (swish) on a
1024x7x7 map of N(0, s^2) values: at s ~ 1e-19 its intermediates are denormal. The
networks are archspec's random-weight models as `archspec bench` builds them.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import os
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec import bench  # noqa: E402


def _unflushed():
    """The opposite of bench.flush_denormals: FTZ and DAZ cleared on this thread,
    whatever the process had (the sessions here run on this thread: one thread)."""
    libc = ctypes.CDLL(None)
    buf = (ctypes.c_char * 64)()
    libc.fegetenv(buf)
    mx = struct.unpack_from("<I", buf, 28)[0]
    struct.pack_into("<I", buf, 28, mx & ~0x8040)
    libc.fesetenv(buf)


def _median_ms(step, runs: int) -> float:
    for _ in range(3):
        step()
    t = []
    for _ in range(runs):
        a = time.perf_counter()
        step()
        t.append(time.perf_counter() - a)
    return statistics.median(t) * 1000.0


def _swish_step(scale: float):
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shape = [1, 1024, 7, 7]
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    g = helper.make_graph(nodes, "swish", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                         shape)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), bench.ort_session_options(1),
                                providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).standard_normal(shape) * scale).astype(np.float32)
    return lambda: sess.run(None, {"x": x})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*", default=["rexnet_plain", "mobilenetv2",
                                                 "mobilenetv3_large", "efficientnet_b0"])
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args(argv)
    if bench.denormals_note() is None:
        print("archspec flushes nothing on this platform (x86-64 Linux with glibc only)")
        return 0
    import archspec
    from archspec.latency.timing import wall_step

    print(f"# {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}, "
          f"{bench.machine()['cpu']}, load {os.getloadavg()[0]:.2f}, backend "
          f"{args.backend}, 1 thread, {args.runs} runs per median")
    print(f"{'what':44s} {'as is ms':>10s} {'flushed ms':>11s} {'ratio':>7s}")

    def row(label, make):
        _unflushed()
        a = _median_ms(make(), args.runs)
        with bench.flush_denormals():
            b = _median_ms(make(), args.runs)
        print(f"{label:44s} {a:10.3f} {b:11.3f} {a / b:7.2f}", flush=True)

    if args.backend == "onnxruntime":
        for scale in (1.0, 1e-19):
            row(f"swish 1024x7x7, values ~{scale:g}", lambda s=scale: _swish_step(s))
    for name in args.specs:
        graph = archspec.load(name).compile()
        row(f"{name} ({args.backend})", lambda g=graph: wall_step(g, 1, 1, args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
