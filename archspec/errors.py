"""Error types and their exit codes.

Every problem a user can cause is an :class:`ArchspecError`; the CLI prints its one-line
``str()`` and exits with ``exit_code``. See docs/errors.md for the list.
"""
from __future__ import annotations

import difflib
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


def did_you_mean(word: str, choices) -> str:
    """A hint naming the closest known choice, or listing them when none is close."""
    choices = sorted(set(map(str, choices)))
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return "known: " + ", ".join(choices)
