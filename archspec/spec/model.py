"""The parsed, validated spec as plain data (no graph, no torch)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import Location, Problem, SpecError


@dataclass(frozen=True)
class Row:
    """One line of a stage table (or one head entry), with every field resolved."""

    block: str
    fields: dict
    section: str  # "stages" or "head"
    index: int
    location: Location
    field_locations: dict = field(default_factory=dict, compare=False, repr=False)

    def where(self, key: str | None = None) -> Location:
        return self.field_locations.get(key, self.location) if key else self.location


@dataclass(frozen=True)
class Spec:
    name: str
    stages: tuple[Row, ...]
    head: tuple[Row, ...] = ()
    resolution: int = 224
    channels: int = 3
    classes: int = 1000
    width: float = 1.0
    divisor: int = 8
    description: str = ""
    source: str = ""
    file: str = "<spec>"
    schedule: dict | None = None
    locations: dict = field(default_factory=dict, compare=False, repr=False)

    def with_(self, *, width=None, resolution=None, classes=None) -> Spec:
        """A copy with the CLI-style overrides applied and checked."""
        problems = []
        checks = (("width", width, float, 0, 16), ("resolution", resolution, int, 1, 8192),
                  ("classes", classes, int, 1, 1_000_000))
        changes = {}
        for key, value, kind, lo, hi in checks:
            if value is None:
                continue
            if kind is int and (isinstance(value, bool) or value != int(value)):
                problems.append(Problem(Location("command line", path=f"--{key}"),
                                        f"must be a whole number, got {value}"))
                continue
            value = kind(value)
            if not (lo < value <= hi if kind is float else lo <= value <= hi):
                problems.append(Problem(Location("command line", path=f"--{key}"),
                                        f"{value} is outside the allowed range {lo}..{hi}"))
                continue
            changes[key] = value
        if problems:
            raise SpecError(problems)
        return dataclasses.replace(self, **changes)

    def compile(self, **kw):
        """Lower to the graph IR (:class:`archspec.ir.Graph`)."""
        from ..compiler import compile_spec

        return compile_spec(self, **kw)

    def cost(self, **kw):
        """Compile and cost: a :class:`archspec.analysis.cost.CostReport`."""
        from ..analysis.cost import cost

        return cost(self.compile(), **kw)

    @property
    def rows(self) -> tuple[Row, ...]:
        return self.stages + self.head
