"""Plots (matplotlib, Agg backend, written atomically): the Pareto plot of a sweep and
per-layer bars along the depth of one or two networks."""
from __future__ import annotations

from pathlib import Path

from ..errors import ArchspecError
from ..ir.graph import Graph
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


# figure -> (axis label, divisor)
AXES = {"madds": ("MAdds (M)", 1e6), "params": ("parameters (M)", 1e6),
        "elementwise": ("elementwise ops (M)", 1e6),
        "peak_bytes": ("peak activation memory (MiB)", 2**20),
        "latency_ms": ("predicted latency (ms)", 1), "width": ("width multiplier", 1),
        "resolution": ("input resolution (px)", 1)}
SETTINGS = ("width", "resolution", "t", "alpha", "schedule_end")
MAX_LABELS = 60


def pareto_plot(rows: list[dict], front: list[bool], path, *, x="madds", y="params",
                title="", color_by: str | None = "resolution",
                objectives: tuple | None = None) -> None:
    """Every variant of a sweep, ``x`` against ``y``, coloured by ``color_by``; the
    variants on the Pareto front filled, the others hollow. A width x resolution grid gets
    a line per resolution (along the widths) and a dotted line per width (along the
    resolutions); with few enough points each is labelled with its settings.
    ``objectives``: the front's ``(minimize, maximize)`` lists, named in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    xs, ys = _axis(rows, x), _axis(rows, y)
    colour = _colouring(plt, rows, color_by)
    _iso_lines(ax, rows, xs, ys, colour)
    on = [i for i, f in enumerate(front) if f]
    off = [i for i, f in enumerate(front) if not f]
    ax.scatter([xs[i] for i in off], [ys[i] for i in off], s=22, facecolors="none",
               edgecolors=[colour(rows[i]) for i in off], linewidths=0.8, zorder=3)
    ax.scatter([xs[i] for i in on], [ys[i] for i in on], s=30, zorder=4,
               c=[colour(rows[i]) for i in on], edgecolors="black", linewidths=0.6)
    ax.scatter([], [], s=30, c="0.6", edgecolors="black", linewidths=0.6,
               label=f"on the Pareto front{_objectives(objectives)}: {len(on)} of {len(rows)}")
    if off:
        ax.scatter([], [], s=22, facecolors="none", edgecolors="0.4", linewidths=0.8,
                   label=f"dominated: {len(off)}")
    _staircase(ax, xs, ys, front)
    _labels(ax, rows, xs, ys, on)
    if colour.mappable is not None:
        fig.colorbar(colour.mappable, ax=ax, label=AXES.get(color_by, (color_by,))[0])
    if max(xs) > 8 * min(xs) > 0:
        _log_axis(plt, ax.xaxis)
    ax.set_xlabel(AXES.get(x, (x,))[0])
    ax.set_ylabel(AXES.get(y, (y,))[0])
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8,
              frameon=False)
    _save(fig, path)
    plt.close(fig)


def _objectives(objectives) -> str:
    if not objectives:
        return ""
    mins, maxs = objectives
    return f" (min {', '.join(mins)}" + (f"; max {', '.join(maxs)})" if maxs else ")")


def _log_axis(plt, axis) -> None:
    """A log scale labelled at 1, 2 and 5 times the powers of ten."""
    from matplotlib.ticker import LogLocator

    axis.axes.set_xscale("log")
    axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axis.set_minor_locator(LogLocator(subs=range(1, 10)))
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(plt.NullFormatter())


def _axis(rows, key) -> list[float]:
    return [r[key] / AXES.get(key, ("", 1))[1] for r in rows]


class _Colour:
    """A row's colour: by the value of one setting (a colour map), or one colour."""

    def __init__(self, plt, rows, key):
        self.key, self.mappable = key, None
        if key and all(key in r for r in rows) and len({r[key] for r in rows}) > 1:
            import matplotlib.colors as mcolors

            values = [r[key] for r in rows]
            norm = mcolors.Normalize(min(values), max(values))
            self.mappable = plt.cm.ScalarMappable(norm=norm, cmap="viridis")

    def __call__(self, row):
        return self.mappable.to_rgba(row[self.key]) if self.mappable else "tab:blue"


