"""The training loop behind ``archspec train``: one process, or one per GPU under
``torchrun`` (DDP; the same command, the same global batch).

Per epoch: train with a rich progress bar (loss, accuracy, images/s), evaluate (the EMA
weights too when the recipe keeps them), append a record to ``metrics.jsonl``, write
``last.pt`` and, on a new best validation accuracy, ``best.pt``. At the end, ``curves.png``.
Only rank 0 writes. Every random draw of epoch e (data order, augmentation, dropout) comes
from generators seeded with (seed, e, rank), so ``--resume`` continues bit-for-bit.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchspecError
from ..fsutil import atomic_path, atomic_write_text
from . import checkpoint, data
from .recipes import Recipe, default_recipe, learning_rate, load_recipe, recipe_from_dict


class TrainingError(ArchspecError):
    """Training cannot start or went wrong (NaN loss, a mismatched resume)."""


@dataclass
class TrainConfig:
    """What ``archspec train`` takes. None means: the recipe's (or the spec's) value."""

    spec: str | None = None
    data: str | None = None
    recipe: str | None = None
    out: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    width: float | None = None
    resolution: int | None = None
    classes: int | None = None
    limit_batches: int | None = None  # at most this many train and val batches an epoch
    stop_after: int | None = None  # train this many epochs now; the schedule spans `epochs`
    workers: int | None = None
    resume: str | None = None
    device: str | None = None  # "cpu", "cuda", "cuda:1"; default: CUDA when available
    precision: str = "auto"  # auto (bf16 on CUDA, else fp32) | fp32 | fp16 | bf16
    channels_last: bool | None = None  # default: on CUDA
    compile: bool = False
    overwrite: bool = False
    quiet: bool = False
    plot: bool = True


@dataclass
class RunResult:
    out: Path
    epochs: int
    best_val_acc: float
    best_epoch: int
    records: list = field(default_factory=list)


# ---- processes and devices ----------------------------------------------------------------
@dataclass
class Dist:
    """This process's place in the run: rank, world size, device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def setup_distributed(device: str | None) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on CUDA,
    gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is available")
    if world == 1:
        return Dist(device=torch.device(device or ("cuda" if use_cuda else "cpu")))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, device=dev)


def _autocast(precision: str, device: torch.device):
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def _precision(config: TrainConfig, device: torch.device) -> str:
    if config.precision not in ("auto", "fp32", "fp16", "bf16"):
        raise TrainingError(f"--precision {config.precision}: use auto, fp32, fp16 or bf16")
    if config.precision != "auto":
        return config.precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


# ---- EMA ----------------------------------------------------------------------------------
class WeightEMA:
    """An exponential moving average of a model's weights (buffers copied)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self._pair(model)

    def _pair(self, model):
        ours, theirs = self.module.state_dict(), model.state_dict()
        self.floats = [(ours[k], theirs[k]) for k in ours if ours[k].is_floating_point()]
        self.others = [(ours[k], theirs[k]) for k in ours if not ours[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = self.decay
        if self.warmup:
            d = min(d, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([a for a, _ in self.floats], [b for _, b in self.floats], 1 - d)
        for a, b in self.others:
            a.copy_(b)

    def state(self) -> dict:
        return {"updates": self.updates, "state": self.module.state_dict()}

    def load(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["state"])


# ---- pieces -------------------------------------------------------------------------------
def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    o = recipe.optimizer
    if o.decay_norm_and_bias:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    else:
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
        groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
    if o.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=o.lr, alpha=o.alpha, eps=o.eps,
                                   momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                           weight_decay=o.weight_decay)


def set_dropout(model: nn.Module, p: float | None) -> int:
    """Set every dropout layer's probability to ``p``; the number of layers changed."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if p is not None:
        for m in layers:
            m.p = p
    return len(layers)


