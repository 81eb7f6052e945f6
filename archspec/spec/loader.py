"""Load a spec: read YAML safely, resolve ``extends``, validate against the JSON Schema,
turn paper-style tables into rows, apply defaults and patches, and check semantics.
All problems found are raised together as one :class:`SpecError`."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..blocks.registry import BLOCKS, REQUIRED, UnknownBlock
from ..errors import Location, Problem, SpecError, did_you_mean
from .model import Row, Spec
from .vocab import nonlinearity
from .yamlio import Located, format_path, parse_yaml, read_yaml

MAX_EXTENDS_DEPTH = 16
SHIPPED = Path(__file__).resolve().parent.parent / "specs"


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads((Path(__file__).with_name("schema.json")).read_text())


@lru_cache(maxsize=1)
def _validators():
    from jsonschema import Draft202012Validator

    full = schema()
    row = {**full["$defs"]["row"], "$defs": full["$defs"]}
    return Draft202012Validator(full), Draft202012Validator(row)


def resolve_path(ref: str | Path) -> Path:
    """A path as given, or the name of a shipped spec (``mobilenetv2``)."""
    path = Path(ref)
    if not path.exists():
        for candidate in (SHIPPED / str(ref), SHIPPED / f"{ref}.yaml"):
            if candidate.is_file():
                return candidate
    return path


def load(path: str | Path, *, width=None, resolution=None, classes=None) -> Spec:
    """Load and validate a spec file; CLI-style overrides are applied last."""
    path = resolve_path(path)
    doc = _resolve_extends(read_yaml(path), path, (path.resolve(),))
    spec = build_spec(doc)
    return spec.with_(width=width, resolution=resolution, classes=classes)


def loads(text: str, name: str = "<string>", base_dir: str | Path = ".") -> Spec:
    """Load a spec from YAML text; ``extends`` is resolved against ``base_dir``."""
    fake = Path(base_dir) / name
    return build_spec(_resolve_extends(parse_yaml(text, name), fake, ()))


# ---- extends ------------------------------------------------------------------------------
def resolved_document(doc: Located, path: Path) -> dict:
    """A parsed document with its ``extends`` chain merged in, as plain data; ``path`` is
    where the document lives (``extends`` resolves against its folder)."""
    chain = (path.resolve(),) if path.is_file() else ()
    return _resolve_extends(doc, path, chain).data


def _resolve_extends(doc: Located, path: Path, chain: tuple) -> Located:
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError(Problem(doc.where(()), "a spec must be a mapping of keys to values",
                                "start with `name:` and `stages:`"))
    ref = data.get("extends")
    if ref is None:
        return doc
    where = doc.where(("extends",))
    if not isinstance(ref, str) or not ref:
        raise SpecError(Problem(where, "`extends` must be a file name"))
    base_path = path.parent / ref
    if not base_path.is_file():  # a shipped spec's name, never the working directory
        shipped = [p for p in (SHIPPED / ref, SHIPPED / f"{ref}.yaml") if p.is_file()]
        base_path = shipped[0] if shipped else base_path
    if not base_path.exists():
        raise SpecError(Problem(where, f"cannot find the spec it extends: {ref}",
                                "paths are relative to this file"))
    key = base_path.resolve()
    if key in chain:
        loop = " -> ".join(p.name for p in (*chain, key))
        raise SpecError(Problem(where, f"`extends` forms a cycle: {loop}"))
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise SpecError(Problem(where, f"`extends` chain deeper than {MAX_EXTENDS_DEPTH}"))
    base = _resolve_extends(read_yaml(base_path), base_path, (*chain, key))
    return _merge(base, doc)


def _merge(base: Located, child: Located) -> Located:
    """Mappings merge key by key; any other value (lists included) replaces; ``patch``
    lists are appended to the base's."""
    replaced: list[tuple] = []

    def merge(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for k, v in b.items():
                if path == () and k == "patch" and isinstance(a.get(k), list) and \
                        isinstance(v, list):
                    out[k] = a[k] + v
                    continue
                out[k] = merge(a[k], v, path + (k,)) if k in a else v
                if k not in a or not (isinstance(a[k], dict) and isinstance(v, dict)):
                    replaced.append(path + (k,))
            return out
        return b

    data = merge(base.data, {k: v for k, v in child.data.items() if k != "extends"}, ())
    marks = {p: m for p, m in base.marks.items()
             if not any(p[: len(r)] == r for r in replaced if r != ("patch",))}
    n_base_patch = len(base.data.get("patch") or []) if "patch" in child.data else 0
    for p, m in child.marks.items():
        if n_base_patch and p[:1] == ("patch",) and len(p) > 1:
            p = ("patch", p[1] + n_base_patch, *p[2:])
        marks[p] = m
    return Located(data, child.file, marks)


# ---- validation ---------------------------------------------------------------------------
def _schema_problems(validator, data, where, skip=lambda path: False) -> list[Problem]:
    from jsonschema.exceptions import best_match

    problems = []
    for err in validator.iter_errors(data):
        if skip(tuple(err.absolute_path)):
            continue
        while err.context:
            err = best_match(err.context)
        path = tuple(err.absolute_path)
        message, hint, key = _describe(err)
        if key is not None:  # point at the offending key itself
            path = path + (key,)
        problems.append(Problem(where(path), message, hint))
    return problems


def _in_row(path: tuple) -> bool:
    """Errors inside one row are left to the per-row pass, which reports them all."""
    return len(path) >= 2 and path[0] in ("stages", "head") and isinstance(path[1], int)


def _describe(err) -> tuple[str, str, str | None]:
    """(message, hint, offending key or None) for a jsonschema error."""
    v = err.validator
    if v == "propertyNames":
        known = schema()["$defs"]["fieldname"]["enum"]
        return f"unknown field `{err.instance}`", did_you_mean(err.instance, known), None
    if v == "additionalProperties":
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - allowed)
        word = extra[0] if extra else "?"
        return f"unknown key `{word}`", did_you_mean(word, allowed), word
    if v == "enum":
        return (f"`{err.instance}` is not allowed here",
                did_you_mean(err.instance, err.validator_value), None)
    if v == "type":
        want = err.validator_value
        want = " or ".join(w for w in want if w != "null") if isinstance(want, list) else want
        return f"expected {want}, got {json.dumps(err.instance)}", "", None
    if v == "required":
        return err.message.replace("'", "`"), "", None
    return err.message, "", None


