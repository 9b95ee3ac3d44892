"""Rules are data: CEL expressions compiled once, evaluated over a fixed set of names.

An expression reads `customer`, `event`, `facts`, `vars`, `promises` and `now`, and nothing
else: CEL has no I/O, and the activation below is the whole world it can see.

The runtime is Google's CEL (cel-expr-python, C++). Types are checked when a playbook loads
(engine.typecheck, with the declarations built from the lifecycle's field specs); here each
source is compiled once without the checker and evaluated over plain maps, so a value that is
null at run time (a fact not yet known) compares as null instead of as a protobuf default.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from cel_expr_python import cel
from google.protobuf import timestamp_pb2

from engine import calendars
from engine.types import parse_delta, parse_time, to_cel, to_plain  # noqa: F401  (re-exported)

ROOTS = ("customer", "event", "facts", "vars", "promises", "now")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ExpressionError(Exception):
    """An expression failed at run time (e.g. comparing null with a number)."""


# ------------------------------------------------------------- the engine's functions


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by whole calendar months; the day is clamped (Jan 31 + 1 month = Feb 28)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def add_years(moment: datetime, years: int) -> datetime:
    """`moment` moved by whole calendar years; Feb 29 becomes Feb 28 in a common year."""
    return add_months(moment, 12 * years)


T = cel.Type
_ORDERED = (("int", T.INT), ("double", T.DOUBLE), ("string", T.STRING), ("timestamp", T.TIMESTAMP),
            ("duration", T.DURATION))

# name → [(overload id, parameter types, result type, implementation)]; the checker and the
# runtime get the same list, so a function that checks is a function that runs.
FUNCTION_SIGNATURES: dict[str, list[tuple[str, list[Any], Any, Any]]] = {
    "days": [("days_int", [T.INT], T.DURATION, lambda n: timedelta(days=n))],
    "hours": [("hours_int", [T.INT], T.DURATION, lambda n: timedelta(hours=n))],
    "add_months": [("add_months_timestamp_int", [T.TIMESTAMP, T.INT], T.TIMESTAMP, add_months)],
    "add_years": [("add_years_timestamp_int", [T.TIMESTAMP, T.INT], T.TIMESTAMP, add_years)],
    # Local time and business days (engine.calendars): a zone is an IANA name, a calendar a
    # country code with an optional subdivision ('US-NY'); customer.timezone and
    # customer.calendar fall back to the lifecycle's contact defaults.
    "at_local": [("at_local_timestamp_string_string", [T.TIMESTAMP, T.STRING, T.STRING], T.TIMESTAMP,
                  calendars.at_local)],
    "next_local": [("next_local_timestamp_string_string", [T.TIMESTAMP, T.STRING, T.STRING], T.TIMESTAMP,
                    calendars.next_local)],
    "add_business_days": [
        ("add_business_days_timestamp_int_string", [T.TIMESTAMP, T.INT, T.STRING], T.TIMESTAMP,
         calendars.add_business_days),
        ("add_business_days_timestamp_int_string_string", [T.TIMESTAMP, T.INT, T.STRING, T.STRING],
         T.TIMESTAMP, calendars.add_business_days),
    ],
    "next_business_day": [
        ("next_business_day_timestamp_string", [T.TIMESTAMP, T.STRING], T.TIMESTAMP,
         calendars.next_business_day),
        ("next_business_day_timestamp_string_string", [T.TIMESTAMP, T.STRING, T.STRING], T.TIMESTAMP,
         calendars.next_business_day),
    ],
    "is_business_day": [
        ("is_business_day_timestamp_string", [T.TIMESTAMP, T.STRING], T.BOOL, calendars.is_business_day),
        ("is_business_day_timestamp_string_string", [T.TIMESTAMP, T.STRING, T.STRING], T.BOOL,
         calendars.is_business_day),
    ],
    "min": [(f"min_{name}", [kind, kind], kind, min) for name, kind in _ORDERED],
    "max": [(f"max_{name}", [kind, kind], kind, max) for name, kind in _ORDERED],
}
FUNCTIONS = tuple(FUNCTION_SIGNATURES)


def function_declarations() -> list[cel.FunctionDecl]:
    """The engine's functions as CEL declarations with their implementations."""
    return [
        cel.FunctionDecl(name, [cel.Overload(id, result, params, impl=impl)
                                for id, params, result, impl in overloads])
        for name, overloads in FUNCTION_SIGNATURES.items()
    ]


# Every root is dynamic here: the types were checked at load; `now` is always a timestamp.
_ENV = cel.NewEnv(
    variables={**{root: T.DYN for root in ROOTS}, "now": T.TIMESTAMP},
    functions=function_declarations(),
)


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Expression:
    """Compile once per distinct source; the loader has already reported syntax and type errors."""
    try:
        return _ENV.compile(source, disable_check=True)
    except RuntimeError as error:
        raise ExpressionError(f"{source!r}: {_reason(error)}") from None


