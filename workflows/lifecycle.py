"""The Temporal shell: one CustomerLifecycle workflow per customer, running the pure engine.

Time is `workflow.now()`, waits are `workflow.wait_condition` (durable timers), effects are
activities keyed by the interpreter's action ids, and events arrive as updates (validated
before they enter history) or as signals for fire-and-forget senders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.policy import DELIVERY_OPTIONS
    from engine.lifecycle import LifecycleMachine
    from engine.project import StageBundle
    from engine.state import Action, ActionResult, Event, EventReceipt
    from workflows.contract import (
        CUSTOMER, EVENT_SIGNAL, EVENT_UPDATE, PLAYBOOK, REJECTED, STAGE, STATUS_QUERY, WORKFLOW_NAME,
        LifecycleResult, LifecycleStart, LifecycleStatus,
    )


TIMELINE_KEPT = 200  # records kept in the workflow state; the full history stays in Temporal
LOAD_ONCE = RetryPolicy(maximum_attempts=1)  # the workflow retries, with durable timers
LOAD_RETRY_DELAYS = (1, 2, 5, 10, 30, 60)  # seconds between attempts to load a broken playbook


class DemoClock:
    """Workflow time, optionally running `scale` times faster from `origin` (for demos only).

    Scaling the clock, not the playbook, compresses every kind of wait alike: durations,
    `until` times computed from facts, task due times.
    """

    def __init__(self, origin: datetime, scale: float) -> None:
        self.origin = origin
        self.scale = scale

    def now(self) -> datetime:
        if self.scale == 1:
            return workflow.now()
        return self.origin + (workflow.now() - self.origin) * self.scale

    def real_seconds(self, virtual: timedelta) -> float:
        return virtual.total_seconds() / self.scale


class TemporalRuntime:
    """The interpreter's Runtime on Temporal: durable timers, activities, pinned playbooks."""

    def __init__(self, lifecycle: CustomerLifecycle) -> None:
        self._lifecycle = lifecycle
        self._clock = lifecycle.clock

    def now(self) -> datetime:
        return self._clock.now()

    async def wait(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        if until is None:
            await workflow.wait_condition(ready)
            return True
        remaining = self._clock.real_seconds(until - self.now())
        if remaining <= 0:
            return ready()
        try:
            await workflow.wait_condition(ready, timeout=remaining)
            return True
        except asyncio.TimeoutError:
            return ready()

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        try:
            return await workflow.execute_activity(
                "deliver_all", actions, result_type=list[ActionResult],
                summary=", ".join(f"{action.kind} {action.step}" for action in actions),
                **DELIVERY_OPTIONS,
            )
        except ActivityError as error:
            # Out of retries (e.g. a day of SMTP outage): recorded, never lost silently.
            cause = error.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            return [ActionResult(status="failed", detail=detail) for _ in actions]

    async def stage_bundle(self, stage: str) -> StageBundle:
        # A local activity: a quick read whose result is recorded as one marker in history.
        # Each attempt is its own workflow task, so while a playbook is broken on disk the
        # status query still answers, and says why the customer is held.
        for attempt in range(10_000):
            try:
                bundle = await workflow.execute_local_activity(
                    "load_stage", stage, result_type=StageBundle,
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=LOAD_ONCE,
                )
                break
            except (ActivityError, ApplicationError) as error:  # a local activity's failure may come bare
                delay = LOAD_RETRY_DELAYS[min(attempt, len(LOAD_RETRY_DELAYS) - 1)]
                if attempt == 0 or delay == LOAD_RETRY_DELAYS[-1]:
                    cause = error.cause.message if isinstance(error.cause, ApplicationError) else error.message
                    self._lifecycle.machine.record("failed", None, at=self.now(), stage_playbook=stage,
                                                   error=f"{cause.splitlines()[0]} (retrying every {delay}s)")
                await workflow.sleep(delay)
        else:
            raise ApplicationError(f"the playbook of stage '{stage}' never loaded")
        self._lifecycle._upsert_stage(stage, bundle.playbook.playbook if bundle.playbook else "")
        return bundle


@workflow.defn(name=WORKFLOW_NAME)
class CustomerLifecycle:
    @workflow.init
    def __init__(self, start: LifecycleStart) -> None:
        if start.state is not None:
            self.machine = LifecycleMachine(start.lifecycle, start.state, timeline_limit=TIMELINE_KEPT)
        else:
            self.machine = LifecycleMachine.new(
                start.lifecycle, start.customer_id, workflow.now(), timeline_limit=TIMELINE_KEPT
            )
        self.started = start.state is not None
        self.max_history = start.max_history
        self.clock = DemoClock(start.clock_origin or workflow.now(), start.time_scale)

    @workflow.run
    async def run(self, start: LifecycleStart) -> LifecycleResult:
        await workflow.wait_condition(lambda: self.started)
        runtime = TemporalRuntime(self)
        outcome = await self.machine.run(runtime, pause=self._should_continue_as_new)
        if outcome is None:
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(start.model_copy(update={
                "lifecycle": self.machine.lifecycle, "state": self.machine.state,
                "clock_origin": self.clock.origin,
            }))
        self._upsert_stage(self.machine.state.stage, "")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return LifecycleResult(outcome=outcome, state=self.machine.state)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self.max_history

    def _upsert_stage(self, stage: str, playbook: str) -> None:
        """Make "who is in which stage" a visibility query; one history event per real change."""
        current = workflow.info().typed_search_attributes
        wanted = [STAGE.value_set(stage), PLAYBOOK.value_set(playbook or stage),
                  CUSTOMER.value_set(self.machine.state.customer["id"])]
        if any(current.get(update.key) != update.value for update in wanted):
            workflow.upsert_search_attributes(wanted)

    # ------------------------------------------------------------ events

    @workflow.update(name=EVENT_UPDATE)
    def event(self, event: Event) -> EventReceipt:
        """Take an event and answer accepted, duplicate or rejected, with the reason."""
        now = self.clock.now()
        if not self.started:
            receipt = self.machine.start(event, now)
            self.started = receipt.status == "accepted"
            return receipt
        return self.machine.receive(event, now)

    @event.validator
    def _validate_event(self, event: Event) -> None:
        # Rejected here, a bad event never enters the history.
        if self.machine.is_duplicate(event):
            return
        if not self.started:
            spec = self.machine.lifecycle.events.get(event.name)
            if spec is None or not spec.starts_lifecycle:
                raise ApplicationError(f"'{event.name}' does not start a lifecycle", "not_a_start_event",
                                       type=REJECTED)
        rejection = self.machine.check(event)
        if rejection:
            raise ApplicationError(rejection.reason, rejection.code, rejection.stage, type=REJECTED)

    @workflow.signal(name=EVENT_SIGNAL)
    def event_signal(self, event: Event) -> None:
        """Fire-and-forget road to the same handler; a rejection is kept on the timeline."""
        receipt = self.event(event)
        if receipt.status == "rejected":
            self.machine.record("failed", None, at=self.clock.now(), event=event.name, error=receipt.reason)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> LifecycleStatus:
        state = self.machine.state
        return LifecycleStatus(
            customer_id=state.customer.get("id", ""), stage=state.stage, since=state.stage_since,
            version=state.stage_version, ended=state.ended, facts=state.facts, customer=state.customer,
            promises={name: entry.model_dump(mode="json") for name, entry in state.promises.items()},
            pending=state.pending, recent=state.timeline[-50:],
        )
