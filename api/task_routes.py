"""The task API: the inbox across customers, one task, and complete / reassign / snooze / cancel.

`GET /v1/tasks` finds the lifecycles with matching open tasks in Temporal's visibility store
(the task search attributes) and asks each for its tasks; the commands are the workflow's
`task` update through `LifecycleClient.task_command`, with the event API's auth, error bodies
and idempotency (an `Idempotency-Key` header, remembered by the lifecycle and by this process).

| outcome                                              | status | code                    |
| ---------------------------------------------------- | ------ | ----------------------- |
| done, reassigned, snoozed, cancelled                 | 200    |                         |
| the same Idempotency-Key again, same body            | 200    | (`status: duplicate`)   |
| no such task, or no such customer                    | 404    | task_not_found          |
| the task is done or cancelled already                | 409    | task_closed             |
| same Idempotency-Key, different body                 | 409    | idempotency_key_reused  |
| the lifecycle has ended                              | 410    | lifecycle_ended         |
| an outcome, field, assignee or time that does not fit| 422    | invalid_payload / invalid_request (field) |
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from api.auth import require_caller
from api.errors import ApiError, validation_error
from api.events import busy, refused
from api.idempotency import fingerprint
from api.limits import ID_PATTERN, KEY_PATTERN, parse_json
from api.models import Timestamp
from api.routes import ApiState, _ask_lifecycle, errors, state
from engine import tasks
from engine.events import PayloadError
from engine.state import EventReceipt, TaskCommand, TaskEntity
from workflows.client import LifecycleNotFound, TaskFilter, TemporalBusy, TemporalRefused, customer_of_task, refusal

router = APIRouter(prefix="/v1", dependencies=[Depends(require_caller)], tags=["tasks"],
                   responses=errors(401, 408, 413, 429, 500, 502, 503))

COMMANDS = {"complete": "complete", "reassign": "reassign", "snooze": "snooze", "cancel": "cancel"}


class TaskPage(BaseModel):
    """Open tasks, soonest due first; pass `next_page_token` back as `page_token` for more."""

    tasks: list[TaskEntity]
    unavailable: list[str] = Field(default_factory=list, description="Customers whose lifecycle did not answer "
                                   "in time (a worker down, failing workflow code): their tasks are missing here.")
    next_page_token: str | None = None


class TaskAnswer(BaseModel):
    """The task after a command; `status` is `duplicate` for an Idempotency-Key seen before."""

    status: Literal["accepted", "duplicate"]
    task: TaskEntity


class Complete(BaseModel):
    """Complete a task with its outcome and fields (as the task declares them)."""

    model_config = ConfigDict(extra="forbid")
    outcome: str | None = Field(None, max_length=200, description="One of the task's `outcomes`; free text when "
                                "it declares none.", examples=["reached"])
    fields: dict[str, Any] = Field(default_factory=dict, description="The task's declared fields.",
                                   examples=[{"battery_interest": True}])
    by: str = Field("", max_length=200, description="Who did it (default: the caller's name).")


class Reassign(BaseModel):
    """Give the task to someone; `until` moves its due time too."""

    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(pattern=ID_PATTERN, max_length=200, examples=["sam"])
    until: Timestamp | None = Field(None, description="A new due time (the old one stays without it).")
    by: str = Field("", max_length=200)


class Snooze(BaseModel):
    """Move the task's due time; a playbook waiting for it escalates at the new time."""

    model_config = ConfigDict(extra="forbid")
    until: Timestamp = Field(description="The new due time, in the future.")
    by: str = Field("", max_length=200)


class Cancel(BaseModel):
    """Cancel the task; a playbook waiting for it goes on after the task step."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)
    by: str = Field("", max_length=200)


BODIES: dict[str, type[BaseModel]] = {"complete": Complete, "reassign": Reassign, "snooze": Snooze, "cancel": Cancel}

# The engine's rejection codes → HTTP status and API code, for task commands.
_REJECTIONS = {"unknown_task": (404, "task_not_found"), "task_closed": (409, "task_closed"),
               "invalid_payload": (422, "invalid_payload"), "ended": (410, "lifecycle_ended")}


@router.get("/tasks", response_model=TaskPage, summary="Open tasks across customers (the inbox)",
            responses=errors(409, 422, 504))
async def list_tasks(
    api: ApiState = Depends(state),
    role: str | None = Query(None, pattern=rf"^[a-z][a-z0-9_]*$", max_length=200, description="Only this role."),
    assignee: str | None = Query(None, pattern=ID_PATTERN, max_length=200, description="Only this assignee."),
    status: Literal["open", "overdue", "escalated"] = Query(
        "open", description="`open`: every task not done nor cancelled; `overdue`: past its due time; "
                            "`escalated`: its playbook escalated it."),
    due_before: Timestamp | None = Query(None, description="Only tasks due before this time."),
    page_size: int = Query(100, ge=1, le=1000, description="Lifecycles per page (each may have several tasks)."),
    page_token: str | None = Query(None, max_length=4096),
) -> TaskPage:
    """Tasks not done nor cancelled, soonest due first, from Temporal's visibility store (a second
    or so behind) and each lifecycle's status. A closed task is in `GET /v1/customers/{id}`."""
    if role is not None and role not in api.view.project().lifecycle.roles:
        raise ApiError(422, "invalid_request", f"unknown role '{role}'", field="role")
    which = TaskFilter(role=role, assignee=assignee, status=status, due_before=due_before)
    scope = f"tasks|{role or ''}|{assignee or ''}|{status}|{due_before.isoformat() if due_before else ''}"
    try:
        page = await asyncio.wait_for(api.lifecycles.tasks_page(
            which, page_size=page_size, page_token=api.pages.open(scope, page_token)),
            api.settings.event_timeout + 10)
    except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
        raise ApiError(504, "temporal_timeout", "the visibility store or a lifecycle did not answer in time") from None
    except TemporalRefused as error:
        raise refused(error) from None
    except RPCError as error:
        answer = refusal(error)
        if isinstance(answer, TemporalRefused):
            raise refused(answer) from None
        raise ApiError(503, "temporal_unavailable", f"Temporal: {error.message}") from None
    return TaskPage(tasks=page.tasks, unavailable=page.unavailable,
                    next_page_token=api.pages.seal(scope, page.next_page_token))


