"""Plots (matplotlib, Agg backend, written atomically): the Pareto plot of a sweep and
per-layer bars along the depth of one or two networks."""
from __future__ import annotations

from pathlib import Path

from ..errors import ArchspecError
from ..fsutil import atomic_path

FORMATS = (".png", ".svg", ".pdf")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ArchspecError("plotting needs matplotlib: pip install matplotlib") from None
    return plt


def _save(fig, path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ArchspecError(f"{path}: unknown plot format (use {', '.join(FORMATS)})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=150, bbox_inches="tight")


def pareto_plot(rows: list[dict], front: list[bool], path, *, x="madds", y="params",
                title="", color_by: str | None = "resolution") -> None:
    plt = _pyplot()
    scale = {"madds": 1e6, "params": 1e6, "elementwise": 1e6, "peak_bytes": 2**20,
             "latency_ms": 1}
    unit = {"madds": "MAdds (M)", "params": "parameters (M)", "elementwise": "elementwise (M)",
            "peak_bytes": "peak activation memory (MiB)",
            "latency_ms": "predicted latency (ms)"}
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [r[x] / scale.get(x, 1) for r in rows]
    ys = [r[y] / scale.get(y, 1) for r in rows]
    colors = [r.get(color_by, 0) for r in rows] if color_by and \
        all(color_by in r for r in rows) else None
    sc = ax.scatter(xs, ys, c=colors, s=12, alpha=0.6, cmap="viridis")
    if colors is not None:
        fig.colorbar(sc, ax=ax, label=color_by)
    fx = sorted((xv, yv) for xv, yv, f in zip(xs, ys, front) if f)
    if fx:
        ax.plot(*zip(*fx), "-o", color="crimson", ms=4, lw=1.2, label="Pareto front")
        ax.legend(loc="lower right")
    ax.set_xlabel(unit.get(x, x))
    ax.set_ylabel(unit.get(y, y))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def depth_plot(reports: list, path, per: str = "block") -> None:
    """MAdds, params and activation bytes per block (or layer) along the depth, for one
    or two cost reports overlaid."""
    plt = _pyplot()
    figures = (("madds", "MAdds (M)", 1e6), ("params", "parameters (K)", 1e3),
               ("act_bytes", "activations written (KiB)", 1024))
    fig, axes = plt.subplots(len(figures), 1, figsize=(11, 8), sharex=False)
    width = 0.8 / len(reports)
    for k, report in enumerate(reports):
        rows = report.rows(per)
        xs = [i + k * width for i in range(len(rows))]
        for ax, (key, label, scale) in zip(axes, figures):
            ax.bar(xs, [getattr(e, key) / scale for e in rows], width=width,
                   label=report.name, alpha=0.85)
            ax.set_ylabel(label)
    axes[0].legend()
    rows0 = reports[0].rows(per)
    step = max(1, len(rows0) // 30)
    axes[-1].set_xticks(range(0, len(rows0), step))
    axes[-1].set_xticklabels([e.name for e in rows0][::step], rotation=90, fontsize=6)
    for ax in axes[:-1]:
        ax.set_xticks([])
    axes[0].set_title(" vs ".join(r.name for r in reports) + f" (per {per})")
    _save(fig, path)
    plt.close(fig)


def memory_plot(series: dict, path, *, title: str = "", peaks: dict | None = None) -> None:
    """Live activation bytes along the schedule: ``series`` maps a label (an execution
    model) to ``(positions, bytes)``, positions being the index of each step's last op in
    the graph's order so that models with fused steps line up; ``peaks`` (label -> bytes)
    draws each peak as a dotted line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for label, (xs, ys) in series.items():
        line, = ax.step(xs, [y / 2**20 for y in ys], where="post", lw=1.2, label=label)
        if peaks and label in peaks:
            ax.axhline(peaks[label] / 2**20, ls=":", lw=0.8, color=line.get_color())
    ax.set_xlabel("op (position in the schedule)")
    ax.set_ylabel("live activations (MiB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    _save(fig, path)
    plt.close(fig)
