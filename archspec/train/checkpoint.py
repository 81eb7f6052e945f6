"""Training checkpoints: the torch backend's model file (``archspec.torch/1``: spec, overrides,
weights, checksum; see backends/torch_io.py) with one more field, ``training``, holding
what a resumed run needs. So ``best.pt`` and ``last.pt`` load anywhere a saved model
does (``get_backend("torch").load(path)``), and ``archspec eval`` reads them.

``training`` (plain types and tensors only, so ``torch.load(weights_only=True)`` reads it)::

    format        "archspec.train/1"
    kind          "last" (resumable) or "best" (weights only: EMA ones when EMA is on)
    epoch         epochs completed
    config        the run's settings: spec reference, data, seed, resolved recipe
    optimizer     optimizer.state_dict()           (last only)
    scaler        GradScaler state or None         (last only)
    ema           {"updates", "state"} or None     (last only)
    best          {"val_acc", "epoch"}
    record        the metrics record of that epoch

Files are written to a temporary file and renamed into place (:mod:`archspec.fsutil`).
There is no random state to store: every random draw of epoch e comes from generators
seeded with (seed, e, rank), so resuming at an epoch boundary is exact by construction.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ArchspecError
from ..fsutil import atomic_path

FORMAT = "archspec.train/1"


class CheckpointError(ArchspecError):
    """A checkpoint is missing, damaged or not a training checkpoint."""


def save(path: Path, model, spec_text: str, overrides: dict, training: dict) -> None:
    """Write ``model``'s weights with its spec and the ``training`` state, atomically."""
    from .. import __version__
    from ..backends import torch_io

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": torch_io.FORMAT,
        "archspec_version": __version__,
        "torch_version": str(torch.__version__),
        "spec": spec_text,
        "overrides": dict(overrides),
        "features": None,
        "state_dict": state,
    }
    payload["sha256"] = torch_io.digest(payload)
    payload["training"] = {"format": FORMAT, **training}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resolve(path: str | Path) -> Path:
    """A run folder means its ``last.pt``; a spec or an ONNX file is explained."""
    from ..fsutil import content_kind, describe

    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (give a run folder holding "
                              "last.pt, or a .pt file written by `archspec train`)")
    kind = content_kind(path)
    if kind == "spec":
        raise CheckpointError(f"{path}: this is a spec (YAML text), not a checkpoint: give a "
                              "trained model, a run folder or its best.pt / last.pt (train "
                              f"the spec first: archspec train {path} --data ...)")
    if kind != "torch":
        raise CheckpointError(f"{path}: not a checkpoint: it is {describe(path)} (give "
                              "a run folder or a .pt written by `archspec train`)")
    return path


def read(path: str | Path):
    """(verified model file from the torch backend, its ``training`` dict or None)."""
    from ..backends import torch_io

    path = resolve(path)
    payload = torch_io.read_payload(path)  # verifies format, checksum and tensors
    training = payload.get("training")
    if training is not None:
        _check_training(path, training)
    return torch_io.checkpoint_of(payload, path), training


# field -> type, in `training` and in its `config` (the checksum does not cover them)
TRAINING_FIELDS = {"kind": str, "epoch": int, "config": dict}
CONFIG_FIELDS = {"spec": str, "data": str, "seed": int, "overrides": dict, "recipe": dict}


def _check_training(path: Path, training) -> None:
    if not isinstance(training, dict) or training.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field `training` is not {FORMAT!r}")
    for where, fields, value in (("training", TRAINING_FIELDS, training),
                                 ("training.config", CONFIG_FIELDS, training.get("config"))):
        for key, kind in fields.items():
            if not isinstance(value, dict) or not isinstance(value.get(key), kind):
                raise CheckpointError(f"{path}: field `{where}.{key}` is missing or not a "
                                      f"{kind.__name__} (the file was edited or damaged)")


def read_resumable(path: str | Path):
    """Like :func:`read`, for ``--resume``: the file must be a ``last`` checkpoint."""
    path = resolve(path)
    checked, training = read(path)
    if training is None or training.get("kind") != "last":
        raise CheckpointError(f"{path}: not a resumable checkpoint (resume from a run "
                              "folder or its last.pt; best.pt holds weights only)")
    if not isinstance(training.get("optimizer"), dict):
        raise CheckpointError(f"{path}: field `training.optimizer` is missing or not a dict "
                              "(the file was edited or damaged)")
    return path, checked, training
