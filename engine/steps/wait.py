"""`wait`: pause the stage for a fixed time, or until a time computed from the context."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from engine.durations import format_duration
from engine.exits import StepFailed
from engine.expressions import parse_time
from engine.fields import Expression, TimeSpan
from engine.state import Pending, built
from engine.steps.base import Checks, Events, Step, short
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun


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

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.span((*path, "duration"), self.duration, events)
        if self.until is not None:
            playbook.expression((*path, "until"), self.until, events, ("timestamp", "'until'"))

    async def run(self, stage: StageRun, path: str) -> None:
        until = stage.resumed_until(path, lambda: self._until(stage, path))
        if until is None or until <= stage.runtime.now():
            return
        await stage.pause(self, path, built(Pending, step=step_key(self, path), until=until), lambda: False, until)

    def _until(self, stage: StageRun, path: str) -> datetime:
        if self.duration is not None:
            return stage.deadline(self.duration)
        assert self.until is not None
        value = stage.value(self.until, self, path)
        until = parse_time(value)
        if until is None:
            stage.legacy_failure(self, path, f"'until' gave {value!r}, not a time")
            raise StepFailed("expression", f"'until' gave {value!r}, not a time")
        return until

    def describe(self) -> tuple[str, list[str]]:
        if self.duration is not None:
            return "round", [f"wait {format_duration(self.duration)}"]
        return "round", ["wait until", short(str(self.until))]