@router.get("/tasks/{task_id:path}", response_model=TaskEntity, summary="One task",
            responses=errors(404, 409, 504))
async def get_task(task_id: str = Path(max_length=1000, description="The task id."),
                   api: ApiState = Depends(state)) -> TaskEntity:
    """A task, open or among the customer's recent closed ones; 404 `task_not_found`."""
    customer = _customer(task_id)
    try:
        status = await _ask_lifecycle(api.lifecycles.status(customer, api.settings.event_timeout),
                                      api.settings.event_timeout + 10)
    except ApiError as error:
        raise _not_found(task_id) if error.code == "customer_not_found" else error
    now = datetime.now(timezone.utc)
    for task in status.tasks:
        if task.id == task_id:
            return task.model_copy(update={"status": tasks.listed_status(task, now)})
    raise _not_found(task_id)


@router.post(
    "/tasks/{task_command:path}", response_model=TaskAnswer,
    summary="Complete, reassign, snooze or cancel a task: POST /v1/tasks/{id}:complete (or :reassign, "
            ":snooze, :cancel)",
    responses=errors(400, 404, 409, 410, 422, 504),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"oneOf": [
        model.model_json_schema() for model in BODIES.values()]}}}}},
)
async def post_task_command(
    request: Request,
    task_command: str = Path(max_length=1100, description="`<task id>:complete`, `:reassign`, `:snooze` or "
                                                           "`:cancel`."),
    api: ApiState = Depends(state),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", pattern=KEY_PATTERN, max_length=200,
                                         description="The same key is acted on once for this customer."),
) -> Any:
    """A person's command on one task. The body depends on the command (see the schemas
    Complete, Reassign, Snooze, Cancel); `by` defaults to the caller's name."""
    task_id, _, action = task_command.rpartition(":")
    if action not in COMMANDS or not task_id:
        raise ApiError(404, "not_found", "POST /v1/tasks/{id}:complete, :reassign, :snooze or :cancel")
    raw = parse_json(await request.body()) if await request.body() else {}
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    try:
        body = BODIES[action].model_validate(raw)
    except ValidationError as error:
        raise validation_error(error) from None
    customer = _customer(task_id)
    fields = body.model_dump(exclude_none=True)
    order = TaskCommand(task=task_id, action=action, idempotency_key=idempotency_key,
                        **{**fields, "by": fields.get("by") or request.state.caller})

    async def send() -> tuple[int, dict[str, Any]]:
        return 200, await _command(api, customer, order)

    if idempotency_key is None:
        status, answer = await send()
    else:
        print_ = fingerprint({"task": task_id, "action": action, **body.model_dump(mode="json")})
        status, answer = await api.desk.record.once((customer, idempotency_key), print_, send)
    return answer


async def _command(api: ApiState, customer: str, order: TaskCommand) -> dict[str, Any]:
    try:
        answer = await asyncio.wait_for(api.lifecycles.task_command(customer, order), api.settings.event_timeout)
    except PayloadError as error:
        raise ApiError(422, "invalid_payload", str(error), field=error.field) from None
    except LifecycleNotFound:
        raise _not_found(order.task) from None
    except TemporalRefused as error:
        raise refused(error) from None
    except TemporalBusy as error:
        raise busy(error) from None
    except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
        raise ApiError(504, "temporal_timeout", "the lifecycle did not answer in time; send it again with the "
                                                "same Idempotency-Key") from None
    except RPCError as error:
        raise ApiError(503, "temporal_unavailable", f"Temporal: {error.message}") from None
    if isinstance(answer, EventReceipt):
        status, code = _REJECTIONS.get(answer.code, (409, "task_rejected"))
        raise ApiError(status, code, answer.reason, field=answer.field if status == 422 else None)
    now = datetime.now(timezone.utc)
    task = answer.model_copy(update={"status": tasks.listed_status(answer, now)})
    return TaskAnswer(status="accepted", task=task).model_dump(mode="json")


def _customer(task_id: str) -> str:
    customer = customer_of_task(task_id)
    if customer is None:
        raise _not_found(task_id)
    return customer


def _not_found(task_id: str) -> ApiError:
    return ApiError(404, "task_not_found", f"no task '{task_id}'")
