"""Leave one architecture family out of a calibration and predict that family (issue 18's
"families never seen in calibration"), measuring nothing.

    python benchmarks/latency_lofo.py --raw profiles/cpu-ort-1t-zen3.raw.json \\
        --check benchmarks/latency_check.json --profile profiles/cpu-ort-1t-zen3.json

For each family F (``FAMILIES``: every shipped spec, heads with their backbone's family)
the profile is refitted exactly as ``archspec calibrate --from-raw`` refits it
(``raw.load_raw`` + ``fitting.build``, the trees, tree seed and ``act`` option read from
``--profile``) from the raw calibration measurements *without* F's calibration variants
(their kernel samples, walls and overheads dropped, the networks renumbered; the random
motif networks belong to no family and always stay; the profiler's per-node cost, already
taken out of the samples at calibration, stays as estimated over all networks), and F's
validation models -- the models of ``--check`` (``benchmarks/latency_check.py``'s
measurements) whose spec is in F -- are predicted and compared with their measured
medians. The row "none left out" is the full refit, scored on the same models, so the
cost of leaving a family out shows.

The validation models are rebuilt as ``latency_check.py --repredict`` rebuilds them (its
``parser`` and ``models``, with the saved argv and the list of specs that were shipped
when they were measured), and each rebuilt model must be predicted by ``--profile`` (the
profile ``--check`` was predicted with) exactly as saved: a model this archspec no longer
builds as it was measured is skipped and counted, never scored. A raw file whose networks
no longer fuse to the measured kernels is refused, as ``--from-raw`` refuses it, unless
``--skip-unmatched`` drops those networks (counted) from every fit. If the raw file
has its own held-out networks (``holdout``, since 2026-12-02), F's are scored too.

Output: a table on stdout, ``--json`` and the generated block in ``--doc``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_lofo.py -->"
END = "<!-- END GENERATED: benchmarks/latency_lofo.py -->"
# a torch eager calibration's figures: a block (and --json default) of their own
TORCH_BEGIN = "<!-- BEGIN GENERATED: benchmarks/latency_lofo.py torch -->"
TORCH_END = "<!-- END GENERATED: benchmarks/latency_lofo.py torch -->"
TOLERANCE = 0.10

# Every shipped spec's architecture family. A detection / segmentation spec belongs to its
# backbone's family (its head is a few layers on top; what a new family changes is the
# backbone). The replication note's variants (b)-(d) replace MobileNetV2's expansion conv by
# channel replication + BN -- kernels no other spec has -- so they are a family of their
# own; its baseline (a), mobilenetv2_cifar, is MobileNetV2. EfficientNetV2-B0 is with
# EfficientNet (MBConv + SE + swish; leaving one in while the other is out would leak).
# tests/test_latency_lofo.py checks that this covers every shipped spec.
FAMILIES = {
    "MobileNetV1": ("mobilenetv1",),
    "MobileNetV2": ("mobilenetv2", "mobilenetv2_2dwise", "mobilenetv2_cifar",
                    "ssdlite_mobilenetv2", "deeplabv3_mobilenetv2",
                    "deeplabv3_mobilenetv2_no_aspp"),
    "MobileNetV2 replication note": ("mobilenetv2_replication_b", "mobilenetv2_replication_c",
                                     "mobilenetv2_replication_d"),
    "MobileNetV3": ("mobilenetv3_large", "mobilenetv3_large_075", "mobilenetv3_small",
                    "mobilenetv3_small_075", "tf_mobilenetv3_large_100",
                    "tf_mobilenetv3_small_100", "ssdlite320_mobilenet_v3_large",
                    "ssdlite_mobilenetv3_large", "ssdlite_mobilenetv3_large_reduced",
                    "ssdlite_mobilenetv3_small", "ssdlite_mobilenetv3_small_reduced",
                    "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
                    "lraspp_mobilenetv3_large_cityscapes",
                    "lraspp_mobilenetv3_small_cityscapes"),
    "MobileNeXt": ("mobilenext", "mobilenext_se", "mobilenext_variant_a",
                   "mobilenext_variant_b", "mobilenext_variant_c", "ssdlite_mobilenext"),
    "ReXNet": ("rexnet", "rexnet_plain", "ssdlite_rexnet"),
    "EfficientNet": ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
                     "efficientnet_lite0", "tf_efficientnetv2_b0"),
    "MnasNet": ("mnasnet_100",),
    "FBNet": ("fbnetc_100",),
    "MixNet": ("mixnet_s",),
    "GhostNet": ("ghostnet_100",),
    "LCNet": ("lcnet_100",),
    "ShuffleNet": ("shufflenet_v2_x1_0",),
    "ResNet": ("resnet50",),
}
FAMILY_OF = {spec: fam for fam, specs in FAMILIES.items() for spec in specs}
NONE = "none left out"


def shipped_specs() -> dict:
    """name -> path of every shipped spec (``archspec specs``)."""
    from archspec.spec import load
    from archspec.spec.loader import SHIPPED

    return {load(p).name: p for p in sorted(SHIPPED.glob("*.yaml"))}


def spec_of(graph) -> str | None:
    """The shipped spec a calibration network was drawn from (its ``meta['spec']``, else
    its name before any ``[``); None for a random motif network (``calib<seed>``)."""
    spec = graph.get("meta", {}).get("spec") if isinstance(graph, dict) else \
        graph.meta.get("spec")
    name = graph["name"] if isinstance(graph, dict) else graph.name
    if spec:
        return spec
    if name.startswith("calib") and name[5:].isdigit():
        return None
    return name.split(" [")[0]


def family_of(spec: str | None) -> str | None:
    if spec is None:
        return None
    if spec not in FAMILY_OF:
        raise SystemExit(f"spec {spec!r} has no family in benchmarks/latency_lofo.py's "
                         "FAMILIES: add it there")
    return FAMILY_OF[spec]


# ---- the raw measurements ------------------------------------------------------------------
def network_count(raw: dict) -> int:
    return int(raw["networks"]) + int(raw.get("variants", 0))


def per_network_keys(raw: dict) -> list[str]:
    """The raw file's top-level lists with one entry per calibration network (walls,
    overhead, wall_rounds, ...; the samples name their network instead)."""
    n = network_count(raw)
    return sorted(k for k, v in raw.items()
                  if k != "samples" and isinstance(v, list) and len(v) == n)


def drop_networks(raw: dict, drop) -> dict:
    """A copy of raw measurements (as read from the file) without the calibration networks
    ``drop`` (indices): their samples and per-network entries removed, the other networks
    renumbered in order, the motif / variant counts lowered."""
    drop = set(drop)
    n = network_count(raw)
    keep = [i for i in range(n) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    out = dict(raw)
    for k in per_network_keys(raw):
        out[k] = [raw[k][i] for i in keep]
    out["samples"] = [{**s, "net": new_index[s["net"]]} for s in raw["samples"]
                      if s["net"] not in drop]
    if "networks_ir" in raw:
        out["networks_ir"] = {**raw["networks_ir"],
                              "graphs": [raw["networks_ir"]["graphs"][i] for i in keep]}
    motifs = int(raw["networks"])
    out["networks"] = motifs - sum(i < motifs for i in drop)
    out["variants"] = int(raw.get("variants", 0)) - sum(i >= motifs for i in drop)
    return out


def family_networks(raw: dict) -> dict:
    """family (None: motif networks) -> indices of its calibration networks."""
    out: dict = {}
    for i, g in enumerate(raw["networks_ir"]["graphs"]):
        out.setdefault(family_of(spec_of(g)), []).append(i)
    return out


def unmatched_networks(raw: dict) -> list[int]:
    """Networks whose kernels under this archspec's fusion rules are not the measured ones
    (what makes ``load_raw`` refuse the file)."""
    from archspec.latency.kernels import backend_kernels
    from archspec.latency.raw import (networks_from_record, partial_add_lowering, raw_backend,
                                      raw_fusion)

    measured: dict[int, list] = {}
    for s in raw["samples"]:
        measured.setdefault(s["net"], []).append(s["type"])
    graphs = networks_from_record(raw["networks_ir"])
    block, lowering = int(raw["nchwc_block"]), partial_add_lowering(raw)
    backend = raw_backend(raw)
    return [i for i, g in enumerate(graphs)
            if [k.type for k in backend_kernels(g, backend, block, lowering,
                                                **raw_fusion(raw))]
            != measured.get(i, [])]


def read_raw(path) -> dict:
    """The raw file as stored (no features), with its networks' record (an older file's
    rebuilt from its seeds, as ``load_raw`` does)."""
    from archspec.latency import raw as rawfile

    raw = rawfile._read(path)
    if "networks_ir" not in raw:
        rawfile._rebuilt_from_seeds(raw)
    return raw


def refit(raw: dict, fit: dict):
    """The profile ``archspec calibrate --from-raw`` fits from ``raw``: written to a file,
    read back by ``load_raw`` (features recomputed, kernels checked against the samples)
    and fitted by ``fitting.build``. The held-out networks are not scored here."""
    from archspec.latency import fitting
    from archspec.latency.raw import load_raw, save_raw

    raw = {k: v for k, v in raw.items() if k not in ("schema", "holdout")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.json"
        save_raw(raw, path)
        loaded = load_raw(path)
    return fitting.build(loaded, n_trees=fit["trees"], tree_seed=fit["tree_seed"],
                         tree_act=fit["tree_act"])


def fit_settings(profile, args) -> dict:
    """Trees, tree seed and ``act`` as the profile was fitted (flags override)."""
    from archspec.latency.model import TREE_FEATURES

    trees_stats = profile.model.stats.get("trees") or {}
    feats = (profile.model.trees or {}).get("features", [])
    return {"trees": args.trees if args.trees is not None else
            int(trees_stats.get("trees", len((profile.model.trees or {}).get("trees", [])))),
            "tree_seed": args.tree_seed if args.tree_seed is not None else
            int(trees_stats.get("seed", 0)),
            "tree_act": args.tree_act if args.tree_act is not None else
            len(feats) == len(TREE_FEATURES)}


# ---- the validation models -----------------------------------------------------------------
class _Specs:
    """Stands in for the shipped-spec folder: ``glob`` lists the specs that were shipped
    when the check measured (latency_check.models seeds variant i of spec i by its index)."""

    def __init__(self, paths):
        self.paths = list(paths)

    def glob(self, pattern):
        return iter(self.paths)


def check_models(check: dict, profile) -> tuple[list[dict], list[dict]]:
    """The check's validation models rebuilt (latency_check.py --repredict's way) and
    verified: (rows with ``graph`` added, skipped rows with ``why``)."""
    import latency_check as lc

    from archspec.latency import check as chk

    saved = lc.parser().parse_args(shlex.split(check["argv"]))
    names = sorted({r["name"] for r in check["results"] if " [" not in r["name"]})
    paths = shipped_specs()
    missing = [n for n in names if n not in paths]
    if missing:
        raise SystemExit(f"specs measured by the check are no longer shipped: {missing}")
    was = lc.SHIPPED
    lc.SHIPPED = _Specs(sorted(paths[n] for n in names))
    try:
        graphs = dict(lc.models(saved.random, saved.seed))
    finally:
        lc.SHIPPED = was
    rows, skipped = [], []
    for r in check["results"]:
        g = graphs.get(r["name"])
        if g is None:
            skipped.append({**r, "why": "not rebuilt"})
            continue
        ms = chk.predict(g, profile).total_ms
        if not math.isclose(ms, r["predicted_ms"], rel_tol=1e-9):
            skipped.append({**r, "why": f"rebuilt model predicted {ms:.4f} ms, saved "
                            f"{r['predicted_ms']:.4f}: not the model measured"})
            continue
        rows.append({**r, "graph": g, "spec": r["name"].split(" [")[0]})
    return rows, skipped


# ---- scoring -------------------------------------------------------------------------------
def score(errors: list[float]) -> dict:
    if not errors:
        return {"models": 0}
    return {"models": len(errors),
            "within": sum(abs(e) <= TOLERANCE for e in errors),
            "share_within": round(sum(abs(e) <= TOLERANCE for e in errors) / len(errors), 4),
            "abs_error_median": round(statistics.median(abs(e) for e in errors), 4),
            "signed_error_median": round(statistics.median(errors), 4)}


def holdout_rows(raw: dict) -> list[dict]:
    """The raw file's own held-out networks (empty for a file that predates them): graph,
    spec and measured ms (fastest round median, the estimator the profile is fitted to)."""
    h = raw.get("holdout")
    if not h:
        return []
    from archspec.latency.raw import networks_from_record

    graphs = networks_from_record(h["networks_ir"])
    measured = [min(r) for r in h["round_ms"]] if "round_ms" in h else h["measured_ms"]
    return [{"graph": g, "spec": spec_of(g), "measured_ms": m}
            for g, m in zip(graphs, measured)]


def predicted_errors(rows: list[dict], profile) -> list[float]:
    from archspec.latency import check as chk

    return [chk.predict(r["graph"], profile).total_ms / r["measured_ms"] - 1 for r in rows]


def revision() -> str:
    """The archspec commit the refits ran on, and whether archspec/ had uncommitted changes."""
    def git(*a):   # no optional locks: never rewrites the index others are using
        return subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), *a],
                              capture_output=True, text=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + (" with uncommitted changes in archspec/"
                  if git("status", "--porcelain", "--", "archspec") else "")


def run(args) -> dict:
    from archspec.latency.profile import load as load_profile
    from archspec.latency.raw import digest, raw_backend

    t0 = time.perf_counter()
    check = json.loads(Path(args.check).read_text())
    if check.get("partial") and args.doc:
        # a stopped run scored the first chunks only (the shipped specs first): not a
        # figure for the doc
        raise SystemExit(f"{args.check} is a stopped run's (partial: "
                         f"{check['partial']['measured']} of {check['partial']['models']} "
                         "models): give --doc '' to score it without writing the doc")
    profile = load_profile(args.profile)
    fit = fit_settings(profile, args)
    raw = read_raw(args.raw)
    same_raw = profile.calibration.get("raw_sha256") == digest(raw)
    backends = {"--raw": raw_backend(raw), "--profile": profile.backend,
                "--check": (check.get("profile") or {}).get("backend", "onnxruntime")}
    if len(set(backends.values())) > 1:
        raise SystemExit("the inputs are of different backends ("
                         + ", ".join(f"{k} {v}" for k, v in backends.items())
                         + "): give the raw file, profile and latency_check JSON of one "
                         "calibration (a torch one: --raw profiles/cpu-torch-1t-zen3.raw.json "
                         "--profile profiles/cpu-torch-1t-zen3.json --check "
                         "benchmarks/latency_check_torch.json)")
    unmatched = unmatched_networks(raw)
    if unmatched and not args.skip_unmatched:
        raise SystemExit(f"{args.raw}: {len(unmatched)} calibration networks no longer fuse "
                         "to their measured kernels under this archspec (calibrate "
                         "--from-raw refuses the file); --skip-unmatched leaves them out")
    unmatched_names = [spec_of(raw["networks_ir"]["graphs"][i]) or "motif" for i in unmatched]
    base = drop_networks(raw, unmatched)
    by_family = family_networks(base)

    rows, skipped = check_models(check, profile)
    held = holdout_rows(raw)
    wanted = [f.strip() for f in args.families.split(",")] if args.families else \
        [f for f in FAMILIES if f in {FAMILY_OF[r["spec"]] for r in rows}
         or f in by_family]
    unknown = [f for f in wanted if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")

    print(f"raw {args.raw}: {network_count(raw)} networks ({len(unmatched)} skipped, not "
          f"matching this archspec's kernels); check {args.check}: {len(rows)} models "
          f"scored, {len(skipped)} skipped; fit: {fit}", file=sys.stderr)
    full = refit(base, fit)
    print(f"full refit {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    families = []
    for fam in wanted:
        mine = [r for r in rows if FAMILY_OF[r["spec"]] == fam]
        mine_held = [r for r in held if FAMILY_OF.get(r["spec"]) == fam]
        specs = sorted({r["spec"] for r in mine})
        entry = {"family": fam, "specs": specs,
                 "calibration_networks": len(by_family.get(fam, [])),
                 "none_left_out": score(predicted_errors(mine, full)),
                 "profile": score([r["predicted_ms"] / r["measured_ms"] - 1 for r in mine])}
        if by_family.get(fam) and (mine or mine_held):
            lofo = refit(drop_networks(base, by_family[fam]), fit)
            entry["left_out"] = score(predicted_errors(mine, lofo))
            if held:
                entry["holdout_left_out"] = score(predicted_errors(mine_held, lofo))
                entry["holdout_none_left_out"] = score(predicted_errors(mine_held, full))
        else:
            entry["left_out"] = entry["none_left_out"]   # never calibrated: already unseen
        families.append(entry)
        print(f"{fam}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    scored = [f for f in families if f["left_out"].get("models")]
    mine_all = [r for r in rows if FAMILY_OF[r["spec"]] in wanted]
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/latency_lofo.py " + " ".join(args.argv),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_before": args.load_before,
        "revision": revision(),
        "raw": {"path": args.raw, "measured": raw.get("measured"),
                "cpu": (raw.get("machine") or {}).get("cpu"),
                "backend": raw.get("backend", "onnxruntime"),
                "version": (raw.get("versions") or {}).get(raw.get("backend", "onnxruntime")),
                "networks": int(raw["networks"]), "variants": int(raw.get("variants", 0)),
                "holdout": len(held), "sha256_is_profiles": same_raw,
                "unmatched_skipped": len(unmatched), "unmatched_specs": unmatched_names},
        "check": {"path": args.check, "created": check["created"],
                  **({"partial": check["partial"]} if check.get("partial") else {}),
                  "models": len(check["results"]), "scored": len(rows),
                  "skipped": [{"name": s["name"], "why": s["why"]} for s in skipped]},
        "profile": {"path": args.profile, "created": profile.created},
        "fit": fit,
        "families": families,
        "all_left_out": _pooled([f["left_out"] for f in scored]),
        "all_none_left_out": score(predicted_errors(mine_all, full)),
    }


def _pooled(scores: list[dict]) -> dict:
    """Share within over the families' left-out models together (medians not pooled)."""
    n = sum(s["models"] for s in scores)
    w = sum(s["within"] for s in scores)
    return {"models": n, "within": w, "share_within": round(w / n, 4) if n else None}


