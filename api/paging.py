"""Page tokens of GET /v1/customers: Temporal's next-page token, sealed for callers.

A caller gets `base64url(mac + token)`, the MAC binding the token to the listing's filter.
A token that was not given out for this filter is refused with 422 before it reaches
Temporal, whose visibility store answers a garbled token with an internal error. The MAC
key is derived from the configured API tokens, so every API instance with the same
configuration accepts the others' page tokens; rotating API tokens ends open paginations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from api.errors import ApiError

_MAC_BYTES = 16


class PageTokens:
    """Seal and open page tokens."""

    def __init__(self, api_tokens: Mapping[str, str]) -> None:
        material = "\n".join(f"{name}:{token}" for name, token in sorted(api_tokens.items()))
        self._key = hashlib.sha256(b"lifecycle page tokens\n" + material.encode()).digest()

    def _mac(self, scope: str, token: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\0" + token, hashlib.sha256).digest()[:_MAC_BYTES]

    def seal(self, scope: str, token: bytes | None) -> str | None:
        """The caller's form of Temporal's `token` for a listing with this `scope` (its filter)."""
        if not token:
            return None
        return base64.urlsafe_b64encode(self._mac(scope, token) + token).decode().rstrip("=")

    def open(self, scope: str, sealed: str | None) -> bytes | None:
        """Temporal's token back, or 422 when `sealed` was not given out for this scope."""
        if not sealed:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        mac, token = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not token or not hmac.compare_digest(mac, self._mac(scope, token)):
            raise ApiError(422, "invalid_request", "page_token was not given out for this listing",
                           field="page_token")
        return token
