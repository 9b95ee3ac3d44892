"""Tasks as entities: what a lifecycle keeps of the work it gives people, and what people do to it.

A `task` step (or a send's `otherwise`) creates a TaskEntity in `state.tasks` as it hands the
task off (outbox or webhook: the delivery activity), so a help desk can act on it the moment it
has it, before the delivery's result reaches the workflow; people complete, reassign, snooze or
cancel it by id, whether or not the playbook waits for it. Pure functions over a
LifecycleState: the workflow's `task` update and event update, the simulator and the tests all
go through them.

What is kept is bounded: every open task (at most OPEN_KEPT) and the CLOSED_KEPT most recent
closed ones; the timeline and the outbox/webhook have the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from typing import TYPE_CHECKING

from engine.fields import FieldSpec
from engine.state import LifecycleState, TaskCommand, TaskEntity, built

if TYPE_CHECKING:
    from engine.steps.task import TaskSpec

# engine.steps.task imports this module, and engine.model (with engine.events) imports the step
# kinds: what this module needs of those two is imported where it is used, not at the top.

OPEN_KEPT = 200  # open tasks one lifecycle keeps; past it the oldest is cancelled (and says why)
CLOSED_KEPT = 20  # closed tasks kept for the status and `lifecycle tasks`; older ones leave the state


class TaskProblem(Exception):
    """A completion or command the task cannot take: `code` for machines (unknown_task,
    task_closed, invalid_payload), `field` naming the culprit when there is one."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def field_specs(spec: TaskSpec) -> dict[str, Any]:
    """A task's declared fields as plain data, kept on the entity (its playbook may change later)."""
    return {name: field.model_dump(exclude_defaults=True) for name, field in spec.fields.items()}


def schema_of(fields: dict[str, FieldSpec]) -> dict[str, Any]:
    """The JSON Schema of a completion's `fields`, for a help desk to build its form with."""
    from engine.events import payload_json_schema
    from engine.model import EventSpec

    return payload_json_schema(EventSpec(payload=fields))


def link_escalation(state: LifecycleState, path: str, task_id: str) -> None:
    """A task created in another task's `on_overdue` is the escalation that task triggered."""
    if ".on_overdue." not in path:
        return
    parent = path.rsplit(".on_overdue.", 1)[0]
    for entity in state.tasks:
        if entity.path == parent and entity.stage_entry == state.stage_entry and not entity.escalation:
            entity.escalation = task_id


def field_kinds(state: LifecycleState, event: Any) -> dict[str, str] | None:
    """The kinds of the fields a `task.completed` event carries, as its task declares them (for
    the CEL view of `event.data.fields`); None for another event or a task without fields."""
    if event is None or event.name != "task.completed":
        return None
    entity = find(state, str(event.data.get("task")))
    if entity is None or not entity.field_specs:
        return None
    return {name: spec["type"] for name, spec in entity.field_specs.items()}


def _fields_spec(entity: TaskEntity) -> Any:
    from engine.model import EventSpec

    return EventSpec(payload={name: FieldSpec.model_validate(spec) for name, spec in entity.field_specs.items()})


def create(state: LifecycleState, task_id: str, step: str, path: str, spec: TaskSpec, now: datetime,
           due_at: datetime | None, waited: bool) -> TaskEntity:
    """The task `task_id`, created now (a step that runs again, say on retry, keeps the one it made)."""
    known = _by_id(state, task_id)
    if known is not None:
        return known
    entity = built(
        TaskEntity, id=task_id, customer_id=state.customer["id"], stage=state.stage, stage_entry=state.stage_entry,
        step=step, path=path, role=spec.role, title=spec.title, guideline=spec.guideline,
        created_at=now, due_at=due_at, outcomes=list(spec.outcomes), field_specs=field_specs(spec),
        waited=waited,
    )
    state.tasks.append(entity)
    _trim(state, now)
    return entity


def handed_off(state: LifecycleState, task_id: str, path: str) -> TaskEntity | None:
    """A task made at its hand-off (`create` before the delivery), now that the hand-off is
    done: linked as the escalation it may be. People may have completed, reassigned, snoozed or
    cancelled it while the delivery was in flight; None if it was closed and has left the state."""
    entity = _by_id(state, task_id)
    if entity is not None:
        link_escalation(state, path, task_id)
    return entity


