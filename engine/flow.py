"""Which events can be the current `event` at each step of a stage playbook.

A stage starts with the event that brought the customer in; a `wait_for` makes the event it
took current, a task's `on_done` runs with `task.completed`. Load-time checks (engine.checks)
use this to check `event.data.X` against the events that can be current there, and lint
(engine.lint) to check what templates read; both follow the same flow, written here once,
on top of the control flow each step kind declares (`Step.ways`, engine.steps), which lint
and the stage flowchart (engine.graph) follow too.

The flow is an over-approximation: an event listed may not be possible, but an event left
out never is current there (so a check against the list never rejects a playbook that works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.walk import DataPath

# The events that can be current: a set of names, or None when it cannot be told (any event).
Events = set[str] | None
# Called for every step in run order with its data path and the events current there.
Visit = Callable[[Any, DataPath, Events], None]


def union(a: Events, b: Events) -> Events:
    """Events possible after one of two ways: None (any) absorbs."""
    if a is None or b is None:
        return None
    return a | b


@dataclass(frozen=True)
class Way:
    """One way the run can take through a step: into one of its branches, or on past it."""

    name: str  # then, elif, else, an event, timeout, done, overdue, kept, broken; "" to go on
    label: tuple[Any, ...] = ()  # where its steps are under the step; () to go on past it
    steps: list[Any] = field(default_factory=list)
    start: frozenset[str] | None = None  # the events current as it starts; None: the step's own


def always_leaves(steps: list[Any]) -> bool:
    """Whether running `steps` never reaches the step after them (every path ends in goto/end)."""
    return any(leaves(step) for step in steps)


def leaves(step: Any) -> bool:
    """Whether every way through `step` leaves the stage."""
    return all(always_leaves(way.steps) for way in step.ways())


def event_flow(steps: list[Any], events: Events, visit: Visit, prefix: DataPath = ("steps",)) -> Events:
    """Visit every step in run order with the events current there; return the events after them."""
    for index, step in enumerate(steps):
        path = (*prefix, index)
        visit(step, path, events)
        after: Events = events if step.keeps_event() else set()
        for way in step.ways():
            start = events if way.start is None else set(way.start)
            after = union(after, event_flow(way.steps, start, visit, (*path, *way.label)))
        events = after
    return events
