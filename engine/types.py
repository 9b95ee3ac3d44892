"""The field-type system, in one place: type names authors write, and how values cross boundaries.

A field (customer profile, event payload, fact, stage var) has one of the kinds below. State
is stored as JSON (pydantic, Temporal history, the API), so a timestamp travels as ISO text
and a duration as `2d`; `typed` turns such a plain value back into its Python type using the
declared kind, `to_plain` does the reverse, and `to_cel` hands a value to the CEL runtime.
The checker's view of each kind (a protobuf wrapper, so every field may be null) is in
`PROTO_TYPES`; engine.typecheck builds its declarations from it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from google.protobuf import duration_pb2, timestamp_pb2

from engine.durations import format_duration, parse_duration

FieldKind = Literal["string", "int", "number", "bool", "date", "timestamp", "duration", "list", "map"]
KINDS: tuple[str, ...] = ("string", "int", "number", "bool", "date", "timestamp", "duration", "list", "map")

# The protobuf type of a field of each kind, as the checker sees it. Wrappers (Int64Value, ...)
# make every field nullable, so `facts.last_satisfaction != null` checks; `dyn` is a value whose
# type cannot be told at load time (a var set from something untyped).
PROTO_TYPES: dict[str, str] = {
    "string": ".google.protobuf.StringValue",
    "int": ".google.protobuf.Int64Value",
    "number": ".google.protobuf.DoubleValue",
    "bool": ".google.protobuf.BoolValue",
    "date": ".google.protobuf.Timestamp",
    "timestamp": ".google.protobuf.Timestamp",
    "duration": ".google.protobuf.Duration",
    "list": ".google.protobuf.ListValue",
    "map": ".google.protobuf.Struct",
    "dyn": ".google.protobuf.Value",
}

# How CEL names the type of a value of each kind, in messages to authors.
CEL_NAMES: dict[str, str] = {
    "string": "string", "int": "int", "number": "double", "bool": "bool", "date": "timestamp",
    "timestamp": "timestamp", "duration": "duration", "list": "list", "map": "map", "dyn": "dyn",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """A timestamp from a datetime, a date or an ISO 8601 string; None when it is none of them."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        return _parse_iso(value)
    return None


def without_offset(value: str) -> bool:
    """Whether an ISO 8601 text that parses as a time has a time of day but no UTC offset (read
    as UTC it would be hours off for whoever meant their local time: events and analytics
    windows refuse it)."""
    return len(value) > 10 and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None


@lru_cache(maxsize=8192)
def _parse_iso(value: str) -> datetime | None:
    # Cached: state keeps times as text, and the same few are read by many expressions.
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_delta(value: Any) -> timedelta | None:
    """A duration from a timedelta or duration text (`2d`, `P14D`); None when it is neither."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            return None
    return None


_AS_IS = frozenset({None, "string", "bool", "list", "map", "dyn"})
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
"""JSON's scalar types: `to_plain` and `to_cel` give such a value back as it is."""
_PLAIN = PLAIN_TYPES


def typed(value: Any, kind: str | None) -> Any:
    """A plain (JSON) value as the Python value its declared kind means.

    Timestamps and dates become aware datetimes, durations timedeltas, numbers floats;
    a value that does not fit is returned unchanged (the payload checks report it).
    """
    if value is None or kind in _AS_IS:
        return value
    if kind in ("date", "timestamp"):
        moment = parse_time(value)
        return value if moment is None else moment
    if kind == "duration":
        delta = parse_delta(value)
        return value if delta is None else delta
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_KEPT_BY = {kind: _PLAIN for kind in _AS_IS} | {
    "int": _PLAIN - {float},  # an integral float becomes an int
    "number": _PLAIN - {int},  # an int becomes a float
}
"""Per kind, the plain types of the values that `typed` and `to_cel` both return unchanged."""


def cel_typed(value: Any, kind: str | None) -> Any:
    """`to_cel(typed(value, kind))`: a stored value as CEL sees it, the common plain ones at once."""
    kept = _KEPT_BY.get(kind)  # type: ignore[arg-type]
    if kept is not None and type(value) in kept:
        return value
    return to_cel(typed(value, kind))


def read_typed(value: Any, kind: str | None) -> Any:
    """`cel_typed(value, kind)` as engine.shortcut's readers take it: a time or a duration stays a
    datetime or a timedelta, which the shortcut only ever reads through its `plain`, the value
    the runtime gives back for the protobuf form (a time not in UTC reads as unsure there)."""
    kept = _KEPT_BY.get(kind)  # type: ignore[arg-type]
    if kept is not None and type(value) in kept:
        return value
    converted = typed(value, kind)
    if type(converted) is datetime or type(converted) is timedelta:
        return converted
    return to_cel(converted)


def to_plain(value: Any) -> Any:
    """A value fit for state that is stored as JSON: times as ISO strings, durations as text."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, dict):  # plain values are taken as they are, without a call each
        return {k: v if type(v) in _PLAIN else to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else to_plain(v) for v in value]
    return value


def to_cel(value: Any) -> Any:
    """A typed Python value as the CEL runtime takes it inside a map: times as protobuf messages.

    The runtime accepts datetime and timedelta only for variables declared with those types;
    inside a map (facts, event data) it needs the well-known protobuf messages.
    """
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        delta = moment - _EPOCH
        seconds = delta.days * 86400 + delta.seconds
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)
    if isinstance(value, timedelta):
        seconds = value.days * 86400 + value.seconds
        return duration_pb2.Duration(seconds=seconds, nanos=value.microseconds * 1000)
    if isinstance(value, dict):
        return {k: to_cel(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_cel(v) for v in value]
    if isinstance(value, date):
        return to_cel(parse_time(value))
    return value


def kind_of(value: Any) -> str:
    """The kind a stage var has when the playbook gives it only an initial value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"  # text that looks like a date stays text: declare `type: timestamp`
    if isinstance(value, datetime | date):
        return "timestamp"
    if isinstance(value, timedelta):
        return "duration"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "dyn"