def hand_off_failed(state: LifecycleState, task_id: str, path: str, due_at: datetime | None) -> TaskEntity | None:
    """A task made at its hand-off whose delivery failed. Nobody acted on it: it is dropped, as
    a failed hand-off made no task before (the `failed` record says why; a playbook waiting for
    it still escalates when it is due). Someone completed, reassigned, snoozed or cancelled it
    while the delivery was in flight: it reached them, so it is kept as they left it (returned)."""
    entity = _by_id(state, task_id)
    if entity is None:
        return None  # closed by someone, then trimmed
    untouched = entity.status == "open" and entity.assignee is None and entity.due_at == due_at \
        and not entity.by
    if untouched:
        state.tasks.remove(entity)
        return None
    link_escalation(state, path, task_id)
    return entity


def _by_id(state: LifecycleState, task_id: str) -> TaskEntity | None:
    return next((entity for entity in state.tasks if entity.id == task_id), None)


def find(state: LifecycleState, ref: str) -> TaskEntity | None:
    """The task a reference names: its id, or (as `task.completed` always took) a step id, which
    means that step's newest open task, in the current stage entry first."""
    entity = _by_id(state, ref)
    if entity is not None:
        return entity
    by_step = [entity for entity in state.tasks if entity.step == ref]
    if not by_step:
        return None
    open_ones = [entity for entity in by_step if entity.is_open]
    current = [entity for entity in open_ones if entity.stage_entry == state.stage_entry]
    return (current or open_ones or by_step)[-1]


def checked_completion(state: LifecycleState, data: dict[str, Any],
                       before: frozenset[str] = frozenset()) -> tuple[TaskEntity, dict[str, Any]]:
    """The task a `task.completed` payload completes, and its outcome and fields checked and
    normalized; raises TaskProblem (unknown or closed task, an outcome or field that does not fit).
    `before`: as engine.events.validate_payload."""
    ref = str(data.get("task"))
    entity = find(state, ref)
    if entity is None:
        raise TaskProblem("unknown_task", f"no task '{ref}'", "task")
    if not entity.is_open:
        raise TaskProblem("task_closed", f"task '{entity.id}' is {entity.status}", "task")
    outcome = data.get("outcome")
    if entity.outcomes and outcome not in entity.outcomes:
        got = "no outcome" if outcome is None else f"'{outcome}'"
        raise TaskProblem("invalid_payload", f"field 'outcome' must be one of {', '.join(entity.outcomes)}, "
                                             f"got {got}", "outcome")
    fields = data.get("fields") or {}
    unknown = sorted(set(fields) - set(entity.field_specs)) if isinstance(fields, dict) else []
    if unknown:
        declared = ", ".join(entity.field_specs) or "none"
        raise TaskProblem("invalid_payload", f"task '{entity.step}' has no field 'fields.{unknown[0]}' "
                                             f"(its fields: {declared})", f"fields.{unknown[0]}")
    from engine.events import PayloadError, validate_payload

    try:
        fields = validate_payload(f"the fields of task '{entity.step}'", _fields_spec(entity), fields, before)
    except PayloadError as error:
        message = str(error).replace("field '", "field 'fields.", 1)
        raise TaskProblem("invalid_payload", message, f"fields.{error.field}" if error.field else "fields") from None
    return entity, fields


def complete(state: LifecycleState, entity: TaskEntity, outcome: str | None, fields: dict[str, Any],
             now: datetime, by: str = "") -> None:
    """Mark a task done with its (checked) outcome and fields."""
    entity.status = "done"
    entity.completed_at = now
    entity.reminder_at = None  # no reminder comes for a closed task (its wait would clear it a moment later)
    entity.outcome = outcome
    entity.fields = fields
    entity.by = by
    _trim(state, now)


