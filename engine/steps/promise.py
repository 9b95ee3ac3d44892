"""`promise`: record a promise made to the customer in the promise ledger."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from engine.expressions import to_plain
from engine.fields import Duration, Expression, Name
from engine.limits import VALUE_BYTES
from engine.promises import promise_type
from engine.state import PromiseEntry
from engine.steps.base import Checks, Events, Step, short
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun


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

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.role((*path, "made_by"), self.made_by)
        kind = promise_type(self.about)
        playbook.expression((*path, "expected"), self.expected, events,
                            (kind, f"what a {self.about} promise expects") if kind else None)
        if self.tolerance is None:
            return
        if kind in ("timestamp", "duration") and not isinstance(self.tolerance, timedelta):
            playbook.error((*path, "tolerance"), f"a {self.about} promise needs a duration as tolerance, e.g. 2d")
        elif kind == "number" and isinstance(self.tolerance, timedelta):
            playbook.error((*path, "tolerance"), f"a {self.about} promise needs an amount as tolerance, e.g. 10")

    async def run(self, stage: StageRun, path: str) -> None:
        expected = to_plain(stage.value(self.expected, self, path))
        stage.checked_size(f"the promise '{self.promise}'", expected, VALUE_BYTES)
        entry = PromiseEntry(
            name=self.promise, about=self.about, description=self.description,
            expected=expected, made_by=self.made_by, made_at=stage.runtime.now(),
            stage=stage.state.stage, tolerance=to_plain(self.tolerance),
        )
        stage.state.promises[self.promise] = entry
        stage.record("promise", step_key(self, path), promise=self.promise, about=self.about,
                     expected=entry.expected, made_by=self.made_by)

    def promise_made(self) -> tuple[str, str] | None:
        return self.promise, self.about

    def describe(self) -> tuple[str, list[str]]:
        return "subroutine", [f"promise {self.promise}", f"= {short(self.expected)}"]
