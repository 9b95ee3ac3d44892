"""Load errors as values: each says where (`path:line:column`) and what, in an author's words."""

from __future__ import annotations

from typing import Any

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class PlaybookError:
    """One mistake in a lifecycle, a stage playbook or a template; line and column are 1-based."""

    path: str
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        # One error, one line: a quoted value may hold a newline or a control character.
        if not self.message.isprintable():
            object.__setattr__(self, "message", _one_line(self.message))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PlaybookLoadError(Exception):
    """Every error found while loading a lifecycle, reported together so one run fixes many.

    `partial` is what did load (an `engine.project.Project`), when the lifecycle file itself
    did: a stage none of whose own files has an error can still run (`Project.sound_bundle`)."""

    def __init__(self, errors: Iterable[PlaybookError], partial: Any = None) -> None:
        self.errors: list[PlaybookError] = list(errors)
        self.partial = partial
        super().__init__("\n".join(str(error) for error in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def suggest(name: object, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a candidate is close to `name`, else an empty string."""
    if not isinstance(name, str):
        return ""
    options = sorted({c for c in candidates if isinstance(c, str)})
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not match:
        # Case slips ('Email' for 'email') are common and difflib scores them low.
        lowered = [c for c in options if c.lower() == name.lower()]
        match = lowered[:1]
    return f" (did you mean '{match[0]}'?)" if match else ""


def describe_value(value: object) -> str:
    """A value as an author would name it: `text 'abc'`, `number 3`, `a list`."""
    from datetime import date

    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text '{shown}'"
    if isinstance(value, date):
        return f"date {value.isoformat()}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
