"""The event contract: which events a lifecycle declares and whether a payload fits one.

One code path for the HTTP API, the CLI and the workflow's update validator, so a payload
is judged the same way whichever road it comes by.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from engine import calendars
from engine.durations import parse_duration
from engine.errors import suggest
from engine.expressions import parse_time
from engine.fields import JSON_TYPE_TESTS
from engine.memo import per_object
from engine.model import BUILTIN_CUSTOMER_FIELDS, BUILTIN_EVENTS, EventSpec, FieldSpec, Lifecycle
from engine.policy import CONSENT_CHANGED, UNSUBSCRIBED
from engine.policy_model import CATEGORIES
from engine.types import without_offset

# CEL integers are 64-bit: a larger one would fail inside the workflow, not here.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class PayloadError(ValueError):
    """A payload does not match its event's schema; `field` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# The contact policy's events (engine.policy applies them): every lifecycle accepts them, in any stage.
POLICY_EVENTS: dict[str, EventSpec] = {
    CONSENT_CHANGED: EventSpec(
        description="The customer gave or withdrew consent: for a channel, a category, both, or (neither "
                    "given) for every message. Takes effect at once, in any stage.",
        payload={
            "channel": FieldSpec(type="string", description="A channel name; none: every channel."),
            "category": FieldSpec(type="string", enum=list(CATEGORIES), description="A category; none: every one."),
            "granted": FieldSpec(type="bool", required=True, description="true: consent given; false: withdrawn."),
        },
    ),
    UNSUBSCRIBED: EventSpec(
        description="The customer asked to receive no more messages (unsubscribe link, STOP reply, a request "
                    "to the help desk). Takes effect at once, in any stage; consent.changed with granted: true "
                    "and no channel or category lifts it.",
        payload={"reason": FieldSpec(type="string", description="How the customer asked, in a few words.")},
    ),
}


@per_object
def declared_events(lifecycle: Lifecycle) -> dict[str, EventSpec]:
    """The lifecycle's events plus the built-in ones: task completion, the contact policy's
    (callers must not change the map)."""
    return {**BUILTIN_EVENTS, **POLICY_EVENTS, **lifecycle.events}


@per_object
def _profile_spec(lifecycle: Lifecycle) -> EventSpec:
    """The profile fields an event may set, as a payload of optional fields."""
    fields = {name: spec.model_copy(update={"required": False})
              for name, spec in {**BUILTIN_CUSTOMER_FIELDS, **lifecycle.customer}.items() if name != "id"}
    return EventSpec(payload=fields)


def _check_value(name: str, value: Any, spec: FieldSpec, before: frozenset[str] = frozenset()) -> Any:
    kind = spec.type
    if value is None:
        if spec.required:
            raise PayloadError(f"field '{name}' is required", name)
        return None
    if kind in ("date", "timestamp"):
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        if not isinstance(value, str) or parse_time(value) is None:
            raise PayloadError(f"field '{name}' must be an ISO 8601 {kind}, got {value!r}", name)
        if TIMES_NEED_AN_OFFSET not in before and without_offset(value):
            wanted = "a date (2026-03-10), or a timestamp" if kind == "date" else "a timestamp"
            raise PayloadError(f"field '{name}' must be {wanted} with its UTC offset (Z or +01:00), "
                               f"got {value!r}: without one it would be read as UTC, whatever zone the "
                               f"sender meant", name)
        return value
    if kind == "duration":
        try:
            parse_duration(value)
        except ValueError as error:
            raise PayloadError(f"field '{name}': {error}", name) from None
        return value
    if kind == "int" and isinstance(value, float) and value.is_integer() and INTEGRAL_NUMBERS_ARE_INTS not in before:
        value = int(value)  # JSON Schema's `integer` takes 7.0; kept as 7, so CEL sees an int
    if not JSON_TYPE_TESTS[kind](value):
        article = "an" if kind[0] in "aeiou" else "a"
        raise PayloadError(f"field '{name}' must be {article} {kind}, got {type(value).__name__}", name)
    if kind in ("int", "number") and isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise PayloadError(f"field '{name}' is out of range (64-bit integers)", name)
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(f"field '{name}' must be a finite number", name)
    if spec.enum is not None and value not in spec.enum:
        raise PayloadError(f"field '{name}' must be one of {', '.join(spec.enum)}", name)
    _check_limits(name, value, spec)
    return value


