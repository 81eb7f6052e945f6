"""The torch backend's file format: one ``torch.save`` file holding the spec and weights.

The file is a plain dictionary (so ``torch.load(weights_only=True)`` reads it)::

    format            "archspec.torch/1"
    archspec_version  version that wrote it
    torch_version     torch that wrote it
    spec              self-contained YAML text of the spec (``extends`` merged in)
    overrides         {"resolution", "width", "classes"} the graph was compiled with
    features          null, or the taps the model returns
    state_dict        the weights and buffers, on CPU
    sha256            digest of spec, overrides, features and every tensor's bytes

Loading recompiles the spec, rebuilds the model and loads the weights; any mismatch or a
damaged file is a one-line :class:`BackendError`.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BackendError
from ..fsutil import atomic_path, content_kind, describe
from ..ir.graph import Graph
from ..spec import embedded
from .torch_lower import build_module

FORMAT = "archspec.torch/1"


@dataclass
class Checkpoint:
    """A read and verified file: the spec text, its compiled graph, the taps and weights."""

    spec_text: str
    graph: Graph
    features: list | None
    state_dict: dict
    archspec_version: str
    torch_version: str


# ---- saving -------------------------------------------------------------------------------
def save(model, path, spec, graph: Graph) -> None:
    """Write ``model``'s weights with the spec that ``graph`` was compiled from."""
    from .. import __version__

    text = spec_text(spec)
    overrides = embedded.overrides_of(graph)
    _check_describes(text, overrides, graph)
    features = (getattr(model, "meta", {}).get("archspec") or {}).get("features")
    state = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in model.state_dict().items())
    payload = {
        "format": FORMAT,
        "archspec_version": __version__,
        "torch_version": str(torch.__version__),
        "spec": text,
        "overrides": overrides,
        "features": features,
        "state_dict": state,
    }
    payload["sha256"] = digest(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def spec_text(spec) -> str:
    """Self-contained YAML for ``spec`` (see :func:`archspec.spec.embedded.spec_text`)."""
    return embedded.spec_text(spec)


def _check_describes(text: str, overrides: dict, graph: Graph) -> None:
    embedded.check_describes(text, overrides, graph)


def digest(payload: dict) -> str:
    """SHA-256 over everything in the file but the digest itself."""
    h = hashlib.sha256()
    head = {k: payload.get(k) for k in ("format", "spec", "overrides", "features")}
    h.update(json.dumps(head, sort_keys=True).encode())
    for key, tensor in payload["state_dict"].items():
        h.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


# ---- loading ------------------------------------------------------------------------------
def read(path) -> Checkpoint:
    """Read and verify a file written by :func:`save` (no model is built)."""
    path = Path(path)
    return checkpoint_of(read_payload(path), path)


def read_spec(path) -> tuple[str, dict]:
    """(spec text, overrides) of a verified file, without compiling or building anything."""
    payload = read_payload(Path(path))
    return payload["spec"], dict(payload["overrides"])


def checkpoint_of(payload: dict, path: Path) -> Checkpoint:
    """The :class:`Checkpoint` of a verified payload (its embedded spec compiled)."""
    graph = _compile(payload["spec"], payload["overrides"], f"{path}: the embedded spec")
    return Checkpoint(payload["spec"], graph, payload["features"], payload["state_dict"],
                      payload["archspec_version"], payload["torch_version"])


def read_payload(path: Path) -> dict:
    """The dictionary in a file written by :func:`save`, its layout and checksum verified.
    Read with ``weights_only=True``: a file holding pickled objects is refused."""
    if not path.is_file():
        raise BackendError(f"{path}: file not found")
    if content_kind(path) != "torch":
        raise BackendError(f"{path}: not an archspec torch file: it is {describe(path)} "
                           "(give a .pt written by `archspec build --backend torch -o FILE` "
                           "or by `archspec train`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle refused by weights_only, not a torch file
        raise BackendError(f"{path}: not a readable archspec torch file ({_reason(e)})") \
            from None
    _check_layout(path, payload)
    try:
        sha = digest(payload)
    except (RuntimeError, TypeError, ValueError) as e:
        raise BackendError(f"{path}: a tensor in `state_dict` cannot be read ({e})") from None
    if sha != payload["sha256"]:
        raise BackendError(f"{path}: checksum mismatch: the file was modified or damaged "
                           "after it was written")
    return payload


def _reason(error: Exception) -> str:
    """One line of a ``torch.load`` failure; for a weights-only refusal, what was refused."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip() or \
                (lines[i + 1] if i + 1 < len(lines) else "")
            return ("it holds something other than tensors and plain data, which the safe "
                    f"loader refuses: {detail}")[:240]
    return (lines[0] if lines else type(error).__name__)[:240]


def _check_layout(path: Path, payload) -> None:
    if not isinstance(payload, dict) or "format" not in payload:
        raise BackendError(f"{path}: not an archspec torch file (no `format` field)")
    if payload["format"] != FORMAT:
        raise BackendError(f"{path}: format {payload['format']!r} is not {FORMAT!r} "
                           "(written by another archspec version?)")
    types = {"spec": str, "overrides": dict, "state_dict": dict, "sha256": str,
             "archspec_version": str, "torch_version": str}
    for key, kind in types.items():
        if not isinstance(payload.get(key), kind):
            raise BackendError(f"{path}: field `{key}` is missing or not a {kind.__name__}")
    features = payload.get("features")
    if features is not None and not (isinstance(features, list)
                                     and all(isinstance(f, str) for f in features)):
        raise BackendError(f"{path}: field `features` must be a list of tap names")
    if not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise BackendError(f"{path}: field `state_dict` must map names to tensors")
    overrides = payload["overrides"]
    if set(overrides) - {"resolution", "width", "classes"} or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            for v in overrides.values()):
        raise BackendError(f"{path}: field `overrides` must map resolution, width and classes "
                           "to numbers")


def _compile(text: str, overrides: dict, what: str) -> Graph:
    return embedded.compile_text(text, overrides, what)


def load(path):
    """Rebuild the model a file describes and load its weights into it."""
    ck = read(path)
    model = build_module(ck.graph, features=ck.features)
    load_weights(model, ck.state_dict, f"{path}")
    return model


def load_weights(model, state_dict: dict, source: str = "weights") -> None:
    """``load_state_dict`` that explains the first mismatch in one line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict
             and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            what = (f"{k} has shape {tuple(state_dict[k].shape)}, the spec needs "
                    f"{tuple(expected[k].shape)}")
        elif missing:
            what = f"{len(missing)} tensors missing, first {missing[0]}"
        else:
            what = f"{len(unexpected)} unexpected tensors, first {unexpected[0]}"
        raise BackendError(f"{source} does not match its spec: {what}")
    model.load_state_dict(state_dict, strict=True)
