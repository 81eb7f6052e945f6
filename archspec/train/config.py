"""What ``archspec train`` takes (:class:`TrainConfig`), what it returns
(:class:`RunResult`) and the error it raises when a run cannot start or goes wrong."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchspecError


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
