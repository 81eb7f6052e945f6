"""Error types and their exit codes.

Every problem a user can cause is an :class:`ArchspecError`; the CLI prints its one-line
``str()`` and exits with ``exit_code``. See docs/errors.md for the list.
"""
from __future__ import annotations

import contextvars
import difflib
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a value sits: file, 1-based line and column, and its path in the document."""

    file: str = "<spec>"
    line: int | None = None
    column: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.path}" if self.path else where


@dataclass(frozen=True)
class Problem:
    """One problem in a spec: where, what, and how to fix it."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ArchspecError(Exception):
    """Base class: a clear, user-facing error. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class SpecError(ArchspecError):
    """One or more problems in a spec file; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CompileError(ArchspecError):
    """A graph pass failed; the message names the pass."""


class BackendError(ArchspecError):
    """A backend is unknown, missing its dependencies, or failed to lower a graph."""


class BudgetExceeded(ArchspecError):
    """A --budget constraint was exceeded."""

    exit_code = 1


def did_you_mean(word, choices) -> str:
    """A hint naming the closest known choice, or listing them when none is close."""
    close = close_match(word, choices)
    if close is not None:
        return f"did you mean `{close}`?"
    return "known: " + ", ".join(sorted(set(map(str, choices))))


def close_match(word, choices) -> str | None:
    """The known choice closest to ``word``: the same word in another case, one letter
    swapped with its neighbour, added, dropped or changed (``ri`` -> ``ir``), the one
    choice it starts or ends (``epsilon`` -> ``eps``), else difflib's best match above
    0.7; None when nothing is close (``schema`` is not ``head``)."""
    by_lower = {str(c).lower(): str(c) for c in sorted(set(map(str, choices)))}
    low = str(word).lower()
    if low in by_lower:
        return by_lower[low]
    near = [c for c in by_lower if len(low) > 1 and _one_edit_apart(low, c)]
    if near:
        return by_lower[max(near, key=lambda c: difflib.SequenceMatcher(None, low, c).ratio())]
    prefixed = [c for c in by_lower if min(len(c), len(low)) >= 3
                and (c.startswith(low) or low.startswith(c))]  # eps / epsilon
    if len(prefixed) == 1:
        return by_lower[prefixed[0]]
    close = difflib.get_close_matches(low, list(by_lower), n=1, cutoff=0.7)
    return by_lower[close[0]] if close else None


def _one_edit_apart(a: str, b: str) -> bool:
    """True when one insertion, deletion, substitution or swap of neighbours turns a into b."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if len(a) == len(b):
        swapped = a[i + 1:i + 2] + a[i:i + 1] == b[i:i + 2] and a[i + 2:] == b[i + 2:]
        return swapped or a[i + 1:] == b[i + 1:]
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


# ---- overrides ----------------------------------------------------------------------------
_OVERRIDES_AS = contextvars.ContextVar("archspec_overrides_as", default="keyword")


def override_location(key: str) -> Location:
    """Where an override of ``key`` (width, resolution, classes) was given: the keyword
    ``key=`` of ``archspec.load`` / ``Spec.with_``, or the command-line option ``--key``
    inside :func:`overrides_are_options`."""
    if _OVERRIDES_AS.get() == "option":
        return Location("command line", path=f"--{key}")
    return Location("keyword argument", path=f"{key}=")


@contextmanager
def overrides_are_options():
    """Within this block, problems caused by overrides are blamed on command-line options
    (``--resolution``) rather than on keyword arguments (``resolution=``)."""
    token = _OVERRIDES_AS.set("option")
    try:
        yield
    finally:
        _OVERRIDES_AS.reset(token)
