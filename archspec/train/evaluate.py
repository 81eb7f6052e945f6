"""Evaluation: loss, top-1 and top-5 accuracy of a model on a validation split (summed
over the ranks of a DDP run), after every epoch and for ``archspec eval``."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint, data
from .config import TrainingError
from .dist import Dist, setup_distributed, to_device


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
        x, y = to_device(x, y, dist.device, channels_last)
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


def default_workers(workers: int | None) -> int:
    """Data-loading workers: as given, else one per core up to 8."""
    return workers if workers is not None else min(8, os.cpu_count() or 1)


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
                      workers=default_workers(workers))
    return {"checkpoint": str(path), "model": checked.graph.name, "data": str(source),
            "split": "val", "images": result["images"], "top1": result["acc"],
            "top5": result["top5"], "loss": result["loss"],
            "epoch": training.get("epoch") if training else None}
