"""`archspec calibrate` (build a latency profile) and `archspec latency` (predict, check)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..cli_common import (LATENCY, OUTPUT, Classes, Commands, Resolution, Spec, TableOrJson,
                          Width, console, emit_json, load)
from ..errors import ArchspecError

MEASURING = "Measuring"
COMMANDS = Commands()


def _bar(total: int, label: str, quiet: bool):
    """A rich progress bar context and its advance function (no-op when quiet)."""
    import contextlib

    if quiet:
        return contextlib.nullcontext(), (lambda n=1: None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    task = progress.add_task(label, total=total)

    def advance(n=1):
        progress.advance(task, n)

    def grow(n):   # work found on the way (calibrate's extra rounds)
        progress.update(task, total=progress.tasks[0].total + n)

    advance.grow = grow
    return progress, advance


@COMMANDS.command(panel=LATENCY)
def calibrate(ctx: typer.Context,
              output: Annotated[Path, typer.Option(
                  "--output", "-o", dir_okay=False, rich_help_panel=OUTPUT,
                  help="Profile file to write (JSON).")],
              backend: Annotated[Literal["onnxruntime", "torch"], typer.Option(
                  "--backend", "-b", help="What runs the kernels: onnxruntime (CPU "
                  "execution provider, all graph optimisations) or torch (eager, "
                  "inference mode, on the CPU: what you train with).")] = "onnxruntime",
              threads: Annotated[int, typer.Option(
                  min=1, max=256, help="CPU threads.", rich_help_panel=MEASURING)] = 1,
              batch: Annotated[int, typer.Option(
                  min=1, max=4096, rich_help_panel=MEASURING,
                  help="Images per run: every network is timed on a batch of this many, and "
                  "the profile predicts that batch (and no other; docs/latency.md, "
                  "Batch).")] = 1,
              networks: Annotated[int, typer.Option(
                  min=4, max=10_000, rich_help_panel=MEASURING,
                  help="Random calibration networks (sampling plan: docs/latency.md).")] = 120,
              variants: Annotated[int, typer.Option(
                  min=0, max=10_000, rich_help_panel=MEASURING,
                  help="Random variants of the shipped specs also measured (sweep --random's "
                  "sampler, seeded apart from the validation variants).")] = 136,
              repeats: Annotated[int, typer.Option(
                  min=2, max=1000, rich_help_panel=MEASURING,
                  help="Timed runs per network, split over the rounds.")] = 12,
              rounds: Annotated[int, typer.Option(
                  min=1, max=100, rich_help_panel=MEASURING,
                  help="Interleaved passes over all networks, each with fresh sessions; a "
                  "network's time is its fastest round's median.")] = 4,
              settle: Annotated[float, typer.Option(
                  min=0.0, max=1.0, rich_help_panel=MEASURING,
                  help="A network whose two fastest rounds differ by more than this share "
                  "is measured again, a round at a time, up to --rounds more rounds, so "
                  "a busy machine's slow spells must hit every round to spoil its time; "
                  "its kernels are taken from the rounds within this share of its "
                  "fastest (0: no extra rounds, kernels from every round; one round: "
                  "nothing to compare).")] = 0.05,
              holdout: Annotated[int, typer.Option(
                  min=0, max=10_000, rich_help_panel=MEASURING,
                  help="Held-out variants of the shipped specs measured after the fit's "
                  "networks and never fitted: the profile's own validation figure.")] = 48,
              quick: Annotated[bool, typer.Option(
                  "--quick", rich_help_panel=MEASURING,
                  help="A smaller campaign (about 90 s on one core instead of about 10 min): "
                  "12 networks, 64 spec variants, 2 rounds of 3 runs, 20 held out "
                  "(docs/latency.md); an option given as well overrides its part.")] = False,
              trees: Annotated[int, typer.Option(
                  min=0, max=5000, help="Boosted regression trees on top of the linear "
                  "per-type model (needs scikit-learn; 0: linear model only).")] = 200,
              tree_act: Annotated[bool, typer.Option(
                  "--tree-act", help="The trees also read each kernel's activation (its "
                  "class and share of the kernel's work): relu6 and hswish networks then "
                  "differ (docs/latency.md).")] = False,
              seed: Annotated[int, typer.Option(
                  help="Seed for the networks.", rich_help_panel=MEASURING)] = 0,
              save_raw: Annotated[Optional[Path], typer.Option(
                  dir_okay=False, rich_help_panel=OUTPUT,
                  help="Also write the raw measurements (JSON), to refit later with "
                  "--from-raw.")] = None,
              from_raw: Annotated[Optional[Path], typer.Option(
                  exists=True, dir_okay=False,
                  help="Fit a profile from measurements saved with --save-raw (no "
                  "measuring; the networks are read from the file's record; an older file's are "
                  "rebuilt from their seeds and the current specs).")] = None,
              no_progress: Annotated[bool, typer.Option(
                  "--no-progress", help="No progress bar.", rich_help_panel=OUTPUT)] = False
              ) -> None:
    """Benchmark kernels on this machine and fit a latency profile."""
    from ..latency import calibrate as cal
    from ..latency import fitting
    from ..latency import raw as rawfile

    _check_writable("--output", output)
    if save_raw is not None:
        _check_writable("--save-raw", save_raw)
    if trees:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ArchspecError("calibrate --trees needs scikit-learn: pip install "
                                "scikit-learn (or --trees 0 for the linear model)") from None
    def fitted(raw):
        try:
            return fitting.build(raw, n_trees=trees, tree_act=tree_act)
        except (ValueError, RuntimeError) as e:
            raise ArchspecError(f"calibrate: cannot fit a profile: {e}") from None

    if from_raw is not None:
        given = [f"--{n.replace('_', '-')}" for n in
                 ("threads", "batch", "networks", "variants", "repeats", "rounds", "seed",
                  "save_raw", "holdout", "quick", "backend", "settle")
                 if ctx.get_parameter_source(n).name == "COMMANDLINE"]
        if given:
            raise typer.BadParameter(f"--from-raw refits saved measurements; "
                                     f"{', '.join(given)} only apply when measuring")
        raw = rawfile.load_raw(from_raw)
        profile = fitted(raw)
        profile.save(output)
        print(f"wrote {output}: refitted from {from_raw} ({len(raw['samples'])} kernel "
              f"samples, measured in {raw['seconds']:.0f} s, batch {profile.batch})",
              file=sys.stderr)
        print(_validation_line(profile), file=sys.stderr)
        noisy = _noisy_rounds(profile)
        if noisy:
            print(f"archspec: warning: {noisy}", file=sys.stderr)
        return

    _check_runtime(backend, f"calibrate --backend {backend}")
    plan = _plan(ctx, quick, networks=networks, variants=variants, repeats=repeats,
                 rounds=rounds, holdout=holdout)
    ctx, advance = _bar((plan["networks"] + plan["variants"] + plan["holdout"])
                        * plan["rounds"], f"calibrating {backend}, {threads} thread(s)"
                        + (f", batch {batch}" if batch != 1 else "")
                        + (" (quick)" if quick else ""), no_progress or not sys.stderr.isatty())
    with ctx:
        raw = cal.calibrate(threads=threads, seed=seed, progress=advance, batch=batch,
                            backend=backend, settle=settle, **plan)
    profile = fitted(raw)
    profile.save(output)
    if save_raw is not None:   # after the profile: a failed write here loses no profile
        rawfile.save_raw(raw, save_raw)
    c = profile.calibration
    print(f"wrote {output}: {c['kernel_samples']} kernel samples from {c['networks']} "
          f"networks and {c['variants']} spec variants at batch {profile.batch} "
          f"in {c['seconds']:.0f} s; run-to-run spread (between rounds) median "
          f"{c['round_spread_median']}, p90 {c['round_spread_p90']}", file=sys.stderr)
    if c.get("settle", {}).get("networks"):
        print(_settle_line(c["settle"]), file=sys.stderr)
    print(_fingerprint_line(profile), file=sys.stderr)
    print(_validation_line(profile), file=sys.stderr)
    for warning in (_moved_during(profile), _noisy_rounds(profile)):
        if warning:
            print(f"archspec: warning: {warning}", file=sys.stderr)


def _settle_line(settle: dict) -> str:
    """What the extra rounds did (calibrate --settle)."""
    left = settle["unsettled"]
    return (f"measured again: {settle['networks']} networks whose two fastest rounds were "
            f"more than {settle['tolerance'] * 100:g}% apart ({settle['rounds_added']} rounds "
            f"added); " + (f"{left} still apart after {settle['max_extra_rounds']} more "
                           "rounds (a busy machine)" if left else "all agree now"))


def _moved_during(profile) -> str | None:
    """A warning when the reference network's times during the calibration (before,
    between, after) are further apart than a later use of the profile tolerates
    (``profile.DRIFT_SLOWER``): the machine changed speed while it was measured."""
    from ..latency.profile import DRIFT_SLOWER, calibrate_hint, positive_time

    net = profile.fingerprint.get("network") or {}
    runs = [r for r in net.get("runs") or [] if positive_time(r)]
    if len(runs) < 2 or max(runs) / min(runs) <= DRIFT_SLOWER:
        return None
    return (f"this machine's speed changed during the calibration: {net['name']} at "
            f"{net['resolution']} px ran in {', '.join(f'{r:.2f}' for r in runs)} ms "
            f"(before, between, after: {max(runs) / min(runs):.2f}x apart), so the "
            f"profile mixes two states of the machine and a later use will warn in one "
            f"of them; calibrate again when the machine is quiet: "
            f"{calibrate_hint(profile.backend)}")


# a calibration's median round-to-round spread past this is a machine too busy to
# measure: the shipped profiles' calibrations had 1.9-15% (torch on the Zen 3 host the
# most); a Zen 1 EPYC guest on 2026-12-04 had 44%, and its 48 held-out networks' times
# themselves moved ~20% between rounds
NOISY_ROUNDS = 0.25


def _noisy_rounds(profile) -> str | None:
    """A warning when the calibration's networks moved more between rounds than any
    usable calibration's did (``NOISY_ROUNDS``): the profile carries that noise."""
    from ..latency.profile import calibrate_hint

    spread = profile.calibration.get("round_spread_median")
    if not isinstance(spread, (int, float)) or spread <= NOISY_ROUNDS:
        return None
    return (f"the calibration networks' times moved a median {spread:.0%} between rounds "
            f"(quiet machines: 2-15%): the machine was busy while it was measured, and a "
            f"profile is no more exact than its measurements; calibrate again when the "
            f"machine is quiet: {calibrate_hint(profile.backend)}")


