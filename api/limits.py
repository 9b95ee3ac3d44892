"""What a request may weigh: body size (413), JSON that parses, nesting depth, id syntax.

Ids become Temporal workflow ids and visibility query values, so they are checked here,
before anything reaches Temporal.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError

ID_CHARACTERS = "A-Za-z0-9._:@-"
ID_PATTERN = rf"^[{ID_CHARACTERS}]{{1,200}}$"
"""Customer ids and event names: 1-200 characters of letters, digits and `. _ : @ -`."""

KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""Idempotency keys: 1-200 printable ASCII characters without spaces."""

MAX_DEPTH = 16
"""Nesting of objects and arrays in a request body; an event needs far fewer."""

_ID = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """Whether `value` is a valid customer id or event name."""
    return bool(_ID.match(value))


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class BodyLimit:
    """ASGI middleware: refuse bodies above `max_bytes` (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await too_large(self.max_bytes).response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()  # a chunked body: the route's handler answers 413
            return message

        await self.app(scope, counted, send)


def too_large(max_bytes: int) -> ApiError:
    """The 413 answer."""
    return ApiError(413, "body_too_large", f"the request body is larger than {max_bytes} bytes")


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
    return value


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
