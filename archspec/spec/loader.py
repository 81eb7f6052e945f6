"""Load a spec: read YAML safely, resolve ``extends``, validate against the JSON Schema,
turn paper-style tables into rows, apply defaults and patches, and check semantics.
All problems found are raised together as one :class:`SpecError`."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ..blocks.heads import HEAD_BLOCKS
from ..blocks.registry import BLOCKS, REQUIRED, UnknownBlock
from ..errors import Location, Problem, SpecError, close_match, did_you_mean
from . import fieldschema, validcache
from .model import Row, Spec, Tap
from ..vocab import nonlinearity
from .yamlio import Located, format_path, parse_yaml, read_yaml

MAX_EXTENDS_DEPTH = 16
NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"  # tap and head names (schema.json)
SHIPPED = Path(__file__).resolve().parent.parent / "specs"


def schema() -> dict:
    """The JSON Schema of spec files, with the fields of every block (plugins included)."""
    BLOCKS.load_all()
    return _schema(BLOCKS.generation)


@lru_cache(maxsize=4)
def _schema(generation: int) -> dict:
    """The schema with the fields of the blocks registered so far (``generation``)."""
    return fieldschema.build(BLOCKS.declarations())


@lru_cache(maxsize=4)
def _validators(generation: int):
    from jsonschema import Draft202012Validator

    full = _schema(generation)
    row = {**full["$defs"]["row"], "$defs": full["$defs"]}
    return Draft202012Validator(full), Draft202012Validator(row)


def _current() -> dict:
    return _schema(BLOCKS.generation)


@lru_cache(maxsize=4)
def _schema_text(generation: int) -> str:
    return json.dumps(_schema(generation), sort_keys=True)


def resolve_path(ref: str | Path) -> Path:
    """A path as given, or the name of a shipped spec (``mobilenetv2``)."""
    path = Path(ref)
    if not path.exists():
        for candidate in (SHIPPED / str(ref), SHIPPED / f"{ref}.yaml"):
            if candidate.is_file():
                return candidate
    return path


def _shipped_hint(given) -> str:
    """For a name that is neither a file nor a shipped spec: the closest shipped name."""
    close = close_match(Path(str(given)).stem, [p.stem for p in SHIPPED.glob("*.yaml")])
    return (f"did you mean `{close}`? " if close else "") + \
        "`archspec specs` lists the shipped specs"


def load(path: str | Path, *, width=None, resolution=None, classes=None) -> Spec:
    """Load and validate a spec file; CLI-style overrides are applied last."""
    given, path = path, resolve_path(path)
    if not path.exists():
        raise SpecError(Problem(Location(str(path)), "file not found", _shipped_hint(given)))
    doc = _resolve_extends(read_yaml(path), path, (path.resolve(),))
    spec = build_spec(doc)
    return spec.with_(width=width, resolution=resolution, classes=classes)


def loads(text: str, name: str = "<string>", base_dir: str | Path = ".") -> Spec:
    """Load a spec from YAML text; ``extends`` is resolved against ``base_dir``."""
    fake = Path(base_dir) / name
    spec = build_spec(_resolve_extends(parse_yaml(text, name), fake, ()))
    return replace(spec, text=text)


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


# ---- the vocabulary a document uses -------------------------------------------------------
def _names_used(data: dict) -> tuple[set, set]:
    """(block names, field names) the rows, defaults and patches of a document use, so the
    block plugins are looked for when one of them is not built in."""
    defaults = data.get("defaults")
    rows = [row for section in (data.get("stages"), data.get("head"), data.get("heads"))
            for row in _rows_as_mappings(section)]
    patches = [p for p in data.get("patch") if isinstance(p, dict)] \
        if isinstance(data.get("patch"), list) else []
    sets = [p["set"] for p in patches if isinstance(p.get("set"), dict)]
    blocks = [m.get("block") for m in (*rows, *patches)]
    fields = [k for m in (*rows, *sets, defaults if isinstance(defaults, dict) else {})
              for k in m]
    return ({b for b in blocks if isinstance(b, str)},
            {f for f in fields if isinstance(f, str) and f not in fieldschema.ROW_KEYS})


def _rows_as_mappings(section) -> list[dict]:
    """The rows of a list or table section as mappings (malformed ones skipped)."""
    if isinstance(section, list):
        return [row for row in section if isinstance(row, dict)]
    if not isinstance(section, dict) or not isinstance(section.get("columns"), list):
        return []
    columns = [c for c in section["columns"] if isinstance(c, str)]
    cells = [r for r in section.get("rows") or [] if isinstance(r, list)]
    return [dict(zip(columns, r)) for r in cells] or [dict.fromkeys(columns)]


# ---- validation ---------------------------------------------------------------------------
@dataclass
class _RawRow:
    """A row as written (patches applied): its fields, where each came from, where it is."""

    index: int
    fields: dict
    locs: dict
    where: Location
    incomplete: bool = False  # a column or default it uses was refused (and reported)


def build_spec(doc: Located) -> Spec:
    """Validate a merged document and turn it into a :class:`Spec`. Every problem found
    (schema, table, patch, semantics) is raised together in one :class:`SpecError`."""
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError(Problem(doc.where(()), "a spec must be a mapping of keys to values"))
    BLOCKS.require(*_names_used(data))
    marker = validcache.key(_schema_text(BLOCKS.generation), data)
    known = validcache.known_valid(marker)  # then the JSON Schema pass is skipped
    problems, refused = _document_problems(doc, schema=not known)
    if "stages" not in data:
        problems.append(Problem(doc.where(()), "missing `stages`", "a spec needs a stage table"))
    sections = {s: _section_rows(data.get(s), s, doc, problems, refused)
                for s in ("stages", "head", "heads")}
    for i, patch in _usable_patches(data, refused):
        _apply_patch(patch, i, sections["stages"], _row_count(data.get("stages")), doc,
                     problems)
    checker = _RowChecker(doc, *_usable_defaults(data, refused), problems,
                          None if known else _validators(BLOCKS.generation)[1])
    rows = {s: [row for raw in raws if (row := checker.check(raw, s)) is not None]
            for s, raws in sections.items() if s != "heads"}
    rows["heads"] = _head_rows(sections["heads"], replace(checker, defaults={}), doc,
                               problems)
    problems.extend(_blank_c_problems(rows["stages"], data))
    if not rows["stages"] and not problems:
        problems.append(Problem(doc.where(("stages",)), "the stage table has no rows"))
    if problems:
        raise SpecError(_ordered(problems))
    if not known:
        validcache.remember(marker)
    return _spec(doc, rows)


def _spec(doc: Located, rows: dict) -> Spec:
    data = doc.data
    inp = data.get("input", {}) or {}
    bn = data.get("bn", {}) or {}
    height, width = _size(inp.get("resolution", 224))
    return Spec(name=data.get("name") or Path(doc.file).stem, stages=tuple(rows["stages"]),
                head=tuple(rows["head"]), resolution=height,
                input_width=width if width != height else None,
                heads=tuple(rows["heads"]), taps=_taps(doc),
                channels=int(inp.get("channels", 3)), classes=int(data.get("classes", 1000)),
                width=float(data.get("width", 1.0)), divisor=int(data.get("divisor", 8)),
                bn_eps=float(bn.get("eps", 1e-5)), bn_momentum=float(bn.get("momentum", 0.1)),
                padding=data.get("padding", "symmetric"),
                description=data.get("description", ""), source=data.get("source", ""),
                file=doc.file, schedule=data.get("schedule"),
                locations={k: doc.where((k,)) for k in data}, document=doc)


def _size(value) -> tuple[int, int]:
    """(height, width) from `input.resolution`: an int (square) or [height, width]."""
    if isinstance(value, list):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _taps(doc: Located) -> tuple[Tap, ...]:
    """The `taps:` entries (name -> graph path); the compiler checks that each path exists."""
    taps = doc.data.get("taps") or {}
    return tuple(Tap(name, path, doc.where(("taps", name), f"taps.{name}"))
                 for name, path in taps.items())


def _document_problems(doc: Located, schema: bool = True) -> tuple[list[Problem], set]:
    """Problems outside the rows (schema unless ``schema`` is false, non-finite numbers)
    and the paths they refuse. Rows are left to :class:`_RowChecker`, which reports all of
    theirs."""
    bad = {path: Problem(doc.where(path), f"{value} is not a finite number")
           for path, value in _floats(doc.data, ())
           if not math.isfinite(value) and not _in_row(path)}
    problems, refused = list(bad.values()), set(bad)
    full = _validators(BLOCKS.generation)[0] if schema else None
    for path, problem in _schema_problems(full, doc.data, doc.where):
        if not _in_row(path) and path not in bad:
            problems.append(problem)
            refused.add(path)
    return problems, refused


def _floats(value, path: tuple):
    """(path, value) for every floating-point number in a document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _floats(item, (*path, i))
    elif isinstance(value, float):
        yield path, value


