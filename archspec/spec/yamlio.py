"""Safe, bounded YAML reading that remembers where every value came from.

The document is composed (not constructed) with PyYAML's safe loader (libyaml's parser when
PyYAML has it, see :func:`_compose`), then turned into
plain dicts, lists and scalars while recording a :class:`Location` for every path.
Duplicate keys, non-string keys, tags that construct objects, oversized documents, deep
nesting and alias bombs are all refused with a located :class:`SpecError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import Location, Problem, SpecError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 100_000

Path_ = tuple  # a document path: keys and list indices


@dataclass
class Located:
    """A parsed document plus the source location of each path in it."""

    data: object
    file: str
    marks: dict = field(default_factory=dict)  # path tuple -> (line, column)

    def where(self, path: Path_, display: str | None = None) -> Location:
        """Location of ``path``, or of its nearest recorded ancestor."""
        for cut in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:cut]))
            if mark is not None:
                return Location(mark[0], mark[1], mark[2], display or format_path(path))
        return Location(self.file, None, None, display or format_path(path))


def format_path(path: Path_) -> str:
    """``('stages', 3, 's')`` -> ``stages[3].s``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def read_yaml(path: str | Path) -> Located:
    """Read one YAML file safely; raise SpecError with a location on any problem."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(Problem(Location(name), "file not found")) from None
    except IsADirectoryError:
        raise SpecError(Problem(Location(name), "is a directory, not a spec file")) from None
    except OSError as e:
        raise SpecError(Problem(Location(name), f"cannot read: {e.strerror}")) from None
    return parse_yaml(raw, name)


def _yaml_hint(message: str) -> str:
    """What to do about one of PyYAML's messages."""
    if "\\t" in message or "\t" in message or "tab" in message:
        return "YAML indents with spaces, not tabs"
    if "block end" in message or "mapping values are not allowed" in message:
        return ("check the indentation: the keys of one mapping and the items of one list "
                "start in the same column; a value with ': ' in it needs quotes")
    return ""


def parse_yaml(raw: bytes | str, name: str = "<spec>") -> Located:
    """Parse YAML text (bytes must be UTF-8) into a :class:`Located` document."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise SpecError(Problem(Location(name), f"file is {len(raw):,} bytes; the limit "
                                    f"is {MAX_BYTES:,}", "a spec is a short table"))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
            raise SpecError(Problem(Location(name, line, col), "not valid UTF-8 text",
                                    "save the file as UTF-8")) from None
    else:
        text = raw
    if len(text) > MAX_BYTES:
        raise SpecError(Problem(Location(name), f"document is longer than {MAX_BYTES:,} chars"))
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        node = _compose(text, name)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = (e.problem or e.context or "malformed YAML").strip()
        hint = _yaml_hint(msg)
        problem = Problem(Location(name, line, col), f"malformed YAML: {msg}", hint)
        raise SpecError(problem) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise SpecError(Problem(Location(name, line, col), "the character "
                                f"U+{_code(e.character):04X} is not allowed in YAML",
                                "remove it")) from None
    except yaml.YAMLError as e:
        raise SpecError(Problem(Location(name, 1, 1), f"malformed YAML: {e}")) from None
    doc = Located(None, name)
    if node is None:
        raise SpecError(Problem(Location(name, 1, 1), "the file is empty",
                                "a spec needs at least `name` and `stages`"))
    doc.data = _convert(node, (), doc, [0], yaml.constructor.SafeConstructor())
    return doc


def _compose(text: str, name: str):
    """The document's node tree: libyaml's parser when PyYAML has it (about ten times
    faster), else PyYAML's own. The two disagree on a few characters (libyaml takes tabs
    after values and in flow collections, `?` inside flow scalars, a byte-order mark at
    the start of any line; a lone surrogate cannot even reach it), so a document with
    any of them goes to PyYAML's parser, and so does one libyaml refuses: values, marks
    and errors are PyYAML's either way. Neither composer may recurse through a document
    nested thousands deep: libyaml refuses one past 1,000 levels since 0.2.6 (PyYAML's
    wheels carry 0.2.6), an older libyaml's composer would overflow the C stack, so with
    one its events, read in a loop, refuse a document nested past twice ``MAX_DEPTH``
    first (0.6 ms for a spec); PyYAML's composer raises RecursionError."""
    if _CLOADER is not None and not _python_only(text):
        deep = _too_deep(text) if _UNBOUNDED else None
        if deep is not None:
            raise SpecError(Problem(Location(name, deep.line + 1, deep.column + 1),
                                    f"nesting deeper than {MAX_DEPTH} levels"))
        try:
            return yaml.compose(text, Loader=_CLOADER)
        except yaml.YAMLError:
            pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError(Problem(Location(name), f"nesting deeper than {MAX_DEPTH} "
                                "levels")) from None


