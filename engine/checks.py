"""Cross-reference checks on a loaded lifecycle: every name a playbook uses must exist.

The models check each file's shape; these checks look across files (stages, events,
channels, roles, facts, templates, promises) and inside expressions and templates, and
locate each error at the node that holds the bad name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import nodes as jinja_nodes

from engine import typecheck
from engine.errors import PlaybookError, describe_value, suggest
from engine.expressions import FUNCTIONS, ROOTS
from engine.flow import event_flow, union
from engine.model import (
    BUILTIN_CUSTOMER_FIELDS,
    BUILTIN_EVENTS,
    CheckPromise,
    End,
    EventSpec,
    FactSpec,
    Goto,
    If,
    Lifecycle,
    Playbook,
    Promise,
    Send,
    Set,
    Task,
    Transition,
    Wait,
    WaitFor,
)
from engine.promises import promise_type
from engine.references import MACROS, ExpressionSyntaxError, analyse
from engine.templates import ENVIRONMENT, attribute_name, split_subject, undeclared_names
from engine.templates import parse as parse_jinja
from engine.walk import step_lists, step_paths
from engine.yamlsource import DataPath

EVENT_FIELDS = ("name", "data", "occurred_at")
PROMISE_FIELDS = ("about", "description", "expected", "state", "actual", "made_by")
# What a message template sees (engine.context.template_context): the roots plus the stage.
TEMPLATE_ROOTS = (*ROOTS, "stage")
TEMPLATE_EVENT_FIELDS = ("name", "data")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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


def _all_events(lifecycle: Lifecycle) -> dict[str, EventSpec]:
    return {**BUILTIN_EVENTS, **lifecycle.events}


def _customer_fields(lifecycle: Lifecycle) -> set[str]:
    return set(BUILTIN_CUSTOMER_FIELDS) | set(lifecycle.customer)


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


# ---------------------------------------------------------------- expressions


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
    return typecheck.types_of(lifecycle).check(source, events, var_kinds)


def _check_names(lifecycle: Lifecycle, doc: Located, path: DataPath, source: str,
                 scope: Scope) -> list[PlaybookError]:
    try:
        info = analyse(source)
    except ExpressionSyntaxError as error:
        return [doc.expression_error(path, error.line, error.column, error.message)]
    errors: list[PlaybookError] = []

    def at(ref_position: tuple[int, int], message: str) -> None:
        errors.append(doc.expression_error(path, ref_position[0], ref_position[1], message))

    events = _all_events(lifecycle)
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
        if root == "customer" and name not in _customer_fields(lifecycle):
            at(positions[1], f"unknown customer field '{name}'{suggest(name, _customer_fields(lifecycle))}")
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
        elif root == "promises" and scope.promises is not None:
            if name not in scope.promises:
                at(positions[1], f"unknown promise '{name}'{suggest(name, scope.promises)}; "
                                 f"no 'promise' step records it")
            elif len(names) > 2 and names[2] not in PROMISE_FIELDS:
                at(positions[2], f"a promise has no field '{names[2]}'{suggest(names[2], PROMISE_FIELDS)}; "
                                 f"it has {', '.join(PROMISE_FIELDS)}")
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
        at(position, f"none of the events {_names(candidates)} has a payload field "
                     f"'{name}'{suggest(name, fields)}")
    else:
        at(position, f"no event has a payload field '{name}'{suggest(name, fields)}")


# ---------------------------------------------------------------- the lifecycle file


def check_lifecycle(lifecycle: Lifecycle, doc: Located,
                    promises: set[str] | None = None) -> list[PlaybookError]:
    """Stages, events, channels, facts and transitions of the lifecycle file.

    `promises`: the names the stage playbooks record, to check `promises.X`; None skips that.
    """
    errors: list[PlaybookError] = []
    stages = lifecycle.stages
    events = _all_events(lifecycle)
    customer = _customer_fields(lifecycle)

    def unknown_stage(name: str) -> str:
        return f"unknown stage '{name}'{suggest(name, stages)}"

    if lifecycle.initial_stage not in stages:
        errors.append(doc.error(("initial_stage",), unknown_stage(lifecycle.initial_stage)))
    elif stages[lifecycle.initial_stage].terminal:
        errors.append(doc.error(("initial_stage",), f"the initial stage '{lifecycle.initial_stage}' "
                                                    f"is terminal: the lifecycle would end at once"))
    for name, spec in stages.items():
        if spec.terminal and spec.playbook:
            errors.append(doc.error(("stages", name, "playbook"),
                                    f"stage '{name}' is terminal: its playbook would never run"))
    for name, channel in lifecycle.channels.items():
        if channel.contact not in customer:
            errors.append(doc.error(
                ("channels", name, "contact"),
                f"channel '{name}': '{channel.contact}' is not a customer field"
                f"{suggest(channel.contact, customer)}",
            ))
    for name, spec in lifecycle.facts.items():
        problem = _initial_problem(spec)
        if problem:
            errors.append(doc.error(("facts", name, "initial"), f"fact '{name}': {problem}"))
    if not any(spec.starts_lifecycle for spec in lifecycle.events.values()):
        errors.append(doc.error(("events",), "no event has 'starts_lifecycle: true', so no "
                                             "lifecycle can ever start", key=True))
    for name, spec in lifecycle.events.items():
        for fact, source in spec.updates.items():
            path = ("events", name, "updates", fact)
            if fact not in lifecycle.facts:
                errors.append(doc.error(path, f"unknown fact '{fact}'{suggest(fact, lifecycle.facts)}", key=True))
            scope = Scope(where="an event's 'updates'", roots=_without_vars(), events={name},
                          promises=promises)
            kind = lifecycle.facts[fact].type if fact in lifecycle.facts else None
            expect = (kind, f"fact '{fact}'") if kind else None
            errors += check_expression(lifecycle, doc, path, source, scope, expect)
    errors += _check_transitions(lifecycle, doc, events, unknown_stage, promises)
    return errors


def _without_vars() -> tuple[str, ...]:
    return tuple(root for root in ROOTS if root != "vars")


def _check_transitions(lifecycle: Lifecycle, doc: Located, events: dict[str, EventSpec],
                       unknown_stage: Any, promises: set[str] | None) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    stages = lifecycle.stages
    live = [name for name, spec in stages.items() if not spec.terminal]
    first_unconditional: dict[tuple[str, str], int] = {}
    for index, transition in enumerate(lifecycle.transitions):
        base = ("transitions", index)
        seen: set[str] = set()
        for position, source in enumerate(transition.from_):
            # A scalar `from: sale` has no item node; the position falls back to `from` itself.
            where = (*base, "from", position)
            if source in seen:
                errors.append(doc.error(where, f"stage '{source}' is listed twice"))
            seen.add(source)
            if source == "*":
                continue
            if source not in stages:
                hint = suggest(source, stages) or " (name a stage, or '*' for any stage)"
                errors.append(doc.error(where, f"unknown stage '{source}'{hint}"))
            elif stages[source].terminal:
                errors.append(doc.error(where, f"stage '{source}' is terminal: no transition can leave it"))
        errors += _check_except(transition, doc, base, stages, live)
        if transition.on not in events:
            errors.append(doc.error((*base, "on"), f"unknown event '{transition.on}'{suggest(transition.on, events)}"))
        if transition.to not in stages:
            errors.append(doc.error((*base, "to"), unknown_stage(transition.to)))
        if transition.when is not None:
            scope = Scope(where="a transition's 'when'", roots=_without_vars(), events={transition.on},
                          promises=promises)
            errors += check_expression(lifecycle, doc, (*base, "when"), transition.when, scope,
                                       ("bool", "a transition's 'when'"))
        # The first matching transition wins: one after an unconditional twin never fires.
        sources = [stage for stage in live if transition.applies_in(stage)]
        blockers = [first_unconditional.get((s, transition.on)) for s in sources]
        if sources and all(b is not None for b in blockers):
            line = doc.position(("transitions", min(b for b in blockers if b is not None)))[0]
            errors.append(doc.error(base, f"this transition never fires: the transition at line {line} "
                                          f"already takes '{transition.on}' from the same stage without a 'when'"))
        if transition.when is None:
            for source in sources:
                first_unconditional.setdefault((source, transition.on), index)
    return errors


def _check_except(transition: Transition, doc: Located, base: DataPath, stages: dict[str, Any],
                  live: list[str]) -> list[PlaybookError]:
    """The stages a `from: '*'` transition leaves out: known, non-terminal, listed once, not all."""
    errors: list[PlaybookError] = []
    seen: set[str] = set()
    for position, stage in enumerate(transition.except_):
        where = (*base, "except", position)
        if stage in seen:
            errors.append(doc.error(where, f"stage '{stage}' is listed twice"))
        elif stage not in stages:
            errors.append(doc.error(where, f"unknown stage '{stage}'{suggest(stage, stages)}"))
        elif stages[stage].terminal:
            errors.append(doc.error(where, f"stage '{stage}' is terminal: '*' never includes it"))
        seen.add(stage)
    if transition.except_ and "*" in transition.from_ and not any(transition.applies_in(s) for s in live):
        errors.append(doc.error((*base, "except"), "this transition never fires: 'except' leaves out "
                                                   "every non-terminal stage"))
    return errors


def _initial_problem(spec: FactSpec) -> str | None:
    """Why a fact's initial value does not fit its type (only the unambiguous cases)."""
    value = spec.initial
    if value is None:
        return None
    expected = {
        "string": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "map": lambda v: isinstance(v, dict),
        "date": lambda v: isinstance(v, (date, str)),
        "timestamp": lambda v: isinstance(v, (date, str)),
        "duration": lambda v: isinstance(v, str),
    }[spec.type]
    if not expected(value):
        return f"the initial value ({describe_value(value)}) is not of type {spec.type}"
    if spec.enum is not None and spec.type == "string" and value not in spec.enum:
        return f"initial value '{value}' is not one of: {', '.join(spec.enum)}"
    return None


