"""Search spaces: which fields of a spec vary, over what values or ranges, written in YAML
beside the spec (docs/search.md)::

    spec: mobilenetv3_small            # optional: the SPEC argument wins
    variables:
      width: {low: 0.5, high: 1.0, step: 0.05}
      resolution: [160, 192, 224]
      k: {rows: [4, 5, 6], values: [3, 5]}          # one variable per row: stages[4].k ...
      se: {rows: [1, 4], values: [true, false], shared: true}   # one for both rows

``width``, ``resolution``, ``t``, ``alpha`` and ``schedule_end`` without ``rows`` are the
whole-spec settings of :class:`archspec.analysis.sweep.Variant`, applied by
:func:`archspec.analysis.sweep.vary` (``t`` and ``alpha`` on every row that has them, as a
sweep does); any field with ``rows`` is set on those rows of the stage table. A variant is
written back as a self-contained spec: the base document, the settings, and one ``patch``
entry per row edit, so it loads, costs, builds and trains like any spec.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from ..analysis.sweep import Variant, vary
from ..errors import Location, Problem, SpecError, did_you_mean
from ..spec.model import Spec
from ..spec.yamlio import Located, read_yaml

SETTINGS = tuple(f.name for f in dataclasses.fields(Variant))
RANGE_KEYS = ("low", "high", "step", "log")
ENTRY_KEYS = ("values", "rows", "shared", *RANGE_KEYS)


@dataclass(frozen=True)
class Variable:
    """One searched quantity: a field (a setting, or a row field on ``rows``), with a list
    of ``values`` or a range ``low``..``high`` (``step``, ``log``)."""

    name: str
    field: str
    rows: tuple[int, ...] | None = None
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    location: Location = Location()

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (self.low, self.high, self.step) if v is not None)

    def candidates(self) -> list:
        """Every value when the variable is discrete, else its ends."""
        if self.values is not None:
            return list(self.values)
        if self.step is None:
            return [self.low, self.high]
        count = int(round((self.high - self.low) / self.step)) + 1
        out = [self.low + i * self.step for i in range(count)]
        return [int(v) if self.integer else round(v, 10) for v in out]


@dataclass(frozen=True)
class Space:
    variables: tuple[Variable, ...]
    file: str = "<space>"
    spec: str | None = None   # the spec the file names, resolved against its folder
    spec_location: Location = Location()

    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    def apply(self, base: Spec, values: dict) -> Spec:
        """``base`` with the variables set to ``values`` (name -> value)."""
        settings = {v.field: values[v.name] for v in self.variables
                    if v.rows is None and v.name in values}
        spec = vary(base, Variant(**settings)) if settings else base
        edits = self.row_edits(values)
        if not edits:
            return spec
        rows = [dataclasses.replace(r, fields={**r.fields, **edits.get(r.index, {})})
                if r.section == "stages" else r for r in spec.stages]
        return dataclasses.replace(spec, stages=tuple(rows))

    def row_edits(self, values: dict) -> dict[int, dict]:
        edits: dict[int, dict] = {}
        for v in self.variables:
            if v.rows is not None and v.name in values:
                for row in v.rows:
                    edits.setdefault(row, {})[v.field] = values[v.name]
        return edits

    def text(self, base: Spec, values: dict, name: str) -> str:
        """A self-contained spec (YAML) of the variant: the base document with the
        settings and one ``patch`` entry per row edit."""
        import yaml

        from ..spec.embedded import spec_text

        doc = yaml.safe_load(spec_text(base))
        doc["name"] = name
        settings = {v.field: values[v.name] for v in self.variables
                    if v.rows is None and v.name in values}
        if "width" in settings:
            doc["width"] = settings["width"]
        if "resolution" in settings:
            doc.setdefault("input", {})["resolution"] = settings["resolution"]
        if "schedule_end" in settings and doc.get("schedule"):
            doc["schedule"]["end"] = settings["schedule_end"]
        patch = list(doc.get("patch") or [])
        patch += _setting_patches(base, settings)
        patch += [{"rows": [row], "set": fields}
                  for row, fields in sorted(self.row_edits(values).items())]
        if patch:
            doc["patch"] = patch
        head = f"# {name}: {base.name} with {label(values)}\n"
        return head + yaml.safe_dump(doc, sort_keys=False)


def _setting_patches(base: Spec, settings: dict) -> list[dict]:
    """``t`` / ``alpha`` as patch entries on the rows :func:`vary` changes."""
    out = []
    for key in ("t", "alpha"):
        if key not in settings:
            continue
        rows = [r.index for r in base.stages if r.fields.get(key) is not None
                and not (key == "t" and r.fields[key] == 1)]
        if rows:
            out.append({"rows": rows, "set": {key: settings[key]}})
    return out


def label(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


# ---- reading ------------------------------------------------------------------------------
def load_space(path: str | Path) -> Space:
    """Read and check a space file; every problem is located (file:line:col)."""
    if Path(path).is_file() and not Path(path).read_text(encoding="utf-8").strip():
        raise SpecError(Problem(Location(str(path), 1, 1),
                                "the space file is empty (it needs `variables`)"))
    doc = read_yaml(path)
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError(Problem(doc.where(()), "a space file is a mapping with `variables`"))
    unknown = [k for k in data if k not in ("spec", "variables")]
    if unknown:
        raise SpecError(Problem(doc.where((unknown[0],)), f"unknown key {unknown[0]!r}",
                                did_you_mean(unknown[0], ["spec", "variables"])))
    entries = data.get("variables")
    if not isinstance(entries, dict) or not entries:
        raise SpecError(Problem(doc.where(("variables",)),
                                "`variables` must map field names to values or ranges"))
    variables: list[Variable] = []
    problems: list[Problem] = []
    for field_name, entry in entries.items():
        try:
            variables += _variables(doc, field_name, entry)
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    spec = data.get("spec")
    if spec is not None and not isinstance(spec, str):
        raise SpecError(Problem(doc.where(("spec",)), "`spec` is a spec file or shipped name"))
    if spec is not None and (Path(path).parent / spec).is_file():
        spec = str(Path(path).parent / spec)
    return Space(tuple(variables), str(path), spec, doc.where(("spec",)))


def _variables(doc: Located, name: str, entry) -> list[Variable]:
    path = ("variables", name)
    where = doc.where(path)

    def fail(message, key=None, hint=""):
        raise SpecError(Problem(doc.where(path + ((key,) if key else ())), message, hint))

    if isinstance(entry, list):
        entry = {"values": entry}
    if not isinstance(entry, dict):
        fail("give a list of values or a mapping with `values` or `low`/`high`")
    for key in entry:
        if key not in ENTRY_KEYS:
            fail(f"unknown key {key!r}", key, did_you_mean(key, ENTRY_KEYS))
    rows = entry.get("rows")
    if rows is None and name not in SETTINGS:
        fail(f"{name!r} is not a whole-spec setting ({', '.join(SETTINGS)}): "
             "name the rows it varies on", hint="add `rows: [i, j]` (stage-table indices)")
    if rows is not None:
        rows = [rows] if isinstance(rows, int) else rows
        if not (isinstance(rows, list) and rows and all(
                isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows)):
            fail("`rows` is a row index or a list of them (0-based)", "rows")
        if len(set(rows)) != len(rows):
            fail(f"`rows` lists a row twice ({rows})", "rows")
    if "shared" in entry and not isinstance(entry["shared"], bool):
        fail("`shared` is true or false", "shared")
    values = entry.get("values")
    kind = {k: entry[k] for k in RANGE_KEYS if k in entry}
    if (values is None) == (not kind):
        fail("give either `values` or a range (`low`, `high`, optional `step`, `log`)")
    if values is not None:
        if not isinstance(values, list) or not values or any(
                isinstance(v, (list, dict)) or v is None for v in values):
            fail("`values` is a non-empty list of numbers, strings or booleans", "values")
        base = dict(field=name, values=tuple(values), location=where)
    else:
        base = dict(field=name, location=where, **_range(kind, fail))
    if rows is None:
        return [Variable(name=name, **base)]
    if entry.get("shared"):
        return [Variable(name=name, rows=tuple(rows), **base)]
    return [Variable(name=f"stages[{r}].{name}", rows=(r,), **base) for r in rows]


def _range(kind: dict, fail) -> dict:
    for key in ("low", "high"):
        if key not in kind:
            fail(f"a range needs `{key}`")
    nums = {k: kind[k] for k in ("low", "high", "step") if k in kind}
    for key, value in nums.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"`{key}` must be a number", key)
        if not math.isfinite(value):
            fail(f"`{key}` is not a finite number", key)
    if not nums["low"] < nums["high"]:
        fail("`low` must be below `high`", "low")
    if "step" in nums and nums["step"] <= 0:
        fail("`step` must be positive", "step")
    if not isinstance(kind.get("log", False), bool):
        fail("`log` is true or false", "log")
    log = kind.get("log", False)
    if log and ("step" in nums or nums["low"] <= 0):
        fail("a `log` range takes no `step` and needs `low` > 0", "log")
    return dict(low=nums["low"], high=nums["high"], step=nums.get("step"), log=log)


def error_message(e: Exception) -> str:
    """An error's one-line message without locations: those of a variant's text are in
    no file; the caller says where (the space file's variable, the proxy)."""
    from ..errors import ArchspecError

    if isinstance(e, SpecError):
        return "; ".join(p.message + (f" ({p.hint})" if p.hint else "")
                         for p in e.problems)
    lines = str(e).strip().splitlines() or [""]
    return lines[0] if isinstance(e, ArchspecError) else f"{type(e).__name__}: {lines[0]}"


def check_space(space: Space, base: Spec) -> None:
    """Every variable's every candidate value, alone, gives a spec that loads and compiles;
    a problem is reported at the variable in the space file."""
    from ..errors import ArchspecError
    from ..spec.loader import loads

    stage_rows = {r.index: r for r in base.stages if r.section == "stages"}
    problems = []
    for var in space.variables:
        bad_row = next((r for r in var.rows or () if r not in stage_rows), None)
        if bad_row is not None:
            problems.append(Problem(var.location, f"row {bad_row} is past the end of "
                                    f"{base.name}'s stage table ({len(stage_rows)} rows)"))
            continue
        missing = [r for r in var.rows or () if var.field not in stage_rows[r].fields]
        if missing:
            row = stage_rows[missing[0]]
            problems.append(Problem(var.location, f"row {row.index} ({row.block}) has no "
                                    f"field {var.field!r}", did_you_mean(var.field,
                                                                         row.fields)))
            continue
        for value in var.candidates():
            try:   # the edited spec first: its rows keep the base file's locations
                space.apply(base, {var.name: value}).compile()
                loads(space.text(base, {var.name: value}, base.name)).compile()
            except ArchspecError as e:
                problems.append(Problem(var.location,
                                        f"{var.name}={value}: {error_message(e)}"))
                break
    if problems:
        raise SpecError(problems)
