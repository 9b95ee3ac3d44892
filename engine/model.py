"""The playbook language: a lifecycle file and its stage playbooks, as pydantic models.

The models *are* the schema: the loader validates YAML against them, `lifecycle schema`
exports them as JSON Schema, and the interpreter runs them. Cross-references (stages,
events, channels, roles, templates, names inside expressions) are checked by
`engine.lifecycle_checks` and `engine.checks` once the whole lifecycle is loaded.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.calendars import business_days
from engine.durations import format_duration, parse_duration
from engine.policy_model import Category, ContactPolicy
from engine.types import KINDS, FieldKind, kind_of

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

def _duration_or_expression(value: Any) -> Any:
    # `2d` is a duration; `days(vars.sla_days)` (a call or a dotted name) is an expression of
    # type duration, checked at load and evaluated when the step runs.
    if isinstance(value, str) and any(char in value for char in "(."):
        return value.strip()
    count = business_days(value)  # `2 business days`: counted on the customer's calendar when it runs
    if count is not None:
        return f"{count} business day{'' if count == 1 else 's'}"
    return value if isinstance(value, timedelta) else parse_duration(value)


TimeSpan = Annotated[
    Union[timedelta, str],
    BeforeValidator(_duration_or_expression),
    PlainSerializer(lambda v: v if isinstance(v, str) else format_duration(v), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A duration (30m, 2d, 1w, P14D), a count of business days on the customer's "
            "holiday calendar (2 business days), or a CEL expression of type duration such as "
            "days(vars.sla_days).",
            "examples": ["30m", "2d", "2 business days", "days(vars.sla_days)"],
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



class Strict(BaseModel):
    """Every model rejects unknown fields so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FieldSpec(Strict):
    """A typed field of the customer profile, an event payload or a fact."""

    type: FieldKind = Field(description="The value's type.", examples=["date"])
    required: bool = Field(False, description="Whether the value must be present.", examples=[True])
    description: str = Field(
        "", description="What the field means, for authors and other systems.",
        examples=["Delivery date the customer was promised."],
    )
    enum: list[str] | None = Field(
        None, description="Allowed values, for a string field.", examples=[["consumer", "enterprise"]]
    )
    min: int | float | None = Field(
        None, description="The smallest value allowed, for an int or number field (inclusive).", examples=[0]
    )
    max: int | float | None = Field(
        None, description="The largest value allowed, for an int or number field (inclusive).", examples=[10]
    )
    max_length: int | None = Field(
        None, ge=0, description="The most characters allowed, for a string field.", examples=[200]
    )

    @field_validator("min", "max")
    @classmethod
    def _number_bound(cls, value: int | float | None, info: ValidationInfo) -> int | float | None:
        if value is None:
            return None
        kind = info.data.get("type")
        if kind is not None and kind not in ("int", "number"):
            raise ValueError(f"'{info.field_name}' applies to int and number fields, not to a {kind} field")
        if not math.isfinite(value):
            raise ValueError(f"'{info.field_name}' must be a finite number")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and low > value:
            raise ValueError(f"'min' ({low}) is greater than 'max' ({value})")
        return value

    @field_validator("max_length")
    @classmethod
    def _string_bound(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("type")
        if value is not None and kind is not None and kind != "string":
            raise ValueError(f"'max_length' applies to string fields, not to a {kind} field")
        return value

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

    initial: Any = Field(None, description="The value before any event sets it.", examples=[0])

    @model_validator(mode="after")
    def _no_limits(self) -> FactSpec:
        # Limits are checked where values come in from outside (payloads, the profile); a fact
        # is computed by expressions, where a limit would fail a customer at run time instead.
        for key in ("min", "max", "max_length"):
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' (for event payloads and customer fields) cannot be used")
        return self


class EventSpec(Strict):
    """An event other systems send, with its typed payload."""

    description: str = Field(
        "", description="When other systems send this event.",
        examples=["The order was delivered (and installed, when installation was sold)."],
    )
    payload: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Payload fields: name → type, or `type!` for a required one.",
        examples=[{"delivered_at": "date!", "price_charged": "number"}],
    )
    starts_lifecycle: bool = Field(
        False, description="Whether this event creates the customer's lifecycle when none exists.",
        examples=[True],
    )
    updates: dict[str, Expression] = Field(
        default_factory=dict,
        description="Facts to set when the event arrives, in any stage: fact name → expression.",
        examples=[{"open_tickets": "facts.open_tickets + 1"}],
    )


