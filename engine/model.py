"""The playbook language: a lifecycle file and its stage playbooks, as pydantic models.

The models *are* the schema: the loader validates YAML against them, `lifecycle schema`
exports them as JSON Schema, and the interpreter runs them. Cross-references (stages,
events, channels, roles, templates, names inside expressions) are checked by
`engine.checks` once the whole lifecycle is loaded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from engine.durations import format_duration, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(lambda v: v if isinstance(v, timedelta) else parse_duration(v)),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A duration: 30m, 2d, 1w, 1d12h or ISO 8601 such as P14D.",
            "examples": ["30m", "2d", "1w", "P14D"],
        }
    ),
]

Expression = Annotated[
    str,
    Field(
        description="A CEL expression over customer, event, facts, vars, promises and now.",
        examples=["facts.open_tickets == 0 && facts.last_satisfaction >= 9"],
    ),
]

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", description="lower_snake_case")]
EventName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", examples=["order.delivered"]),
]

FieldKind = Literal["string", "int", "number", "bool", "date", "timestamp", "duration", "list", "map"]


class Strict(BaseModel):
    """Every model rejects unknown fields so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FieldSpec(Strict):
    """A typed field of the customer profile, an event payload or a fact."""

    type: FieldKind = Field(description="The value's type.", examples=["date"])
    required: bool = Field(False, description="Whether the value must be present.")
    description: str = ""
    enum: list[str] | None = Field(None, description="Allowed values, for a string field.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `promised_delivery: date!` is shorthand for {type: date, required: true}.
        if isinstance(data, str):
            required = data.endswith("!")
            return {"type": data.rstrip("!"), "required": required}
        return data


class FactSpec(FieldSpec):
    """A fact kept per customer, updated by events and by `set` steps; rules read it."""

    initial: Any = Field(None, description="The value before any event sets it.")


class EventSpec(Strict):
    """An event other systems send, with its typed payload."""

    description: str = ""
    payload: dict[str, FieldSpec] = Field(default_factory=dict)
    starts_lifecycle: bool = Field(
        False, description="Whether this event creates the customer's lifecycle when none exists."
    )
    updates: dict[str, Expression] = Field(
        default_factory=dict,
        description="Facts to set when the event arrives, in any stage: fact name → expression.",
        examples=[{"open_tickets": "facts.open_tickets + 1"}],
    )


class ChannelSpec(Strict):
    """A message channel and the customer field that holds its address."""

    contact: str = Field(description="Customer field with the address.", examples=["email"])
    description: str = ""


class StageSpec(Strict):
    """A lifecycle stage: the playbook that runs while a customer is in it."""

    description: str = ""
    playbook: str | None = Field(
        None, description="Stage playbook file, relative to the lifecycle file."
    )
    terminal: bool = Field(False, description="Entering this stage ends the lifecycle.")


class Transition(Strict):
    """Which event moves a customer from which stage to which, with an optional guard."""

    from_: Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = Field(
        alias="from", description="Stage name(s) or '*' for any non-terminal stage."
    )
    on: EventName
    to: Name
    when: Expression | None = None


class Lifecycle(Strict):
    """The lifecycle file: profile, events, facts, stages and the transitions between them."""

    lifecycle: Name = Field(description="The lifecycle's name.")
    description: str = ""
    customer: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Business-defined customer fields, beyond the built-in ones.",
    )
    channels: dict[Name, ChannelSpec] = Field(
        description="Message channels, in fallback order for `channel: preferred`."
    )
    roles: dict[Name, str] = Field(description="Human roles that receive tasks: name → what they do.")
    events: dict[EventName, EventSpec]
    facts: dict[Name, FactSpec] = Field(default_factory=dict)
    initial_stage: Name
    stages: dict[Name, StageSpec]
    transitions: list[Transition] = Field(default_factory=list)
    templates: str = Field("templates", description="Template folder, relative to the lifecycle file.")


# ---------------------------------------------------------------- stage playbooks


class Step(Strict):
    """Fields every step has."""

    id: Name | None = Field(
        None, description="Stable step id, used in action ids, logs and tests. Defaults to its path."
    )
    note: str = Field("", description="A comment for humans; not executed.")


class TaskSpec(Strict):
    """Work for a human role, with the best-practice guideline for that step."""

    role: Name
    title: str
    guideline: str = Field(description="What good practice looks like for this task.")
    due: Duration | None = Field(None, description="How long the role has to do it.")


class Send(Step):
    """Send a message from a template on a channel, or on the customer's preferred one."""

    kind: Literal["send"] = "send"
    template: str = Field(description="Template name in the template folder.")
    channel: str = Field(
        "preferred",
        description="A declared channel, or 'preferred': the customer's preferred channel, "
        "then the others in the lifecycle's fallback order.",
    )
    category: Literal["transactional", "marketing"] = "transactional"
    otherwise: TaskSpec | None = Field(
        None, description="A task to create instead when no channel has the customer's consent."
    )


class Task(Step, TaskSpec):
    """Create a task; with `on_done` or `on_overdue` the stage waits for its outcome."""

    kind: Literal["task"] = "task"
    on_done: list[AnyStep] = Field(default_factory=list)
    on_overdue: list[AnyStep] = Field(
        default_factory=list, description="Escalation when the task is not done by `due`."
    )

    @model_validator(mode="after")
    def _due_for_overdue(self) -> Task:
        if self.on_overdue and self.due is None:
            raise ValueError("'on_overdue' needs 'due'")
        return self


