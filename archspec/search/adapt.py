"""NetAdapt as MobileNetV3 uses it (Howard et al., 2019, section 4.2): from a seed
network, each step proposes variants that cut predicted latency by at least ``delta``
times the current latency, scores each by the accuracy proxy's change over the latency's
change, and keeps the best, until the latency target is met.

Proposals (section 4.2's two kinds): shrink one row's expansion (``t`` or ``exp``), or
shrink the output channels ``c`` of every row that shares a bottleneck size at once (the
rows a residual chain ties together). Each proposal takes the smallest cut, in steps of
the spec's channel divisor or 1/8 of the expansion, that gains ``delta``. The path is a
list of row edits, so every step is written as a self-contained spec
(:meth:`archspec.search.space.Space.text`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchspecError
from .objectives import latency_ms
from .space import Space, Variable

EXPANSIONS = ("t", "exp")


@dataclass(frozen=True)
class Knob:
    """One thing a proposal shrinks: ``field`` on ``rows``."""

    field: str
    rows: tuple[int, ...]

    @property
    def name(self) -> str:
        rows = ",".join(map(str, self.rows))
        return f"stages[{rows}].{self.field}"


def knobs(spec) -> list[Knob]:
    """Every row's expansion (not a t = 1 row), and ``c`` per group of consecutive rows of
    one width whose later rows keep it (their residuals tie the group)."""
    rows = [r for r in spec.stages if r.section == "stages"]
    out = [Knob(f, (r.index,)) for r in rows for f in EXPANSIONS
           if isinstance(r.fields.get(f), (int, float)) and r.fields[f] > 1]
    groups: list[list] = []
    for r in rows:
        c = r.fields.get("c")
        if not isinstance(c, int):
            continue
        if groups and groups[-1][0].fields.get("c") == c and r.fields.get("s", 1) == 1:
            groups[-1].append(r)
        else:
            groups.append([r])
    out += [Knob("c", tuple(r.index for r in g)) for g in groups]
    return out


def _smaller(value, field: str, divisor: int) -> list:
    """Candidate smaller values, nearest first."""
    if field == "c":
        return list(range(value - divisor, divisor - 1, -divisor))
    step = max(value / 8, 0.125) if field == "t" else max(divisor, round(value / 8))
    out, v = [], value
    while v - step >= 1:
        v = round(v - step, 4) if field == "t" else int(v - step)
        out.append(v)
    return out


@dataclass
class Adapter:
    base: object
    profile: str
    proxy: object
    delta: float = 0.01

    def space(self, edits: dict[Knob, object]) -> tuple[Space, dict]:
        variables = tuple(Variable(k.name, k.field, rows=k.rows, values=(v,))
                          for k, v in edits.items())
        return Space(variables), {k.name: v for k, v in edits.items()}

    def evaluate(self, edits: dict, name: str) -> dict:
        space, values = self.space(edits)
        spec = space.apply(self.base, values)
        graph = spec.compile()
        text = space.text(self.base, values, name)
        return {"latency_ms": round(latency_ms(graph, self.profile), 4),
                "accuracy": round(self.proxy(spec, text), 6), "text": text}

    def propose(self, edits: dict, current: dict, name: str) -> list[dict]:
        """For each knob: the nearest smaller setting that cuts latency by delta."""
        space, values = self.space(edits)
        spec = space.apply(self.base, values)
        need = current["latency_ms"] * (1 - self.delta)
        out = []
        for knob in knobs(spec):
            row = next(r for r in spec.stages if r.index == knob.rows[0])
            value = row.fields[knob.field]
            for smaller in _smaller(value, knob.field, spec.divisor):
                trial = {**edits, knob: smaller}
                try:
                    ms = self._latency(trial)
                except ArchspecError:
                    break
                if ms <= need:
                    result = self.evaluate(trial, name)
                    out.append({"knob": knob, "edits": trial,
                                "change": f"{knob.name} {value:g}->{smaller:g}", **result})
                    break
        return out

    def _latency(self, edits: dict) -> float:
        space, values = self.space(edits)
        return latency_ms(space.apply(self.base, values).compile(), self.profile)


def adapt(adapter: Adapter, target_ms: float, max_steps: int = 50, progress=None) -> dict:
    """Run NetAdapt; the log (start, every step's proposals and the one kept) and the
    spec text of every kept step."""
    edits: dict = {}
    current = adapter.evaluate(edits, f"{adapter.base.name}_adapt0")
    log = {"spec": adapter.base.name, "target_ms": target_ms, "delta": adapter.delta,
           "start": {**_public(current), "change": "seed"}, "steps": []}
    texts = [current["text"]]
    step = 0
    while current["latency_ms"] > target_ms and step < max_steps:
        step += 1
        proposals = adapter.propose(edits, current, f"{adapter.base.name}_adapt{step}")
        if not proposals:
            log["stopped"] = "no proposal cuts latency by delta any more"
            break
        for p in proposals:
            p["score"] = (p["accuracy"] - current["accuracy"]) / \
                (current["latency_ms"] - p["latency_ms"])
        best = max(proposals, key=lambda p: p["score"])
        log["steps"].append({"step": step, "proposals": [_public(p) for p in proposals],
                             "kept": _public(best)})
        edits, current = best["edits"], best
        texts.append(best["text"])
        if progress:
            progress(current["latency_ms"])
    log["reached"] = current["latency_ms"] <= target_ms
    log["final"] = _public(current)
    return {"log": log, "texts": texts}


def _public(p: dict) -> dict:
    keep = ("change", "latency_ms", "accuracy", "score")
    return {k: (round(p[k], 6) if isinstance(p[k], float) else p[k]) for k in keep if k in p}
