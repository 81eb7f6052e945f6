"""Validate a latency profile against measurement and write docs/latency.md's results.

    python benchmarks/latency_check.py --profile profiles/cpu-ort-1t-zen3.json

Models: every shipped spec plus ``--random`` variants drawn with ``sweep --random``'s
sampler (archspec.analysis.sweep.random_variants + vary), spread evenly over the specs.
Each model is predicted from its spec alone and measured on the profile's runtime under the
profile's settings (its backend, threads and batch), in interleaved rounds
(archspec.latency.check), in chunks of ``--chunk`` models. The figures (fraction
within +-10% of the measured median, the measurement's own round-to-round spread) go
into the generated part of docs/latency.md and, with every model, into ``--json``.

    python benchmarks/latency_check.py --repredict OLD_PROFILE --profile NEW_PROFILE

measures nothing: it recomputes the predictions of the measurements saved in ``--json``
with NEW_PROFILE (e.g. the shipped profile refitted from the same raw measurements) and
rewrites both outputs. The models are rebuilt from the specs with the saved arguments;
OLD_PROFILE, the profile the saved predictions came from, must reproduce every one of
them, which proves the rebuilt models are the measured ones.

Stopped (Ctrl-C or SIGTERM) after at least one chunk, a run writes the chunks it finished
to ``<json stem>.partial.json`` (never over a finished run's file), marked ``"partial":
{"measured": n, "models": N}``, leaves the doc alone and exits 130. ``--repredict`` and
``benchmarks/latency_lofo.py`` read such a file but write no doc block from it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.analysis.sweep import random_variants, vary  # noqa: E402
from archspec.fsutil import atomic_write_text  # noqa: E402
from archspec.latency.networks import random_network  # noqa: E402
from archspec.latency import check as chk  # noqa: E402
from archspec.latency.profile import load as load_profile, warn  # noqa: E402
from archspec.spec import load  # noqa: E402
from archspec.spec.loader import SHIPPED  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_check.py -->"
END = "<!-- END GENERATED -->"
# a torch eager profile's run has a block of its own (and --json default of its own)
TORCH_BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_check.py torch -->"
TORCH_END = "<!-- END GENERATED: benchmarks/latency_check.py torch -->"
TORCH_HEADING = "## Torch eager: latency_check\n\n"


def partial_path(path: str) -> str:
    """Where a stopped run writes: beside ``path``, ``<stem>.partial.json``."""
    p = Path(path)
    return str(p if p.name.endswith(".partial.json") else p.with_suffix(".partial.json"))


def default_json(backend: str) -> str:
    return str(ROOT / "benchmarks" / ("latency_check_torch.json" if backend == "torch"
                                      else "latency_check.json"))


def markers(backend: str) -> tuple[str, str]:
    return (TORCH_BEGIN, TORCH_END) if backend == "torch" else (BEGIN, END)


def models(n_random: int, seed: int) -> list[tuple[str, object]]:
    specs = [load(p) for p in sorted(SHIPPED.glob("*.yaml"))]
    out = [(s.name, s.compile()) for s in specs]
    per = math.ceil(n_random / len(specs))
    extra = []
    for i, s in enumerate(specs):
        for v in random_variants(per, seed + i, s):
            try:
                extra.append((f"{s.name} [{v.label()}]", vary(s, v).compile()))
            except Exception as e:  # a variant the spec cannot take: say so, skip it
                print(f"skip {s.name} {v.label()}: {e}", file=sys.stderr)
    return out + extra[:max(n_random, 0)] if len(extra) >= n_random else out + extra


def probe(backend: str = "onnxruntime", threads: int = 1, sessions: int = 4,
          runs: int = 10) -> float:
    """The machine's current noise: (max - min) / median of the run medians of a
    reference model (MobileNetV2 at 160 px) over fresh sessions (torch: fresh models) of
    the profile's backend and threads."""
    import statistics

    from archspec.latency.timing import time_runs as _time, wall_step as _wall_step

    g = load("mobilenetv2").with_(resolution=160).compile()
    meds = []
    for _ in range(sessions):
        step = _wall_step(g, threads, 1, backend)
        _time(step, 2)
        meds.append(statistics.median(_time(step, runs)))
    return (max(meds) - min(meds)) / statistics.median(meds)


