"""What an expression or a template can see: customer, event, facts, vars, promises, now."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from engine.events import declared_events
from engine.memo import per_object
from engine.model import BUILTIN_CUSTOMER_FIELDS, FieldSpec, Lifecycle
from engine.promises import promise_type
from engine.references import ExpressionSyntaxError, analyse
from engine.shortcut import UNSURE
from engine.state import Event, LifecycleState
from engine.tasks import field_kinds
from engine.types import cel_typed, read_typed, to_cel, typed



def typed_map(values: dict[str, Any], specs: dict[str, FieldSpec] | dict[str, str],
              only: frozenset[str] | None = None) -> dict[str, Any]:
    """A map for CEL with every declared field present (null when missing), typed by its spec.

    `specs` maps a name to its FieldSpec or directly to its kind; `only`, when given, limits
    the map to the fields an expression reads (converting the rest would be wasted work).
    """
    if only is not None:
        result = {}
        for name in only:
            value = values.get(name)
            if value is None:
                result[name] = None
                continue
            spec = specs.get(name)
            result[name] = cel_typed(value, spec if isinstance(spec, str) or spec is None else spec.type)
        return result
    result = {k: to_cel(v) for k, v in values.items() if k not in specs}
    for name, spec in specs.items():
        value = values.get(name)
        kind = spec if isinstance(spec, str) else spec.type
        result[name] = None if value is None else cel_typed(value, kind)
    return result


def _kinds(specs: dict[str, FieldSpec]) -> dict[str, str]:
    """name → kind of `specs` (a lifecycle's facts, an event's payload)."""
    return {name: spec.type for name, spec in specs.items()}


@per_object
def _fact_kinds(lifecycle: Lifecycle) -> dict[str, str]:
    return _kinds(lifecycle.facts)


@per_object
def _payload_kinds(spec: Any) -> dict[str, str]:
    return _kinds(spec.payload)


@per_object
def _customer_kinds(lifecycle: Lifecycle) -> dict[str, str]:
    return _kinds({**BUILTIN_CUSTOMER_FIELDS, **lifecycle.customer})


Fields = frozenset[str] | None
_EVENT_VIEWS: dict[tuple[int, Fields, Fields], tuple[Event, Lifecycle, dict[str, Any]]] = {}


def _event_view(lifecycle: Lifecycle, event: Event | None, only: Fields = None, fields: Fields = None,
                field_kinds: dict[str, str] | None = None) -> Any:
    """The event as CEL sees it, with only the fields (`name`, `data`, `occurred_at`) in `fields`
    and the payload fields in `only` (the runtime converts every value it is given, on every
    evaluation). Made once per event and fields: a stage
    reads the same event in many conditions, and a taken event is never changed.

    `field_kinds` types `data.fields` of a `task.completed` as its task declares them."""
    if event is None:
        return {"name": "", "data": {}, "occurred_at": None}
    known = _EVENT_VIEWS.get((id(event), only, fields))
    if known is not None and known[0] is event and known[1] is lifecycle:
        return known[2]
    full = _EVENT_VIEWS.get((id(event), None, None))
    if full is None or full[0] is not event or full[1] is not lifecycle:
        full = (event, lifecycle, _full_event_view(lifecycle, event, field_kinds))
        _EVENT_VIEWS[(id(event), None, None)] = full
    view = full[2]
    if only is not None:  # the fields it reads, taken from the whole view: converted once per event
        view = {**view, "data": {name: view["data"].get(name) for name in only}}
    if fields is not None:  # e.g. only `data`: a timestamp the expression does not read costs too
        view = {name: value for name, value in view.items() if name in fields}
    if len(_EVENT_VIEWS) > 1024:
        _EVENT_VIEWS.clear()
    _EVENT_VIEWS[(id(event), only, fields)] = (event, lifecycle, view)
    return view


def _full_event_view(lifecycle: Lifecycle, event: Event, field_kinds: dict[str, str] | None) -> dict[str, Any]:
    """The event with its whole payload, typed by its spec."""
    spec = declared_events(lifecycle).get(event.name)
    data = typed_map(event.data, _payload_kinds(spec)) if spec else to_cel(event.data)
    if field_kinds and "fields" in data:  # --- task entities (issue 12): a completion's declared fields, typed
        data = {**data, "fields": typed_map(event.data.get("fields") or {}, field_kinds)}
    return {"name": event.name, "data": data, "occurred_at": to_cel(event.occurred_at)}


def _promises_view(state: LifecycleState, only: frozenset[str] | None = None) -> Any:
    return {name: _promise_view(entry) for name, entry in state.promises.items() if only is None or name in only}


def _promise_view(entry: Any) -> dict[str, Any]:
    kind = promise_type(entry.about)
    return {
        "about": entry.about,
        "description": entry.description,
        "expected": to_cel(typed(entry.expected, kind)),
        "state": entry.state,
        "actual": to_cel(typed(entry.actual, kind)),
        "made_by": entry.made_by,
    }


def expression_names(
    lifecycle: Lifecycle, state: LifecycleState, event: Event | None, now: datetime,
    *, with_vars: bool = True, source: str | tuple[str, ...] | None = None,
    var_kinds: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The activation for a CEL expression: the only names an expression can read.

    `var_kinds` (Playbook.var_kinds()) types the stage vars, which are stored as JSON.
    `source` may be several expressions (an event's updates), which then share the names.

    Given the expression's `source`, only the roots it reads are built: converting the
    whole state to CEL values for every condition was most of the simulator's time.
    """
    wanted = _reads_of(source) if source is not None else None
    if wanted is None:
        wanted = _EVERYTHING
    names: dict[str, Any] = {}
    for root, only in wanted.items():
        if root == "customer":
            names[root] = typed_map(_with_defaults(lifecycle, state.customer), _customer_kinds(lifecycle), only)
        elif root == "facts":
            names[root] = typed_map(state.facts, _fact_kinds(lifecycle), only)
        elif root == "event":
            names[root] = _event_view(lifecycle, event, wanted.get("event.data"), only, field_kinds(state, event))
        elif root == "promises":
            names[root] = _promises_view(state, only)
        elif root == "now":
            names[root] = now
        elif root == "vars" and with_vars:
            names[root] = typed_map(state.vars, var_kinds or {}, only)
    return names


