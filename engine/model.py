"""The playbook language: a lifecycle file and its stage playbooks, as pydantic models.

The models *are* the schema: the loader validates YAML against them, `lifecycle schema`
exports them as JSON Schema, and the interpreter runs them. The step kinds of a stage
playbook are in engine.steps, one module each; the field types both use are in
engine.fields. Cross-references (stages, events, channels, roles, templates, names inside
expressions) are checked by `engine.lifecycle_checks` and `engine.checks` once the whole
lifecycle is loaded.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from engine.fields import Duration, EventName, Expression, FieldSpec, Name, Strict, TimeSpan  # noqa: F401  (re-exported)
from engine.policy_model import ContactPolicy
from engine.steps import AnyStep
from engine.types import KINDS, FieldKind, kind_of


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


# ---------------------------------------------------------------- schedules (engine.schedules)


def _period(value: Any) -> Any:
    # Checked here (a bad period is a load error at its line); kept as written, read by
    # engine.schedules.parse_period when the schedule runs.
    from engine.schedules import parse_period

    if isinstance(value, str):
        parse_period(value)
    return value


Period = Annotated[
    str,
    BeforeValidator(_period),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A period: calendar years or months (1y, 6mo, P1Y, P3M) or a duration "
            "of at least an hour (1w, 30d, 12h, P14D).",
            "examples": ["1y", "6mo", "1w"],
        }
    ),
]


class ScheduleSpec(Strict):
    """A lifecycle-level timer: at a moment computed from the profile or the facts, the engine
    sends the schedule's event to the lifecycle, whatever the stage (engine.schedules)."""

    description: str = Field("", description="What the moment means.",
                             examples=["Three months before the contract ends."])
    at: Expression | None = Field(
        None, description="The (first) moment, a timestamp expression over customer, facts and promises.",
        examples=["add_months(customer.contract_end, -3)"],
    )
    from_: Expression | None = Field(
        None, alias="from",
        description="With 'every': the moments are one period, two periods... after this timestamp.",
        examples=["facts.installed_at"],
    )
    every: Period | None = Field(None, description="Repeat: the period between moments.", examples=["1y"])

    @model_validator(mode="after")
    def _anchor(self) -> ScheduleSpec:
        if (self.at is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'at' (the first moment) or 'from' (with 'every')")
        if self.from_ is not None and self.every is None:
            raise ValueError("'from' needs 'every'")
        return self


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
    schedules: dict[EventName, ScheduleSpec] = Field(
        default_factory=dict,
        description="Timers that send a declared event at moments computed from the profile or facts, "
        "in any stage: event name → schedule.",
        examples=[{"renewal.window_opened": {"at": "add_months(customer.contract_end, -3)"},
                   "maintenance.due": {"every": "1y", "from": "facts.installed_at"}}],
    )
    contact: ContactPolicy | None = Field(
        None, description="Contact policy: time zone, holiday calendar, consent by category, quiet hours, "
        "frequency caps, do-not-contact list (docs/playbooks.md, Contact policy).",
        examples=[{"timezone": "America/New_York", "requires_consent": ["marketing"],
                   "quiet_hours": [{"channels": ["sms"], "allowed": "08:00-21:00"}]}],
    )


# ---------------------------------------------------------------- stage playbooks


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
            "task": FieldSpec(type="string", required=True,
                              description="The task id (GET /v1/tasks), or the step id of a task of the "
                                          "current stage entry."),
            "outcome": FieldSpec(type="string", description="What came of it: one of the task's `outcomes` "
                                 "when it declares them, else a few words."),
            "fields": FieldSpec(type="map", description="The task's declared fields, typed as it declares them."),
            "by": FieldSpec(type="string", description="Who did it."),
        },
    ),
}