def _colouring(plt, rows, key) -> _Colour:
    return _Colour(plt, rows, key)


def _is_grid(rows) -> bool:
    """Do the rows vary width and resolution and nothing else, over a full grid?"""
    varied = {k for k in SETTINGS if len({r.get(k) for r in rows}) > 1}
    if varied != {"width", "resolution"} or len(rows) > 400:
        return False
    pairs = {(r["width"], r["resolution"]) for r in rows}
    return len(pairs) == len(rows) == \
        len({r["width"] for r in rows}) * len({r["resolution"] for r in rows})


def _iso_lines(ax, rows, xs, ys, colour) -> None:
    if not _is_grid(rows):
        return
    for key, style in (("resolution", {"lw": 1.2, "alpha": 0.8}),
                       ("width", {"lw": 0.8, "ls": ":", "color": "0.55"})):
        other = "width" if key == "resolution" else "resolution"
        for value in sorted({r[key] for r in rows}):
            idx = sorted((i for i, r in enumerate(rows) if r[key] == value),
                         key=lambda i: rows[i][other])
            kw = style if key == "width" else {**style, "color": colour(rows[idx[0]])}
            ax.plot([xs[i] for i in idx], [ys[i] for i in idx], zorder=2, **kw)
    ax.plot([], [], lw=1.2, color="0.3", label="same resolution, widths vary")
    ax.plot([], [], lw=0.8, ls=":", color="0.55", label="same width, resolutions vary")


def _staircase(ax, xs, ys, front) -> None:
    """The front as a line, where it is the 2-D front of the axes drawn (fewest x for
    the most y): with more objectives it is not a line in this plane."""
    pts = sorted((xv, -yv) for xv, yv in zip(xs, ys))
    best, flat = float("inf"), []
    for _x, neg in pts:
        flat.append(neg < best)
        best = min(best, neg)
    flat_set = {p for p, keep in zip(pts, flat) if keep}
    if {(xv, -yv) for xv, yv, f in zip(xs, ys, front) if f} != flat_set or len(flat_set) < 2:
        return
    line = sorted(flat_set)
    ax.step([p[0] for p in line], [-p[1] for p in line], where="post", color="crimson",
            lw=1.0, alpha=0.7, zorder=2)


def _labels(ax, rows, xs, ys, on) -> None:
    """Each point's settings (width x resolution, then t, alpha...), all points when
    there are few, else the front's when it is small."""
    idx = range(len(rows)) if len(rows) <= MAX_LABELS else on if len(on) <= MAX_LABELS else []
    below = _alternate(rows)
    for i in idx:
        ax.annotate(_point_label(rows[i]), (xs[i], ys[i]), xytext=(3, -9 if i in below else 4),
                    textcoords="offset points", fontsize=6.5, color="0.2", zorder=5)
    if idx:
        ax.plot([], [], " ", label="labels: width\u00d7resolution"
                if _is_grid(rows) else "labels: the variant's settings")


def _alternate(rows) -> set:
    """In a grid, the points labelled below theirs (every other resolution), so that
    neighbours along a width line do not overlap."""
    if not _is_grid(rows):
        return set()
    order = sorted({r["resolution"] for r in rows})
    return {i for i, r in enumerate(rows) if order.index(r["resolution"]) % 2}


def _point_label(row) -> str:
    if "width" in row and "resolution" in row:
        head = f"{row['width']:g}\u00d7{row['resolution']}"
    else:
        head = " ".join(f"{k} {row[k]:g}" for k in ("width", "resolution") if k in row)
    rest = " ".join(f"{k}={row[k]:.3g}" for k in SETTINGS[2:] if k in row)
    return f"{head} {rest}".strip()


