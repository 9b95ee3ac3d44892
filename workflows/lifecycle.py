"""The Temporal shell: one CustomerLifecycle workflow per customer, running the pure engine.

Time is `workflow.now()`, waits are `workflow.wait_condition` (durable timers), effects are
activities keyed by the interpreter's action ids, and events arrive as updates (validated
before they enter history) or as signals for fire-and-forget senders.

Nothing that fails here may fail the workflow task (Temporal would retry it for ever and the
customer would be frozen): the engine holds a failing step as an incident, the handlers
below answer a failure as a rejection, and the status query always answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from analytics.stream import (
    DELIVER_WITH_RECORDS, STORE_RECORDS, DeliveredWithRecords, DeliveryWithRecords, RecordBatch,
)
from engine.interpreter import HOLD_ON_FAILURE
from engine.lifecycle import LifecycleMachine
from engine.limits import UPDATES_PER_RUN, bounded, json_size
from engine.project import StageBundle
from engine.runtime import StageLoadError
from engine import tasks
from engine.steps.send import CONTACT_POLICY, POLICY_NOTICES
from engine.steps.split import SPLIT_NOTICES
from engine.steps.task import TASK_AT_HAND_OFF
from engine.events import INTEGRAL_NUMBERS_ARE_INTS, PAYLOAD_CHANGES, PROFILE_VALUES_CHECKED, TIMES_NEED_AN_OFFSET
from engine.state import Action, ActionResult, Event, EventReceipt, Incident, TaskCommand, TaskEntity
from workflows.contract import (
    CUSTOMER, DUPLICATE, EVENT_SIGNAL, EVENT_UPDATE, INCIDENT, INCIDENT_UPDATE, NEXT_TASK_DUE, PLAYBOOK,
    REJECTED, STAGE, STATUS_QUERY, TASK_ASSIGNEES, TASK_ROLES, TASK_UPDATE, WORKFLOW_NAME, IncidentCommand,
    LifecycleResult, LifecycleStart, LifecycleStatus, NextSchedule,
)
from workflows.policy import DELIVERY_OPTIONS, RECORD_OPTIONS


TIMELINE_KEPT = 200  # records kept in the workflow state; the full history stays in Temporal
STATUS_BYTES = 512 * 1024  # a status query answers at most this much (Temporal's limit: 2 MB)
LOAD_ONCE = RetryPolicy(maximum_attempts=1)  # the workflow retries, with durable timers
# Seconds between looks at a held stage's playbook on disk: quick at first (an author fixing
# a typo), then every 15 minutes: about 6 history events a look, 600 a day; continue-as-new bounds it.
HOLD_POLL_DELAYS = (2, 5, 10, 30, 60, 300, 900)
STRICT_RULES = "refuse-events-whose-rules-fail"
"""The change that refuses an event whose fact updates or transition guards fail (before it,
the event was taken and the failure only recorded)."""
MID_STAGE_CONTINUE = "continue-as-new-mid-stage"
"""The change that lets a run continue-as-new inside a stage's wait and after 1,000 updates:
histories recorded before it replay without those continue-as-new points."""
TASK_ENTITIES = "task-entities"
"""The change that made tasks entities (engine/tasks.py): any open task can be completed, in any
stage entry, and the task inbox is kept in search attributes. Histories recorded before it replay
without those upserts, and judge `task.completed` as they did."""
ANALYTICS_RECORDS = "analytics-records"
"""The change that sends every timeline record to the analytics store (activity `store_records`):
runs recorded before it replay without those activities."""
EVENTS_BETWEEN_STAGES = "events-between-stages"
"""The change that judges an event sent while the customer moves to another stage by that stage,
and records an accepted event that no wait took as dropped (LifecycleMachine.between_stages):
before it, such an event was accepted and could lie unread in the inbox. Asked by the first event
of a run and at the top of every run, before the engine runs: runs recorded before it replay
judging and keeping events as they did."""
RECORDS_PER_BATCH = 200  # records per store_records call
ASKED_AT_START = (POLICY_NOTICES, SPLIT_NOTICES, TASK_AT_HAND_OFF, TIMES_NEED_AN_OFFSET, INTEGRAL_NUMBERS_ARE_INTS,
                  PROFILE_VALUES_CHECKED)
"""Changes the engine asks about in the middle of a stage, asked once at the top of each run.
The SDK remembers a run's answer, so the engine's later asks add no command. Asked first
after a local activity (the stage's load_stage, the records), a patch's marker can land in a
later workflow task than on replay, where the activity's result is already known: a replay
then meets the marker before the code asks, a nondeterminism error (tests/test_workflow.py,
continued-as-new runs replayed). Changes released before this one (contact-policy) stay where
they were asked, so the histories they recorded replay."""
BASELINE = "baseline-2026-12"
"""The changes in BEFORE_BASELINE as one patch. A run started on this code asks it first, and
takes each of them as in force without asking (no marker and TemporalChangeVersion upsert each:
a dozen history events fewer per run); a run recorded before it answers False and asks each of
them exactly where it did before, so its history replays. A change released later is asked on
its own (workflow.patched), at the top of the run. Records riding with deliveries
(DELIVER_WITH_RECORDS) came with it: a run without it sends them all with STORE_RECORDS."""
BEFORE_BASELINE = frozenset({HOLD_ON_FAILURE, STRICT_RULES, MID_STAGE_CONTINUE, CONTACT_POLICY, POLICY_NOTICES,
                             SPLIT_NOTICES, TASK_ENTITIES, ANALYTICS_RECORDS})
BASELINE_2 = "baseline-2026-12b"
"""BASELINE and the changes released after it (TASK_AT_HAND_OFF, TIMES_NEED_AN_OFFSET) as one
patch, in the same way: a run started on this code asks it first and asks nothing else; a run
recorded on BASELINE answers False, then True to BASELINE, and asks each later change at the top
of its run (False: it started before them); a run recorded before either asks everything where
it always did."""
BASELINE_3 = "baseline-2026-12c"
"""BASELINE_2 and the changes released after it (EVENTS_BETWEEN_STAGES, INTEGRAL_NUMBERS_ARE_INTS,
PROFILE_VALUES_CHECKED), in the same way: a run recorded on BASELINE_2 answers False, then True to
BASELINE_2, and asks each later change where it does (False, unless the run was recorded with it
asked on its own)."""
BEFORE_BASELINE_2 = BEFORE_BASELINE | {TASK_AT_HAND_OFF, TIMES_NEED_AN_OFFSET}
BASELINES = (
    (BASELINE_3, BEFORE_BASELINE_2 | {EVENTS_BETWEEN_STAGES, INTEGRAL_NUMBERS_ARE_INTS, PROFILE_VALUES_CHECKED}),
    (BASELINE_2, BEFORE_BASELINE_2),
    (BASELINE, BEFORE_BASELINE),
)
"""Newest first: each baseline patch and the changes it stands for."""


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
        self._waiting_for: Callable[[], bool] | None = None  # what the engine's wait waits for
        self._loading = False

    def goes_on(self) -> bool:
        """Whether the engine goes on in this workflow task without anything from outside: it
        loads a stage (a local activity), or what it waits for has just come. The records it
        makes meanwhile may ride with its next delivery."""
        return self._loading or (self._waiting_for is not None and self._waiting_for())

    def now(self) -> datetime:
        return self._clock.now()

    async def wait(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        self._lifecycle._upsert_task_attributes()  # tasks made or escalated before this wait
        if until is None:
            remaining = None
        else:
            remaining = self._clock.real_seconds(until - self.now())
            if remaining <= 0:
                return ready()
        self._waiting_for = ready
        try:
            await workflow.wait_condition(ready, timeout=remaining)
            return True
        except asyncio.TimeoutError:
            self._lifecycle._observe_history()  # a timer fired
            return ready()
        finally:
            self._waiting_for = None

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        # No activity summary: each is a payload the SDK converts and visits three times, and
        # the activity's input already names every action.
        records = self._lifecycle._records_to_ride()
        try:
            if records is None:
                results = await workflow.execute_activity(
                    "deliver_all", actions, result_type=list[ActionResult], **DELIVERY_OPTIONS)
                self._lifecycle._observe_history()  # an activity's result
                return results
            done = await workflow.execute_activity(
                DELIVER_WITH_RECORDS, DeliveryWithRecords(actions=actions, records=records),
                result_type=DeliveredWithRecords, **DELIVERY_OPTIONS)
            self._lifecycle._observe_history()
            self._lifecycle._records_done(records, kept=done.records_kept)
            return done.results
        except ActivityError as error:
            self._lifecycle._observe_history()
            if records is not None:
                self._lifecycle._records_done(records, kept=False)
            # Out of retries (e.g. a day of SMTP outage): recorded, never lost silently.
            cause = error.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            return [ActionResult(status="failed", detail=detail) for _ in actions]

    async def stage_bundle(self, stage: str) -> StageBundle:
        try:
            bundle = await self._load(stage)
        except StageLoadError as error:
            if self._lifecycle.patched(HOLD_ON_FAILURE):
                raise  # the engine holds the customer on a `load` incident
            bundle = await self._load_as_before_incidents(stage, str(error))
        self._lifecycle._upsert_search_attributes(stage, bundle.playbook.playbook if bundle.playbook else "")
        return bundle

    async def _load_as_before_incidents(self, stage: str, error: str) -> StageBundle:
        """How a broken playbook was retried before HOLD_ON_FAILURE: kept so the histories of
        lifecycles held that way replay as they ran (see docs/operations.md)."""
        delays = (1, 2, 5, 10, 30, 60)
        for attempt in range(10_000):
            delay = delays[min(attempt, len(delays) - 1)]
            if attempt == 0 or delay == delays[-1]:
                self._lifecycle.machine.record("failed", None, at=self.now(), stage_playbook=stage,
                                               error=f"{error.splitlines()[0]} (retrying every {delay}s)")
            await workflow.sleep(delay)
            self._lifecycle._observe_history()
            try:
                return await self._load(stage)
            except StageLoadError as again:
                error = str(again)
        raise ApplicationError(f"the playbook of stage '{stage}' never loaded")

    async def _load(self, stage: str) -> StageBundle:
        # A local activity: a quick read whose result is recorded as one marker in history.
        self._loading = True
        try:
            return await workflow.execute_local_activity(
                "load_stage", stage, result_type=StageBundle,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=LOAD_ONCE,
            )
        except (ActivityError, ApplicationError) as error:  # a local activity's failure may come bare
            cause = error.cause if isinstance(error.cause, ApplicationError) else error
            raise StageLoadError(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
        finally:
            self._loading = False

    async def hold(self, stage: str, version: str, released: Callable[[], bool]) -> StageBundle | None:
        lifecycle = self._lifecycle
        lifecycle._upsert_search_attributes(stage, lifecycle.playbook_name, held=True)
        lifecycle._upsert_task_attributes()  # tasks made before the step that failed
        fixed = await self._until_released(stage, version, released)
        # Listed as held only while it still is: the engine closes the incident after this
        # returns (released, fixed or moved on); a run that continues-as-new stays held.
        incident, state = lifecycle.machine.state.incident, lifecycle.machine.state
        still = fixed is None and state.next_stage is None and incident is not None and incident.release is None
        lifecycle._upsert_search_attributes(stage, lifecycle.playbook_name, held=still)
        return fixed

    async def _until_released(self, stage: str, version: str, released: Callable[[], bool]) -> StageBundle | None:
        for attempt in range(1_000_000):
            delay = HOLD_POLL_DELAYS[min(attempt, len(HOLD_POLL_DELAYS) - 1)]
            try:
                await workflow.wait_condition(released, timeout=delay)
                return None
            except asyncio.TimeoutError:
                self._lifecycle._observe_history()
            try:
                bundle = await self._load(stage)
            except StageLoadError:
                continue
            if bundle.version != version:
                return bundle
        return None

    def patched(self, change: str) -> bool:
        return self._lifecycle.patched(change)


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class CustomerLifecycle:
    """One customer's lifecycle: the engine's LifecycleMachine, run on Temporal.

    Not in the sandbox. The engine, Jinja, CEL and pydantic were passed through it already,
    so it guarded only this short shell, while it cost a fresh import of this module for
    every run and an `exec` for every payload the SDK converts: without it a replayed
    lifecycle of bench/temporal.py takes half the instructions (87M, 42M; the hand-written
    workflow in the sandbox: 63M).
    Determinism is held instead by tests/test_workflow_determinism.py (no clock, randomness
    or I/O in this shell) and by replaying recorded histories (tests/test_workflow.py)."""

    @workflow.init
    def __init__(self, start: LifecycleStart) -> None:
        if start.state is not None:
            self.machine = LifecycleMachine(start.lifecycle, start.state, timeline_limit=TIMELINE_KEPT)
            if start.bundle is not None:
                self.machine.restore(start.bundle)
        else:
            self.machine = LifecycleMachine.new(
                start.lifecycle, start.customer_id, workflow.now(), timeline_limit=TIMELINE_KEPT
            )
        self.started = start.state is not None
        self.max_history = start.max_history
        self.clock = DemoClock(start.clock_origin or workflow.now(), start.time_scale)
        self.updates = 0  # accepted in this run: Temporal refuses more than 2,000 per run
        self.mid_stage = False
        self.task_entities = False  # asked at the top of run(), before any local activity (see run)
        self.baseline: frozenset[str] | None = None  # what the run's baseline patch stands for (BASELINES)
        self.records_shipped = start.records_shipped  # the records before it are stored (or given up)
        self.records_out = start.records_shipped  # the records before it went to an activity
        self.records_ride = False  # records go with deliveries (any baseline), not each by STORE_RECORDS
        self.records_chain = start.records_chain
        self.shipping: asyncio.Task[None] | None = None
        self.records_in_flight = False  # a store_records local activity has not answered yet
        self.closing = False
        self.history_length = 0  # as of the last point the history itself fixes: _observe_history
        self.new_run_suggested = False

    @workflow.run
    async def run(self, start: LifecycleStart) -> LifecycleResult:
        await workflow.wait_condition(lambda: self.started)
        self._observe_history()
        self.runtime = runtime = TemporalRuntime(self)
        self.mid_stage = self.patched(MID_STAGE_CONTINUE)
        self.task_entities = self.patched(TASK_ENTITIES)
        for change in ASKED_AT_START:
            self.patched(change)  # answered from memory later, wherever the engine asks
        self.machine.between_stages = self.patched(EVENTS_BETWEEN_STAGES)
        if self.patched(ANALYTICS_RECORDS):
            self.records_ride = bool(self.baseline)
            self.shipping = asyncio.create_task(self._ship_records())
        outcome = await self.machine.run(runtime, pause=self._should_continue_as_new, in_stage=self.mid_stage)
        if outcome is None:
            # No flush: the next run sends what this one had not, so events pouring in never hold
            # continue-as-new up. A batch in flight is waited for: its marker, coming with the
            # continue-as-new, would follow it, and Temporal refuses any command after that one.
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self.records_in_flight)
            workflow.continue_as_new(start.model_copy(update={
                "lifecycle": self.machine.lifecycle, "state": self.machine.state,
                "bundle": self.machine.bundle, "clock_origin": self.clock.origin,
                "records_shipped": self.records_shipped, "records_chain": self.records_chain,
            }))
        self._upsert_search_attributes(self.machine.state.stage, "")
        self._upsert_task_attributes()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush_records()
        return LifecycleResult(outcome=outcome, state=self.machine.state)

    def patched(self, change: str) -> bool:
        """Whether `change` is in force in this run: without asking when the run's baseline
        stands for it (BASELINES), else asked where it always was (workflow.patched)."""
        if self.baseline is None:  # the run's first ask of any change: the newest baseline it has
            self.baseline = next((covered for patch, covered in BASELINES if workflow.patched(patch)), frozenset())
        return change in self.baseline or workflow.patched(change)

    # ------------------------------------------------------------ analytics records

    def _unsent(self) -> tuple[int, list]:
        """The sequence number of the first record not yet sent, and the records from it on that
        the timeline still holds (those trimmed before they were sent are a gap in the store)."""
        state = self.machine.state
        first_held = state.recorded - len(state.timeline)
        first = max(self.records_out, first_held)
        return first, state.timeline[first - first_held:]

    def _take_unsent(self) -> RecordBatch | None:
        """The next batch of unsent records, counted as sent (None if there are none)."""
        first, records = self._unsent()
        if not records:
            return None
        records = records[:RECORDS_PER_BATCH]
        if self.records_shipped == self.records_out:  # none in flight: those trimmed unsent are given up
            self.records_shipped = first
        self.records_out = first + len(records)
        state = self.machine.state
        return RecordBatch(
            lifecycle=self.machine.lifecycle.lifecycle, customer_id=str(state.customer.get("id", "")),
            chain=self.records_chain, first_seq=first, records=list(records), customer=dict(state.customer),
        )

    def _records_to_ride(self) -> RecordBatch | None:
        """The unsent records, for the delivery the engine is about to ask for (if they ride)."""
        return self._take_unsent() if self.records_ride and self.shipping is not None else None

    def _records_done(self, batch: RecordBatch, kept: bool) -> None:
        """A batch is stored (or given up): the count of shipped records moves past it if it
        follows on (a batch done out of order is sent again by the next run, and the store
        keeps one copy). One not kept is sent again, by STORE_RECORDS."""
        end = batch.last_seq + 1
        if not kept:
            self.records_out = min(self.records_out, batch.first_seq)
        elif self.records_shipped >= batch.first_seq:
            self.records_shipped = max(self.records_shipped, end)

    async def _ship_records(self) -> None:
        """Send new timeline records to the store as they come, one batch at a time, until closing.

        When they ride with deliveries, records the engine makes while it goes on in this
        workflow task wait for its next delivery (`TemporalRuntime.act`); those it makes before
        it waits for something from outside (an event, a timer, a delivery) are sent here, in
        that workflow task: the store never waits for a lifecycle that has gone quiet."""
        state = self.machine.state
        # A state from before ANALYTICS_RECORDS counted nothing: its timeline starts the count.
        state.recorded = max(state.recorded, len(state.timeline))
        self.records_chain = self.records_chain or workflow.info().run_id

        def due() -> bool:
            return bool(self._unsent()[1]) and not (self.records_ride and self.runtime.goes_on())

        while True:
            await workflow.wait_condition(lambda: due() or self.closing)
            batch = self._take_unsent()
            if batch is None:
                return
            self.records_in_flight = True
            try:
                # A local activity: the write runs inside the workflow task that made the records
                # and leaves one marker in history, not a task round trip of its own.
                await workflow.execute_local_activity(STORE_RECORDS, batch, result_type=int, **RECORD_OPTIONS)
            except ActivityError:
                pass  # a day without a store: this batch is given up (docs/analytics.md)
            finally:
                self.records_in_flight = False
            self._records_done(batch, kept=True)

    async def _flush_records(self) -> None:
        """Wait until every record so far is in the store (before the lifecycle ends)."""
        if self.shipping is not None:
            self.closing = True
            await self.shipping
            self.closing = False
            self.shipping = None

    def _should_continue_as_new(self) -> bool:
        return (self.new_run_suggested or self.history_length > self.max_history
                or (self.mid_stage and self.updates >= UPDATES_PER_RUN))

    def _observe_history(self) -> None:
        """Note the history's length and Temporal's continue-as-new suggestion, for
        `_should_continue_as_new`, where the history itself fixes them: at the run's start, an
        update, a timer that fired, an activity's result.

        Never where a local activity's result arrives: a worker can hand that result to the
        workflow in the task after the one whose commands hold its marker, while a replay hands
        it over in the first, so a length read there can differ on replay and with it the
        decision (a run that continued-as-new replayed as one that started a timer:
        tests/test_workflow.py replays every finished run of a continued lifecycle).
        """
        info = workflow.info()
        self.history_length = info.get_current_history_length()
        self.new_run_suggested = info.is_continue_as_new_suggested()

    @property
    def playbook_name(self) -> str:
        playbook = self.machine.playbook
        return playbook.playbook if playbook else ""

    def _upsert_search_attributes(self, stage: str, playbook: str, held: bool | None = None) -> None:
        """Make "who is in which stage" (and who is held) a visibility query; one history event
        per real change. `held` defaults to whether the customer has an incident."""
        current = workflow.info().typed_search_attributes
        incident = self.machine.state.incident
        held = incident is not None if held is None else held
        wanted = [STAGE.value_set(stage), PLAYBOOK.value_set(playbook or stage),
                  CUSTOMER.value_set(self.machine.state.customer["id"]),
                  INCIDENT.value_set(incident.kind) if held and incident else INCIDENT.value_unset()]
        if any(current.get(update.key) != update.value for update in wanted):
            workflow.upsert_search_attributes(wanted)

    def _upsert_task_attributes(self) -> None:
        """The task inbox as a visibility query (engine.tasks.inbox): roles and assignees with
        open tasks, and the next due time; one history event per real change, none before
        TASK_ENTITIES."""
        if not self.task_entities:
            return
        roles, assignees, next_due = tasks.inbox(self.machine.state)
        wanted = [TASK_ROLES.value_set(roles) if roles else TASK_ROLES.value_unset(),
                  TASK_ASSIGNEES.value_set(assignees) if assignees else TASK_ASSIGNEES.value_unset(),
                  NEXT_TASK_DUE.value_set(next_due) if next_due else NEXT_TASK_DUE.value_unset()]
        current = workflow.info().typed_search_attributes
        if any(current.get(update.key) != update.value for update in wanted):
            workflow.upsert_search_attributes(wanted)

    def _judge_as_this_run_does(self) -> None:
        """The machine's rules for events and tasks, as the changes in force in this run say (a
        run recorded before a change replays judging as it did)."""
        self.machine.strict_rules = self.patched(STRICT_RULES)
        self.machine.task_entities = self.patched(TASK_ENTITIES)
        self.machine.predates = frozenset(change for change in PAYLOAD_CHANGES if not self.patched(change))
        self.machine.between_stages = self.patched(EVENTS_BETWEEN_STAGES)

    # ------------------------------------------------------------ events

    @workflow.update(name=EVENT_UPDATE)
    def event(self, event: Event) -> EventReceipt:
        """Take an event and answer accepted, duplicate or rejected, with the reason."""
        now = self.clock.now()
        self.updates += 1
        self._observe_history()
        self._judge_as_this_run_does()
        try:
            if not self.started:
                receipt = self.machine.start(event, now)
                self.started = receipt.status == "accepted"
                return receipt
            receipt = self.machine.receive(event, now)
            if event.name == "task.completed":
                self._upsert_task_attributes()
            return receipt
        except Exception as error:  # never fail the workflow task: the sender is told, the timeline keeps it
            reason = f"the engine could not take the event: {type(error).__name__}: {error}"[:500]
            self.machine.record("failed", None, at=now, event=event.name, error=reason)
            return EventReceipt(status="rejected", code="internal_error", reason=reason, stage=self.machine.state.stage)

    @event.validator
    def _validate_event(self, event: Event) -> None:
        # Rejected here, a bad event never enters the history; nor does a resent one.
        if self.machine.is_duplicate(event):
            raise ApplicationError("already taken (same idempotency key)", self.machine.state.stage,
                                   type=DUPLICATE)
        if not self.started:
            spec = self.machine.lifecycle.events.get(event.name)
            if spec is None or not spec.starts_lifecycle:
                raise ApplicationError(f"'{event.name}' does not start a lifecycle", "not_a_start_event",
                                       type=REJECTED)
        rejection = self.machine.check(event)
        if rejection:
            raise ApplicationError(rejection.reason, rejection.code, rejection.stage, rejection.field, type=REJECTED)

    @workflow.signal(name=EVENT_SIGNAL)
    def event_signal(self, event: Event) -> None:
        """Fire-and-forget road to the same handler; a rejection is kept on the timeline."""
        receipt = self.event(event)
        if receipt.status == "rejected" and receipt.code != "internal_error":
            self.machine.record("failed", None, at=self.clock.now(), event=event.name, error=receipt.reason)

    @workflow.update(name=INCIDENT_UPDATE)
    def incident(self, command: IncidentCommand) -> Incident:
        """An operator's retry or skip of the step the customer is held on."""
        self.updates += 1
        self._observe_history()
        incident = self.machine.release_incident(command.action, command.by)
        if incident is None:  # the validator refuses this; fail the update, never the workflow task
            raise ApplicationError("the customer is not held on an incident", "no_incident",
                                   self.machine.state.stage, type=REJECTED)
        return incident

    @incident.validator
    def _validate_incident(self, command: IncidentCommand) -> None:
        state = self.machine.state
        if state.incident is None or state.ended:
            raise ApplicationError("the customer is not held on an incident", "no_incident", state.stage,
                                   type=REJECTED)
        if state.incident.release is not None:
            raise ApplicationError(f"already released ({state.incident.release})", "no_incident", state.stage,
                                   type=REJECTED)

    # ------------------------------------------------------------ tasks (engine/tasks.py)

    @workflow.update(name=TASK_UPDATE)
    def task(self, order: TaskCommand) -> TaskEntity:
        """A person completes, reassigns, snoozes or cancels a task: the task as it is now.

        Completing is a `task.completed` event (the same checks, idempotency key and on_done);
        a refusal fails the update (never the workflow task) with type EventRejected."""
        now = self.clock.now()
        self.updates += 1
        self._observe_history()
        self._judge_as_this_run_does()
        if order.action == "complete":
            answer: TaskEntity | EventReceipt | None = self.machine.receive(self._completion(order), now)
            if isinstance(answer, EventReceipt) and answer.status != "rejected":
                # A task from before task entities (only in `open_tasks`) has no entity to answer with.
                answer = tasks.find(self.machine.state, order.task) or self._legacy_task(order, now)
        else:
            answer = self.machine.task_command(order, now)
        if not isinstance(answer, TaskEntity):
            rejection = answer or EventReceipt(status="rejected", code="unknown_task", reason=f"no task '{order.task}'")
            raise ApplicationError(rejection.reason, rejection.code, self.machine.state.stage, rejection.field,
                                   type=REJECTED)
        self._upsert_task_attributes()
        return answer

    @task.validator
    def _validate_task(self, order: TaskCommand) -> None:
        if not self.started:
            raise ApplicationError(f"no task '{order.task}'", "unknown_task", None, "task", type=REJECTED)
        if order.action == "complete":
            event = self._completion(order)
            rejection = None if self.machine.is_duplicate(event) else self.machine.check(event)
        elif order.idempotency_key and order.idempotency_key in self.machine.state.seen_keys:
            rejection = None
        else:
            rejection = self.machine.check_task_command(order, self.clock.now())
        if rejection:
            raise ApplicationError(rejection.reason, rejection.code, rejection.stage, rejection.field, type=REJECTED)

    def _legacy_task(self, order: TaskCommand, now: datetime) -> TaskEntity:
        state = self.machine.state
        return TaskEntity(id=order.task, customer_id=state.customer.get("id", ""), stage=state.stage,
                          stage_entry=state.stage_entry, step=order.task, role="", title=order.task, created_at=now,
                          completed_at=now, status="done", outcome=order.outcome, fields=order.fields, by=order.by)

    def _completion(self, order: TaskCommand) -> Event:
        data: dict = {"task": order.task}
        if order.outcome is not None:
            data["outcome"] = order.outcome
        if order.fields:
            data["fields"] = order.fields
        if order.by:
            data["by"] = order.by
        return Event(customer_id=self.machine.state.customer.get("id", ""), name="task.completed", data=data,
                     idempotency_key=order.idempotency_key)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> LifecycleStatus:
        state = self.machine.state
        status = LifecycleStatus(
            customer_id=state.customer.get("id", ""), stage=state.stage, since=state.stage_since,
            version=state.stage_version, ended=state.ended, facts=state.facts, customer=state.customer,
            promises={name: entry.model_dump(mode="json") for name, entry in state.promises.items()},
            pending=state.pending, recent=state.timeline[-50:], incident=state.incident, tasks=tasks.shown(state),
            next_schedule=self._next_schedule(),
        )
        return bounded_status(status)

    def _next_schedule(self) -> NextSchedule | None:
        try:
            due = self.machine.next_schedule()
        except Exception:  # noqa: BLE001 - a status query always answers
            return None
        return NextSchedule(event=due.name, at=due.at) if due else None


def bounded_status(status: LifecycleStatus) -> LifecycleStatus:
    """The status cut to STATUS_BYTES: a query result over Temporal's blob limit would make
    the customer unreadable for good."""
    if json_size(status.model_dump(mode="json")) <= STATUS_BYTES:
        return status

    def cut(values: dict) -> dict:
        return {name: bounded(value, 8 * 1024) for name, value in values.items()}

    return status.model_copy(update={
        "facts": cut(status.facts), "customer": cut(status.customer), "promises": cut(status.promises),
        "recent": [record.model_copy(update={"detail": bounded(record.detail)}) for record in status.recent[-20:]],
        "tasks": [task.model_copy(update={"guideline": task.guideline[:2000], "fields": cut(task.fields)})
                  for task in status.tasks[-100:]],
    })
