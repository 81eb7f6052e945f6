"""Plots of searches: the trials and their front (labelled by the variables), a NetAdapt
path, a spec's layer ranks and the random-network rank study (ReXNet Figure 1).
matplotlib is imported inside each function."""
from __future__ import annotations

from pathlib import Path

AXIS = {"params": "parameters", "madds": "multiply-adds", "elementwise": "elementwise ops",
        "peak_bytes": "peak activation bytes", "latency_ms": "predicted latency (ms)",
        "accuracy": "accuracy proxy", "reward": "reward ACC x (LAT/TAR)^w"}


def _figure(width=7.0, height=5.0, ncols=1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)


def _save(fig, path: Path) -> None:
    from ..fsutil import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)


def front_plot(rows: list[dict], front: list[int], x: str, y: str, variables: list[str],
               path: Path, title: str) -> None:
    """Every complete trial at (x, y), the front joined and each front point labelled
    with its variables."""
    fig, axes = _figure()
    ax = axes[0][0]
    done = [r for r in rows if r["state"] == "COMPLETE" and x in r and y in r]
    ax.scatter([r[x] for r in done], [r[y] for r in done], s=14, c="0.6", label="trials")
    on = sorted((r for r in done if r["trial"] in front), key=lambda r: r[x])
    ax.plot([r[x] for r in on], [r[y] for r in on], "o-", c="C3", label="front")
    for r in on:
        text = "\n".join(f"{v}={_short(r[v])}" for v in variables if v in r)
        ax.annotate(text, (r[x], r[y]), fontsize=6, xytext=(4, 4),
                    textcoords="offset points")
    ax.margins(0.12, 0.18)   # room for the labels of the outermost points
    ax.set_xlabel(AXIS.get(x, x))
    ax.set_ylabel(AXIS.get(y, y))
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def adapt_plot(log: dict, path: Path) -> None:
    """NetAdapt: the proxy accuracy against predicted latency, every proposal grey, the
    kept path red, the target dashed."""
    fig, axes = _figure()
    ax = axes[0][0]
    for step in log["steps"]:
        props = [p for p in step["proposals"] if "latency_ms" in p]
        ax.scatter([p["latency_ms"] for p in props], [p["accuracy"] for p in props], s=10,
                   c="0.7")
    path_points = [log["start"], *(s["kept"] for s in log["steps"])]
    ax.plot([p["latency_ms"] for p in path_points], [p["accuracy"] for p in path_points],
            "o-", c="C3", label="kept")
    for i, p in enumerate(path_points[1:], 1):
        ax.annotate(f"{i}: {p['change']}", (p["latency_ms"], p["accuracy"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.axvline(log["target_ms"], ls="--", c="C0", label="target")
    ax.set_xlabel(AXIS["latency_ms"])
    ax.set_ylabel(f"accuracy proxy ({log['proxy']})")
    ax.set_title(f"NetAdapt: {log['spec']}")
    ax.legend()
    _save(fig, path)


def rank_plot(rows: list[dict], path: Path, title: str) -> None:
    fig, axes = _figure(width=10)
    ax = axes[0][0]
    ax.bar(range(len(rows)), [r["normalized"] for r in rows], color="C0")
    ax.set_xticks(range(len(rows)), [r["layer"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("normalised rank")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    _save(fig, path)


def study_plot(result: dict, path: Path) -> None:
    """Four panels like ReXNet Figure 1 (a, b; c as expansion ratio; d as expand
    layers)."""
    panels = (("single_layer", "ratios", "(a) single layer: d_in / d_out"),
              ("bottleneck", "ratios", "(b) inverted bottleneck: d_in / d_out"),
              ("expansion", "expansions", "(c) bottleneck: expansion ratio"),
              ("expand_layers", "expand_layers", "(d) 5-layer net: expand layers"))
    fig, axes = _figure(width=4.2, height=3.6, ncols=4)
    for ax, (key, xs, title) in zip(axes[0], panels):
        for act, ys in result["panels"][key].items():
            ax.plot(result[xs], ys, marker=".", label=act)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(f"normalised rank ({result['measure']})")
    axes[0][0].legend(fontsize=7)
    _save(fig, path)
