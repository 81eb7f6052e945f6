"""The reproduction report, docs/reproduction.md: every figure of
:mod:`archspec.published` (what the papers print, the official implementations' counts)
next to ours, computed with ``archspec.load(...).cost()``; and MobileNetV2 Table 3's
MobileNetV1 column (memory) next to ``archspec memory --by-resolution``.

A difference above 2% must carry a one-line reason, or :func:`render` raises.
:func:`run` is ``archspec reproduce [--check]`` (and ``python -m archspec.reproduce``):
it rewrites the report, or with ``--check`` exits 1 when the checked-in file is stale.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .published import (FIGURES, REP, REX, TABLE3_MOBILENETV1, TABLE3_MOBILENETV1_MAX,
                        TABLE3_MOBILENETV1_NOTES, TABLE8_REXNET, V2, Figure)
from .spec.loader import SHIPPED, load, loads

DOC = Path(__file__).resolve().parent.parent / "docs" / "reproduction.md"
THRESHOLD = 2.0  # percent; above it a figure needs a reason


def _num(text: str | None) -> float | None:
    """'3.4M' -> 3.4e6, '0.398B' -> 3.98e8, '300M' -> 3e8."""
    if text is None:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[text[-1]]
    return float(text[:-1]) * scale



# ---- computing ------------------------------------------------------------------------
@cache
def ours(spec: str, width: float | None = None, resolution: int | None = None,
         part: str | None = None):
    """(params, madds) of a shipped spec name or an inline YAML variant; with ``part``,
    of that part of a spec with heads (``backbone``, ``heads.<name>``)."""
    if "\n" in spec:
        loaded = loads(spec, name="<reproduce>", base_dir=SHIPPED)
        loaded = loaded.with_(width=width, resolution=resolution)
    else:
        loaded = load(spec, width=width, resolution=resolution)
    report = loaded.cost()
    if part is None:
        return report.totals.params, report.totals.madds
    entry = next((e for e in report.parts if e.name == part), None)
    if entry is None:
        raise ValueError(f"{spec}: no part {part!r} (parts: "
                         f"{', '.join(e.name for e in report.parts) or 'none'})")
    return entry.params, entry.madds


def scale_dimension(dim: int, scale: float) -> int:
    """A side scaled as TF DeepLab's multi-scale eval scales it: int((dim - 1) x s + 1)."""
    return int((float(dim) - 1.0) * scale + 1.0)


def _resolution(spec: str, width: float | None) -> int:
    loaded = loads(spec, name="<reproduce>", base_dir=SHIPPED) if "\n" in spec else \
        load(spec, width=width)
    if loaded.input_width and loaded.input_width != loaded.resolution:
        raise ValueError(f"{spec}: multi-scale figures need a square input")
    return loaded.resolution


def figure_cost(fig: Figure) -> tuple[int, int]:
    """(params, madds) of a figure; with ``scales``, the MAdds summed over the input scaled
    by each (:func:`scale_dimension`), doubled with ``flip``."""
    params, madds = ours(fig.spec, fig.width, fig.resolution, fig.part)
    if not fig.scales:
        return params, madds
    base = fig.resolution or _resolution(fig.spec, fig.width)
    madds = sum(ours(fig.spec, fig.width, scale_dimension(base, s), fig.part)[1]
                for s in fig.scales)
    return params, madds * (2 if fig.flip else 1)


def _pct(a: float, b: float | None) -> float | None:
    return None if not b else 100.0 * (a - b) / b


@dataclass(frozen=True)
class Line:
    """One metric of one figure: printed, official and ours."""

    figure: Figure
    metric: str          # "params" or "madds"
    printed: str | None
    official: float | None
    ours: int

    @property
    def vs_paper(self) -> float | None:
        return _pct(self.ours, _num(self.printed))

    @property
    def vs_official(self) -> float | None:
        return _pct(self.ours, self.official)

    @property
    def reason(self) -> str:
        return self.figure.notes.get(self.metric) or ""

    def needs_reason(self) -> bool:
        return any(d is not None and abs(d) > THRESHOLD
                   for d in (self.vs_paper, self.vs_official))


def lines() -> list[Line]:
    out = []
    for fig in FIGURES:
        params, madds = figure_cost(fig)
        for metric, printed, official, value in (
                ("params", fig.params, fig.official_params, params),
                ("madds", fig.madds, fig.official_madds, madds)):
            if printed is not None or official is not None:
                out.append(Line(fig, metric, printed, official, value))
    return out


# ---- rendering ------------------------------------------------------------------------
def _fmt_ours(line: Line) -> str:
    return f"{line.ours:,}" if line.metric == "params" else f"{line.ours / 1e6:.2f} M"


def _fmt_official(line: Line) -> str:
    if line.official is None:
        return "—"
    return f"{line.official:,}" if line.metric == "params" else f"{line.official / 1e6:.2f} M"


