"""The search as an Optuna study. Optuna's samplers propose the variables (NSGA-II for a
Pareto front, TPE for one objective, or random); its storage holds every trial, so a
study outlives the process and is shared: by default a journal file in the output folder
(``study.journal``: many processes on one machine append to it under a file lock), or any
database URL Optuna takes (``sqlite:///study.db``, ``postgresql://...``) for workers on
many machines. Each worker is one call of :func:`work`; ``--workers N`` starts N of them
as processes, and running the same command elsewhere with the same ``--storage`` and
``--study-name`` adds that many more."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchspecError
from .objectives import Objectives, figures
from .space import Space, error_message, label

SAMPLERS = ("auto", "nsga2", "tpe", "random")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to rebuild the search in its own process (picklable)."""

    spec: str
    space: str
    objectives: Objectives
    storage: str
    study: str
    profile: str | None = None
    proxy: object = None
    sampler: str = "auto"
    seed: int = 0


def storage_url(given: str | None, out: Path) -> str:
    """``--storage``: a database URL, a journal file path, or the default journal file in
    the output folder."""
    if given is None:
        return str(out / "study.journal")
    return given


class TrialError(ArchspecError):
    """A trial's variant failed; the study records it as a failed trial."""


def _storage(url: str):
    """The Optuna storage ``--storage`` names; one that cannot be opened is a user error
    naming the option."""
    import optuna

    if not url.strip():
        raise ArchspecError("--storage: empty; give a database URL or a journal file path")
    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:   # sqlalchemy: bad URL, missing driver, unreachable file
            raise ArchspecError(f"--storage {url}: cannot open it ({_first_line(e)})") \
                from None
    from optuna.storages.journal import JournalFileBackend

    if Path(url).is_dir():
        raise ArchspecError(f"--storage {url}: is a directory; give a journal file path")
    try:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    except OSError as e:
        raise ArchspecError(f"--storage {url}: cannot open it ({e.strerror or e})") \
            from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def space_digest(space: Space) -> str:
    """A digest of what a space varies (names, fields, rows, values, ranges)."""
    import hashlib

    rows = [(v.name, v.field, v.rows, v.values, v.low, v.high, v.step, v.log)
            for v in space.variables]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _sampler(name: str, objectives: Objectives, seed: int):
    import optuna

    multi = len(objectives.directions) > 1
    if name == "auto":
        name = "nsga2" if multi else "tpe"
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(job: Job, worker: int = 0):
    """The job's study (created if new); a study of that name made with other objectives,
    another spec or another space is an error."""
    import optuna

    from .space import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        storage=_storage(job.storage), study_name=job.study, load_if_exists=True,
        directions=job.objectives.directions,
        sampler=_sampler(job.sampler, job.objectives, job.seed + worker))
    mine = {"objectives": job.objectives.names, "spec": Path(job.spec).stem,
            "space": space_digest(load_space(job.space))}
    stored = study.user_attrs
    if "objectives" not in stored:
        for key, value in mine.items():
            study.set_user_attr(key, value)
        return study
    for key, what in (("objectives", "optimises"), ("spec", "searches spec"),
                      ("space", "was made with another space file (digest")):
        if key in stored and stored[key] != mine[key]:
            found = f"{stored[key]}" + (")" if key == "space" else "")
            raise ArchspecError(
                f"study {job.study!r} in {job.storage} {what} {found}, not this search's: "
                "use another --study-name or --output")
    return study


def suggest(trial, var):
    if var.values is not None:
        return trial.suggest_categorical(var.name, list(var.values))
    if var.integer:
        return trial.suggest_int(var.name, var.low, var.high, step=var.step or 1, log=var.log)
    return trial.suggest_float(var.name, var.low, var.high, step=var.step, log=var.log)


def base_spec(job: Job):
    return load_base(job.spec)


def load_base(source: str, command: str = "archspec search or adapt", **overrides):
    """The spec a search, NetAdapt or rank starts from: a YAML file or a shipped name."""
    from ..sources import load
    from ..spec.model import Spec

    spec = load(source, **overrides)
    if not isinstance(spec, Spec):
        raise ArchspecError(f"{source}: {command} takes a YAML spec or a shipped spec name, "
                            "not a model file")
    return spec


