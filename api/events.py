"""Events in: envelope checks, idempotency, `LifecycleClient.send`, and the status code it earns.

| outcome                                          | status | code                       |
| ------------------------------------------------ | ------ | -------------------------- |
| accepted                                         | 202    |                            |
| queued: stored, applied when a worker takes it   | 202    |                            |
| duplicate (same key, same body)                  | 200    |                            |
| same key, different body                         | 409    | idempotency_key_reused     |
| unknown event, payload not matching its schema   | 422    | invalid_payload (field)    |
| data, profile or a string over its budget        | 422    | payload_too_large (field)  |
| no lifecycle, and the event does not start one   | 404    | customer_not_found         |
| the current stage cannot take the event          | 409    | stage_cannot_take_event    |
| the run took all the updates Temporal allows     | 409    | update_limit_reached       |
| the lifecycle's workflow code fails              | 409    | workflow_task_failed       |
| the lifecycle has ended                          | 410    | lifecycle_ended            |
| the lifecycle's rules fail on this event         | 422    | rule_failed                |
| the engine failed taking it (a bug)              | 500    | engine_error               |
| over Temporal's own size limit                   | 413    | too_large                  |
| too many events in flight for one lifecycle      | 429    | lifecycle_busy             |
| Temporal unreachable / no answer, no key to queue| 503/504| temporal_unavailable/...   |

The CLI's `lifecycle event` sends through the same `LifecycleClient.send`, so both roads
validate payloads and honour idempotency keys identically. docs/events.md lists every code.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from api.errors import ApiError, validation_error
from api.idempotency import Answer, IdempotencyRecord, fingerprint
from api.models import EventAnswer, EventIn
from engine.events import PayloadError
from engine.model import Lifecycle
from engine.state import Event, EventReceipt
from engine.limits import TooLarge
from workflows.client import (
    SIGNAL_TIMEOUT, LifecycleClient, LifecycleNotFound, TemporalBusy, TemporalRefused, check_sizes,
)

BATCH_CONCURRENCY = 32  # customers of one batch handled at once


# The engine's rejection codes (EventReceipt.code) → HTTP status and API code.
_REJECTIONS = {
    "ended": (410, "lifecycle_ended"),
    "stage_cannot_take": (409, "stage_cannot_take_event"),
    "not_a_start_event": (404, "customer_not_found"),
    "invalid_payload": (422, "invalid_payload"),
    "too_large": (422, "payload_too_large"),
    "unknown_task": (422, "unknown_task"),
    "rule_failed": (422, "rule_failed"),
    "internal_error": (500, "engine_error"),
    "no_incident": (409, "no_incident"),
    "task_closed": (409, "task_closed"),
}

# TemporalRefused codes → HTTP status; the code is passed on as it is.
# The last two are the API operator's to fix, not the caller's: 502, like a misconfigured upstream.
REFUSALS = {"update_limit_reached": 409, "workflow_task_failed": 409, "query_failed": 409,
            "too_large": 413, "temporal_refused": 422, "namespace_not_found": 502,
            "temporal_permission_denied": 502}


def rejection(receipt: EventReceipt) -> ApiError:
    """The error for a receipt the engine rejected, by the engine's rejection code."""
    status, code = _REJECTIONS.get(receipt.code, (409, "event_rejected"))
    return ApiError(status, code, receipt.reason, field=receipt.field if status == 422 else None,
                    stage=receipt.stage if status in (409, 410) else None)


def refused(error: TemporalRefused) -> ApiError:
    """The error for a refusal of Temporal's that sending again will not fix."""
    return ApiError(REFUSALS.get(error.code, 422), error.code, error.message)


def busy(error: TemporalBusy) -> ApiError:
    """429: Temporal holds too many updates in flight for one lifecycle; retry in a second."""
    return ApiError(429, "lifecycle_busy", str(error), headers={"Retry-After": "1"})