def _fmt_pct(d: float | None) -> str:
    return "—" if d is None else f"{d:+.1f}%"


def _spec_cell(fig: Figure) -> str:
    if "\n" in fig.spec:
        base = fig.spec.split("\n", 1)[0].removeprefix("extends: ").removesuffix(".yaml")
        name = f"`{base}` variant"
    else:
        name = f"`{fig.spec}`"
    extras = []
    if fig.width is not None and fig.width != 1.0:
        extras.append(f"--width {fig.width:g}")
    if fig.resolution:
        extras.append(f"--resolution {fig.resolution}")
    if fig.part:
        extras.append(f"(part `{fig.part}`)")
    if fig.scales:
        extras.append(f"(MAdds summed over scales {', '.join(f'{s:g}' for s in fig.scales)}"
                      + (", x 2 flipped)" if fig.flip else ")"))
    return name + (f" {' '.join(extras)}" if extras else "")


def _official_sources() -> list[str]:
    seen = []
    for fig in FIGURES:
        if fig.official and fig.official not in seen:
            seen.append(fig.official)
    return seen


def _table8() -> list[str]:
    from .compiler import schedule_channels

    printed = TABLE8_REXNET
    computed = schedule_channels(load("rexnet"))
    verdict = "identical" if computed == printed else "DIFFERENT"
    return ["## ReXNet Table 8: the channel schedule", "",
            "| | bottleneck output widths (1.0x) |", "| --- | --- |",
            f"| Table 8 | {', '.join(map(str, printed))} |",
            f"| ours (`rexnet`, `schedule: linear`) | {', '.join(map(str, computed))} |",
            "", f"The two are {verdict}. (Appendix C.1's text has 17 for the first width, "
            "a typo: Table 8 and the code have 16.)", ""]


def _table3_v1() -> list[str]:
    """MobileNetV2 Table 3's MobileNetV1 column next to `archspec memory --by-resolution`."""
    from .analysis.memory import by_resolution

    rows = {r["resolution"]: r for r in by_resolution(load("mobilenetv1").compile())}
    out = ["## MobileNetV2 Table 3: the MobileNetV1 column", "",
           "The largest tensor that must be materialised at each spatial size, 16-bit "
           "activations: `archspec memory mobilenetv1 --by-resolution --dtype fp16` (the "
           "MobileNetV2 column is in docs/memory.md). Δ compares bytes with the printed Kb "
           "(K = 1000 bytes, as the other rows show).", "",
           "| size | paper (channels / Kb) | ours (channels / bytes) | tensor | Δ | Reason |",
           "| --- | --- | --- | --- | --- | --- |"]
    for size, (channels, kb) in TABLE3_MOBILENETV1.items():
        row = rows[size]
        delta = _pct(row["bytes"] / 1000, kb)
        out.append(f"| {size}x{size} | {channels} / {kb} | {row['channels']} / "
                   f"{row['bytes']:,} | {row['tensor']} | {_fmt_pct(delta)} | "
                   f"{_table3_reason(size, channels, row, delta)} |")
    peak = max(r["bytes"] for r in rows.values())
    out += [f"| max | {TABLE3_MOBILENETV1_MAX}K | {peak:,} B | | "
            f"{_fmt_pct(_pct(peak / 1000, TABLE3_MOBILENETV1_MAX))} | |", ""]
    for size in sorted(set(rows) - set(TABLE3_MOBILENETV1), reverse=True):
        out += [f"Not in the paper's table: {size}x{size}, {rows[size]['channels']} channels, "
                f"{rows[size]['bytes']:,} B (`{rows[size]['tensor']}`).", ""]
    return out


def _table3_reason(size: int, channels: int, row: dict, delta: float) -> str:
    reason = TABLE3_MOBILENETV1_NOTES.get(size, "")
    if not reason and (row["channels"] != channels or abs(delta) > THRESHOLD):
        raise ValueError(f"MobileNetV2 Table 3, MobileNetV1 {size}x{size}: differs "
                         "without a reason")
    return reason


def _replication_claim() -> list[str]:
    a = ours("mobilenetv2_cifar")[0]
    b = ours("mobilenetv2_replication_b")[0]
    return [f"The note's claim, 2.3M -> 1.6M parameters (\"approx. 30%\" fewer): ours "
            f"{a / 1e6:.2f} M -> {b / 1e6:.2f} M, {100 * (a - b) / a:.1f}% fewer.", ""]


