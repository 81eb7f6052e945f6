"""Predicted against measured *ratios* of network pairs that differ in one design choice
the latency model has to see (issue 18): the activation (MobileNetV2 with relu6 and with
hswish everywhere; MobileNetV3-Large as published and with ReLU everywhere, Table 5's
question) and MobileNeXt's identity tensor multiplier (alpha 1 against 1/2, 1/3 and 1/6,
Table 7).

    python benchmarks/latency_pairs.py --profile profiles/cpu-ort-1t-zen3.json [--rounds 12]

Every network of every pair is measured in the same interleaved rounds (fresh sessions,
archspec.latency.check.measure), so a slow spell of a shared machine lands on both sides
of a ratio. Per pair: measured ratio (median of all runs, and the ratio of the per-round
medians' median), predicted ratio, and the difference in points ((predicted - measured)
x 100); the target is within 5 points. The figures go into --json and the generated part
of docs/latency.md ("Pairs").

    python benchmarks/latency_pairs.py --repredict OLD_PROFILE --profile NEW --json SAVED

measures nothing: the saved measurements of --json (which OLD_PROFILE predicted: every
saved prediction is checked) are predicted again by --profile (a refit), --json and the
doc block rewritten with a line that says so.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archspec.bench import machine, versions  # noqa: E402
from archspec.latency import check as chk  # noqa: E402
from archspec.latency.profile import load as load_profile, warn  # noqa: E402
from archspec.spec import load  # noqa: E402
from archspec.spec.loader import SHIPPED  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_pairs.py -->"
END = "<!-- END GENERATED: benchmarks/latency_pairs.py -->"
# a torch eager profile's pairs: a block (and --json default) of their own
TORCH_BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_pairs.py torch -->"
TORCH_END = "<!-- END GENERATED: benchmarks/latency_pairs.py torch -->"


def _variant(tmp: Path, name: str, text: str):
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return load(path).compile()


def networks(tmp: Path) -> dict:
    """name -> IR graph of every network the pairs use (224 x 224, 1000 classes)."""
    v3 = (SHIPPED / "mobilenetv3_large.yaml").read_text()
    relu = re.sub(r"\bHS\b", "RE", v3)    # every h-swish of Table 1 (rows and head)
    nets = {
        "mobilenetv2 (relu6)": load("mobilenetv2").compile(),
        "mobilenetv2, hswish everywhere": _variant(
            tmp, "mnv2_hswish", f"extends: {SHIPPED / 'mobilenetv2.yaml'}\n"
            "name: mnv2_hswish\ndefaults: {nl: hswish, k: 3}\n"),
        "mobilenetv3_large (as published)": load("mobilenetv3_large").compile(),
        "mobilenetv3_large, relu everywhere": _variant(
            tmp, "mnv3_relu", relu.replace("name: mobilenetv3_large", "name: mnv3_relu")),
        "mobilenext (alpha 1)": load("mobilenext").compile()}
    for label, alpha in (("1/2", 0.5), ("1/3", 1 / 3), ("1/6", 1 / 6)):
        nets[f"mobilenext, alpha {label}"] = _variant(
            tmp, f"mnx_{alpha:.3f}", f"extends: {SHIPPED / 'mobilenext.yaml'}\n"
            f"name: mnx_alpha\ndefaults: {{nl: relu6, alpha: {alpha!r}}}\n")
    acts = {name: activations(g) for name, g in nets.items()}
    assert "hswish" not in acts["mobilenetv3_large, relu everywhere"], acts
    assert "relu6" not in acts["mobilenetv2, hswish everywhere"], acts
    return nets


PAIRS = [  # (name, base, other): ratio = other / base
    ("hswish / relu6, MobileNetV2", "mobilenetv2 (relu6)", "mobilenetv2, hswish everywhere"),
    ("relu / published, MobileNetV3-Large", "mobilenetv3_large (as published)",
     "mobilenetv3_large, relu everywhere"),
    ("alpha 1/2 / alpha 1, MobileNeXt", "mobilenext (alpha 1)", "mobilenext, alpha 1/2"),
    ("alpha 1/3 / alpha 1, MobileNeXt", "mobilenext (alpha 1)", "mobilenext, alpha 1/3"),
    ("alpha 1/6 / alpha 1, MobileNeXt", "mobilenext (alpha 1)", "mobilenext, alpha 1/6"),
]


def activations(graph) -> dict:
    """How many activation ops of each function the graph has (a sanity line)."""
    out: dict[str, int] = {}
    for n in graph:
        if n.kind == "activation":
            out[n.op.fn] = out.get(n.op.fn, 0) + 1
    return out


def _act_fitted(model: dict) -> str:
    """How many of the profile's fitted types price act_elems (0: an older profile)."""
    feats = model.get("features", [])
    if "act_elems" not in feats:
        return "none, fitted before the feature"
    i = feats.index("act_elems")
    return f"{sum(c[i] > 0 for c in model['coef'].values())} types > 0"