def _in_row(path: tuple) -> bool:
    """True inside one row of `stages`/`head` (list or table form): the row pass reports
    those problems, with the row's own paths (``stages[1].t``)."""
    if len(path) < 2 or path[0] not in ("stages", "head", "heads"):
        return False
    return isinstance(path[1], int) or (path[1] == "rows" and len(path) >= 3)


def _schema_problems(validator, data, where) -> list[tuple[tuple, Problem]]:
    """(path, problem) for each JSON Schema error, one per unknown key; the path ends at
    the offending key where there is one; none without a validator (a document known to
    pass, spec/validcache.py)."""
    if validator is None:
        return []
    from jsonschema.exceptions import best_match

    out = []
    for err in validator.iter_errors(data):
        while err.context:
            err = best_match(err.context)
        for message, hint, key in _describe(err):
            path = tuple(err.absolute_path) + ((key,) if key is not None else ())
            out.append((path, Problem(where(path), message, hint)))
    return out


def _describe(err) -> list[tuple[str, str, str | None]]:
    """[(message, hint, offending key or None)] for a jsonschema error."""
    v = err.validator
    if v == "additionalProperties":
        allowed = set(err.schema.get("properties", {}))
        return [(f"unknown key `{word}`", did_you_mean(word, allowed), word)
                for word in sorted(set(err.instance) - allowed)]
    if v == "enum" and err.validator_value == _current()["$defs"]["fieldname"]["enum"]:
        key = err.instance if "propertyNames" in err.schema_path else None
        return [(f"unknown field `{err.instance}`",
                 did_you_mean(err.instance, err.validator_value), key)]
    if v == "enum":
        return [(f"`{err.instance}` is not allowed here",
                 did_you_mean(err.instance, err.validator_value), None)]
    if v == "not" and err.validator_value.get("multipleOf") == 2:
        return [(f"kernel size must be odd, got {err.instance}", "with an odd k, padding "
                 "(k-1)/2 on each side keeps the feature map size", None)]
    if v == "type" and tuple(err.absolute_path) in (("stages",), ("head",)):
        return [(f"expected a list of rows or a table (columns + rows), got "
                 f"{json.dumps(err.instance)}", "see docs/spec.md, Sections", None)]
    if v == "uniqueItems":
        twice = sorted({str(x) for x in err.instance if err.instance.count(x) > 1})
        return [(f"{', '.join(f'`{x}`' for x in twice)} given more than once", "", None)]
    if v == "type":
        want = err.validator_value
        want = " or ".join(w for w in want if w != "null") if isinstance(want, list) else want
        return [(f"expected {want}, got {json.dumps(err.instance)}", "", None)]
    if v == "required":
        return [(err.message.replace("'", "`"), "", None)]
    if v == "pattern" and err.validator_value == NAME_PATTERN:
        return [(f"`{err.instance}` is not a name", "a name is letters, digits and _, not "
                 "starting with a digit (C4, low_level)", None)]
    return [(err.message, "", None)]


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Problems in file order (file, line, column), duplicates dropped."""
    seen, out = set(), []
    for p in sorted(problems, key=lambda p: (p.location.file, p.location.line or 0,
                                             p.location.column or 0)):
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


# ---- sections, defaults, patches ----------------------------------------------------------
def _section_rows(value, section: str, doc: Located, problems, refused) -> list[_RawRow]:
    """The rows of a list or table section; a section whose shape the schema refused
    (already reported) gives none."""
    if value is None or any(p in refused for p in
                            ((section,), (section, "columns"), (section, "rows"))):
        return []
    if isinstance(value, list):
        return [r for i, row in enumerate(value)
                if (r := _list_row(row, section, i, doc, problems)) is not None]
    if not isinstance(value, dict):
        return []
    bad_columns = {p[2] for p in refused if len(p) == 3 and p[:2] == (section, "columns")}
    return [r for i, cells in enumerate(value["rows"])
            if (r := _table_row(cells, value["columns"], bad_columns, section, i, doc,
                                problems)) is not None]


def _list_row(row, section, i, doc: Located, problems) -> _RawRow | None:
    where = doc.where((section, i), f"{section}[{i}]")
    if not isinstance(row, dict):
        problems.append(Problem(where, f"a row must be a mapping like {{block: conv, c: 16}}, "
                                f"got {type(row).__name__}",
                                "or write the section as a table: columns + rows"))
        return None
    row = {k: v for k, v in row.items() if v is not None}  # `~` = not given
    locs = {k: doc.where((section, i, k), f"{section}[{i}].{k}") for k in row}
    return _RawRow(i, row, locs, where)


def _table_row(cells, columns, bad_columns, section, i, doc: Located, problems):
    where = doc.where((section, "rows", i), f"{section}[{i}]")
    if not isinstance(cells, list):
        problems.append(Problem(where, f"a table row must be a list of cells, got "
                                f"{json.dumps(cells)}", "write it as [block, ...]"))
        return None
    if len(cells) != len(columns):
        problems.append(Problem(where, f"row has {len(cells)} cells but there are "
                                f"{len(columns)} columns ({', '.join(map(str, columns))})",
                                "write `-` for a cell that does not apply"))
        return None
    fields, locs = {}, {}
    for j, (col, cell) in enumerate(zip(columns, cells)):
        if cell == "-" or cell is None or j in bad_columns:
            continue
        fields[col] = cell
        locs[col] = doc.where((section, "rows", i, j), f"{section}[{i}].{col}")
    return _RawRow(i, fields, locs, where, incomplete=bool(bad_columns))


def _row_count(section) -> int:
    """How many rows a section has as written (list or table form)."""
    if isinstance(section, list):
        return len(section)
    rows = section.get("rows") if isinstance(section, dict) else None
    return len(rows) if isinstance(rows, list) else 0


def _usable_defaults(data: dict, refused) -> tuple[dict, set | None]:
    """(defaults to apply, names whose default was refused); None: the whole mapping was."""
    value = data.get("defaults") or {}
    if ("defaults",) in refused or not isinstance(value, dict):
        return {}, None
    bad = {p[1] for p in refused if len(p) >= 2 and p[0] == "defaults"}
    good = {k: v for k, v in value.items() if k not in bad}
    return {**good, **_whole_numbers(good)}, bad


def _usable_patches(data: dict, refused) -> list[tuple[int, dict]]:
    """(index, patch) for each patch entry the schema accepted (the others are reported)."""
    value = data.get("patch") or []
    if ("patch",) in refused or not isinstance(value, list):
        return []
    return [(i, p) for i, p in enumerate(value)
            if not any(r[:2] == ("patch", i) for r in refused)]


def _apply_patch(patch: dict, i: int, rows: list[_RawRow], count: int, doc: Located,
                 problems) -> None:
    """Set the patch's fields on the rows it names (by index and/or block, aliases
    resolved); a patch naming no row, or a row or block that does not exist, is a problem."""
    where = doc.where(("patch", i))
    targets = patch.get("rows")
    if targets is not None:  # the schema took integral floats (3.0) as integers
        targets = [int(t) for t in (targets if isinstance(targets, list) else [targets])]
    beyond = sorted(t for t in targets or () if t >= count)
    if beyond:
        problems.append(Problem(where, f"patch names row {beyond[0]}, beyond the {count} "
                                "stage rows", f"rows are numbered 0..{count - 1}"))
        return
    block = _patch_block(patch, i, doc, problems)
    if block is False:
        return
    hit = [row for row in rows if (targets is None or row.index in targets)
           and (block is None or _canonical(row.fields.get("block")) == block)]
    if not hit and rows:
        problems.append(Problem(where, "patch matches no row", _no_match_hint(rows, targets)))
    for row in hit:
        for k, v in patch["set"].items():
            row.fields[k] = v
            row.locs[k] = doc.where(("patch", i, "set", k), f"patch[{i}].set.{k}")


def _patch_block(patch: dict, i: int, doc: Located, problems):
    """The canonical block a patch selects, None for any, False when the name is unknown."""
    name = patch.get("block")
    if name is None:
        return None
    canonical = _canonical(name)
    if canonical is None:
        problems.append(Problem(doc.where(("patch", i, "block")), f"unknown block `{name}`",
                                did_you_mean(name, BLOCKS.names())))
        return False
    return canonical


def _canonical(name) -> str | None:
    return BLOCKS.get(name).name if isinstance(name, str) and name in BLOCKS else None


def _no_match_hint(rows: list[_RawRow], targets) -> str:
    chosen = [r for r in rows if targets is None or r.index in targets]
    blocks = sorted({str(r.fields.get("block")) for r in chosen})
    where = f"rows {', '.join(map(str, targets))}" if targets is not None else "the stage rows"
    return f"{where} hold: {', '.join(blocks)}"


# ---- rows ---------------------------------------------------------------------------------
@dataclass
class _RowChecker:
    """Checks rows one by one against the schema and their block's declaration, resolving
    defaults; each problem goes to ``problems``."""

    doc: Located
    defaults: dict
    refused_defaults: set | None  # None: every default was refused
    problems: list
    row_validator: object  # None: the document is known to pass the schema

    def check(self, raw: _RawRow, section: str) -> Row | None:
        """The resolved row, or None when it has problems."""
        n_before = len(self.problems)
        block = self._block(raw)
        foreign = [k for k in raw.fields if block and k not in block.fields and k != "block"
                   and not (section == "heads" and k in fieldschema.ROW_KEYS)]
        for key in foreign:  # named with the block's own fields, not the schema's union
            close = close_match(key, block.fields)
            self._add(raw, key, f"block `{block.name}` does not take `{key}`",
                      (f"did you mean `{close}`? " if close else "")
                      + "it takes " + ", ".join(sorted(block.fields)))
        self._schema(raw, skip=foreign)
        self._section(raw, block, section)
        if block is None or len(self.problems) > n_before:
            return None
        if section != "stages" and "n" in raw.fields:
            self._add(raw, "n", "`n` (repeats) applies to stage rows only",
                      "write the head entry once per layer")
        raw.fields.update(_whole_numbers(raw.fields))
        resolved = self._resolve(raw, block)
        if resolved is not None:
            self._semantics(raw, block, resolved, n_before)
        if resolved is None or len(self.problems) > n_before:
            return None
        return Row(block.name, resolved, section, raw.index, raw.where, dict(raw.locs))

    def _section(self, raw: _RawRow, block, section: str) -> None:
        """Head blocks (docs/heads.md) belong in `heads`, and only they."""
        if block is None or (block.name in HEAD_BLOCKS) == (section == "heads"):
            return
        if section == "heads":
            self._add(raw, "block", f"`{block.name}` is not a head block",
                      "heads are " + ", ".join(f"`{h}`" for h in sorted(HEAD_BLOCKS))
                      + "; backbone layers go in `stages` or `head`")
        else:
            self._add(raw, "block", f"`{block.name}` is a head block: it reads named taps",
                      "write it under `heads:` with `from: [C4, C5]` (docs/heads.md)")

    def _add(self, raw: _RawRow, key, message: str, hint: str = "") -> None:
        self.problems.append(Problem(raw.locs.get(key, raw.where), message, hint))

    def _block(self, raw: _RawRow):
        """The row's registered block, or None (an unknown name is a problem)."""
        name = raw.fields.get("block")
        if not isinstance(name, str):
            return None  # the schema says what is wrong with it
        try:
            return BLOCKS.get(name)
        except UnknownBlock as e:
            self._add(raw, "block", f"unknown block `{e.name}`", e.hint)
            return None

    def _schema(self, raw: _RawRow, skip=()) -> None:
        """Non-finite numbers, then schema errors (each field once), leaving out the
        fields in ``skip`` (already reported)."""
        fields = {k: v for k, v in raw.fields.items() if k not in skip}
        bad = [k for k, v in fields.items() if isinstance(v, float) and not math.isfinite(v)]
        for key in bad:
            self._add(raw, key, f"{raw.fields[key]} is not a finite number")
        for path, problem in _schema_problems(self.row_validator, fields,
                                              lambda p: raw.locs.get(p[0], raw.where)
                                              if p else raw.where):
            if not (path and path[0] in bad):
                self.problems.append(problem)

    def _resolve(self, raw: _RawRow, block) -> dict | None:
        """Each field of the block: the row's value, else the spec's default, else the
        block's; None when a value it needs was refused (and reported) elsewhere."""
        resolved, incomplete = {}, raw.incomplete
        for key, default in block.fields.items():
            if key in raw.fields:
                resolved[key] = raw.fields[key]
            elif self.refused_defaults is None or key in self.refused_defaults:
                incomplete = True
            elif self.defaults.get(key) is not None:
                resolved[key] = self.defaults[key]
                raw.locs.setdefault(key, self.doc.where(("defaults", key)))
            elif default is not REQUIRED:
                resolved[key] = default
            elif not incomplete and not any(key in group for group in block.one_of):
                self._add(raw, None, f"block `{block.name}` needs `{key}`")
        return None if incomplete else resolved

    def _semantics(self, raw: _RawRow, block, resolved: dict, n_before: int) -> None:
        """Exclusive field groups, the nonlinearity's name, and (when the row has no
        other problem) the block's own checks."""
        for group in block.one_of:
            given = [k for k in group if resolved.get(k) is not None]
            if len(given) != 1:
                self._add(raw, None, f"block `{block.name}` needs exactly one of "
                          + ", ".join(f"`{k}`" for k in group)
                          + (f", got {len(given)}" if given else ""))
        if resolved.get("nl") is not None:
            canonical, hint = nonlinearity(resolved["nl"])
            if canonical is None:
                self._add(raw, "nl", f"unknown nonlinearity `{resolved['nl']}`", hint)
            resolved["nl"] = canonical
        if block.check and len(self.problems) == n_before:
            for key, message, hint in block.check(resolved):
                self._add(raw, key, message, hint)


