"""The caller's side of the contract: send an event, read a status, list who is where.

The CLI and the HTTP API both go through `LifecycleClient`, so validation (ids, payloads,
sizes), the choice between update-with-start and update, the fallback to a durable signal
when no worker answers, and the mapping of Temporal's errors are the same on every road.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from temporalio.client import (
    Client, RPCTimeoutOrCancelledError, WithStartWorkflowOperation, WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.events import PayloadError, check_customer, check_event, declared_events
from engine.lifecycle import lifecycle_id
from engine.limits import (
    EVENT_DATA_BYTES, ID_RULE, KEY_RULE, PROFILE_BYTES, TooLarge, check_size, is_id, is_key, json_size,
)
from engine.model import Lifecycle
from engine import tasks
from engine.state import Event, EventReceipt, Incident, TaskCommand, TaskEntity
from workflows.contract import (
    CUSTOMER, DUPLICATE, EVENT_SIGNAL, EVENT_UPDATE, INCIDENT_UPDATE, PLAYBOOK, REJECTED, STAGE, STATUS_QUERY,
    TASK_UPDATE, WORKFLOW_NAME, IncidentCommand, LifecycleStart, LifecycleStatus,
)

SIGNAL_TIMEOUT = timedelta(seconds=10)  # the fallback signal: one short RPC
FAILING_PATIENCE = 30.0  # seconds; half of it (at most) is spent retrying while a workflow task fails:
# a task on a worker killed -9 times out after 10 s and is retried on a worker that may still be starting


class LifecycleNotFound(LookupError):
    """The customer has no lifecycle and the event does not start one."""


class TemporalRefused(Exception):
    """Temporal refused the call for a reason that sending it again will not fix.

    `code` says which, for machines: `update_limit_reached` (the run took its 2,000 updates),
    `workflow_task_failed` (the lifecycle's workflow code fails), `too_large` (over Temporal's
    size limits), `query_failed` (the status query fails), `temporal_refused` (another refusal);
    and two that are the operator's to fix: `namespace_not_found`, `temporal_permission_denied`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TemporalBusy(Exception):
    """Temporal asks to slow down (too many updates in flight for one lifecycle); retry soon."""


class QueuedReceipt(EventReceipt):
    """No worker took the event in time; it was stored by a signal and is applied when one does."""

    status: Literal["queued"] = "queued"  # type: ignore[assignment]


def check_envelope(event: Event) -> None:
    """Raise PayloadError for a customer id or idempotency key the contract does not allow."""
    if not is_id(event.customer_id):
        raise PayloadError(f"customer id '{event.customer_id}' is not {ID_RULE}", "customer_id")
    if not is_id(event.name):
        raise PayloadError(f"event name '{event.name}' is not {ID_RULE}", "event")
    if event.idempotency_key is not None and not is_key(event.idempotency_key):
        raise PayloadError(f"idempotency key '{event.idempotency_key}' is not {KEY_RULE}", "idempotency_key")


def check_sizes(event: Event) -> None:
    """Raise TooLarge when the event's data, its profile or one string in them is over its budget
    (engine/limits.py). The HTTP API and the CLI call this first, to name the field and the limit;
    `LifecycleClient.send` itself checks only the engine's own budget."""
    check_size(event.data, "data", EVENT_DATA_BYTES)
    if event.customer is not None:
        check_size(event.customer, "customer", PROFILE_BYTES, inner="customer.")
        together = json_size(event.data) + json_size(event.customer)
        if together > EVENT_DATA_BYTES:  # the engine's own check (LifecycleMachine) counts both
            raise TooLarge(f"'data' and 'customer' are {together} bytes together; the limit is "
                           f"{EVENT_DATA_BYTES} bytes", "data", EVENT_DATA_BYTES)


@dataclass
class ListedLifecycle:
    customer_id: str
    stage: str
    playbook: str
    status: str
    started_at: Any
    incident: str = ""  # the kind of failure the customer is held on, if any


