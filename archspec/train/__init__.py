"""Training and evaluation of archspec models: ``archspec train`` and ``archspec eval``.

- :mod:`.data`: datasets read from disk (CIFAR-10/100, ImageFolder), scikit-learn's digits
  and synthetic data, with augmentation in torch ops keyed by (seed, epoch, sample);
- :mod:`.recipes`: training recipes as YAML data (optimiser, schedule, augmentation, EMA);
- :mod:`.loop`: the training loop, single process or DDP under ``torchrun``;
- :mod:`.checkpoint`: atomic checkpoints readable with ``torch.load(weights_only=True)``.

>>> from archspec.train import TrainConfig, train
>>> result = train(TrainConfig(spec="mobilenetv2_cifar", data="digits", epochs=5, out="runs/d"))
>>> result.best_val_acc
"""
from __future__ import annotations

__all__ = ["TrainConfig", "RunResult", "train", "evaluate_checkpoint"]


def __getattr__(name):  # torch is imported on first use, not with the package
    if name in __all__:
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
