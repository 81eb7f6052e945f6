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


def parsed(text, python_only: bool, monkeypatch):
    """(data, marks) or the SpecError's problems, parsed by one parser."""
    with monkeypatch.context() as m:
        if python_only:
            m.setattr(yamlio, "_CLOADER", None)
        try:
            doc = yamlio.parse_yaml(text, "doc.yaml")
        except SpecError as e:
            return [(p.location, p.message, p.hint) for p in e.problems]
        return doc.data, doc.marks


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
