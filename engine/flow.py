"""Which events can be the current `event` at each step of a stage playbook.

A stage starts with the event that brought the customer in; a `wait_for` makes the event it
took current, a task's `on_done` runs with `task.completed`. Load-time checks (engine.checks)
use this to check `event.data.X` against the events that can be current there, and lint
(engine.lint) to check what templates read; both follow the same flow, written here once.

The flow is an over-approximation: an event listed may not be possible, but an event left
out never is current there (so a check against the list never rejects a playbook that works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.model import CheckPromise, If, Task, WaitFor
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
    """One way the run can go through a step: into one of its branches, or on past it."""

    label: tuple[Any, ...]  # where its steps are under the step, () for going on past it
    steps: list[Any]
    start: frozenset[str] | None = None  # the events current as it starts; None: the step's own


_ON = Way((), [])  # on to the next step, with the event unchanged


def ways(step: Any) -> list[Way]:
    """Every way the run can take through `step`, with the event current as each starts."""
    if isinstance(step, WaitFor):
        taken = [Way((), [], frozenset(name for name in step.events if name not in step.on))]
        taken += [Way(("on", name), steps, frozenset({name})) for name, steps in step.on.items()]
        if step.timeout is not None:
            taken.append(Way(("on_timeout",), step.on_timeout))
        return taken
    if isinstance(step, Task) and (step.on_done or step.on_overdue):
        return [Way(("on_done",), step.on_done, frozenset({"task.completed"})),
                Way(("on_overdue",), step.on_overdue), _ON]
    if isinstance(step, If):
        return [Way(label, steps) for label, steps in step.branches()]  # an empty `else` goes on
    if isinstance(step, CheckPromise):
        # A promise never recorded for this customer runs neither branch.
        return [Way(label, steps) for label, steps in step.branches()] + [_ON]
    # The rest go on to the next step; after a goto or an end nothing runs, but the steps
    # written after one are still checked (and reported as never running) with the same events.
    return [_ON]


def event_flow(steps: list[Any], events: Events, visit: Visit, prefix: DataPath = ("steps",)) -> Events:
    """Visit every step in run order with the events current there; return the events after them."""
    for index, step in enumerate(steps):
        path = (*prefix, index)
        visit(step, path, events)
        after: Events = set()
        for way in ways(step):
            start = events if way.start is None else set(way.start)
            after = union(after, event_flow(way.steps, start, visit, (*path, *way.label)))
        events = after
    return events
