"""Calibration: measure kernels on the target backend and fit the latency model.

Sampling plan. A kernel's time depends on its neighbours (the layout its input arrives
in, what is in cache), so kernels are measured *in context*: ``networks`` random
MobileNet-like IR graphs are drawn (seeded) from the motifs the blocks compile to --
inverted residuals with expansion t in {1..6}, depthwise k in {3,5,7}, stride 1/2,
optional squeeze-excite with relu/hsigmoid/sigmoid gates, full and partial residual adds,
sandglass blocks, plain and grouped convs, channel replication, ghost bottlenecks (a
1x1 conv's and a depthwise conv's outputs concatenated) and dilated 3x3 full and
depthwise convs (rates 2 to 36, DeepLab's; both since 2026-12-04), and MobileNetV2 and
MobileNetV3 heads -- with activations drawn from relu/relu6/hswish/swish, resolutions
from 64 to 256, a stride-1 stem in 15% of them (CIFAR-style: large maps) and channel
counts rounded to multiples of 16, 8 or not at all (which
decides the NCHWc layout). These are not the shipped specs: validation
(``benchmarks/latency_check.py``) runs on those and on their random variants.

Measurement. Each network is built with the ONNX backend and run by onnxruntime with the
session options of ``archspec bench`` plus the profiler, on ``batch`` images
(``calibrate --batch``; the ONNX files have a dynamic batch axis; the profile predicts
that batch); every node's time is attributed to the kernel of the IR node it computes
(:mod:`.attribution`), per run; a kernel's sample is its median over the repeats. The
same network is also timed without the profiler (:mod:`.timing`, as ``archspec bench``
times); wall median minus the kernels' sum is the per-model overhead sample. With
``backend="torch"`` (``calibrate --backend torch``) the networks are the torch backend's
models run eagerly, each IR node its own kernel (:func:`.kernels.eager_kernels`), timed
by a ticked copy of the model's forward (:mod:`.torch_timing`) and, unticked, as
``archspec bench --backend torch`` times them. Repeats are
split into ``rounds`` passes over all networks (interleaved), so slow spells of a shared
machine hit every network a little; the spread between rounds is recorded in the
profile. The measurements keep the IR of every network measured (:mod:`.raw`), so a
refit never rebuilds them from the current specs.

Fingerprint and validation. The probe kernels (:func:`.probes.probe`) and the reference
network (:func:`.probes.reference_ms`) are timed before, during (after the calibration
networks) and after the campaign: the profile's fingerprint, which every use of the
profile checks this machine against. After the
calibration networks, ``holdout`` further variants of the shipped specs
(:func:`.networks.holdout_networks`, never fitted) are timed as ``latency --check``
times a model; the fit predicts them and the profile keeps the
share within +-10% (``validation``). ``QUICK`` is the smaller campaign of ``calibrate
--quick`` (docs/latency.md says how it was chosen).

Fitting (:mod:`.fitting`) records its environment and the measurements' digest in the
profile. The hardware the kernels depend on (NCHWc block, L2 size) is probed by
:mod:`.probes`. This module keeps the measurement campaign (:func:`calibrate`) and
re-exports the calibration API (``__all__``).
"""
from __future__ import annotations

import datetime as _dt
import statistics
import time
from dataclasses import dataclass

from .attribution import attribute, profiler_cost
from .check import measure, runs_per_round
from .kernels import backend_kernels
from .networks import SAMPLER, calibration_graphs, holdout_networks
from .probes import fingerprint, l2_bytes, nchwc_block, reference_ms
from .probes import probe as run_probe
from .raw import networks_record
from .timing import profile_events, session, time_runs, wall_step


# the full campaign (the CLI's defaults) and --quick's: about 10 and 1.5 minutes here
FULL = {"networks": 120, "variants": 136, "repeats": 12, "rounds": 4, "holdout": 48}
QUICK = {"networks": 12, "variants": 64, "repeats": 6, "rounds": 2, "holdout": 20}

