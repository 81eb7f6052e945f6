"""`archspec calibrate` (build a latency profile) and `archspec latency` (predict, check)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..cli import _load, overrides
from ..errors import ArchspecError


def _bar(total: int, label: str, quiet: bool):
    """A rich progress bar context and its advance function (no-op when quiet)."""
    import contextlib

    if quiet:
        return contextlib.nullcontext(), (lambda n=1: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    task = progress.add_task(label, total=total)
    return progress, (lambda n=1: progress.advance(task, n))


def _warn(profile, threads=None) -> None:
    from ..latency.profile import current_warnings

    for w in current_warnings(profile, threads):
        print(f"archspec: warning: {w}; predictions may be off", file=sys.stderr)


@click.command()
@click.option("--backend", "-b", type=click.Choice(["onnxruntime"]), default="onnxruntime",
              show_default=True, help="What runs the kernels.")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--networks", type=click.IntRange(4, 10_000), default=120, show_default=True,
              help="Random calibration networks (sampling plan: docs/latency.md).")
@click.option("--variants", type=click.IntRange(0, 10_000), default=136, show_default=True,
              help="Random variants of the shipped specs also measured (sweep --random's "
                   "sampler, seeded apart from the validation variants).")
@click.option("--repeats", type=click.IntRange(2, 1000), default=12, show_default=True,
              help="Timed runs per network, split over the rounds.")
@click.option("--rounds", type=click.IntRange(1, 100), default=4, show_default=True,
              help="Interleaved passes over all networks, each with fresh sessions; a "
                   "network's time is its fastest round's median.")
@click.option("--trees", type=click.IntRange(0, 5000), default=200, show_default=True,
              help="Boosted regression trees on top of the linear per-type model "
                   "(needs scikit-learn; 0: linear model only).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Profile file to write (JSON).")
@click.option("--save-raw", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the raw measurements (JSON), to refit later with --from-raw.")
@click.option("--from-raw", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Fit a profile from measurements saved with --save-raw "
              "(no measuring; the networks are rebuilt from their seeds).")
@click.option("--no-progress", is_flag=True)
def calibrate(backend, threads, networks, variants, repeats, rounds, trees, seed, output,
              save_raw, from_raw, no_progress):
    """Benchmark kernels on this machine and fit a latency profile."""
    from ..latency import calibrate as cal

    if trees:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ArchspecError("calibrate --trees needs scikit-learn: pip install "
                                "scikit-learn (or --trees 0 for the linear model)") from None
    def fitted(raw):
        try:
            return cal.build(raw, n_trees=trees)
        except (ValueError, RuntimeError) as e:
            raise ArchspecError(f"calibrate: cannot fit a profile: {e}") from None

    if from_raw is not None:
        ctx = click.get_current_context()
        given = [f"--{n.replace('_', '-')}" for n in
                 ("threads", "networks", "variants", "repeats", "rounds", "seed", "save_raw")
                 if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--from-raw refits saved measurements; "
                                   f"{', '.join(given)} only apply when measuring")
        raw = cal.load_raw(from_raw)
        profile = fitted(raw)
        profile.save(output)
        print(f"wrote {output}: refitted from {from_raw} ({len(raw['samples'])} kernel "
              f"samples, measured in {raw['seconds']:.0f} s)", file=sys.stderr)
        return

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ArchspecError("calibrate needs onnxruntime: pip install onnxruntime") from None
    ctx, advance = _bar((networks + variants) * rounds,
                        f"calibrating {backend}, {threads} thread(s)",
                        no_progress or not sys.stderr.isatty())
    with ctx:
        raw = cal.calibrate(threads=threads, networks=networks, variants=variants,
                            repeats=repeats, rounds=rounds, seed=seed, progress=advance)
    profile = fitted(raw)
    profile.save(output)
    if save_raw is not None:   # after the profile: a failed write here loses no profile
        cal.save_raw(raw, save_raw)
    c = profile.calibration
    print(f"wrote {output}: {c['kernel_samples']} kernel samples from {networks} networks "
          f"and {variants} spec variants "
          f"in {c['seconds']:.0f} s; run-to-run spread (between rounds) median "
          f"{c['round_spread_median']}, p90 {c['round_spread_p90']}", file=sys.stderr)


def _table(name: str, pred, per: str):
    from rich.table import Table

    t = Table(per, "type", "model", "ms", title=f"{name}: predicted {pred.total_ms:.3f} ms "
              f"(overhead {pred.overhead_ms:.3f} ms)", title_justify="left")
    if per == "kernel":
        for k in pred.kernels:
            t.add_row(k.name, k.type, k.model, f"{k.us / 1000:.4f}")
    else:
        for key, ms in pred.per(per).items():
            t.add_row(key, "", "", f"{ms:.4f}")
    return t


@click.command()
@click.argument("spec")
@click.option("--profile", "-p", "profile_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="A calibrated profile.")
@click.option("--per", type=click.Choice(["kernel", "block", "stage"]), default="kernel",
              show_default=True)
@click.option("--check", is_flag=True, help="Also measure the model and compare.")
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="--check: interleaved measurement rounds.")
@click.option("--repeats", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="--check: timed runs per round.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@overrides
def latency(spec, profile_path, per, check, rounds, repeats, fmt, width, resolution, classes):
    """Predicted latency of SPEC per kernel (as the backend fuses them) and in total."""
    from ..latency import check as chk
    from ..latency.profile import load

    profile = load(profile_path)
    _warn(profile)
    s = _load(spec, width, resolution, classes)
    graph = s.compile()
    pred = chk.predict(graph, profile)
    doc = {"schema": "archspec.latency/1", "spec": s.name, "profile": str(profile_path),
           "backend": profile.backend, "threads": profile.settings.get("threads"),
           **pred.to_dict()}
    result = None
    if check:
        ctx, advance = _bar(rounds, f"measuring {s.name}", not sys.stderr.isatty())
        with ctx:
            (result,) = chk.check([(s.name, graph)], profile, rounds=rounds, repeats=repeats,
                                  progress=advance)
        doc["check"] = result.to_dict()
    if fmt == "json":
        print(json.dumps(doc, indent=2))
        return
    from rich.console import Console

    con = Console(width=None if sys.stdout.isatty() else 160)
    con.print(_table(s.name, pred, per))
    if result is not None:
        con.print(f"measured {result.measured_ms:.3f} ms (median of {rounds}x{repeats} runs, "
                  f"round-to-round spread {result.spread:.1%}); prediction error "
                  f"{result.error:+.1%}")
