"""What a running lifecycle knows: events in, actions out, the promise ledger and its timeline.

Every type here is plain pydantic data, so the same state travels through a Temporal
workflow (history, queries, continue-as-new) and the offline simulator unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    "unknown_task", "internal_error", "rule_failed",
]


class EventReceipt(BaseModel):
    """The answer to an event: accepted (and what it did), duplicate, or rejected with why."""

    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    code: RejectionCode = Field("", description="Why it was rejected, for machines; `reason` is for people.")
    stage: str | None = None
    transition: str | None = None


class Action(BaseModel):
    """One effect the interpreter asks for; `id` is its idempotency key."""

    id: str
    kind: Literal["message", "task", "incident"] = Field(description="An incident tells operators a customer is held.")
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
    ]
    step: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Pending(BaseModel):
    """What a stage is waiting for, shown in the status."""

    step: str
    events: list[str] = Field(default_factory=list)
    until: datetime | None = None
    task: str | None = None


IncidentKind = Literal["expression", "template", "payload", "load", "internal"]


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


class Resume(BaseModel):
    """Where a stage entry stopped, so a new run (continue-as-new) or a retry picks it up there.

    `pause`: the step at `path` was waiting (until `until`); `held`: it is held on an incident;
    `retry`: run it again; `skip`: go on after it. Steps before `path` have run.
    """

    path: str
    mode: Literal["pause", "held", "retry", "skip"]
    until: datetime | None = None
    event: Event | None = Field(None, description="The event the stage was working with.")


class LifecycleState(BaseModel):
    """Everything needed to continue a lifecycle, including after continue-as-new."""

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