class LifecycleClient:
    """Events, status and listings for the lifecycles on one task queue."""

    def __init__(self, client: Client, lifecycle: Lifecycle, task_queue: str = "lifecycle",
                 max_history: int = 10_000, time_scale: float = 1.0) -> None:
        self.client = client
        self.lifecycle = lifecycle
        self.task_queue = task_queue
        self.max_history = max_history
        self.time_scale = time_scale  # only `lifecycle demo` runs clocks faster

    def checked(self, event: Event) -> Event:
        """The event with its payload and profile normalized; raises PayloadError."""
        check_envelope(event)
        return event.model_copy(update={
            "data": check_event(self.lifecycle, event.name, event.data),
            "customer": check_customer(self.lifecycle, event.customer_id, event.customer),
        })

    async def send(self, event: Event, wait: float | None = None) -> EventReceipt:
        """Deliver an event and answer its receipt.

        Raises PayloadError (bad payload or id), LifecycleNotFound,
        TemporalRefused (a refusal that will not go away), TemporalBusy, and RPCError when
        Temporal cannot be reached. With `wait`, an event that no worker has taken within `wait`
        seconds and that carries an idempotency key is sent again as a signal, durable once it
        returns, and answered with a QueuedReceipt: the update may still be applied later, and
        the key makes the second delivery a duplicate. Without a key it raises TimeoutError.
        """
        size = json_size(event.data) + json_size(event.customer or {})
        if size > EVENT_DATA_BYTES:  # the engine would refuse it: spare the round trip
            return EventReceipt(status="rejected", code="too_large",
                                reason=f"the event's data is {size:,} bytes; at most {EVENT_DATA_BYTES:,} are taken")
        event = self.checked(event)
        spec = declared_events(self.lifecycle)[event.name]
        patience = min(wait or FAILING_PATIENCE, FAILING_PATIENCE) / 2
        try:
            if wait is None:
                return await self._update_patiently(event, spec.starts_lifecycle, patience)
            return await asyncio.wait_for(self._update_patiently(event, spec.starts_lifecycle, patience), wait)
        except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
            if wait is None or not event.idempotency_key:
                raise asyncio.TimeoutError(
                    f"no worker took the event within {wait or 0:g}s, and without an idempotency key it "
                    "cannot be queued safely" if wait else "no worker took the event") from None
        return await self._signal(event, spec.starts_lifecycle)

    async def _update_patiently(self, event: Event, starts: bool, patience: float) -> EventReceipt:
        """`_update`, tried again for `patience` seconds while the workflow task is failing.

        Under load a workflow task can time out once; Temporal then refuses updates until the
        next attempt completes, a moment later. Only a failure that outlasts `patience` is
        reported as `workflow_task_failed`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        delay = 0.2
        while True:
            try:
                return await self._update(event, starts)
            except TemporalRefused as refused:
                if refused.code != "workflow_task_failed" or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _update(self, event: Event, starts: bool) -> EventReceipt:
        workflow_id = lifecycle_id(event.customer_id)
        try:
            if starts:
                start = WithStartWorkflowOperation(
                    WORKFLOW_NAME, self._start_input(event), id=workflow_id, task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=initial_search_attributes(self.lifecycle, event.customer_id),
                )
                return await self.client.execute_update_with_start_workflow(
                    EVENT_UPDATE, event, start_workflow_operation=start, result_type=EventReceipt,
                )
            handle = self.client.get_workflow_handle(workflow_id)
            return await handle.execute_update(EVENT_UPDATE, event, result_type=EventReceipt)
        except WorkflowUpdateFailedError as error:
            return update_failure(error.cause)
        except RPCError as error:
            if is_closed(error):
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if is_missing_workflow(error):
                raise LifecycleNotFound(
                    f"customer '{event.customer_id}' has no lifecycle, and '{event.name}' does not start one"
                ) from None
            raise refusal(error) from None

    async def _signal(self, event: Event, starts: bool) -> EventReceipt:
        """The event as a signal (signal-with-start for a start event): durable once it returns."""
        workflow_id = lifecycle_id(event.customer_id)
        try:
            if starts:
                await self.client.start_workflow(
                    WORKFLOW_NAME, self._start_input(event), id=workflow_id, task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=initial_search_attributes(self.lifecycle, event.customer_id),
                    start_signal=EVENT_SIGNAL, start_signal_args=[event], rpc_timeout=SIGNAL_TIMEOUT,
                )
            else:
                await self.client.get_workflow_handle(workflow_id).signal(
                    EVENT_SIGNAL, event, rpc_timeout=SIGNAL_TIMEOUT)
        except RPCError as error:
            if is_closed(error):
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if is_missing_workflow(error):
                raise LifecycleNotFound(f"customer '{event.customer_id}' has no running lifecycle") from None
            raise refusal(error) from None
        return QueuedReceipt()

    def _start_input(self, event: Event) -> LifecycleStart:
        return LifecycleStart(customer_id=event.customer_id, lifecycle=self.lifecycle,
                              max_history=self.max_history, time_scale=self.time_scale)

    async def status(self, customer_id: str, timeout: float | None = None) -> LifecycleStatus:
        """The status query of the customer's lifecycle (the latest run).

        Raises LifecycleNotFound, TemporalRefused (`query_failed`, `workflow_task_failed`: a
        lifecycle whose workflow code fails cannot answer), RPCTimeoutOrCancelledError when no
        worker answers within `timeout` seconds (default: Temporal's own), and RPCError when
        Temporal cannot be reached."""
        if not is_id(customer_id):
            raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle (a customer id is {ID_RULE})")
        handle = self.client.get_workflow_handle(lifecycle_id(customer_id))
        try:
            return await handle.query(STATUS_QUERY, result_type=LifecycleStatus,
                                      rpc_timeout=timedelta(seconds=timeout) if timeout else None)
        except WorkflowQueryFailedError as error:
            raise TemporalRefused("query_failed", f"the status query failed: {error.message}") from None
        except RPCError as error:
            if is_missing_workflow(error):
                raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle") from None
            if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise await self._why_silent(handle) from None
            raise refusal(error) from None

    async def _why_silent(self, handle: Any) -> Exception:
        """Why a lifecycle did not answer: its workflow task keeps failing, or no worker polls."""
        try:
            description = await handle.describe(rpc_timeout=timedelta(seconds=5))
        except RPCError:
            return RPCTimeoutOrCancelledError("the lifecycle did not answer in time")
        pending = description.raw_description.pending_workflow_task
        if pending.attempt > 1:
            return TemporalRefused("workflow_task_failed", "the lifecycle's workflow code is failing "
                                   f"(workflow task attempt {pending.attempt}); its history in the web UI says why")
        return RPCTimeoutOrCancelledError(f"the lifecycle did not answer in time; does a worker poll "
                                          f"task queue '{self.task_queue}'?")

    async def release_incident(self, customer_id: str, action: str, by: str = "") -> Incident | EventReceipt:
        """An operator's retry or skip of the incident a customer is held on: the incident it
        released, or a rejection (code `no_incident`, `ended`)."""
        handle = self.client.get_workflow_handle(lifecycle_id(customer_id))
        try:
            return await handle.execute_update(INCIDENT_UPDATE, IncidentCommand(action=action, by=by),
                                               result_type=Incident)
        except WorkflowUpdateFailedError as error:
            return update_failure(error.cause)
        except RPCError as error:
            if "already completed" in error.message:
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if is_missing_workflow(error):
                raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle") from None
            raise refusal(error) from None

    async def task_command(self, customer_id: str, order: TaskCommand) -> TaskEntity | EventReceipt:
        """Complete, reassign, snooze or cancel a task of `customer_id`: the task as it is now, or a
        rejection (codes `unknown_task`, `task_closed`, `invalid_payload` with `field`, `ended`).
        Raises LifecycleNotFound, TemporalRefused, TemporalBusy, RPCError."""
        if not is_id(customer_id):
            raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle (a customer id is {ID_RULE})")
        if order.action == "complete":  # the payload is checked here as for any event (a map of fields)
            check_event(self.lifecycle, "task.completed", {"task": order.task, "fields": order.fields})
        handle = self.client.get_workflow_handle(lifecycle_id(customer_id))
        try:
            return await handle.execute_update(TASK_UPDATE, order, result_type=TaskEntity)
        except WorkflowUpdateFailedError as error:
            return update_failure(error.cause)
        except RPCError as error:
            if is_closed(error):
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if is_missing_workflow(error):
                raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle") from None
            raise refusal(error) from None

    async def tasks_page(self, which: TaskFilter, page_size: int = 100, page_token: bytes | None = None,
                         now: datetime | None = None) -> TaskPage:
        """The open tasks that `which` selects, of one page of the lifecycles on this task queue
        (visibility finds the lifecycles, each one's status query gives its tasks), soonest due
        first; each task's `status` as a person sees it (an open task past due is `overdue`).

        A lifecycle that does not answer within STATUS_PATIENCE seconds is listed in
        `unavailable` instead of holding up everyone else's tasks. Raises RPCError (visibility)."""
        now = now or datetime.now(timezone.utc)
        pages = self.client.list_workflows(which.query(now, self.task_queue), page_size=page_size,
                                           next_page_token=page_token)
        await pages.fetch_next_page()
        customers = [execution.id.removeprefix("lifecycle/") for execution in pages.current_page or []]
        gate = asyncio.Semaphore(STATUS_QUERIES)
        unavailable: list[str] = []

        async def tasks_of(customer: str) -> list[TaskEntity]:
            async with gate:
                try:
                    status = await asyncio.wait_for(self.status(customer, STATUS_PATIENCE), STATUS_PATIENCE + 1)
                except LifecycleNotFound:
                    return []  # ended between the listing and the query
                except (TemporalRefused, RPCError, RPCTimeoutOrCancelledError, asyncio.TimeoutError):
                    unavailable.append(customer)
                    return []
            return [task.model_copy(update={"status": tasks.listed_status(task, now)})
                    for task in status.tasks if which.keeps(task, now)]

        found = [task for listed in await asyncio.gather(*(tasks_of(c) for c in customers)) for task in listed]
        return TaskPage(_by_due(found), sorted(unavailable), pages.next_page_token)

    async def tasks(self, which: TaskFilter, now: datetime | None = None) -> TaskPage:
        """Every open task `which` selects, across all the lifecycles on this task queue (every page)."""
        found, unavailable = [], []
        token: bytes | None = None
        while True:
            page = await self.tasks_page(which, 500, token, now)
            found += page.tasks
            unavailable += page.unavailable
            token = page.next_page_token
            if not token:
                break
        return TaskPage(_by_due(found), sorted(unavailable), None)

    async def list(self, stage: str | None = None, playbook: str | None = None,
                   running_only: bool = True, limit: int | None = None, held: bool = False) -> list[ListedLifecycle]:
        """Who is in which stage (only those held on an incident, with `held`), from visibility."""
        query = _list_query(stage, playbook, running_only, held)
        return [_listed(execution) async for execution in self.client.list_workflows(query, limit=limit)]

    async def list_page(self, stage: str | None = None, playbook: str | None = None,
                        running_only: bool = True, page_size: int = 100,
                        page_token: bytes | None = None, held: bool = False,
                        ) -> tuple[list[ListedLifecycle], bytes | None]:
        """One page of `list`, and the token of the next page (None after the last one)."""
        pages = self.client.list_workflows(_list_query(stage, playbook, running_only, held),
                                           page_size=page_size, next_page_token=page_token)
        await pages.fetch_next_page()
        return [_listed(execution) for execution in pages.current_page or []], pages.next_page_token


# ---------------------------------------------------------------- the task inbox (engine/tasks.py)

INBOX_STATUSES = ("open", "overdue", "escalated")
"""What the inbox lists: tasks not done nor cancelled (`open` means all three), or only those
past their due time (`overdue`), or only those whose playbook escalated them (`escalated`)."""
STATUS_QUERIES = 16  # lifecycles asked for their tasks at once
STATUS_PATIENCE = 5.0  # seconds one lifecycle has to answer before the inbox lists it as unavailable


def customer_of_task(task_id: str) -> str | None:
    """The customer a task id belongs to: ids are `lifecycle/<customer>/<stage>/<entry>/<step>`."""
    parts = task_id.split("/")
    return parts[1] if len(parts) >= 5 and parts[0] == "lifecycle" and is_id(parts[1]) else None


@dataclass
class TaskPage:
    """One page of the inbox: the tasks, the customers whose lifecycle did not answer in time
    (their tasks are missing: a worker is down, or their workflow code fails), the next page."""

    tasks: list[TaskEntity]
    unavailable: list[str]
    next_page_token: bytes | None


@dataclass
class TaskFilter:
    """Which open tasks an inbox shows; every filter is also a visibility query, so only the
    lifecycles that have such tasks are asked for them."""

    role: str | None = None
    assignee: str | None = None
    status: str = "open"
    due_before: datetime | None = None

    def query(self, now: datetime, task_queue: str) -> str:
        query = [f"WorkflowType = '{WORKFLOW_NAME}'", "ExecutionStatus = 'Running'", f"TaskQueue = '{_quote(task_queue)}'",
                 "LifecycleTaskRoles IS NOT NULL"]
        if self.role:
            query.append(f"LifecycleTaskRoles = '{_quote(self.role)}'")
        if self.assignee:
            query.append(f"LifecycleTaskAssignees = '{_quote(self.assignee)}'")
        before = [moment for moment in (self.due_before, now if self.status == "overdue" else None) if moment]
        if before:
            query.append(f"LifecycleNextTaskDue < '{min(before).astimezone(timezone.utc).isoformat()}'")
        return " AND ".join(query)

    def keeps(self, task: TaskEntity, now: datetime) -> bool:
        status = tasks.listed_status(task, now)
        return (task.is_open and (self.status == "open" or status == self.status)
                and (self.role is None or task.role == self.role)
                and (self.assignee is None or task.assignee == self.assignee)
                and (self.due_before is None or (task.due_at is not None and task.due_at < self.due_before)))


def _by_due(found: list[TaskEntity]) -> list[TaskEntity]:
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(found, key=lambda task: (task.due_at or far, task.customer_id, task.id))


def _list_query(stage: str | None, playbook: str | None, running_only: bool, held: bool = False) -> str:
    query = [f"WorkflowType = '{WORKFLOW_NAME}'"]
    if running_only:
        query.append("ExecutionStatus = 'Running'")
    if held:
        query.append("LifecycleIncident IS NOT NULL")  # unset when the customer is not held
    if stage:
        query.append(f"LifecycleStage = '{_quote(stage)}'")
    if playbook:
        query.append(f"LifecyclePlaybook = '{_quote(playbook)}'")
    return " AND ".join(query)


def _listed(execution: Any) -> ListedLifecycle:
    values = {pair.key.name: pair.value for pair in execution.typed_search_attributes}
    return ListedLifecycle(
        customer_id=values.get("CustomerId", execution.id.removeprefix("lifecycle/")),
        stage=values.get("LifecycleStage", ""),
        playbook=values.get("LifecyclePlaybook", ""),
        status=execution.status.name.lower() if execution.status else "",
        started_at=execution.start_time,
        incident=values.get("LifecycleIncident", ""),
    )


def update_failure(cause: BaseException | None) -> EventReceipt:
    """The receipt of an update the workflow's validator refused.

    `EventDuplicate` (details: stage) is a key seen before, refused before it enters history,
    answered `duplicate`; `EventRejected` (details: code, stage) is a rejection."""
    if isinstance(cause, ApplicationError) and cause.type == DUPLICATE:
        stage = (list(cause.details) + [None])[0]
        return EventReceipt(status="duplicate", stage=stage if isinstance(stage, str) else None)
    if isinstance(cause, ApplicationError) and cause.type == REJECTED:
        code, stage, field = (list(cause.details) + ["", None, None])[:3]
        return EventReceipt(status="rejected", reason=cause.message, code=code, stage=stage,
                            field=field if isinstance(field, str) else None)
    return EventReceipt(status="rejected", reason=str(cause))


def is_closed(error: RPCError) -> bool:
    """Whether Temporal refused because the workflow has closed (completed, terminated, ...)."""
    return error.status == RPCStatusCode.NOT_FOUND and (
        "already completed" in error.message or "closing workflow" in error.message)


def is_missing_workflow(error: RPCError) -> bool:
    """NOT_FOUND about the workflow, not about the namespace."""
    return error.status == RPCStatusCode.NOT_FOUND and "namespace" not in error.message.lower()


def refusal(error: RPCError) -> Exception:
    """What an RPCError means to a caller: a TemporalRefused that retrying will not fix, a
    TemporalBusy worth retrying soon, or the RPCError itself (Temporal unreachable or failing)."""
    message = error.message
    if "limit on number of total updates" in message:
        return TemporalRefused("update_limit_reached", "the lifecycle took as many events as one run allows "
                               f"(Temporal: {message}); it takes more after its next continue-as-new")
    if "in-flight updates" in message:
        return TemporalBusy(f"too many events in flight for this lifecycle (Temporal: {message})")
    if "workflow task failure" in message or "Workflow Task in failed state" in message:
        return TemporalRefused("workflow_task_failed", f"the lifecycle's workflow code is failing (Temporal: {message})")
    if "size exceeds limit" in message.lower() or "larger than max" in message:
        return TemporalRefused("too_large", f"over Temporal's size limit (Temporal: {message})")
    if error.status == RPCStatusCode.NOT_FOUND:  # the namespace
        return TemporalRefused("namespace_not_found", f"Temporal: {message}")
    if error.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNAUTHENTICATED):
        return TemporalRefused("temporal_permission_denied", f"Temporal: {message}")
    if error.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION,
                        RPCStatusCode.ALREADY_EXISTS):
        return TemporalRefused("temporal_refused", f"Temporal refused: {message}")
    return error


def initial_search_attributes(lifecycle: Lifecycle, customer_id: str) -> TypedSearchAttributes:
    """Set at start, so a new lifecycle is listed in its stage without an extra history event."""
    stage = lifecycle.initial_stage
    return TypedSearchAttributes([
        SearchAttributePair(STAGE, stage), SearchAttributePair(PLAYBOOK, stage),
        SearchAttributePair(CUSTOMER, customer_id),
    ])


def _quote(value: str) -> str:
    return value.replace("'", "")


__all__ = ["LifecycleClient", "LifecycleNotFound", "PayloadError", "QueuedReceipt", "TemporalBusy",
           "TemporalRefused", "TooLarge"]
