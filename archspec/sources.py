"""One loader for every kind of model source a command or a script can name: a YAML spec
path, a shipped spec name, an ONNX file (exported by archspec or foreign), and a ``.pt``
checkpoint written by ``archspec build --backend torch`` or ``archspec train`` (or the run
folder holding its ``last.pt``).

``load`` picks the reader by the file's suffix, then by its first bytes, and returns an
object with ``name``, ``compile()``, ``cost()`` and ``with_(width=, resolution=, classes=)``:

- a spec file or shipped name: the :class:`~archspec.spec.Spec`;
- a checkpoint: the :class:`~archspec.spec.Spec` embedded in it, with the overrides it was
  built with (its ``file`` is ``PATH#spec``); read with ``torch.load(weights_only=True)``
  after the file's checksum is verified, so a hostile pickle is refused;
- an ONNX file: an :class:`~archspec.onnx_import.OnnxSource` (costs what the file holds).

Importing this module imports neither torch nor onnx.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ArchspecError
from .fsutil import content_kind
from .spec import embedded

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")


def load(source, *, width=None, resolution=None, classes=None):
    """The model that ``source`` names, with the overrides applied."""
    overrides = {"width": width, "resolution": resolution, "classes": classes}
    if hasattr(source, "with_"):
        return source.with_(**overrides)
    kind, path = locate(source)
    if kind == "onnx":
        from .onnx_import import OnnxSource

        return OnnxSource(path).with_(**overrides)
    if kind == "torch":
        return checkpoint_spec(path).with_(**overrides)
    from .spec import load as load_spec

    return load_spec(source, **overrides)


def locate(source) -> tuple[str, Path]:
    """(kind, path): kind is ``onnx``, ``torch`` or ``spec`` (a YAML path or shipped name,
    left to the spec loader, which explains a missing file)."""
    path = Path(source)
    if path.is_dir() and (path / "last.pt").is_file():
        return "torch", path / "last.pt"
    if not path.is_file():
        return "spec", path
    return kind_of(path), path


def kind_of(path: Path) -> str:
    """What the file at ``path`` holds: ``onnx``, ``torch`` or ``spec``, by its suffix, or
    by its first bytes when the suffix says nothing (see :func:`content_kind`)."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    kind = content_kind(path)
    if kind == "binary":
        raise ArchspecError(f"{path}: binary file that is neither an ONNX file nor a torch "
                            "checkpoint (a SPEC is a YAML file, a shipped spec name, a "
                            ".onnx file or a .pt checkpoint)")
    return kind


# ---- specs held by checkpoints and ONNX files ---------------------------------------------
def checkpoint_spec(path):
    """The spec a ``.pt`` file written by ``build`` or ``train`` holds, with its overrides."""
    text, overrides = _torch_io().read_spec(path)
    return embedded.embedded_spec(text, overrides, path)


def _torch_io():
    try:
        from .backends import torch_io
    except ImportError as e:
        from .backends import BUILTIN

        raise ArchspecError(f"reading a .pt checkpoint needs `{e.name or 'torch'}`, which is "
                            f"not installed: pip install {BUILTIN['torch'][1]}") from None
    return torch_io


__all__ = ["load"]
