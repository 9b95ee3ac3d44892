"""Bearer tokens: who is calling, checked in constant time; tokens never reach a log.

Every token is compared on every request (no early exit), so the time an answer takes
does not tell which caller's token a guess came close to. The interactive docs also take
HTTP Basic with the token as password, so a browser can open them with its login dialog.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError

# Declared for the OpenAPI document (Swagger UI's Authorize button); checked by `Callers`.
bearer_scheme = HTTPBearer(auto_error=False, description="A token from LIFECYCLE_API_TOKENS.")


class Callers:
    """The callers allowed in: name → token."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]

    def identify(self, presented: str) -> str | None:
        """The caller's name for a presented token, or None."""
        candidate = presented.encode()
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(candidate, token) and found is None:
                found = name
        return found

    def from_header(self, authorization: str | None, *, basic: bool = False) -> str | None:
        """The caller named by an Authorization header (Bearer; Basic too when `basic`)."""
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return self.identify(credentials)
        if basic and scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.identify(decoded.partition(":")[2])
        return None


def unauthorized(basic: bool = False) -> ApiError:
    """The 401 answer; a Basic challenge makes a browser ask for the docs password."""
    challenge = 'Basic realm="lifecycle API docs"' if basic else 'Bearer realm="lifecycle"'
    return ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                    headers={"WWW-Authenticate": challenge})


async def require_caller(request: Request,
                         _declared: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> str:
    """FastAPI dependency: the caller's name; 401 without a valid token, 429 above the caller's rate."""
    callers: Callers = request.app.state.callers
    name = callers.from_header(request.headers.get("authorization"))
    if name is None:
        raise unauthorized()
    request.state.caller = name
    rate = request.app.state.rate
    if rate is not None:
        await rate.take(name)
    return name


def require_docs_caller(request: Request) -> str:
    """Like `require_caller`, also accepting HTTP Basic (any user name, the token as password)."""
    callers: Callers = request.app.state.callers
    name = callers.from_header(request.headers.get("authorization"), basic=True)
    if name is None:
        raise unauthorized(basic=True)
    return name
