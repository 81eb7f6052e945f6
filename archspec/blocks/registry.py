"""The block registry: block names -> their fields and their lowering to IR ops.

Registering a name twice is an error; an unknown name gets a "did you mean" hint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable

from ..errors import did_you_mean

REQUIRED = object()  # a field with no default


@dataclass(frozen=True)
class BlockDef:
    name: str
    lower: Callable
    fields: dict  # field name -> default (or REQUIRED)
    aliases: tuple[str, ...] = ()
    check: Callable | None = None  # row fields -> list of (field, message, hint)
    summary: str = ""
    scaled: tuple[str, ...] = ("c", "exp")  # channel fields the width multiplier scales
    one_of: tuple[tuple[str, ...], ...] = field(default=())  # exactly one of each group


class UnknownBlock(KeyError):
    def __init__(self, name: str, hint: str):
        super().__init__(name)
        self.name, self.hint = name, hint


class Registry:
    def __init__(self):
        self._defs: dict[str, BlockDef] = {}
        self._names: dict[str, str] = {}  # name or alias -> canonical name

    def register(self, name: str, *, fields: dict, aliases=(), check=None,
                 scaled=("c", "exp"), one_of=()):
        """Decorator registering ``lower(builder, x, fields) -> output node``."""

        def deco(lower):
            for key in (name, *aliases):
                if key in self._names:
                    raise ValueError(f"block name {key!r} is already registered")
            doc = (lower.__doc__ or "").strip().splitlines()
            self._defs[name] = BlockDef(name, lower, {"n": 1, **fields}, tuple(aliases), check,
                                        doc[0] if doc else "", tuple(scaled), tuple(one_of))
            for key in (name, *aliases):
                self._names[key] = name
            return lower

        return deco

    def get(self, name: str) -> BlockDef:
        canonical = self._names.get(str(name).lower())
        if canonical is None:
            raise UnknownBlock(name, did_you_mean(name, self.names()))
        return self._defs[canonical]

    def names(self) -> list[str]:
        """Every block name and alias, sorted."""
        return sorted(self._names)

    def __contains__(self, name) -> bool:
        return str(name).lower() in self._names

    def __iter__(self):
        return iter(self._defs.values())


BLOCKS = Registry()
