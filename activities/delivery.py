"""The `deliver` activity: send a message or hand a task to a person, on the configured implementation."""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import LifecycleSettings
from activities.outbox import send_to_outbox
from workflows.policy import HEARTBEAT_TIMEOUT
from activities.smtp import send_email
from activities.webhook import post_action
from analytics.activity import RecordSink
from analytics.stream import DELIVER_WITH_RECORDS, DeliveredWithRecords, DeliveryWithRecords, RecordBatch
from engine.state import Action, ActionResult

log = logging.getLogger(__name__)


class Delivery:
    """Routes actions to outbox, SMTP or webhook according to explicit settings.

    The workflow calls `deliver_all` (the effects of one instant, in order); `deliver` is
    one action, also an activity so a hand-written workflow can call it.
    """

    def __init__(self, settings: LifecycleSettings, records: RecordSink | None = None) -> None:
        """Deliver with these settings; journal the records that ride along in `records`."""
        self.settings = settings
        self.records = records

    @activity.defn(name="deliver")
    async def deliver(self, action: Action) -> ActionResult:
        """Perform the action once; raise ApplicationError (retryable or not) when it fails."""
        implementation = self.settings.implementation_for(action.kind, action.channel)
        if activity.in_activity():
            activity.logger.info(
                "deliver %s %s via %s (attempt %d)",
                action.kind, action.id, implementation, activity.info().attempt,
            )
        if implementation == "smtp":
            return await send_email(action, self.settings.smtp)
        if implementation == "webhook":
            return await post_action(action, self.settings.webhook)
        return await send_to_outbox(action, self.settings.outbox_path)

    @activity.defn(name="deliver_all")
    async def deliver_all(self, actions: list[Action]) -> list[ActionResult]:
        """Perform the effects of one instant, in order: one activity for a run of sends.

        A permanent failure is that action's result and the others go on; a transient one
        fails the attempt, and the retry skips what the heartbeat says was already done
        (each action is idempotent by its id in any case).
        """
        if not activity.in_activity():
            return await self._deliver_in_order(actions, [])
        details = activity.info().heartbeat_details
        done = [ActionResult.model_validate(result) for result in details[0]] if details else []
        alive = asyncio.create_task(_keep_alive(done))
        try:
            return await self._deliver_in_order(actions, done)
        finally:
            alive.cancel()

    @activity.defn(name=DELIVER_WITH_RECORDS)
    async def deliver_with_records(self, order: DeliveryWithRecords) -> DeliveredWithRecords:
        """`deliver_all`, and the records of the workflow task that asked for it journaled (as
        `store_records` does), so that task needs no activity of its own for them.

        The records are journaled while the actions are delivered: neither waits for the
        other, and a failed attempt has journaled them all the same. A retry journals them
        again, and the store keeps one copy of each record id. A journal that cannot be
        written does not fail the deliveries: the answer says so, and the workflow sends those
        records with `store_records`.
        """
        keeping = asyncio.create_task(self._keep(order.records))
        try:
            results = await self.deliver_all(order.actions)
        finally:
            kept = await keeping
        return DeliveredWithRecords(results=results, records_kept=kept)

    async def _keep(self, records: RecordBatch) -> bool:
        if self.records is None:
            return False
        try:
            await self.records.keep(records)
            return True
        except Exception as error:  # noqa: BLE001 - the workflow sends them another way
            log.warning("analytics journal not written (%s); the workflow sends those records again", error)
            return False

    async def _deliver_in_order(self, actions: list[Action], done: list[ActionResult]) -> list[ActionResult]:
        for action in actions[len(done):]:
            try:
                result = await self.deliver(action)
            except ApplicationError as error:
                if not error.non_retryable:
                    raise
                result = ActionResult(status="failed", detail=error.message)
            done.append(result)
            if activity.in_activity():
                activity.heartbeat([r.model_dump() for r in done])
        return done


async def _keep_alive(done: list[ActionResult]) -> None:
    """Heartbeat while a slow send is under way, so only a dead worker misses the timeout."""
    while True:
        await asyncio.sleep(HEARTBEAT_TIMEOUT.total_seconds() / 3)
        activity.heartbeat([r.model_dump() for r in done])