class ChannelSpec(Strict):
    """A message channel and the customer field that holds its address."""

    contact: str = Field(description="Customer field with the address.", examples=["email"])
    description: str = Field("", description="What the channel is for.", examples=["Text message; keep it short."])


class StageSpec(Strict):
    """A lifecycle stage: the playbook that runs while a customer is in it."""

    description: str = Field(
        "", description="What happens to a customer in this stage.",
        examples=["Delivery: check every promise, repair broken ones."],
    )
    playbook: str | None = Field(
        None, description="Stage playbook file, relative to the lifecycle file.",
        examples=["delivery-check-in.yaml"],
    )
    terminal: bool = Field(False, description="Entering this stage ends the lifecycle.", examples=[True])


# A single stage name where a list of them is expected: `from: sale` means `from: [sale]`.
StageList = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class Transition(Strict):
    """Which event moves a customer from which stage to which, with an optional guard."""

    from_: StageList = Field(
        alias="from", description="Stage name(s) or '*' for any non-terminal stage.",
        examples=["set_expectations", ["warranty_follow_up", "referral_request"], "*"],
    )
    except_: StageList = Field(
        default_factory=list, alias="except",
        description="With from '*': stages the transition does not leave (e.g. its own target, "
        "so that a second event does not restart that stage).",
        examples=[["at_risk"], "lost_customer_review"],
    )
    on: EventName = Field(description="The event that moves the customer.", examples=["order.delivered"])
    to: Name = Field(description="The stage the customer moves to.", examples=["delivery_check_in"])
    when: Expression | None = Field(
        None, description="A guard: the transition happens only when this CEL expression holds.",
        examples=["event.data.installed == true"],
    )

    @model_validator(mode="after")
    def _except_needs_wildcard(self) -> Transition:
        if self.except_ and "*" not in self.from_:
            raise ValueError("'except' needs from: '*' (otherwise list only the stages you mean)")
        return self

    def applies_in(self, stage: str) -> bool:
        """Whether this transition can move a customer who is in `stage` (guard aside).

        `*` is every stage but those in `except`, the target included: a customer already in
        the target enters it again. Terminal stages never move; the caller knows which they are.
        """
        if "*" in self.from_:
            return stage not in self.except_
        return stage in self.from_


class Lifecycle(Strict):
    """The lifecycle file: profile, events, facts, stages and the transitions between them."""

    lifecycle: Name = Field(description="The lifecycle's name.", examples=["customer_relationship"])
    description: str = Field(
        "", description="What the lifecycle is for, in a sentence or two.",
        examples=["Sale, delivery, service and referral for one customer."],
    )
    customer: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Business-defined customer fields, beyond the built-in ones.",
        examples=[{"segment": {"type": "string", "enum": ["consumer", "enterprise"]}}],
    )
    channels: dict[Name, ChannelSpec] = Field(
        description="Message channels, in fallback order for `channel: preferred`.",
        examples=[{"email": {"contact": "email"}, "sms": {"contact": "phone"}}],
    )
    roles: dict[Name, str] = Field(
        description="Human roles that receive tasks: name → what they do.",
        examples=[{"account_manager": "Owns the relationship after the sale."}],
    )
    events: dict[EventName, EventSpec] = Field(
        description="Events other systems send: name → payload and fact updates.",
        examples=[{"order.delivered": {"payload": {"delivered_at": "date!"}}}],
    )
    facts: dict[Name, FactSpec] = Field(
        default_factory=dict,
        description="Facts kept per customer, which events update and rules read.",
        examples=[{"open_tickets": {"type": "int", "initial": 0}}],
    )
    initial_stage: Name = Field(
        description="The stage a new lifecycle starts in.", examples=["set_expectations"]
    )
    stages: dict[Name, StageSpec] = Field(
        description="The stages: name → playbook file, or `terminal: true`.",
        examples=[{"delivery_check_in": {"playbook": "delivery-check-in.yaml"}, "closed": {"terminal": True}}],
    )
    transitions: list[Transition] = Field(
        default_factory=list,
        description="Which event moves a customer from which stage to which; the first match wins.",
        examples=[[{"from": "set_expectations", "on": "order.delivered", "to": "delivery_check_in"}]],
    )
    templates: str = Field(
        "templates", description="Template folder, relative to the lifecycle file.", examples=["templates"]
    )
    contact: ContactPolicy | None = Field(
        None, description="Contact policy: time zone, holiday calendar, consent by category, quiet hours, "
        "frequency caps, do-not-contact list (docs/playbooks.md, Contact policy).",
        examples=[{"timezone": "America/New_York", "requires_consent": ["marketing"],
                   "quiet_hours": [{"channels": ["sms"], "allowed": "08:00-21:00"}]}],
    )


