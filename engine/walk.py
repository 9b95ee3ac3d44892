"""Walk the step tree of a playbook: every step with its path, branches included.

The one walker every analysis uses (checks, lint, graph, the interpreter's resume). The
tree's shape comes from the step models: each kind with nested steps lists them in its
`branches()` method, so a new kind declares its own branches and every walk follows them.

Two spellings of a step's place: the run-time path, a string such as `3.then.0` (action
ids, timelines, the resume position), and the data path, a tuple such as
("steps", 3, "then", 0) that places an error at its YAML node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

DataPath = tuple[Any, ...]


def branches(step: Any) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """(label, steps) for every non-empty nested step list of a step, e.g. (("elif", 0, "then"), [...])."""
    found = getattr(step, "branches", None)
    return [(label, steps) for label, steps in found() if steps] if found is not None else []


def children(step: Any) -> Iterator[tuple[str, list[Any]]]:
    """(relative run-time path, steps) for every nested step list of a step, e.g. `elif.0.then`."""
    for label, steps in branches(step):
        yield ".".join(str(part) for part in label), steps


_WALKS: dict[int, tuple[list[Any], list[tuple[Any, str]]]] = {}


def walk_steps(steps: list[Any], prefix: str = "") -> Iterator[tuple[Any, str]]:
    """Every step, depth first, with its run-time path such as `3` or `3.then.0`.

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


def step_tree(steps: list[Any], prefix: DataPath = ("steps",),
              parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, DataPath, tuple[Any, ...]]]:
    """Every step, depth first, with its data path and the steps it is nested in (outermost first)."""
    for index, step in enumerate(steps):
        path = (*prefix, index)
        yield step, path, parents
        for label, nested in branches(step):
            yield from step_tree(nested, (*path, *label), (*parents, step))


def step_paths(steps: list[Any], prefix: DataPath = ("steps",)) -> Iterator[tuple[Any, DataPath]]:
    """Every step, depth first, with its data path as written in YAML (`elif`, `else`, `on`)."""
    for step, path, _ in step_tree(steps, prefix):
        yield step, path


def step_lists(steps: list[Any], prefix: DataPath = ("steps",)) -> Iterator[tuple[list[Any], DataPath]]:
    """The playbook's step list and every nested one, each with its data path."""
    yield steps, prefix
    for step, path, _ in step_tree(steps, prefix):
        for label, nested in branches(step):
            yield nested, (*path, *label)


def step_key(step: Any, path: str) -> str:
    """The name a step goes by in action ids and timelines: its id, else its path."""
    return step.id or f"{step.kind}@{path}"
