"""Rules are data: CEL expressions compiled once, evaluated over a fixed set of names.

An expression reads `customer`, `event`, `facts`, `vars`, `promises` and `now`, and nothing
else: CEL has no I/O, and the activation below is the whole world it can see.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import celpy
import celpy.evaluation
from celpy import celtypes

from engine.durations import format_duration
from engine.model import FieldSpec

ROOTS = ("customer", "event", "facts", "vars", "promises", "now")


class ExpressionError(Exception):
    """An expression failed at run time (e.g. comparing null with a number)."""


def _days(n: Any) -> celtypes.DurationType:
    return celtypes.DurationType(timedelta(days=int(n)))


def _hours(n: Any) -> celtypes.DurationType:
    return celtypes.DurationType(timedelta(hours=int(n)))


def _null_safe(compare: Any, if_null: bool) -> Any:
    # The CEL spec compares anything with null (heterogeneous equality); cel-python raises,
    # which would turn the natural `facts.score != null && ...` into an error.
    def equality(a: Any, b: Any) -> Any:
        if a is None or b is None or isinstance(a, celtypes.NullType) or isinstance(b, celtypes.NullType):
            same = (a is None or isinstance(a, celtypes.NullType)) == (b is None or isinstance(b, celtypes.NullType))
            return celtypes.BoolType(same == if_null)
        return compare(a, b)
    return equality


FUNCTIONS = {
    "days": _days,
    "hours": _hours,
    "_==_": _null_safe(celpy.evaluation.bool_eq, True),
    "_!=_": _null_safe(celpy.evaluation.bool_ne, False),
}
_ENV = celpy.Environment()


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> celpy.Runner:
    """Compile once per distinct source; the loader has already reported syntax errors."""
    return _ENV.program(_ENV.compile(source), functions=FUNCTIONS)


def evaluate(source: str, names: dict[str, Any]) -> Any:
    """Evaluate `source` over CEL-typed `names`; return a plain Python value."""
    try:
        result = compile_expression(source).evaluate(names)
    except Exception as error:  # cel-python raises plain errors for some type mismatches
        raise ExpressionError(f"{source!r}: {_reason(error)}") from None
    if isinstance(result, celpy.CELEvalError):
        raise ExpressionError(f"{source!r}: {_reason(result)}")
    return from_cel(result)


def _reason(error: Exception) -> str:
    # cel-python can put the whole activation in a message; a timeline line needs the gist.
    text = str(error.args[0] if error.args else error)
    return text if len(text) <= 200 else text[:197] + "..."


def is_true(source: str, names: dict[str, Any]) -> bool:
    """A condition: true only when the expression yields boolean true."""
    return evaluate(source, names) is True


# ----------------------------------------------------------------- conversions


def parse_time(value: Any) -> datetime | None:
    """A timestamp from a datetime, a date or an ISO 8601 string; None when it is none of them."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def to_cel(value: Any, kind: str | None = None) -> Any:
    """A plain (JSON-like) value as CEL sees it; `kind` types dates and durations."""
    if value is None:
        return None
    if kind in ("date", "timestamp") or isinstance(value, (datetime, date)):
        moment = parse_time(value)
        if moment is not None:
            return celtypes.TimestampType(moment)
    if kind == "duration" or isinstance(value, timedelta):
        from engine.durations import parse_duration

        delta = value if isinstance(value, timedelta) else parse_duration(str(value))
        return celtypes.DurationType(delta)
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return celtypes.ListType([to_cel(v) for v in value])
    raise ExpressionError(f"cannot use a {type(value).__name__} in an expression")


def typed_map(values: dict[str, Any], specs: dict[str, FieldSpec]) -> celtypes.MapType:
    """A CEL map with every declared field present (null when missing), typed by its spec."""
    result = {celtypes.StringType(k): to_cel(v) for k, v in values.items() if k not in specs}
    for name, spec in specs.items():
        result[celtypes.StringType(name)] = to_cel(values.get(name), spec.type)
    return celtypes.MapType(result)


def from_cel(value: Any) -> Any:
    """A CEL result as a plain Python value (datetimes and timedeltas kept as such)."""
    if value is None or isinstance(value, celtypes.NullType):
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.TimestampType):
        return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)
    if isinstance(value, celtypes.DurationType):
        return timedelta(seconds=value.total_seconds())
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): from_cel(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [from_cel(v) for v in value]
    return value


def to_plain(value: Any) -> Any:
    """A value fit for state that is stored as JSON: times as ISO strings, durations as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