# ---------------------------------------------------------------- stage playbooks


def promises_recorded(playbooks: Iterable[Playbook]) -> dict[str, str]:
    """Every promise a `promise` step records, in any stage playbook: name → what it is about
    (the first step's, when several record it). Used as a set of names, and to type `actual`."""
    recorded: dict[str, str] = {}
    for playbook in playbooks:
        for step, _ in step_paths(playbook.steps):
            if isinstance(step, Promise):
                recorded.setdefault(step.promise, step.about)
    return recorded


def is_template_name(name: str) -> bool:
    """A template name is a plain file name: no folders, no way out of the template folder."""
    return bool(_TEMPLATE_NAME.match(name)) and ".." not in name


def entry_events(lifecycle: Lifecycle, stage: str) -> set[str]:
    """Events a transition (or the lifecycle's start) can bring a customer into `stage` with."""
    names = {t.on for t in lifecycle.transitions if t.to == stage}
    if stage == lifecycle.initial_stage:
        names |= {name for name, spec in lifecycle.events.items() if spec.starts_lifecycle}
    return names


def stage_events(lifecycle: Lifecycle, playbooks: dict[str, Playbook]) -> dict[str, set[str] | None]:
    """What `event` can be when each stage's playbook starts; None where it cannot be told.

    A `goto` carries the event its stage was working with, so a goto target can start with
    any event the source stage could hold at the goto: grow the sets until nothing changes.
    """
    entries: dict[str, set[str] | None] = {s: entry_events(lifecycle, s) for s in lifecycle.stages}
    for _ in range(len(lifecycle.stages) + 1):
        changed = False
        for stage, playbook in playbooks.items():
            probe = _PlaybookChecker(lifecycle, stage, playbook, None, None, set(), "")
            probe.flow_from(entries.get(stage))
            for target, events in probe.gotos:
                if target not in entries:
                    continue
                merged = union(entries[target], events)
                if merged != entries[target]:
                    entries[target], changed = merged, True
        if not changed:
            break
    # A stage nothing leads into is entered some other way (or never): accept any event.
    return {stage: (events or None) for stage, events in entries.items()}