class Scope:
    """What an expression (or several, sharing it) can read, field by field: `field(root, name)`
    is what `expression_names(...)[root][name]` holds (UNSURE where that has no such key, or
    where the expression reads the root whole), without building the names. engine.shortcut's
    readers read through it (engine.expressions.evaluate_in); the CEL runtime gets `names()`."""

    __slots__ = ("lifecycle", "state", "event", "now", "source", "wanted", "with_vars", "var_kinds", "_names")

    def __init__(self, lifecycle: Lifecycle, state: LifecycleState, event: Event | None, now: datetime,
                 source: str | tuple[str, ...], *, with_vars: bool = True,
                 var_kinds: dict[str, str] | None = None) -> None:
        self.lifecycle, self.state, self.event, self.now = lifecycle, state, event, now
        self.source, self.wanted = source, _reads_of(source)
        self.with_vars, self.var_kinds = with_vars, var_kinds
        self._names: dict[str, Any] | None = None

    def names(self) -> dict[str, Any]:
        """The activation `expression_names` makes for the expression(s), made once."""
        if self._names is None:
            self._names = expression_names(self.lifecycle, self.state, self.event, self.now,
                                           with_vars=self.with_vars, source=self.source, var_kinds=self.var_kinds)
        return self._names

    def field(self, root: str, name: str) -> Any:
        """`root.name` as the names would hold it (engine.shortcut calls `field_<root>` directly)."""
        return getattr(self, f"field_{root}")(name)

    def field_event(self, name: str) -> Any:
        # The whole view: it holds what the names' view (filtered to the fields the expression
        # reads) holds, the same values; a payload field it lacks reads UNSURE.
        return _event_view(self.lifecycle, self.event, None, None, field_kinds(self.state, self.event)) \
            .get(name, UNSURE)

    def _read_whole(self, root: str) -> bool:
        """Whether the names hold `root` whole (or not at all): then only they say what it holds."""
        return self.wanted is None or self.wanted.get(root) is None

    def field_facts(self, name: str) -> Any:
        if self._read_whole("facts"):
            return UNSURE
        value = self.state.facts.get(name)
        return None if value is None else read_typed(value, _fact_kinds(self.lifecycle).get(name))

    def field_customer(self, name: str) -> Any:
        if self._read_whole("customer"):
            return UNSURE
        customer = self.state.customer
        if name in _DEFAULTED:
            customer = _with_defaults(self.lifecycle, customer)
        value = customer.get(name)
        return None if value is None else read_typed(value, _customer_kinds(self.lifecycle).get(name))

    def field_vars(self, name: str) -> Any:
        if not self.with_vars or self._read_whole("vars"):
            return UNSURE
        value = self.state.vars.get(name)
        return None if value is None else read_typed(value, (self.var_kinds or {}).get(name))

    def field_promises(self, name: str) -> Any:
        if self._read_whole("promises"):
            return UNSURE
        entry = self.state.promises.get(name)
        return UNSURE if entry is None else _promise_view(entry)

    def field_now(self, name: str) -> Any:
        return UNSURE  # a timestamp has no fields

    def root(self, name: str) -> Any:
        """A root the expression reads whole (`promises.all(...)`): from the names."""
        return self.names().get(name, UNSURE)

    def has(self, root: str, name: str) -> Any:
        """`has(root.name)`: whether the names would hold the key."""
        wanted = self.wanted
        if wanted is None or root == "event":
            return UNSURE
        if wanted.get(root) is None or root == "vars" and not self.with_vars:
            return UNSURE
        if root == "promises":
            return name in self.state.promises
        return root in ("facts", "customer", "vars")  # every field read is in the map, null when unset


