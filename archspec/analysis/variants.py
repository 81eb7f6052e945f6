"""A sweep's variant of a spec (width, resolution, expansion, alpha, channel-schedule
end) and the spec it makes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..spec.model import Spec


@dataclass(frozen=True)
class Variant:
    width: float | None = None
    resolution: int | None = None
    t: float | None = None
    alpha: float | None = None
    schedule_end: float | None = None

    def label(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in dataclasses.asdict(self).items()
                         if v is not None)


def row_changes(fields: dict, v: Variant) -> dict:
    """The settings of ``v`` that apply to a row with these fields: the expansion to
    expanding rows only (t = 1 rows stay 1), alpha to rows that have one."""
    changes = {}
    for key, value in (("t", v.t), ("alpha", v.alpha)):
        # expansion applies to expanding rows only (t = 1 rows stay 1)
        if value is not None and fields.get(key) is not None and \
                not (key == "t" and fields[key] == 1):
            changes[key] = value
    return changes


def vary(spec: Spec, v: Variant) -> Spec:
    """The spec with the variant's free parameters applied."""
    spec = spec.with_(width=v.width, resolution=v.resolution)
    if v.t is not None or v.alpha is not None:
        rows = tuple(dataclasses.replace(row, fields={**row.fields, **row_changes(row.fields, v)})
                     for row in spec.stages)
        spec = dataclasses.replace(spec, stages=rows)
    if v.schedule_end is not None and spec.schedule:
        spec = dataclasses.replace(spec, schedule={**spec.schedule, "end": v.schedule_end})
    return spec
