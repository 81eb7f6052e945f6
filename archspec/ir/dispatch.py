"""One dispatch style for every consumer of the IR: a consumer (the cost pass, the torch
and ONNX lowerings, the ONNX importer, the memory models, the latency kernels) keeps an
:class:`OpTable` and registers one handler per op kind with a decorator, as fvcore keeps
one handler per aten op. Looking up a kind the table lacks is an error that names the
consumer and the kind, never a silent zero; ``missing()`` lists the op kinds of
:data:`archspec.ir.ops.OPS` a table has no handler for (a test checks every table).

    TORCH = OpTable("torch lowering")

    @TORCH.register("conv2d")
    def _conv(node, graph): ...

    TORCH[node.kind](node, graph)
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import CompileError


class UnknownOp(CompileError):
    """A consumer met an op kind it has no handler for."""


class OpTable:
    """Handlers of one consumer, keyed by op kind (or, for an importer, by the foreign
    op type); registering a key twice is an error."""

    def __init__(self, consumer: str, keys: str = "op kind"):
        self.consumer, self.keys = consumer, keys
        self._handlers: dict[str, Callable] = {}

    def register(self, *kinds: str):
        """Decorator: the function handles each of ``kinds``."""
        def add(handler: Callable) -> Callable:
            for kind in kinds:
                if kind in self._handlers:
                    raise ValueError(f"{self.consumer}: {self.keys} `{kind}` registered twice")
                self._handlers[kind] = handler
            return handler
        return add

    def __getitem__(self, kind: str) -> Callable:
        try:
            return self._handlers[kind]
        except KeyError:
            raise UnknownOp(f"{self.consumer}: no handler for {self.keys} `{kind}`") from None

    def __contains__(self, kind: str) -> bool:
        return kind in self._handlers

    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    def missing(self) -> list[str]:
        """The IR op kinds (archspec.ir.ops.OPS) this table has no handler for."""
        from .ops import OPS

        return sorted(set(OPS) - set(self._handlers))
