"""What a running lifecycle knows: events in, actions out, the promise ledger and its timeline.

Every type here is plain pydantic data, so the same state travels through a Temporal
workflow (history, queries, continue-as-new) and the offline simulator unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, Field


class Event(BaseModel):
    """An event another system sends about one customer."""

    customer_id: str
    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    occurred_at: datetime | None = None
    customer: dict[str, Any] | None = Field(
        None, description="Profile fields to set on the customer before the event is handled."
    )


RejectionCode = Literal[
    "", "ended", "invalid_payload", "stage_cannot_take", "not_a_start_event", "too_large", "no_incident",
    "unknown_task", "internal_error", "rule_failed", "task_closed",
]


class EventReceipt(BaseModel):
    """The answer to an event: accepted (and what it did), duplicate, or rejected with why."""

    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    code: RejectionCode = Field("", description="Why it was rejected, for machines; `reason` is for people.")
    field: str | None = Field(None, description="The payload field at fault, when one is.")
    stage: str | None = None
    transition: str | None = None


class Action(BaseModel):
    """One effect the interpreter asks for; `id` is its idempotency key."""

    id: str
    kind: Literal["message", "task", "incident", "notice", "reminder"] = Field(
        description="An incident tells operators a customer is held; a notice tells them the contact policy "
        "deferred or suppressed a send, or a split assigned a branch (`title` what, `guideline` why); a reminder tells a task's role "
        "(and assignee) that it is due soon (`task_id`, `due_at`).")
    customer_id: str
    stage: str
    step: str
    channel: str | None = None
    to: str | None = None
    template: str | None = None
    category: str | None = None
    subject: str = ""
    body: str = ""
    role: str | None = None
    title: str | None = None
    guideline: str | None = None
    due_at: datetime | None = None
    assignee: str | None = Field(None, description="A reminder: the person the task is assigned to, if any.")
    # --- task entities (issue 12): what a help desk needs to create the task and call back.
    task_id: str | None = Field(None, description="A task's id: `POST /v1/tasks/{task_id}:complete` closes it.")
    outcomes: list[str] = Field(default_factory=list, description="A task's allowed outcomes; empty: free text.")
    fields: dict[str, Any] = Field(default_factory=dict, description="JSON Schema of the fields a task's "
                                   "completion carries (`fields` of :complete).")


class ActionResult(BaseModel):
    """What came of an action. A permanent failure is recorded, never silently dropped."""

    status: Literal["done", "failed"]
    detail: str = ""


class PromiseEntry(BaseModel):
    """A promise made to the customer and, once checked, whether it was kept."""

    name: str
    about: str
    description: str = ""
    expected: Any
    made_by: str
    made_at: datetime
    stage: str
    tolerance: str | float | None = Field(None, description="Slack when checking: '1d' or an amount.")
    state: Literal["open", "kept", "broken"] = "open"
    actual: Any = None
    checked_at: datetime | None = None


class Record(BaseModel):
    """One line of a lifecycle's timeline."""

    at: datetime
    stage: str
    kind: Literal[
        "stage_entered", "event", "message", "task", "suppressed", "failed",
        "promise", "promise_kept", "promise_broken", "timeout", "set", "ended", "incident", "resolved",
        "task_changed", "task_reminded",
        "deferred", "consent", "schedule", "split",
    ]
    step: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Pending(BaseModel):
    """What a stage is waiting for, shown in the status."""

    step: str
    events: list[str] = Field(default_factory=list)
    until: datetime | None = None
    task: str | None = None
    deferred: str | None = Field(None, description="Why a send waits (quiet hours, a cap), when it does.")


IncidentKind = Literal["expression", "template", "payload", "load", "internal", "policy"]


class Incident(BaseModel):
    """A failure the customer is held on, until the playbook is fixed or an operator acts."""

    kind: IncidentKind
    stage: str
    step: str | None = Field(None, description="The held step (its id or kind@path); None for the stage.")
    path: str | None = Field(None, description="The held step's path in the stage playbook.")
    error: str
    since: datetime
    release: Literal["retry", "skip"] | None = Field(None, description="What releases it: set by an operator or a fix.")
    released_by: str = ""


# ---------------------------------------------------------------- task entities (issue 12)