@torch.no_grad()
def evaluate(model: nn.Module, dataset, *, batch_size: int, dist: Dist, limit=None,
             autocast=contextlib.nullcontext, channels_last=False, workers=0) -> dict:
    """Loss, top-1 and top-5 accuracy of ``model`` on ``dataset`` (summed over ranks)."""
    was_training = model.training
    model.eval()
    loss = correct = top5 = n = 0.0
    loader = data.batches(dataset, batch_size=batch_size, train=False, epoch=0, seed=0,
                          rank=dist.rank, world=dist.world, workers=workers,
                          pin_memory=dist.device.type == "cuda")
    for i, (x, y) in enumerate(loader):
        if limit is not None and i >= limit:
            break
        x, y = _to(x, y, dist.device, channels_last)
        with autocast():
            out = model(x)
        out = out.float()
        loss += F.cross_entropy(out, y, reduction="sum").item()
        k = min(5, out.shape[1])
        hits = out.topk(k, dim=1).indices == y[:, None]
        correct += hits[:, 0].sum().item()
        top5 += hits.any(dim=1).sum().item()
        n += len(y)
    model.train(was_training)
    loss, correct, top5, n = dist.all_sum([loss, correct, top5, n])
    if n == 0:
        raise TrainingError(f"{dataset.name}: no images to evaluate")
    return {"loss": loss / n, "acc": correct / n, "top5": top5 / n, "images": int(n)}


def _to(x, y, device, channels_last):
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


# ---- setting up a run ---------------------------------------------------------------------
@dataclass
class Run:
    config: TrainConfig
    recipe: Recipe
    source: data.Source
    spec_text: str
    overrides: dict
    graph: object
    out: Path
    start_epoch: int = 0
    resume_state: dict | None = None
    weights: dict | None = None


def _plan(config: TrainConfig) -> Run:
    """Resolve spec, data, recipe and output folder (from the checkpoint when resuming)."""
    from ..backends import torch_io
    from ..spec import load

    if config.resume:
        path, checked, training = checkpoint.read_resumable(config.resume)
        stored = training["config"]
        _check_resume(config, stored, path)
        recipe = recipe_from_dict(stored["recipe"], f"{path}: recipe")
        recipe = recipe.with_(epochs=config.epochs)
        kept = {k: stored[k] for k in ("spec", "seed")}
        if config.limit_batches is None:
            kept["limit_batches"] = stored.get("limit_batches")
        run = Run(dataclasses.replace(config, **kept),
                  recipe, data.parse_source(config.data or stored["data"]),
                  checked.spec_text, dict(stored["overrides"]), checked.graph, path.parent,
                  int(training["epoch"]), training, checked.state_dict)
        if run.source.kind != data.parse_source(stored["data"]).kind:
            raise TrainingError(f"--data {config.data}: {path} was trained on "
                                f"{stored['data']}")
        return run
    if not config.spec or not config.data:
        raise TrainingError("give a SPEC and --data (or --resume RUN_FOLDER)")
    source = data.parse_source(config.data)
    spec = load(config.spec, width=config.width, resolution=config.resolution)
    classes = config.classes or data.class_count(source, spec.classes)
    spec = spec.with_(classes=classes)
    graph = spec.compile()
    recipe = load_recipe(config.recipe or default_recipe(source.kind)).with_(
        epochs=config.epochs, batch_size=config.batch_size, **{"optimizer.lr": config.lr})
    out = Path(config.out or f"runs/{spec.name}-{source.kind}")
    if (out / "last.pt").exists() and not config.overwrite:
        raise TrainingError(f"{out} already holds a run: pass --resume {out} to continue it, "
                            "--overwrite to start again, or another --output")
    overrides = {k: graph.meta.get(k) for k in ("resolution", "width", "classes")}
    return Run(config, recipe, source, torch_io.spec_text(spec), overrides, graph, out)


def _check_resume(config: TrainConfig, stored: dict, path: Path) -> None:
    fixed = {"recipe": None, "batch_size": stored["recipe"]["batch_size"],
             "lr": stored["recipe"]["optimizer"]["lr"], "width": None, "resolution": None,
             "classes": None}
    for key, value in fixed.items():
        given = getattr(config, key)
        if given is not None and (value is None or given != value):
            raise TrainingError(f"--{key.replace('_', '-')} {given}: cannot change when "
                                f"resuming {path} (it continues the run exactly as started)")
    if config.seed not in (0, stored["seed"]):
        raise TrainingError(f"--seed {config.seed}: {path} was trained with seed "
                            f"{stored['seed']}")


def _datasets(run: Run, dist: Dist, resolution: int, classes: int):
    on_device = dist.device
    train_set = data.load_split(run.source, "train", resolution=resolution, classes=classes)
    val_set = data.load_split(run.source, "val", resolution=resolution, classes=classes)
    for ds in (train_set, val_set):
        if ds.classes != classes:
            raise data.DataError(f"--data {run.source}: {ds.classes} classes, the model has "
                                 f"{classes} (leave out --classes to use the data's)")
    train_set.configure(augment=run.recipe.augment, resolution=resolution,
                        seed=run.config.seed, device=on_device)
    val_set.configure(augment=None, resolution=resolution, seed=run.config.seed,
                      device=on_device)
    return train_set, val_set


