"""Who caused a compile failure: an override (``--resolution 7``, ``resolution=7``), a
`patch:` entry, or else the row that failed.

Found by counterfactuals: compile again without a suspect; when the failure goes away,
the suspect caused it. Only failing compilations pay for this."""
from __future__ import annotations

from collections.abc import Callable

from ..errors import Location, Problem, SpecError
from .model import Spec
from .yamlio import Located


class RowFailure(Exception):
    """A row that cannot be lowered: the row, what went wrong, and a hint."""

    def __init__(self, row, message: str, hint: str = ""):
        super().__init__(message)
        self.row, self.message, self.hint = row, message, hint

    def same_as(self, other) -> bool:
        return isinstance(other, RowFailure) and other.message == self.message and \
            (other.row.section, other.row.index) == (self.row.section, self.row.index)


Compiler = Callable[[Spec], "RowFailure | None"]  # a spec -> its row failure, or None


def blame(spec: Spec, failure: RowFailure, failure_of: Compiler) -> list[Problem]:
    """The problems to report for ``failure``, located where its cause was written."""
    if spec.overrides:
        base = spec.without_overrides()
        base_failure = failure_of(base)
        if base_failure is None:
            return _override_problems(spec, failure, failure_of)
        spec, failure = base, base_failure  # the file fails by itself: report that
    patches = _patch_culprits(spec, failure, failure_of)
    if patches:
        where = spec.document.where
        return [Problem(where(("patch", i)), f"this patch makes {_row_text(failure)} fail: "
                        f"{failure.message}", failure.hint) for i in patches]
    return [Problem(failure.row.location, failure.message, failure.hint)]


def _override_problems(spec: Spec, failure: RowFailure, failure_of: Compiler):
    keys = list(spec.overrides)
    alone = [k for k in keys if failure_of(spec.without_overrides(set(keys) - {k}))]
    culprits = alone or keys
    problems = []
    for key in culprits:
        others = [_override_text(spec, k) for k in culprits if k != key]
        together = f" (together with {', '.join(others)})" if others else ""
        own = _own_value(spec, key)
        problems.append(Problem(spec.overrides[key][0],
                                f"{getattr(spec, key):g}{together} makes "
                                f"{_row_text(failure)} fail: {failure.message}",
                                f"{spec.name} compiles with its own {key}, {own}"))
    return problems


def _own_value(spec: Spec, key: str) -> str:
    """The spec's own value of an overridden key ([H, W] for a non-square input)."""
    value = spec.overrides[key][1]
    width = getattr(spec, "own_input_width", None) if key == "resolution" else None
    return f"[{value:g}, {width:g}]" if width else f"{value:g}"


def _override_text(spec: Spec, key: str) -> str:
    name = spec.overrides[key][0].path
    return f"{name}{'' if name.endswith('=') else ' '}{getattr(spec, key):g}"


def _patch_culprits(spec: Spec, failure: RowFailure, failure_of: Compiler) -> list[int]:
    """Indices of the `patch:` entries without which ``failure`` goes away."""
    doc = spec.document
    patches = doc.data.get("patch") if isinstance(doc, Located) else None
    if not patches or not _caused_by(doc, set(range(len(patches))), failure, failure_of):
        return []
    alone = [i for i in range(len(patches)) if _caused_by(doc, {i}, failure, failure_of)]
    return alone or list(range(len(patches)))


def _caused_by(doc: Located, drop: set, failure: RowFailure, failure_of: Compiler) -> bool:
    """True when the document without the patches ``drop`` loads and the row that failed
    no longer fails (a failure of the same row with another message is not "gone": the
    row fails without those patches too)."""
    from .loader import build_spec

    kept = [p for i, p in enumerate(doc.data["patch"]) if i not in drop]
    try:
        spec = build_spec(Located({**doc.data, "patch": kept}, doc.file, doc.marks))
    except SpecError:
        return False
    other = failure_of(spec)
    return other is None or \
        (other.row.section, other.row.index) != (failure.row.section, failure.row.index)


def _row_text(failure: RowFailure) -> str:
    loc: Location = failure.row.location
    where = f"{loc.file}:{loc.line}:{loc.column or 1}" if loc.line is not None else loc.file
    return f"{loc.path} ({where})"
