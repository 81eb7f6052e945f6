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

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")
EMBEDDED = "#spec"  # suffix of the `file` of a spec read out of a checkpoint or ONNX file
_ZIP, _PICKLE, _ONNX = b"PK\x03\x04", b"\x80", b"\x08"


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


def content_kind(path: Path) -> str:
    """``torch`` (a zip or a pickle), ``onnx`` (a protobuf starting with field 1,
    ``ir_version``), ``binary`` (other bytes with a NUL) or ``spec`` (text)."""
    head = _head(path)
    if head.startswith(_ZIP) or head.startswith(_PICKLE):
        return "torch"
    if head.startswith(_ONNX):
        return "onnx"
    return "binary" if b"\x00" in head else "spec"


def describe(path: Path) -> str:
    """A few words on what a file holds, for errors that found the wrong kind."""
    return {"onnx": "an ONNX file", "torch": "a torch file", "binary": "a binary file",
            "spec": "a text file (a YAML spec?)"}[content_kind(Path(path))]


def _head(path: Path, size: int = 512) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as e:
        raise ArchspecError(f"{path}: cannot be read ({e.strerror})") from None


# ---- specs held by checkpoints and ONNX files ---------------------------------------------
def checkpoint_spec(path):
    """The spec a ``.pt`` file written by ``build`` or ``train`` holds, with its overrides."""
    text, overrides = _torch_io().read_spec(path)
    return embedded_spec(text, overrides, path)


def embedded_spec(text: str, overrides: dict, path):
    """A spec from the YAML ``text`` a file at ``path`` carries (its problems are located
    at ``PATH#spec:line:column``), with the stored ``overrides`` applied."""
    import dataclasses

    from .errors import Location, SpecError
    from .spec import loads

    spec = loads(text, name=f"{path}{EMBEDDED}")
    stored = {k: v for k, v in overrides.items() if v is not None}
    try:
        spec = spec.with_(**stored)
    except SpecError as e:
        raise ArchspecError(f"{path}: the stored overrides {stored} are invalid: "
                            f"{e.problems[0].message}") from None
    where = {k: (Location(str(path), path=f"overrides.{k}"), v[1])
             for k, v in spec.overrides.items()}
    return dataclasses.replace(spec, overrides=where)


def embedded_text(path) -> str:
    """The spec text carried by the checkpoint or ONNX file at ``path``."""
    kind, path = locate(path)
    if kind == "torch":
        return _torch_io().read_spec(path)[0]
    if kind == "onnx":
        from .onnx_import import OnnxSource

        return OnnxSource(path).spec_text()
    raise ArchspecError(f"{path}: not a checkpoint or ONNX file")


def _torch_io():
    try:
        from .backends import torch_io
    except ImportError as e:
        from .backends import BUILTIN

        raise ArchspecError(f"reading a .pt checkpoint needs `{e.name or 'torch'}`, which is "
                            f"not installed: pip install {BUILTIN['torch'][1]}") from None
    return torch_io


def spec_text(spec) -> str:
    """Self-contained YAML for a spec given as a path, a shipped name, YAML text, a loaded
    :class:`Spec` (read back from its file, or from the checkpoint it came out of) or a
    source with a ``spec_text()`` method (an ONNX file carrying its spec)."""
    import yaml

    from .errors import BackendError
    from .spec.loader import resolve_path, resolved_document
    from .spec.yamlio import parse_yaml, read_yaml

    if hasattr(spec, "spec_text"):
        return spec.spec_text()
    if hasattr(spec, "compile"):
        if str(spec.file).endswith(EMBEDDED):
            return embedded_text(str(spec.file)[:-len(EMBEDDED)])
        if not Path(spec.file).is_file():
            raise BackendError(f"save: spec {spec.name!r} was not loaded from a file; pass "
                               "its YAML text or path")
        spec = Path(spec.file)
    if isinstance(spec, Path) or ("\n" not in str(spec) and resolve_path(spec).is_file()):
        path = resolve_path(spec)
        if kind_of(path) != "spec":
            return embedded_text(path)
        doc, text = read_yaml(path), path.read_text(encoding="utf-8")
    else:
        path, text = Path.cwd() / "<spec>", str(spec)
        doc = parse_yaml(text, "<spec>")
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return text
    merged = resolved_document(doc, path)
    header = f"# {merged.get('name', path.stem)}: {path.name} with `extends` merged in\n"
    return header + yaml.safe_dump(merged, sort_keys=False)


def compile_text(text: str, overrides: dict, what: str):
    """The graph of spec ``text`` with ``overrides``; a problem is one located line."""
    from .errors import BackendError
    from .spec.loader import loads

    try:
        spec = loads(text, name="<embedded spec>")
        spec = spec.with_(**{k: v for k, v in overrides.items() if v is not None})
        return spec.compile()
    except ArchspecError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BackendError(f"{what} does not compile: {first}") from None


def check_describes(text: str, overrides: dict, graph, what: str = "save") -> None:
    """Raise unless spec ``text`` with ``overrides`` compiles to ``graph``'s nodes."""
    from .errors import BackendError

    rebuilt = compile_text(text, overrides, "the spec")
    if _signature(rebuilt) != _signature(graph):
        raise BackendError(f"{what}: the spec given does not describe the graph "
                           f"{graph.name!r} (pass the spec the graph was compiled from)")


def _signature(graph) -> list:
    return [(n.name, n.kind, n.shape) for n in graph]


__all__ = ["load", "locate", "kind_of", "checkpoint_spec", "embedded_spec", "spec_text"]
