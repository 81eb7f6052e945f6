"""Training recipes as data: a YAML file names the optimiser, the learning-rate schedule,
regularisation, augmentation and EMA. Shipped recipes live in ``archspec/recipes/``
(``archspec train --recipe NAME``); any other file is given by its path.

The learning rate is a pure function of (epoch, step) (:func:`learning_rate`), so a
resumed run follows exactly the schedule of an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ArchspecError, did_you_mean

SHIPPED = Path(__file__).resolve().parent.parent / "recipes"
OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "exponential", "constant")
CROPS = ("none", "pad", "resized")


class RecipeError(ArchspecError):
    """A recipe file is missing or has a wrong field."""


@dataclass(frozen=True)
class Optimizer:
    """``sgd`` (momentum, nesterov) or ``rmsprop`` (``alpha`` is TensorFlow's ``decay``)."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = True  # False: no weight decay on BN parameters and biases
    alpha: float = 0.9
    eps: float = 1e-3


@dataclass(frozen=True)
class Schedule:
    """Warm-up (linear, per step) for ``warmup_epochs``, then: ``cosine`` (per step, down to
    ``min_lr``), ``step`` (times ``gamma`` at each epoch in ``milestones``), ``exponential``
    (times ``gamma`` every ``every`` epochs) or ``constant``."""

    name: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    milestones: tuple = ()
    gamma: float = 0.1
    every: float = 1.0


@dataclass(frozen=True)
class Augment:
    """``crop``: ``pad`` (random crop after zero ``padding``, CIFAR), ``resized``
    (random-resized-crop over ``scale`` and ``ratio``, ImageNet) or ``none``; ``flip``:
    random horizontal flip."""

    crop: str = "pad"
    padding: int = 4
    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    flip: bool = True


@dataclass(frozen=True)
class EMA:
    """Exponential moving average of the weights, evaluated and kept in ``best.pt``.
    ``warmup``: use min(decay, (1 + n) / (10 + n)) at step n, so short runs average too."""

    decay: float = 0.9999
    warmup: bool = True


@dataclass(frozen=True)
class Recipe:
    name: str = "custom"
    description: str = ""
    source: str = ""
    epochs: int = 10
    batch_size: int = 128  # global: split over the processes under torchrun
    optimizer: Optimizer = field(default_factory=Optimizer)
    schedule: Schedule = field(default_factory=Schedule)
    label_smoothing: float = 0.0
    dropout: float | None = None  # None: the spec's own dropout
    augment: Augment = field(default_factory=Augment)
    ema: EMA | None = None

    def with_(self, **changes) -> Recipe:
        """A copy with top-level fields or ``optimizer.lr``-style dotted fields changed."""
        out = self
        for key, value in changes.items():
            if value is None:
                continue
            head, _, sub = key.partition(".")
            if sub:
                out = dataclasses.replace(out, **{head: dataclasses.replace(
                    getattr(out, head), **{sub: value})})
            else:
                out = dataclasses.replace(out, **{head: value})
        _check(out, f"recipe {out.name}")
        return out

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


SECTIONS = {"optimizer": Optimizer, "schedule": Schedule, "augment": Augment, "ema": EMA}


def shipped() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def load_recipe(ref: str | Path) -> Recipe:
    """A shipped recipe by name (``cifar``) or a recipe file by path."""
    path = Path(ref)
    if not path.is_file():
        candidate = SHIPPED / f"{ref}.yaml"
        if candidate.is_file():
            path = candidate
        elif path.suffix in (".yaml", ".yml") or "/" in str(ref):
            raise RecipeError(f"{ref}: recipe file not found")
        else:
            raise RecipeError(f"unknown recipe `{ref}` ({did_you_mean(str(ref), shipped())}; "
                              "or give a path to a recipe .yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of fields (see docs/training.md)")
    data.setdefault("name", path.stem)
    return recipe_from_dict(data, str(path))


def recipe_from_dict(data: dict, where: str = "recipe") -> Recipe:
    """Build and check a :class:`Recipe` from plain data (a YAML file, a checkpoint)."""
    kwargs = _fields(Recipe, data, where)
    for key, cls in SECTIONS.items():
        if key in kwargs and kwargs[key] is not None:
            if not isinstance(kwargs[key], dict):
                raise RecipeError(f"{where}: `{key}` must be a mapping")
            kwargs[key] = cls(**_fields(cls, kwargs[key], f"{where}: {key}"))
    recipe = Recipe(**kwargs)
    _check(recipe, where)
    return recipe


def _fields(cls, data: dict, where: str) -> dict:
    known = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in known:
            raise RecipeError(f"{where}: unknown field `{key}` ({did_you_mean(key, known)})")
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, float) and isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        typed = default is not dataclasses.MISSING and default is not None
        if typed and key not in SECTIONS and type(value) is not type(default):
            raise RecipeError(f"{where}: `{key}` must be a {type(default).__name__}, "
                              f"got {value!r}")
        out[key] = value
    return out


def _check(r: Recipe, where: str) -> None:
    problems = []
    if r.optimizer.name not in OPTIMIZERS:
        problems.append(f"optimizer.name `{r.optimizer.name}` "
                        f"({did_you_mean(r.optimizer.name, OPTIMIZERS)})")
    if r.schedule.name not in SCHEDULES:
        problems.append(f"schedule.name `{r.schedule.name}` "
                        f"({did_you_mean(r.schedule.name, SCHEDULES)})")
    if r.augment.crop not in CROPS:
        problems.append(f"augment.crop `{r.augment.crop}` ({did_you_mean(r.augment.crop, CROPS)})")
    if r.epochs < 1 or r.batch_size < 1:
        problems.append("epochs and batch_size must be at least 1")
    if not r.optimizer.lr > 0 or r.optimizer.weight_decay < 0:
        problems.append("optimizer.lr must be > 0 and weight_decay >= 0")
    if not 0 <= r.label_smoothing < 1 or (r.dropout is not None and not 0 <= r.dropout < 1):
        problems.append("label_smoothing and dropout must be in [0, 1)")
    if r.ema is not None and not 0 < r.ema.decay < 1:
        problems.append("ema.decay must be in (0, 1)")
    if len(r.augment.scale) != 2 or len(r.augment.ratio) != 2:
        problems.append("augment.scale and augment.ratio are [low, high] pairs")
    if problems:
        raise RecipeError(f"{where}: " + "; ".join(problems))


def default_recipe(kind: str) -> str:
    """The recipe a dataset trains with when --recipe is not given."""
    return {"cifar10": "cifar", "cifar100": "cifar100", "imagefolder": "imagenet"}.get(kind,
                                                                                  "digits")


def learning_rate(recipe: Recipe, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate for ``step`` (0-based) of ``epoch`` (0-based)."""
    base, s = recipe.optimizer.lr, recipe.schedule
    t = epoch + (step + 1) / max(1, steps_per_epoch)  # epochs done after this step
    if t <= s.warmup_epochs:
        return base * t / s.warmup_epochs
    if s.name == "cosine":
        span = max(1e-12, recipe.epochs - s.warmup_epochs)
        progress = min(1.0, (epoch + step / max(1, steps_per_epoch) - s.warmup_epochs) / span)
        return s.min_lr + 0.5 * (base - s.min_lr) * (1 + math.cos(math.pi * progress))
    if s.name == "step":
        return base * s.gamma ** sum(epoch >= m for m in s.milestones)
    if s.name == "exponential":
        return base * s.gamma ** math.floor(max(0.0, epoch - s.warmup_epochs) / s.every)
    return base
