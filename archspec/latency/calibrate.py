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
import random
import statistics
import time

from ..ir.graph import Graph
from ..ir.ops import (Activation, Add, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool,
                      Input, Linear, Mul, Replicate)
from .check import runs_per_round
from .kernels import kernels as fuse
from .raw import RAW_SCHEMA, digest, load_raw, networks_record, save_raw  # noqa: F401

ACTS = ("relu", "relu6", "hswish", "swish")


# ---- sampling plan: random networks --------------------------------------------------------
class _Net:
    def __init__(self, name: str, res: int, rng: random.Random):
        self.g = Graph(name, {"resolution": res, "channels": 3})
        self.rng = rng
        self.x = self.g.add("input", Input((3, res, res)))
        self.i = 0
        self.round = rng.choice((16, 16, 8, 8, 1))

    def ch(self, c: float) -> int:
        r = self.round if self.rng.random() < 0.8 else self.rng.choice((1, 8, 16))
        return max(r, int(round(c / r)) * r) if r > 1 else max(4, int(round(c)))

    def conv(self, x, cout, k=1, s=1, groups=1, act=None, bn=True, bias=False, block=""):
        g = self.g
        cin = g[x].shape[0]
        n = f"{block}.c{self.i}"
        self.i += 1
        y = g.add(f"{n}.conv", Conv2d(cin, cout, k, s, groups, 1, bias), [x], block=block)
        if bn:
            y = g.add(f"{n}.bn", BatchNorm(cout), [y], block=block)
        if act:
            y = g.add(f"{n}.act", Activation(act), [y], block=block)
        return y

    def se(self, x, block, gate):
        g = self.g
        c = g[x].shape[0]
        p = g.add(f"{block}.se.pool", GlobalAvgPool(), [x], block=block)
        r = self.ch(c / 4)
        h = self.conv(p, r, bias=True, bn=self.rng.random() < 0.3, act="relu", block=block)
        gt = self.conv(h, c, bias=True, bn=False, act=gate, block=block)
        return g.add(f"{block}.se.scale", Mul(), [x, gt], block=block)

    def inverted(self, x, cout, s, block):
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        act = rng.choice(ACTS)
        t = rng.choice((1, 2, 3, 4, 6, 6))
        h = x if t == 1 else self.conv(x, self.ch(cin * t), act=act, block=block)
        k = rng.choice((3, 3, 5, 7))
        se = rng.random() < 0.35
        late = se and rng.random() < 0.4  # ReXNet: activation after SE
        c = g[h].shape[0]
        h = self.conv(h, c, k, s, c, act=None if late else rng.choice(("relu", "relu6",
                                                                        act)), block=block)
        if se:
            h = self.se(h, block, rng.choice(("hsigmoid", "sigmoid")))
        if late:
            h = g.add(f"{block}.act", Activation("relu6"), [h], block=block)
        y = self.conv(h, cout, block=block)
        if s == 1 and cout == cin:
            y = g.add(f"{block}.add", Add(), [y, x], block=block)
        elif s == 1 and cin < cout and rng.random() < 0.7:
            y = g.add(f"{block}.add", Add(partial=True), [y, x], block=block)
        return y

    def sandglass(self, x, cout, s, block):
        rng, g = self.rng, self.g
        cin = g[x].shape[0]
        h = self.conv(x, cin, 3, 1, cin, act="relu6", block=block)
        h = self.conv(h, self.ch(cin / rng.choice((2, 4, 6))), block=block)
        h = self.conv(h, cout, act="relu6", block=block)
        y = self.conv(h, cout, 3, s, cout, block=block)
        if s == 1 and cin == cout:
            y = g.add(f"{block}.add", Add(), [y, x],
                      block=block)
        return y

    def replicated(self, x, cout, s, block):
        g = self.g
        cin = g[x].shape[0]
        c = cin * self.rng.choice((2, 3, 4, 6))
        h = g.add(f"{block}.rep", Replicate(c), [x], block=block)
        h = g.add(f"{block}.rep.bn", BatchNorm(c), [h], block=block)
        h = g.add(f"{block}.rep.act", Activation("relu"), [h], block=block)
        h = self.conv(h, c, 3, s, c, act="relu", block=block)
        return self.conv(h, cout, block=block)

    def plain(self, x, cout, s, block):
        rng = self.rng
        cin = self.g[x].shape[0]
        act = rng.choice(ACTS)
        if rng.random() < 0.5:   # MobileNetV1: depthwise + pointwise
            h = self.conv(x, cin, 3, s, cin, act=act, block=block)
            return self.conv(h, cout, act=act, block=block)
        groups = rng.choice((1, 1, 2, 4))
        if cin % groups or cout % groups:
            groups = 1
        return self.conv(x, cout, 3, s, groups, act=act, block=block)

    def head(self, x, classes):
        g, rng = self.g, self.rng
        if rng.random() < 0.5:   # MobileNetV2: 1x1 conv, pool, classifier
            x = self.conv(x, self.ch(g[x].shape[0] * rng.uniform(2, 6)),
                          act=rng.choice(ACTS), block="head")
            x = g.add("head.pool", GlobalAvgPool(), [x], block="head")
        else:                    # MobileNetV3: pool, 1x1 conv without BN, classifier
            x = g.add("head.pool", GlobalAvgPool(), [x], block="head")
            x = self.conv(x, self.ch(rng.uniform(256, 1600)), bias=True, bn=False,
                          act="hswish", block="head")
        x = g.add("head.flatten", Flatten(), [x], block="head")
        x = g.add("head.dropout", Dropout(0.2), [x], block="head")
        f = g[x].shape[0]
        g.outputs["output"] = g.add("head.fc", Linear(f, classes), [x], block="head")
        return g