def _check_runtime(backend: str, what: str) -> None:
    """Refuse, before any measuring, a backend whose packages are missing (onnxruntime
    runs ONNX files archspec writes with onnx)."""
    import importlib.util

    need = ("onnxruntime", "onnx") if backend == "onnxruntime" else ("torch",)
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise ArchspecError(f"{what} needs {' and '.join(missing)}: "
                            f"pip install {' '.join(missing)}")


def _check_writable(option: str, path: Path) -> None:
    """Refuse, before any measuring, a file that cannot be written: a folder, or a path whose
    nearest existing folder is a file or does not take new files."""
    import tempfile

    if path.is_dir():
        raise ArchspecError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ArchspecError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ArchspecError(f"{option} {path}: cannot create a file in {folder} "
                            f"({e.strerror or e})") from None


def _fingerprint_line(profile) -> str:
    from ..latency.profile import probe_ratio

    probes = profile.fingerprint["probes"]
    drift, _ = probe_ratio(probes[0], probes[-1])
    net = profile.fingerprint.get("network") or {}
    runs = net.get("runs") or []
    also = (f", and {net['name']} at {net['resolution']} px timed "
            f"{', '.join(f'{r:.2f}' for r in runs)} ms (the fastest kept)") if runs else ""
    return (f"machine fingerprint: {len(probes[0])} probe kernels timed {len(probes)} times "
            f"during the calibration (last / first: {drift:.2f}x){also}; every use of the "
            "profile compares this machine with it")


