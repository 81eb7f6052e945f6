"""The reference network timed back to back: how far one machine's readings of it spread.

The machine check compares this machine's time of the reference network
(``archspec.latency.probes.REFERENCE_NETWORK``, timed by ``probes.reference_ms`` as a use
of a profile times it) with its time at calibration; its bounds (``profile.DRIFT_FASTER``,
``DRIFT_SLOWER``) must sit above the spread of readings on one machine in one state.
This prints each reading with the time of day, then the spread (max / min - 1) and the
median, and the bounds for comparison. Run it on a machine with nothing else running;
run it again hours later to see how far the machine's state moves. Also a quick way to
tell whether now is a quiet moment to calibrate (a spread under ~3%).

    python benchmarks/reference_noise.py [--backend onnxruntime|torch] [--threads N]
        [--batch N] [--runs 15] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path


def readings(runs: int, threads: int, batch: int, backend: str, timer=None) -> list[float]:
    """``runs`` reference-network times (ms), printed as they come."""
    if timer is None:
        from archspec.latency.probes import reference_ms as timer
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ms = timer(threads, batch, backend)
        out.append(ms)
        print(f"{time.strftime('%H:%M:%S')} {ms:.4f} ms ({time.perf_counter() - t0:.2f} s)",
              flush=True)
    return out


def summary(ms: list[float]) -> dict:
    from archspec.latency.profile import DRIFT_FASTER, DRIFT_SLOWER

    return {"runs": len(ms), "min_ms": min(ms), "median_ms": statistics.median(ms),
            "max_ms": max(ms), "spread": round(max(ms) / min(ms) - 1, 4),
            "bounds": {"drift_faster": DRIFT_FASTER, "drift_slower": DRIFT_SLOWER}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", type=Path, help="also write the readings and summary here")
    args = ap.parse_args(argv)
    if min(args.threads, args.batch, args.runs) < 1:
        print("reference_noise: --threads, --batch and --runs must be at least 1",
              file=sys.stderr)
        return 2
    from archspec.bench import machine, versions

    ms = readings(args.runs, args.threads, args.batch, args.backend)
    s = summary(ms)
    print(f"{args.backend}, {args.threads} thread(s), batch {args.batch}: {s['runs']} "
          f"readings {s['min_ms']:.3f}-{s['max_ms']:.3f} ms (median {s['median_ms']:.3f}), "
          f"spread {s['spread']:.1%}; the machine check's drift bounds: "
          f"{s['bounds']['drift_faster']}x faster, {s['bounds']['drift_slower']}x slower")
    if args.json:
        doc = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "backend": args.backend, "threads": args.threads, "batch": args.batch,
               "readings_ms": ms, **s, "machine": machine(args.backend),
               "versions": versions()}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