_DEFAULTED = frozenset({"timezone", "calendar"})  # what `_with_defaults` may fill in


def _with_defaults(lifecycle: Lifecycle, customer: dict[str, Any]) -> dict[str, Any]:
    """The profile with the contact policy's default time zone and calendar where it has none,
    so `at_local(now, '09:00', customer.timezone)` works for every customer."""
    contact = lifecycle.contact
    if contact is None or (customer.get("timezone") or not contact.timezone) and \
            (customer.get("calendar") or not contact.calendar):
        return customer
    return {**customer, "timezone": customer.get("timezone") or contact.timezone,
            "calendar": customer.get("calendar") or contact.calendar}


_EVERYTHING: dict[str, frozenset[str] | None] = {root: None for root in
                                                 ("customer", "event", "facts", "vars", "promises", "now")}


@lru_cache(maxsize=4096)
def reads(source: str) -> dict[str, frozenset[str] | None] | None:
    """What an expression reads: root → the fields it reads of it (None: the whole root, e.g.
    `promises.all(...)`); `event.data` → the payload fields. None when it does not parse."""
    try:
        references = analyse(source).references
    except ExpressionSyntaxError:
        return None
    found: dict[str, set[str] | None] = {}

    def add(key: str, field: str | None) -> None:
        if field is None:
            found[key] = None
        elif key not in found:
            found[key] = {field}
        elif found[key] is not None:
            found[key].add(field)

    for reference in references:
        add(reference.root, reference.field)
        if reference.root == "event" and reference.field in (None, "data"):
            # The payload is filtered when every read names its field: event.data.x.
            add("event.data", reference.names[2] if len(reference.names) > 2 else None)
    if "event" in found and "event.data" not in found:
        found["event.data"] = set()  # event.name or event.occurred_at only
    return {key: (None if fields is None else frozenset(fields)) for key, fields in found.items()}


@lru_cache(maxsize=1024)
def _reads_of(source: str | tuple[str, ...]) -> dict[str, frozenset[str] | None] | None:
    """`reads` of one expression, or everything several expressions read."""
    if isinstance(source, str):
        return reads(source)
    merged: dict[str, frozenset[str] | None] = {}
    for one in source:
        found = reads(one)
        if found is None:
            return None
        for key, fields in found.items():
            before = merged.get(key, frozenset())
            merged[key] = None if fields is None or before is None else before | fields
    return merged


def roots_read(source: str) -> frozenset[str] | None:
    """The roots (`facts`, `event`, ...) an expression reads; None when it does not parse."""
    found = reads(source)
    return None if found is None else frozenset(key for key in found if "." not in key)


def template_context(state: LifecycleState, event: Event | None, now: datetime,
                     reads: frozenset[str] | None = None) -> dict[str, Any]:
    """What a message template can use; plain values, rendered by the Jinja sandbox.

    `reads` (engine.templates.names_read), when given, are the names the template reads: the
    promise ledger is copied only for a template that reads it."""
    return {
        "customer": state.customer,
        "event": {"name": event.name if event else "", "data": event.data if event else {}},
        "facts": state.facts,
        "vars": state.vars,
        "promises": {name: entry.model_dump() for name, entry in state.promises.items()}
        if reads is None or "promises" in reads else {},
        "stage": state.stage,
        "now": now,
    }