# ---------------------------------------------------------------- stage playbooks

# An example list of steps, shown in the JSON Schema next to fields that hold steps.
STEPS_EXAMPLE = [{"kind": "send", "template": "apology", "channel": "preferred"}]


# Where a nested step list sits under its step, as written in YAML: ("then",),
# ("elif", 0, "then"), ("on", "survey.answered").
BranchLabel = tuple[str | int, ...]


class Step(Strict):
    """Fields every step has.

    A kind with nested steps overrides `branches`: that is the one place the step tree's
    shape is declared (engine.walk walks it for every analysis and for the interpreter).
    """

    id: Name | None = Field(
        None, description="Stable step id, used in action ids, logs and tests. Defaults to its path.",
        examples=["check_delivery_date"],
    )
    note: str = Field(
        "", description="A comment for humans; not executed.",
        examples=["Best practice: check in within two days of delivery."],
    )

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        """Every nested step list with its label, empty ones included, in the order shown."""
        return []


class TaskSpec(Strict):
    """Work for a human role, with the best-practice guideline for that step."""

    role: Name = Field(description="The role that does the task.", examples=["account_manager"])
    title: str = Field(description="The task in a few words.", examples=["Call the customer about the delivery"])
    guideline: str = Field(
        description="What good practice looks like for this task.",
        examples=["Ask how the installation went; listen before you suggest anything."],
    )
    due: TimeSpan | None = Field(None, description="How long the role has to do it.", examples=["2d"])


class Send(Step):
    """Send a message from a template on a channel, or on the customer's preferred one."""

    kind: Literal["send"] = Field("send", description="Send a message.", examples=["send"])
    template: str = Field(description="Template name in the template folder.", examples=["check_in"])
    channel: str = Field(
        "preferred",
        description="A declared channel, or 'preferred': the customer's preferred channel, "
        "then the others in the lifecycle's fallback order.",
        examples=["preferred", "email"],
    )
    category: Category = Field(
        "transactional",
        description="What the message is for: transactional (about a purchase), service (support, "
        "reminders), survey (asks for feedback), marketing (sells or asks a favour: offers, referral "
        "requests). The contact policy's consent, quiet hours and caps go by it.",
        examples=["marketing"],
    )
    otherwise: TaskSpec | None = Field(
        None, description="A task to create instead when no channel has the customer's consent.",
        examples=[{"role": "account_manager", "title": "Call instead", "guideline": "Ask how it went."}],
    )


class Task(Step, TaskSpec):
    """Create a task; with `on_done` or `on_overdue` the stage waits for its outcome."""

    kind: Literal["task"] = Field("task", description="Create a task for a role.", examples=["task"])
    on_done: list[AnyStep] = Field(
        default_factory=list,
        description="Steps to run when the task is reported done (event task.completed).",
        examples=[[{"kind": "set", "var": "called", "value": "true"}]],
    )
    on_overdue: list[AnyStep] = Field(
        default_factory=list, description="Escalation when the task is not done by `due`.",
        examples=[[{"kind": "task", "role": "project_manager", "title": "Escalated",
                    "guideline": "Call the customer today."}]],
    )

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_done",), self.on_done), (("on_overdue",), self.on_overdue)]

    @model_validator(mode="after")
    def _due_for_overdue(self) -> Task:
        if self.on_overdue and self.due is None:
            raise ValueError("'on_overdue' needs 'due'")
        return self


class Wait(Step):
    """Pause the stage for a fixed time, or until a time computed from the context."""

    kind: Literal["wait"] = Field("wait", description="Pause the stage.", examples=["wait"])
    duration: TimeSpan | None = Field(None, description="How long to wait.", examples=["2d"])
    until: Expression | None = Field(
        None, description="A CEL expression giving the time to wait until.",
        examples=["timestamp(customer.warranty_ends) - duration('720h')"],
    )

    @model_validator(mode="after")
    def _one_of(self) -> Wait:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of 'duration' or 'until'")
        return self