def objective(job: Job, space: Space, base):
    """The function Optuna calls for each trial: the variant's figures (kept as the trial's
    user attributes) and the objectives' values."""
    names = job.objectives.needed()

    def run(trial):
        values = {v.name: suggest(trial, v) for v in space.variables}
        trial.set_user_attr("label", label(values))
        trial.set_user_attr("worker", os.getpid())
        seen = _same(trial, values)
        if seen is not None:   # a sampler may propose a variant again: reuse its figures
            trial.set_user_attr("same_as", seen.number)
            trial.set_user_attr("figures", seen.user_attrs["figures"])
            return seen.values
        try:
            spec = space.apply(base, values)
            text = (space.text(base, values, trial_name(base, trial.number))
                    if job.proxy else "")
            figs = figures(spec, names, profile=job.profile, proxy=job.proxy, text=text)
        except Exception as e:   # recorded as the trial's failure, told once at the end
            user = isinstance(e, ArchspecError)
            message = f"{space.file}: {label(values)}: " + error_message(e)
            trial.set_user_attr("error", message)
            trial.set_user_attr("user_error", user)
            raise TrialError(message) from None
        trial.set_user_attr("figures", figs)
        return job.objectives.values(figs)

    return run


def failures(job: Job) -> tuple[int, int, list[dict]]:
    """(complete, failed, failed trials' user attrs) of the study."""
    import optuna

    study = optuna.load_study(study_name=job.study, storage=_storage(job.storage))
    done = study.get_trials(deepcopy=False)
    failed = [t.user_attrs for t in done if t.state == optuna.trial.TrialState.FAIL]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    return complete, len(failed), failed


def _same(trial, values: dict):
    """A completed trial of the study with these variable values, if any."""
    import optuna

    done = trial.study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,))
    return next((t for t in done if t.params == values and "figures" in t.user_attrs),
                None)


def trial_name(base, number: int) -> str:
    return f"{base.name}_t{number}"


def work(job: Job, n_trials: int, worker: int = 0, callback=None) -> None:
    """One worker: run ``n_trials`` trials of the shared study. A variant that does not
    compile fails its trial (recorded, not retried)."""
    from .space import load_space

    space, base = load_space(job.space), base_spec(job)
    study = open_study(job, worker)
    callbacks = [lambda _study, _trial: callback(1)] if callback else []
    study.optimize(objective(job, space, base), n_trials=n_trials, catch=(TrialError,),
                   callbacks=callbacks)


def _work_process(args) -> None:
    job, n, worker = args
    work(job, n, worker)


def run(job: Job, n_trials: int, workers: int = 1, progress=None) -> None:
    """``n_trials`` trials over ``workers`` processes (1: in this process), each worker
    taking its share; ``progress(n)`` as trials finish."""
    if workers <= 1:
        work(job, n_trials, 0, progress)
        return
    import multiprocessing
    import time

    shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
    open_study(job)   # create it once, before the workers race to
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pending = pool.map_async(_work_process, [(job, n, i) for i, n in enumerate(shares)
                                                 if n])
        done = _finished(job)
        while not pending.ready():
            time.sleep(0.5)
            now = _finished(job)
            if progress and now > done:
                progress(now - done)
            done = now
        pending.get()
        if progress:
            progress(_finished(job) - done)


def _finished(job: Job) -> int:
    import optuna

    study = optuna.load_study(study_name=job.study, storage=_storage(job.storage))
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def trials(job: Job) -> tuple[list[dict], list[int]]:
    """Every finished trial as a flat row (number, state, variables, figures, values;
    ``same_as``: the earlier trial of the same variant whose figures it reused), and the
    numbers of the trials on the Pareto front (the best for one objective), each variant
    once."""
    import optuna

    study = optuna.load_study(study_name=job.study, storage=_storage(job.storage))
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        row = {"trial": t.number, "state": t.state.name, **t.params,
               **t.user_attrs.get("figures", {})}
        if t.values is not None and job.objectives.target_ms:
            row["reward"] = round(t.values[0], 6)
        row["worker"] = t.user_attrs.get("worker")
        if "same_as" in t.user_attrs:
            row["same_as"] = t.user_attrs["same_as"]
        rows.append(row)
    complete = [t for t in study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.COMPLETE,))]
    front = sorted(t.number for t in study.best_trials
                   if "same_as" not in t.user_attrs) if complete else []
    return rows, front
