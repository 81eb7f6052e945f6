"""Every figure of every shipped spec equals the table written before the vocabulary
refactor (tests/figures.py writes it; regenerate only for an intended change of figures,
and say why in the commit)."""
import json

import pytest

import figures


@pytest.fixture(scope="module")
def now():
    return figures.table()


def test_every_shipped_spec_keeps_its_figures(now):
    before = json.loads(figures.TABLE.read_text())
    assert sorted(now) == sorted(before), "shipped specs added or removed: regenerate"
    for key in before:
        got = json.loads(json.dumps(now[key]))  # tuples -> lists, as stored
        for field, value in before[key].items():
            assert got[field] == value, f"{key}: {field} changed"