def evaluate(source: str, names: dict[str, Any]) -> Any:
    """Evaluate `source` over the `names` (see engine.context); return a plain Python value.

    Timestamps come back as aware datetimes, durations as timedeltas.
    """
    shortcut = _shortcut(source)
    if shortcut is not None:
        value = shortcut(names)
        if value is not _UNSURE:
            return value
    try:
        result = compile_expression(source).eval(data=names)
    except (RuntimeError, TypeError, ValueError, OverflowError) as error:
        raise ExpressionError(f"{source!r}: {_reason(error)}") from None
    value = result.plain_value()
    if type(value) is str and result.type() == T.ERROR:  # an error's plain value is its message
        raise ExpressionError(f"{source!r}: {_reason(value)}")
    return value


# ------------------------------------------------------------- the shortcut

# Nearly half the expressions a lifecycle evaluates are a literal or a plain read such as
# `event.data.delivered_at`, `facts.installed` or `now`; a call into the CEL runtime costs
# several times what reading the value does. The shortcut gives what the runtime would give,
# or _UNSURE whenever it is not certain (a key missing, a value that is not a plain scalar,
# a string the runtime might refuse): then the runtime decides, errors included.

_UNSURE = object()
_INT_RANGE = range(-(2**63), 2**63)
_PATH = re.compile(r"\s*((?:customer|event|facts|vars|promises|now)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*")
_INT = re.compile(r"\s*(0|-?[1-9][0-9]{0,17})\s*")
_LITERALS = {"true": True, "false": False, "null": None}


@lru_cache(maxsize=4096)
def _shortcut(source: str) -> Any:
    """A function names → value for a literal or a plain read; None for anything else."""
    try:
        compile_expression(source)  # what does not compile fails in the runtime, as before
    except ExpressionError:
        return None
    text = source.strip()
    if text in _LITERALS:
        constant = _LITERALS[text]
        return lambda names: constant
    if _INT.fullmatch(source):
        number = int(text)
        return lambda names: number
    if _PATH.fullmatch(source):
        path = text.split(".")
        return lambda names: _read(names, path)
    return None


def _read(names: dict[str, Any], path: list[str]) -> Any:
    value: Any = names
    for name in path:
        if type(value) is not dict or name not in value:
            return _UNSURE
        value = value[name]
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if value in _INT_RANGE else _UNSURE
    if kind is str:
        return value if value.isascii() else _UNSURE
    if kind is timestamp_pb2.Timestamp:  # how `to_cel` hands a time inside a map
        return _EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)
    if kind is datetime and value.tzinfo is timezone.utc:  # `now`
        return value
    return _UNSURE


def _reason(error: Any) -> str:
    # The runtime prefixes a status code ("INVALID_ARGUMENT: ..."); a timeline line needs the gist.
    text = str(error.args[0] if isinstance(error, Exception) and error.args else error)
    code, sep, rest = text.partition(": ")
    if sep and code.isupper() and code.replace("_", "").isalpha():
        text = rest
    text = text.replace("int64", "int").replace("uint64", "uint")
    overload = re.match(r"No matching overloads found : (\S+?)\((.*)\)$", text)
    if overload:
        operator = _OPERATORS.get(overload.group(1), overload.group(1))
        types = overload.group(2).replace("null_type", "null")
        text = f"'{operator}' cannot take ({types})"
        if "null" in types:
            text += ": a value is null; guard it, e.g. facts.x != null && facts.x > 0"
    return text if len(text) <= 200 else text[:197] + "..."


_OPERATORS = {"_==_": "==", "_!=_": "!=", "_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">=", "_+_": "+",
              "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%", "!_": "!", "-_": "-", "_[_]": "[]"}


def duration_of(value: timedelta | str | None, names: Any) -> timedelta | None:
    """A step's `due`, `timeout` or `duration`: the literal, or its expression's value.

    `names(source)` gives the activation (the interpreter's `_names`); raises ExpressionError
    when the expression fails or gives no duration.
    """
    if value is None or isinstance(value, timedelta):
        return value
    result = evaluate(value, names(value))
    if not isinstance(result, timedelta):
        raise ExpressionError(f"{value!r} gave {result!r}, not a duration")
    return result


def is_true(source: str, names: dict[str, Any]) -> bool:
    """A condition: true only when the expression yields boolean true."""
    return evaluate(source, names) is True


__all__ = [
    "ROOTS", "FUNCTIONS", "ExpressionError", "evaluate", "is_true", "duration_of", "compile_expression",
    "parse_time", "parse_delta", "to_plain", "to_cel", "add_months", "add_years",
]
