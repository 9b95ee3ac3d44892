"""Actions POSTed as JSON to another system (helpdesk, task tracker, SMS gateway).

The receiver gets the action id as `Idempotency-Key`, so a retried POST can be
acknowledged rather than acted on twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import httpx

from activities.config import WebhookSettings
from activities.errors import permanent, retryable
from engine.state import Action, ActionResult

RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "never"; every 5xx is retryable too."""


async def post_action(action: Action, settings: WebhookSettings) -> ActionResult:
    """POST the action; 2xx is done, 408/425/429/5xx and network errors retry, other 4xx fail."""
    headers = {
        "Idempotency-Key": action.id,
        "X-Lifecycle-Action": action.id,
        "User-Agent": "lifecycle-playbooks",
    }
    if settings.token:
        headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
    try:
        async with httpx.AsyncClient(timeout=settings.timeout) as client:
            response = await client.post(
                settings.url or "", json=action.model_dump(mode="json"), headers=headers
            )
    except httpx.TransportError as error:
        # Connect/read timeouts, refused connections, protocol errors: try again later.
        raise retryable(f"webhook {settings.url} unreachable: {error!r}") from error
    status = response.status_code
    if 200 <= status < 300:
        return ActionResult(status="done", detail=f"webhook {status}")
    text = f"webhook {settings.url} answered {status}: {response.text[:200]}"
    if status >= 500 or status in RETRYABLE_STATUS:
        raise retryable(text, retry_after=_retry_after(response.headers.get("Retry-After")))
    raise permanent(text)


def _retry_after(value: str | None) -> timedelta | None:
    """Honour a Retry-After header (seconds or an HTTP date), capped at an hour."""
    if not value:
        return None
    try:
        delay = timedelta(seconds=float(value))
    except ValueError:
        try:
            delay = parsedate_to_datetime(value) - datetime.now(timezone.utc)
        except (TypeError, ValueError):
            return None
    if delay <= timedelta(0):
        return None  # the policy's own backoff applies
    return min(delay, timedelta(hours=1))