class EventDesk:
    """Takes events for the API: one at a time or in batches."""

    def __init__(self, lifecycles: LifecycleClient, record: IdempotencyRecord, timeout: float,
                 current: Callable[[], Lifecycle] | None = None) -> None:
        self.lifecycles = lifecycles
        self.record = record
        self.timeout = timeout
        self.current = current or (lambda: lifecycles.lifecycle)

    def parse(self, raw: Any, header_key: str | None = None) -> EventIn:
        """The envelope of one event, or a 422 naming the field."""
        if not isinstance(raw, dict):
            raise ApiError(422, "invalid_request", "an event must be a JSON object")
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as error:
            raise validation_error(error) from None
        if header_key is not None:
            if event.idempotency_key not in (None, header_key):
                raise ApiError(422, "invalid_request", "the Idempotency-Key header and idempotency_key differ",
                               field="idempotency_key")
            event = event.model_copy(update={"idempotency_key": header_key})
        return event

    async def take(self, raw: Any, header_key: str | None = None) -> Answer:
        """Status code and body for one event; raises ApiError for every failure."""
        event = self.parse(raw, header_key)
        if event.idempotency_key is None:
            return await self._send(event)
        body = event.model_dump(mode="json", exclude={"idempotency_key"})
        return await self.record.once((event.customer_id, event.idempotency_key), fingerprint(body),
                                      lambda: self._send(event))

    async def take_all(self, raws: list[Any]) -> list[Answer]:
        """Answers for a batch, in order: one customer's events one after another, in the
        order given (they may depend on each other); different customers concurrently."""
        answers: list[Answer | None] = [None] * len(raws)
        by_customer: dict[str, list[int]] = defaultdict(list)
        for index, raw in enumerate(raws):
            customer = raw.get("customer_id") if isinstance(raw, dict) else None
            by_customer[customer if isinstance(customer, str) else f"\0{index}"].append(index)
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def customer_events(indexes: list[int]) -> None:
            async with gate:
                for index in indexes:
                    try:
                        answers[index] = await self.take(raws[index])
                    except ApiError as error:
                        answers[index] = (error.status, error.body())

        await asyncio.gather(*(customer_events(indexes) for indexes in by_customer.values()))
        return [answer for answer in answers if answer is not None]

    async def _send(self, event_in: EventIn) -> Answer:
        event = Event(customer_id=event_in.customer_id, name=event_in.event, data=event_in.data,
                      idempotency_key=event_in.idempotency_key, occurred_at=event_in.occurred_at,
                      customer=event_in.customer)
        self.lifecycles.lifecycle = self.current()  # new lifecycles start with the current file
        # The update gets `timeout`; a keyed event then falls back to a signal, which needs one more RPC.
        guard = self.timeout + SIGNAL_TIMEOUT.total_seconds() + 5
        try:
            check_sizes(event)  # names the field and the limit; the engine only knows the total
            receipt = await asyncio.wait_for(self.lifecycles.send(event, wait=self.timeout), guard)
        except TooLarge as error:
            raise ApiError(422, "payload_too_large", str(error), field=error.field, limit=error.limit) from None
        except PayloadError as error:
            raise ApiError(422, "invalid_payload", str(error), field=error.field) from None
        except LifecycleNotFound as error:
            raise ApiError(404, "customer_not_found", str(error)) from None
        except TemporalRefused as error:
            raise refused(error) from None
        except TemporalBusy as error:
            raise busy(error) from None
        except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
            raise ApiError(504, "temporal_timeout",
                           f"no worker took the event within {self.timeout:g}s, and without an idempotency "
                           "key it cannot be queued safely; send it again (with a key it is acted on once, "
                           "and queued when no worker answers)") from None
        except RPCError as error:
            raise ApiError(503, "temporal_unavailable", f"Temporal: {error.message}") from None
        except TemporalError as error:
            raise ApiError(503, "temporal_error", f"Temporal: {error}") from None
        if receipt.status == "rejected":
            raise rejection(receipt)
        answer = EventAnswer(status=receipt.status, customer_id=event.customer_id, event=event.name,
                             idempotency_key=event.idempotency_key, stage=receipt.stage,
                             transition=receipt.transition)
        return (200 if receipt.status == "duplicate" else 202), answer.model_dump(mode="json")
