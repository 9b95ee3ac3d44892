"""Size budgets, set well under Temporal's limits, the helpers that keep data inside them, and the
id rules: one module for the engine, the HTTP API, the CLI and `LifecycleClient`.

Temporal refuses a payload over 2 MB (the whole workflow input, an activity's arguments, a
query result) and terminates a run whose history passes ~50 MB. A lifecycle lives for years
and takes thousands of events, so everything it keeps is bounded by construction:

| what                                   | budget   | when over it                              |
| -------------------------------------- | -------- | ----------------------------------------- |
| an event's `data` (JSON)               | 64 KiB   | refused (422 `payload_too_large`)         |
| an event's `customer` profile (JSON)   | 16 KiB   | refused (422 `payload_too_large`)         |
| any one string in `data` or `customer` | 16 KiB   | refused (422 `payload_too_large`, field)  |
| one message or task (JSON)             | 256 KiB  | the step is held as a `payload` incident  |
| one var or fact value (JSON)           | 64 KiB   | the step is held as a `payload` incident  |
| event data copied to the timeline      | 2 KiB    | long strings and lists are cut, marked    |
| events of one name waiting in an inbox | 100      | the oldest is dropped, and recorded       |

An event of at most ~64 KiB (data and profile together) is 1/30 of a payload blob, and a
suggested continue-as-new (4 MB of history) comes only after some sixty of the largest events
(docs/events.md, "Limits and ids").
"""

from __future__ import annotations

import json
import re
from typing import Any

EVENT_DATA_BYTES = 64 * 1024
ACTION_BYTES = 256 * 1024
VALUE_BYTES = 64 * 1024
RECORD_BYTES = 2 * 1024
INBOX_PER_EVENT = 100
UPDATES_PER_RUN = 1000  # Temporal refuses updates past 2,000 per run: continue well before
PROFILE_BYTES = 16 * 1024
"""The `customer` profile fields an event sets, serialized as compact JSON (UTF-8)."""
STRING_BYTES = 16 * 1024
"""Any single string inside an event's `data` or `customer` (UTF-8): strings are copied into facts."""


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (what Temporal stores, near enough)."""
    return len(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode())


def fits(value: Any, budget: int) -> bool:
    """Whether `value` as JSON takes at most `budget` bytes (judged by `size_bound` first, and
    measured exactly only when that bound is over the budget)."""
    bound = size_bound(value)
    if bound is not None and bound <= budget:
        return True
    return json_size(value) <= budget


def size_bound(value: Any) -> int | None:
    """An upper bound of `json_size(value)` without serializing it (a character takes at most
    6 bytes in JSON, a number at most 24); None for a value of another type (measure it)."""
    kind = type(value)
    if kind is str:
        return 6 * len(value) + 2
    if value is None or kind is bool or kind is float or kind is int and value.bit_length() <= 64:
        return 24
    if kind is dict:
        total = 2
        for key, item in value.items():
            # A text item (the most common) inline, the rest by recursion: the same bound.
            inner = 6 * len(item) + 2 if type(item) is str else size_bound(item)
            if inner is None or type(key) is not str:
                return None
            total += 6 * len(key) + 4 + inner
        return total
    if kind is list:
        total = 2
        for item in value:
            inner = 6 * len(item) + 2 if type(item) is str else size_bound(item)
            if inner is None:
                return None
            total += inner + 1
        return total
    return None


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


# --- ids and event budgets, checked before anything reaches Temporal --------------------------

ID_CHARACTERS = "A-Za-z0-9._:@-"
ID_PATTERN = rf"^[{ID_CHARACTERS}]{{1,200}}$"
"""Customer ids, event and stage names: 1-200 characters of letters, digits and `. _ : @ -`.

A customer id becomes part of a workflow id (`lifecycle/<id>`) and of visibility queries."""

ID_RULE = "1-200 characters of A-Z a-z 0-9 . _ : @ -"
"""`ID_PATTERN` in words, for error messages."""

KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""Idempotency keys: 1-200 printable ASCII characters without spaces."""

KEY_RULE = "1-200 printable ASCII characters, no spaces"

_ID = re.compile(ID_PATTERN)
_KEY = re.compile(KEY_PATTERN)


def is_id(value: object) -> bool:
    """Whether `value` is a valid customer id, event name or stage name."""
    return isinstance(value, str) and bool(_ID.match(value))


def is_key(value: object) -> bool:
    """Whether `value` is a valid idempotency key."""
    return isinstance(value, str) and bool(_KEY.match(value))


class TooLarge(ValueError):
    """A value is over its budget; `field` names it and `limit` is the budget in bytes."""

    def __init__(self, message: str, field: str, limit: int) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


def check_size(value: Any, field: str, limit: int, inner: str = "") -> None:
    """Raise TooLarge when `value` (a payload named `field`) or any string in it is over budget.

    Strings are checked first, so the error names the field that is too long, as `inner` + its
    path (payload fields are named bare, `ticket_id`; profile fields as `customer.name`)."""
    path = _long_string(value, field, inner)
    if path is not None:
        raise TooLarge(f"field '{path}' is longer than {STRING_BYTES} bytes", path, STRING_BYTES)
    size = json_size(value)
    if size > limit:
        raise TooLarge(f"'{field}' is {size} bytes serialized; the limit is {limit} bytes", field, limit)


def _long_string(value: Any, field: str, inner: str) -> str | None:
    """The path of the first string (or map key) over STRING_BYTES, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            # A cheap bound first: a str of n characters has at most 4n UTF-8 bytes.
            if len(item) * 4 > STRING_BYTES and len(item.encode()) > STRING_BYTES:
                return inner + path if path else field
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if len(str(key)) * 4 > STRING_BYTES and len(str(key).encode()) > STRING_BYTES:
                    return inner + path if path else field
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None
