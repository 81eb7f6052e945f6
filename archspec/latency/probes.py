"""Hardware probes: what the CPU the latency model runs on decides (onnxruntime's NCHWc
block size, the per-core L2 cache size)."""
from __future__ import annotations

L2_DEFAULT = 1024 * 1024


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


# ---- the machine fingerprint: a few fixed kernels, timed ------------------------------------
PROBE_VERSION = 1
# name -> (op, input shape, op-specific setting); each runs alone in its own session with
# the profile's session options, so it times the same runtime the profile was measured in
PROBE_KERNELS = {
    "conv1x1": ("Conv", (1, 96, 28, 28), 192),        # compute-bound: 14.5 M MACs
    "dwconv3x3": ("Conv", (1, 144, 56, 56), "dw"),    # depthwise, memory-bound
    "hswish": ("HardSwish", (1, 144, 56, 56), None),  # elementwise
    "copy": ("Transpose", (1, 144, 56, 56), None),    # memory copy (NCHW -> NHWC)
    "gemm": ("Gemm", (1, 1280), 1000),                # classifier: 5 MB of weights
}
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
              "avx512dq", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
              "amx_tile", "amx_bf16", "amx_int8")


def _initializers(op: str, shape: tuple, arg, rng) -> tuple[list, dict]:
    """The weights of one probe kernel and its node attributes."""
    import numpy as np

    if op == "Conv" and arg == "dw":
        w = rng.standard_normal((shape[1], 1, 3, 3)).astype(np.float32)
        return [w], {"group": shape[1], "pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    if op == "Conv":
        return [rng.standard_normal((arg, shape[1], 1, 1)).astype(np.float32)], {}
    if op == "Gemm":
        return [rng.standard_normal((shape[1], arg)).astype(np.float32)], {}
    if op == "Transpose":
        return [], {"perm": [0, 2, 3, 1]}
    return [], {}


def probe_model(name: str) -> bytes:
    """The ONNX model of probe kernel ``name`` (fixed weights, seeded)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    op, shape, arg = PROBE_KERNELS[name]
    weights, attrs = _initializers(op, shape, arg, np.random.default_rng(0))
    inits = [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)]
    node = helper.make_node(op, ["x", *(t.name for t in inits)], ["y"], **attrs)
    graph = helper.make_graph([node], name, [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(shape))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _torch_probe_step(name: str, threads: int):
    """Probe kernel ``name`` as torch eager runs it (the same shapes and ops: conv2d,
    depthwise conv2d, hardswish, a permuting copy, linear), under inference mode."""
    import torch
    import torch.nn.functional as F

    from .torch_timing import pin_threads

    pin_threads(threads)
    op, shape, arg = PROBE_KERNELS[name]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen)
    if op == "Conv" and arg == "dw":
        w = torch.randn(shape[1], 1, 3, 3, generator=gen)
        fn = lambda: F.conv2d(x, w, padding=1, groups=shape[1])   # noqa: E731
    elif op == "Conv":
        w = torch.randn(arg, shape[1], 1, 1, generator=gen)
        fn = lambda: F.conv2d(x, w)   # noqa: E731
    elif op == "Gemm":
        w = torch.randn(arg, shape[1], generator=gen)
        fn = lambda: F.linear(x, w)   # noqa: E731
    elif op == "Transpose":
        fn = lambda: x.permute(0, 2, 3, 1).contiguous()   # noqa: E731
    else:
        fn = lambda: F.hardswish(x)   # noqa: E731

    def step():
        with torch.inference_mode():
            fn()
    return step


def _probe_step(name: str, threads: int, backend: str = "onnxruntime"):
    if backend == "torch":
        return _torch_probe_step(name, threads)
    import numpy as np

    from ..bench import ort_session, ort_session_options

    sess = ort_session(probe_model(name), ort_session_options(threads))
    feed = {"x": np.random.default_rng(1).standard_normal(PROBE_KERNELS[name][1])
            .astype(np.float32)}
    return lambda: sess.run(None, feed)


def probe(threads: int = 1, *, rounds: int = 6, round_ms: float = 12.0,
          warmup: int = 3, backend: str = "onnxruntime") -> dict:
    """Time every probe kernel (us) in interleaved rounds, each with a fresh session
    (sessions of one model differ by up to ~15%), warm-up runs, then at least 5 runs and
    ``round_ms``; a kernel's time is its fastest round's median (slow spells of a shared
    machine only ever slow a run down). About a second on one thread. ``backend``:
    onnxruntime (each kernel a one-node model) or torch (eager)."""
    import statistics

    from .check import runs_per_round
    from .timing import time_runs

    restore = _torch_threads() if backend == "torch" else (lambda: None)
    best: dict[str, float] = {}
    try:
        for _ in range(rounds):
            for name in PROBE_KERNELS:
                step = _probe_step(name, threads, backend)
                warm = time_runs(step, warmup, unit=1000.0)
                med = statistics.median(time_runs(step, runs_per_round(warm, 5, round_ms)))
                best[name] = min(best.get(name, med), med)
    finally:
        restore()
    return {name: round(us, 3) for name, us in best.items()}


def _torch_threads():
    """A function that puts torch's intra-op thread count back as it is now: the probe
    runs with the profile's threads, in a process (search, adapt) that may go on to train
    with its own. What is not put back: the malloc settings the probe settles
    (:func:`archspec.bench.settle_allocator`: freed memory then stays in the heap, so a
    search or adapt process's resident size stays at its peak; the calibration's probe
    ran with them, so a probe without them would compare unlike with like) and torch's
    inter-op thread count (1), which torch lets a process set once only."""
    import torch

    before = torch.get_num_threads()
    return lambda: torch.set_num_threads(before)


def cpu_flags() -> list[str]:
    """The SIMD extensions of this CPU that decide which kernels the runtime picks."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        return []
    return [f for f in SIMD_FLAGS if f in flags]


def cpu_id() -> str | None:
    """The CPU's vendor, family, model and stepping (``AuthenticAMD 25/1/1``): two CPUs of
    one marketing name ("AMD EPYC" on a cloud host) can be different generations."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = {}
            for ln in f:
                if not ln.strip():
                    break
                key, _, value = ln.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        return None
    parts = [info.get(k) for k in ("cpu family", "model", "stepping")]
    if not info.get("vendor_id") or any(p is None for p in parts):
        return None
    return f"{info['vendor_id']} {'/'.join(parts)}"


def timing_env(backend: str, threads: int) -> dict:
    """What besides the hardware's speed shapes the timings: the CPU (name, family /
    model / stepping, SIMD flags, cores), the libraries that run the kernels and the
    thread settings. Read without importing any of those libraries."""
    import os

    from ..bench import machine, versions

    m = machine()
    packages = ("onnxruntime", "numpy") if backend == "onnxruntime" else (backend, "numpy")
    env = {"cpu": m["cpu"], "cpu_id": cpu_id(), "cpu_flags": cpu_flags(),
           "logical_cores": m["logical_cores"],
           "usable_cores": m["usable_cores"], **versions(packages), "threads": threads}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = os.environ.get(var)
    from ..bench import denormals_note

    env["denormals"] = denormals_note()   # flushed while timing (docs/latency.md, Denormals)
    if backend == "torch":   # what allocates the activations (docs/latency.md, Torch eager)
        from ..bench import allocator_note

        env["allocator"] = allocator_note()
        env["LD_PRELOAD"] = os.environ.get("LD_PRELOAD")
    return env


# ---- the reference network: the profile's prediction against this machine now -----------
# A shipped spec at a small resolution: many kernels of every common kind, a few ms a run.
# The probe kernels time five ops in isolation, hot in cache; on the Xeon host torch's
# convs inside networks ran ~10% faster at 09:19 than at 02:37 UTC on 2026-12-04 (and
# whole networks up to ~25%) while the probe's 1x1 conv moved 0.2% (docs/latency.md,
# "Machine fingerprint"): a profile's own prediction of a real network, timed, sees that.
REFERENCE_NETWORK = ("mobilenetv2", 128)
# How reference_ms times it; a change makes older cached and calibration times
# incomparable (a profile's fingerprint then falls back to its prediction).
REFERENCE_VERSION = 1


def reference_graph():
    """The reference network's graph (:data:`REFERENCE_NETWORK`)."""
    from ..spec import load

    name, resolution = REFERENCE_NETWORK
    return load(name, resolution=resolution).compile()


