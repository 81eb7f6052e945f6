"""The parsed, validated spec as plain data (no graph, no torch)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Real

from ..errors import Location, Problem, SpecError, override_location

# key -> (whole number?, lowest, highest, lowest excluded?)
OVERRIDE_RANGES = {"width": (False, 0, 16, True), "resolution": (True, 1, 8192, False),
                   "classes": (True, 1, 1_000_000, False)}


@dataclass(frozen=True)
class Row:
    """One line of a stage table (or one head entry), with every field resolved."""

    block: str
    fields: dict
    section: str  # "stages", "head" or "heads"
    index: int
    location: Location
    field_locations: dict = field(default_factory=dict, compare=False, repr=False)
    inputs: tuple[str, ...] = ()  # a `heads` entry: the taps it reads (`from`)
    label: str = ""               # a `heads` entry: its `name` (default: its block's)

    def where(self, key: str | None = None) -> Location:
        return self.field_locations.get(key, self.location) if key else self.location

    @property
    def prefix(self) -> str:
        """Its name in the graph: ``heads.<name>`` for a head, else ``<section>.<index>``."""
        return f"heads.{self.label}" if self.section == "heads" else \
            f"{self.section}.{self.index}"


@dataclass(frozen=True)
class Tap:
    """A named node of the compiled graph (`taps:`): ``path`` is a row (``stages.16``), a
    block (``stages.13.block0``) or a layer inside one (``stages.13.block0.expand``)."""

    name: str
    path: str
    location: Location


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
    bn_eps: float = 1e-5       # top-level `bn: {eps, momentum}`; torch's defaults
    bn_momentum: float = 0.1
    padding: str = "symmetric"  # top-level `padding`: every conv's (archspec.ir.ops.PAD_MODES)
    description: str = ""
    source: str = ""
    file: str = "<spec>"
    schedule: dict | None = None
    input_width: int | None = None  # `input: {resolution: [H, W]}`: W (resolution is H)
    own_input_width: int | None = field(default=None, compare=False, repr=False)
    taps: tuple[Tap, ...] = ()
    heads: tuple[Row, ...] = ()
    locations: dict = field(default_factory=dict, compare=False, repr=False)
    # key -> (Location of the override, the file's own value)
    overrides: dict = field(default_factory=dict, compare=False, repr=False)
    document: object = field(default=None, compare=False, repr=False)  # the merged Located
    text: str | None = field(default=None, compare=False, repr=False)  # YAML given to loads

    def with_(self, *, width=None, resolution=None, classes=None) -> Spec:
        """A copy with overrides applied and checked; a problem an override causes later
        (at compile time) is blamed on it (see :func:`archspec.errors.override_location`)."""
        problems, changes = [], {}
        overrides = dict(self.overrides)
        for key, value in (("width", width), ("resolution", resolution), ("classes", classes)):
            if value is None:
                continue
            where = override_location(key)
            message = _override_problem(key, value)
            if message:
                problems.append(Problem(where, message))
                continue
            changes[key] = int(value) if OVERRIDE_RANGES[key][0] else float(value)
            overrides[key] = (where, overrides.get(key, (None, getattr(self, key)))[1])
        if problems:
            raise SpecError(problems)
        if "resolution" in changes and self.input_width:  # --resolution N: N x N
            changes.update(input_width=None, own_input_width=self.input_width)
        return dataclasses.replace(self, **changes, overrides=overrides)

    def without_overrides(self, keys=None) -> Spec:
        """A copy with the file's own values back for ``keys`` (default: every override)."""
        keys = set(self.overrides if keys is None else keys)
        back = {k: v[1] for k, v in self.overrides.items() if k in keys}
        if "resolution" in back and self.own_input_width:
            back["input_width"] = self.own_input_width
        kept = {k: v for k, v in self.overrides.items() if k not in keys}
        return dataclasses.replace(self, **back, overrides=kept)

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

    @property
    def depth(self) -> float:
        """Top-level `depth` (default 1): each stage row of n blocks repeats ceil(n x depth)
        times (timm `depth_multiplier`, 'ceil'); single layers (`conv`, `pool`, ...) do not."""
        data = getattr(self.document, "data", None)
        return float(data.get("depth", 1.0)) if isinstance(data, dict) else 1.0

    @property
    def size(self) -> tuple[int, int]:
        """The input's (height, width)."""
        return self.resolution, self.input_width or self.resolution


def _override_problem(key: str, value) -> str:
    """Why ``value`` cannot override ``key``, or "" when it can."""
    whole, lo, hi, open_lo = OVERRIDE_RANGES[key]
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if whole and value != int(value):
        return f"must be a whole number, got {value}"
    too_low = value <= lo if open_lo else value < lo
    if too_low or value > hi:
        return f"must be {'>' if open_lo else '>='} {lo} and <= {hi}, got {value:g}"
    return ""