def depth_plot(models: list, path, per: str = "block") -> None:
    """MAdds, params and activation bytes per block (layer, stage) along the depth, for
    one network or two side by side. ``models``: graphs (or sources, compiled here). Two
    networks are aligned as ``archspec diff`` aligns them: by output resolution, then by
    block (ops of matched blocks by name), a gap where one has no counterpart; per stage
    they are the resolution levels (1/2, 1/4, ...)."""
    from ..analysis.cost import cost

    if not 1 <= len(models) <= 2:
        raise ArchspecError("plot takes one network, or two to compare")
    graphs = [m if isinstance(m, Graph) else m.compile() for m in models]
    reports = [cost(g) for g in graphs]
    if len(graphs) == 1:
        positions = [("", [e.name], []) for e in reports[0].rows(per)]
    else:
        from ..analysis.diff import diff, slots

        positions = slots(diff(*graphs), per)
    # two networks per stage: the blocks of each resolution level
    rows = "block" if len(graphs) == 2 and per == "stage" else per
    entries = [{e.name: e for e in r.rows(rows)} for r in reports]
    _depth_bars(reports, entries, positions, path, per)


def _depth_bars(reports, entries, positions, path, per) -> None:
    plt = _pyplot()
    figures = (("madds", "MAdds (M)", 1e6), ("params", "parameters (K)", 1e3),
               ("act_bytes", "activations written (KiB)", 1024))
    fig, axes = plt.subplots(len(figures), 1, figsize=(max(11, len(positions) * 0.12), 8.5))
    width = 0.8 / len(reports)
    for side, (report, table) in enumerate(zip(reports, entries)):
        xs = [i + (side - (len(reports) - 1) / 2) * width for i in range(len(positions))]
        for ax, (key, label, scale) in zip(axes, figures):
            heights = [sum(getattr(table[n], key) for n in pos[1 + side]) / scale
                       if pos[1 + side] else 0 for pos in positions]
            name = f"{'ab'[side]} = {report.name}" if len(reports) > 1 else report.name
            ax.bar(xs, heights, width=width, label=name, color=f"C{side}", alpha=0.85)
            ax.set_ylabel(label)
            ax.set_xlim(-0.6, len(positions) - 0.4)
    _level_marks(axes, positions)
    _depth_ticks(axes, positions, len(reports) > 1, per)
    axes[0].legend(fontsize=8)
    axes[0].set_title(" vs ".join(r.name for r in reports) + f" (per {per}" +
                      (", aligned as archspec diff aligns them)" if len(reports) > 1 else ")"),
                      pad=16)
    _save(fig, path)
    plt.close(fig)


def _level_marks(axes, positions) -> None:
    """A line between two resolution levels, the level named above the top panel."""
    starts = [i for i, p in enumerate(positions) if p[0] and
              (i == 0 or positions[i - 1][0] != p[0])]
    for i in starts:
        for ax in axes:
            if i:
                ax.axvline(i - 0.5, color="0.4", lw=0.7, ls="--")
        axes[0].annotate(positions[i][0], (i - 0.4, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(0, 2), textcoords="offset points", fontsize=7, va="bottom")


def _depth_ticks(axes, positions, two: bool, per: str) -> None:
    step = max(1, len(positions) // 60)
    ticks = range(0, len(positions), step)
    axes[-1].set_xticks(list(ticks))
    axes[-1].set_xticklabels([_tick(positions[i], two, per) for i in ticks], rotation=90,
                             fontsize=6)
    for ax in axes[:-1]:
        ax.set_xticks([])


def _tick(position, two: bool, per: str) -> str:
    if two and per == "stage":
        return position[0]
    a, b = (" + ".join(names) if names else "-" for names in position[1:])
    return a if not two or a == b else f"{a} | {b}"


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
