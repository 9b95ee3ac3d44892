"""Walk the step tree of a playbook: every step with its path, branches included."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

# The fields of a step kind that hold nested step lists, in the order they are shown.
NESTED = ("then", "elif_", "else_", "on_done", "on_overdue", "on_timeout", "on", "on_kept", "on_broken")


@lru_cache(maxsize=64)
def _nested_fields(kind: type) -> tuple[str, ...]:
    # Asking a pydantic model for a field it does not have is slow (it raises inside
    # __getattr__); look the fields up once per step class instead.
    fields = getattr(kind, "model_fields", None)
    return tuple(name for name in NESTED if fields is None or name in fields)


def children(step: Any) -> Iterator[tuple[str, list[Any]]]:
    """(relative path, steps) for every nested step list of a step."""
    for name in _nested_fields(type(step)):
        value = getattr(step, name, None)
        if not value:
            continue
        label = name.rstrip("_")
        if name == "elif_":
            for index, branch in enumerate(value):
                yield f"elif.{index}.then", branch.then
        elif name == "on":
            for event, steps in value.items():
                yield f"on.{event}", steps
        else:
            yield label, value


_WALKS: dict[int, tuple[list[Any], list[tuple[Any, str]]]] = {}


def walk_steps(steps: list[Any], prefix: str = "") -> Iterator[tuple[Any, str]]:
    """Every step, depth first, with its path such as `3` or `3.then.0`.

    A playbook's steps do not change once loaded, and stage entries walk them again and
    again (events waited for, templates used): the walk of a whole list is kept.
    """
    if prefix:
        yield from _walk(steps, prefix)
        return
    known = _WALKS.get(id(steps))
    if known is None or known[0] is not steps:
        if len(_WALKS) > 256:
            _WALKS.clear()
        known = _WALKS[id(steps)] = (steps, list(_walk(steps, "")))
    yield from known[1]


def _walk(steps: list[Any], prefix: str) -> Iterator[tuple[Any, str]]:
    for index, step in enumerate(steps):
        path = f"{prefix}{index}"
        yield step, path
        for label, nested in children(step):
            yield from _walk(nested, f"{path}.{label}.")


def step_key(step: Any, path: str) -> str:
    """The name a step goes by in action ids and timelines: its id, else its path."""
    return step.id or f"{step.kind}@{path}"