def wait_for_quiet(max_range: float, max_wait_s: float, backend: str = "onnxruntime",
                   threads: int = 1) -> tuple[float, float]:
    """Wait (up to max_wait_s) until the probe's range is <= max_range, as a benchmark
    harness checks the system before timing: other tenants of this VM's host slow runs
    by 10-40% for minutes at a time, invisibly to the load average. Returns (seconds
    waited, last probe range)."""
    t0 = time.perf_counter()
    while True:
        r = probe(backend, threads)
        waited = time.perf_counter() - t0
        if r <= max_range or waited >= max_wait_s:
            return waited, r
        print(f"machine noisy (probe range {r:.1%} > {max_range:.0%}); waiting", file=sys.stderr)
        time.sleep(20)


def render(doc: dict) -> str:
    s, p = doc["summary"], doc["profile"]
    begin, end = markers(p["backend"])
    lines = [begin, "",
             f"Generated {doc['created']} by `python benchmarks/latency_check.py "
             f"{doc['argv']}` in {doc['seconds']:.0f} s; load average "
             f"{doc['load_before']} before, {doc['load_after']} after (2 cores, shared); "
             + (f"before each chunk of models the machine's noise was probed (reference "
                f"model, 4 fresh {'models' if p['backend'] == 'torch' else 'sessions'}) "
                f"and the chunk waited for a range <= "
                f"{doc['quiet_range']:.0%}: {doc['waited_s']:.0f} s waited in all, probe "
                f"ranges {', '.join(f'{r:.1%}' for r in doc['probes'])}; a chunk was "
                f"measured again when its models' median round-to-round spread exceeded "
                f"{doc['chunk_spread']:.0%} or a probe after it exceeded "
                f"{2 * doc['quiet_range']:.0%} ({doc['redone']} chunk(s) re-measured)."
                if doc["probes"] else "no quiet check (--quiet-range 0)."), "",
             f"- profile: `{doc['profile_path']}` ({p['backend']}, "
             f"{p['settings']['threads']} thread(s), batch {p['settings'].get('batch', 1)}, "
             f"NCHWc block "
             f"{p['settings']['nchwc_block']}), measured "
             f"{p['calibration'].get('measured', p['created'])} on {p['machine']['cpu']} "
             f"with {p['backend']} {p['versions'][p['backend']]}, fitted {p['created']}"
             + (f" with scikit-learn {p['fitted_with']['scikit-learn']}, numpy "
                f"{p['fitted_with']['numpy']}, {', '.join(p['fitted_with']['blas'])}"
                if p.get("fitted_with") else "") + ": "
             f"{p['calibration']['networks']} random networks + "
             f"{p['calibration'].get('variants', 0)} spec variants, "
             f"{p['calibration']['kernel_samples']} kernel samples in "
             f"{p['calibration']['seconds']:.0f} s; calibration round-to-round spread median "
             f"{p['calibration']['round_spread_median']:.1%}, p90 "
             f"{p['calibration']['round_spread_p90']:.1%}; model: {doc['model_desc']}",
             f"- models: {s['models']} ({doc['shipped']} shipped specs + "
             f"{s['models'] - doc['shipped']} random variants), each measured in "
             f"{doc['rounds']} interleaved rounds x at least {doc['repeats']} runs and 20 ms, a "
             f"fresh {'model' if p['backend'] == 'torch' else 'session'} per round", "",
             "| figure | value |", "|---|---|",
             f"| **within +-10% of the measured median** | **{s['within']:.1%}** "
             f"({round(s['within'] * s['models'])} of {s['models']}) |",
             f"| within +-10%, shipped specs only | {doc['within_shipped']:.1%} |",
             f"| median absolute error | {s['abs_error_median']:.1%} |",
             f"| p90 absolute error | {s['abs_error_p90']:.1%} |",
             f"| median signed error (predicted / measured - 1) | "
             f"{s['signed_error_median']:+.1%} |",
             f"| measurement spread (max - min of round medians) / median: median | "
             f"{s['spread_median']:.1%} |",
             f"| measurement spread: p90 | {s['spread_p90']:.1%} |",
             f"| models whose error is within their own measurement spread | "
             f"{doc['within_spread']:.1%} |",
             f"| within +-10%, models whose measurement spread is <= 10% | "
             f"{doc['quiet']['within']:.1%} ({doc['quiet']['models']} models) |"]
    fr = s.get("fastest_round")
    if fr:
        lines.append(f"| against each model's fastest round median (the estimator a "
                     f"calibration fits): within +-10% / median signed error | "
                     f"{fr['within']:.1%} / {fr['signed_error_median']:+.1%} |")
    ins = doc.get("in_sample")
    if ins:
        lines.append(f"| in-sample check: {ins['models']} calibration networks measured "
                     f"among the models, median signed error | "
                     f"{ins['signed_error_median']:+.1%} (within +-10%: {ins['within']:.0%}) |")
    lines += _repredicted_lines(doc.get("repredicted"))
    lines += ["",
             f"Verdict: {'meets' if s['within'] >= _bar(p) else 'does NOT meet'} the bar "
             f"for a {'quick' if _bar(p) < 0.95 else 'full'} calibration (>= "
             f"{_bar(p):.0%} within +-10%).", "",
             "<details><summary>every model</summary>", "",
             "| model | predicted ms | measured ms | error | spread |", "|---|---:|---:|---:|---:|"]
    for r in doc["results"]:
        lines.append(f"| {r['name']} | {r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | "
                     f"{r['error']:+.1%} | {r['spread']:.1%} |")
    lines += ["", "</details>", "", end]
    return "\n".join(lines)


