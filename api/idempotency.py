"""The API's memory of idempotency keys: key → fingerprint of the body and the first answer.

The engine already acts on a key once: each lifecycle keeps the keys it has seen (the last
1,000, across continue-as-new) and answers `duplicate`. What the engine does not keep is the
body that came with a key, so "same key, different body" (a client bug that would otherwise
be silently swallowed) is detected here, in an LRU per API process:

- same key, same body, first answer known → 200 with the first answer, without calling Temporal;
- same key, same body, first request still in flight → wait for it, then as above;
- same key, different body → 409 `idempotency_key_reused`;
- a key this process has not seen (another process, a restart, evicted) → the engine decides,
  and a key it has seen is answered 200 `duplicate` with the lifecycle's current stage.

Keys are scoped per customer, as in the engine. Only accepted (or duplicate) answers are
remembered: after a rejection the same key may be sent again, and it is judged afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from api.errors import ApiError

Answer = tuple[int, dict[str, Any]]


def fingerprint(body: dict[str, Any]) -> str:
    """A hash of a request body that ignores key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    answer: dict[str, Any] | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class IdempotencyRecord:
    """An LRU of (customer, key) → body fingerprint and first answer."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def once(self, scope: tuple[str, str], print_: str, send: Callable[[], Awaitable[Answer]]) -> Answer:
        """Answer a keyed request: replay, conflict, or `send()` as the first of its key."""
        while (entry := self._entries.get(scope)) is not None:
            self._entries.move_to_end(scope)
            if entry.fingerprint != print_:
                raise ApiError(409, "idempotency_key_reused",
                               f"idempotency key '{scope[1]}' was used with a different body "
                               f"for customer '{scope[0]}'", field="idempotency_key")
            if entry.answer is not None:
                return 200, {**entry.answer, "status": "duplicate"}
            await entry.settled.wait()  # the first request with this key is in flight
        entry = _Entry(print_)
        self._entries[scope] = entry
        self._trim()
        try:
            status, body = await send()
        except BaseException:
            self._forget(scope, entry)
            raise
        finally:
            entry.settled.set()
        if status in (200, 202):
            entry.answer = body
        else:
            self._forget(scope, entry)
        return status, body

    def _forget(self, scope: tuple[str, str], entry: _Entry) -> None:
        if self._entries.get(scope) is entry:
            del self._entries[scope]

    def _trim(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
