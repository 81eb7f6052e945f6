import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "archspec" / "specs"


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
