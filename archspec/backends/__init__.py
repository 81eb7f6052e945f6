"""Backend registry: the plugins that lower a compiled graph to a framework's model.

Backends are found through the ``archspec.backends`` entry-point group (how third-party
packages add one), with a built-in table as fallback for when archspec's own package
metadata is missing (a source checkout on ``PYTHONPATH``). A backend is imported only when
it is asked for, so importing this module never imports torch or onnx.

>>> from archspec.backends import get_backend, available
>>> available()
['torch']
>>> model = get_backend("torch").build(spec.compile())

A backend class is instantiated without arguments and offers ``build(graph, **options)``;
file-writing backends also offer ``save`` and ``load`` (see :class:`Backend`).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib import metadata

from ..errors import BackendError, close_match

GROUP = "archspec.backends"


@dataclass(frozen=True)
class Entry:
    """Where a backend lives (``module:attr``) and what to pip install for its dependency."""

    name: str
    target: str
    requires: str = ""


# name -> (target, pip requirement). Used for names the entry points do not provide, and
# only where the module is part of this installation.
BUILTIN = {
    "torch": ("archspec.backends.torch_backend:TorchBackend", "torch==2.13.0"),
    "onnx": ("archspec.backends.onnx_backend:OnnxBackend", "onnx onnxruntime"),
}


class Backend:
    """What a backend offers. Subclasses set ``name`` and implement ``build``."""

    name = ""

    def build(self, graph, **options):
        raise NotImplementedError

    def save(self, model, path, spec, graph) -> None:
        raise BackendError(f"the {self.name} backend cannot save models")

    def load(self, path):
        raise BackendError(f"the {self.name} backend cannot load models")


_entries: dict[str, Entry] | None = None


def register(name: str, target, requires: str = "") -> None:
    """Add a backend: ``target`` is a class or a ``"module:attr"`` string. A name can be
    registered once; a second registration raises :class:`BackendError`."""
    entries = _table()
    if name in entries:
        raise BackendError(f"backend `{name}` is already registered "
                           f"(by {entries[name].target})")
    entries[name] = Entry(name, target, requires)


def unregister(name: str) -> None:
    """Remove a backend (for tests and plugins that replace themselves)."""
    _table().pop(name, None)


def available() -> list[str]:
    """The names of all known backends, sorted (their dependencies may be missing)."""
    return sorted(_table())


def get_backend(name: str):
    """An instance of the backend called ``name``."""
    entries = _table()
    if name not in entries:
        close = close_match(name, entries)
        guess = f"did you mean `{close}`? " if close else ""
        known = ", ".join(sorted(entries)) or "none"
        raise BackendError(f"unknown backend `{name}` ({guess}known backends: {known})")
    entry = entries[name]
    cls = _resolve(entry)
    try:
        return cls()
    except ImportError as e:
        raise _missing(entry, e) from None


def _resolve(entry: Entry):
    if not isinstance(entry.target, str):
        return entry.target
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise _missing(entry, e) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BackendError(f"backend `{entry.name}`: {module_name} has no `{attr}`") from None


def _missing(entry: Entry, error: ImportError) -> BackendError:
    """A clear error for a backend whose dependency is not installed."""
    package = (error.name or "").split(".")[0] or "its dependencies"
    if package == "archspec":
        return BackendError(f"backend `{entry.name}` cannot be imported: {error}")
    requirement = entry.requires or package
    return BackendError(f"the {entry.name} backend needs `{package}`, which is not installed: "
                        f"pip install {requirement}")


def _table() -> dict[str, Entry]:
    global _entries
    if _entries is None:
        _entries = _discover()
    return _entries


def _discover() -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for ep in _entry_points():
        old = found.get(ep.name)
        if old is not None and old.target != ep.value:
            raise BackendError(f"backend `{ep.name}` is registered twice, by {old.target} "
                               f"and by {ep.value}")
        found[ep.name] = Entry(ep.name, ep.value, BUILTIN.get(ep.name, ("", ""))[1])
    for name, (target, requires) in BUILTIN.items():
        if name not in found and importlib.util.find_spec(target.partition(":")[0]) is not None:
            found[name] = Entry(name, target, requires)
    return found


def _entry_points():
    try:
        return list(metadata.entry_points(group=GROUP))
    except Exception:  # broken or missing package metadata: fall back to the built-ins
        return []


__all__ = ["Backend", "BackendError", "available", "get_backend", "register", "unregister"]