def render(doc: dict) -> str:
    p = doc["profile"]
    backend = p["backend"]
    begin, end = (TORCH_BEGIN, TORCH_END) if backend == "torch" else (BEGIN, END)
    lines = [
        begin,
        f"Measured {doc['created']} on {doc['machine']['cpu']} "
        f"({doc['machine']['logical_cores']} cores), load average {doc['load_before']} "
        f"before and {doc['load_after']} after, {backend} {doc['versions'][backend]}, "
        f"numpy {doc['versions']['numpy']}; {doc['rounds']} interleaved rounds of at least "
        f"{doc['repeats']} runs; profile `{doc['profile_path']}` (created {p['created']}, "
        f"{p['model_desc']}); `{doc['command']}`.",
        "",
        "| network | predicted ms | measured ms | error | round spread |",
        "|---|---:|---:|---:|---:|"]
    for r in doc["networks"]:
        lines.append(f"| {r['name']} | {r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | "
                     f"{r['error']:+.1%} | {r['spread']:.1%} |")
    lines += ["", "| pair (other / base) | measured ratio | per-round ratio (median, min-max) "
              "| predicted ratio | predicted - measured | within 5 points |",
              "|---|---:|---:|---:|---:|:---:|"]
    for r in doc["pairs"]:
        lines.append(
            f"| {r['pair']} | {r['measured']:.3f} | {r['round_median']:.3f} "
            f"({r['round_min']:.3f}-{r['round_max']:.3f}) | {r['predicted']:.3f} | "
            f"{r['points']:+.1f} | {'yes' if abs(r['points']) <= 5 else 'no'} |")
    if doc.get("repredicted"):
        r = doc["repredicted"]
        lines.append("")
        lines.append(f"Predictions recomputed {r['created']} (`--repredict`, nothing "
                     f"measured) with the profile created {r['profile_created']}; the "
                     f"measurements were predicted by the profile created "
                     f"{r['previous_created']}.")
    lines.append(end)
    return "\n".join(lines)


def _pairs(got: dict) -> list[dict]:
    """Per pair of PAIRS: measured and predicted ratio, and their difference in points."""
    pairs = []
    for label, base, other in PAIRS:
        b, o = got[base], got[other]
        per_round = [y / x for x, y in zip(b["rounds_ms"], o["rounds_ms"])]
        measured_ratio = o["measured_ms"] / b["measured_ms"]
        predicted = o["predicted_ms"] / b["predicted_ms"]
        pairs.append({"pair": label, "base": base, "other": other,
                      "measured": measured_ratio, "round_median": statistics.median(per_round),
                      "round_min": min(per_round), "round_max": max(per_round),
                      "predicted": predicted, "points": 100 * (predicted - measured_ratio)})
    return pairs


def _profile_record(profile) -> dict:
    p = profile.to_dict()
    m = p.pop("model")
    trees = m.get("trees") or {}
    reads_act = " reading `act`" if "act" in trees.get("features", []) else ""
    p["model_desc"] = (f"linear (act_elems coefficients: {_act_fitted(m)}) + "
                       f"{len(trees.get('trees', []))} boosted trees{reads_act} + "
                       "network-level correction")
    return p


def _write(doc: dict, args, torch: bool) -> None:
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.doc:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import latency_check as lc

        lc.write_doc(Path(args.doc), render(doc), *((TORCH_BEGIN, TORCH_END) if torch
                                                    else (BEGIN, END)),
                     missing="## Torch eager: pairs\n\n" if torch else "## Pairs\n\n")
    for r in doc["pairs"]:
        print(f"{r['pair']:<40} measured {r['measured']:.3f}  predicted {r['predicted']:.3f}"
              f"  ({r['points']:+.1f} points)")


