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

START_TO_CLOSE = timedelta(hours=1)
"""One attempt (a run of sends): well beyond a slow relay's slowest message, so the server
never abandons an attempt whose relay is still answering. RFC 5321's per-reply timeouts
(5 minutes each, 10 for the reply to the message) make one email up to ~15 minutes in
practice; webhook calls time out after 10 s. A dead worker is noticed by the heartbeat."""

SCHEDULE_TO_CLOSE = timedelta(days=1)
"""All attempts: a message a day late is still worth sending; after that it is recorded as failed."""

HEARTBEAT_TIMEOUT = timedelta(seconds=15)
"""A worker that dies mid-delivery is noticed after this long, not after START_TO_CLOSE; a live
one heartbeats every 5 s while it waits for a slow relay (activities.delivery)."""

DELIVERY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": START_TO_CLOSE,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "schedule_to_close_timeout": SCHEDULE_TO_CLOSE,
    "retry_policy": RETRY_POLICY,
}
"""Keyword arguments for `workflow.execute_activity("deliver_all", actions, **DELIVERY_OPTIONS)`."""


RECORD_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),  # a write takes milliseconds
    "schedule_to_close_timeout": SCHEDULE_TO_CLOSE,
    "retry_policy": RETRY_POLICY,
}
"""Keyword arguments for the `store_records` local activity (analytics): it appends to the
worker's journal (milliseconds); a journal that cannot be written is retried for a day (past a
minute between tries, on durable timers), after which that batch is given up (the records stay
in Temporal's history)."""