class WaitFor(Step):
    """Wait for one of several events; after a timeout, run `on_timeout` instead."""

    kind: Literal["wait_for"] = Field("wait_for", description="Wait for an event.", examples=["wait_for"])
    events: list[EventName] = Field(
        min_length=1, description="The events that end the wait.", examples=[["survey.answered"]]
    )
    timeout: TimeSpan | None = Field(None, description="How long to wait at most.", examples=["7d"])
    take: Literal["oldest", "latest"] = Field(
        "oldest",
        description="Which matching event in the stage's inbox ends the wait: the oldest (the others "
        "stay for later waits), or the latest (the older matching ones are dropped as outdated).",
        examples=["latest"],
    )
    on_timeout: list[AnyStep] = Field(
        default_factory=list, description="Steps to run when no event came before the timeout.",
        examples=[[{"kind": "task", "role": "account_manager", "title": "Call the customer",
                    "guideline": "Ask how it went."}]],
    )
    on: dict[EventName, list[AnyStep]] = Field(
        default_factory=dict, description="Steps to run for a particular event that arrived.",
        examples=[{"survey.answered": [{"kind": "set", "var": "answered", "value": "true"}]}],
    )

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_timeout",), self.on_timeout), *((("on", event), steps) for event, steps in self.on.items())]

    @model_validator(mode="after")
    def _timeout_for_steps(self) -> WaitFor:
        if self.on_timeout and self.timeout is None:
            raise ValueError("'on_timeout' needs 'timeout'")
        return self


class Branch(Strict):
    """An `elif` branch of an `if` step: a condition and the steps it guards."""

    when: Expression
    then: list[AnyStep] = Field(
        description="Steps to run when the condition holds.", examples=[STEPS_EXAMPLE]
    )


class If(Step):
    """Run the first branch whose condition holds, else the `else` steps."""

    kind: Literal["if"] = Field("if", description="Branch on a condition.", examples=["if"])
    when: Expression
    then: list[AnyStep] = Field(
        description="Steps to run when the condition holds.", examples=[STEPS_EXAMPLE]
    )
    elif_: list[Branch] = Field(
        default_factory=list, alias="elif", description="Further conditions, tried in order.",
        examples=[[{"when": "facts.last_satisfaction <= 6", "then": STEPS_EXAMPLE}]],
    )
    else_: list[AnyStep] = Field(
        default_factory=list, alias="else", description="Steps to run when no condition holds.",
        examples=[STEPS_EXAMPLE],
    )

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("then",), self.then),
                *((("elif", index, "then"), branch.then) for index, branch in enumerate(self.elif_)),
                (("else",), self.else_)]


class Set(Step):
    """Set a stage variable or a customer fact from an expression."""

    kind: Literal["set"] = Field("set", description="Set a variable or a fact.", examples=["set"])
    var: Name | None = Field(None, description="The stage variable to set.", examples=["called"])
    fact: Name | None = Field(None, description="The customer fact to set.", examples=["referral_requested_at"])
    value: Expression

    @model_validator(mode="after")
    def _one_of(self) -> Set:
        if (self.var is None) == (self.fact is None):
            raise ValueError("give exactly one of 'var' or 'fact'")
        return self


class Promise(Step):
    """Record a promise made to the customer in the promise ledger."""

    kind: Literal["promise"] = Field("promise", description="Record a promise.", examples=["promise"])
    promise: Name = Field(description="The promise's name in the ledger.", examples=["delivery_date"])
    about: Literal["delivery_date", "price", "quantity", "scope", "response_time", "other"] = Field(
        description="What the promise is about; decides its type and how it is checked: delivery_date "
        "(a timestamp; kept on or before), response_time (a duration; at most), price (a number; at "
        "most), quantity (a number; at least: amounts, energy, uptime), scope (text; equal), other "
        "(equal).",
        examples=["delivery_date"],
    )
    expected: Expression = Field(description="What was promised.", examples=["event.data.promised_delivery"])
    made_by: Name = Field(description="The role that made the promise.", examples=["sales_rep"])
    description: str = Field(
        "", description="The promise in words, for the customer summary.",
        examples=["Delivered and installed by the date in your order."],
    )
    tolerance: Duration | float | None = Field(
        None, description="Slack allowed when checking: a duration for dates, an amount for prices.",
        examples=["1d", 0.5],
    )