def _plan(ctx: typer.Context, quick: bool, **given) -> dict:
    """The campaign's sizes: the options as given, --quick's for those left at default."""
    from ..latency.calibrate import QUICK

    if not quick:
        return given
    return {k: v if ctx.get_parameter_source(k).name == "COMMANDLINE" else QUICK[k]
            for k, v in given.items()}


def _validation_line(profile) -> str:
    v = profile.validation
    if not v:
        return ("validation: none (no held-out networks were measured with these "
                "measurements; calibrate --holdout N measures some)")
    a = v.get("all_runs", v)
    return (f"validation: {v['within']} of {v['networks']} held-out networks "
            f"({v['share_within']:.0%}) predicted within +-{v['tolerance']:.0%} of their "
            f"measured time ({v.get('estimator', 'median of all runs')}); median |error| "
            f"{v['abs_error_median']:.1%}, signed {v['signed_error_median']:+.1%}; against "
            f"the median of all runs (as latency --check): {a['share_within']:.0%}, signed "
            f"{a['signed_error_median']:+.1%}; round-to-round spread median "
            f"{v.get('spread_median', 0):.0%} (stored in the profile)")


def miss_hint(error: float, spread: float, machine, backend: str) -> str | None:
    """What ``latency --check`` adds when the measurement is further from the prediction
    than the validation tolerance and than its own round-to-round spread; None
    otherwise. A machine that passed the probe may still have drifted since the
    calibration (torch eager on a shared VM ran ~25% faster a few hours later with the
    probe inside its bounds: docs/latency.md, Torch eager)."""
    from ..latency.check import TOLERANCE
    from ..latency.profile import calibrate_hint

    if abs(error) <= max(TOLERANCE, spread):
        return None
    why = ("this machine passed the profile's probe, so it has likely drifted since the "
           "calibration (or this network is unlike the calibrated ones)"
           if machine.matches else "see the machine warning above")
    return f"off by more than {TOLERANCE:.0%}: {why}; {calibrate_hint(backend)}"


