"""The load-time checks of each step kind, one function per kind.

`engine.checks` walks a stage playbook with the events that can be current at each step
(engine.flow) and calls the function of the step's kind here. A new step kind adds its
function to `STEP_CHECKS`; what a kind may reference (roles, templates, events, promises,
expressions) is checked through the `Playbook` context, which places each error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from engine.errors import suggest
from engine.model import (
    CheckPromise,
    End,
    EventSpec,
    Goto,
    If,
    Lifecycle,
    Promise,
    Send,
    Set,
    Split,
    Task,
    Wait,
    WaitFor,
)
from engine.promises import promise_type
from engine.walk import DataPath

Events = set[str] | None


class Playbook(Protocol):
    """What a step's checks see of the stage playbook they are in (engine.checks.PlaybookChecker)."""

    lifecycle: Lifecycle
    events: dict[str, EventSpec]  # every declared and built-in event
    promises: Any  # names recorded by `promise` steps (a dict name → about), None: unknown
    templates: set[str]
    templates_folder: str
    var_kinds: dict[str, str]
    gotos: list[tuple[str, Events]]  # (target, events at the goto), for `stage_events`

    def error(self, path: DataPath, message: str, key: bool = False) -> None: ...

    def expression(self, path: DataPath, source: str, events: Events,
                   expect: tuple[str, str] | None = None) -> None: ...

    def span(self, path: DataPath, value: Any, events: Events) -> None: ...

    def role(self, path: DataPath, role: str) -> None: ...

    def template(self, path: DataPath, name: str) -> None: ...

    def channel(self, path: DataPath, name: str) -> None: ...


def check_send(playbook: Playbook, step: Send, path: DataPath, events: Events) -> None:
    playbook.template((*path, "template"), step.template)
    playbook.channel((*path, "channel"), step.channel)
    if step.otherwise is not None:
        playbook.role((*path, "otherwise", "role"), step.otherwise.role)
        playbook.span((*path, "otherwise", "due"), step.otherwise.due, None)


def check_task(playbook: Playbook, step: Task, path: DataPath, events: Events) -> None:
    playbook.role((*path, "role"), step.role)
    playbook.span((*path, "due"), step.due, events)


def check_wait(playbook: Playbook, step: Wait, path: DataPath, events: Events) -> None:
    playbook.span((*path, "duration"), step.duration, events)
    if step.until is not None:
        playbook.expression((*path, "until"), step.until, events, ("timestamp", "'until'"))


def check_wait_for(playbook: Playbook, step: WaitFor, path: DataPath, events: Events) -> None:
    playbook.span((*path, "timeout"), step.timeout, events)
    seen: set[str] = set()
    for index, name in enumerate(step.events):
        if name in seen:
            playbook.error((*path, "events", index), f"event '{name}' is listed twice")
        seen.add(name)
        if name not in playbook.events:
            playbook.error((*path, "events", index), f"unknown event '{name}'{suggest(name, playbook.events)}")
    for name in step.on:
        if name not in step.events:
            playbook.error((*path, "on", name), f"'on' names event '{name}' that this wait_for does not "
                                                f"wait for{suggest(name, step.events)}", key=True)


def check_if(playbook: Playbook, step: If, path: DataPath, events: Events) -> None:
    playbook.expression((*path, "when"), step.when, events, ("bool", "a condition"))
    for index, branch in enumerate(step.elif_):
        playbook.expression((*path, "elif", index, "when"), branch.when, events, ("bool", "a condition"))


def check_set(playbook: Playbook, step: Set, path: DataPath, events: Events) -> None:
    facts = playbook.lifecycle.facts
    if step.fact is not None and step.fact not in facts:
        playbook.error((*path, "fact"), f"unknown fact '{step.fact}'{suggest(step.fact, facts)}")
    playbook.expression((*path, "value"), step.value, events, _set_type(playbook, step))


def _set_type(playbook: Playbook, step: Set) -> tuple[str, str] | None:
    """The type a `set` value must have: the fact's, or the var's (declared or first set)."""
    if step.fact is not None:
        spec = playbook.lifecycle.facts.get(step.fact)
        return (spec.type, f"fact '{step.fact}'") if spec else None
    assert step.var is not None
    return (playbook.var_kinds.get(step.var, "dyn"), f"var '{step.var}'")


def check_promise(playbook: Playbook, step: Promise, path: DataPath, events: Events) -> None:
    playbook.role((*path, "made_by"), step.made_by)
    kind = promise_type(step.about)
    playbook.expression((*path, "expected"), step.expected, events,
                        (kind, f"what a {step.about} promise expects") if kind else None)
    if step.tolerance is None:
        return
    if kind in ("timestamp", "duration") and not isinstance(step.tolerance, timedelta):
        playbook.error((*path, "tolerance"), f"a {step.about} promise needs a duration as tolerance, e.g. 2d")
    elif kind == "number" and isinstance(step.tolerance, timedelta):
        playbook.error((*path, "tolerance"), f"a {step.about} promise needs an amount as tolerance, e.g. 10")


def check_check_promise(playbook: Playbook, step: CheckPromise, path: DataPath, events: Events) -> None:
    promises = playbook.promises
    if promises is not None and step.promise not in promises:
        playbook.error((*path, "promise"), f"no 'promise' step records a promise named '{step.promise}'"
                                           f"{suggest(step.promise, promises)}")
    about = promises.get(step.promise) if isinstance(promises, dict) else None
    kind = promise_type(about) if about else None
    playbook.expression((*path, "actual"), step.actual, events,
                        (kind, f"what happened to a {about} promise") if kind else None)


def check_goto(playbook: Playbook, step: Goto, path: DataPath, events: Events) -> None:
    playbook.gotos.append((step.stage, events))
    stages = playbook.lifecycle.stages
    if step.stage not in stages:
        playbook.error((*path, "stage"), f"unknown stage '{step.stage}'{suggest(step.stage, stages)}")


def check_end(playbook: Playbook, step: End, path: DataPath, events: Events) -> None:
    """An `end` names nothing that could be unknown."""


def check_split(playbook: Playbook, step: Split, path: DataPath, events: Events) -> None:
    """Branch names once each (the hold-out is named 'holdout'), and at least two branches;
    positive weights are checked by the model."""
    seen: set[str] = set()
    for index, variant in enumerate(step.variants):
        if variant.name in seen:
            playbook.error((*path, "variants", index, "name"), f"branch '{variant.name}' is named twice")
        elif variant.name == "holdout" and step.holdout is not None:
            playbook.error((*path, "variants", index, "name"),
                           "'holdout' is the name of the hold-out branch that 'holdout' adds; rename this one")
        seen.add(variant.name)
    if len(step.arms()) < 2:
        playbook.error((*path, "variants"), "a split needs at least two branches (or one and a 'holdout')")


STEP_CHECKS: dict[type, Callable[[Playbook, Any, DataPath, Events], None]] = {
    Send: check_send, Task: check_task, Wait: check_wait, WaitFor: check_wait_for, If: check_if,
    Set: check_set, Promise: check_promise, CheckPromise: check_check_promise, Goto: check_goto,
    End: check_end, Split: check_split,
}
