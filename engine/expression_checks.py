"""Load-time checks of one CEL expression: its syntax, every name it reads, then its types.

Each error is placed inside the YAML scalar that holds the expression. Used for every
expression of a lifecycle file (engine.lifecycle_checks) and of a stage playbook
(engine.checks, and each step kind's `check` in engine.steps).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from engine import typecheck
from engine.errors import PlaybookError, suggest
from engine.expressions import FUNCTIONS, ROOTS
from engine.model import BUILTIN_CUSTOMER_FIELDS, BUILTIN_EVENTS, EventSpec, Lifecycle
from engine.references import MACROS, ExpressionSyntaxError, analyse
from engine.shortcut import shortcut
from engine.yamlsource import DataPath

EVENT_FIELDS = ("name", "data", "occurred_at")
PROMISE_FIELDS = ("about", "description", "expected", "state", "actual", "made_by")


# CEL's standard functions and methods (https://github.com/google/cel-spec, langdef.md).
CEL_FUNCTIONS = (
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
    "bytes", "bool", "timestamp", "duration", "type", "dyn", "has", "getFullYear", "getMonth",
    "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
    "getSeconds", "getMilliseconds",
)


@lru_cache(maxsize=1)
def _functions() -> frozenset[str]:
    """Functions and methods an expression may call: CEL's, the macros and the engine's own."""
    return frozenset(set(CEL_FUNCTIONS) | set(MACROS) | set(FUNCTIONS))


class Located(Protocol):
    """A parsed file that can place an error at a data path (engine.yamlsource.Document)."""

    path: str

    def position(self, path: DataPath, key: bool = False) -> tuple[int, int]: ...

    def error(self, path: DataPath, message: str, key: bool = False) -> PlaybookError: ...

    def expression_error(self, path: DataPath, line: int, column: int, message: str) -> PlaybookError: ...


@dataclass
class Scope:
    """What an expression at some place may read."""

    where: str
    roots: tuple[str, ...] = ROOTS
    events: set[str] | None = None  # the events `event` can be here; None: cannot tell
    vars: set[str] = field(default_factory=set)
    promises: set[str] | None = None  # None: unknown (a playbook failed to load), skip
    var_kinds: dict[str, str] | None = None  # the type of each var, where vars can be read
    # --- task entities (issue 12): in a task's `on_done`, the task whose completion is `event`
    task: Any = None  # a TaskSpec: its `fields` type event.data.fields, its `outcomes` event.data.outcome


def all_events(lifecycle: Lifecycle) -> dict[str, EventSpec]:
    """The lifecycle's events and the built-in ones."""
    return {**BUILTIN_EVENTS, **lifecycle.events}


def customer_fields(lifecycle: Lifecycle) -> set[str]:
    """The customer profile fields: the built-in ones and those the lifecycle declares."""
    return set(BUILTIN_CUSTOMER_FIELDS) | set(lifecycle.customer)


def name_list(items: Iterable[str]) -> str:
    """Names for a message: sorted, comma separated."""
    return ", ".join(sorted(items))


def check_expression(lifecycle: Lifecycle, doc: Located, path: DataPath, source: str,
                     scope: Scope, expect: tuple[str, str] | None = None) -> list[PlaybookError]:
    """Syntax, every name an expression reads, then its types, each error placed inside the scalar.

    `expect`: (kind, what) when the result must have a type, e.g. ("bool", "a condition").
    """
    errors = _check_names(lifecycle, doc, path, source, scope)
    if errors:
        return errors  # the type checker would report the same unknown names, less helpfully
    checked = _check_types(lifecycle, source, scope)
    for problem in checked.problems:
        errors.append(doc.expression_error(path, problem.line, problem.column,
                                           problem.message + _var_hint(problem.message, source, scope)))
    if expect is not None and not errors:
        problem = typecheck.expect(checked, *expect)
        if problem:
            errors.append(doc.expression_error(path, 1, 1, problem))
    if not errors:
        shortcut(source)  # made at load, once: not by the first customer that runs it
    return errors


def _var_hint(message: str, source: str, scope: Scope) -> str:
    """A text var used as a date or a duration was most likely meant to be one: say how."""
    if not scope.var_kinds or "string" not in message or not ("timestamp" in message or "duration" in message):
        return ""
    texts = sorted({ref.field for ref in analyse(source).references
                    if ref.root == "vars" and ref.field and scope.var_kinds.get(ref.field) == "string"})
    if not texts:
        return ""
    kind = "timestamp" if "timestamp" in message else "duration"
    return (f" (a var holding a {'date' if kind == 'timestamp' else 'duration'}: declare it as "
            f"`{texts[0]}: {{type: {kind}, initial: ...}}` in the playbook's vars)")


def _check_types(lifecycle: Lifecycle, source: str, scope: Scope) -> typecheck.Checked:
    events = frozenset(scope.events) if scope.events else None
    var_kinds = scope.var_kinds if "vars" in scope.roots else None
    if var_kinds is None and "vars" in scope.roots:
        var_kinds = {name: "dyn" for name in scope.vars}
    task_fields = None
    if scope.task is not None and scope.task.fields:
        task_fields = tuple(sorted((name, spec.type) for name, spec in scope.task.fields.items()))
    return typecheck.types_of(lifecycle).check(source, events, var_kinds, task_fields)


