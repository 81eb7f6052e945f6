"""Setting up a run: the spec, data, recipe and output folder a :class:`TrainConfig` asks
for, or the ones a checkpoint holds when resuming (checked against what was given), and
the train and validation splits."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint, data
from .config import TrainConfig, TrainingError
from .dist import Dist
from .recipes import Recipe, default_recipe, load_recipe, recipe_from_dict
from ..spec.embedded import overrides_of


@dataclass
class Run:
    config: TrainConfig
    recipe: Recipe
    source: data.Source
    spec_text: str
    overrides: dict
    graph: object
    out: Path
    start_epoch: int = 0
    resume_state: dict | None = None
    weights: dict | None = None


def plan(config: TrainConfig) -> Run:
    """Resolve spec, data, recipe and output folder (from the checkpoint when resuming)."""
    if config.resume:
        return _resumed(config)
    from ..backends import torch_io
    from ..sources import load

    if not config.spec or not config.data:
        raise TrainingError("give a SPEC and --data (or --resume RUN_FOLDER)")
    source = data.parse_source(config.data)
    spec = load(config.spec, width=config.width, resolution=config.resolution)
    if hasattr(spec, "spec_text_or_none"):  # an ONNX file trains the spec it carries
        spec = spec.spec()
    _refuse_heads(spec)
    classes = config.classes or data.class_count(source, spec.classes)
    spec = spec.with_(classes=classes)
    graph = spec.compile()
    _refuse_unclassified(graph, config.spec)
    recipe = load_recipe(config.recipe or default_recipe(source.kind)).with_(
        epochs=config.epochs, batch_size=config.batch_size, **{"optimizer.lr": config.lr})
    out = Path(config.out or f"runs/{spec.name}-{source.kind}")
    if (out / "last.pt").exists() and not config.overwrite:
        raise TrainingError(f"{out} already holds a run: pass --resume {out} to continue it, "
                            "--overwrite to start again, or another --output")
    overrides = overrides_of(graph)
    return Run(config, recipe, source, torch_io.spec_text(spec), overrides, graph, out)


def _refuse_heads(spec) -> None:
    """A spec with heads (several outputs, or none named ``output``) cannot train yet."""
    if spec.heads:
        heads = ", ".join(row.label for row in spec.heads)
        raise TrainingError(
            "training detection/segmentation heads is not supported yet: "
            f"{spec.name} has heads ({heads}); `archspec train` trains a classifier with one "
            "`output` (train its backbone as a classification spec instead)")


def _refuse_unclassified(graph, where: str) -> None:
    """The loss needs class scores: one output, a vector (a head ending in a classifier)."""
    shape = graph[graph.outputs["output"]].shape
    if len(shape) != 1:
        raise TrainingError(
            f"{where}: the output is a {'x'.join(map(str, shape))} feature map, not a "
            "vector of class scores: `archspec train` trains a classifier (end the spec "
            "with `head: [{block: pool}, {block: classifier}]`)")


def _resumed(config: TrainConfig) -> Run:
    path, checked, training = checkpoint.read_resumable(config.resume)
    stored = training["config"]
    _check_resume(config, stored, path)
    recipe = recipe_from_dict(stored["recipe"], f"{path}: recipe")
    recipe = recipe.with_(epochs=config.epochs)
    kept = {k: stored[k] for k in ("spec", "seed")}
    if config.limit_batches is None:
        kept["limit_batches"] = stored.get("limit_batches")
    run = Run(dataclasses.replace(config, **kept),
              recipe, data.parse_source(config.data or stored["data"]),
              checked.spec_text, dict(stored["overrides"]), checked.graph, path.parent,
              int(training["epoch"]), training, checked.state_dict)
    if run.source.kind != data.parse_source(stored["data"]).kind:
        raise TrainingError(f"--data {config.data}: {path} was trained on "
                            f"{stored['data']}")
    return run


def _check_resume(config: TrainConfig, stored: dict, path: Path) -> None:
    fixed = {"recipe": None, "batch_size": stored["recipe"]["batch_size"],
             "lr": stored["recipe"]["optimizer"]["lr"], "width": None, "resolution": None,
             "classes": None}
    for key, value in fixed.items():
        given = getattr(config, key)
        if given is not None and (value is None or given != value):
            raise TrainingError(f"--{key.replace('_', '-')} {given}: cannot change when "
                                f"resuming {path} (it continues the run exactly as started)")
    if config.seed not in (0, stored["seed"]):
        raise TrainingError(f"--seed {config.seed}: {path} was trained with seed "
                            f"{stored['seed']}")


def datasets(run: Run, dist: Dist, resolution: int, classes: int):
    """The run's train and validation splits, configured (augmentation on train only)."""
    on_device = dist.device
    train_set = data.load_split(run.source, "train", resolution=resolution, classes=classes)
    val_set = data.load_split(run.source, "val", resolution=resolution, classes=classes)
    for ds in (train_set, val_set):
        if ds.classes != classes:
            raise data.DataError(f"--data {run.source}: {ds.classes} classes, the model has "
                                 f"{classes} (leave out --classes to use the data's)")
    train_set.configure(augment=run.recipe.augment, resolution=resolution,
                        seed=run.config.seed, device=on_device)
    val_set.configure(augment=None, resolution=resolution, seed=run.config.seed,
                      device=on_device)
    return train_set, val_set
