"""`archspec search`: a multi-objective search over a spec's variants (docs/search.md)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..cli_common import LATENCY, OUTPUT, Commands, TableOrJson, complete_spec, emit_json

SEARCH, PROXY, STUDY = "Search", "Accuracy proxy", "Study (Optuna)"
COMMANDS = Commands()

ProxyKind = Annotated[Literal["none", "train", "rank"], typer.Option(
    "--proxy", rich_help_panel=PROXY,
    help="Accuracy proxy: short training (train), ReXNet's mean feature rank with random "
    "weights (rank), or none.")]
ProxyData = Annotated[str, typer.Option(
    "--data", "-d", rich_help_panel=PROXY,
    help="Training proxy data: digits, cifar10:DIR, cifar100:DIR, imagefolder:DIR.")]
ProxyEpochs = Annotated[int, typer.Option(
    "--epochs", min=1, rich_help_panel=PROXY, help="Training proxy epochs.")]
ProxyResolution = Annotated[Optional[int], typer.Option(
    "--proxy-resolution", min=8, max=1024, rich_help_panel=PROXY,
    help="Train (or measure rank) at this resolution [default: 64 for rank, the "
    "candidate's for train].")]
ProxyBatches = Annotated[Optional[int], typer.Option(
    "--limit-batches", min=1, rich_help_panel=PROXY,
    help="Training proxy: at most N train and N val batches an epoch.")]
ProxyBatch = Annotated[Optional[int], typer.Option(
    "--batch", min=1, rich_help_panel=PROXY, help="Training proxy batch size.")]
Profile = Annotated[Optional[Path], typer.Option(
    "--profile", "-p", dir_okay=False, rich_help_panel=LATENCY,
    help="Latency profile (a file, or a shipped one's name: archspec profiles): adds "
    "latency_ms.")]


def make_proxy(kind, data, epochs, resolution, limit_batches, batch, seed):
    """The proxy the options name; ``--data`` of the train proxy is checked here, before
    any trial runs."""
    from ..search.proxies import make

    if kind == "rank":
        return make(kind, resolution=resolution or 64, seed=seed, fit=resolution is None)
    if kind == "train":
        check_data(data)
    return make(kind, data=data, epochs=epochs, resolution=resolution,
                limit_batches=limit_batches, batch=batch, seed=seed)


def check_data(data: str) -> None:
    """``--data`` names a dataset the train proxy can read (its folder exists)."""
    from ..errors import ArchspecError
    from ..train.data import parse_source

    source = parse_source(data)
    if source.path is not None and not Path(source.path).is_dir():
        raise ArchspecError(f"--data {data}: {source.path} is not a folder")


def check_inputs(profile, output, target_ms) -> Path | None:
    """The options a search or NetAdapt reads before any trial: --profile loads,
    --output is a folder (or new), --target-ms is a finite number. Returns the profile's
    file (a shipped profile's name located: the trials read the file)."""
    import math

    from ..errors import ArchspecError

    if target_ms is not None and not math.isfinite(target_ms):
        raise ArchspecError(f"--target-ms {target_ms}: not a finite number")
    if output is not None and output.exists() and not output.is_dir():
        raise ArchspecError(f"--output {output}: not a directory")
    if profile is not None:
        from ..latency.profile import locate
        from ..search.objectives import _profile

        profile = locate(profile).resolve()
        _profile(str(profile))
    return profile


@COMMANDS.command(panel=SEARCH)
def search(spec: Annotated[Optional[str], typer.Argument(
               metavar="SPEC", autocompletion=complete_spec, show_default=False,
               help="The spec to vary [default: the space file's `spec`].")] = None,
           space_path: Annotated[Path, typer.Option(
               "--space", "-s", dir_okay=False, exists=True,
               help="Search space (YAML): which fields vary, over what.")] = ...,
           minimize: Annotated[Optional[str], typer.Option(
               help="Figures to minimise: params, madds, elementwise, peak_bytes, "
               "latency_ms [default: latency_ms with --profile, else madds].")] = None,
           maximize: Annotated[Optional[str], typer.Option(
               help="Figures to maximise: accuracy (with --proxy) [default: accuracy with "
               "--proxy, else none].")] = None,
           target_ms: Annotated[Optional[float], typer.Option(
               "--target-ms", min=0.001,
               help="Optimise the single reward ACC x (LAT/TAR)^w for this latency target "
               "(MnasNet / MobileNetV3) instead of a Pareto front.")] = None,
           w: Annotated[float, typer.Option(
               "--reward-w", max=0.0,
               help="The reward's exponent w (MnasNet -0.07; MobileNetV3-Small -0.15).")]
           = -0.07,
           profile: Profile = None,
           proxy: ProxyKind = "none", data: ProxyData = "digits", epochs: ProxyEpochs = 1,
           proxy_resolution: ProxyResolution = None, limit_batches: ProxyBatches = None,
           batch: ProxyBatch = None,
           n_trials: Annotated[int, typer.Option(
               "--n-trials", "-n", min=1, max=1_000_000, rich_help_panel=STUDY,
               help="Trials to run (split over --workers); added to a study that exists.")]
           = 50,
           workers: Annotated[int, typer.Option(
               min=1, max=256, rich_help_panel=STUDY,
               help="Worker processes sharing the study.")] = 1,
           storage: Annotated[Optional[str], typer.Option(
               rich_help_panel=STUDY,
               help="Optuna storage: a database URL (sqlite:///s.db, postgresql://...) "
               "that workers on many machines share, or a journal file [default: "
               "OUTPUT/study.journal].")] = None,
           study_name: Annotated[Optional[str], typer.Option(
               rich_help_panel=STUDY, help="Study name [default: search-SPEC].")] = None,
           sampler: Annotated[Literal["auto", "nsga2", "tpe", "random"], typer.Option(
               rich_help_panel=STUDY,
               help="Optuna sampler (auto: NSGA-II for a front, TPE for the reward).")]
           = "auto",
           seed: Annotated[int, typer.Option(rich_help_panel=STUDY, help="Seed.")] = 0,
           output: Annotated[Optional[Path], typer.Option(
               "--output", "-o", file_okay=False, rich_help_panel=OUTPUT,
               help="Output folder: front/*.yaml, trials.json, trials.csv, front.png "
               "[default: runs/search-SPEC].")] = None,
           no_plot: Annotated[bool, typer.Option(
               "--no-plot", rich_help_panel=OUTPUT, help="Do not draw front.png.")] = False,
           fmt: TableOrJson = "table") -> None:
    """Search a spec's variants with Optuna: a Pareto front of cost, predicted latency and
    an accuracy proxy, or the MnasNet reward under a latency target."""
    from ..errors import ArchspecError
    from ..search import objectives as obj
    from ..search.space import check_space, load_space
    from ..search.study import Job, storage_url

    profile = check_inputs(profile, output, target_ms)
    space = load_space(space_path)
    from_space = spec is None
    spec = spec or space.spec
    if spec is None:
        raise ArchspecError(f"{space_path}: name the SPEC to search (argument, or `spec:` "
                            "in the space file)")
    objectives = obj.parse(
        minimize if minimize is not None else ("latency_ms" if profile else "madds"),
        maximize if maximize is not None else ("accuracy" if proxy != "none" else ""),
        profile=profile is not None, proxy=proxy != "none", target_ms=target_ms, w=w)
    _check_optuna()
    name = study_name or f"search-{Path(spec).stem}"
    out = output or Path("runs") / name
    job = Job(spec=spec, space=str(space_path), objectives=objectives,
              storage=storage_url(storage, out), study=name,
              profile=str(profile) if profile else None,
              proxy=make_proxy(proxy, data, epochs, proxy_resolution, limit_batches, batch,
                               seed), sampler=sampler, seed=seed)
    base = _base(job, space, from_space)
    check_space(space, base)
    _run(job, n_trials, workers)
    _check_trials(job)
    _results(job, space, base, out, no_plot, fmt)


def _base(job, space, from_space: bool):
    """The searched spec; one the space file names is blamed on its `spec` key."""
    from ..errors import ArchspecError, Problem, SpecError
    from ..search.space import error_message
    from ..search.study import base_spec

    try:
        return base_spec(job)
    except ArchspecError as e:
        if not from_space or Path(job.spec).is_file():
            raise
        raise SpecError(Problem(space.spec_location, f"{job.spec!r}: {error_message(e)}")) from None


def _check_trials(job) -> None:
    """No complete trial is an error saying why the first one failed (exit 2 when every
    failure was the user's, else 3); some failed trials are a warning."""
    from ..errors import ArchspecError
    from ..search.study import failures

    complete, failed, attrs = failures(job)
    if not failed:
        return
    first = attrs[0].get("error", "no message recorded")
    if complete:
        print(f"archspec: warning: {failed} trial(s) failed; the first: {first}",
              file=sys.stderr)
        return
    error = ArchspecError(f"no trial completed ({failed} failed); the first: {first}")
    if not all(a.get("user_error") for a in attrs):
        error.exit_code = 3
    raise error


def _check_optuna() -> None:
    from ..errors import ArchspecError

    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ArchspecError("archspec search needs Optuna: pip install -e '.[search]'") \
            from None


def _run(job, n_trials: int, workers: int) -> None:
    from rich.progress import Progress

    from ..search.study import run

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"search ({workers} worker{'s' * (workers > 1)})",
                            total=n_trials)
        run(job, n_trials, workers, progress=lambda n: bar.advance(task, n))