def reference_ms(threads: int = 1, batch: int = 1, backend: str = "onnxruntime", *,
                 rounds: int = 3, round_ms: float = 40.0, warmup: int = 2) -> float:
    """The reference network's wall time (ms) on ``batch`` images, as ``latency
    --check`` times a model (a fresh session or model each round): the fastest round's
    median. About 0.4 s on one thread in onnxruntime (building three sessions
    included), 0.3 s in torch, on the project's Xeon host."""
    import statistics

    from .check import runs_per_round
    from .timing import time_runs, wall_step

    restore = _torch_threads() if backend == "torch" else (lambda: None)
    graph, best = reference_graph(), None
    try:
        for _ in range(rounds):
            step = wall_step(graph, threads, batch, backend)
            warm = time_runs(step, warmup, unit=1000.0)
            med = statistics.median(time_runs(step, runs_per_round(warm, 5, round_ms),
                                              unit=1000.0))
            best = med if best is None else min(best, med)
    finally:
        restore()
    return round(best, 4)


def fingerprint(backend: str, threads: int, probes: list[dict],
                networks: list[float] = (), batch: int = 1) -> dict:
    """The fingerprint a profile stores: per probe kernel the fastest of ``probes`` (us),
    every probe taken, :func:`timing_env` and, when timed (``networks``: ms on ``batch``
    images, each by :func:`reference_ms`), the reference network's fastest time: what
    a later use compares this machine's time of it with."""
    kernels = {k: min(p[k] for p in probes) for k in PROBE_KERNELS}
    out = {"version": PROBE_VERSION, "kernels": kernels, "probes": probes,
           "env": timing_env(backend, threads)}
    if networks:
        name, resolution = REFERENCE_NETWORK
        out["network"] = {"name": name, "resolution": resolution, "batch": batch,
                          "version": REFERENCE_VERSION, "ms": min(networks),
                          "runs": list(networks)}
    return out
