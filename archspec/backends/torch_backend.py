"""The PyTorch backend: a compiled graph as an ordinary ``nn.Module``.

This module itself imports no torch: :class:`TorchBackend` checks that torch is installed
when it is created and only then imports the lowering (``torch_lower``), the file format
(``torch_io``) and the summary (``torch_summary``). See docs/torch.md.
"""
from __future__ import annotations

import importlib

from ..errors import BackendError
from . import Backend

REQUIREMENT = "torch==2.13.0"


class TorchBackend(Backend):
    """``build`` a graph into a ``torch.fx.GraphModule``; ``save`` / ``load`` it with its
    spec; ``summary`` prints its module tree with the cost of every layer."""

    name = "torch"

    def __init__(self):
        try:
            importlib.import_module("torch")
        except ImportError:
            raise BackendError("the torch backend needs `torch`, which is not installed: "
                               f"pip install {REQUIREMENT}") from None
        from . import torch_io, torch_lower, torch_summary

        self._lower, self._io, self._summary = torch_lower, torch_io, torch_summary

    def build(self, graph, *, features=None, seed: int | None = None, weights_from=None,
              partial: bool = False):
        """The model computing ``graph``: its output, or with ``features=["C4", "C5"]`` a
        dict of those taps. ``seed`` makes the initialisation reproducible without touching
        torch's global random state. ``weights_from``: a torchvision/timm state-dict file
        loaded by position (``partial``: its matching prefix; the load report is in
        ``model.meta["archspec"]["weights"]``)."""
        model = self._lower.build_module(graph, features=features, seed=seed)
        if weights_from is not None:
            from . import torch_weights

            report = torch_weights.load_foreign(model, graph, weights_from, partial=partial)
            model.meta["archspec"]["weights"] = report.to_json()
        return model

    def save(self, model, path, spec, graph) -> None:
        """Write spec (path, shipped name or YAML text), version and weights to ``path``."""
        self._io.save(model, path, spec, graph)

    def load(self, path):
        """The model saved at ``path``, rebuilt from its embedded spec, weights loaded."""
        return self._io.load(path)

    def read(self, path):
        """The verified contents of a saved file (spec, graph, weights) without a model."""
        return self._io.read(path)

    def summary(self, model, graph, report) -> str:
        """The module tree with params and MAdds per layer from a cost ``report``."""
        return self._summary.summary(model, graph, report)
