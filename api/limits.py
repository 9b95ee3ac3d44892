"""What a request may weigh: body size (413), time to send it (408), JSON that parses, nesting
depth, id syntax.

Ids become Temporal workflow ids and visibility query values, so they are checked here,
before anything reaches Temporal. The id rules and the event budgets live in engine/limits.py,
shared with the CLI and `LifecycleClient`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError

from engine.limits import ID_CHARACTERS, ID_PATTERN, KEY_PATTERN, is_id

__all__ = ["ID_CHARACTERS", "ID_PATTERN", "KEY_PATTERN", "BodyLimit", "BodyTimeout", "BodyTooLarge", "is_id",
           "parse_json", "too_large", "too_slow"]

MAX_DEPTH = 16
"""Nesting of objects and arrays in a request body; an event needs far fewer."""


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class BodyTimeout(Exception):
    """The request body did not arrive within the time allowed."""


class BodyLimit:
    """ASGI middleware: refuse bodies above `max_bytes` (declared or streamed) with 413, and
    bodies that take longer than `timeout` seconds to arrive with 408.

    The time counts from the start of the request, so a client dribbling a byte a second
    cannot hold a connection (and a worker slot of the server) for long."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await too_large(self.max_bytes).response()(scope, receive, send)
            return
        received = 0
        complete = False
        deadline = time.monotonic() + self.timeout

        async def counted() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() waits for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTimeout() from None  # the route's handler answers 408
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge()  # a chunked body: the route's handler answers 413
            return message

        await self.app(scope, counted, send)


def too_large(max_bytes: int) -> ApiError:
    """The 413 answer, naming the limit."""
    return ApiError(413, "body_too_large", f"the request body is larger than {max_bytes} bytes",
                    limit=max_bytes)


def too_slow(seconds: float) -> ApiError:
    """The 408 answer; the connection is closed, since the rest of the body may still come."""
    return ApiError(408, "body_timeout", f"the request body did not arrive within {seconds:g}s",
                    headers={"Connection": "close"}, limit=seconds)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """The body as JSON, or 400; NaN/Infinity are refused and nesting is bounded."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "invalid_json", f"the body nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if _depth(value) > MAX_DEPTH:
        raise ApiError(400, "invalid_json", f"the body nests deeper than {MAX_DEPTH} levels")
    if _has_lone_surrogate(value):
        # JSON's \ud800 escapes parse, but no UTF-8 can carry half a pair: the engine, Temporal
        # and the outbox would fail on it later, and the API did with a 500.
        raise ApiError(400, "invalid_json", "the body has a string with an unpaired UTF-16 surrogate "
                                            "(a \\uD800-\\uDFFF escape without its other half)")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string or object key holds a surrogate code point (json.loads leaves a lone
    `\\udXXX` escape as one; a well-formed pair becomes one character)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: Any) -> int:
    # Iterative, so a deep body cannot exhaust the stack here either.
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest
