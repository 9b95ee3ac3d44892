"""The field types of the playbook language, shared by the lifecycle file and the step kinds.

A leaf module: engine.model (the lifecycle file, a stage playbook) and engine.steps (one
module per step kind) both build on these, so neither has to import the other's models.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from engine.calendars import business_days
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