def _results(job, space, base, out: Path, no_plot: bool, fmt: str) -> None:
    from ..search.results import write_front, write_tables
    from ..search.study import trials

    rows, front = trials(job)
    written = {"specs": write_front(space, base, rows, front, out),
               "tables": write_tables(rows, front, out)}
    names = job.objectives.names
    if not no_plot and rows:
        from ..search.plots import front_plot

        x, y = _axes(job.objectives)
        path = out / "front.png"
        front_plot(rows, front, x, y, space.names(), path,
                   f"{base.name}: {len(rows)} trials, front of {len(front)}")
        written["plot"] = str(path)
    front_rows = [r for r in rows if r["trial"] in front]
    payload = {"spec": base.name, "study": job.study, "storage": job.storage,
               "objectives": [{"name": n, "direction": d} for n, d in
                              zip(names, job.objectives.directions)],
               "variables": space.names(), "trials": len(rows),
               "complete": sum(r["state"] == "COMPLETE" for r in rows),
               "front": front_rows, "written": written}
    if fmt == "json":
        emit_json("search", payload)
    else:
        _print(payload, space.names(), names)
    for kind in ("specs", "tables"):
        for path in written[kind]:
            print(f"wrote {path}", file=sys.stderr)


def _axes(objectives) -> tuple[str, str]:
    if objectives.target_ms:
        return "latency_ms", "accuracy"
    names = objectives.names
    return (names[0], names[1]) if len(names) > 1 else (names[0], "params")


def _print(payload: dict, variables: list[str], objectives: list[str]) -> None:
    from rich.table import Table

    from ..cli_common import console

    extra = ["latency_ms", "accuracy"] if objectives == ["reward"] else []
    figures = list(dict.fromkeys([*objectives, *extra, "params", "madds"]))
    table = Table("trial", *variables, *figures, title_justify="left", title=(
        f"{payload['spec']}: front of {len(payload['front'])} "
        f"({payload['complete']} of {payload['trials']} trials complete; study "
        f"{payload['study']} in {payload['storage']})"))
    for r in payload["front"]:
        table.add_row(str(r["trial"]), *(_cell(r.get(v)) for v in variables),
                      *(_cell(r.get(f)) for f in figures))
    console().print(table)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
