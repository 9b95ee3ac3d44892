"""The workflow's contract with its callers: input, status and result, as plain data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

from engine.model import Lifecycle
from engine.project import StageBundle
from engine.state import Incident, LifecycleState, Pending, Record, TaskEntity

WORKFLOW_NAME = "CustomerLifecycle"
EVENT_UPDATE = "event"
EVENT_SIGNAL = "event_signal"
STATUS_QUERY = "status"
INCIDENT_UPDATE = "incident"  # an operator's retry or skip of the step a customer is held on
TASK_UPDATE = "task"  # a person completes, reassigns, snoozes or cancels a task (engine.tasks)
REJECTED = "EventRejected"  # ApplicationError type of a rejected update; details: code, stage
DUPLICATE = "EventDuplicate"  # ApplicationError type the validator answers a seen idempotency key with;
# refused before it enters history, so a resent event costs no history; callers answer `duplicate`

# Custom search attributes: "who is in which stage" as a visibility query.
STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
PLAYBOOK = SearchAttributeKey.for_keyword("LifecyclePlaybook")
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
INCIDENT = SearchAttributeKey.for_keyword("LifecycleIncident")  # the held step's kind of failure, or ""
# The task inbox (engine.tasks.inbox): who has open tasks for this customer, and the next due time.
TASK_ROLES = SearchAttributeKey.for_keyword_list("LifecycleTaskRoles")
TASK_ASSIGNEES = SearchAttributeKey.for_keyword_list("LifecycleTaskAssignees")
NEXT_TASK_DUE = SearchAttributeKey.for_datetime("LifecycleNextTaskDue")
SEARCH_ATTRIBUTES = (STAGE, PLAYBOOK, CUSTOMER, INCIDENT, TASK_ROLES, TASK_ASSIGNEES, NEXT_TASK_DUE)
"""Every custom attribute a lifecycle sets: the namespace must have them all (devserver registers them)."""


class LifecycleStart(BaseModel):
    """The workflow input: a new lifecycle, or one continued from a previous run."""

    customer_id: str
    lifecycle: Lifecycle
    state: LifecycleState | None = None
    bundle: StageBundle | None = Field(None, description="What the running stage entry pinned, carried on.")
    max_history: int = Field(10_000, description="Continue as new past this many history events.")
    time_scale: float = Field(1.0, gt=0, description="Demos only: the lifecycle's clock runs this much faster.")
    clock_origin: datetime | None = Field(None, description="Where a scaled clock started; kept across runs.")
    records_shipped: int = Field(0, description="Timeline records already sent to the analytics store.")
    records_chain: str | None = Field(None, description="Names this lifecycle in analytics record ids.")


class NextSchedule(BaseModel):
    """The next moment a lifecycle schedule sends its event (docs/playbooks.md, Schedules)."""

    event: str
    at: datetime


class LifecycleStatus(BaseModel):
    """What the status query answers: where the customer is and what happened lately."""

    customer_id: str
    stage: str
    since: datetime
    version: str
    ended: str | None
    facts: dict[str, Any]
    customer: dict[str, Any]
    promises: dict[str, Any]
    pending: Pending | None
    recent: list[Record]
    incident: Incident | None = Field(None, description="Why the customer is held, if they are.")
    tasks: list[TaskEntity] = Field(default_factory=list, description="Open tasks and the most recent closed ones.")
    next_schedule: NextSchedule | None = Field(None, description="The next schedule to fire, if any.")


class IncidentCommand(BaseModel):
    """An operator's answer to an incident: run the held step again, or skip past it."""

    action: Literal["retry", "skip"]
    by: str = Field("", description="Who asked (recorded on the timeline).")


class LifecycleResult(BaseModel):
    outcome: str
    state: LifecycleState


