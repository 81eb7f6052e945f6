"""How one machine's speed moved between two calibrations, kernel family by family.

Two raw measurement files (``archspec calibrate --save-raw``) of the same backend and
settings share many networks (the same seed and sampling plan draw the same motifs and
variants); for every network recorded identically in both, each kernel's time in the
second file is divided by its time in the first. Printed per kernel family, and by the
kernels' size in the first file, with the networks' wall times and the reference
network's (where both fingerprints timed it): what moved, when the probe kernels
(``fingerprint``) say nothing did. Files whose kernels cover other nodes or were timed
otherwise (fusion, reorder attribution, partial add, sampler, denormals) are refused.
Measures nothing.

    python benchmarks/raw_drift.py OLD.raw.json NEW.raw.json [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SIZES = ((0, 10), (10, 50), (50, 200), (200, 1000), (1000, float("inf")))   # us


def family(type_: str) -> str:
    parts = type_.split(".")
    return ".".join(parts[:2]) if parts[0] == "conv" else parts[0]


def _by_net(raw: dict) -> dict:
    out = defaultdict(list)
    for s in raw["samples"]:
        out[s["net"]].append(s)
    return out


def drift(old: dict, new: dict) -> dict:
    """Per-family and per-size medians of new / old kernel times over the networks both
    files recorded identically, the walls' ratios, and both fingerprints."""
    # what decides which nodes a kernel covers, how its time was charged and what the
    # runs computed: files that differ in any of these time different things
    for key in ("backend", "threads", "batch", "nchwc_block", "partial_add", "reorders",
                "sampler", "fusion", "denormals"):
        a, b = (_setting(r, key) for r in (old, new))
        if a != b:
            raise ValueError(f"the files differ in {key}: {a!r} vs {b!r}")
    ga, gb = old["networks_ir"]["graphs"], new["networks_ir"]["graphs"]
    pa, pb = _by_net(old), _by_net(new)
    families, sized, walls, nets = defaultdict(list), defaultdict(list), [], 0
    for i, (a, b) in enumerate(zip(ga, gb)):
        if a != b or len(pa[i]) != len(pb[i]):
            continue
        nets += 1
        if old["walls"][i] > 0 and new["walls"][i] > 0:
            walls.append(new["walls"][i] / old["walls"][i])
        for sa, sb in zip(pa[i], pb[i]):
            if sa["type"] != sb["type"] or sa["us"] <= 0 or sb["us"] <= 0:
                continue
            r = sb["us"] / sa["us"]
            families[family(sa["type"])].append(r)
            for lo, hi in SIZES:
                if lo <= sa["us"] < hi:
                    sized[f"{lo}-{hi} us"].append(r)
    if not walls:
        raise ValueError("no network is recorded identically (with a wall time) in both "
                         "files")

    def med(xs):
        return {"kernels": len(xs), "median_ratio": round(statistics.median(xs), 4)}
    ka, kb = ((r.get("fingerprint") or {}).get("kernels") for r in (old, new))
    probe = {k: round(kb[k] / ka[k], 4) for k in ka if k in kb} if ka and kb else None
    na, nb = ((r.get("fingerprint") or {}).get("network") or {} for r in (old, new))
    same = all(na.get(k) == nb.get(k) for k in ("name", "resolution", "batch", "version"))
    reference = round(nb["ms"] / na["ms"], 4) if same and na.get("ms") and nb.get("ms") \
        else None
    return {"old": old.get("measured"), "new": new.get("measured"), "networks": nets,
            "walls": {"median_ratio": round(statistics.median(walls), 4),
                      "p10": round(sorted(walls)[len(walls) // 10], 4),
                      "p90": round(sorted(walls)[9 * len(walls) // 10], 4)},
            "families": {f: med(v) for f, v in sorted(families.items(),
                                                      key=lambda kv: -len(kv[1]))},
            "sizes": {s: med(sized[s]) for s in (f"{lo}-{hi} us" for lo, hi in SIZES)
                      if sized[s]},
            "probe_ratio": probe, "reference_ratio": reference}


def _setting(raw: dict, key: str):
    """A raw file's setting as archspec reads it (a file from before a setting was
    recorded: what it was then): the fusion its kernels were attributed with, the
    partial-add lowering, how reorders were charged, the sampling plan, whether timings
    were flushed of denormals (not the note's wording)."""
    from archspec.latency.raw import partial_add_lowering, raw_backend, raw_batch, raw_fusion

    if key == "fusion":
        return raw_fusion(raw)
    if key == "backend":
        return raw_backend(raw)
    if key == "partial_add":
        return partial_add_lowering(raw)
    if key == "reorders":
        return raw.get(key, "next kernel") if raw_backend(raw) == "onnxruntime" else None
    if key == "sampler":
        return raw.get(key, 1)
    if key == "batch":
        return raw_batch(raw)
    value = raw.get(key)
    if key == "denormals":
        return isinstance(value, str) and value.startswith("flushed")
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    try:
        d = drift(json.loads(args.old.read_text()), json.loads(args.new.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"raw_drift: {e}", file=sys.stderr)
        return 2
    print(f"{args.old} ({d['old']}) -> {args.new} ({d['new']}): {d['networks']} networks "
          f"recorded identically; walls x{d['walls']['median_ratio']} (p10 "
          f"{d['walls']['p10']}, p90 {d['walls']['p90']})")
    for title, rows in (("family", d["families"]), ("kernel size (old)", d["sizes"])):
        print(f"\n{title:18s} kernels  new / old (median)")
        for name, r in rows.items():
            print(f"{name:18s} {r['kernels']:7d}  {r['median_ratio']:.3f}")
    if d["probe_ratio"]:
        print("\nprobe kernels new / old: " + ", ".join(f"{k} {v:.3f}"
                                                        for k, v in d["probe_ratio"].items()))
    if d["reference_ratio"]:
        print(f"reference network new / old: {d['reference_ratio']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(d, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
