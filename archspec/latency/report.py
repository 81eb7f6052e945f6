"""The latency column of ``archspec cost --profile``: predicted ms per cost row and in
total. Pure Python (no numpy, no onnxruntime): the cost command stays light."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ArchspecError
from .profile import Profile, load, locate, warn


@dataclass
class LatencyColumn:
    per_row: dict       # row name -> ms (a kernel is charged to the row of its first node)
    total_ms: float
    overhead_ms: float

    def apply(self, doc: dict) -> dict:
        """``doc`` (CostReport.to_dict) with ``latency_ms`` in every row and the totals."""
        for row in doc["rows"]:
            row["latency_ms"] = round(self.per_row.get(row["name"], 0.0), 4)
        doc["totals"]["latency_ms"] = round(self.total_ms, 4)
        doc["latency"] = {"total_ms": round(self.total_ms, 4),
                          "overhead_ms": round(self.overhead_ms, 4)}
        return doc

    def column(self):
        """The ``ms`` column for the cost table (report.tables.ExtraColumn)."""
        from ..report.tables import ExtraColumn

        return ExtraColumn("ms", {k: f"{v:.3f}" for k, v in self.per_row.items()},
                           f"{self.total_ms:.3f}")

    def line(self) -> str:
        return (f"predicted latency {self.total_ms:.3f} ms (of which per-model overhead "
                f"{self.overhead_ms:.3f} ms)")


def profile_for(path) -> Profile:
    """The profile at ``path`` (resolved), loaded and checked against this machine once
    per process (:func:`_profile`)."""
    return _profile(locate(path).resolve())


@lru_cache(maxsize=8)
def _profile(path: Path):
    """The profile at ``path``, checked against this machine once per process (diff
    predicts two networks with one profile): the probe runs only for a profile with a
    fingerprint and no recent probe result, and imports onnxruntime only then."""
    profile = load(path)
    warn(profile, path.name)
    return profile


def batch_mismatch(profile: Profile, batch: int | None, name) -> None:
    """An error (exit 2) when asked for another batch than the profile's: a profile
    predicts the batch it was calibrated with, and no other (``batch`` None: the
    profile's)."""
    if batch is not None and batch != profile.batch:
        raise ArchspecError(
            f"profile {name} predicts batch {profile.batch}, not batch {batch}: calibrate a "
            f"profile for it with `archspec calibrate --batch {batch} -o PROFILE.json` "
            f"(or ask for batch {profile.batch})")


def latency_column(graph, per: str, profile_path, *, batch: int | None = None,
                   dtype: str = "fp32") -> LatencyColumn:
    """The predicted latency of ``graph`` per ``per`` row, for the profile's batch
    (``batch``: the batch asked for; another than the profile's is an error)."""
    profile = profile_for(profile_path)
    batch_mismatch(profile, batch, Path(profile_path).name)
    if dtype != profile.settings.get("dtype", "fp32"):
        print(f"archspec: warning: the profile predicts "
              f"{profile.settings.get('dtype', 'fp32')}, not {dtype}", file=sys.stderr)
    pred = profile.model.predict(profile.kernels(graph), graph)
    return LatencyColumn(pred.per(per), pred.total_ms, pred.overhead_ms)