class CheckPromise(Step):
    """Compare a promise with what happened, mark it kept or broken, recover when broken."""

    kind: Literal["check_promise"] = Field(
        "check_promise", description="Check a promise.", examples=["check_promise"]
    )
    promise: Name = Field(description="The promise to check.", examples=["delivery_date"])
    actual: Expression = Field(description="What actually happened.", examples=["event.data.delivered_at"])
    on_kept: list[AnyStep] = Field(
        default_factory=list, description="Steps to run when the promise was kept.",
        examples=[[{"kind": "send", "template": "thank_you"}]],
    )
    on_broken: list[AnyStep] = Field(
        default_factory=list, description="Service recovery: acknowledge, apologise, fix, offer.",
        examples=[STEPS_EXAMPLE],
    )

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_kept",), self.on_kept), (("on_broken",), self.on_broken)]


class Goto(Step):
    """Move the customer to another stage now."""

    kind: Literal["goto"] = Field("goto", description="Move to another stage.", examples=["goto"])
    stage: Name = Field(description="The stage to move to.", examples=["referral_request"])


class End(Step):
    """End the lifecycle."""

    kind: Literal["end"] = Field("end", description="End the lifecycle.", examples=["end"])
    outcome: str = Field("closed", description="How the lifecycle ended.", examples=["closed", "lost"])


AnyStep = Annotated[
    Union[Send, Task, Wait, WaitFor, If, Set, Promise, CheckPromise, Goto, End],
    Field(discriminator="kind"),
]

STEP_KINDS = (Send, Task, Wait, WaitFor, If, Set, Promise, CheckPromise, Goto, End)


class Playbook(Strict):
    """A stage playbook: the steps a stage runs, top to bottom."""

    playbook: Name = Field(description="The stage this playbook runs in.", examples=["delivery_check_in"])
    description: str = Field(
        "", description="What the stage does and why, for the people who run it.",
        examples=["Check every promise against what happened; recover when one was broken."],
    )
    vars: dict[Name, Any] = Field(
        default_factory=dict,
        description="The playbook's parameters, readable as vars.NAME; `set` may change them. "
        "A var's type is that of its value; declare it as {type: timestamp} (optionally with "
        "initial and description) to hold a timestamp, a date or a duration, or to start as null.",
        examples=[{"promoter_score": 9, "called_at": {"type": "timestamp"}}],
    )
    var_types: dict[Name, FieldKind] = Field(
        default_factory=dict,
        description="Declared var types; filled from the {type: ...} declarations in `vars`.",
        examples=[{"called_at": "timestamp"}],
    )
    steps: list[AnyStep] = Field(
        min_length=1, description="The steps, run top to bottom.",
        examples=[[{"kind": "wait", "duration": "2d"}, {"kind": "send", "template": "check_in"}]],
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_vars(cls, data: Any) -> Any:
        # `due: {type: timestamp, initial: ...}` declares a type: split it into the initial
        # value (vars) and the type (var_types), so the state keeps plain values.
        if not isinstance(data, dict) or not isinstance(data.get("vars"), dict):
            return data
        values, types = {}, dict(data.get("var_types") or {})
        for name, value in data["vars"].items():
            if name in types:  # already split (a playbook read back from JSON): keep its value
                values[name] = value
            elif isinstance(value, dict) and "type" in value and set(value) <= {"type", "initial", "description"}:
                if value["type"] not in KINDS:
                    raise ValueError(f"var '{name}': unknown type '{value['type']}' (one of {', '.join(KINDS)})")
                types[name] = value["type"]
                values[name] = value.get("initial")
            else:
                values[name] = value
        return {**data, "vars": values, "var_types": types}

    def var_kinds(self) -> dict[str, str]:
        """The type of every var: as declared, that of its initial value, or (a var only a `set`
        step gives) the type the loader found for its first value."""
        kinds = {name: self.var_types.get(name) or kind_of(value) for name, value in self.vars.items()}
        return {**self.var_types, **kinds}


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
    "calendar": FieldSpec(type="string", description="Holiday calendar: country code, optionally with a "
                                                     "subdivision, e.g. US-NY, DE-BY."),
    "consent": FieldSpec(type="map", description="Channel name → true when the customer agreed; a category "
                                                 "(transactional, service, survey, marketing) → true or false, "
                                                 "or a map channel → true or false."),
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
