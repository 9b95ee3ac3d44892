"""Size budgets, set well under Temporal's limits, and the helpers that keep data inside them.

Temporal refuses a payload over 2 MB (the whole workflow input, an activity's arguments, a
query result) and terminates a run whose history passes ~50 MB. A lifecycle lives for years
and takes thousands of events, so everything it keeps is bounded by construction:

| what                                   | budget   | when over it                              |
| -------------------------------------- | -------- | ----------------------------------------- |
| an event's `data` (JSON)               | 64 KiB   | refused (413 / `too_large`)               |
| one message or task (JSON)             | 256 KiB  | the step is held as a `payload` incident  |
| one var or fact value (JSON)           | 64 KiB   | the step is held as a `payload` incident  |
| event data copied to the timeline      | 2 KiB    | long strings and lists are cut, marked    |
| events of one name waiting in an inbox | 100      | the oldest is dropped, and recorded       |
"""

from __future__ import annotations

import json
from typing import Any

EVENT_DATA_BYTES = 64 * 1024
ACTION_BYTES = 256 * 1024
VALUE_BYTES = 64 * 1024
RECORD_BYTES = 2 * 1024
INBOX_PER_EVENT = 100
UPDATES_PER_RUN = 1000  # Temporal refuses updates past 2,000 per run: continue well before


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (what Temporal stores, near enough)."""
    return len(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode())


def fits(value: Any, budget: int) -> bool:
    """Whether `value` as JSON takes at most `budget` bytes: a quick upper bound first (every
    check of every event and message pays for this), the exact size only near the budget."""
    return _upper_bound(value) <= budget or json_size(value) <= budget


def _upper_bound(value: Any) -> int:
    # A character takes at most 6 bytes in JSON (\u001f); a number at most 24.
    if isinstance(value, str):
        return 6 * len(value) + 2
    if isinstance(value, dict):
        return 2 + sum(_upper_bound(str(key)) + _upper_bound(item) + 2 for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return 2 + sum(_upper_bound(item) + 1 for item in value)
    if value is None or isinstance(value, (bool, int, float)):
        return 24
    return 6 * len(str(value)) + 2


def bounded(value: Any, budget: int = RECORD_BYTES) -> Any:
    """`value` itself when it fits `budget`, else a copy with long strings and lists cut.

    For what is shown (timeline, status), never for what is acted on.
    """
    if fits(value, budget):
        return value
    return _cut(value, max(16, budget // 8))


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"
    if isinstance(value, dict):
        items = list(value.items())
        kept = {str(k): _cut(v, limit) for k, v in items[:20]}
        if len(items) > 20:
            kept["…"] = f"{len(items) - 20} more fields"
        return kept
    if isinstance(value, list):
        kept_list = [_cut(v, limit) for v in value[:10]]
        if len(value) > 10:
            kept_list.append(f"… {len(value) - 10} more items")
        return kept_list
    return value
