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
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cel_expr_python import cel

from engine import calendars
from engine.shortcut import UNSURE, reader, shortcut
from engine.types import parse_delta, parse_time, to_cel, to_plain  # noqa: F401  (re-exported)

ROOTS = ("customer", "event", "facts", "vars", "promises", "now")


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
    quick = shortcut(source)  # engine.shortcut: the simple cases, without the runtime
    if quick is not None:
        value = quick(names)
        if value is not UNSURE:
            return value
    try:
        result = compile_expression(source).eval(data=names)
    except (RuntimeError, TypeError, ValueError, OverflowError) as error:
        raise ExpressionError(f"{source!r}: {_reason(error)}") from None
    value = result.plain_value()
    if type(value) is str and result.type() == T.ERROR:  # an error's plain value is its message
        raise ExpressionError(f"{source!r}: {_reason(value)}")
    return value


def evaluate_in(source: str, scope: Any) -> Any:
    """`evaluate(source, scope.names())` (scope: engine.context.Scope), with a simple expression
    reading its fields straight from the scope (engine.shortcut.reader): the names are built
    only when the runtime must decide."""
    quick = reader(source)
    if quick is not None:
        value = quick(scope)
        if value is not UNSURE:
            return value
    return evaluate(source, scope.names())


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
    "ROOTS", "FUNCTIONS", "ExpressionError", "evaluate", "evaluate_in", "is_true", "duration_of", "compile_expression",
    "parse_time", "parse_delta", "to_plain", "to_cel", "add_months", "add_years",
]
