"""archspec: architecture-spec compiler and cost estimator for efficient CNNs.

>>> import archspec
>>> spec = archspec.load("specs/mobilenetv2.yaml")
>>> report = spec.cost()          # or archspec.cost(spec)
>>> report.totals.params, report.totals.madds
"""
from __future__ import annotations

from .errors import ArchspecError, SpecError
from .sources import load
from .spec import loads

__version__ = "0.1.0"


def cost(spec_or_path, **kw):
    """Cost a spec (or a path to one): a CostReport."""
    spec = load(spec_or_path) if not hasattr(spec_or_path, "compile") else spec_or_path
    return spec.cost(**kw)


def build(spec_or_path, backend: str = "torch", **kw):
    """Lower a spec to a backend model (``torch``: an ``nn.Module``)."""
    from .backends import get_backend

    spec = load(spec_or_path) if not hasattr(spec_or_path, "compile") else spec_or_path
    return get_backend(backend).build(spec.compile(), **kw)


__all__ = ["load", "loads", "cost", "build", "ArchspecError", "SpecError", "__version__"]
