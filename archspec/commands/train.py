"""The `archspec train` and `archspec eval` commands (see docs/training.md). Under
``torchrun --nproc-per-node N -m archspec train ...`` the same command trains with DDP."""
from __future__ import annotations

import os
import sys
from typing import Annotated, Literal, Optional

import typer

from ..cli_common import (OUTPUT, OVERRIDES, Commands, Resolution, Width, complete_spec,
                          deprecated, emit_json, pick)

TRAINING = "Training"
DATA_HELP = "cifar10:DIR, cifar100:DIR, imagefolder:DIR, digits or synthetic[:N]."
Device = Annotated[Optional[str], typer.Option(
    help="cpu or cuda (default: cuda when available).")]
Workers = Annotated[Optional[int], typer.Option(
    min=0, help="DataLoader workers for image folders (default min(8, CPUs)).")]
OldBatch = Annotated[Optional[int], typer.Option(
    "--batch-size", "-b", min=1, hidden=True, callback=deprecated("--batch"))]

COMMANDS = Commands()


@COMMANDS.command(panel=TRAINING)
def train(spec: Annotated[Optional[str], typer.Argument(
              metavar="SPEC", autocompletion=complete_spec, show_default=False,
              help="A spec file or shipped name (not needed with --resume).")] = None,
          data_ref: Annotated[Optional[str], typer.Option("--data", "-d", help=DATA_HELP)]
          = None,
          recipe: Annotated[Optional[str], typer.Option(
              help="Shipped recipe name or a recipe .yaml (default: by dataset).")] = None,
          output: Annotated[Optional[str], typer.Option(
              "--output", "-o", rich_help_panel=OUTPUT,
              help="Run folder (default runs/SPEC-DATA).")] = None,
          out: Annotated[Optional[str], typer.Option(
              "--out", hidden=True, callback=deprecated("--output"))] = None,
          epochs: Annotated[Optional[int], typer.Option("--epochs", "-e", min=1)] = None,
          batch: Annotated[Optional[int], typer.Option(
              min=1, help="Global batch size (split over torchrun processes).")] = None,
          batch_size: OldBatch = None,
          lr: Annotated[Optional[float], typer.Option(help="Initial learning rate.")] = None,
          seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
          width: Width = None, resolution: Resolution = None,
          classes: Annotated[Optional[int], typer.Option(
              rich_help_panel=OVERRIDES, help="Classes (default: the data's).")] = None,
          resume: Annotated[Optional[str], typer.Option(
              help="Continue the run in this folder exactly.")] = None,
          limit_batches: Annotated[Optional[int], typer.Option(
              min=1, help="At most N train and N val batches per epoch (smoke runs).")] = None,
          stop_after: Annotated[Optional[int], typer.Option(
              min=1, help="Stop after N epochs (the schedule still spans --epochs); "
              "--resume goes on.")] = None,
          workers: Workers = None, device: Device = None,
          precision: Annotated[Literal["auto", "fp32", "fp16", "bf16"], typer.Option(
              help="Mixed precision on CUDA.")] = "auto",
          channels_last: Annotated[Optional[bool], typer.Option(
              "--channels-last/--no-channels-last",
              help="Memory format (default: channels_last on CUDA).")] = None,
          use_compile: Annotated[bool, typer.Option(
              "--compile", help="torch.compile the model.")] = False,
          overwrite: Annotated[bool, typer.Option(
              "--overwrite", help="Start again in a folder that holds a run.")] = False,
          quiet: Annotated[bool, typer.Option(
              "--quiet", "-q", help="No progress bar or epoch lines.",
              rich_help_panel=OUTPUT)] = False,
          no_plot: Annotated[bool, typer.Option(
              "--no-plot", help="Do not draw curves.png at the end.",
              rich_help_panel=OUTPUT)] = False) -> None:
    """Train SPEC on a dataset; write metrics.jsonl, last.pt, best.pt and curves.png."""
    from ..train import TrainConfig, train as run_train

    result = run_train(TrainConfig(
        spec=spec, data=data_ref, recipe=recipe, out=pick(output, out), epochs=epochs,
        batch_size=pick(batch, batch_size), lr=lr, seed=seed, width=width,
        resolution=resolution, classes=classes, limit_batches=limit_batches,
        stop_after=stop_after, workers=workers, resume=resume, device=device,
        precision=precision, channels_last=channels_last, compile=use_compile,
        overwrite=overwrite, quiet=quiet, plot=not no_plot))
    if result.records and int(os.environ.get("RANK", "0")) == 0:
        print(f"best val accuracy {result.best_val_acc:.2%} (epoch {result.best_epoch}); "
              f"run in {result.out}", file=sys.stderr)


@COMMANDS.command("eval", panel=TRAINING)
def evaluate(checkpoint: Annotated[str, typer.Argument(
                 metavar="CHECKPOINT", help="A saved model (a run's best.pt).")],
             data_ref: Annotated[str, typer.Option("--data", "-d", help=DATA_HELP)],
             batch: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 256,
             batch_size: OldBatch = None, device: Device = None,
             limit_batches: Annotated[Optional[int], typer.Option(
                 min=1, help="At most N batches (smoke runs).")] = None,
             workers: Workers = None,
             fmt: Annotated[Literal["text", "json"], typer.Option(
                 "--format", "-f", help="Output format.", rich_help_panel=OUTPUT)] = "text"
             ) -> None:
    """Top-1 / top-5 accuracy of a saved model (a run's best.pt) on a validation set."""
    from ..train.evaluate import evaluate_checkpoint

    r = evaluate_checkpoint(checkpoint, data_ref, batch_size=pick(batch, batch_size),
                            device=device, limit_batches=limit_batches, workers=workers)
    if fmt == "json":
        emit_json("eval", r)
    else:
        print(f"{r['model']} on {r['data']} ({r['split']}, {r['images']} images): "
              f"top-1 {r['top1']:.2%}  top-5 {r['top5']:.2%}  loss {r['loss']:.4f}")
