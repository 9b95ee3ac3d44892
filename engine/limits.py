"""What an event may weigh and how ids look: one rule for the HTTP API, the CLI and the client.

Temporal's own limits are far above these budgets on purpose (docs/events.md, "Limits and ids"):
a payload blob is refused at 2 MB, a gRPC message at 4 MB, and a run's history is terminated at
50 MB; the server suggests continue-as-new at 4 MB of history. An event is stored in history
once as the update's argument; its values may be copied into the customer's facts and profile,
which travel in every continue-as-new input and every status answer. With an event of at most
~80 KiB, a suggested continue-as-new (4 MB) comes after about 50 of the largest events, and one
event is 1/25 of a payload blob: nothing a caller sends can push a lifecycle into a hard limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

ID_CHARACTERS = "A-Za-z0-9._:@-"
ID_PATTERN = rf"^[{ID_CHARACTERS}]{{1,200}}$"
"""Customer ids, event and stage names: 1-200 characters of letters, digits and `. _ : @ -`.

A customer id becomes part of a workflow id (`lifecycle/<id>`) and of visibility queries."""

ID_RULE = "1-200 characters of A-Z a-z 0-9 . _ : @ -"
"""`ID_PATTERN` in words, for error messages."""

KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""Idempotency keys: 1-200 printable ASCII characters without spaces."""

KEY_RULE = "1-200 printable ASCII characters, no spaces"

MAX_DATA_BYTES = 64 * 1024
"""An event's `data`, serialized as compact JSON (UTF-8)."""

MAX_PROFILE_BYTES = 16 * 1024
"""The `customer` profile fields an event sets, serialized as compact JSON (UTF-8)."""

MAX_STRING_BYTES = 16 * 1024
"""Any single string inside `data` or `customer` (UTF-8): the engine copies strings into facts."""

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


def serialized_size(value: Any) -> int:
    """Bytes of `value` as compact JSON, the way it travels to Temporal (near enough)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def check_size(value: Any, field: str, limit: int, inner: str = "") -> None:
    """Raise TooLarge when `value` (a payload named `field`) or any string in it is over budget.

    Strings are checked first, so the error names the field that is too long, as `inner` + its
    path (payload fields are named bare, `ticket_id`; profile fields as `customer.name`)."""
    path = _long_string(value, field, inner)
    if path is not None:
        raise TooLarge(f"field '{path}' is longer than {MAX_STRING_BYTES} bytes", path, MAX_STRING_BYTES)
    size = serialized_size(value)
    if size > limit:
        raise TooLarge(f"'{field}' is {size} bytes serialized; the limit is {limit} bytes", field, limit)


def _long_string(value: Any, field: str, inner: str) -> str | None:
    """The path of the first string (or map key) over MAX_STRING_BYTES, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            # A cheap bound first: a str of n characters has at most 4n UTF-8 bytes.
            if len(item) * 4 > MAX_STRING_BYTES and len(item.encode()) > MAX_STRING_BYTES:
                return inner + path if path else field
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if len(str(key)) * 4 > MAX_STRING_BYTES and len(str(key).encode()) > MAX_STRING_BYTES:
                    return inner + path if path else field
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None