def _check_names(lifecycle: Lifecycle, doc: Located, path: DataPath, source: str,
                 scope: Scope) -> list[PlaybookError]:
    try:
        info = analyse(source)
    except ExpressionSyntaxError as error:
        return [doc.expression_error(path, error.line, error.column, error.message)]
    errors: list[PlaybookError] = []

    def at(ref_position: tuple[int, int], message: str) -> None:
        errors.append(doc.expression_error(path, ref_position[0], ref_position[1], message))

    events = all_events(lifecycle)
    for ref in info.references:
        root, names, positions = ref.root, ref.names, ref.positions
        if root not in scope.roots:
            readable = ", ".join(scope.roots)
            if root in ROOTS:
                at(positions[0], f"'{root}' cannot be used in {scope.where} (it can read {readable})")
            else:
                at(positions[0], f"unknown name '{root}'{suggest(root, scope.roots)}; "
                                 f"an expression can read {readable}")
            continue
        if len(names) < 2:
            continue
        name = names[1]
        if root == "customer" and name not in customer_fields(lifecycle):
            at(positions[1], f"unknown customer field '{name}'{suggest(name, customer_fields(lifecycle))}")
        elif root == "facts" and name not in lifecycle.facts:
            at(positions[1], f"unknown fact '{name}'{suggest(name, lifecycle.facts)}")
        elif root == "vars" and name not in scope.vars:
            at(positions[1], f"unknown var '{name}'{suggest(name, scope.vars)}; "
                             f"declare it in the playbook's 'vars' or set it with a 'set' step")
        elif root == "event":
            if name not in EVENT_FIELDS:
                at(positions[1], f"unknown event field '{name}'{suggest(name, EVENT_FIELDS)}; "
                                 f"an event has name, data and occurred_at")
            elif name == "data" and len(names) > 2:
                _check_payload_field(events, scope.events, names[2], positions[2], at)
                if names[2] == "fields" and len(names) > 3 and scope.task is not None \
                        and names[3] not in scope.task.fields:
                    fields = scope.task.fields
                    declared = f"it has {name_list(fields)}" if fields else "it declares no fields"
                    at(positions[3], f"the task has no field '{names[3]}'{suggest(names[3], fields)}; {declared}")
        elif root == "promises" and scope.promises is not None:
            if name not in scope.promises:
                at(positions[1], f"unknown promise '{name}'{suggest(name, scope.promises)}; "
                                 f"no 'promise' step records it")
            elif len(names) > 2 and names[2] not in PROMISE_FIELDS:
                at(positions[2], f"a promise has no field '{names[2]}'{suggest(names[2], PROMISE_FIELDS)}; "
                                 f"it has {', '.join(PROMISE_FIELDS)}")
    if scope.task is not None and scope.task.outcomes:
        _check_outcome_literals(source, scope.task.outcomes, at)
    known = _functions()
    for call in info.calls:
        if call.name not in known:
            at((call.line, call.column), f"unknown function '{call.name}'{suggest(call.name, known)}")
    if info.nested_loop is not None:
        # The cost bound: one loop over data runs at most once per element (an event's data is
        # at most 64 KiB); a loop inside a loop multiplies that, past what a workflow task can
        # spend (about a second). Refused here rather than stopped at 3 a.m.
        at(info.nested_loop, "a loop inside a loop (a macro such as all/exists/map/filter in another's "
                             "body) could run for too long; compute the inner part once, e.g. in a var")
    return errors


def _check_payload_field(events: dict[str, EventSpec], possible: set[str] | None, name: str,
                         position: tuple[int, int], at: Any) -> None:
    candidates = [e for e in (possible or ()) if e in events]
    if not candidates:
        candidates = list(events)  # cannot tell which event this is: any declared one
    fields = {f for e in candidates for f in events[e].payload}
    if name in fields:
        return
    if len(candidates) == 1:
        at(position, f"event '{candidates[0]}' has no payload field '{name}'{suggest(name, fields)}")
    elif possible:
        at(position, f"none of the events {name_list(candidates)} has a payload field "
                     f"'{name}'{suggest(name, fields)}")
    else:
        at(position, f"no event has a payload field '{name}'{suggest(name, fields)}")


_OUTCOME_COMPARISON = re.compile(
    r"event\.data\.outcome\s*[!=]=\s*(['\"])(?P<right>[^'\"]*)\1|(['\"])(?P<left>[^'\"]*)\3\s*[!=]=\s*event\.data\.outcome")


def _check_outcome_literals(source: str, outcomes: list[str], at: Any) -> None:
    """--- task entities (issue 12): `event.data.outcome == 'reachd'` in on_done is a typo of an
    outcome the task declares: an error at load, not a branch that never runs."""
    for match in _OUTCOME_COMPARISON.finditer(source):
        group = "right" if match.group("right") is not None else "left"
        literal, offset = match.group(group), match.start(group)
        if literal not in outcomes:
            line = source.count("\n", 0, offset) + 1
            column = offset - (source.rfind("\n", 0, offset) + 1) + 1
            at((line, column - 1), f"'{literal}' is not an outcome of the task{suggest(literal, outcomes)}; "
                                   f"it has {name_list(outcomes)}")
