"""What an expression or a template can see: customer, event, facts, vars, promises, now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celpy import celtypes

from engine.events import declared_events
from engine.expressions import to_cel, typed_map
from engine.model import BUILTIN_CUSTOMER_FIELDS, Lifecycle
from engine.state import Event, LifecycleState

S = celtypes.StringType


def _event_view(lifecycle: Lifecycle, event: Event | None) -> Any:
    if event is None:
        return to_cel({"name": "", "data": {}, "occurred_at": None})
    spec = declared_events(lifecycle).get(event.name)
    data = typed_map(event.data, spec.payload) if spec else to_cel(event.data)
    return celtypes.MapType({
        S("name"): S(event.name),
        S("data"): data,
        S("occurred_at"): to_cel(event.occurred_at),
    })


def _promises_view(state: LifecycleState) -> Any:
    return to_cel({
        name: {
            "about": entry.about,
            "description": entry.description,
            "expected": entry.expected,
            "state": entry.state,
            "actual": entry.actual,
            "made_by": entry.made_by,
        }
        for name, entry in state.promises.items()
    })


def expression_names(
    lifecycle: Lifecycle, state: LifecycleState, event: Event | None, now: datetime,
    *, with_vars: bool = True,
) -> dict[str, Any]:
    """The activation for a CEL expression: the only names an expression can read."""
    names = {
        "customer": typed_map(state.customer, {**BUILTIN_CUSTOMER_FIELDS, **lifecycle.customer}),
        "event": _event_view(lifecycle, event),
        "facts": typed_map(state.facts, lifecycle.facts),
        "promises": _promises_view(state),
        "now": to_cel(now),
    }
    if with_vars:
        names["vars"] = to_cel(state.vars)
    return names


def template_context(state: LifecycleState, event: Event | None, now: datetime) -> dict[str, Any]:
    """What a message template can use; plain values, rendered by the Jinja sandbox."""
    return {
        "customer": state.customer,
        "event": {"name": event.name if event else "", "data": event.data if event else {}},
        "facts": state.facts,
        "vars": state.vars,
        "promises": {name: entry.model_dump() for name, entry in state.promises.items()},
        "stage": state.stage,
        "now": now,
    }
