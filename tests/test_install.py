"""The install path is reproducible: constraints.txt pins every requirement that
pyproject.toml declares (core and the test extra) at a version inside its range, and CI
runs the README's test command verbatim."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402
from packaging.version import Version  # noqa: E402


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


@pytest.mark.parametrize("extras", [(), ("test",), ("latency",), ("train",), ("onnx",),
                                    ("search",)])
def test_every_requirement_is_pinned_inside_its_range(extras):
    pins = _pins()
    for req in _requirements(*extras):
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} ({'/'.join(extras) or 'core'}) is not pinned"
        # a local label (torch 2.13.0+cpu) satisfies ==2.13.0
        assert req.specifier.contains(Version(pin.public), prereleases=True), \
            f"constraints.txt pins {req.name}=={pin}, outside pyproject's {req.specifier}"


def test_ci_runs_the_readme_commands_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the README starts with exactly two set-up commands"
    assert all("-c constraints.txt" in line for line in block)
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci, ".ci/run must run the README's test command verbatim"