def repredict(args) -> int:
    """The saved measurements of --json predicted again by --profile (module docstring)."""
    import math

    old, new = load_profile(args.repredict), load_profile(args.profile)
    doc = json.loads(Path(args.json).read_text())
    if old.backend != new.backend or new.batch != old.batch:
        sys.exit(f"{args.profile} predicts {new.backend} at batch {new.batch}; the saved "
                 f"measurements were predicted for {old.backend} at batch {old.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        nets = networks(Path(tmp))
    for r in doc["networks"]:
        was = chk.predict(nets[r["name"]], old).total_ms
        if not math.isclose(was, r["predicted_ms"], rel_tol=1e-9):
            sys.exit(f"{r['name']}: {args.repredict} predicts {was}, the saved prediction is "
                     f"{r['predicted_ms']}: not the profile (or the network) measured")
        r["predicted_ms"] = chk.predict(nets[r["name"]], new).total_ms
        r["error"] = r["predicted_ms"] / r["measured_ms"] - 1
    got = {r["name"]: r for r in doc["networks"]}
    doc["pairs"] = _pairs(got)
    doc["repredicted"] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/latency_pairs.py " + " ".join(args.argv),
        "profile_created": new.created, "previous_created": old.created}
    doc["profile_path"] = os.path.relpath(args.profile, ROOT)
    doc["profile"] = _profile_record(new)
    _write(doc, args, new.backend == "torch")
    return 0


def _refusing_bad_files(fn, args) -> int:
    """``fn(args)``, with a missing or broken profile or --json file an error message
    (exit 1), not a traceback."""
    from archspec.errors import ArchspecError

    try:
        return fn(args)
    except ArchspecError as e:
        sys.exit(f"error: {e}")
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {args.json}: cannot read the saved measurements "
                 f"({type(e).__name__}: {e})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=str(ROOT / "profiles" / "cpu-ort-1t-zen3.json"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None, help="[default: benchmarks/latency_pairs.json; "
                    "latency_pairs_torch.json for a torch profile]")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "latency.md"),
                    help="the doc whose generated 'Pairs' block is rewritten ('' for none)")
    ap.add_argument("--repredict", metavar="OLD_PROFILE", default=None,
                    help="measure nothing: predict the measurements saved in --json with "
                         "--profile (OLD_PROFILE: the profile they were predicted with)")
    args = ap.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.repredict:
        if not args.json:
            ap.error("--repredict needs --json (the saved measurements)")
        return _refusing_bad_files(repredict, args)
    profile = load_profile(args.profile)
    warn(profile, args.profile)
    threads = int(profile.settings.get("threads", 1))
    with tempfile.TemporaryDirectory() as tmp:
        nets = networks(Path(tmp))
    for name, g in nets.items():
        print(f"{name}: activations {activations(g)}", file=sys.stderr)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    names = list(nets)
    measured = chk.measure([nets[n] for n in names], threads, rounds=args.rounds,
                           repeats=args.repeats, backend=profile.backend,
                           batch=profile.batch)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    got = {n: {"name": n, "predicted_ms": chk.predict(nets[n], profile).total_ms,
               "measured_ms": med, "spread": spread, "rounds_ms": rounds}
           for n, (med, spread, rounds) in zip(names, measured)}
    for r in got.values():
        r["error"] = r["predicted_ms"] / r["measured_ms"] - 1
    pairs = _pairs(got)
    doc = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "command": "python benchmarks/latency_pairs.py " + " ".join(args.argv),
           "machine": machine(), "versions": versions((profile.backend, "numpy")),
           "load_before": load_before, "load_after": load_after, "rounds": args.rounds,
           "repeats": args.repeats, "profile_path": os.path.relpath(args.profile, ROOT),
           "profile": _profile_record(profile), "networks": list(got.values()),
           "pairs": pairs}
    torch = profile.backend == "torch"
    args.json = args.json or str(ROOT / "benchmarks" / (
        "latency_pairs_torch.json" if torch else "latency_pairs.json"))
    _write(doc, args, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