def _bar(profile: dict) -> float:
    """The share within +-10% a profile should reach on held-out networks: 85% after
    `calibrate --quick` (its campaign's networks and variants), 95% after any other."""
    from archspec.latency.calibrate import QUICK

    c = profile["calibration"]
    quick = (c.get("networks"), c.get("variants")) == (QUICK["networks"], QUICK["variants"])
    return 0.85 if quick else 0.95


def _round_ms(x) -> list | None:
    """A saved result's round medians when they are usable (a non-empty list of positive
    times), else None (files from before they were recorded, or edited ones)."""
    from archspec.latency.profile import positive_time

    return list(x) if isinstance(x, list) and x and all(map(positive_time, x)) else None


def _repredicted_lines(r: dict | None) -> list[str]:
    if not r:
        return []
    prev = r["previous"]
    return ["", f"Predictions recomputed {r['created']} without measuring (`--repredict`), "
            f"with the profile fitted {r['profile_created']}; the measurements are those of "
            f"the run above. Against the profile they were predicted with before (fitted "
            f"{prev['created']}{prev['fitted_with']}), predictions moved by median "
            f"{r['shift_all']['median']:.2%}, max {r['shift_all']['max']:.2%} over the "
            f"{r['shift_all']['models']} models (shipped specs: median "
            f"{r['shift_shipped']['median']:.2%}, max {r['shift_shipped']['max']:.2%})."]


def write_doc(path: Path, block: str, begin: str = BEGIN, end: str = END, *,
              missing: str | None = "") -> None:
    """Put ``block`` (which starts with ``begin`` and ends with ``end``) in place of the
    doc's generated block; a doc without one gets ``missing`` + ``block`` appended (an
    error when ``missing`` is None). The latency benchmarks share it."""
    text = path.read_text() if path.exists() else ""
    if begin in text:
        head, rest = text.split(begin, 1)
        if end not in rest:
            raise SystemExit(f"{path}: {begin} without {end}: mend the file by hand")
        text = head + block + rest.split(end, 1)[1]
    elif missing is None:
        raise SystemExit(f"{path}: no {begin} ... {end} block to replace")
    else:
        text = text.rstrip() + "\n\n" + missing + block + "\n"
    path.write_text(text)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="profiles/cpu-ort-1t-zen3.json")
    ap.add_argument("--random", type=int, default=102, help="random variants (>= 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--calib-nets", type=int, default=10,
                    help="also re-measure this many calibration networks (in-sample: "
                         "their error shows the machine's drift since calibration)")
    ap.add_argument("--quiet-range", type=float, default=0.05,
                    help="before each chunk, wait until a probe's session-to-session range "
                         "is at most this (0: do not wait)")
    ap.add_argument("--max-wait", type=float, default=900.0,
                    help="seconds to wait for quiet per chunk before measuring anyway")
    ap.add_argument("--chunk-spread", type=float, default=0.12,
                    help="re-measure a chunk whose models' median round-to-round spread "
                         "exceeds this (a noisy spell during the chunk)")
    ap.add_argument("--retries", type=int, default=3,
                    help="times a noisy chunk is measured again before it is kept as is")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "latency.md"),
                    help="'' writes no doc block")
    ap.add_argument("--json", default=None, help="every model's figures [default: "
                    "benchmarks/latency_check.json; latency_check_torch.json for a torch "
                    "profile]")
    ap.add_argument("--repredict", metavar="OLD_PROFILE", default=None,
                    help="measure nothing: recompute the predictions saved in --json with "
                         "--profile (OLD_PROFILE: the profile they were predicted with)")
    return ap


def named_models(n_random: int, seed: int, calib_nets: int, calib_seed: int,
                 sampler: int = 1) -> list:
    """The validation models and the in-sample calibration networks (as version
    ``sampler`` of the sampling plan drew them: the profile's), by name."""
    return models(n_random, seed) + [(f"calibration network {i}",
                                      random_network(calib_seed * 100_000 + i, sampler))
                                     for i in range(calib_nets)]