def build_spec(doc: Located) -> Spec:
    """Validate a merged document and turn it into a :class:`Spec`."""
    if not isinstance(doc.data, dict):
        raise SpecError(Problem(doc.where(()), "a spec must be a mapping of keys to values"))
    full, row_validator = _validators()
    problems = _schema_problems(full, doc.data, doc.where, skip=_in_row)
    structural = ("stages", "head", "patch", "defaults", "input")
    if any(p.location.path.startswith(structural) or not p.location.path for p in problems):
        raise SpecError(_ordered(problems))
    data = doc.data
    if "stages" not in data:
        problems.append(Problem(doc.where(()), "missing `stages`", "a spec needs a stage table"))
        raise SpecError(_ordered(problems))

    defaults = data.get("defaults", {}) or {}
    sections = {}
    for section in ("stages", "head"):
        sections[section] = _section_rows(data.get(section) or [], section, doc, problems)
    for i, patch in enumerate(data.get("patch", []) or []):
        _apply_patch(patch, i, sections["stages"], doc, problems)
    rows = {s: [] for s in sections}
    for section, raw_rows in sections.items():
        for index, (fields, locs, row_loc) in enumerate(raw_rows):
            row = _check_row(fields, locs, row_loc, defaults, doc, section, index,
                             row_validator, problems)
            if row is not None:
                rows[section].append(row)
    if not data.get("schedule"):
        for row in rows["stages"]:
            if row.fields.get("c", 0) is None:
                problems.append(Problem(row.where("c"), "`c` is blank but the spec has no "
                                        "`schedule` to fill it", "give `c`, or add a "
                                        "`schedule: {kind: linear, start, end}`"))
    if not rows["stages"] and not problems:
        problems.append(Problem(doc.where(("stages",)), "the stage table has no rows"))
    if problems:
        raise SpecError(_ordered(problems))
    inp = data.get("input", {}) or {}
    name = data.get("name") or Path(doc.file).stem
    return Spec(name=name, stages=tuple(rows["stages"]), head=tuple(rows["head"]),
                resolution=inp.get("resolution", 224), channels=inp.get("channels", 3),
                classes=data.get("classes", 1000), width=float(data.get("width", 1.0)),
                divisor=data.get("divisor", 8), description=data.get("description", ""),
                source=data.get("source", ""), file=doc.file, schedule=data.get("schedule"),
                locations={k: doc.where((k,)) for k in data})


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Problems in file order (file, line, column), duplicates dropped."""
    seen, out = set(), []
    for p in sorted(problems, key=lambda p: (p.location.file, p.location.line or 0,
                                             p.location.column or 0)):
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def _section_rows(value, section, doc: Located, problems):
    """[(fields, {field: Location}, row Location)] for a list or a table section."""
    out = []
    if isinstance(value, list):
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                problems.append(Problem(doc.where((section, i), f"{section}[{i}]"),
                                        f"a row must be a mapping like {{block: conv, c: 16}},"
                                        f" got {type(row).__name__}",
                                        "or write the section as a table: columns + rows"))
                continue
            row = {k: v for k, v in row.items() if v is not None}  # `~` = not given
            locs = {k: doc.where((section, i, k), f"{section}[{i}].{k}") for k in row}
            out.append((row, locs, doc.where((section, i), f"{section}[{i}]")))
        return out
    columns = value["columns"]
    for i, cells in enumerate(value["rows"]):
        row_loc = doc.where((section, "rows", i), f"{section}[{i}]")
        if len(cells) != len(columns):
            problems.append(Problem(row_loc, f"row has {len(cells)} cells but there are "
                                    f"{len(columns)} columns ({', '.join(columns)})",
                                    "write `-` for a cell that does not apply"))
            continue
        fields, locs = {}, {}
        for j, (col, cell) in enumerate(zip(columns, cells)):
            if cell == "-" or cell is None:
                continue
            fields[col] = cell
            locs[col] = doc.where((section, "rows", i, j), f"{section}[{i}].{col}")
        out.append((fields, locs, row_loc))
    return out


def _apply_patch(patch, i, rows, doc, problems):
    where = doc.where(("patch", i))
    targets = patch.get("rows")
    targets = [targets] if isinstance(targets, int) else targets
    block = patch.get("block")
    hit = 0
    for index, (fields, locs, _) in enumerate(rows):
        if targets is not None and index not in targets:
            continue
        if block is not None and str(fields.get("block", "")).lower() != block.lower():
            continue
        hit += 1
        for k, v in patch["set"].items():
            fields[k] = v
            locs[k] = doc.where(("patch", i, "set", k), f"patch[{i}].set.{k}")
    if targets is not None and any(t >= len(rows) for t in targets):
        problems.append(Problem(where, f"patch names a row beyond the {len(rows)} stage rows"))
    elif not hit:
        problems.append(Problem(where, "patch matches no row"))


def _check_row(fields, locs, row_loc, defaults, doc, section, index, row_validator, problems):
    n_before = len(problems)

    def where(path, display=None):
        key = path[0] if path else None
        return locs.get(key, row_loc) if key else row_loc

    problems.extend(_schema_problems(row_validator, fields, where))
    if len(problems) > n_before:
        return None
    for key, value in fields.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(locs.get(key, row_loc), f"{value} is not a finite number"))
    try:
        block = BLOCKS.get(fields["block"])
    except UnknownBlock as e:
        problems.append(Problem(locs.get("block", row_loc), f"unknown block `{e.name}`", e.hint))
        return None
    for key in fields:
        if key not in block.fields and key != "block":
            problems.append(Problem(locs.get(key, row_loc),
                                    f"block `{block.name}` does not take `{key}`",
                                    "it takes " + ", ".join(sorted(block.fields))))
    resolved = {}
    for key, default in block.fields.items():
        if key in fields:
            resolved[key] = fields[key]
        elif key in defaults and defaults[key] is not None:
            resolved[key] = defaults[key]
            locs.setdefault(key, doc.where(("defaults", key)))
        elif default is REQUIRED:
            if not any(key in group for group in block.one_of):
                problems.append(Problem(row_loc, f"block `{block.name}` needs `{key}`"))
        else:
            resolved[key] = default
    if section == "head" and "n" in fields:
        problems.append(Problem(locs.get("n", row_loc), "`n` (repeats) applies to stage rows "
                                "only", "write the head entry once per layer"))
    for group in block.one_of:
        given = [k for k in group if resolved.get(k) not in (None, REQUIRED)]
        if len(given) != 1:
            problems.append(Problem(row_loc, f"block `{block.name}` needs exactly one of "
                                    + ", ".join(f"`{k}`" for k in group)
                                    + (f", got {len(given)}" if given else "")))
    if "nl" in resolved and resolved["nl"] is not None:
        canonical, hint = nonlinearity(resolved["nl"])
        if canonical is None:
            problems.append(Problem(locs.get("nl", row_loc),
                                    f"unknown nonlinearity `{resolved['nl']}`", hint))
        resolved["nl"] = canonical
    if block.check and len(problems) == n_before:
        for key, message, hint in block.check(resolved):
            problems.append(Problem(locs.get(key, row_loc), message, hint))
    if len(problems) > n_before:
        return None
    resolved = {k: v for k, v in resolved.items() if v is not REQUIRED}
    return Row(block.name, resolved, section, index, row_loc, dict(locs))


__all__ = ["load", "loads", "build_spec", "schema", "format_path", "resolve_path", "Location"]
