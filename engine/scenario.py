"""Scenario files for the simulator: a customer and events at relative or absolute times.

```yaml
start: 2026-03-01T09:00:00Z      # optional; relative times count from here
events:
  - at: 0d                       # a duration from start, or an ISO date/time
    event: order.placed
    data: {order_id: A-1, promised_delivery: 2026-03-10, price: 1200}
  - at: 2026-03-09
    event: order.delivered
    data: {delivered_at: 2026-03-09}
```
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.durations import EXAMPLES, parse_duration
from engine.expressions import parse_time, to_plain
from engine.simulator import ScheduledEvent
from engine.state import Event
from engine.yamlsource import DataPath, Document

DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
DEFAULT_HORIZON = timedelta(days=3653)
"""How far the simulator runs a lifecycle when nothing says where to stop: ten years."""


class ScenarioError(ValueError):
    """A scenario file is malformed; the message says where (`file:line:column:` when known).

    `reason` is the message without the place, for callers that place it themselves.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def read_scenario_file(path: Path) -> Document:
    """A customer or events file, read by the strict loader the playbooks use (no alias bombs,
    no Python tags, every value located); raise ScenarioError with every error, one per line."""
    from engine.loader import load_document

    _, doc, errors = load_document(path)
    if errors or doc is None:
        raise ScenarioError("\n".join(str(error) for error in sorted(set(errors))))
    return doc


def _locator(where: str, doc: Document | None) -> Callable[[DataPath, str], ScenarioError]:
    """Errors at a data path: located in `doc` when there is one, else prefixed with `where`."""

    def error(path: DataPath, message: str) -> ScenarioError:
        if doc is not None:
            return ScenarioError(str(doc.error(path, message)), message)
        named = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
        return ScenarioError(": ".join(part for part in (where, named, message) if part), message)

    return error


def check_profile(lifecycle: Any, customer: dict[str, Any], where: str = "customer",
                  doc: Document | None = None) -> None:
    """A customer file's fields checked as an event's `customer` is (an unknown field, a wrong
    type, an unknown time zone), the error located at the field in the file."""
    from engine.events import PayloadError, check_customer

    try:
        check_customer(lifecycle, customer["id"], customer)
    except PayloadError as problem:
        field = (problem.field or "").removeprefix("customer.").split(".")[0]
        raise _locator(where, doc)((field,) if field in customer else (), str(problem)) from None


def _plain(value: Any) -> Any:
    # YAML turns 2026-03-10 into a date; payloads travel as ISO strings, as over HTTP.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return to_plain(value)


def moment(value: Any, start: datetime, where: str) -> datetime:
    """An `at:` value: a duration after `start`, or an absolute date or time."""
    absolute = parse_time(value)
    if absolute is not None:
        return absolute
    try:
        return start + parse_duration(str(value))
    except (ValueError, OverflowError) as error:
        raise ScenarioError(f"{where}: 'at' {error}") from None


def parse_until(value: Any, start: datetime) -> datetime:
    """`--until` / `until:`: a date or time, or a duration after `start`; ValueError if neither."""
    absolute = parse_time(value)
    if absolute is not None:
        return absolute
    try:
        return start + parse_duration(str(value))
    except ValueError:
        raise ValueError(f"'{value}' is neither a date (2027-06-01) nor a duration ({EXAMPLES})") from None
    except OverflowError:
        raise ValueError(f"'{value}' is too far in the future") from None


def parse_events(data: Any, customer_id: str, where: str = "events",
                 doc: Document | None = None) -> list[ScheduledEvent]:
    """The `events:` list of a scenario as scheduled events for `customer_id`.

    With `doc` (the file the data came from), errors are located `file:line:column:`.
    """
    error = _locator(where, doc)
    prefix: DataPath = ("events",)
    if isinstance(data, list):
        data, prefix = {"events": data}, ()
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise error((), "expected a mapping with an 'events' list")
    start = DEFAULT_START
    if data.get("start") is not None:
        start = parse_time(data["start"])
        if start is None:
            raise error(("start",), f"'start' {data['start']!r} is not a date or time")
    scheduled = []
    for index, item in enumerate(data["events"]):
        here = (*prefix, index)
        if not isinstance(item, dict) or "event" not in item:
            raise error(here, "expected a mapping with 'event' and 'at'")
        unknown = set(item) - {"at", "event", "data", "key", "customer"}
        if unknown:
            raise error((*here, sorted(unknown)[0]), f"unknown field '{sorted(unknown)[0]}'")
        try:
            at = moment(item.get("at", "0s"), start, "")
        except ScenarioError as problem:
            raise error((*here, "at"), str(problem).removeprefix(": ")) from None
        try:
            event = Event(customer_id=customer_id, name=str(item["event"]), data=_plain(item.get("data") or {}),
                          idempotency_key=item.get("key"), customer=_plain(item.get("customer")))
        except ValueError as problem:  # pydantic's ValidationError: a key that is not text, data not a mapping
            detail = problem.errors()[0] if hasattr(problem, "errors") else None
            field = {"idempotency_key": "key"}.get(str(detail["loc"][0]), str(detail["loc"][0])) if detail else ""
            message = f"'{field}': {detail['msg']}" if detail else str(problem)
            raise error((*here, field) if field else here, message) from None
        scheduled.append(ScheduledEvent(at=at, event=event))
    return scheduled


def parse_customer(data: Any, where: str = "customer", doc: Document | None = None) -> dict[str, Any]:
    """A customer profile mapping; `id` defaults to customer-1."""
    if not isinstance(data, dict):
        raise _locator(where, doc)((), "expected a mapping of customer fields")
    customer = _plain(data)
    customer.setdefault("id", "customer-1")
    customer["id"] = str(customer["id"])
    return customer
