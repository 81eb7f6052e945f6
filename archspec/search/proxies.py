"""Accuracy proxies: a number for each candidate spec that should order candidates the way
their trained accuracy would, at a fraction of the cost.

- :class:`TrainProxy`: short training through ``archspec train`` (``archspec.train``) and
  its best validation accuracy: digits in tests, CIFAR or an ImageFolder from disk for
  real use. The honest proxy, and the slow one.
- :class:`RankProxy`: ReXNet's mean normalised feature rank with random weights
  (:mod:`.rank`), no training at all: it sees channel ratios and nonlinearities, not
  what data a network can learn.

Each is a picklable callable ``proxy(spec, text) -> float`` (``text``: the candidate as a
self-contained spec, :meth:`archspec.search.space.Space.text`) so that search workers in
other processes can rebuild it.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

PROXIES = ("none", "train", "rank")


@dataclass(frozen=True)
class TrainProxy:
    data: str = "digits"
    epochs: int = 1
    resolution: int | None = None   # train at this resolution (default: the candidate's)
    batch: int | None = None
    limit_batches: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str | None = None

    def __call__(self, spec, text: str) -> float:
        from ..train import TrainConfig, train

        with tempfile.TemporaryDirectory(prefix="archspec-proxy-") as tmp:
            path = Path(tmp) / f"{spec.name}.yaml"
            path.write_text(text, encoding="utf-8")
            result = train(TrainConfig(
                spec=str(path), data=self.data, out=str(Path(tmp) / "run"),
                epochs=self.epochs, batch_size=self.batch, lr=self.lr, seed=self.seed,
                resolution=self.resolution, limit_batches=self.limit_batches,
                device=self.device, quiet=True, plot=False))
        return float(result.best_val_acc)


@dataclass(frozen=True)
class RankProxy:
    resolution: int | None = 64   # measure at this resolution (None: the candidate's)
    batch: int = 8
    seed: int = 0
    measure: str = "effective"
    fit: bool = False   # resolution is the default: use the smallest >= it that compiles

    def __call__(self, spec, text: str = "") -> float:
        from .rank import mean_rank

        if self.resolution:
            spec = self.at_resolution(spec)
        return mean_rank(spec, batch=self.batch, seed=self.seed, measure=self.measure)

    def at_resolution(self, spec):
        """``spec`` at the proxy's resolution, or (``fit``) the smallest multiple of 32
        above it, up to the candidate's own, at which it compiles; a failure names the
        proxy's resolution, not an option the user gave."""
        from ..errors import ArchspecError
        from .space import error_message

        sizes = [self.resolution]
        if self.fit:
            sizes += [r for r in range(self.resolution // 32 * 32 + 32, spec.resolution, 32)]
            sizes += [spec.resolution] if spec.resolution > self.resolution else []
        first = None
        for size in sizes:
            try:
                moved = spec.with_(resolution=size)
                moved.compile()
                return moved
            except ArchspecError as e:
                first = first or e
        raise ArchspecError(f"rank proxy at {self.resolution} px"
                            + (f" (and up to {sizes[-1]} px)" if len(sizes) > 1 else "")
                            + f": {error_message(first)} (set --proxy-resolution)") from None


def make(kind: str, **kw):
    """The proxy named ``kind`` (none -> None) with its options."""
    if kind == "none":
        return None
    if kind == "train":
        return TrainProxy(**{k: v for k, v in kw.items() if k in TrainProxy.__annotations__})
    return RankProxy(**{k: v for k, v in kw.items() if k in RankProxy.__annotations__})