def _head_rows(raws: list[_RawRow], checker: _RowChecker, doc: Located,
               problems: list) -> list[Row]:
    """The `heads` entries as rows, each with its inputs (`from`) and its name (`name`,
    default: its block's); two heads of one name are a problem."""
    out, seen = [], {}
    for raw in raws:
        row = checker.check(raw, "heads")
        if row is None:
            continue
        given = raw.fields.get("from")
        inputs = tuple([given] if isinstance(given, str) else given or ())
        label = raw.fields.get("name") or row.block
        if not inputs:
            problems.append(Problem(raw.where, f"head `{label}` reads no tap",
                                    "give `from: [C4, C5]` (names under `taps:` or C<k>)"))
        elif label in seen:
            problems.append(Problem(raw.locs.get("name", raw.where),
                                    f"two heads are named `{label}` (the other at line "
                                    f"{seen[label].line})", "give each a `name:`"))
        else:
            seen[label] = raw.where
            out.append(replace(row, inputs=inputs, label=label))
    return out


def _whole_numbers(fields: dict) -> dict:
    """Integer fields written as integral floats (``c: 16.0``, which the schema accepts as
    integers) turned into ints."""
    integral = _integer_fields()
    return {k: int(v) for k, v in fields.items() if k in integral and isinstance(v, float)}


def _integer_fields() -> frozenset:
    return _integer_names(BLOCKS.generation)


@lru_cache(maxsize=4)
def _integer_names(generation: int) -> frozenset:
    return fieldschema.integer_fields(BLOCKS.declarations().values())


def _blank_c_problems(rows: list[Row], data: dict) -> list[Problem]:
    """A blank `c` is filled by the `schedule`; without one it is a problem."""
    if data.get("schedule"):
        return []
    return [Problem(row.where("c"), "`c` is blank but the spec has no `schedule` to fill it",
                    "give `c`, or add a `schedule: {kind: linear, start, end}`")
            for row in rows if row.fields.get("c", 0) is None]


__all__ = ["load", "loads", "build_spec", "schema", "format_path", "resolve_path", "Location"]