def write(doc: dict, results: list, profile_path: str, profile, args) -> dict:
    """Fill ``doc`` with the figures of ``results`` (calibration networks apart) and the
    profile, and write --json and the doc's generated block; returns the summary."""
    calib = [r for r in results if r.name.startswith("calibration network")]
    results = [r for r in results if not r.name.startswith("calibration network")]
    named_shipped = {p.stem for p in SHIPPED.glob("*.yaml")}
    results.sort(key=lambda r: (r.name.split(" [")[0] not in named_shipped or "[" in r.name,
                                r.name))
    shipped = sum(r.name in named_shipped for r in results)
    summary = chk.summary(results)
    doc.update({
        "profile_path": profile_path, "profile": profile.to_dict(), "shipped": shipped,
        "summary": summary,
        "within_shipped": sum(abs(r.error) <= 0.10 for r in results[:shipped])
        / max(1, shipped),
        "within_spread": sum(abs(r.error) <= max(r.spread, 0.0) for r in results)
        / len(results),
        "quiet": {"models": sum(r.spread <= 0.10 for r in results),
                  "within": sum(abs(r.error) <= 0.10 for r in results if r.spread <= 0.10)
                  / max(1, sum(r.spread <= 0.10 for r in results))},
        "in_sample": chk.summary(calib) if calib else None,
        "in_sample_results": [r.to_dict() for r in calib],
        "results": [r.to_dict() for r in results]})
    m = doc["profile"].pop("model")
    doc["model_desc"] = (f"linear{' + cache hinges' if m.get('hinges_elems') else ''} + "
                         f"{len((m.get('trees') or {}).get('trees', []))} boosted trees + "
                         "network-level correction")
    args.json = args.json or default_json(profile.backend)
    atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")   # whole or not at all
    begin, end = markers(profile.backend)
    if args.doc:   # '' writes the JSON alone (another machine's run, a trial)
        write_doc(Path(args.doc), render(doc), begin, end,
                  missing=TORCH_HEADING if profile.backend == "torch" else "")
    return summary


def _shift(pairs) -> dict:
    moved = [abs(new / old - 1) for old, new in pairs]
    return {"models": len(moved), "median": statistics.median(moved), "max": max(moved)}