def _table(name: str, pred, per: str, batch: int = 1):
    from rich.table import Table

    t = Table(per, "type", "model", "ms", title=f"{name}: predicted {pred.total_ms:.3f} ms "
              f"for a batch of {batch} (overhead {pred.overhead_ms:.3f} ms)",
              title_justify="left")
    if per == "kernel":
        for k in pred.kernels:
            t.add_row(k.name, k.type, k.model, f"{k.us / 1000:.4f}")
    else:
        for key, ms in pred.per(per).items():
            t.add_row(key, "", "", f"{ms:.4f}")
    return t


@COMMANDS.command(panel=LATENCY)
def latency(spec: Spec,
            profile_path: Annotated[Path, typer.Option(
                "--profile", "-p", dir_okay=False, help="A calibrated profile: a file, or "
                "a shipped one's name (archspec profiles).")],
            per: Annotated[Literal["kernel", "block", "stage"], typer.Option(
                help="Rows per kernel, block or stage.", rich_help_panel=OUTPUT)] = "kernel",
            check: Annotated[bool, typer.Option(
                "--check", help="Also measure the model and compare.")] = False,
            rounds: Annotated[int, typer.Option(
                min=1, max=1000, help="--check: interleaved measurement rounds.")] = 5,
            repeats: Annotated[int, typer.Option(
                min=1, max=10_000, help="--check: timed runs per round.")] = 10,
            batch: Annotated[Optional[int], typer.Option(
                min=1, max=1_000_000, show_default=False,
                help="The batch to predict (and --check to measure) [default: the "
                "profile's]; a profile predicts only the batch it was calibrated with, "
                "another is an error (calibrate --batch N).")] = None,
            no_probe: Annotated[bool, typer.Option(
                "--no-probe", help="Do not time the probe kernels that check this machine "
                "against the profile's fingerprint (also: ARCHSPEC_NO_PROBE=1); versions "
                "and CPU are still compared.")] = False,
            fmt: TableOrJson = "table",
            width: Width = None, resolution: Resolution = None, classes: Classes = None
            ) -> None:
    """Predicted latency of SPEC per kernel (as the backend fuses them) and in total, for
    a run of the profile's batch."""
    from ..latency import check as chk
    from ..latency.profile import load as load_profile
    from ..latency.profile import locate, warn
    from ..latency.report import batch_mismatch

    profile_path = locate(profile_path)
    profile = load_profile(profile_path)
    batch_mismatch(profile, batch, profile_path.name)
    if check:   # measuring runs the profile's backend: refuse before predicting
        _check_runtime(profile.backend, f"latency --check with a {profile.backend} profile "
                                        f"({profile_path.name})")
    machine = warn(profile, profile_path.name, skip="skipped (--no-probe)" if no_probe
                   else None)
    s = load(spec, width, resolution, classes)
    graph = s.compile()
    pred = chk.predict(graph, profile)
    doc = {"schema": "archspec.latency/1", "spec": s.name, "profile": str(profile_path),
           "backend": profile.backend, "threads": profile.settings.get("threads"),
           "batch": profile.batch,
           **pred.to_dict(), "machine_check": machine.to_dict()}
    result = None
    if check:
        ctx, advance = _bar(rounds, f"measuring {s.name}", not sys.stderr.isatty())
        with ctx:
            (result,) = chk.check([(s.name, graph)], profile, rounds=rounds, repeats=repeats,
                                  progress=advance)
        doc["check"] = result.to_dict()
    if fmt == "json":
        emit_json("latency", doc)
        return
    con = console()
    con.print(_table(s.name, pred, per, profile.batch))
    if result is not None:
        con.print(f"measured {result.measured_ms:.3f} ms (median of {rounds}x{repeats} runs "
                  f"of a batch of {profile.batch}, "
                  f"round-to-round spread {result.spread:.1%}); prediction error "
                  f"{result.error:+.1%}")
        hint = miss_hint(result.error, result.spread, machine, profile.backend)
        if hint:
            con.print(f"[yellow]{hint}[/yellow]")


