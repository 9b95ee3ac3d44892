"""How a delivery failure is told to Temporal: retry later, or give up and record it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

RETRYABLE_TYPE = "DeliveryUnavailable"
"""ApplicationError type for failures that may pass on a later attempt."""

PERMANENT_TYPE = "DeliveryRejected"
"""ApplicationError type for failures no retry can fix; the workflow records them."""


def retryable(message: str, *, retry_after: timedelta | None = None) -> ApplicationError:
    """A failure worth retrying (connection refused, 4xx from SMTP, 5xx/429 from HTTP)."""
    return ApplicationError(message, type=RETRYABLE_TYPE, next_retry_delay=retry_after)


def permanent(message: str) -> ApplicationError:
    """A failure no retry can fix (mailbox does not exist, 4xx from a webhook)."""
    return ApplicationError(message, type=PERMANENT_TYPE, non_retryable=True)
