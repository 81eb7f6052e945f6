"""The `archspec train` and `archspec eval` commands (see docs/training.md). Under
``torchrun --nproc-per-node N -m archspec train ...`` the same command trains with DDP."""
from __future__ import annotations

import json
import sys

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.argument("spec", required=False)
@click.option("--data", "-d", "data_ref", default=None,
              help="cifar10:DIR, cifar100:DIR, imagefolder:DIR, digits or synthetic[:N].")
@click.option("--recipe", default=None,
              help="Shipped recipe name or a recipe .yaml (default: by dataset).")
@click.option("--out", "-o", default=None, help="Run folder (default runs/SPEC-DATA).")
@click.option("--epochs", "-e", type=click.IntRange(1), default=None)
@click.option("--batch-size", "-b", type=click.IntRange(1), default=None,
              help="Global batch size (split over torchrun processes).")
@click.option("--lr", type=float, default=None, help="Initial learning rate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", "-w", type=float, default=None, help="Width multiplier.")
@click.option("--resolution", "-r", type=int, default=None, help="Input resolution.")
@click.option("--classes", type=int, default=None, help="Classes (default: the data's).")
@click.option("--resume", default=None, help="Continue the run in this folder exactly.")
@click.option("--limit-batches", type=click.IntRange(1), default=None,
              help="At most N train and N val batches per epoch (smoke runs).")
@click.option("--stop-after", type=click.IntRange(1), default=None,
              help="Stop after N epochs (the schedule still spans --epochs); --resume goes on.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="DataLoader workers for image folders (default min(8, CPUs)).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
              default="auto", show_default=True, help="Mixed precision on CUDA.")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Memory format (default: channels_last on CUDA).")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option("--overwrite", is_flag=True, help="Start again in a folder that holds a run.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or epoch lines.")
@click.option("--no-plot", is_flag=True, help="Do not draw curves.png at the end.")
def train(spec, data_ref, recipe, out, epochs, batch_size, lr, seed, width, resolution,
          classes, resume, limit_batches, stop_after, workers, device, precision, channels_last,
          use_compile, overwrite, quiet, no_plot):
    """Train SPEC on a dataset; write metrics.jsonl, last.pt, best.pt and curves.png."""
    from ..train.loop import TrainConfig, train as run_train

    result = run_train(TrainConfig(
        spec=spec, data=data_ref, recipe=recipe, out=out, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, width=width, resolution=resolution,
        classes=classes, limit_batches=limit_batches, stop_after=stop_after, workers=workers,
        resume=resume,
        device=device, precision=precision, channels_last=channels_last,
        compile=use_compile, overwrite=overwrite, quiet=quiet, plot=not no_plot))
    if result.records and int(__import__("os").environ.get("RANK", "0")) == 0:
        print(f"best val accuracy {result.best_val_acc:.2%} (epoch {result.best_epoch}); "
              f"run in {result.out}", file=sys.stderr)


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint")
@click.option("--data", "-d", "data_ref", required=True,
              help="cifar10:DIR, cifar100:DIR, imagefolder:DIR, digits or synthetic[:N].")
@click.option("--batch-size", "-b", type=click.IntRange(1), default=256, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--limit-batches", type=click.IntRange(1), default=None)
@click.option("--workers", type=click.IntRange(0), default=None)
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text")
def evaluate(checkpoint, data_ref, batch_size, device, limit_batches, workers, fmt):
    """Top-1 / top-5 accuracy of a saved model (a run's best.pt) on a validation set."""
    from ..train.loop import evaluate_checkpoint

    r = evaluate_checkpoint(checkpoint, data_ref, batch_size=batch_size, device=device,
                            limit_batches=limit_batches, workers=workers)
    if fmt == "json":
        print(json.dumps({"schema": "archspec.eval/1", **r}, indent=2))
    else:
        print(f"{r['model']} on {r['data']} ({r['split']}, {r['images']} images): "
              f"top-1 {r['top1']:.2%}  top-5 {r['top5']:.2%}  loss {r['loss']:.4f}")