def random_network(seed: int) -> Graph:
    """One calibration network (the sampling plan in the module docstring)."""
    rng = random.Random(seed)
    res = rng.choice(range(64, 257, 16))
    net = _Net(f"calib{seed}", res, rng)
    stem_stride = 1 if rng.random() < 0.15 else 2    # 1: CIFAR-style nets, large maps
    x = net.conv(net.x, net.ch(rng.uniform(8, 48)), 3, stem_stride, act=rng.choice(ACTS),
                 block="stem")
    c = float(net.g[x].shape[0])
    n_blocks = rng.randint(5, 16)
    downs = sorted(rng.sample(range(n_blocks), min(n_blocks, rng.randint(2, 5))))
    motifs = (net.inverted,) * 6 + (net.sandglass, net.replicated) + (net.plain,) * 2
    for b in range(n_blocks):
        h = net.g[x].shape[1]
        s = 2 if b in downs and h >= 6 else 1
        if s == 2 or rng.random() < 0.3:
            c = min(c * rng.uniform(1.2, 2.0), 640)
        cout = net.ch(c) if rng.random() > 0.4 or s == 2 else net.g[x].shape[0]
        motif = rng.choice(motifs)
        x = motif(x, cout, s, f"b{b}")
    return net.head(x, rng.choice((10, 100, 1000)))


# ---- attribution: profiler nodes -> kernels ------------------------------------------------
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
VARIANT_SEED = 50_000   # variant seeds: far from the validation sampler's (0 + spec index)


def variant_networks(n: int, seed: int = 0) -> list[Graph]:
    """``n`` random variants of the shipped specs (``sweep --random``'s sampler: width,
    resolution, expansion, alpha), spread evenly over the specs, seeded apart from the
    validation variants of ``benchmarks/latency_check.py``."""
    import math

    from ..analysis.sweep import random_variants, vary
    from ..spec import load
    from ..spec.loader import SHIPPED

    if n <= 0:
        return []
    specs = [load(p) for p in sorted(SHIPPED.glob("*.yaml"))]
    per = math.ceil(n / len(specs))
    out: list[Graph] = []
    for i, s in enumerate(specs):
        for v in random_variants(per, seed * 100_000 + VARIANT_SEED + i, s):
            out.append(vary(s, v).compile())
    # interleave the specs so that any prefix covers all of them
    order = sorted(range(len(out)), key=lambda j: (j % per, j // per))
    return [out[j] for j in order][:n]


def calibration_graphs(networks: int, variants: int, seed: int) -> list[Graph]:
    """The calibration networks, in measuring order: the random motif networks, then the
    spec variants (recorded in the raw file; rebuilt from the seeds only for a raw file
    that predates the record)."""
    return [random_network(seed * 100_000 + i) for i in range(networks)] + \
        variant_networks(variants, seed)


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
