"""Calibration: measure kernels on the target backend and fit the latency model.

Sampling plan. A kernel's time depends on its neighbours (the layout its input arrives
in, what is in cache), so kernels are measured *in context*: ``networks`` random
MobileNet-like IR graphs are drawn (seeded) from the motifs the blocks compile to --
inverted residuals with expansion t in {1..6}, depthwise k in {3,5,7}, stride 1/2,
optional squeeze-excite with relu/hsigmoid/sigmoid gates, full and partial residual adds,
sandglass blocks, plain and grouped convs, channel replication, and MobileNetV2 and
MobileNetV3 heads -- with activations drawn from relu/relu6/hswish/swish, resolutions
from 64 to 256, a stride-1 stem in 15% of them (CIFAR-style: large maps) and channel
counts rounded to multiples of 16, 8 or not at all (which
decides the NCHWc layout). These are not the shipped specs: validation
(``benchmarks/latency_check.py``) runs on those and on their random variants.

Measurement. Each network is built with the ONNX backend and run by onnxruntime with
the session options of ``archspec bench`` plus the profiler; every node's time is
attributed to the kernel of the IR node it computes (``attribute``), per run; a
kernel's sample is its median over the repeats. The same network is also timed without
the profiler (``archspec.bench.make_step``); wall median minus the kernels' sum is the
per-model overhead sample. Repeats are split into ``rounds`` passes over all networks
(interleaved), so slow spells of a shared machine hit every network a little; the
spread between rounds is recorded in the profile. The measurements keep the IR of every
network measured (:mod:`.raw`), so a refit never rebuilds them from the current specs.

Fitting (:func:`build`) records its environment (:func:`fit_environment`) and the
measurements' digest in the profile.
"""
from __future__ import annotations

import datetime as _dt
import statistics
import time

from .check import runs_per_round
from .kernels import kernels as fuse
from .networks import (VARIANT_SEED, calibration_graphs, random_network,  # noqa: F401
                       variant_networks)
from .raw import RAW_SCHEMA, digest, load_raw, networks_record, save_raw  # noqa: F401

def ir_name(node_name: str, known) -> str | None:
    """The IR node an onnxruntime node computes, from its name (``<ir>_nchwc``,
    ``<ir>/QuickGeluFusion/``, ``<ir>.head`` ...); None for reorders and unknowns."""
    name = node_name.removesuffix("_kernel_time").split("/")[0].removesuffix("_nchwc")
    if name not in known and "_" in name:   # ``<bn>_bn_nchwc``: a BN run as a conv
        name = name.split("_")[0]
    while name:
        if name in known:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def attribute(events: list[dict], owner: dict[str, int], warmup: int,
              value=lambda e: e["dur"]) -> list[dict]:
    """Per timed run: kernel index -> microseconds. ``events``: the profiler's trace;
    ``owner``: IR node -> kernel index. A layout reorder is charged to the next kernel
    that runs (or the last one at the end of a run); another node without an IR name (a
    helper onnxruntime made, e.g. hswish split into HardSigmoid and Mul) to the kernel
    before it. ``value``: what a node contributes (its duration; 1 to count nodes)."""
    runs = sorted((e for e in events if e.get("cat") == "Session"
                   and e.get("name") == "model_run"), key=lambda e: e["ts"])
    nodes = sorted((e for e in events if e.get("cat") == "Node"
                    and e.get("name", "").endswith("_kernel_time")), key=lambda e: e["ts"])
    out = []
    j = 0
    for r in runs:
        end = r["ts"] + r["dur"]
        times: dict[int, float] = {}
        pending = 0.0
        last = None
        while j < len(nodes) and nodes[j]["ts"] <= end:
            e = nodes[j]
            j += 1
            if e["ts"] < r["ts"]:
                continue
            ir = ir_name(e["name"], owner)
            if ir is None and last is not None and not e["name"].startswith("Reorder"):
                times[last] += value(e)   # an unnamed helper (hswish as hsigmoid * x)
                continue
            if ir is None:
                pending += value(e)
                continue
            k = owner[ir]
            times[k] = times.get(k, 0.0) + value(e) + pending
            pending, last = 0.0, k
        if pending and last is not None:
            times[last] += pending
        out.append(times)
    return out[warmup:]


def profiler_cost(medians, counts, walls) -> float:
    """The profiler's own cost per node (us), which inflates profiled kernels: the median
    over networks of (profiled kernels' sum - unprofiled wall time) / profiled nodes."""
    per = []
    for med, cnt, w in zip(medians, counts, walls):
        nodes = sum(cnt.values())
        if nodes and w:
            per.append((sum(med) - w) / nodes)
    return max(0.0, statistics.median(per)) if per else 0.0