TaskStatus = Literal["open", "overdue", "escalated", "done", "cancelled"]
OPEN_TASK_STATUSES = ("open", "overdue", "escalated")  # not done nor cancelled: can still be completed


class TaskEntity(BaseModel):
    """A task for a human role: created by a `task` step (or a send's `otherwise`), then
    completed, reassigned, snoozed or cancelled by people. `id` is the task's action id."""

    id: str = Field(description="lifecycle id / stage / stage entry / step: stable, and the idempotency key "
                                "of the task's hand-off.")
    customer_id: str
    stage: str
    stage_entry: int
    step: str
    path: str = Field("", description="The step's path in the stage playbook.")
    role: str
    assignee: str | None = None
    title: str
    guideline: str = ""
    created_at: datetime
    due_at: datetime | None = None
    completed_at: datetime | None = None
    status: TaskStatus = "open"
    outcome: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    outcomes: list[str] = Field(default_factory=list, description="Allowed outcomes; empty: any text.")
    field_specs: dict[str, Any] = Field(default_factory=dict,
                                        description="The declared fields (FieldSpec as data), to check a completion.")
    waited: bool = Field(False, description="The playbook waits for it (on_done / on_overdue).")
    escalation: str | None = Field(None, description="What its overdue escalation started (a task id or step).")
    by: str = Field("", description="Who completed, reassigned, snoozed or cancelled it last.")
    reason: str = Field("", description="Why it was cancelled.")
    reminder_at: datetime | None = Field(None, description="When its next reminder is due (`remind`, engine.reminders).")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES


class TaskCommand(BaseModel):
    """What people do with a task: complete, reassign, snooze or cancel it."""

    task: str = Field(description="The task id (or, for compatibility, the step id of a task of the stage entry).")
    action: Literal["complete", "reassign", "snooze", "cancel"]
    outcome: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    assignee: str | None = Field(None, description="reassign: who does it now.")
    until: datetime | None = Field(None, description="snooze: the new due time; reassign: optional new due time.")
    reason: str = Field("", description="cancel: why.")
    by: str = Field("", description="Who asks (kept on the task and the timeline).")
    idempotency_key: str | None = None


class Resume(BaseModel):
    """Where a stage entry stopped, so a new run (continue-as-new) or a retry picks it up there.

    `pause`: the step at `path` was waiting (until `until`); `held`: it is held on an incident;
    `retry`: run it again; `skip`: go on after it. Steps before `path` have run.
    """

    path: str
    mode: Literal["pause", "held", "retry", "skip"]
    until: datetime | None = None
    event: Event | None = Field(None, description="The event the stage was working with.")


class Sent(BaseModel):
    """One message in the send log."""

    at: datetime
    channel: str
    category: str


class ContactState(BaseModel):
    """What the policy remembers across stages and continue-as-new (part of LifecycleState)."""

    sent: list[Sent] = Field(default_factory=list, description="Messages sent within the longest cap window.")
    last_event: dict[str, datetime] = Field(default_factory=dict,
                                            description="When each event a cap waits after last arrived.")
    opted_out: str | None = Field(None, description="Why the customer receives nothing (a global opt-out).")