def command(state: LifecycleState, order: TaskCommand, now: datetime) -> TaskEntity:
    """Reassign, snooze or cancel a task (complete goes through `task.completed`); raises TaskProblem.

    Snoozing sets a new due time; for a task the playbook waits for, that moves its overdue
    clock and its reminders too (the wait re-arms at the new time). A new due time is an
    instant: a span a person gives (`2h`) is elapsed time, whatever `due` counted. Reassigning keeps the due time unless
    `until` gives a new one. Cancelling closes the task; a playbook waiting for it goes on
    after the task step, running neither `on_done` nor `on_overdue`."""
    entity = checked_command(state, order, now)
    if order.action == "reassign":
        entity.assignee = order.assignee
    if order.until is not None and order.until != entity.due_at:
        entity.due_at = order.until
        entity.reminder_at = None  # the old due time's; the task's wait arms the new one's at once
        if entity.status == "overdue":
            entity.status = "open"
    if order.action == "cancel":
        entity.status = "cancelled"
        entity.completed_at = now
        entity.reminder_at = None
        entity.reason = order.reason
    entity.by = order.by
    _trim(state, now)
    return entity


def checked_command(state: LifecycleState, order: TaskCommand, now: datetime) -> TaskEntity:
    """The task a reassign, snooze or cancel applies to; raises TaskProblem. Changes nothing."""
    entity = find(state, order.task)
    if entity is None:
        raise TaskProblem("unknown_task", f"no task '{order.task}'", "task")
    if not entity.is_open:
        raise TaskProblem("task_closed", f"task '{entity.id}' is {entity.status}", "task")
    if order.action == "reassign" and not order.assignee:
        raise TaskProblem("invalid_payload", "reassign needs an assignee", "assignee")
    if order.action == "snooze" and order.until is None:
        raise TaskProblem("invalid_payload", "snooze needs 'until', the new due time", "until")
    if order.action not in ("reassign", "snooze", "cancel"):
        raise TaskProblem("invalid_payload", f"'{order.action}' is not a command here", "action")
    if order.until is not None and order.action != "cancel":
        _check_due(order.until, now)
    return entity


def _check_due(until: datetime, now: datetime) -> None:
    if until.tzinfo is None:
        raise TaskProblem("invalid_payload", "'until' needs a time zone", "until")
    if until <= now:
        raise TaskProblem("invalid_payload", f"'until' ({until.isoformat()}) is not in the future", "until")


def shown(state: LifecycleState) -> list[TaskEntity]:
    """The tasks as the status shows them. An ended lifecycle's open tasks are cancelled by its
    end: nobody can act on them any more (a command answers `ended`, HTTP 410), so they must not
    read as open. Only the reading changes, not the state: the workflow's history decides that."""
    if not state.ended:
        return state.tasks
    ended_at = next((record.at for record in reversed(state.timeline) if record.kind == "ended"), None)
    closed = {"status": "cancelled", "completed_at": ended_at, "reminder_at": None,
              "reason": f"the lifecycle ended ({state.ended})"}
    return [entity.model_copy(update=closed) if entity.is_open else entity for entity in state.tasks]


def listed_status(entity: TaskEntity, now: datetime) -> str:
    """The status as a person sees it: an open task past its due time is overdue."""
    if entity.status == "open" and entity.due_at is not None and entity.due_at <= now:
        return "overdue"
    return entity.status


def inbox(state: LifecycleState) -> tuple[list[str], list[str], datetime | None]:
    """What the lifecycle's search attributes say of its open tasks: roles, assignees, next due."""
    open_ones = [entity for entity in state.tasks if entity.is_open]
    roles = sorted({entity.role for entity in open_ones})
    assignees = sorted({entity.assignee for entity in open_ones if entity.assignee})
    dues = [entity.due_at for entity in open_ones if entity.due_at is not None]
    return roles, assignees, min(dues) if dues else None


def _trim(state: LifecycleState, now: datetime) -> None:
    if len(state.tasks) <= min(OPEN_KEPT, CLOSED_KEPT):
        return  # nothing over either limit (the common case: no need to look at each task)
    open_ones = [entity for entity in state.tasks if entity.is_open]
    for entity in open_ones[: max(0, len(open_ones) - OPEN_KEPT)]:
        entity.status, entity.completed_at = "cancelled", now
        entity.reason = f"more than {OPEN_KEPT} tasks were open for this customer"
    closed = sorted((entity for entity in state.tasks if not entity.is_open),
                    key=lambda entity: entity.completed_at or entity.created_at)
    dropped = {id(entity) for entity in closed[: max(0, len(closed) - CLOSED_KEPT)]}
    if dropped:
        state.tasks[:] = [entity for entity in state.tasks if id(entity) not in dropped]