def _profile_row(path: Path, probe: bool) -> dict:
    """One profile for ``archspec profiles``: where and how it was calibrated, its own
    validation figure and this machine's check against it."""
    from ..latency.profile import load as load_profile
    from ..latency.profile import machine_check

    p = load_profile(path)
    env = p.fingerprint.get("env") or {}
    c, v, fitted, machine, versions = (
        x if isinstance(x, dict) else {}
        for x in (p.calibration, p.validation, p.fitted_with, p.machine, p.versions))
    check = machine_check(p, path.name, skip=None if probe else "skipped (--no-probe)")
    return {"name": path.stem, "file": str(path), "backend": p.backend,
            "threads": p.settings.get("threads"), "batch": p.batch,
            "cpu": machine.get("cpu"),
            "cpu_id": env.get("cpu_id"),
            "cpu_flags": env.get("cpu_flags"),
            "versions": {k: versions.get(k) for k in (p.backend, "numpy")},
            "measured": str(c.get("measured") or p.created or ""), "seconds": c.get("seconds"),
            "networks": c.get("networks"), "variants": c.get("variants"),
            "fit_rules": fitted.get("fit_rules", 1),
            "round_spread_median": c.get("round_spread_median"),
            "validation": {k: v[k] for k in ("networks", "within", "share_within",
                                             "abs_error_median", "signed_error_median",
                                             "estimator") if k in v},
            "fits_this_machine": check.verdict(), "machine_check": check.to_dict()}


def _unreadable_row(path: Path, error: Exception) -> dict:
    """A profile of the shipped folder that cannot be read: listed, not fatal."""
    return {"name": path.stem, "file": str(path), "backend": None, "threads": None,
            "batch": None, "cpu": None, "cpu_id": None, "validation": {}, "measured": "",
            "fits_this_machine": f"unreadable: {error}", "machine_check": None}


def _rows(files: list, given: bool, probe: bool) -> list[dict]:
    """Every profile's row; a given file that cannot be read is an error (exit 2), one
    in the shipped folder a row saying so."""
    rows = []
    for f in files:
        try:
            rows.append(_profile_row(f, probe))
        except (ArchspecError, AttributeError, TypeError, ValueError) as e:
            if given:
                if isinstance(e, ArchspecError):
                    raise
                raise ArchspecError(f"{f}: broken profile ({type(e).__name__}: {e})") from None
            rows.append(_unreadable_row(f, e))
    return rows


@COMMANDS.command("profiles", panel=LATENCY)
def list_profiles(
        paths: Annotated[Optional[list[Path]], typer.Argument(
            metavar="[PROFILE]...", show_default=False, dir_okay=False,
            help="Profiles to list: files or shipped names [default: every shipped "
            "profile].")] = None,
        no_probe: Annotated[bool, typer.Option(
            "--no-probe", help="Compare CPU, versions and settings only; do not time the "
            "probe kernels and the reference network (also: ARCHSPEC_NO_PROBE=1).")]
        = False,
        fmt: TableOrJson = "table") -> None:
    """List latency profiles (the shipped ones, or those given): the machine and
    setting each was calibrated on, its own held-out validation, and whether it fits
    this machine (the check every use of a profile runs)."""
    from ..latency.profile import SHIPPED, locate, shipped

    files = [locate(p) for p in paths] if paths else shipped()
    if not files:
        why = "has no profiles" if SHIPPED.is_dir() else "is missing: a wheel install has none"
        raise ArchspecError(f"no shipped profiles here ({SHIPPED} {why}); give profile "
                            "files, or make one with `archspec calibrate -o my-profile.json`")
    import contextlib

    status = (console(stderr=True).status(f"checking this machine against {len(files)} "
                                          "profile(s)")
              if not no_probe and sys.stderr.isatty() else contextlib.nullcontext())
    with status:
        rows = _rows(files, bool(paths), not no_probe)
    if fmt == "json":
        emit_json("profiles", {"profiles": rows})
        return
    from rich.table import Table

    t = Table("profile", "backend", "threads", "batch", "calibrated on", "measured",
              "held-out", "fits this machine", title="latency profiles",
              title_justify="left")
    for r in rows:
        v = r["validation"]
        held = (f"{v['share_within']:.0%} of {v['networks']}" if "share_within" in v
                else "-")
        t.add_row(r["name"], str(r["backend"]), str(r["threads"]), str(r["batch"]),
                  " ".join(str(x) for x in (r["cpu"], r["cpu_id"] and f"({r['cpu_id']})")
                           if x),
                  (r["measured"] or "")[:16].replace("T", " "), held,
                  r["fits_this_machine"])
    console().print(t)
    print("held-out: the calibration's own held-out networks within +-10% (docs/latency.md "
          "Status has each profile's checks)" + ("" if paths else
                                                  "; use one by name: --profile NAME"),
          file=sys.stderr)