# A network whose two fastest rounds are further apart than this is measured again (one
# more round at a time, up to as many more rounds as the campaign had): a busy machine's
# slow spells then have to hit every round of a network to spoil its time. In the shipped
# raw files the two fastest of four rounds were more than 5% apart for 0-21% of the
# networks (onnxruntime), 28-36% (torch eager) and 73% (a busy Zen 1 guest).
SETTLE = 0.05


@dataclass(frozen=True)
class _Round:
    """How one network is measured in one round."""

    threads: int
    warmup: int
    per_round: int       # timed runs at least
    min_round_ms: float  # and at least this long
    seed: int
    batch: int = 1       # images per run
    backend: str = "onnxruntime"


def calibrate(*, threads: int = 1, networks: int = 120, variants: int = 0,
              repeats: int = 12, rounds: int = 4, warmup: int = 2, seed: int = 0,
              min_round_ms: float = 20.0, holdout: int = 0, batch: int = 1,
              backend: str = "onnxruntime", probe=None, reference=None,
              settle: float = SETTLE, extra_rounds: int | None = None,
              progress=lambda n=1: None) -> dict:
    """Measure the calibration networks (``networks`` random motif networks and
    ``variants`` random variants of the shipped specs), then ``holdout`` networks kept
    out of the fit; the probe kernels and the reference network before, between and
    after (``probe``: threads -> us per kernel; ``reference``: threads, batch -> ms).
    A network whose two fastest rounds differ by more than ``settle`` (0: none) gets more
    rounds, at most ``extra_rounds`` (default: ``rounds``), until they agree, and its
    kernels' samples come from the rounds within ``settle`` of its fastest (:func:`_settle`;
    ``progress.grow(n)``, when the callback has it, is told of each added round).
    Every network runs on ``batch`` images (the kernels' features are for that many:
    :meth:`~archspec.latency.kernels.Kernel.features`). Returns the raw samples (see
    :func:`~archspec.latency.fitting.build`)."""
    if batch < 1:
        raise ValueError(f"batch {batch}: at least 1")
    if probe is None:
        def probe(threads):
            return run_probe(threads, backend=backend)
    if reference is None:
        def reference(threads, batch):
            return reference_ms(threads, batch, backend)
    block = nchwc_block() if backend == "onnxruntime" else 0
    t0 = time.perf_counter()
    probes, refs = [probe(threads)], [reference(threads, batch)]
    graphs = calibration_graphs(networks, variants, seed)
    variants = len(graphs) - networks          # a variant its spec cannot take is left out
    fused = [backend_kernels(g, backend, block) for g in graphs]
    how = _Round(threads, warmup, max(1, repeats // rounds), min_round_ms, seed, batch,
                 backend)
    # net -> kernel -> per-round medians of its profiled time (us)
    kernel_rounds = [[[] for _ in ks] for ks in fused]
    round_medians = [[] for _ in graphs]                  # net -> per-round wall medians
    counts = [{} for _ in graphs]                         # net -> kernel -> profiled nodes
    for _ in range(rounds):
        for i in range(len(graphs)):
            _one_round(i, graphs, fused, how, round_medians, kernel_rounds, counts)
            progress(1)
    extra = 0 if settle <= 0 else rounds if extra_rounds is None else extra_rounds
    settled = _settle(graphs, fused, how, round_medians, kernel_rounds, counts, settle,
                      extra, progress)
    # Other tenants of a shared machine only ever slow a run down, and a slow spell lasts
    # longer than a round: the quiet-machine time is the *fastest* round's median (each
    # round a fresh session and a median over its runs, so one lucky run cannot win).
    probes.append(probe(threads))
    refs.append(reference(threads, batch))
    held = _holdout(holdout, how, rounds, progress)
    probes.append(probe(threads))
    refs.append(reference(threads, batch))
    walls = [min(m) for m in round_medians]
    medians = [_fastest_kernels(m, net, settle)
               for m, net in zip(round_medians, kernel_rounds)]
    per_node = profiler_cost(medians, counts, walls)
    samples, overhead = _samples(graphs, fused, medians, counts, per_node, walls, batch)
    from ..bench import denormals_note, machine, settle_allocator, versions

    return {"backend": backend, "samples": samples, "overhead": overhead,
            "nchwc_block": block,
            # how profiled layout reorders were charged (attribution.attribute): to their
            # reader's kernel since 2026-12-04 (before: the next kernel that ran)
            **({"partial_add": "masked", "reorders": "reader"}
               if backend == "onnxruntime" else {}),
            # which nodes each kernel covers (latency.raw.raw_fusion; fit rules 9 on)
            "fusion": {"blocked_bn_acts": True},
            "networks_ir": networks_record(graphs, "measured"),
            "machine": machine(backend), "versions": versions(),
            "l2_bytes": l2_bytes(), "min_round_ms": min_round_ms,
            "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "walls": walls, "estimator": "fastest round median",
            "wall_rounds": [[round(x, 2) for x in m] for m in round_medians],
            "profiler_us_per_node": round(per_node, 3),
            "networks": networks, "variants": variants, "repeats": how.per_round * rounds,
            "rounds": rounds,
            "warmup": warmup, "seed": seed, "sampler": SAMPLER, "threads": threads,
            "batch": batch, "seconds": round(time.perf_counter() - t0, 1),
            "fingerprint": fingerprint(backend, threads, probes, refs, batch),
            **({"allocator": settle_allocator()} if backend == "torch" else {}),
            "denormals": denormals_note(),
            "settle": settled,
            **({"holdout": held} if held else {}),
            **_spread([m[:rounds] for m in round_medians])}   # the planned rounds


def _settle(graphs, fused, how: _Round, round_medians: list, kernel_rounds: list,
            counts: list, tolerance: float, extra: int, progress) -> dict:
    """Measure again, a round at a time, every network whose two fastest round medians
    are more than ``tolerance`` apart, up to ``extra`` more rounds each (the lists grow
    in place). What was done: the tolerance, the networks measured again, the rounds
    added, and the networks still unsettled at the end."""
    grow = getattr(progress, "grow", None)
    again: set[int] = set()
    added = 0
    for _ in range(extra):
        todo = [i for i, m in enumerate(round_medians) if not _agree(m, tolerance)]
        if not todo:
            break
        if grow is not None:
            grow(len(todo))
        for i in todo:
            _one_round(i, graphs, fused, how, round_medians, kernel_rounds, counts)
            again.add(i)
            added += 1
            progress(1)
    left = sum(not _agree(m, tolerance) for m in round_medians)
    return {"tolerance": tolerance, "max_extra_rounds": extra, "networks": len(again),
            "rounds_added": added, "unsettled": left}


def _one_round(i: int, graphs, fused, how: _Round, round_medians: list,
               kernel_rounds: list, counts: list) -> None:
    """Measure network ``i`` once more and append its wall and kernel medians."""
    wall, kernel_medians, counts[i] = _measure(graphs[i], fused[i], how)
    round_medians[i].append(wall)
    for j, us in enumerate(kernel_medians):
        kernel_rounds[i][j].append(us)


def _fastest_kernels(walls: list, kernels: list, tolerance: float) -> list[float]:
    """Each kernel's fastest time over the rounds whose wall time is within
    ``tolerance`` of the network's fastest (every round when ``tolerance`` is 0): its
    kernels are then timed in the same quiet rounds as its wall time, however many extra
    rounds it took (the more rounds a minimum is taken over, the lower it reads)."""
    if tolerance <= 0:
        return [min(r) for r in kernels]
    cut = min(walls) * (1 + tolerance)
    quiet = [i for i, w in enumerate(walls) if w <= cut]
    return [min(r[i] for i in quiet) for r in kernels]


def _agree(medians: list, tolerance: float) -> bool:
    """Whether a network's two fastest rounds are within ``tolerance`` of each other (a
    network measured in one round has nothing to compare: it counts as settled)."""
    if len(medians) < 2:
        return True
    a, b = sorted(medians)[:2]
    return b <= a * (1 + tolerance)


def _holdout(n: int, how: _Round, rounds: int, progress) -> dict | None:
    """``n`` held-out networks timed as ``latency --check`` times a model (interleaved
    rounds, fresh sessions): what the fit is validated on. Per network the median of all
    runs (the check's figure) and the round medians (the fastest is the calibration's)."""
    if n <= 0:
        return None
    graphs = holdout_networks(n, how.seed)
    out = measure(graphs, how.threads, rounds=rounds, repeats=how.per_round,
                  warmup=how.warmup, progress=progress, min_round_ms=how.min_round_ms,
                  batch=how.batch, backend=how.backend)
    return {"networks_ir": networks_record(graphs, "measured"), "rounds": rounds,
            "measured_ms": [round(m, 4) for m, _, _ in out],
            "round_ms": [[round(x, 4) for x in r] for _, _, r in out],
            "spread": [round(s, 4) for _, s, _ in out]}


def _measure(graph, kernels: list, how: _Round) -> tuple[float, list[float], dict]:
    """One round of one network: its unprofiled wall median (us), every kernel's median
    profiled time (us) and profiled nodes per kernel."""
    owner = {n: j for j, k in enumerate(kernels) for n in k.nodes}
    # unprofiled wall time first, measured as `latency --check` measures: a fresh
    # session, warm-up, then at least per_round runs and min_round_ms
    step = wall_step(graph, how.threads, how.batch, how.backend)
    warm = time_runs(step, how.warmup)
    n = runs_per_round([w / 1000.0 for w in warm], how.per_round, how.min_round_ms)
    wall = statistics.median(time_runs(step, n))
    if how.backend == "torch":
        return (wall, *_ticked(graph, owner, len(kernels), how, n))
    readers: dict = {}
    sess, feed = session(graph, how.threads, profile=True, seed=how.seed, batch=how.batch,
                         readers=readers)
    events = profile_events(sess, feed, how.warmup + n)
    runs = attribute(events, owner, how.warmup, readers=readers)
    medians = [statistics.median(r.get(j, 0.0) for r in runs) for j in range(len(kernels))]
    return wall, medians, attribute(events, owner, how.warmup, value=lambda e: 1,
                                    readers=readers)[0]


def _ticked(graph, owner: dict, n_kernels: int, how: _Round, n: int):
    """Every kernel's median ticked time (us) over ``n`` runs of ``graph``'s torch model
    and its ticked nodes (:mod:`.torch_timing`)."""
    from .torch_timing import node_runs

    runs, nodes = node_runs(graph, how.threads, runs=n, warmup=how.warmup, seed=how.seed,
                            batch=how.batch)
    per_kernel = [dict() for _ in runs]
    for run, out in zip(runs, per_kernel):
        for name, us in run.items():
            j = owner[name]
            out[j] = out.get(j, 0.0) + us
    counts: dict = {}
    for name, c in nodes.items():
        counts[owner[name]] = counts.get(owner[name], 0) + c
    return [statistics.median(r.get(j, 0.0) for r in per_kernel)
            for j in range(n_kernels)], counts


def _samples(graphs: list, fused: list, medians: list, counts: list, per_node: float,
             walls: list, batch: int = 1):
    """Per kernel its sample (the profiler's cost taken out, at least a fifth of the
    profiled time kept; its features for ``batch`` images); per network (kernels, wall
    minus the kernels' sum)."""

    samples, overhead = [], []
    for i, ks in enumerate(fused):
        total = 0.0
        for j, k in enumerate(ks):
            us = max(medians[i][j] - per_node * counts[i].get(j, 0), 0.2 * medians[i][j])
            total += us
            samples.append({"type": k.type, "features": k.features(batch),
                            "us": round(us, 4),
                            "net": i})
        overhead.append((len(ks), walls[i] - total))
    return samples, overhead


def _spread(round_medians: list) -> dict:
    """The spread between rounds ((max - min) / median of a network's round medians):
    its median and 90th percentile over networks."""
    spreads = [(max(m) - min(m)) / statistics.median(m)
               for m in round_medians if len(m) > 1]
    return {"round_spread_median": round(statistics.median(spreads), 4) if spreads else None,
            "round_spread_p90": round(sorted(spreads)[int(0.9 * (len(spreads) - 1))], 4)
            if spreads else None}
