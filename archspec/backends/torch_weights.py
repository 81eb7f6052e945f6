"""Foreign weights: a torchvision or timm state dict loaded into an archspec model by position.

Other libraries name their tensors their own way (``features.3.conv.1.0.weight``,
``blocks.1.0.conv_dw.weight``), but a model written as a spec registers its parameters and
buffers in the order the reference does. :func:`load_foreign` pairs the file's tensors with
the model's in state-dict order and copies them when the shapes are equal. The one shape
change allowed is a Linear weight ``(out, in)`` into a 1x1 conv ``(out, in, 1, 1)`` that runs
on a 1x1 map (or the reverse): the same product, a reshape. ``num_batches_tracked`` (a
counter, not a weight) is skipped on both sides, so a file without it loads the same.

Any other mismatch is a one-line :class:`BackendError` naming both tensors, their shapes
and the position; with ``partial=True`` the longest prefix that fits is loaded instead (cut
back to whole modules) and the :class:`LoadReport` says what was left at random. Files
only, read with ``torch.load(weights_only=True)``. See docs/torch.md, "Pretrained weights".
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import BackendError
from ..fsutil import content_kind
from ..ir.graph import Graph

# Where training checkpoints keep the weights (timm's train.py, torchvision's references,
# Lightning and others), in the order timm's load_checkpoint looks: EMA weights first.
WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model", "model_state", "module")
COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Tensor:
    """One entry of a state dict: its key and shape, and the tensor."""

    key: str
    value: torch.Tensor

    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)


@dataclass(frozen=True)
class Foreign:
    """The tensors read from a file, in order; ``key`` is the wrapper they were under."""

    path: str
    key: str | None
    tensors: list


@dataclass
class LoadReport:
    """What :func:`load_foreign` did: for each of the model's tensors, in order, the file's
    tensor it received (``sources[i]``, None: left at random), the file's tensors it did
    not use, and where (and why) the pairing stopped."""

    file: str
    key: str | None
    spec: str
    partial: bool
    ours: list
    sources: list
    reshaped: set = field(default_factory=set)
    unused: list = field(default_factory=list)
    stopped: dict | None = None
    blocks: dict = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return sum(s is not None for s in self.sources)

    def summary(self) -> str:
        """One line: how many tensors were loaded, left at random and left unused."""
        key = f" (under `{self.key}`)" if self.key else ""
        return (f"loaded {self.loaded} of {len(self.ours)} tensors of {self.spec} from "
                f"{self.file}{key}; {len(self.ours) - self.loaded} left at random, "
                f"{len(self.unused)} of the file's unused")

    def to_json(self) -> dict:
        """The ``archspec.weights/1`` document (without its schema tag; docs/torch.md)."""
        return {"file": self.file, "key": self.key, "spec": self.spec, "partial": self.partial,
                "counts": {"file": self.loaded + len(self.unused), "model": len(self.ours),
                           "loaded": self.loaded, "random": len(self.ours) - self.loaded,
                           "unused": len(self.unused)},
                "stopped": self.stopped,
                "tensors": [self._row(i) for i in range(len(self.ours))],
                "unused": [{"key": t.key, "shape": list(t.shape)} for t in self.unused]}

    def _row(self, i: int) -> dict:
        mine, theirs = self.ours[i], self.sources[i]
        status = "random" if theirs is None else \
            "reshaped" if i in self.reshaped else "loaded"
        return {"position": i + 1, "key": mine.key, "shape": list(mine.shape),
                "block": self.blocks.get(mine.key, ""), "status": status,
                "from": None if theirs is None else theirs.key,
                "from_shape": None if theirs is None else list(theirs.shape)}

    def block_rows(self) -> list:
        """(block, tensors, loaded, first file key loaded into it) per block, in order."""
        rows: dict = {}
        for mine, theirs in zip(self.ours, self.sources):
            row = rows.setdefault(self.blocks.get(mine.key, ""), [0, 0, None])
            row[0] += 1
            if theirs is not None:
                row[1] += 1
                row[2] = row[2] or theirs.key
        return [(block, n, k, first) for block, (n, k, first) in rows.items()]


# ---- reading the file ---------------------------------------------------------------------
def read_foreign(path, source: str | None = None) -> Foreign:
    """The tensors of a state dict file (plain, or under one of WRAPPERS), in order.
    ``source`` names the file in errors (the CLI: ``--weights-from FILE``)."""
    path = Path(path)
    source = source or str(path)
    if not path.is_file():
        raise BackendError(f"{source}: {'a directory' if path.is_dir() else 'file not found'}"
                           " (give a state dict saved with torch.save: .pth, .pt, .bin)")
    if _is_safetensors(path):
        raise BackendError(f"{source}: a safetensors file stores its tensors sorted (by dtype "
                           "and name), not in the model's order, so they cannot be loaded by "
                           "position (give the torch.save file: .pth, .pt, .bin)")
    what = _not_torch(path)
    if what:
        raise BackendError(f"{source}: not a torch state dict: {what}")
    payload = _torch_load(path, source)
    key, state = _unwrap(payload, source)
    tensors = [Tensor(k, v) for k, v in state.items() if not k.endswith(COUNTER)]
    if not tensors:
        raise BackendError(f"{source}: the state dict holds no tensors")
    return Foreign(str(path), key, tensors)


def _not_torch(path: Path) -> str | None:
    """What the file is when it cannot be a torch.save file, else None."""
    import zipfile

    if path.stat().st_size == 0:
        return "the file is empty"
    kind = content_kind(path)
    if kind == "onnx":
        return "it is an ONNX file (give the torch.save file: .pth, .pt, .bin)"
    if kind != "torch":
        with open(path, "rb") as f:
            head = f.read(4096)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not a torch file (its first bytes are neither a zip nor a pickle)"
        return "it is a text file, not a torch file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("data.pkl") for n in z.namelist()):
                return "it is a zip archive that is not a torch checkpoint (no data.pkl inside)"
    return None


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    size = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 0 < size < path.stat().st_size


def _torch_load(path: Path, source: str):
    """``torch.load(weights_only=True)``; argparse.Namespace (the ``args`` that timm's and
    torchvision's training scripts save beside the weights) is allowed, nothing else."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, refused pickle, not a torch file
        raise BackendError(f"{source}: not a readable state dict ({_why(e)})") from None


def _why(error: Exception) -> str:
    """The first sentence of a ``torch.load`` failure; for a refused pickle, what it is."""
    from .torch_io import _reason

    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if refused:
        return (f"it pickles `{refused.group(1)}` (a whole model?), which the safe loader "
                "refuses: save the model's state_dict() instead")
    return _reason(error).split(". ")[0]


def _unwrap(payload, source: str) -> tuple:
    """(wrapper key or None, the state dict) of a loaded file."""
    if not isinstance(payload, dict):
        raise BackendError(f"{source}: not a state dict: the file holds a "
                           f"{type(payload).__name__}, not tensors by name")
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return None, payload
    for key in WRAPPERS:
        inner = payload.get(key)
        if isinstance(inner, dict) and inner:
            _check_tensors(inner, f"{source}: `{key}`")
            return key, inner
    keys = ", ".join(map(str, list(payload)[:8])) + (", ..." if len(payload) > 8 else "")
    held = "an empty dict, no tensors" if not payload else (
        f"a dict with keys {keys}, "
        + ("no tensors" if not any(isinstance(v, torch.Tensor) for v in payload.values())
           else "not all of them tensors"))
    raise BackendError(f"{source}: not a state dict: the file holds {held} (expected "
                       f"tensors by name, or a state dict under one of {', '.join(WRAPPERS)})")


def _check_tensors(state: dict, where: str) -> None:
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise BackendError(f"{where}: entry `{k}` is a {type(v).__name__}, not a tensor")


# ---- pairing ------------------------------------------------------------------------------
def build(spec, path, *, partial: bool = False, seed: int | None = None, features=None):
    """(model, :class:`LoadReport`): ``spec`` (from ``archspec.load``) built by the torch
    backend, then loaded from the state dict at ``path`` by :func:`load_foreign`."""
    from .torch_lower import build_module

    graph = spec.compile()
    model = build_module(graph, features=features, seed=seed)
    return model, load_foreign(model, graph, path, partial=partial)


def load_foreign(model, graph: Graph, path, *, partial: bool = False,
                 source: str | None = None) -> LoadReport:
    """Copy the tensors of the state dict at ``path`` (or a :class:`Foreign` read from it)
    into ``model`` (built from ``graph``) by position; raise :class:`BackendError` on the
    first mismatch unless ``partial``."""
    foreign = path if isinstance(path, Foreign) else read_foreign(path, source)
    report = pair(model, graph, foreign, partial, source or foreign.path)
    copy_into(model, report)
    return report


def pair(model, graph: Graph, foreign: Foreign, partial: bool, source: str) -> LoadReport:
    """The :class:`LoadReport` of pairing ``foreign`` with ``model``'s tensors (no copy)."""
    ours = [Tensor(k, v) for k, v in model.state_dict().items() if not k.endswith(COUNTER)]
    theirs = foreign.tensors
    n, reshaped = matching_prefix(graph, ours, theirs)
    stopped = None
    if n < max(len(ours), len(theirs)):
        stopped = _stop(n, len(theirs), len(ours), _at(ours, n), _at(theirs, n))
        if not partial:
            raise BackendError(f"{source}: {stopped['reason']} "
                               f"({_hint(_whole(ours, theirs, n), n < len(ours))})")
    whole = _whole(ours, theirs, n)
    if not whole and ours:
        raise BackendError(f"{source}: {_nothing_fits(graph.name, ours, theirs, n)}")
    n = whole
    return LoadReport(foreign.path, foreign.key, graph.name, partial, ours,
                      theirs[:n] + [None] * (len(ours) - n),
                      reshaped={i for i in reshaped if i < n}, unused=theirs[n:],
                      stopped=stopped, blocks={t.key: _block(graph, t.key) for t in ours})


def _nothing_fits(spec: str, ours: list, theirs: list, n: int) -> str:
    """Why --partial would load nothing: the first tensors differ, or the first module
    fits only in part."""
    if not n:
        return (f"no tensor of the file fits the first tensor of {spec}: theirs "
                f"{_describe(theirs[0])} vs ours {_describe(ours[0])}; is it the right spec?")
    return (f"nothing loads: only {n} tensor(s) fit, which do not make a whole module "
            f"(tensor {n + 1}: theirs {_describe(_at(theirs, n))} vs ours "
            f"{_describe(_at(ours, n))}); is it the right spec?")


def matching_prefix(graph: Graph, ours: list, theirs: list) -> tuple[int, set]:
    """How many tensors pair from the start, and the positions among them reshaped."""
    reshaped = set()
    for n, (mine, other) in enumerate(zip(ours, theirs)):
        how = fits(graph, mine, other)
        if how is None:
            return n, reshaped
        if how == "reshaped":
            reshaped.add(n)
    return min(len(ours), len(theirs)), reshaped


def _hint(before: int, ours_left: bool) -> str:
    """What --partial would do instead."""
    if not before:
        return "nothing before it fits either: is it the right spec?"
    rest = "leaves the rest at random" if ours_left else "ignores the file's other tensors"
    return f"--partial loads the {before} tensors before it and {rest}"


def fits(graph: Graph, mine: Tensor, other: Tensor) -> str | None:
    """``loaded`` when the shapes are equal, ``reshaped`` for a Linear weight into a 1x1
    conv on a 1x1 map (or the reverse), else None."""
    if mine.shape == other.shape:
        return "loaded"
    if len(mine.shape) == 4 and mine.shape[2:] == (1, 1) and other.shape == mine.shape[:2]:
        return "reshaped" if _on_one_pixel(graph, mine.key) else None
    if len(other.shape) == 4 and other.shape[2:] == (1, 1) and mine.shape == other.shape[:2]:
        return "reshaped"
    return None


def _on_one_pixel(graph: Graph, key: str) -> bool:
    """Whether the conv owning ``key`` is a dense conv reading a 1x1 map."""
    name = key.rpartition(".")[0]
    if name not in graph or graph[name].kind != "conv2d":
        return False
    node = graph[name]
    return node.op.groups == 1 and tuple(graph[node.inputs[0]].shape[1:]) == (1, 1)


def _stop(n: int, total_theirs: int, total_ours: int, mine, other) -> dict:
    """Where pairing stopped (1-based position) and why, as a sentence naming both sides."""
    ours, theirs = _describe(mine), _describe(other)
    if other is None:
        reason = (f"the file holds {total_theirs} tensors, the model {total_ours}: ours "
                  f"{ours} (tensor {n + 1}) and the {total_ours - n - 1} after it have none")
    elif mine is None:
        reason = (f"the file holds {total_theirs} tensors, the model {total_ours}: the "
                  f"file's {theirs} (tensor {n + 1}) and the {total_theirs - n - 1} after "
                  "it are left over")
    else:
        reason = (f"tensor {n + 1} of {total_theirs}: the file's {theirs} does not fit "
                  f"ours {ours}")
    return {"position": n + 1, "reason": reason,
            "file_key": None if other is None else other.key,
            "file_shape": None if other is None else list(other.shape),
            "model_key": None if mine is None else mine.key,
            "model_shape": None if mine is None else list(mine.shape)}


def _describe(t: Tensor | None) -> str:
    return "-" if t is None else f"{t.key} {t.shape}"


def _at(tensors: list, n: int):
    return tensors[n] if n < len(tensors) else None


def _whole(ours: list, theirs: list, n: int) -> int:
    """``n`` cut back so that no module (on either side) is loaded in part."""
    def splits(tensors, i):
        return i < len(tensors) and _owner(tensors[i].key) == _owner(tensors[i - 1].key)

    while n > 0 and (splits(ours, n) or splits(theirs, n)):
        n -= 1
    return n


def _owner(key: str) -> str:
    return key.rpartition(".")[0]


def _block(graph: Graph, key: str) -> str:
    name = _owner(key)
    return graph[name].block if name in graph else name


def copy_into(model, report: LoadReport) -> None:
    """Copy each paired tensor of ``report`` into ``model`` (reshaped, in its dtype)."""
    params = dict(model.named_parameters())
    params.update(model.named_buffers())
    with torch.no_grad():
        for mine, theirs in zip(report.ours, report.sources):
            if theirs is not None:
                target = params[mine.key]
                target.copy_(theirs.value.reshape(target.shape).to(target.dtype))


# ---- output -------------------------------------------------------------------------------
def table(report: LoadReport):
    """A rich renderable: per block of the model, its tensors and how many were loaded,
    then the summary line and, where pairing stopped, why."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table()
    for col in ("block", "tensors", "loaded", "from (first file tensor)"):
        t.add_column(col, justify="right" if col in ("tensors", "loaded") else "left")
    for block, n, k, first in report.block_rows():
        mark = "" if k == n else " (random)" if k == 0 else " (partly)"
        t.add_row(block, str(n), f"{k}{mark}", first or "-")
    lines = [report.summary()]
    if report.stopped:
        lines.append(f"stopped: {report.stopped['reason']}")
    return Group(t, *map(Text, lines))
