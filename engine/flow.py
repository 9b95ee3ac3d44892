"""Which events can be the current `event` at each step of a stage playbook.

A stage starts with the event that brought the customer in; a `wait_for` makes the event it
took current, a task's `on_done` runs with `task.completed`. Load-time checks (engine.checks)
use this to check `event.data.X` against the events that can be current there, and lint
(engine.lint) to check what templates read; both follow the same flow, written here once,
on top of the control flow of each step kind (`ways`), which lint and the stage flowchart
(engine.graph) follow too.

The flow is an over-approximation: an event listed may not be possible, but an event left
out never is current there (so a check against the list never rejects a playbook that works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.model import CheckPromise, End, Goto, If, Split, Task, WaitFor
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


def ways(step: Any) -> list[Way]:
    """The ways the run can take through `step`, in the order written; none after a goto or an end.

    The control flow of each step kind, written once: lint's unreachable steps, the stage
    flowchart (engine.graph) and the event flow below follow it. (A check_promise of a promise
    never recorded also goes on past it, as a failure in the timeline; only the event flow
    counts that way.)
    """
    if isinstance(step, (Goto, End)):
        return []
    if isinstance(step, If):
        return [Way("then", ("then",), step.then),
                *(Way("elif", ("elif", index, "then"), branch.then) for index, branch in enumerate(step.elif_)),
                Way("else", ("else",), step.else_)]  # an empty `else` goes on
    if isinstance(step, WaitFor):
        plain = [name for name in step.events if name not in step.on]  # no steps of their own: go on
        taken = [Way(", ".join(plain), (), [], frozenset(plain))] if plain else []
        taken += [Way(name, ("on", name), steps, frozenset({name})) for name, steps in step.on.items()]
        if step.timeout is not None:
            taken.append(Way("timeout", ("on_timeout",), step.on_timeout))
        return taken
    if isinstance(step, Task) and (step.on_done or step.on_overdue):
        taken = [Way("done", ("on_done",), step.on_done, frozenset({"task.completed"}))]
        if step.due is not None:
            taken.append(Way("overdue", ("on_overdue",), step.on_overdue))
        return taken
    if isinstance(step, CheckPromise):
        return [Way("kept", ("on_kept",), step.on_kept), Way("broken", ("on_broken",), step.on_broken)]
    if isinstance(step, Split):  # every branch by its name; the hold-out goes on
        return [*(Way(variant.name, ("variants", index, "steps"), variant.steps)
                  for index, variant in enumerate(step.variants)),
                *([Way("holdout")] if step.holdout is not None else [])]
    return [Way("")]


def always_leaves(steps: list[Any]) -> bool:
    """Whether running `steps` never reaches the step after them (every path ends in goto/end)."""
    return any(leaves(step) for step in steps)


def leaves(step: Any) -> bool:
    """Whether every way through `step` leaves the stage."""
    return all(always_leaves(way.steps) for way in ways(step))


def _event_may_stay(step: Any) -> bool:
    """Whether the current event can still be current after `step` whichever way it went.

    After a goto or an end nothing runs, but the steps written there are checked with the
    same events. A check_promise of a promise never recorded for this customer runs neither
    branch. After a task that waits for its outcome the checks have always allowed it too.
    """
    return isinstance(step, (Goto, End, CheckPromise)) or isinstance(step, Task) and bool(step.on_done or step.on_overdue)


def event_flow(steps: list[Any], events: Events, visit: Visit, prefix: DataPath = ("steps",)) -> Events:
    """Visit every step in run order with the events current there; return the events after them."""
    for index, step in enumerate(steps):
        path = (*prefix, index)
        visit(step, path, events)
        after: Events = events if _event_may_stay(step) else set()
        for way in ways(step):
            start = events if way.start is None else set(way.start)
            after = union(after, event_flow(way.steps, start, visit, (*path, *way.label)))
        events = after
    return events
