"""The benchmark engine behind ``archspec bench``: latency of a spec's model on a backend,
per input resolution, forward only or forward + backward.

A measurement builds the model once per resolution, runs ``warmup`` untimed steps (for
torch.compile the first one compiles; its time is reported as ``first_step_s``), then
``repeats`` timed steps, each timed alone with ``time.perf_counter`` (CUDA steps end with
``torch.cuda.synchronize``); for the torch backends glibc malloc's thresholds are fixed
first (:func:`settle_allocator`: else a run's time depends on what the process freed
before). Reported: every time, median, p90, min, mean and standard
deviation in milliseconds, and images per second at the median. Threads are pinned before
anything runs (``torch.set_num_threads``, onnxruntime's ``intra_op_num_threads`` with one
inter-op thread and sequential execution).

Backends: ``onnxruntime`` (CPU, the ONNX backend's BN-folded model, all graph
optimisations), ``torch`` (eager), ``torch-compile`` (``torch.compile``, inductor),
``cuda`` (eager on the first GPU). A train step is forward, cross-entropy against random
labels (a model with heads or several outputs: the sum of each output's mean), and
backward, in train mode (BN updates its statistics); no optimiser step.
onnxruntime measures inference only.

The result is a JSON-ready dict (schema ``archspec.bench/1``) that records the machine,
library versions and settings, so files from different runs can be compared.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

from .errors import ArchspecError, BackendError, did_you_mean

BACKENDS = ("onnxruntime", "torch", "torch-compile", "cuda")
SCHEMA = "archspec.bench/1"


@dataclass(frozen=True)
class Settings:
    backend: str = "onnxruntime"
    threads: int = 1
    batch: int = 1
    resolutions: tuple = ()          # empty: the spec's own resolution
    train_step: bool = False
    repeats: int = 30
    warmup: int = 5
    seed: int = 0

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise ArchspecError(f"unknown bench backend `{self.backend}` "
                                f"({did_you_mean(self.backend, BACKENDS)})")
        for key in ("threads", "batch", "repeats"):
            if getattr(self, key) < 1:
                raise ArchspecError(f"bench: --{key} must be at least 1")
        if self.warmup < 0:
            raise ArchspecError("bench: --warmup must be 0 or more")
        if self.train_step and self.backend == "onnxruntime":
            raise ArchspecError("bench: onnxruntime measures inference only; use --backend "
                                "torch, torch-compile or cuda for --train-step")


@dataclass
class Measurement:
    resolution: int
    mode: str                 # "forward" or "train_step"
    batch: int
    madds: int                # per image, from the cost pass
    params: int
    times_ms: list = field(default_factory=list)
    median_ms: float = 0.0
    p90_ms: float = 0.0
    min_ms: float = 0.0
    mean_ms: float = 0.0
    stdev_ms: float = 0.0
    images_per_s: float = 0.0
    first_step_s: float = 0.0  # the first warm-up step (includes torch.compile's compile)
    build_s: float = 0.0


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(m: Measurement) -> Measurement:
    t = m.times_ms
    m.median_ms = statistics.median(t)
    m.p90_ms = percentile(t, 90)
    m.min_ms = min(t)
    m.mean_ms = statistics.fmean(t)
    m.stdev_ms = statistics.stdev(t) if len(t) > 1 else 0.0
    m.images_per_s = m.batch * 1000.0 / m.median_ms if m.median_ms > 0 else float("inf")
    return m


# ---- runners: one step of work each ------------------------------------------------------
# glibc malloc's mmap and trim thresholds as archspec sets them for torch (see
# settle_allocator); None where the C library is not glibc
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's largest (its dynamic threshold's ceiling)
TRIM_THRESHOLD = 1024 ** 3
MMAP_MAX = 0                          # no mmap at all: blocks past 32 MiB from the heap too


def settle_allocator() -> str | None:
    """Fix glibc malloc's mmap threshold at its ceiling (32 MiB), its trim threshold at
    1 GiB and its mmap count at 0 (no block is mapped, whatever its size) in this
    process, and say so (None: not glibc, nothing set). With glibc's defaults a torch
    eager model's activations are mapped and unmapped, or the heap is trimmed, on every
    run, depending on what the process freed before: the same MobileNetV2 took 20 ms or
    26-32 ms per run (docs/latency.md, Torch eager), a fresh process's first model the
    slower. A block past the 32 MiB ceiling was still mapped afresh, and its pages
    faulted in, on every run unless the heap happened to have room: ~245 us per MiB on
    the Xeon host (a 64 MiB ReLU 26 ms instead of 10), most of a 1024x2048 segmentation
    model's time. Fixed, a run's time no longer depends on the process's history and
    activations are reused as onnxruntime's arena reuses them. The mmap count holds for
    the main arena, the one a single-threaded measurement (this process's main thread)
    allocates from; glibc's per-thread arenas still map blocks past their own size
    (64 MiB). The settings last for the rest of the process: freed memory stays in the
    heap, so its resident size stays at its peak."""
    if allocator_note() is None:
        return None
    try:
        libc = _libc()
        # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX (malloc.h)
        m_trim, m_mmap, m_mmap_max = -1, -3, -4
        if any(libc.mallopt(what, value) != 1 for what, value in (
                (m_mmap, MMAP_THRESHOLD), (m_trim, TRIM_THRESHOLD), (m_mmap_max, MMAP_MAX))):
            return None
    except (OSError, AttributeError):
        return None
    return allocator_note()


@functools.cache
def _libc():
    """This process's C library (glibc here: :func:`allocator_note` said so). Once per
    process: ``ctypes.util.find_library`` runs ``ldconfig``."""
    import ctypes

    return ctypes.CDLL(None)


# x86-64 MXCSR: flush-to-zero (bit 15: denormal results become 0) and denormals-are-zero
# (bit 6: denormal inputs read as 0); glibc's x86-64 fenv_t holds MXCSR at byte 28
_FTZ_DAZ = 0x8040
_FENV_MXCSR = 28
_FENV_BYTES = 64          # fenv_t is 32 bytes there; room to spare


def denormals_note() -> str | None:
    """What :func:`flush_denormals` does on this platform (None: nothing, not x86-64
    Linux with glibc)."""
    if allocator_note() is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return "flushed while timing (x86 MXCSR FTZ+DAZ; onnxruntime set_denormal_as_zero)"


@contextlib.contextmanager
def flush_denormals():
    """Time with denormal floats flushed to zero on this thread (x86-64 MXCSR FTZ and
    DAZ), restored after. A network with random weights is not a trained one: the
    Kaiming fan-out initialisation (torchvision's) and eval-mode batch norms with unit
    statistics shrink the activations layer by layer (ReXNet-plain's reach ~1e-20 by
    its last stages), and onnxruntime's sigmoid then computes denormal intermediates,
    which Intel CPUs handle in microcode: a swish on 50k such elements took 1.1 ms
    instead of 16 us on the Xeon host, ReXNet-plain 8.4 ms a run instead of 7.0 ms
    (docs/latency.md, "Denormals"). A trained network's activations stay far from
    denormal, so flushed timings are what it costs; where no denormal occurs the flag
    changes nothing. onnxruntime's own threads flush by its session option
    (:func:`ort_session`); torch's OpenMP workers (more than one thread) keep the flags
    they started with."""
    with _fenv(flush=True):
        yield


@contextlib.contextmanager
def _fenv(flush: bool):
    """This thread's floating-point environment kept across the block (and, ``flush``:
    denormals flushed inside it); nothing where :func:`denormals_note` says None."""
    if denormals_note() is None:
        yield
        return
    import ctypes
    import struct

    saved = None
    try:
        libc = _libc()
        buf = (ctypes.c_char * _FENV_BYTES)()
        if libc.fegetenv(buf) == 0:
            saved = bytes(buf)
            if flush:
                mxcsr = struct.unpack_from("<I", buf, _FENV_MXCSR)[0]
                struct.pack_into("<I", buf, _FENV_MXCSR, mxcsr | _FTZ_DAZ)
                libc.fesetenv(buf)
    except (OSError, AttributeError):
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            libc.fesetenv((ctypes.c_char * _FENV_BYTES).from_buffer_copy(saved))


def _denormals_record(settings) -> str | None:
    """The bench JSON's denormal note: none on CUDA; torch on several threads flushes
    the timing thread only (its OpenMP workers keep their flags)."""
    note = denormals_note()
    if note is None or settings.backend == "cuda":
        return None
    if settings.backend != "onnxruntime" and settings.threads > 1:
        return note + " on the timing thread only"
    return note


def allocator_note() -> str | None:
    """What :func:`settle_allocator` sets on this platform (None: nothing, not glibc),
    without setting it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return (f"glibc mallopt M_MMAP_THRESHOLD={MMAP_THRESHOLD // 2 ** 20} MiB, "
            f"M_TRIM_THRESHOLD={TRIM_THRESHOLD // 2 ** 30} GiB, M_MMAP_MAX={MMAP_MAX}")


def _pin_threads(settings: Settings) -> None:
    if settings.backend == "onnxruntime":
        return  # set on the session
    settle_allocator()
    import torch

    torch.set_num_threads(settings.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable before the first parallel work
        pass


def _torch_step(graph, settings: Settings):
    import torch

    from .backends import get_backend

    device = "cpu"
    if settings.backend == "cuda":
        if not torch.cuda.is_available():
            raise BackendError("bench: --backend cuda needs a CUDA GPU and a CUDA build of "
                               "torch; none is available here")
        device = "cuda"
        torch.backends.cudnn.benchmark = True
    model = get_backend("torch").build(graph, seed=settings.seed).to(device)
    gen = torch.Generator().manual_seed(settings.seed)
    x = torch.randn(settings.batch, *graph.input_shape, generator=gen).to(device)
    loss_fn = _loss(graph, settings.batch, gen, device)
    if settings.backend == "torch-compile":
        model = torch.compile(model)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    if settings.train_step:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            loss_fn(model(x)).backward()
            sync()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
            sync()
    return step


def _loss(graph, batch: int, gen, device):
    """The train step's loss: cross-entropy against random labels for a classifier (one
    ``output`` of class scores), else the sum of every named output's mean (heads, taps)."""
    import torch

    node = graph.outputs.get("output")
    if list(graph.outputs) == ["output"] and len(graph[node].shape) == 1:
        classes = graph[node].shape[0]
        labels = torch.randint(0, classes, (batch,), generator=gen).to(device)
        return lambda out: torch.nn.functional.cross_entropy(out, labels)
    return lambda out: sum(t.mean() for t in (out.values() if isinstance(out, dict)
                                              else [out]))


def ort_session_options(threads: int, *, profile: bool = False):
    """The onnxruntime session options every archspec measurement uses (bench, latency
    calibration and check): pinned intra-op threads, sequential execution, all graph
    optimisations; ``profile`` turns on onnxruntime's per-node profiler."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = profile
    opts.log_severity_level = 3
    return opts


def ort_session(model: bytes, opts):
    """An onnxruntime CPU session whose own threads flush denormals (its
    ``session.set_denormal_as_zero`` option, where :func:`flush_denormals` flushes this
    thread); the option would also flush the thread that builds the session for good,
    so this thread's floating-point environment is put back after."""
    import onnxruntime as ort

    if denormals_note() is not None:
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    with _fenv(flush=False):
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _ort_step(graph, settings: Settings):
    import numpy as np

    try:
        import onnxruntime  # noqa: F401  (ort_session builds the session)
    except ImportError:
        raise BackendError("bench: --backend onnxruntime needs `onnxruntime`: "
                           "pip install onnxruntime") from None
    from .backends import get_backend

    model = get_backend("onnx").build(graph, seed=settings.seed, check=False)
    sess = ort_session(model.serialize(), ort_session_options(settings.threads))
    rng = np.random.default_rng(settings.seed)
    feed = {sess.get_inputs()[0].name:
            rng.standard_normal((settings.batch, *graph.input_shape)).astype(np.float32)}

    def step():
        sess.run(None, feed)
    return step


def make_step(graph, settings: Settings):
    """A function running one forward (or train step) of ``graph``'s model."""
    if settings.backend == "onnxruntime":
        return _ort_step(graph, settings)
    return _torch_step(graph, settings)


# ---- measuring -----------------------------------------------------------------------------
def measure(graph, settings: Settings, advance=lambda n=1: None) -> Measurement:
    """Time ``graph`` under ``settings``; ``advance`` is called once per step run."""
    from .analysis.cost import cost

    totals = cost(graph).totals
    m = Measurement(graph.meta.get("resolution") or graph.input_shape[1],
                    "train_step" if settings.train_step else "forward", settings.batch,
                    totals.madds, totals.params)
    t0 = time.perf_counter()
    step = make_step(graph, settings)
    m.build_s = time.perf_counter() - t0
    with flush_denormals():
        for i in range(settings.warmup):
            t = time.perf_counter()
            step()
            if i == 0:
                m.first_step_s = time.perf_counter() - t
            advance()
        for _ in range(settings.repeats):
            t = time.perf_counter()
            step()
            m.times_ms.append((time.perf_counter() - t) * 1000.0)
            advance()
    return summarize(m)


def run(spec, settings: Settings, advance=lambda n=1: None) -> dict:
    """Benchmark ``spec`` (a loaded Spec) at each resolution; the result document."""
    settings.check()
    _pin_threads(settings)
    resolutions = list(settings.resolutions) or [spec.resolution]
    graphs = [spec.with_(resolution=r).compile() for r in resolutions]
    results = [asdict(measure(graph, settings, advance)) for graph in graphs]
    return {
        "schema": SCHEMA,
        "spec": spec.name,
        "file": str(getattr(spec, "file", "")),
        "width": graphs[0].meta.get("width"),
        "classes": graphs[0].meta.get("classes"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {**asdict(settings), "resolutions": resolutions},
        "machine": machine(settings.backend),
        "versions": versions(),
        # torch: glibc malloc's thresholds as archspec fixed them (settle_allocator)
        **({"allocator": settle_allocator()} if settings.backend != "onnxruntime" else {}),
        "denormals": _denormals_record(settings),
        "results": results,
    }


def steps_per_resolution(settings: Settings) -> int:
    return settings.warmup + settings.repeats


# ---- the record: machine and versions ------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return None


def machine(backend: str = "") -> dict:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {"cpu": _cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "memory_gib": _memory_gib(), "os": platform.platform(),
            "python": platform.python_version(), "hostname_hash": _host_hash()}
    if backend == "cuda":
        try:
            import torch

            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
                info["cuda"] = torch.version.cuda
        except ImportError:
            pass
    return info


def _host_hash() -> str:
    import hashlib

    return hashlib.sha256(platform.node().encode()).hexdigest()[:12]


def versions(packages=("archspec", "torch", "onnx", "onnxruntime", "numpy")) -> dict:
    """Versions of archspec and of the libraries that ran the model, or of ``packages``
    (None for one not installed); read from package metadata, nothing is imported."""
    from importlib import metadata

    out = {}
    for package in packages:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out
