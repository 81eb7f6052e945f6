"""Specs are parsed with libyaml when PyYAML has it, else with PyYAML's own parser: the
values, the line/column marks and every error must not depend on which one ran."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from archspec.errors import SpecError
from archspec.spec import yamlio

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("specs/**/*.yaml"), *ROOT.glob("tests/**/*.yaml"),
                *ROOT.glob("examples/**/*.yaml")])
needs_libyaml = pytest.mark.skipif(getattr(yaml, "CSafeLoader", None) is None,
                                   reason="this PyYAML has no libyaml")


def typed(x):
    """``x`` with every value's type beside it (``1 == 1.0 == True`` otherwise)."""
    if isinstance(x, dict):
        return ("dict", [(k, typed(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [typed(v) for v in x])
    return (type(x).__name__, x)


def parsed(text, python_only: bool, monkeypatch):
    """(data, marks) or the SpecError's problems, parsed by one parser."""
    with monkeypatch.context() as m:
        if python_only:
            m.setattr(yamlio, "_CLOADER", None)
        try:
            doc = yamlio.parse_yaml(text, "doc.yaml")
        except SpecError as e:
            return [(p.location, p.message, p.hint) for p in e.problems]
        return typed(doc.data), doc.marks


@needs_libyaml
def test_libyaml_parses_the_documents(monkeypatch):
    used = []
    real = yaml.compose

    def compose(text, Loader):
        used.append(Loader)
        return real(text, Loader=Loader)

    monkeypatch.setattr(yaml, "compose", compose)
    yamlio.parse_yaml("name: x\nstages: []\n")
    assert used == [yaml.CSafeLoader]


@needs_libyaml
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_both_parsers_give_the_same_values_and_marks(path, monkeypatch):
    raw = path.read_bytes()
    fast = parsed(raw, False, monkeypatch)
    assert fast == parsed(raw, True, monkeypatch)


BAD = {
    "tab": "name: x\nstages:\n\t- {type: conv}\n",
    "indent": "name: x\n  stages: []\n",
    "unclosed": "name: 'x\nstages: []\n",
    "control": "name: x\x07\nstages: []\n",
    "duplicate": "name: x\nname: y\n",
    "tag": "name: !!python/object:os.system x\n",
    "flow": "stages: [1, 2\n",
    "non-ascii column": "name: \"héllo\"\nstages: [{type: conv, c: ]\n",
    "empty": "",
}


@needs_libyaml
@pytest.mark.parametrize("name", sorted(BAD))
def test_an_error_reads_and_is_placed_the_same_with_either_parser(name, monkeypatch):
    fast = parsed(BAD[name], False, monkeypatch)
    assert isinstance(fast, list) and fast, "the document should be refused"
    assert fast == parsed(BAD[name], True, monkeypatch)


VALID = {
    "crlf": "name: x\r\nstages:\r\n  - {type: conv, c: 16}\r\nwidth: 1.0\r\n",
    "lone cr": "name: x\rstages: []\rwidth: 0.5\r",
    "non-bmp": "name: \"\U0001F600 x\"\nstages: [{type: conv, c: 16, s: 2}]\n",
    "long key": "k" * 1024 + ": 1\nname: x\n",
    "markers": "%YAML 1.1\n---\nname: x\nstages: []\n...\n",
    "anchors": "base: &b {type: conv, c: 16}\nstages: [*b, *b]\nname: x\n",
    "merge": "base: &b {type: conv, c: 16}\nstages: [{<<: *b, s: 2}]\n",
    "scalars": "a: yes\nb: 1e3\nc: 0x1f\nd: .inf\ne: ~\nf: 2026-12-04\ng: '1'\nh: 1_000\n",
}


# libyaml takes these and PyYAML's parser does not, or reads them otherwise: they must
# read as PyYAML reads them, whichever parser is installed
DIVERGENT = {
    "tab after a value": "name: x\t\nstages: []\n",
    "tab inside a value": "name: x\ty\n",
    "tab in a flow list": "stages: [1,\t2]\n",
    "question mark in a flow scalar": "stages: [{note: why?}]\n",
    "byte-order mark after ---": "---\n\ufeffname: x\n",
    "line separator": "name: x\u2028y\n",
    "lone surrogate": "name: x\ud800\n",
}


@needs_libyaml
@pytest.mark.parametrize("text", [*VALID.values(), *DIVERGENT.values()],
                         ids=[*VALID, *DIVERGENT])
def test_valid_and_divergent_documents_read_as_pyyaml_reads_them(text, monkeypatch):
    fast = parsed(text, False, monkeypatch)
    assert fast == parsed(text, True, monkeypatch)


@pytest.mark.parametrize("unbounded", [False, True], ids=["libyaml 0.2.6", "older libyaml"])
def test_a_document_nested_thousands_deep_is_refused_not_crashed(unbounded):
    """libyaml's composer recurses in C (a stack overflow would kill the process), so
    run it in a child, as with this PyYAML's libyaml (it refuses 1,000 levels itself)
    and as with an older one (the events are read first)."""
    import subprocess
    import sys

    code = ("import sys\nfrom archspec.spec import yamlio\n"
            "from archspec.errors import SpecError\n"
            f"yamlio._UNBOUNDED = {unbounded} and yamlio._CLOADER is not None\n"
            "try:\n    yamlio.parse_yaml('name: x\\nstages: ' + '[' * 400000 + ']' * 400000)\n"
            "except SpecError as e:\n    print(e)\n    sys.exit(0)\nsys.exit(1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nesting deeper than 32 levels" in out.stdout


@needs_libyaml
def test_the_events_find_where_the_nesting_goes_too_deep(monkeypatch):
    monkeypatch.setattr(yamlio, "_UNBOUNDED", True)
    with pytest.raises(SpecError) as e:
        yamlio.parse_yaml("name: x\nstages: " + "[" * 70 + "]" * 70 + "\n", "deep.yaml")
    (p,) = e.value.problems
    assert (p.location.file, p.location.line, p.location.column) == ("deep.yaml", 2, 72)
    assert p.message == "nesting deeper than 32 levels"


@pytest.mark.parametrize("text", ["stages: " + "[" * 3000 + "]" * 3000,
                                  "stages:\n" + "- " * 3000 + "x\n"])
def test_the_python_parser_refuses_deep_nesting_too(text, monkeypatch):
    monkeypatch.setattr(yamlio, "_CLOADER", None)
    with pytest.raises(SpecError, match="nesting deeper than 32 levels"):
        yamlio.parse_yaml(text)
