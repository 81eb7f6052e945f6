"""The profile file (JSON, schema ``archspec.latency-profile/1``): the fitted model plus
the setup it was measured on (device, the measuring libraries' versions, settings), the
environment it was fitted in (``fitted_with``: the fitting libraries' versions, Python,
CPU), the calibration's own noise and its link to the raw measurements
(``calibration.raw_sha256``, seeds, counts). Using a profile on another setup still
predicts, with a warning.

Reading a profile imports neither numpy nor onnxruntime (``archspec cost --profile``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchspecError
from .model import LatencyModel

SCHEMA = "archspec.latency-profile/1"


@dataclass
class Profile:
    backend: str
    settings: dict              # threads, batch, nchwc_block, session options
    machine: dict               # archspec.bench.machine()
    versions: dict              # archspec.bench.versions()
    model: LatencyModel
    calibration: dict = field(default_factory=dict)
    created: str = ""
    fitted_with: dict = field(default_factory=dict)   # calibrate.fit_environment()

    @property
    def nchwc_block(self) -> int:
        return int(self.settings.get("nchwc_block", 0))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created": self.created, "backend": self.backend,
                "settings": self.settings, "machine": self.machine, "versions": self.versions,
                "fitted_with": self.fitted_with, "calibration": self.calibration,
                "model": self.model.to_dict()}

    def save(self, path) -> None:
        from ..fsutil import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")


def load(path) -> Profile:
    path = Path(path)
    if not path.is_file():
        raise ArchspecError(f"{path}: profile not found (make one with `archspec calibrate`)")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArchspecError(f"{path}: not a readable profile ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ArchspecError(f"{path}: not a latency profile (schema {SCHEMA} expected)")
    try:
        model = LatencyModel.from_dict(d["model"])
    except (KeyError, ValueError, TypeError) as e:
        raise ArchspecError(f"{path}: broken profile model ({e})") from None
    return Profile(d["backend"], d["settings"], d["machine"], d["versions"], model,
                   d.get("calibration", {}), d.get("created", ""), d.get("fitted_with", {}))


def setup_warnings(profile: Profile, machine: dict, versions: dict,
                   threads: int | None = None) -> list[str]:
    """Why this profile may not fit this setup (empty when it does)."""
    out = []
    for key in ("cpu", "logical_cores", "hostname_hash"):
        if profile.machine.get(key) != machine.get(key):
            out.append(f"profile measured on {key}={profile.machine.get(key)!r}, this "
                       f"machine has {machine.get(key)!r}")
    for package in ("onnxruntime", "numpy"):
        if profile.versions.get(package) != versions.get(package):
            out.append(f"profile measured with {package} {profile.versions.get(package)}, "
                       f"this setup has {versions.get(package)}")
    if threads is not None and threads != profile.settings.get("threads"):
        out.append(f"profile measured with {profile.settings.get('threads')} thread(s), "
                   f"asked for {threads}")
    return out


def current_warnings(profile: Profile, threads: int | None = None) -> list[str]:
    """:func:`setup_warnings` against this machine (reads versions from metadata only)."""
    from ..bench import machine, versions

    return setup_warnings(profile, machine(), versions(), threads)
