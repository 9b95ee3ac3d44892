"""The field types of the playbook language, shared by the lifecycle file and the step kinds
(FieldSpec too: a task step declares the typed fields of its completion).

A leaf module: engine.model (the lifecycle file, a stage playbook) and engine.steps (one
module per step kind) both build on these, so neither has to import the other's models.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, Callable, Union

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationInfo, WithJsonSchema, field_validator,
    model_validator,
)

from engine.calendars import business_days, business_hours
from engine.durations import format_duration, parse_duration
from engine.types import FieldKind

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
    count = business_hours(value)  # `4 business hours`: counted in the task role's business hours
    if count is not None:
        return f"{count} business hour{'' if count == 1 else 's'}"
    return value if isinstance(value, timedelta) else parse_duration(value)


TimeSpan = Annotated[
    Union[timedelta, str],
    BeforeValidator(_duration_or_expression),
    PlainSerializer(lambda v: v if isinstance(v, str) else format_duration(v), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A duration (30m, 2d, 1w, P14D), a count of business days on the customer's "
            "holiday calendar (2 business days), a count of business hours of the task's role (4 business "
            "hours, only for a task's due), or a CEL expression of type duration such as days(vars.sla_days).",
            "examples": ["30m", "2d", "2 business days", "4 business hours", "days(vars.sla_days)"],
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


JSON_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "bool": lambda value: isinstance(value, bool),
    "list": lambda value: isinstance(value, list),
    "map": lambda value: isinstance(value, dict),
}
"""Whether a value (as JSON or YAML gives it) is of a field type that has a JSON form of its own;
dates, timestamps and durations are strings to parse, checked where they are parsed."""


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
