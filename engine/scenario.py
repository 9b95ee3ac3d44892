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

from datetime import date, datetime, timezone
from typing import Any

from engine.durations import parse_duration
from engine.expressions import parse_time, to_plain
from engine.simulator import ScheduledEvent
from engine.state import Event

DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class ScenarioError(ValueError):
    """A scenario file is malformed; the message says where."""


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
    except ValueError as error:
        raise ScenarioError(f"{where}: 'at' {error}") from None


def parse_events(data: Any, customer_id: str, where: str = "events") -> list[ScheduledEvent]:
    """The `events:` list of a scenario as scheduled events for `customer_id`."""
    if isinstance(data, list):
        data = {"events": data}
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ScenarioError(f"{where}: expected a mapping with an 'events' list")
    start = DEFAULT_START
    if data.get("start") is not None:
        start = parse_time(data["start"])
        if start is None:
            raise ScenarioError(f"{where}: 'start' {data['start']!r} is not a date or time")
    scheduled = []
    for index, item in enumerate(data["events"]):
        here = f"{where}: events[{index}]"
        if not isinstance(item, dict) or "event" not in item:
            raise ScenarioError(f"{here}: expected a mapping with 'event' and 'at'")
        unknown = set(item) - {"at", "event", "data", "key", "customer"}
        if unknown:
            raise ScenarioError(f"{here}: unknown field '{sorted(unknown)[0]}'")
        scheduled.append(ScheduledEvent(
            at=moment(item.get("at", "0s"), start, here),
            event=Event(customer_id=customer_id, name=str(item["event"]), data=_plain(item.get("data") or {}),
                        idempotency_key=item.get("key"), customer=_plain(item.get("customer"))),
        ))
    return scheduled


def parse_customer(data: Any, where: str = "customer") -> dict[str, Any]:
    """A customer profile mapping; `id` defaults to customer-1."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping of customer fields")
    customer = _plain(data)
    customer.setdefault("id", "customer-1")
    customer["id"] = str(customer["id"])
    return customer
