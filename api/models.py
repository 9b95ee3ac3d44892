"""The JSON shapes of the API: what callers send and what they get back.

The event request is checked twice on purpose: its envelope here (ids, types, no unknown
fields), its payload by `engine.events.check_event` inside `LifecycleClient.send`, the one
payload check shared with the CLI and the workflow's update validator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from api.limits import ID_PATTERN, KEY_PATTERN


def _iso_text(value: Any) -> Any:
    # pydantic reads a number, or text that is one, as Unix seconds (or milliseconds): an
    # `occurred_at` of 12345 was an event of 1970, answered 202. The contract is ISO 8601 text.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
    raise ValueError("must be ISO 8601 text with a time zone, such as 2026-03-12T15:04:00+01:00, not a number")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
"""An instant as ISO 8601 text with its UTC offset; a number (Unix time) is refused."""

CustomerId = Field(pattern=ID_PATTERN, max_length=200, description="The customer's id in your systems.",
                   examples=["cust-1042"])


class EventIn(BaseModel):
    """One event as a caller sends it (the envelope; `data` is checked against the event's schema)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = CustomerId
    event: str = Field(pattern=ID_PATTERN, max_length=200, description="A declared event name.",
                       examples=["order.delivered"])
    data: dict[str, Any] = Field(default_factory=dict, description="The payload, as the event declares it.")
    idempotency_key: str | None = Field(None, pattern=KEY_PATTERN, max_length=200,
                                        description="The same key is acted on once per customer.")
    occurred_at: Timestamp | None = Field(None, description="When it happened (default: when received).")
    customer: dict[str, Any] | None = Field(None, description="Profile fields to set on the customer first.")


class EventAnswer(BaseModel):
    """The answer to an accepted or duplicate event."""

    status: Literal["accepted", "duplicate", "queued"] = Field(
        description="`duplicate`: the key was seen before; `queued`: stored durably, applied when a worker "
                    "takes it (no `stage` yet).")
    customer_id: str
    event: str
    idempotency_key: str | None = None
    stage: str | None = Field(None, description="The customer's stage when the event was taken.")
    transition: str | None = Field(None, description="The stage the event moves the customer to, if any.")


class ErrorDetail(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="A stable, machine-readable code, e.g. `stage_cannot_take_event`.")
    message: str = Field(description="One line for humans.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    stage: str | None = Field(None, description="The customer's stage, for `stage_cannot_take_event`.")


class ErrorAnswer(BaseModel):
    """Every error answer."""

    error: ErrorDetail


class BatchResult(BaseModel):
    """The answer to one event of a batch: the status code and body it would have had alone."""

    status: int = Field(description="HTTP status code, as for POST /v1/events.", examples=[202])
    body: dict[str, Any] = Field(description="An EventAnswer, or an ErrorAnswer.")


class BatchAnswer(BaseModel):
    """The answers to a batch, in the order of its events."""

    results: list[BatchResult]


class ListedCustomer(BaseModel):
    """One lifecycle in a listing."""

    customer_id: str
    stage: str
    playbook: str
    status: str = Field(description="running, completed, continued_as_new, ...", examples=["running"])
    started_at: datetime | None
    incident: str | None = Field(None, description="The kind of failure the customer is held on, if any.",
                                 examples=["template"])


class CustomerPage(BaseModel):
    """A page of lifecycles; pass `next_page_token` back as `page_token` for the next one."""

    customers: list[ListedCustomer]
    next_page_token: str | None = None


class EventDescription(BaseModel):
    """An event other systems can send."""

    name: str
    description: str
    starts_lifecycle: bool
    builtin: bool = Field(description="Every lifecycle takes it without declaring it: task.completed, "
                          "consent.changed, customer.unsubscribed.")
    updates: list[str] = Field(description="Facts the event updates, in any stage.")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of `data`.")

    model_config = ConfigDict(populate_by_name=True)


class StageDescription(BaseModel):
    """A stage of the lifecycle and the version of its playbook customers enter with now."""

    name: str
    description: str
    playbook: str | None
    terminal: bool
    version: str


class TransitionDescription(BaseModel):
    """Which event moves a customer from which stages to which."""

    model_config = ConfigDict(populate_by_name=True)

    from_: list[str] = Field(alias="from")
    on: str
    to: str
    when: str | None = None


class PlaybooksAnswer(BaseModel):
    """The lifecycle as other systems see it."""

    lifecycle: str
    description: str
    initial_stage: str
    version: str = Field(description="Changes whenever any playbook, template or the lifecycle file does.")
    stages: list[StageDescription]
    transitions: list[TransitionDescription]
    events: list[EventDescription]


class Health(BaseModel):
    """A health or readiness answer."""

    status: Literal["ok", "ready"]
    task_queue: str | None = None
    pollers: int | None = None
