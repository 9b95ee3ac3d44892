"""Load-time checks of the lifecycle file: stages, channels, facts, events and transitions."""

from __future__ import annotations

from datetime import date
from typing import Any

from engine.errors import PlaybookError, describe_value, suggest
from engine.expression_checks import Located, Scope, all_events, check_expression, customer_fields
from engine.expressions import ROOTS
from engine.fields import JSON_TYPE_TESTS
from engine.model import EventSpec, FactSpec, Lifecycle, Transition
from engine.yamlsource import DataPath

def check_lifecycle(lifecycle: Lifecycle, doc: Located,
                    promises: set[str] | None = None) -> list[PlaybookError]:
    """Stages, events, channels, facts and transitions of the lifecycle file.

    `promises`: the names the stage playbooks record, to check `promises.X`; None skips that.
    """
    errors: list[PlaybookError] = []
    stages = lifecycle.stages
    events = all_events(lifecycle)
    customer = customer_fields(lifecycle)

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
    errors += _check_schedules(lifecycle, doc, events, promises)
    return errors


SCHEDULE_ROOTS = ("customer", "facts", "promises")  # no event, vars or now: a moment of its own


def _check_schedules(lifecycle: Lifecycle, doc: Located, events: dict[str, EventSpec],
                     promises: set[str] | None) -> list[PlaybookError]:
    """Each schedule sends a declared event that needs no payload, at a timestamp expression."""
    errors: list[PlaybookError] = []
    for name, spec in lifecycle.schedules.items():
        base = ("schedules", name)
        if name not in lifecycle.events:
            errors.append(doc.error(base, f"unknown event '{name}'{suggest(name, lifecycle.events)}: "
                                          f"a schedule sends an event declared in 'events'", key=True))
        else:
            required = [field for field, fspec in lifecycle.events[name].payload.items() if fspec.required]
            if required:
                errors.append(doc.error(base, f"event '{name}' needs payload field '{required[0]}', but a "
                                              f"schedule sends its event without data", key=True))
        for key, source in (("at", spec.at), ("from", spec.from_)):
            if source is None:
                continue
            scope = Scope(where="a schedule", roots=SCHEDULE_ROOTS, events=set(), promises=promises)
            errors += check_expression(lifecycle, doc, (*base, key), source, scope,
                                       ("timestamp", f"a schedule's '{key}'"))
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
        **JSON_TYPE_TESTS,
        "date": lambda v: isinstance(v, (date, str)),
        "timestamp": lambda v: isinstance(v, (date, str)),
        "duration": lambda v: isinstance(v, str),
    }[spec.type]
    if not expected(value):
        return f"the initial value ({describe_value(value)}) is not of type {spec.type}"
    if spec.enum is not None and spec.type == "string" and value not in spec.enum:
        return f"initial value '{value}' is not one of: {', '.join(spec.enum)}"
    return None
