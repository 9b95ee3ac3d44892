"""Promises: what each kind of promise is (its type) and when it counts as kept.

A promise's `about` decides both: the type its `expected` and `actual` values must have
(checked when the playbook loads) and the comparison that keeps it. The tolerance is slack in
the customer's disfavour: a delivery one day late with `tolerance: 1d` is still kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from engine.types import parse_delta, parse_time, typed


@dataclass(frozen=True)
class PromiseKind:
    """What a promise about something compares, and how."""

    type: str | None  # the field kind of expected and actual (engine.types); None: any
    rule: str  # on_or_before, at_most, at_least, equal
    meaning: str  # for the docs and messages


PROMISE_KINDS: dict[str, PromiseKind] = {
    "delivery_date": PromiseKind("timestamp", "on_or_before", "delivered on or before the date (plus tolerance)"),
    "response_time": PromiseKind("duration", "at_most", "answered within the time (plus tolerance)"),
    "price": PromiseKind("number", "at_most", "charged at most the price (plus tolerance)"),
    "quantity": PromiseKind("number", "at_least",
                            "at least the amount: quantity, energy, uptime (minus tolerance)"),
    "scope": PromiseKind("string", "equal", "exactly what was promised"),
    "other": PromiseKind(None, "equal", "equal to what was promised (numbers: within tolerance)"),
}


def promise_type(about: str) -> str | None:
    """The field kind of a promise's expected and actual values; None when any type will do."""
    kind = PROMISE_KINDS.get(about)
    return kind.type if kind else None


def promise_kept(about: str, expected: Any, actual: Any, tolerance: Any = None) -> bool:
    """Whether `actual` keeps the promise of `expected`, by the rule of what it is `about`.

    Values may come as stored in state (ISO text, `2d`); they are typed by `about` first.
    A missing value (null) never keeps a promise, except when both are null.
    """
    kind = PROMISE_KINDS.get(about, PROMISE_KINDS["other"])
    expected, actual = typed(expected, kind.type), typed(actual, kind.type)
    if expected is None or actual is None:
        return expected is None and actual is None
    if kind.type is None:
        expected, actual = _guess(expected), _guess(actual)
    numeric = _is_number(expected) and _is_number(actual)
    timed = (parse_time(expected) is not None and parse_time(actual) is not None) or \
        (isinstance(expected, timedelta) and isinstance(actual, timedelta))
    if not (numeric or timed):
        return kind.rule == "equal" and expected == actual
    slack = _slack(tolerance, expected)
    if kind.rule in ("on_or_before", "at_most"):
        return actual <= expected + slack
    if kind.rule == "at_least":
        return actual >= expected - slack
    return expected - slack <= actual <= expected + slack


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _guess(value: Any) -> Any:
    # An `other` promise has no declared type: a date stays a date, a duration a duration.
    if isinstance(value, str):
        return parse_time(value) or value
    return value


def _slack(tolerance: Any, expected: Any) -> Any:
    """The tolerance in the unit of the values: a duration for times, an amount for numbers."""
    if parse_time(expected) is not None or isinstance(expected, timedelta):
        return parse_delta(tolerance) or timedelta(0)
    return tolerance if _is_number(tolerance) else 0
