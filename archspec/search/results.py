"""What a search leaves in its output folder: the front as spec files (each checked to
cost what its trial recorded), every trial as trials.json and trials.csv, and front.png."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..fsutil import atomic_write_text
from .space import Space


def write_front(space: Space, base, rows: list[dict], front: list[int], out: Path) -> list:
    """One self-contained spec per front trial in ``out/front/``; each is loaded back and
    must give the parameters and MAdds its trial recorded."""
    from ..analysis.cost import totals
    from ..spec.loader import loads
    from .study import trial_name

    written = []
    by_number = {r["trial"]: r for r in rows}
    for number in front:
        row = by_number[number]
        values = {n: row[n] for n in space.names() if n in row}
        name = trial_name(base, number)
        text = space.text(base, values, name)
        t = totals(loads(text, name=f"{name}.yaml").compile())
        if (t.params, t.madds) != (row["params"], row["madds"]):
            raise RuntimeError(f"{name}: the written spec gives {t.params} params, "
                               f"{t.madds} MAdds; the trial recorded {row['params']}, "
                               f"{row['madds']}")
        path = out / "front" / f"{name}.yaml"
        atomic_write_text(path, text)
        written.append(str(path))
    return written


def write_tables(rows: list[dict], front: list[int], out: Path) -> list[str]:
    for row in rows:
        row["pareto"] = row["trial"] in front
    atomic_write_text(out / "trials.json", json.dumps(rows, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "trials.csv", buf.getvalue())
    return [str(out / "trials.json"), str(out / "trials.csv")]
