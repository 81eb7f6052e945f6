"""What a search optimises: cost figures computed from the compiled graph (params, madds,
elementwise, peak_bytes), latency_ms predicted from a latency profile, and ``accuracy``
from an accuracy proxy (:mod:`.proxies`); either a Pareto front over several of them or
the single MnasNet / MobileNetV3 reward ACC x (LAT / TAR)^w."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ArchspecError

COST = ("params", "madds", "elementwise", "peak_bytes")
MINIMIZED = (*COST, "latency_ms")
MAXIMIZED = ("accuracy", "reward")
MNAS_W = -0.07   # MnasNet's soft constraint; MobileNetV3 uses -0.15 for its small models


@dataclass(frozen=True)
class Objectives:
    """Names and directions; ``target_ms`` set means the reward is the single objective."""

    minimize: tuple[str, ...] = ()
    maximize: tuple[str, ...] = ()
    target_ms: float | None = None
    w: float = MNAS_W

    @property
    def names(self) -> list[str]:
        return ["reward"] if self.target_ms else [*self.minimize, *self.maximize]

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.target_ms else \
            ["minimize"] * len(self.minimize) + ["maximize"] * len(self.maximize)

    def needed(self) -> set[str]:
        """The figures to compute for each candidate."""
        need = {"params", "madds", *self.minimize, *self.maximize}
        return need | {"latency_ms", "accuracy"} if self.target_ms else need

    def values(self, figures: dict) -> list[float]:
        if self.target_ms:
            return [reward(figures["accuracy"], figures["latency_ms"], self.target_ms, self.w)]
        return [float(figures[n]) for n in (*self.minimize, *self.maximize)]


def reward(accuracy: float, latency_ms: float, target_ms: float, w: float = MNAS_W) -> float:
    """ACC x (LAT / TAR)^w (MnasNet eq. 2 with alpha = beta = w)."""
    return accuracy * (latency_ms / target_ms) ** w


def parse(minimize: str, maximize: str, *, profile: bool, proxy: bool,
          target_ms: float | None, w: float) -> Objectives:
    """The ``--minimize`` / ``--maximize`` lists checked against what is available."""
    mins = tuple(m.strip() for m in minimize.split(",") if m.strip())
    maxs = tuple(m.strip() for m in maximize.split(",") if m.strip())
    if target_ms is not None:
        if not (profile and proxy):
            raise ArchspecError("--target-ms: the reward ACC x (LAT/TAR)^w needs a latency "
                                "--profile and an accuracy --proxy")
        return Objectives(target_ms=target_ms, w=w)
    known_min = [*COST, *(["latency_ms"] if profile else [])]
    known_max = ["accuracy"] if proxy else []
    for name, known, flag in [*((m, known_min, "--minimize") for m in mins),
                              *((m, known_max, "--maximize") for m in maxs)]:
        if name not in known:
            raise ArchspecError(
                f"{flag}: cannot use {name!r} (available: {', '.join(known) or 'none'}; "
                "latency_ms needs --profile, accuracy needs --proxy)")
    if not mins and not maxs:
        raise ArchspecError("--minimize/--maximize: name at least one objective")
    return Objectives(mins, maxs)


@lru_cache(maxsize=4)
def _profile(path: str):
    from ..latency.profile import load, warn

    profile = load(path)
    warn(profile, path)
    return profile


def latency_ms(graph, profile_path) -> float:
    """Predicted latency (ms) of a compiled graph on the profile (a file: the commands
    locate a shipped profile's name once, commands.search.check_inputs)."""
    profile = _profile(str(Path(profile_path).resolve()))
    return profile.model.predict(profile.kernels(graph), graph).total_ms


def figures(spec, names, *, profile=None, proxy=None, text: str = "") -> dict:
    """The figures ``names`` of one spec (the cost ones always, they are cheap); ``text``
    is the spec as YAML, for a proxy that trains it."""
    from ..analysis.cost import totals

    graph = spec.compile()
    t = totals(graph)
    out = {"params": t.params, "madds": t.madds, "elementwise": t.elementwise}
    if "peak_bytes" in names:
        from ..analysis.memory import op_by_op

        out["peak_bytes"] = op_by_op(graph).peak_bytes
    if "latency_ms" in names:
        out["latency_ms"] = round(latency_ms(graph, profile), 4)
    if "accuracy" in names:
        out["accuracy"] = round(proxy(spec, text), 6)
    return out
