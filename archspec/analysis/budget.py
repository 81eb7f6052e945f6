"""Budgets: ``"madds<=220M,params<=5.5M"`` checked against a cost report's totals."""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from ..errors import ArchspecError, BudgetExceeded, did_you_mean

FIGURES = ("params", "madds", "buffers", "elementwise", "mem_bytes")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_TERM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmgb]?)\s*$",
                   re.IGNORECASE)


class BudgetSyntaxError(ArchspecError):
    """A --budget string that cannot be parsed."""


@dataclass(frozen=True)
class Constraint:
    figure: str
    op: str
    limit: float
    text: str

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)


def parse_budget(text: str, figures=FIGURES) -> list[Constraint]:
    """Constraints from ``"madds<=220M,params<=5.5M"``; ``figures``: the names allowed."""
    out = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        m = _TERM.match(term)
        if not m:
            raise BudgetSyntaxError(f"--budget: cannot read {term!r} "
                                    "(write e.g. madds<=220M,params<=5.5M)")
        figure, op, number, suffix = m.groups()
        figure = figure.lower()
        if figure not in figures:
            raise BudgetSyntaxError(f"--budget: unknown figure {figure!r} "
                                    f"({did_you_mean(figure, figures)})")
        out.append(Constraint(figure, op, float(number) * _SUFFIX[suffix.lower()], term))
    if not out:
        raise BudgetSyntaxError("--budget: empty budget")
    return out


def check_budget(totals, constraints: list[Constraint], label: str = "") -> None:
    """Raise BudgetExceeded naming every figure that breaks its constraint."""
    failed = [f"{c.figure} = {getattr(totals, c.figure):,} breaks {c.text}"
              for c in constraints if not c.holds(getattr(totals, c.figure))]
    if failed:
        prefix = f"{label}: " if label else ""
        raise BudgetExceeded(prefix + "over budget: " + "; ".join(failed))
