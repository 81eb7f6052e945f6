"""One loader for every kind of model source a command or a script can name: a YAML spec
path, a shipped spec name, an ONNX file (exported by archspec or foreign) and a ``.pt``
checkpoint written by ``archspec build`` or ``archspec train``.

``load`` picks the reader by the source's suffix; every reader returns an object with
``name``, ``compile()``, ``cost()`` and ``with_(width=, resolution=, classes=)``.
"""
from __future__ import annotations



def load(source, *, width=None, resolution=None, classes=None):
    """The model that ``source`` names, with the overrides applied."""
    if str(source).lower().endswith(".onnx"):  # a foreign or exported ONNX file
        from .onnx_import import OnnxSource

        return OnnxSource(source, width=width, resolution=resolution, classes=classes)
    from .spec import load as load_spec

    return load_spec(source, width=width, resolution=resolution, classes=classes)


__all__ = ["load"]
