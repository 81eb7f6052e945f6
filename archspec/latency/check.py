"""Predicted vs measured: time real models on the profile's backend, interleaved.

Models are measured in ``rounds``: each round builds a fresh onnxruntime session for
every model and runs it ``warmup`` + ``repeats`` times before moving to the next, so a
slow spell of a shared machine lands on all models rather than on one, and so the
session-to-session variation (two sessions of the same model on this machine differ by
up to ~15%, likely memory placement) is sampled rather than frozen into one figure.
The measured figure is the median of all timed runs; the spread is (max - min) / median
of the per-round medians, the measurement's own run-to-run noise, reported beside the
prediction error.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from .timing import time_runs



TOLERANCE = 0.10   # a prediction within +-10% of the measurement counts as right (the bar)

@dataclass
class Checked:
    name: str
    predicted_ms: float
    measured_ms: float
    spread: float          # (max - min) / median of the round medians
    rounds: int
    repeats: int
    # each round's median (ms); None for measurements saved before it was recorded
    round_ms: list | None = None

    @property
    def error(self) -> float:
        return self.predicted_ms / self.measured_ms - 1.0

    @property
    def fastest_error(self) -> float | None:
        """The error against the fastest round's median: the estimator a calibration
        fits (the machine's quiet time), which a busy spell during some rounds moves
        less than the median of all runs."""
        if not self.round_ms:
            return None
        return self.predicted_ms / min(self.round_ms) - 1.0

    def to_dict(self) -> dict:
        d = {**asdict(self), "error": round(self.error, 4)}
        if self.round_ms is None:
            del d["round_ms"]
        else:
            d["round_ms"] = [round(m, 5) for m in self.round_ms]
        return d


def runs_per_round(warm_ms: list[float], at_least: int, min_round_ms: float) -> int:
    """Timed runs for one round: ``at_least``, and enough to last ``min_round_ms`` judged
    by the warm-up runs' median (the one rule for calibration and check)."""
    if not warm_ms or min_round_ms <= 0:
        return at_least
    per_run = statistics.median(warm_ms)
    return max(at_least, min(1000, int(min_round_ms / max(per_run, 1e-6)) + 1))


def predict(graph, profile):
    """The profile's :class:`~archspec.latency.model.Prediction` for ``graph`` (a run of
    the profile's batch)."""
    return profile.model.predict(profile.kernels(graph), graph)


def measure(graphs: list, threads: int, *, rounds: int = 5, repeats: int = 6,
            warmup: int = 2, clock=time.perf_counter, make_step=None,
            progress=lambda n=1: None, min_round_ms: float = 20.0, batch: int = 1,
            backend: str = "onnxruntime") -> list[tuple[float, float, list]]:
    """(median ms, spread, round medians) per graph, measured in interleaved rounds.
    A round runs a model at least ``repeats`` times and at least ``min_round_ms`` long
    (judged by its warm-up runs, a fresh session's slow first run included), so a 0.3 ms
    model gets 20-35 runs a round, not 6: the
    median of a handful of sub-millisecond runs moves with every timer tick. A run
    feeds ``batch`` images to ``backend`` (onnxruntime, or torch eager: a fresh model
    each round)."""
    if make_step is None:
        from .timing import wall_step

        def make_step(g):
            return wall_step(g, threads, batch, backend)
    times = [[] for _ in graphs]
    medians = [[] for _ in graphs]
    for _ in range(rounds):
        for i, g in enumerate(graphs):
            step = make_step(g)   # a fresh session each round: sessions differ by ~10%
            warm = time_runs(step, warmup, clock=clock, unit=1000.0)
            n = runs_per_round(warm, repeats, min_round_ms)
            run = time_runs(step, n, clock=clock, unit=1000.0)
            times[i].extend(run)
            medians[i].append(statistics.median(run))
            progress(1)
    out = []
    for t, m in zip(times, medians):
        med = statistics.median(t)
        out.append((med, (max(m) - min(m)) / med if med > 0 else 0.0, m))
    return out


def check(named_graphs: list[tuple[str, object]], profile, *, rounds: int = 5,
          repeats: int = 6, warmup: int = 2, progress=lambda n=1: None,
          make_step=None, clock=time.perf_counter, min_round_ms: float = 20.0
          ) -> list[Checked]:
    """Predict and measure every (name, graph); measured in interleaved rounds, with the
    profile's threads and batch."""
    threads = int(profile.settings.get("threads", 1))
    measured = measure([g for _, g in named_graphs], threads, rounds=rounds, repeats=repeats,
                       warmup=warmup, progress=progress, make_step=make_step, clock=clock,
                       min_round_ms=min_round_ms, batch=profile.batch,
                       backend=profile.backend)
    return [Checked(name, predict(g, profile).total_ms, med, spread, rounds, repeats, m)
            for (name, g), (med, spread, m) in zip(named_graphs, measured)]


def summary(results: list[Checked], tolerance: float = TOLERANCE) -> dict:
    errs = sorted(abs(r.error) for r in results)
    spreads = sorted(r.spread for r in results)

    def q(xs, p):
        return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))] if xs else None

    return {"models": len(results),
            "within": round(sum(e <= tolerance for e in errs) / len(errs), 4) if errs else None,
            "tolerance": tolerance,
            "abs_error_median": q(errs, 0.5), "abs_error_p90": q(errs, 0.9),
            "signed_error_median": statistics.median(r.error for r in results)
            if results else None,
            "spread_median": q(spreads, 0.5), "spread_p90": q(spreads, 0.9),
            **fastest_round(results, tolerance)}


def fastest_round(results: list[Checked], tolerance: float = TOLERANCE) -> dict:
    """The figures against each model's fastest round (:attr:`Checked.fastest_error`),
    beside the headline's median of all runs: ``{}`` unless every result recorded its
    rounds."""
    errs = [r.fastest_error for r in results]
    if not errs or any(e is None for e in errs):
        return {}
    absolute = sorted(abs(e) for e in errs)
    return {"fastest_round": {    # the medians taken as summary() takes them
        "within": round(sum(e <= tolerance for e in absolute) / len(errs), 4),
        "abs_error_median": absolute[int(round(0.5 * (len(absolute) - 1)))],
        "signed_error_median": statistics.median(errs)}}