# ---- output --------------------------------------------------------------------------------
def _cells(s: dict) -> str:
    if not s.get("models"):
        return "0 | | | "
    return (f"{s['models']} | {s['share_within']:.0%} | {s['abs_error_median']:.1%} | "
            f"{s['signed_error_median']:+.1%}")


def table(doc: dict) -> list[str]:
    lines = ["| family left out | calibration variants | models | within +-10% | median "
             "\\|error\\| | median signed error | none left out: within +-10% | median "
             "signed |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for f in doc["families"]:
        if not f["left_out"].get("models"):
            continue
        n = f["none_left_out"]
        specs = f"{f['family']} ({len(f['specs'])} spec{'s' * (len(f['specs']) != 1)})"
        lines.append(f"| {specs} | {f['calibration_networks']} | {_cells(f['left_out'])} | "
                     f"{n['share_within']:.0%} | {n['signed_error_median']:+.1%} |")
    a, b = doc["all_left_out"], doc["all_none_left_out"]
    if a["models"]:
        lines.append(f"| **all families, each left out** | | {a['models']} | "
                     f"**{a['share_within']:.1%}** | | | {b['share_within']:.1%} | "
                     f"{b['signed_error_median']:+.1%} |")
    return lines


def _counts(names) -> str:
    """'a 6, b 1': how many of each name, in name order."""
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return ", ".join(f"{n} {k}" for n, k in sorted(out.items()))


def render(doc: dict) -> str:
    r, c = doc["raw"], doc["check"]
    held = [f for f in doc["families"] if f.get("holdout_left_out", {}).get("models")]
    torch = r.get("backend") == "torch"
    lines = [TORCH_BEGIN if torch else BEGIN, "",
             f"Generated {doc['created']} by `{doc['command']}` in {doc['seconds']:.0f} s "
             f"(refits only, nothing measured; archspec {doc['revision']}; load average "
             f"{doc['load_before']} before). "
             f"Calibration: `{r['path']}`, measured {r['measured']} on {r['cpu']} with "
             f"{r.get('backend', 'onnxruntime')} {r.get('version', r.get('onnxruntime'))} "
             f"({r['networks']} motif networks + "
             f"{r['variants']} spec variants"
             + (f"; {r['unmatched_skipped']} networks left out of every fit because this "
                f"archspec no longer fuses them to the measured kernels: "
                f"{_counts(r['unmatched_specs'])}" if r["unmatched_skipped"] else "") + "); "
             f"fit as `--profile {doc['profile']['path']}` (fitted {doc['profile']['created']}"
             f"): {doc['fit']['trees']} trees, tree seed {doc['fit']['tree_seed']}, "
             f"`act` {'read' if doc['fit']['tree_act'] else 'not read'}"
             + ("" if r["sha256_is_profiles"] else
                "; the raw file is NOT the one that profile was fitted on") + ". "
             f"Validation models: `{c['path']}`, measured {c['created']}: {c['scored']} of "
             f"{c['models']} scored"
             + (f", {len(c['skipped'])} skipped because this archspec no longer builds them "
                f"as they were measured ("
                f"{_counts(x['name'].split(' [')[0] for x in c['skipped'])})"
                if c["skipped"] else "") + ".", "",
             *table(doc)]
    if held:
        lines += ["", "The calibration's own held-out networks of each family (fastest round "
                  "median), same refits:", "",
                  "| family left out | held-out networks | within +-10% | median \\|error\\| "
                  "| median signed error | none left out: within +-10% |",
                  "|---|---:|---:|---:|---:|---:|"]
        for f in held:
            lines.append(f"| {f['family']} | {_cells(f['holdout_left_out'])} | "
                         f"{f['holdout_none_left_out']['share_within']:.0%} |")
    return "\n".join(lines + ["", TORCH_END if torch else END])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default="profiles/cpu-ort-1t-zen3.raw.json")
    ap.add_argument("--check", default="benchmarks/latency_check.json")
    ap.add_argument("--profile", default="profiles/cpu-ort-1t-zen3.json",
                    help="the profile --check was predicted with (verifies the rebuilt "
                         "models; its fit settings are the refits')")
    ap.add_argument("--families", default=None, help="comma-separated subset of FAMILIES")
    ap.add_argument("--skip-unmatched", action="store_true",
                    help="leave out of every fit the calibration networks this archspec no "
                         "longer fuses to their measured kernels (else refuse, as --from-raw)")
    ap.add_argument("--trees", type=int, default=None, help="default: the profile's")
    ap.add_argument("--tree-seed", type=int, default=None, help="default: the profile's")
    ap.add_argument("--tree-act", action=argparse.BooleanOptionalAction, default=None,
                    help="default: whether the profile's trees read `act`")
    ap.add_argument("--json", default=None, help="[default: benchmarks/latency_lofo.json; "
                    "latency_lofo_torch.json for a torch calibration]")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "latency.md"),
                    help="'' writes no doc block")
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    doc = run(args)
    print("\n".join(table(doc)))
    torch = doc["raw"]["backend"] == "torch"
    args.json = args.json or str(ROOT / "benchmarks" / (
        "latency_lofo_torch.json" if torch else "latency_lofo.json"))
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.doc:
        import latency_check as lc

        if torch:
            lc.write_doc(Path(args.doc), render(doc), TORCH_BEGIN, TORCH_END,
                         missing="## Torch eager: leave one family out\n\n")
        else:
            lc.write_doc(Path(args.doc), render(doc), BEGIN, END, missing=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
