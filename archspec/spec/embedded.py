"""Specs carried inside model files (a ``.pt`` checkpoint, an ONNX file's metadata): the
self-contained YAML to store, the spec read back from it, and the check that a stored spec
describes the graph it is stored with. Pure spec-layer code: no torch, no onnx, and no
knowledge of the file formats (archspec.sources reads those)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ArchspecError

EMBEDDED = "#spec"  # suffix of the `file` of a spec read out of a checkpoint or ONNX file


def embedded_spec(text: str, overrides: dict, path):
    """A spec from the YAML ``text`` a file at ``path`` carries (its problems are located
    at ``PATH#spec:line:column``), with the stored ``overrides`` applied."""
    import dataclasses

    from ..errors import Location, SpecError
    from .loader import loads

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


def spec_text(spec) -> str:
    """Self-contained YAML for a spec given as a YAML path, a shipped name, YAML text, a
    loaded :class:`Spec` (its text when it was loaded from text, as a spec read out of a
    checkpoint or ONNX file is, else read back from its file) or a source with a
    ``spec_text()`` method (an ONNX file carrying its spec). For a checkpoint or an ONNX
    file, load it first (:func:`archspec.load`) and pass what it returns."""
    import yaml

    from ..errors import BackendError
    from ..fsutil import content_kind
    from .loader import resolve_path, resolved_document
    from .yamlio import parse_yaml, read_yaml

    if hasattr(spec, "spec_text"):
        return spec.spec_text()
    if hasattr(spec, "compile"):
        if spec.text is not None and "extends" not in (getattr(spec.document, "data", None)
                                                       or {}):
            return spec.text
        if not Path(spec.file).is_file():
            raise BackendError(f"save: spec {spec.name!r} was not loaded from a file; pass "
                               "its YAML text or path")
        spec = Path(spec.file)
    if isinstance(spec, Path) or ("\n" not in str(spec) and resolve_path(spec).is_file()):
        path = resolve_path(spec)
        if content_kind(path) != "spec":
            raise BackendError(f"{path}: not a YAML spec; load it first "
                               "(archspec.load) to take the spec it carries")
        doc, text = read_yaml(path), path.read_text(encoding="utf-8")
    else:
        path, text = Path.cwd() / "<spec>", str(spec)
        doc = parse_yaml(text, "<spec>")
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return text
    merged = resolved_document(doc, path)
    header = f"# {merged.get('name', path.stem)}: {path.name} with `extends` merged in\n"
    return header + yaml.safe_dump(merged, sort_keys=False)


OVERRIDE_KEYS = ("resolution", "width", "classes")


def overrides_of(graph) -> dict:
    """The overrides ``graph`` was compiled with, as a model file stores them. A
    non-square input is the spec's own size (``--resolution N`` makes it N x N), so its
    resolution is not stored."""
    out = {k: graph.meta.get(k) for k in OVERRIDE_KEYS}
    shape = graph.input_shape
    if len(shape) == 3 and shape[1] != shape[2]:
        out["resolution"] = None
    return out


def compile_text(text: str, overrides: dict, what: str):
    """The graph of spec ``text`` with ``overrides``; a problem is one located line."""
    from ..errors import BackendError
    from .loader import loads

    try:
        spec = loads(text, name="<embedded spec>")
        spec = spec.with_(**{k: v for k, v in overrides.items() if v is not None})
        return spec.compile()
    except ArchspecError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BackendError(f"{what} does not compile: {first}") from None


def check_describes(text: str, overrides: dict, graph, what: str = "save") -> None:
    """Raise unless spec ``text`` with ``overrides`` compiles to ``graph``'s nodes."""
    from ..errors import BackendError

    rebuilt = compile_text(text, overrides, "the spec")
    if _signature(rebuilt) != _signature(graph):
        raise BackendError(f"{what}: the spec given does not describe the graph "
                           f"{graph.name!r} (pass the spec the graph was compiled from)")


def _signature(graph) -> list:
    return [(n.name, n.kind, n.shape) for n in graph]
