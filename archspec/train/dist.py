"""Processes and devices: this process's rank in a ``torchrun`` run (or the only one),
its device, and the mixed precision it computes in."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from .config import TrainConfig, TrainingError


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


def autocast_for(precision: str, device: torch.device):
    """A factory of the autocast context for ``precision`` (a no-op off CUDA or in fp32)."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


def resolve_precision(config: TrainConfig, device: torch.device) -> str:
    """The precision ``config`` asks for, with ``auto`` resolved for ``device``."""
    if config.precision not in ("auto", "fp32", "fp16", "bf16"):
        raise TrainingError(f"--precision {config.precision}: use auto, fp32, fp16 or bf16")
    if config.precision != "auto":
        return config.precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def to_device(x, y, device: torch.device, channels_last: bool):
    """A batch on ``device`` (images in channels-last memory format when asked)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)
