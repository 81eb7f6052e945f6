"""The training loop behind ``archspec train``: one process, or one per GPU under
``torchrun`` (DDP; the same command, the same global batch).

Per epoch: train with a progress bar (:mod:`.progress`), evaluate (:mod:`.evaluate`; the
EMA weights of :mod:`.ema` too when the recipe keeps them), append a record to
``metrics.jsonl``, write ``last.pt`` and, on a new best validation accuracy, ``best.pt``.
At the end, ``curves.png`` (:mod:`.plots`). Only rank 0 writes. Every random draw of
epoch e (data order, augmentation, dropout) comes from generators seeded with
(seed, e, rank), so ``--resume`` continues bit-for-bit.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..fsutil import atomic_write_text
from . import checkpoint, data
from .config import RunResult, TrainConfig, TrainingError
from .dist import Dist, autocast_for, resolve_precision, setup_distributed, to_device
from .ema import WeightEMA
from .evaluate import default_workers, evaluate
from .plan import Run, datasets, plan
from .plots import plot_curves
from .progress import Progress
from .recipes import Recipe, learning_rate

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


@dataclass
class Trainer:
    """What every epoch of a run uses, set up once by :func:`_setup`."""

    run: Run
    dist: Dist
    model: nn.Module            # the weights: evaluated and saved
    step_model: nn.Module       # what a step calls (the model under DDP, torch.compile)
    ema: WeightEMA | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_set: object
    val_set: object
    batch: int                  # images per step on this process
    steps: int                  # steps per epoch
    precision: str
    autocast: object            # a factory of autocast contexts
    channels_last: bool
    workers: int
    best: dict
    progress: Progress | None = None

    @property
    def recipe(self) -> Recipe:
        return self.run.recipe

    def eval_kw(self) -> dict:
        return dict(batch_size=self.batch, dist=self.dist, limit=self.run.config.limit_batches,
                    autocast=self.autocast, channels_last=self.channels_last,
                    workers=self.workers)


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
    run = plan(config)
    t = _setup(run, dist)
    cfg, recipe, graph = run.config, run.recipe, run.graph
    stored_config = {"spec": cfg.spec, "data": str(run.source), "seed": cfg.seed,
                     "limit_batches": cfg.limit_batches,
                     "overrides": run.overrides, "recipe": recipe.to_dict()}
    records = _start_metrics(run)
    t.progress = Progress(enabled=dist.main and not cfg.quiet, epochs=recipe.epochs)
    if dist.main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.out / "run.json", json.dumps(
            {**stored_config, "world_size": dist.world, "device": str(dist.device),
             "precision": t.precision, "graph": graph.name}, indent=2) + "\n")
        t.progress.header(graph, t.train_set, t.val_set, recipe, dist, t.precision, run)

    with t.progress:
        stop = recipe.epochs if cfg.stop_after is None else \
            min(recipe.epochs, run.start_epoch + cfg.stop_after)
        for epoch in range(run.start_epoch, stop):
            torch.manual_seed(data.generator(cfg.seed, epoch, dist.rank, 2).initial_seed())
            record, kept, improved = _epoch(t, epoch)
            records.append(record)
            if dist.main:
                _write_metrics(run.out, records)
                _save(t, epoch, record, kept, improved, stored_config)
                t.progress.summary(record, recipe.epochs)
    if dist.main and cfg.plot and records:
        plot_curves(records, run.out / "curves.png", title=f"{graph.name} on {run.source}")
    return RunResult(run.out, recipe.epochs, t.best["val_acc"], t.best["epoch"], records)


def _epoch(t: Trainer, epoch: int) -> tuple[dict, nn.Module, bool]:
    """Train and validate one epoch: its record, the model to keep as best, whether it is
    a new best (``t.best`` updated)."""
    stats = _train_epoch(t, epoch)
    val = evaluate(t.model, t.val_set, **t.eval_kw())
    record = {"epoch": epoch + 1, "lr": stats["lr"], "train_loss": stats["loss"],
              "train_acc": stats["acc"], "val_loss": val["loss"],
              "val_acc": val["acc"], "val_top5": val["top5"]}
    kept = t.model
    if t.ema is not None:
        ema_val = evaluate(t.ema.module, t.val_set, **t.eval_kw())
        record.update(val_acc_raw=val["acc"], val_loss=ema_val["loss"],
                      val_acc=ema_val["acc"], val_top5=ema_val["top5"])
        kept = t.ema.module
    improved = record["val_acc"] > t.best["val_acc"]
    if improved:
        t.best = {"val_acc": record["val_acc"], "epoch": epoch + 1}
    record.update(best_val_acc=t.best["val_acc"], images_per_s=stats["images_per_s"],
                  epoch_s=stats["seconds"], images=stats["images"],
                  world_size=t.dist.world)
    return record, kept, improved


def _save(t: Trainer, epoch: int, record: dict, kept: nn.Module, improved: bool,
          stored_config: dict) -> None:
    """``last.pt`` (resumable) and, on a new best, ``best.pt``."""
    run = t.run
    training = {"epoch": epoch + 1, "config": stored_config, "best": t.best,
                "record": record}
    if improved:
        checkpoint.save(run.out / "best.pt", kept, run.spec_text, run.overrides,
                        {**training, "kind": "best"})
    checkpoint.save(run.out / "last.pt", t.model, run.spec_text, run.overrides, {
        **training, "kind": "last", "optimizer": t.optimizer.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler.is_enabled() else None,
        "ema": t.ema.state() if t.ema is not None else None})


def _train_epoch(t: Trainer, epoch: int) -> dict:
    dist, model = t.dist, t.model
    model.train()
    log_every = 1 if dist.device.type == "cpu" else 25
    loss_sum = torch.zeros((), device=dist.device, dtype=torch.float64)
    correct = torch.zeros((), device=dist.device, dtype=torch.int64)
    seen, lr = 0, 0.0
    loader = data.batches(t.train_set, batch_size=t.batch, train=True, epoch=epoch,
                          seed=t.train_set.seed, rank=dist.rank, world=dist.world,
                          workers=t.workers, pin_memory=dist.device.type == "cuda")
    task = t.progress.start(epoch, t.steps)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step >= t.steps:
            break
        lr = learning_rate(t.recipe, epoch, step, t.steps)
        out, loss, y = _step(t, x, y, lr)
        loss_sum += loss.detach().double() * len(y)
        correct += (out.detach().argmax(1) == y).sum()
        seen += len(y)
        if (step + 1) % log_every == 0 or step + 1 == t.steps:
            total = loss_sum.item()
            _check_finite(total, epoch, step)
            elapsed = time.perf_counter() - start
            t.progress.advance(task, step + 1, total / seen, correct.item() / seen,
                               seen * dist.world / max(elapsed, 1e-9))
    if dist.device.type == "cuda":
        torch.cuda.synchronize(dist.device)
    seconds = time.perf_counter() - start
    total, hits, n = dist.all_sum([loss_sum.item(), float(correct.item()), float(seen)])
    _check_finite(total, epoch, t.steps - 1)
    t.progress.stop(task)
    return {"loss": total / max(n, 1), "acc": hits / max(n, 1), "lr": lr, "images": int(n),
            "seconds": seconds, "images_per_s": n / max(seconds, 1e-9)}


def _step(t: Trainer, x, y, lr: float):
    """One optimiser step at learning rate ``lr``: the outputs, the loss and the labels
    (on the device)."""
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    x, y = to_device(x, y, t.dist.device, t.channels_last)
    with t.autocast():
        out = t.step_model(x)
        loss = t.criterion(out, y)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    t.scaler.step(t.optimizer)
    t.scaler.update()
    if t.ema is not None:
        t.ema.update()
    return out, loss, y


def _check_finite(total: float, epoch: int, step: int) -> None:
    if not math.isfinite(total):
        raise TrainingError(f"the loss became {total} in epoch {epoch + 1} by step {step + 1}: "
                            "training diverged; lower the learning rate (--lr) or use more "
                            "warm-up. Nothing was written for this epoch; last.pt holds the "
                            "previous one")


# ---- setting up -----------------------------------------------------------------------------
def _setup(run: Run, dist: Dist) -> Trainer:
    """Data, model, EMA, optimiser and scaler of ``run`` (restored when resuming)."""
    recipe, cfg, graph = run.recipe, run.config, run.graph
    if graph.meta.get("channels", 3) != 3:
        raise TrainingError(f"{graph.name}: the datasets give 3-channel images, the spec "
                            f"takes {graph.meta.get('channels')}")
    if recipe.batch_size % dist.world:
        raise TrainingError(f"batch size {recipe.batch_size} does not split over "
                            f"{dist.world} processes (it is the global batch)")
    batch = recipe.batch_size // dist.world
    train_set, val_set = datasets(run, dist, graph.meta["resolution"], graph.meta["classes"])
    steps = _steps(run, train_set, batch, dist)
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, channels_last = _model(run, dist)
    ema = WeightEMA(model, recipe.ema.decay, recipe.ema.warmup) if recipe.ema else None
    optimizer = make_optimizer(model, recipe)
    precision = resolve_precision(cfg, dist.device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16"
                                  and dist.device.type == "cuda")
    best = _restore(run, optimizer, scaler, ema)
    return Trainer(run, dist, model, _step_model(model, dist, cfg.compile), ema, optimizer,
                   scaler, nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing),
                   train_set, val_set, batch, steps, precision,
                   autocast_for(precision, dist.device), channels_last,
                   default_workers(cfg.workers), best)


def _steps(run: Run, train_set, batch: int, dist: Dist) -> int:
    steps = data.steps_per_epoch(train_set, batch, dist.world)
    if steps == 0:
        raise TrainingError(f"{train_set.name}: {len(train_set)} images make no batch of "
                            f"{run.recipe.batch_size}")
    if run.config.limit_batches:
        steps = min(steps, run.config.limit_batches)
    return steps


def _model(run: Run, dist: Dist) -> tuple[nn.Module, bool]:
    """The model on its device (the checkpoint's weights when resuming), and whether it
    is in channels-last memory format."""
    from ..backends import get_backend, torch_io

    cfg, recipe, graph = run.config, run.recipe, run.graph
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
    return model, channels_last


def _restore(run: Run, optimizer, scaler, ema: WeightEMA | None) -> dict:
    """Load the optimiser, scaler and EMA states of a resumed run; the best so far."""
    state = run.resume_state
    if state is None:
        return {"val_acc": -1.0, "epoch": 0}
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if ema is not None and state.get("ema"):
        ema.load(state["ema"])
    return dict(state["best"])


def _step_model(model: nn.Module, dist: Dist, compile_: bool) -> nn.Module:
    step_model = model
    if dist.world > 1:
        # 1x1 convolutions' gradients come back with equivalent but different strides
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        step_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    if compile_:
        step_model = torch.compile(step_model)
    return step_model


# ---- metrics --------------------------------------------------------------------------------
def _start_metrics(run: Run) -> list:
    """Records so far: those of the epochs the checkpoint holds, when resuming."""
    path = run.out / "metrics.jsonl"
    if not run.start_epoch or not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("epoch", 0) <= run.start_epoch]


def _write_metrics(out: Path, records: list) -> None:
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