# ---- the loop -----------------------------------------------------------------------------
def train(config: TrainConfig) -> RunResult:
    """Train as ``config`` says; returns where the run is and its best accuracy."""
    dist = setup_distributed(config.device)
    devices = [dist.device.index or 0] if dist.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            result = _train(config, dist)
        if dist.world > 1:
            # rank 0 still writes files after the last epoch; tearing gloo down on one
            # rank while the other is busy can abort the process ("terminate called
            # without an active exception"), so the ranks finish together
            torch.distributed.barrier()
        return result
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, dist: Dist) -> RunResult:
    from ..backends import get_backend, torch_io

    run = _plan(config)
    recipe, cfg, graph = run.recipe, run.config, run.graph
    if graph.meta.get("channels", 3) != 3:
        raise TrainingError(f"{graph.name}: the datasets give 3-channel images, the spec "
                            f"takes {graph.meta.get('channels')}")
    if recipe.batch_size % dist.world:
        raise TrainingError(f"batch size {recipe.batch_size} does not split over "
                            f"{dist.world} processes (it is the global batch)")
    batch = recipe.batch_size // dist.world
    resolution, classes = graph.meta["resolution"], graph.meta["classes"]
    train_set, val_set = _datasets(run, dist, resolution, classes)
    steps = data.steps_per_epoch(train_set, batch, dist.world)
    if steps == 0:
        raise TrainingError(f"{train_set.name}: {len(train_set)} images make no batch of "
                            f"{recipe.batch_size}")
    if cfg.limit_batches:
        steps = min(steps, cfg.limit_batches)
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    model = get_backend("torch").build(graph, seed=cfg.seed)
    if set_dropout(model, recipe.dropout) == 0 and recipe.dropout and dist.main:
        print(f"archspec: note: the recipe's dropout {recipe.dropout} is not used: "
              f"{graph.name} has no dropout layer")
    if run.weights is not None:
        torch_io.load_weights(model, run.weights, str(run.out / "last.pt"))
    channels_last = cfg.channels_last if cfg.channels_last is not None \
        else dist.device.type == "cuda"
    model.to(dist.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ema = WeightEMA(model, recipe.ema.decay, recipe.ema.warmup) if recipe.ema else None
    optimizer = make_optimizer(model, recipe)
    precision = _precision(cfg, dist.device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16"
                                  and dist.device.type == "cuda")
    best = {"val_acc": -1.0, "epoch": 0}
    if run.resume_state is not None:
        optimizer.load_state_dict(run.resume_state["optimizer"])
        if run.resume_state.get("scaler"):
            scaler.load_state_dict(run.resume_state["scaler"])
        if ema is not None and run.resume_state.get("ema"):
            ema.load(run.resume_state["ema"])
        best = dict(run.resume_state["best"])
    step_model = model
    if dist.world > 1:
        # 1x1 convolutions' gradients come back with equivalent but different strides
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        step_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    autocast = _autocast(precision, dist.device)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    workers = cfg.workers if cfg.workers is not None else min(8, os.cpu_count() or 1)

    stored_config = {"spec": cfg.spec, "data": str(run.source), "seed": cfg.seed,
                     "limit_batches": cfg.limit_batches,
                     "overrides": run.overrides, "recipe": recipe.to_dict()}
    records = _start_metrics(run, dist)
    progress = _Progress(enabled=dist.main and not cfg.quiet, epochs=recipe.epochs)
    if dist.main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.out / "run.json", json.dumps(
            {**stored_config, "world_size": dist.world, "device": str(dist.device),
             "precision": precision, "graph": graph.name}, indent=2) + "\n")
        progress.header(graph, train_set, val_set, recipe, dist, precision, run)

    with progress:
        stop = recipe.epochs if cfg.stop_after is None else \
            min(recipe.epochs, run.start_epoch + cfg.stop_after)
        for epoch in range(run.start_epoch, stop):
            torch.manual_seed(data.generator(cfg.seed, epoch, dist.rank, 2).initial_seed())
            stats = _train_epoch(step_model, model, ema, optimizer, scaler, criterion, recipe,
                                 train_set, batch, steps, epoch, dist, autocast,
                                 channels_last, workers, progress)
            eval_kw = dict(batch_size=batch, dist=dist, limit=cfg.limit_batches,
                           autocast=autocast, channels_last=channels_last, workers=workers)
            val = evaluate(model, val_set, **eval_kw)
            record = {"epoch": epoch + 1, "lr": stats["lr"], "train_loss": stats["loss"],
                      "train_acc": stats["acc"], "val_loss": val["loss"],
                      "val_acc": val["acc"], "val_top5": val["top5"]}
            kept = model
            if ema is not None:
                ema_val = evaluate(ema.module, val_set, **eval_kw)
                record.update(val_acc_raw=val["acc"], val_loss=ema_val["loss"],
                              val_acc=ema_val["acc"], val_top5=ema_val["top5"])
                kept = ema.module
            improved = record["val_acc"] > best["val_acc"]
            if improved:
                best = {"val_acc": record["val_acc"], "epoch": epoch + 1}
            record.update(best_val_acc=best["val_acc"], images_per_s=stats["images_per_s"],
                          epoch_s=stats["seconds"], images=stats["images"],
                          world_size=dist.world)
            records.append(record)
            if dist.main:
                _write_metrics(run.out, records)
                training = {"epoch": epoch + 1, "config": stored_config, "best": best,
                            "record": record}
                if improved:
                    checkpoint.save(run.out / "best.pt", kept, run.spec_text, run.overrides,
                                    {**training, "kind": "best"})
                checkpoint.save(run.out / "last.pt", model, run.spec_text, run.overrides, {
                    **training, "kind": "last", "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "ema": ema.state() if ema is not None else None})
                progress.summary(record, recipe.epochs)
    if dist.main and cfg.plot and records:
        plot_curves(records, run.out / "curves.png", title=f"{graph.name} on {run.source}")
    return RunResult(run.out, recipe.epochs, best["val_acc"], best["epoch"], records)


def _train_epoch(step_model, model, ema, optimizer, scaler, criterion, recipe, dataset, batch,
                 steps, epoch, dist, autocast, channels_last, workers, progress) -> dict:
    model.train()
    log_every = 1 if dist.device.type == "cpu" else 25
    loss_sum = torch.zeros((), device=dist.device, dtype=torch.float64)
    correct = torch.zeros((), device=dist.device, dtype=torch.int64)
    seen, lr = 0, 0.0
    loader = data.batches(dataset, batch_size=batch, train=True, epoch=epoch,
                          seed=dataset.seed, rank=dist.rank, world=dist.world,
                          workers=workers, pin_memory=dist.device.type == "cuda")
    task = progress.start(epoch, steps)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step >= steps:
            break
        lr = learning_rate(recipe, epoch, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = _to(x, y, dist.device, channels_last)
        with autocast():
            out = step_model(x)
            loss = criterion(out, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update()
        loss_sum += loss.detach().double() * len(y)
        correct += (out.detach().argmax(1) == y).sum()
        seen += len(y)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            total = loss_sum.item()
            _check_finite(total, epoch, step)
            elapsed = time.perf_counter() - start
            progress.advance(task, step + 1, total / seen, correct.item() / seen,
                             seen * dist.world / max(elapsed, 1e-9))
    if dist.device.type == "cuda":
        torch.cuda.synchronize(dist.device)
    seconds = time.perf_counter() - start
    total, hits, n = dist.all_sum([loss_sum.item(), float(correct.item()), float(seen)])
    _check_finite(total, epoch, steps - 1)
    progress.stop(task)
    return {"loss": total / max(n, 1), "acc": hits / max(n, 1), "lr": lr, "images": int(n),
            "seconds": seconds, "images_per_s": n / max(seconds, 1e-9)}


def _check_finite(total: float, epoch: int, step: int) -> None:
    if not math.isfinite(total):
        raise TrainingError(f"the loss became {total} in epoch {epoch + 1} by step {step + 1}: "
                            "training diverged; lower the learning rate (--lr) or use more "
                            "warm-up. Nothing was written for this epoch; last.pt holds the "
                            "previous one")


# ---- metrics, plot, progress --------------------------------------------------------------
def _start_metrics(run: Run, dist: Dist) -> list:
    """Records so far: those of the epochs the checkpoint holds, when resuming."""
    path = run.out / "metrics.jsonl"
    if not run.start_epoch or not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("epoch", 0) <= run.start_epoch]


def _write_metrics(out: Path, records: list) -> None:
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def plot_curves(records: list, path: Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation, as a PNG (written atomically)."""
    import matplotlib.pyplot as plt

    fig = curves_figure(records, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def curves_figure(records: list, title: str = ""):
    """The figure of :func:`plot_curves`. Every epoch is a marker, so that a run of one
    epoch (a single point, which draws no line) shows too."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    style = {"marker": "o", "markersize": 4}
    ax_loss.plot(epochs, [r["train_loss"] for r in records], label="train", **style)
    ax_loss.plot(epochs, [r["val_loss"] for r in records], label="val", **style)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in records], label="train", **style)
    ax_acc.plot(epochs, [r["val_acc"] for r in records], label="val", **style)
    if "val_acc_raw" in records[0]:
        ax_acc.plot(epochs, [r["val_acc_raw"] for r in records], label="val (no EMA)",
                    linestyle="--", **style)
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return fig


class _Progress:
    """A rich progress bar per epoch (on stderr), replaced by a summary line when done."""

    def __init__(self, enabled: bool, epochs: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.enabled, self.epochs = enabled, epochs
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}  "
                       "{task.fields[ips]:,.0f} img/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, disable=not enabled, transient=False)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def header(self, graph, train_set, val_set, recipe, dist, precision, run) -> None:
        if self.enabled:
            self.console.print(
                f"[bold]{graph.name}[/] on {run.source}: {len(train_set)} train / "
                f"{len(val_set)} val images at {graph.meta['resolution']}px; recipe "
                f"{recipe.name} (batch {recipe.batch_size}, {recipe.optimizer.name} lr "
                f"{recipe.optimizer.lr:g}, {recipe.schedule.name}); {dist.world} x "
                f"{dist.device} {precision}; writing to {run.out}", highlight=False)

    def start(self, epoch: int, steps: int):
        return self.bar.add_task("", total=steps, epoch=epoch + 1, epochs=self.epochs,
                                 loss=float("nan"), acc=0.0, ips=0.0)

    def advance(self, task, done: int, loss: float, acc: float, ips: float) -> None:
        self.bar.update(task, completed=done, loss=loss, acc=acc, ips=ips)

    def stop(self, task) -> None:
        self.bar.remove_task(task)

    def summary(self, r: dict, epochs: int) -> None:
        if self.enabled:
            self.bar.console.print(
                f"epoch {r['epoch']}/{epochs}  train loss {r['train_loss']:.4f} acc "
                f"{r['train_acc']:.2%}  val loss {r['val_loss']:.4f} acc {r['val_acc']:.2%} "
                f"(best {r['best_val_acc']:.2%})  lr {r['lr']:.4g}  "
                f"{r['images_per_s']:,.0f} img/s  {r['epoch_s']:.1f}s", highlight=False)


# ---- evaluating a checkpoint --------------------------------------------------------------
def evaluate_checkpoint(path, data_ref: str, *, batch_size: int = 256, device: str | None = None,
                        limit_batches: int | None = None, workers: int | None = None) -> dict:
    """Accuracy of a saved model (``best.pt``, ``last.pt`` or any torch-backend file) on the
    validation split of ``data_ref``."""
    from ..backends import get_backend, torch_io

    path = Path(path)
    checked, training = checkpoint.read(path)
    model = get_backend("torch").build(checked.graph)
    torch_io.load_weights(model, checked.state_dict, str(path))
    dist = setup_distributed(device)
    source = data.parse_source(data_ref)
    meta = checked.graph.meta
    val_set = data.load_split(source, "val", resolution=meta["resolution"],
                              classes=meta["classes"])
    if val_set.classes != meta["classes"]:
        raise data.DataError(f"--data {source}: {val_set.classes} classes, the model in "
                             f"{path} has {meta['classes']}")
    seed = int(training["config"]["seed"]) if training else 0
    val_set.configure(augment=None, resolution=meta["resolution"], seed=seed,
                      device=dist.device)
    model.to(dist.device)
    result = evaluate(model, val_set, batch_size=batch_size, dist=dist, limit=limit_batches,
                      workers=workers if workers is not None else min(8, os.cpu_count() or 1))
    return {"checkpoint": str(path), "model": checked.graph.name, "data": str(source),
            "split": "val", "images": result["images"], "top1": result["acc"],
            "top5": result["top5"], "loss": result["loss"],
            "epoch": training.get("epoch") if training else None}