class Wait(Step):
    """Pause the stage for a fixed time, or until a time computed from the context."""

    kind: Literal["wait"] = "wait"
    duration: Duration | None = None
    until: Expression | None = Field(
        None, examples=["timestamp(customer.warranty_ends) - duration('720h')"]
    )

    @model_validator(mode="after")
    def _one_of(self) -> Wait:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of 'duration' or 'until'")
        return self


class WaitFor(Step):
    """Wait for one of several events; after a timeout, run `on_timeout` instead."""

    kind: Literal["wait_for"] = "wait_for"
    events: list[EventName] = Field(min_length=1)
    timeout: Duration | None = None
    on_timeout: list[AnyStep] = Field(default_factory=list)
    on: dict[EventName, list[AnyStep]] = Field(
        default_factory=dict, description="Steps to run for a particular event that arrived."
    )

    @model_validator(mode="after")
    def _timeout_for_steps(self) -> WaitFor:
        if self.on_timeout and self.timeout is None:
            raise ValueError("'on_timeout' needs 'timeout'")
        return self


class Branch(Strict):
    when: Expression
    then: list[AnyStep]


class If(Step):
    """Run the first branch whose condition holds, else the `else` steps."""

    kind: Literal["if"] = "if"
    when: Expression
    then: list[AnyStep]
    elif_: list[Branch] = Field(default_factory=list, alias="elif")
    else_: list[AnyStep] = Field(default_factory=list, alias="else")


class Set(Step):
    """Set a stage variable or a customer fact from an expression."""

    kind: Literal["set"] = "set"
    var: Name | None = None
    fact: Name | None = None
    value: Expression

    @model_validator(mode="after")
    def _one_of(self) -> Set:
        if (self.var is None) == (self.fact is None):
            raise ValueError("give exactly one of 'var' or 'fact'")
        return self


class Promise(Step):
    """Record a promise made to the customer in the promise ledger."""

    kind: Literal["promise"] = "promise"
    promise: Name = Field(description="The promise's name in the ledger.", examples=["delivery_date"])
    about: Literal["delivery_date", "price", "scope", "response_time", "other"]
    expected: Expression = Field(description="What was promised.", examples=["event.data.promised_delivery"])
    made_by: Name = Field(description="The role that made the promise.")
    description: str = Field("", description="The promise in words, for the customer summary.")
    tolerance: Duration | float | None = Field(
        None, description="Slack allowed when checking: a duration for dates, an amount for prices."
    )


class CheckPromise(Step):
    """Compare a promise with what happened, mark it kept or broken, recover when broken."""

    kind: Literal["check_promise"] = "check_promise"
    promise: Name
    actual: Expression = Field(examples=["event.data.delivered_at"])
    on_kept: list[AnyStep] = Field(default_factory=list)
    on_broken: list[AnyStep] = Field(
        default_factory=list, description="Service recovery: acknowledge, apologise, fix, offer."
    )


class Goto(Step):
    """Move the customer to another stage now."""

    kind: Literal["goto"] = "goto"
    stage: Name


class End(Step):
    """End the lifecycle."""

    kind: Literal["end"] = "end"
    outcome: str = Field("closed", examples=["closed", "lost"])


AnyStep = Annotated[
    Union[Send, Task, Wait, WaitFor, If, Set, Promise, CheckPromise, Goto, End],
    Field(discriminator="kind"),
]

STEP_KINDS = (Send, Task, Wait, WaitFor, If, Set, Promise, CheckPromise, Goto, End)


class Playbook(Strict):
    """A stage playbook: the steps a stage runs, top to bottom."""

    playbook: Name = Field(description="The stage this playbook runs in.")
    description: str = ""
    vars: dict[Name, Any] = Field(
        default_factory=dict,
        description="The playbook's parameters, readable as vars.NAME; `set` may change them.",
    )
    steps: list[AnyStep] = Field(min_length=1)


for _model in (Task, WaitFor, Branch, If, CheckPromise, Playbook):
    _model.model_rebuild()

# Customer fields every lifecycle has; `customer:` in the lifecycle file adds business fields.
BUILTIN_CUSTOMER_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec(type="string", required=True, description="The customer id."),
    "name": FieldSpec(type="string", description="How to address the customer."),
    "email": FieldSpec(type="string"),
    "phone": FieldSpec(type="string"),
    "address": FieldSpec(type="string", description="Postal address, for letters."),
    "preferred_channel": FieldSpec(type="string", description="A channel name."),
    "timezone": FieldSpec(type="string", description="IANA time zone, e.g. Europe/Berlin."),
    "consent": FieldSpec(type="map", description="Channel name → true when the customer agreed."),
}

# Events every lifecycle accepts: a person reports a task done.
BUILTIN_EVENTS: dict[str, EventSpec] = {
    "task.completed": EventSpec(
        description="A person finished a task the engine created.",
        payload={
            "task": FieldSpec(type="string", required=True, description="The task step id."),
            "outcome": FieldSpec(type="string", description="What came of it, in a few words."),
        },
    ),
}