def render() -> str:
    """The report as Markdown. Raises ValueError when a difference above 2% has no
    reason."""
    all_lines = lines()
    missing = [f"{ln.figure.paper} {ln.figure.table} {ln.figure.network} {ln.metric}"
               for ln in all_lines if ln.needs_reason() and not ln.reason]
    if missing:
        raise ValueError("differences above 2% without a reason: " + "; ".join(missing))
    out = ["# Reproduction report", "",
           "<!-- Generated by `python -m archspec.reproduce`; do not edit by hand. -->", "",
           "Every parameter and MAdd count the papers print about the shipped "
           "architectures, the official implementation's figure where one exists, and "
           "ours, computed from the shipped spec with `archspec.load(spec).cost()` at "
           "224x224 and 1000 classes unless the row says otherwise (the replication note: "
           "CIFAR-10, 32x32, 10 classes). Detection and segmentation specs (docs/heads.md) "
           "keep their own input size and classes (SSDLite 320x320, Mobile DeepLabv3 "
           "512x512, Cityscapes 1024x2048 and 19 classes, torchvision's segmentation "
           "models 520x520), and their MAdds leave out the bilinear resizes (elementwise "
           "work, docs/conventions.md); a row with a part counts that part alone.", "",
           "Conventions (docs/conventions.md): MAdds count the multiply-accumulates of "
           "conv and linear layers (SE's 1x1 convs included); parameters are all "
           "learnable tensors (BN gamma and beta, not its running statistics). "
           "Δ is (ours − reference) / reference; a Δ above 2% carries a reason.", "",
           "Official figures come from: " + "; ".join(_official_sources()) + ". "
           "The torchvision and timm figures were measured on those models "
           "(pretrained=False; parameters summed, MAdds = torch FlopCounterMode / 2). "
           "Ours match every official figure, parameters exactly and MAdds within 0.1% "
           "(tests/test_reproduction.py).",
           "",
           "One spec covers every published multiplier of its family: `--width` on a "
           "shipped spec gives the official model at that multiplier (MobileNetV1, V2 and "
           "V3, ReXNet; tests/test_reproduction.py), the spec saying which layers keep "
           "their width (`scale: false`, `min_width`) and which expansions follow the "
           "rounded input (`t`).", "",
           "The models users compare against beyond the papers (timm's and torchvision's "
           "EfficientNet, MnasNet, GhostNet, MixNet, LCNet, ShuffleNetV2, ResNet-50, FBNet, "
           "EfficientNetV2 and the MobileNets, each beside the spec of the same name: "
           "params, MAdds at two resolutions, logits with the reference's tensors loaded) "
           "are in [references.md](references.md), generated by "
           "`benchmarks/reference_check.py`; torchvision's detection and segmentation "
           "models are checked by `benchmarks/reference_heads.py` (docs/heads.md).", ""]
    for paper in dict.fromkeys(f.paper for f in FIGURES):
        out += [f"## {paper}", "",
                "| Table | Network (as printed) | Spec | Metric | Paper | Official | Ours "
                "| Δ paper | Δ official | Reason |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for ln in all_lines:
            if ln.figure.paper != paper:
                continue
            fig = ln.figure
            out.append(f"| {fig.table} | {fig.network} | {_spec_cell(fig)} | "
                       f"{'Params' if ln.metric == 'params' else 'MAdds'} | "
                       f"{ln.printed or '—'} | {_fmt_official(ln)} | {_fmt_ours(ln)} | "
                       f"{_fmt_pct(ln.vs_paper)} | {_fmt_pct(ln.vs_official)} | "
                       f"{ln.reason if ln.needs_reason() or ln.reason else ''} |")
        out.append("")
        if paper == V2:
            out += _table3_v1()
        if paper == REX:
            out += _table8()
        if paper == REP:
            out += _replication_claim()
    out += _summary(all_lines)
    return "\n".join(out).rstrip() + "\n"


def _summary(all_lines: list[Line]) -> list[str]:
    official = [ln for ln in all_lines if ln.official is not None]
    exact = [ln for ln in official if (
        ln.ours == ln.official if ln.metric == "params" else abs(ln.vs_official) <= 0.1)]
    close = [ln for ln in all_lines if ln.vs_paper is not None and abs(ln.vs_paper) <= 2.0]
    printed = [ln for ln in all_lines if ln.vs_paper is not None]
    return ["## Summary", "",
            f"- Official figures reproduced (params exact, MAdds within 0.1%): "
            f"{len(exact)} of {len(official)}.",
            f"- Printed figures within 2%: {len(close)} of {len(printed)}; every other one "
            "carries its reason above.", ""]


def write(path: str | Path = DOC) -> Path:
    """Regenerate the report at ``path`` (default docs/reproduction.md)."""
    from .fsutil import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render())
    return path


def run(path: str | Path | None = None, check: bool = False) -> int:
    """``archspec reproduce [--check]``: rewrite the report at ``path`` (default
    docs/reproduction.md), or with ``check`` say whether it is current. The exit code:
    1 when checking finds it stale, else 0."""
    path = Path(path or DOC)
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != render():
            print(f"{path} is stale: run `archspec reproduce`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    write(path)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m archspec.reproduce [PATH] [--check]``: the same as :func:`run`."""
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [a for a in args if a != "--check"]
    return run(paths[0] if paths else None, check="--check" in args)


if __name__ == "__main__":
    raise SystemExit(main())