class _PlaybookChecker:
    """The checks of one stage playbook, with the flow of `event` through its steps."""

    def __init__(self, lifecycle: Lifecycle, stage: str, playbook: Playbook, doc: Located | None,
                 promises: set[str] | None, templates: set[str], templates_folder: str) -> None:
        self.lifecycle = lifecycle
        self.stage = stage
        self.playbook = playbook
        self.doc = doc
        self.promises = promises
        self.templates = templates
        self.templates_folder = templates_folder
        self.events = _all_events(lifecycle)
        self.errors: list[PlaybookError] = []
        self.gotos: list[tuple[str, set[str] | None]] = []  # (target, events at the goto)
        self.vars = set(playbook.vars) | {
            step.var for step, _ in step_paths(playbook.steps) if isinstance(step, Set) and step.var
        }
        self.var_kinds = self._var_kinds()

    def _var_kinds(self) -> dict[str, str]:
        """Declared vars have their type; a var only a `set` step gives gets its value's type."""
        kinds = {name: "dyn" for name in self.vars}
        kinds.update(self.playbook.var_kinds())
        if self.doc is None:
            return kinds
        types = typecheck.types_of(self.lifecycle)
        for step, _ in step_paths(self.playbook.steps):
            if isinstance(step, Set) and step.var and step.var not in self.playbook.vars \
                    and kinds[step.var] == "dyn":
                result = types.check(step.value, None, kinds).result
                kinds[step.var] = typecheck.KIND_OF_RESULT.get(result or "", "dyn")
                # Kept with the playbook, so the interpreter reads a stored timestamp back as one.
                self.playbook.var_types[step.var] = kinds[step.var]
        return kinds

    def flow_from(self, events: set[str] | None) -> None:
        """Follow `event` through the steps; with no document, only record the gotos."""
        event_flow(self.playbook.steps, events, self._step)

    def run(self, entry: set[str] | None) -> list[PlaybookError]:
        if self.playbook.playbook != self.stage:
            self.errors.append(self.doc.error(
                ("playbook",), f"playbook '{self.playbook.playbook}' runs in stage '{self.stage}'; "
                               f"name it '{self.stage}'",
            ))
        self._duplicate_ids()
        self._after_leaving()
        self.flow_from(entry)
        return self.errors

    def error(self, path: DataPath, message: str, key: bool = False) -> None:
        if self.doc is not None:
            self.errors.append(self.doc.error(path, message, key=key))

    def _duplicate_ids(self) -> None:
        first: dict[str, DataPath] = {}
        for step, path in step_paths(self.playbook.steps):
            if step.id is None:
                continue
            if step.id in first:
                line = self.doc.position((*first[step.id], "id"))[0]
                self.error((*path, "id"), f"duplicate step id '{step.id}' (first used at line {line})")
            else:
                first[step.id] = path

    def _after_leaving(self) -> None:
        """A step written right after a goto or an end never runs."""
        for steps, prefix in step_lists(self.playbook.steps):
            for index in range(1, len(steps)):
                if isinstance(steps[index - 1], (Goto, End)):
                    self.error((*prefix, index), f"this step never runs: the '{steps[index - 1].kind}' "
                                                 f"step before it leaves the stage")

    def _expression(self, path: DataPath, source: str, events: set[str] | None,
                    expect: tuple[str, str] | None = None) -> None:
        if self.doc is None:
            return
        scope = Scope(where="a stage playbook", events=events, vars=self.vars, promises=self.promises,
                      var_kinds=self.var_kinds)
        self.errors += check_expression(self.lifecycle, self.doc, path, source, scope, expect)

    def _span(self, path: DataPath, value: Any, events: set[str] | None) -> None:
        """A `due`, `timeout` or `duration` written as an expression must be a duration."""
        if isinstance(value, str):
            self._expression(path, value, events, ("duration", f"'{path[-1]}'"))

    def _set_type(self, step: Set, path: DataPath) -> tuple[str, str] | None:
        """The type a `set` value must have: the fact's, or the var's (declared or first set)."""
        if step.fact is not None:
            spec = self.lifecycle.facts.get(step.fact)
            return (spec.type, f"fact '{step.fact}'") if spec else None
        assert step.var is not None
        kind = self.var_kinds.get(step.var, "dyn")
        return (kind, f"var '{step.var}'")

    def _role(self, path: DataPath, role: str) -> None:
        if role not in self.lifecycle.roles:
            self.error(path, f"unknown role '{role}'{suggest(role, self.lifecycle.roles)}")

    def _step(self, step: Any, path: DataPath, events: set[str] | None) -> None:
        """The checks of one step, with the events that can be current there (engine.flow)."""
        if isinstance(step, Send):
            self._send(step, path)
        elif isinstance(step, Task):
            self._role((*path, "role"), step.role)
            self._span((*path, "due"), step.due, events)
        elif isinstance(step, Wait):
            self._span((*path, "duration"), step.duration, events)
            if step.until is not None:
                self._expression((*path, "until"), step.until, events, ("timestamp", "'until'"))
        elif isinstance(step, WaitFor):
            self._wait_for(step, path, events)
        elif isinstance(step, If):
            self._expression((*path, "when"), step.when, events, ("bool", "a condition"))
            for index, branch in enumerate(step.elif_):
                self._expression((*path, "elif", index, "when"), branch.when, events, ("bool", "a condition"))
        elif isinstance(step, Set):
            if step.fact is not None and step.fact not in self.lifecycle.facts:
                self.error((*path, "fact"), f"unknown fact '{step.fact}'{suggest(step.fact, self.lifecycle.facts)}")
            self._expression((*path, "value"), step.value, events, self._set_type(step, path))
        elif isinstance(step, Promise):
            self._role((*path, "made_by"), step.made_by)
            kind = promise_type(step.about)
            self._expression((*path, "expected"), step.expected, events,
                             (kind, f"what a {step.about} promise expects") if kind else None)
            self._tolerance(step, path)
        elif isinstance(step, CheckPromise):
            if self.promises is not None and step.promise not in self.promises:
                self.error((*path, "promise"), f"no 'promise' step records a promise named '{step.promise}'"
                                               f"{suggest(step.promise, self.promises)}")
            about = self.promises.get(step.promise) if isinstance(self.promises, dict) else None
            kind = promise_type(about) if about else None
            self._expression((*path, "actual"), step.actual, events,
                             (kind, f"what happened to a {about} promise") if kind else None)
        elif isinstance(step, Goto):
            self.gotos.append((step.stage, events))
            if step.stage not in self.lifecycle.stages:
                self.error((*path, "stage"), f"unknown stage '{step.stage}'{suggest(step.stage, self.lifecycle.stages)}")

    def _send(self, step: Send, path: DataPath) -> None:
        name = step.template
        if not is_template_name(name):
            self.error((*path, "template"), f"template name '{name}' must be a file name in the "
                                            f"template folder, without folders")
        elif name not in self.templates:
            self.error((*path, "template"), f"unknown template '{name}': no file "
                                            f"{self.templates_folder}/{name}.txt"
                                            f"{suggest(name, self.templates)}")
        channels = self.lifecycle.channels
        if step.channel != "preferred" and step.channel not in channels:
            hint = suggest(step.channel, [*channels, "preferred"])
            self.error((*path, "channel"), f"unknown channel '{step.channel}'"
                                           f"{hint or f' (use {_names(channels)} or preferred)'}")
        if step.otherwise is not None:
            self._role((*path, "otherwise", "role"), step.otherwise.role)
            self._span((*path, "otherwise", "due"), step.otherwise.due, None)

    def _wait_for(self, step: WaitFor, path: DataPath, events: set[str] | None) -> None:
        self._span((*path, "timeout"), step.timeout, events)
        seen: set[str] = set()
        for index, name in enumerate(step.events):
            if name in seen:
                self.error((*path, "events", index), f"event '{name}' is listed twice")
            seen.add(name)
            if name not in self.events:
                self.error((*path, "events", index), f"unknown event '{name}'{suggest(name, self.events)}")
        for name in step.on:
            if name not in step.events:
                self.error((*path, "on", name), f"'on' names event '{name}' that this wait_for does not "
                                                f"wait for{suggest(name, step.events)}", key=True)

    def _tolerance(self, step: Promise, path: DataPath) -> None:
        if step.tolerance is None:
            return
        kind = promise_type(step.about)
        if kind in ("timestamp", "duration") and not isinstance(step.tolerance, timedelta):
            self.error((*path, "tolerance"), f"a {step.about} promise needs a duration as tolerance, e.g. 2d")
        elif kind == "number" and isinstance(step.tolerance, timedelta):
            self.error((*path, "tolerance"), f"a {step.about} promise needs an amount as tolerance, e.g. 10")