def _python_only(text: str) -> bool:
    """Whether ``text`` has a character the two parsers read differently (no regex: its
    compilation alone would cost a cold `archspec cost` 1.7 ms)."""
    if "\t" in text or "?" in text:
        return True
    if text.isascii():
        return False
    return (any(c in text for c in "\ufeff\x85\u2028\u2029")
            or any("\ud800" <= c <= "\udfff" for c in text))


def _too_deep(text: str):
    """The mark of the first collection nested deeper than twice ``MAX_DEPTH`` (None if
    none, or if libyaml refuses the document: its error is PyYAML's to word)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_CLOADER):
            if isinstance(event, _STARTS):
                depth += 1
                if depth > 2 * MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, _ENDS):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


_CLOADER = getattr(yaml, "CSafeLoader", None)


def _libyaml_unbounded() -> bool:
    """Whether the libyaml behind PyYAML predates its nesting limit (0.2.6)."""
    try:
        from yaml import _yaml

        return tuple(_yaml.get_version()) < (0, 2, 6)
    except (ImportError, AttributeError, TypeError):
        return True


_UNBOUNDED = _CLOADER is not None and _libyaml_unbounded()
_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _code(character) -> int:
    return character if isinstance(character, int) else ord(character)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _convert(node, path, doc: Located, counter: list[int], ctor):
    counter[0] += 1
    here = (doc.file, node.start_mark.line + 1, node.start_mark.column + 1)
    if counter[0] > MAX_NODES:
        raise SpecError(Problem(Location(*here, format_path(path)),
                                f"document expands to more than {MAX_NODES:,} values",
                                "aliases that expand this much are refused"))
    if len(path) > MAX_DEPTH:
        raise SpecError(Problem(Location(*here, format_path(path)),
                                f"nesting deeper than {MAX_DEPTH} levels"))
    doc.marks[path] = here
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise SpecError(Problem(Location(*here, format_path(path)),
                                f"unsupported YAML tag {node.tag!r}",
                                "specs hold plain numbers, words, lists and mappings"))
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                mark = key_node.start_mark
                raise SpecError(Problem(Location(doc.file, mark.line + 1, mark.column + 1,
                                                 format_path(path)),
                                        "YAML merge keys (`<<`) are not supported",
                                        "use `defaults:`, `extends:` or `patch:`"))
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(Problem(Location(*here, format_path(path)),
                                        "mapping keys must be plain words"))
            key = _scalar(key_node, path, doc, ctor)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                loc = Location(doc.file, key_node.start_mark.line + 1,
                               key_node.start_mark.column + 1, format_path(path + (key,)))
                raise SpecError(Problem(loc, f"duplicate key `{key}`",
                                        "each key may appear once in a mapping"))
            out[key] = _convert(value_node, path + (key,), doc, counter, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, path + (i,), doc, counter, ctor) for i, v in enumerate(node.value)]
    return _scalar(node, path, doc, ctor)


def _scalar(node, path, doc: Located, ctor):
    try:
        value = ctor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as e:
        mark = node.start_mark
        raise SpecError(Problem(Location(doc.file, mark.line + 1, mark.column + 1,
                                         format_path(path)),
                                f"unsupported YAML tag {node.tag!r}",
                                "specs hold plain numbers, words, lists and mappings")) from e
    if not isinstance(value, (str, int, float, bool, type(None))):
        mark = node.start_mark
        raise SpecError(Problem(Location(doc.file, mark.line + 1, mark.column + 1,
                                         format_path(path)),
                                f"unsupported value of type {type(value).__name__}",
                                "use a number, a word or true/false"))
    return value