def repredict(args) -> int:
    """Recompute the saved measurements' predictions with --profile (module docstring)."""
    old, new = load_profile(args.repredict), load_profile(args.profile)
    args.json = args.json or default_json(new.backend)
    doc = json.loads(Path(args.json).read_text())
    measured_batch = doc.get("batch", old.batch)
    if new.batch != measured_batch:
        sys.exit(f"{args.profile} predicts batch {new.batch}; the saved measurements are of "
                 f"batch {measured_batch}: measure again with that profile")
    if doc.get("partial") and args.doc:
        args.doc = ""   # a stopped run's figures stay out of the doc's block
        print(f"{args.json} is a stopped run's (partial): the doc is not written",
              file=sys.stderr)
    saved = parser().parse_args(shlex.split(doc["argv"]))
    # the in-sample calibration networks as they were drawn (a file that does not say:
    # by the plan of the profile that predicted it)
    doc["sampler"] = doc.get("sampler", old.calibration.get("sampler", 1))
    graphs = dict(named_models(saved.random, saved.seed, saved.calib_nets,
                               old.calibration.get("seed", 0), doc["sampler"]))
    rows = doc["results"] + doc["in_sample_results"]
    results, pairs, shipped_pairs = [], [], []
    for r in rows:
        g = graphs.get(r["name"])
        was = chk.predict(g, old).total_ms if g is not None else None
        if was is None or not math.isclose(was, r["predicted_ms"], rel_tol=1e-9):
            sys.exit(f"{r['name']}: {args.repredict} predicts {was}, the saved prediction "
                     f"is {r['predicted_ms']}: the rebuilt model is not the one measured "
                     "(or that is not the profile it was predicted with)")
        now = chk.predict(g, new).total_ms
        results.append(chk.Checked(r["name"], now, r["measured_ms"], r["spread"],
                                   r["rounds"], r["repeats"], _round_ms(r.get("round_ms"))))
        pairs.append((was, now))
        if "[" not in r["name"] and not r["name"].startswith("calibration network"):
            shipped_pairs.append((was, now))
    fitted = old.fitted_with
    doc["repredicted"] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile_created": new.created,
        "previous": {"created": old.created,
                     "fitted_with": f" with scikit-learn {fitted['scikit-learn']}"
                     if fitted else ", its fit environment not recorded"},
        "shift_all": _shift(pairs), "shift_shipped": _shift(shipped_pairs)}
    summary = write(doc, results, args.profile, new, args)
    print(json.dumps({**summary, "shift": doc["repredicted"]}, indent=1))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _measure(args, named, profile, threads: int, results: list, probes: list,
             counts: list) -> None:
    """Measure ``named`` chunk by chunk into ``results`` (a chunk counts once it is
    done); ``counts``: [chunks measured again, seconds waited for quiet]."""
    for i in range(0, len(named), args.chunk):
        chunk = named[i:i + args.chunk]
        for attempt in range(args.retries + 1):
            if args.quiet_range > 0:
                w, r = wait_for_quiet(args.quiet_range, args.max_wait, profile.backend,
                                      threads)
                counts[1] += w
                probes.append(r)
            # measured with the profile's threads and batch (what it predicts)
            got = chk.check(chunk, profile, rounds=args.rounds, repeats=args.repeats)
            spread = sorted(x.spread for x in got)[len(got) // 2]
            after = probe(profile.backend, threads) if args.quiet_range > 0 else 0.0
            # a chunk counts when the machine was quiet before, during (the chunk's own
            # median round-to-round spread) and after it; otherwise it is measured again
            if args.quiet_range <= 0 or (spread <= args.chunk_spread
                                         and after <= 2 * args.quiet_range):
                break
            if attempt < args.retries:
                counts[0] += 1
                print(f"chunk at {i}: noisy (median spread {spread:.1%}, probe after "
                      f"{after:.1%}); measuring it again", file=sys.stderr)
        results += got
        done = len(results)
        ok = sum(abs(r.error) <= 0.10 for r in results)
        print(f"{done}/{len(named)} measured, {ok / done:.1%} within +-10% so far "
              f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.repredict:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from latency_pairs import _refusing_bad_files

        return _refusing_bad_files(repredict, args)
    profile = load_profile(args.profile)
    warn(profile, args.profile)
    t0 = time.perf_counter()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    named = named_models(args.random, args.seed, args.calib_nets,
                         profile.calibration.get("seed", 0),
                         profile.calibration.get("sampler", 1))
    # spread the in-sample networks over the chunks, so each time window has some
    order = list(range(len(named) - args.calib_nets))
    step = max(1, len(order) // max(args.calib_nets, 1))
    for j, i in enumerate(range(len(named) - args.calib_nets, len(named))):
        order.insert(min(len(order), j * (step + 1)), i)
    named = [named[i] for i in order]
    results, probes, counts = [], [], [0, 0.0]   # chunks measured again, s waited
    threads = int(profile.settings.get("threads", 1))
    # stopped (Ctrl-C, kill): the chunks measured so far are written, marked partial
    # (a batch-1 run took ~5 min on the quiet Xeon host, over an hour on the busy Zen 1)
    before = signal.signal(signal.SIGTERM, _interrupt)
    partial = None
    try:
        _measure(args, named, profile, threads, results, probes, counts)
    except KeyboardInterrupt:
        if not any(not r.name.startswith("calibration network") for r in results):
            raise           # no validation model finished: nothing to write
        if len(results) < len(named):
            partial = {"measured": len(results), "models": len(named)}
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
    if partial:
        # never over the file of a finished run (the default --json is the shipped one)
        args.json = partial_path(args.json or default_json(profile.backend))
        args.doc = ""   # the doc's block shows finished runs only
        print(f"stopped: writing the {len(results)} of {len(named)} models measured so "
              f"far to {args.json}, marked partial", file=sys.stderr)
    redone, waited = counts
    doc = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "argv": shlex.join(argv if argv is not None else sys.argv[1:]),
           "seconds": time.perf_counter() - t0, "load_before": load_before,
           "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
           "rounds": args.rounds, "repeats": args.repeats, "batch": profile.batch,
           "quiet_range": args.quiet_range, "waited_s": waited, "probes": probes,
           "redone": redone, "chunk_spread": args.chunk_spread,
           # the sampling plan that drew the in-sample calibration networks
           "sampler": profile.calibration.get("sampler", 1),
           **({"partial": partial} if partial else {})}
    summary = write(doc, results, args.profile, profile, args)
    print(json.dumps({**summary, **({"partial": partial} if partial else {})}, indent=1))
    return 130 if partial else 0     # a stopped run is not a finished one (as Ctrl-C)


if __name__ == "__main__":
    sys.exit(main())