def check_playbook(lifecycle: Lifecycle, stage: str, playbook: Playbook, doc: Located, *,
                   promises: set[str] | None, templates: set[str], templates_folder: str,
                   entry: set[str] | None = None) -> list[PlaybookError]:
    """Every cross-reference of one stage playbook.

    `promises` None skips the promise checks (some playbook failed to load); `entry` is what
    `event` can be when the stage starts (see `stage_events`), None for any declared event.
    """
    checker = _PlaybookChecker(lifecycle, stage, playbook, doc, promises, templates, templates_folder)
    return checker.run(entry)


# ---------------------------------------------------------------- templates


@lru_cache(maxsize=512)
def parse_template(text: str) -> jinja_nodes.Template:
    """The Jinja syntax tree of a template part; raises TemplateSyntaxError. Cached (not mutated)."""
    return parse_jinja(text)


def check_template(lifecycle: Lifecycle, path: str, source: str, users: list[Playbook],
                   promises: set[str] | None) -> list[PlaybookError]:
    """Names a template reads: unknown roots, customer fields, facts, vars, payload fields."""
    subject, body = split_subject(source)
    parts = [(body, 1)]
    if subject:
        _, _, rest = source.partition("\n")
        parts = [(subject, 1), (body, 2 + len(rest) - len(rest.lstrip("\n")))]
    errors: list[PlaybookError] = []
    variables = set().union(*(p.vars for p in users)) | {
        step.var for p in users for step, _ in step_paths(p.steps) if isinstance(step, Set) and step.var
    }
    customer = _customer_fields(lifecycle)
    events = _all_events(lifecycle)
    payload = {name for spec in events.values() for name in spec.payload}
    allowed = set(TEMPLATE_ROOTS) | set(ENVIRONMENT.globals)
    for text, first_line in parts:
        try:
            tree = parse_template(text)
        except Exception:
            continue  # syntax errors are reported by the loader
        undeclared = undeclared_names(tree)  # never meta's: it folds constants

        def at(node: jinja_nodes.Node, message: str) -> None:
            errors.append(PlaybookError(path, first_line + max((node.lineno or 1) - 1, 0), 1, message))

        reported: set[str] = set()
        for node in tree.find_all(jinja_nodes.Name):
            if node.ctx == "load" and node.name in undeclared and node.name not in allowed \
                    and node.name not in reported:
                reported.add(node.name)
                at(node, f"unknown name '{node.name}' in template{suggest(node.name, TEMPLATE_ROOTS)}; "
                         f"a template can use {', '.join(TEMPLATE_ROOTS)}")
        for node in tree.find_all((jinja_nodes.Getattr, jinja_nodes.Getitem)):
            target = node.node
            name = attribute_name(node)
            if not isinstance(target, jinja_nodes.Name) or target.name not in undeclared or name is None:
                if isinstance(target, (jinja_nodes.Getattr, jinja_nodes.Getitem)) and name is not None:
                    inner = target.node
                    if (isinstance(inner, jinja_nodes.Name) and inner.name == "event"
                            and "event" in undeclared and attribute_name(target) == "data"
                            and name not in payload):
                        at(node, f"no event has a payload field '{name}'{suggest(name, payload)}")
                continue
            root = target.name
            if root == "customer" and name not in customer:
                at(node, f"unknown customer field '{name}'{suggest(name, customer)}")
            elif root == "facts" and name not in lifecycle.facts:
                at(node, f"unknown fact '{name}'{suggest(name, lifecycle.facts)}")
            elif root == "vars" and name not in variables:
                at(node, f"unknown var '{name}'{suggest(name, variables)}")
            elif root == "event" and name not in TEMPLATE_EVENT_FIELDS:
                at(node, f"unknown event field '{name}'{suggest(name, TEMPLATE_EVENT_FIELDS)}; "
                         f"a template sees the event's name and data")
            elif root == "promises" and promises is not None and name not in promises:
                at(node, f"unknown promise '{name}'{suggest(name, promises)}")
    return errors
