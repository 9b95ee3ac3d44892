"""The caller's side of the contract: send an event, read a status, list who is where.

The CLI and the HTTP API both go through `LifecycleClient`, so validation, the choice
between update-with-start and update, and the mapping of errors are the same on every road.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.events import PayloadError, check_customer, check_event, declared_events
from engine.lifecycle import lifecycle_id
from engine.model import Lifecycle
from engine.state import Event, EventReceipt, Incident
from workflows.contract import (
    CUSTOMER, DUPLICATE, EVENT_UPDATE, INCIDENT_UPDATE, IncidentCommand, PLAYBOOK, REJECTED, STAGE, STATUS_QUERY, WORKFLOW_NAME, LifecycleStart, LifecycleStatus,
)


class LifecycleNotFound(LookupError):
    """The customer has no lifecycle and the event does not start one."""


@dataclass
class ListedLifecycle:
    customer_id: str
    stage: str
    playbook: str
    status: str
    started_at: Any


class LifecycleClient:
    """Events, status and listings for the lifecycles on one task queue."""

    def __init__(self, client: Client, lifecycle: Lifecycle, task_queue: str = "lifecycle",
                 max_history: int = 10_000, time_scale: float = 1.0) -> None:
        self.client = client
        self.lifecycle = lifecycle
        self.task_queue = task_queue
        self.max_history = max_history
        self.time_scale = time_scale  # only `lifecycle demo` runs clocks faster

    async def send(self, event: Event) -> EventReceipt:
        """Deliver an event; raises PayloadError for a bad payload and LifecycleNotFound."""
        event = event.model_copy(update={
            "data": check_event(self.lifecycle, event.name, event.data),
            "customer": check_customer(self.lifecycle, event.customer_id, event.customer),
        })
        spec = declared_events(self.lifecycle)[event.name]
        workflow_id = lifecycle_id(event.customer_id)
        try:
            if spec.starts_lifecycle:
                start = WithStartWorkflowOperation(
                    WORKFLOW_NAME,
                    LifecycleStart(customer_id=event.customer_id, lifecycle=self.lifecycle,
                                   max_history=self.max_history, time_scale=self.time_scale),
                    id=workflow_id, task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=initial_search_attributes(self.lifecycle, event.customer_id),
                )
                return await self.client.execute_update_with_start_workflow(
                    EVENT_UPDATE, event, start_workflow_operation=start, result_type=EventReceipt,
                )
            handle = self.client.get_workflow_handle(workflow_id)
            return await handle.execute_update(EVENT_UPDATE, event, result_type=EventReceipt)
        except WorkflowUpdateFailedError as error:
            return _rejection(error.cause)
        except RPCError as error:
            if "already completed" in error.message:
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LifecycleNotFound(
                    f"customer '{event.customer_id}' has no lifecycle, and '{event.name}' does not start one"
                ) from None
            raise

    async def status(self, customer_id: str) -> LifecycleStatus:
        """The status query of the customer's lifecycle (the latest run)."""
        handle = self.client.get_workflow_handle(lifecycle_id(customer_id))
        try:
            return await handle.query(STATUS_QUERY, result_type=LifecycleStatus)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle") from None
            raise

    async def release_incident(self, customer_id: str, action: str, by: str = "") -> Incident | EventReceipt:
        """An operator's retry or skip of the incident a customer is held on: the incident it
        released, or a rejection (code `no_incident`, `ended`)."""
        handle = self.client.get_workflow_handle(lifecycle_id(customer_id))
        try:
            return await handle.execute_update(INCIDENT_UPDATE, IncidentCommand(action=action, by=by),
                                               result_type=Incident)
        except WorkflowUpdateFailedError as error:
            return _rejection(error.cause)
        except RPCError as error:
            if "already completed" in error.message:
                return EventReceipt(status="rejected", code="ended", reason="the lifecycle has ended")
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LifecycleNotFound(f"customer '{customer_id}' has no lifecycle") from None
            raise

    async def list(self, stage: str | None = None, playbook: str | None = None,
                   running_only: bool = True, limit: int | None = None) -> list[ListedLifecycle]:
        """Who is in which stage, from the visibility store."""
        query = _list_query(stage, playbook, running_only)
        return [_listed(execution) async for execution in self.client.list_workflows(query, limit=limit)]

    async def list_page(self, stage: str | None = None, playbook: str | None = None,
                        running_only: bool = True, page_size: int = 100,
                        page_token: bytes | None = None) -> tuple[list[ListedLifecycle], bytes | None]:
        """One page of `list`, and the token of the next page (None after the last one)."""
        pages = self.client.list_workflows(_list_query(stage, playbook, running_only),
                                           page_size=page_size, next_page_token=page_token)
        await pages.fetch_next_page()
        return [_listed(execution) for execution in pages.current_page or []], pages.next_page_token


def _list_query(stage: str | None, playbook: str | None, running_only: bool) -> str:
    query = [f"WorkflowType = '{WORKFLOW_NAME}'"]
    if running_only:
        query.append("ExecutionStatus = 'Running'")
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
    )


def _rejection(cause: BaseException | None) -> EventReceipt:
    """The receipt of an update the workflow's validator refused (details: code, stage)."""
    if isinstance(cause, ApplicationError) and cause.type == DUPLICATE:
        return EventReceipt(status="duplicate", stage=(list(cause.details) + [None])[0])
    if isinstance(cause, ApplicationError) and cause.type == REJECTED:
        code, stage = (list(cause.details) + ["", None])[:2]
        return EventReceipt(status="rejected", reason=cause.message, code=code, stage=stage)
    return EventReceipt(status="rejected", reason=str(cause))


def initial_search_attributes(lifecycle: Lifecycle, customer_id: str) -> TypedSearchAttributes:
    """Set at start, so a new lifecycle is listed in its stage without an extra history event."""
    stage = lifecycle.initial_stage
    return TypedSearchAttributes([
        SearchAttributePair(STAGE, stage), SearchAttributePair(PLAYBOOK, stage),
        SearchAttributePair(CUSTOMER, customer_id),
    ])


def _quote(value: str) -> str:
    return value.replace("'", "")


__all__ = ["LifecycleClient", "LifecycleNotFound", "PayloadError"]
