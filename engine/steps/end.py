"""`end`: end the lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from engine.exits import EndLifecycle
from engine.flow import Way
from engine.steps.base import Checks, Events, Step
from engine.walk import DataPath

if TYPE_CHECKING:
    from engine.interpreter import StageRun


class End(Step):
    """End the lifecycle."""

    kind: Literal["end"] = Field("end", description="End the lifecycle.", examples=["end"])
    outcome: str = Field("closed", description="How the lifecycle ended.", examples=["closed", "lost"])

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        """An `end` names nothing that could be unknown."""

    async def run(self, stage: StageRun, path: str) -> None:
        raise EndLifecycle(self.outcome)

    def ways(self) -> list[Way]:
        return []

    def describe(self) -> tuple[str, list[str]]:
        return "circle", [f"end: {self.outcome}"]

    def stage_edge(self) -> tuple[str | None, str] | None:
        return None, f"end: {self.outcome}"