# ---- measurement ---------------------------------------------------------------------------
def nchwc_block() -> int:
    """onnxruntime's NCHWc block size on this CPU: 16 with AVX-512, 8 with AVX2."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return 8
    if " avx512f" in flags:
        return 16
    return 8 if " avx2" in flags else 0


def session(graph, threads: int, *, profile: bool, seed: int = 0):
    """An onnxruntime session for ``graph`` with ``archspec bench``'s options, and a feed."""
    import numpy as np
    import onnxruntime as ort

    from ..backends import get_backend
    from ..bench import ort_session_options

    model = get_backend("onnx").build(graph, seed=seed, check=False)
    opts = ort_session_options(threads, profile=profile)
    sess = ort.InferenceSession(model.serialize(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal((1, *graph["input"].shape))
    return sess, {sess.get_inputs()[0].name: x.astype(np.float32)}


def _wall_step(graph, threads: int):
    from ..bench import Settings, make_step

    return make_step(graph, Settings("onnxruntime", threads, 1, (), False, 1, 0, 0))


def _time(step, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _profile_events(sess, feed, n: int) -> list[dict]:
    import json
    import os

    for _ in range(n):
        sess.run(None, feed)
    path = sess.end_profiling()
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.unlink(path)


L2_DEFAULT = 1024 * 1024
def calibrate(*, threads: int = 1, networks: int = 120, variants: int = 0,
              repeats: int = 12, rounds: int = 4, warmup: int = 2, seed: int = 0,
              min_round_ms: float = 20.0, progress=lambda n=1: None) -> dict:
    """Measure the calibration networks (``networks`` random motif networks and
    ``variants`` random variants of the shipped specs); returns the raw samples (see
    :func:`build`)."""
    block = nchwc_block()
    t0 = time.perf_counter()
    graphs = calibration_graphs(networks, variants, seed)
    fused = [fuse(g, block) for g in graphs]
    per_round = max(1, repeats // rounds)
    # net -> kernel -> per-round medians of its profiled time (us)
    kernel_rounds = [[[] for _ in ks] for ks in fused]
    round_medians = [[] for _ in graphs]                  # net -> per-round wall medians
    counts = [{} for _ in graphs]                         # net -> kernel -> profiled nodes
    for _ in range(rounds):
        for i, (g, ks) in enumerate(zip(graphs, fused)):
            owner = {n: j for j, k in enumerate(ks) for n in k.nodes}
            # unprofiled wall time first, measured as `latency --check` measures: a fresh
            # session, warm-up, then at least per_round runs and min_round_ms
            step = _wall_step(g, threads)
            warm = _time(step, warmup)
            n = runs_per_round([w / 1000.0 for w in warm], per_round, min_round_ms)
            round_medians[i].append(statistics.median(_time(step, n)))
            sess, feed = session(g, threads, profile=True, seed=seed)
            events = _profile_events(sess, feed, warmup + n)
            runs = attribute(events, owner, warmup)
            for j in range(len(ks)):
                kernel_rounds[i][j].append(statistics.median(r.get(j, 0.0) for r in runs))
            counts[i] = attribute(events, owner, warmup, value=lambda e: 1)[0]
            progress(1)
    # Other tenants of a shared machine only ever slow a run down, and a slow spell lasts
    # longer than a round: the quiet-machine time is the *fastest* round's median (each
    # round a fresh session and a median over its runs, so one lucky run cannot win).
    walls = [min(m) for m in round_medians]
    medians = [[min(r) for r in net] for net in kernel_rounds]
    per_node = profiler_cost(medians, counts, walls)
    samples, overhead = [], []
    for i, ks in enumerate(fused):
        total = 0.0
        for j, k in enumerate(ks):
            us = max(medians[i][j] - per_node * counts[i].get(j, 0), 0.2 * medians[i][j])
            total += us
            samples.append({"type": k.type, "features": k.features(), "us": round(us, 4),
                            "net": i})
        overhead.append((len(ks), walls[i] - total))
    spreads = [(max(m) - min(m)) / statistics.median(m)
               for m in round_medians if len(m) > 1]
    from ..bench import machine, versions

    return {"samples": samples, "overhead": overhead, "nchwc_block": block,
            "networks_ir": networks_record(graphs, "measured"),
            "machine": machine("onnxruntime"), "versions": versions(),
            "l2_bytes": l2_bytes(), "min_round_ms": min_round_ms,
            "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "walls": walls, "estimator": "fastest round median",
            "wall_rounds": [[round(x, 2) for x in m] for m in round_medians],
            "profiler_us_per_node": round(per_node, 3),
            "networks": networks, "variants": variants, "repeats": per_round * rounds,
            "rounds": rounds,
            "warmup": warmup, "seed": seed, "threads": threads,
            "seconds": round(time.perf_counter() - t0, 1),
            "round_spread_median": round(statistics.median(spreads), 4) if spreads else None,
            "round_spread_p90": round(sorted(spreads)[int(0.9 * (len(spreads) - 1))], 4)
            if spreads else None}


def l2_bytes() -> int:
    """The per-core L2 cache size (Linux sysfs), or a common default."""
    import glob

    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(f"{d}/level") as f:
                level = f.read().strip()
            with open(f"{d}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        if level == "2":
            mult = {"K": 1024, "M": 1024 ** 2}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * mult
    return L2_DEFAULT


FIT_LIBRARIES = ("archspec", "scikit-learn", "numpy", "scipy")


def _blas() -> list[str]:
    """The BLAS libraries loaded (numpy's, scipy's), with the kernel set each picked for
    this CPU: e.g. OpenBLAS's SkylakeX (AVX-512) and Haswell (AVX2) kernels round
    differently, and the trees then split differently."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["unknown (no threadpoolctl)"]
    return sorted({f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                   for i in threadpool_info() if i.get("user_api") == "blas"})


def fit_environment() -> dict:
    """What decides a fit's bits, besides the measurements: the fitting libraries'
    versions (scikit-learn's trees; numpy's least squares; scipy under scikit-learn), the
    BLAS kernels they run (:func:`_blas`), the Python and the CPU. Equal environments
    refit a raw file to the same profile, bit for bit."""
    import platform

    import numpy  # noqa: F401  (loads its BLAS, so that _blas sees it)

    from ..bench import machine, versions

    return {**versions(FIT_LIBRARIES), "python": platform.python_version(),
            "cpu": machine()["cpu"], "blas": _blas()}


def _one_blas_thread():
    """BLAS limited to one thread while fitting (a thread count must not change bits)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def build(raw: dict, n_trees: int = 200, tree_seed: int = 0):
    """The :class:`~archspec.latency.profile.Profile` fitted to :func:`calibrate`'s samples
    (or :func:`load_raw`'s). It records the setup the measurements were taken on (from
    the raw data; empty when an older file lacks it -- a refit elsewhere must not claim
    its own), the environment of the fit (:func:`fit_environment`) and its link to the
    measurements (seeds, counts, :func:`~archspec.latency.raw.digest`)."""
    from .model import HINGES_L2, fit
    from .profile import Profile

    with _one_blas_thread():
        model = fit(raw["samples"], raw["overhead"], raw.get("walls"),
                    hinges=tuple(h * raw.get("l2_bytes", L2_DEFAULT) // 4 for h in HINGES_L2),
                    n_trees=n_trees, tree_seed=tree_seed)
    settings = {"threads": raw["threads"], "batch": 1, "nchwc_block": raw["nchwc_block"],
                "l2_bytes": raw.get("l2_bytes", L2_DEFAULT),
                "graph_optimization": "all", "execution_mode": "sequential",
                "inter_op_threads": 1, "dtype": "fp32"}
    calib = {k: raw.get(k, 0) for k in ("networks", "variants", "repeats", "rounds", "warmup",
                                        "seed", "seconds", "round_spread_median",
                                        "round_spread_p90", "profiler_us_per_node",
                                        "min_round_ms", "measured")}
    calib["kernel_samples"] = len(raw["samples"])
    calib["raw_sha256"] = digest(raw)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Profile("onnxruntime", settings, raw.get("machine") or {},
                   raw.get("versions") or {}, model, calib, created, fit_environment())


def optimized_nodes(graph, threads: int = 1) -> list[tuple[str, str, str]]:
    """(domain, op type, name) of every node onnxruntime runs for ``graph`` after its
    optimisations: what the fusion rules are checked against (tests)."""
    import os
    import tempfile

    import onnx
    import onnxruntime as ort

    from ..backends import get_backend
    from ..bench import ort_session_options

    model = get_backend("onnx").build(graph, seed=0, check=False)
    opts = ort_session_options(threads)
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(model.serialize(), opts, providers=["CPUExecutionProvider"])
        proto = onnx.load(opts.optimized_model_filepath)
    return [(n.domain, n.op_type, n.name) for n in proto.graph.node]