def _check_limits(name: str, value: Any, spec: FieldSpec) -> None:
    """The field spec's `min`, `max` and `max_length`, on a value of the right type."""
    if spec.min is not None and value < spec.min:
        raise PayloadError(f"field '{name}' must be at least {spec.min}, got {value}", name)
    if spec.max is not None and value > spec.max:
        raise PayloadError(f"field '{name}' must be at most {spec.max}, got {value}", name)
    if spec.max_length is not None and isinstance(value, str) and len(value) > spec.max_length:
        raise PayloadError(f"field '{name}' must be at most {spec.max_length} characters, "
                           f"got {len(value)}", name)


TIMES_NEED_AN_OFFSET = "timestamps-need-an-offset"
"""The change that refuses a time of day without its UTC offset (in a timestamp or a date field)
in an event's data, a profile or a task's fields (before it, one was taken as UTC: a system
sending local times was hours off)."""
PROFILE_VALUES_CHECKED = "profile-values-checked"
"""The change that refuses a profile whose `preferred_channel` is not a channel of the lifecycle,
or whose `consent` has a key that is neither a channel nor a category or a value that is not
true or false (before it, `consent: {sms: "yes"}` was taken and read as no consent: the message
went to another channel, or became a task, and nobody heard why)."""
INTEGRAL_NUMBERS_ARE_INTS = "integral-numbers-are-ints"
"""The change that takes an integral number (7.0) in an `int` field as that int, as the published
JSON Schema's `integer` does (before it, 7.0 was refused). Only an event that reached the
workflow unchecked (a signal sent with `temporal workflow signal`) could have been refused so."""


PAYLOAD_CHANGES = (TIMES_NEED_AN_OFFSET, INTEGRAL_NUMBERS_ARE_INTS, PROFILE_VALUES_CHECKED)
"""The changes to payload checks a run may predate (a workflow patch each): the workflow asks
them and passes those not in force as `before`, so a history recorded before replays."""