class LifecycleState(BaseModel):
    """Everything needed to continue a lifecycle, including after continue-as-new."""

    def __setattr__(self, name: str, value: Any) -> None:
        # What pydantic does for a field of a model that validates no assignment, in one call
        # instead of two: the engine sets a state field some 170 times per customer-year.
        if name in _STATE_FIELDS:
            self.__dict__[name] = value
            self.__pydantic_fields_set__.add(name)
        else:
            super().__setattr__(name, value)

    def assign(self, **values: Any) -> None:
        """Set several fields at once, as setting each in turn does (the engine moves a stage,
        pauses and resumes by writing a handful of fields together)."""
        if not values.keys() <= _STATE_FIELDS:
            raise AttributeError(f"LifecycleState has no field {sorted(values.keys() - _STATE_FIELDS)}")
        self.__dict__.update(values)
        self.__pydantic_fields_set__.update(values)

    lifecycle_id: str
    customer: dict[str, Any]
    stage: str
    stage_since: datetime
    stage_entry: int = 0
    stage_version: str = ""
    stage_done: bool = Field(False, description="The stage playbook has run; waiting for a transition.")
    stage_event: Event | None = Field(None, description="The event that brought the customer here.")
    facts: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    promises: dict[str, PromiseEntry] = Field(default_factory=dict)
    inbox: list[Event] = Field(default_factory=list, description="Events not yet taken by a wait_for.")
    next_stage: str | None = Field(None, description="A transition waiting to interrupt the stage.")
    next_event: Event | None = None
    seen_keys: list[str] = Field(default_factory=list, description="Recent idempotency keys.")
    pending: Pending | None = None
    timeline: list[Record] = Field(default_factory=list)
    recorded: int = Field(0, description="Records ever appended to the timeline, trimmed or not: "
                                         "the sequence number of the next one (analytics record ids).")
    ended: str | None = None
    incident: Incident | None = None
    resume: Resume | None = None
    open_tasks: list[str] = Field(default_factory=list, description="Tasks of this stage entry not yet done.")
    tasks: list[TaskEntity] = Field(default_factory=list,
                                    description="Open tasks and the most recent closed ones (engine.tasks).")
    contact: ContactState = Field(default_factory=ContactState,
                                  description="The contact policy's memory: send log, opt-out (engine.policy).")
    schedules: dict[str, datetime] = Field(
        default_factory=dict, description="The moment each schedule last fired (engine.schedules).")
    splits: dict[str, str] = Field(
        default_factory=dict, description="The branch each split step chose for this customer, by step id.")


_STATE_FIELDS = frozenset(LifecycleState.model_fields)
assert not LifecycleState.model_config.get("validate_assignment") and not LifecycleState.model_config.get("frozen") \
    and not any(field.frozen for field in LifecycleState.model_fields.values()), "LifecycleState.__setattr__ skips these"


# ---------------------------------------------------------------- the engine's own records

Model = TypeVar("Model", bound=BaseModel)


def made(model: type[Model], values: dict[str, Any]) -> Model:
    """`model(**values)` without validating, for the few models the engine makes in its step loop
    (a record, a resume position) from values it made itself: every field given, in order,
    each already of its field's type. The same object at half the cost (the simulator makes
    dozens per customer-year). Data from outside (files, the API, events, a workflow's history)
    is always validated."""
    if len(values) != len(model.__pydantic_fields__):
        raise TypeError(f"{model.__name__} has fields {list(model.__pydantic_fields__)}, not {list(values)}")
    return _unvalidated(model, values, set(values))


_new, _set = object.__new__, object.__setattr__


def _unvalidated(model: type[Model], data: dict[str, Any], fields_set: set[str]) -> Model:
    """What pydantic's `model_construct` makes, without its per-field work."""
    instance = _new(model)
    _set(instance, "__dict__", data)
    _set(instance, "__pydantic_fields_set__", fields_set)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def built(model: type[Model], **values: Any) -> Model:
    """`model(**values)` without validating, the fields not given at their defaults: as `made`,
    for a model the engine makes per step (an action, a task, what a stage waits for) of values
    it made itself, each of its field's type and not shared (a list or a dict is not copied)."""
    static, factories, required = _BLUEPRINTS.get(model) or _blueprint(model)  # one lookup, not a call
    data = static.copy()
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    data.update(values)
    if len(data) != len(static) or not required <= values.keys():
        raise TypeError(f"{model.__name__} has fields {list(static)} ({sorted(required)} required), "
                        f"not {list(values)}")
    return _unvalidated(model, data, set(values))


_BLUEPRINTS: dict[type, tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str]]] = {}


def _blueprint(model: type[BaseModel]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str]]:
    """Every field of `model` in order at its default (None for a required one), the fields whose
    default a factory makes, and the required fields."""
    known = _BLUEPRINTS.get(model)
    if known is None:
        fields = model.model_fields
        known = _BLUEPRINTS[model] = (
            {name: None if field.is_required() or field.default_factory else field.default
             for name, field in fields.items()},
            tuple((name, field.default_factory) for name, field in fields.items() if field.default_factory),
            frozenset(name for name, field in fields.items() if field.is_required()),
        )
    return known


RECORD_KINDS = frozenset(get_args(Record.model_fields["kind"].annotation))
"""What a record's `kind` may be."""
