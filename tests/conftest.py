import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archspec" / "specs"


@pytest.fixture(scope="session", autouse=True)
def _validation_cache(tmp_path_factory):
    """The tests' own validation cache (spec/validcache.py), not the user's; commands run
    in subprocesses inherit it."""
    import os

    os.environ["ARCHSPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("archspec-cache"))


@pytest.fixture
def write(tmp_path):
    """Write a spec text to a file in tmp_path and return its path."""

    def _write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


def run_cli(*args, **kw):
    import subprocess

    return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kw)