def validate_payload(event: str, spec: EventSpec, data: dict[str, Any],
                     before: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The payload checked against `spec`: unknown fields, missing required ones, wrong types.

    A time of day needs its UTC offset; an `int` takes an integral number (7.0, as JSON Schema's
    `integer` does) as that int. `before`: the changes of PAYLOAD_CHANGES a run predates, checked
    as releases before each did (only to replay what they recorded)."""
    if not isinstance(data, dict):
        raise PayloadError(f"the data of '{event}' must be an object")
    unknown = sorted(set(data) - set(spec.payload))
    if unknown:
        raise PayloadError(f"'{event}' has no field '{unknown[0]}'{suggest(unknown[0], spec.payload)}", unknown[0])
    return {name: _check_value(name, data.get(name), field, before) for name, field in spec.payload.items()
            if name in data or field.required}


def check_event(lifecycle: Lifecycle, event: str, data: dict[str, Any],
                before: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate an event by name; raise PayloadError for an unknown event or a bad payload."""
    events = declared_events(lifecycle)
    if event not in events:
        raise PayloadError(f"unknown event '{event}'{suggest(event, events)}", "event")
    checked = validate_payload(event, events[event], data, before)
    if event == CONSENT_CHANGED and checked.get("channel") is not None and checked["channel"] not in lifecycle.channels:
        raise PayloadError(f"field 'channel': unknown channel '{checked['channel']}' "
                           f"(one of: {', '.join(lifecycle.channels)})", "channel")
    return checked


def check_customer(lifecycle: Lifecycle, customer_id: str, profile: dict[str, Any] | None,
                   before: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """Validate the profile fields an event sets: built-in and declared fields, all optional.

    A bad value (say a `consent` that is not a map) would otherwise break the lifecycle later,
    inside the workflow; `field` is named `customer.<field>`. `before`: as for validate_payload.
    """
    if profile is None:
        return None
    if not isinstance(profile, dict):
        raise PayloadError("'customer' must be an object", "customer")
    if "id" in profile and profile["id"] != customer_id:
        raise PayloadError("'customer.id' must equal the event's customer_id", "customer.id")
    rest = {name: value for name, value in profile.items() if name != "id"}
    try:
        checked = validate_payload("customer", _profile_spec(lifecycle), rest, before)
    except PayloadError as error:
        message = str(error)
        if message.startswith("field '"):
            message = "field 'customer." + message.removeprefix("field '")
        raise PayloadError(message, f"customer.{error.field}" if error.field else "customer") from None
    for field, problem in (("timezone", _zone_problem), ("calendar", calendars.calendar_problem)):
        value = checked.get(field)
        why = problem(value) if isinstance(value, str) else None
        if why:  # caught here, not at the customer's next send
            raise PayloadError(f"field 'customer.{field}': {why}", f"customer.{field}")
    if PROFILE_VALUES_CHECKED not in before:
        _check_contact_fields(lifecycle, checked)
    return {**({"id": customer_id} if "id" in profile else {}), **checked}


def _check_contact_fields(lifecycle: Lifecycle, profile: dict[str, Any]) -> None:
    """`preferred_channel` names a channel; `consent` maps channels and categories to true or
    false (a category also to a map channel → true or false), as engine.policy reads it. The
    policy reads anything else as no consent: a customer who agreed would silently be reached
    elsewhere, or not at all."""
    channels = lifecycle.channels
    preferred = profile.get("preferred_channel")
    if preferred is not None and preferred not in channels:
        raise PayloadError(f"field 'customer.preferred_channel': unknown channel '{preferred}'"
                           f"{suggest(preferred, channels)} (one of: {', '.join(channels)})",
                           "customer.preferred_channel")
    for key, value in (profile.get("consent") or {}).items():
        where = f"customer.consent.{key}"
        if key not in channels and key not in CATEGORIES:
            raise PayloadError(f"field '{where}': '{key}' is neither a channel ({', '.join(channels)}) nor a "
                               f"category ({', '.join(CATEGORIES)}){suggest(key, [*channels, *CATEGORIES])}", where)
        by_channel = value if key in CATEGORIES and isinstance(value, dict) else {None: value}
        for channel, granted in by_channel.items():
            if channel is not None and channel not in channels:
                raise PayloadError(f"field '{where}.{channel}': unknown channel '{channel}'"
                                   f"{suggest(channel, channels)} (one of: {', '.join(channels)})",
                                   f"{where}.{channel}")
            if not isinstance(granted, bool):
                shown = f"{where}.{channel}" if channel is not None else where
                also = " or a map of channel to true or false" if key in CATEGORIES and channel is None else ""
                raise PayloadError(f"field '{shown}' must be true or false{also}, got {granted!r}", shown)


def _zone_problem(name: str) -> str | None:
    return None if calendars.is_zone(name) else f"unknown time zone '{name}' (an IANA name such as Europe/Berlin)"


def payload_json_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of an event's payload, for the API's OpenAPI document."""
    formats = {"date": "date", "timestamp": "date-time", "duration": "duration"}
    types = {"int": "integer", "number": "number", "bool": "boolean", "list": "array", "map": "object"}
    properties = {}
    for name, field in spec.payload.items():
        schema: dict[str, Any] = {"type": types.get(field.type, "string")}
        if field.type == "int":
            schema.update(minimum=INT_MIN, maximum=INT_MAX)
        if field.min is not None:
            schema["minimum"] = field.min
        if field.max is not None:
            schema["maximum"] = field.max
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        if field.type in formats:
            schema["format"] = formats[field.type]
        if field.enum:
            schema["enum"] = field.enum
        if field.description:
            schema["description"] = field.description
        properties[name] = schema
    required = [name for name, field in spec.payload.items() if field.required]
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}
