"""What a run shows while it trains (on stderr, rank 0 only): a header, a rich progress
bar per epoch (loss, accuracy, images/s) and a summary line when the epoch is done."""
from __future__ import annotations


class Progress:
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
