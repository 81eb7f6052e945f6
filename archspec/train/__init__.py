"""Training and evaluation of archspec models: ``archspec train`` and ``archspec eval``.

- :mod:`.data`: datasets read from disk (CIFAR-10/100, ImageFolder), scikit-learn's digits
  and synthetic data, with augmentation in torch ops keyed by (seed, epoch, sample);
- :mod:`.recipes`: training recipes as YAML data (optimiser, schedule, augmentation, EMA);
- :mod:`.config`: what a run takes (:class:`TrainConfig`) and returns (:class:`RunResult`);
- :mod:`.plan`: a run's spec, data, recipe and folder (from the checkpoint when resuming);
- :mod:`.loop`: the training loop, single process or DDP under ``torchrun``;
- :mod:`.dist`: ranks, devices and precision; :mod:`.ema`: the weights' moving average;
- :mod:`.evaluate`: validation accuracy, after each epoch and of a saved model;
- :mod:`.progress`: the progress bar and epoch lines; :mod:`.plots`: ``curves.png``;
- :mod:`.checkpoint`: atomic checkpoints readable with ``torch.load(weights_only=True)``.

>>> from archspec.train import TrainConfig, train
>>> result = train(TrainConfig(spec="mobilenetv2_cifar", data="digits", epochs=5, out="runs/d"))
>>> result.best_val_acc
"""
from __future__ import annotations

import importlib

_HOMES = {"TrainConfig": "config", "RunResult": "config", "train": "loop",
          "evaluate_checkpoint": "evaluate"}
__all__ = list(_HOMES)


def __getattr__(name):  # torch is imported on first use, not with the package
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(name)
