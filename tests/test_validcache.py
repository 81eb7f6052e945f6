"""The validation cache (spec/validcache.py): a document that passed is not checked
against the JSON Schema again, anything else always is, and the figures never change."""
import pytest

import archspec
from archspec.errors import SpecError
from archspec.spec import loader

GOOD = "name: g\ninput: {resolution: 32}\nstages:\n  - {block: conv, c: 8, s: 2}\n"


def _no_schema(monkeypatch):
    def refuse(generation):
        raise AssertionError("the JSON Schema pass ran")

    monkeypatch.setattr(loader, "_validators", refuse)


def test_a_document_that_passed_skips_the_schema_pass(write, monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path / "cache"))
    first = archspec.load(write(GOOD))
    _no_schema(monkeypatch)
    again = archspec.load(write(GOOD))
    assert again == first and again.cost().totals == first.cost().totals
    with pytest.raises(AssertionError, match="JSON Schema pass ran"):  # one character changed
        archspec.load(write(GOOD.replace("c: 8", "c: 9")))


def test_a_document_with_a_problem_is_never_remembered(write, monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(tmp_path / "cache"))
    bad = write(GOOD.replace("c: 8", "c: 8, zz: 1"))
    for _ in range(2):
        with pytest.raises(SpecError, match="does not take `zz`"):
            archspec.load(bad)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


@pytest.mark.parametrize("setting", ["", "unwritable"])
def test_off_or_unwritable_cache_still_validates(write, monkeypatch, tmp_path, setting):
    if setting:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        setting = str(blocker)
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", setting)
    path = write(GOOD)
    archspec.load(path)
    _no_schema(monkeypatch)
    with pytest.raises(AssertionError, match="JSON Schema pass ran"):
        archspec.load(path)
