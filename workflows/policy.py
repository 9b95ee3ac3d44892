"""How the workflow calls delivery activities: timeouts and the retry schedule.

Only timedelta and RetryPolicy here: nothing that the workflow sandbox would object to.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,  # unlimited: transient trouble is bounded by the schedule-to-close timeout
)
"""Exponential backoff for transient delivery failures; permanent ones are non-retryable."""

START_TO_CLOSE = timedelta(seconds=60)
"""One attempt: longer than the SMTP (30 s) and webhook (10 s) client timeouts."""

SCHEDULE_TO_CLOSE = timedelta(days=1)
"""All attempts: a message a day late is still worth sending; after that it is recorded as failed."""

HEARTBEAT_TIMEOUT = timedelta(seconds=15)
"""A worker that dies mid-delivery is noticed after this long, not after START_TO_CLOSE."""

DELIVERY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": START_TO_CLOSE,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "schedule_to_close_timeout": SCHEDULE_TO_CLOSE,
    "retry_policy": RETRY_POLICY,
}
"""Keyword arguments for `workflow.execute_activity(deliver, action, **DELIVERY_OPTIONS)`."""
