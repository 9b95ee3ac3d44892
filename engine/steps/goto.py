"""`goto`: move the customer to another stage now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from engine.errors import suggest
from engine.exits import GotoStage
from engine.fields import Name
from engine.flow import Way
from engine.steps.base import Checks, Events, Step
from engine.walk import DataPath

if TYPE_CHECKING:
    from engine.interpreter import StageRun


class Goto(Step):
    """Move the customer to another stage now."""

    kind: Literal["goto"] = Field("goto", description="Move to another stage.", examples=["goto"])
    stage: Name = Field(description="The stage to move to.", examples=["referral_request"])

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.gotos.append((self.stage, events))
        stages = playbook.lifecycle.stages
        if self.stage not in stages:
            playbook.error((*path, "stage"), f"unknown stage '{self.stage}'{suggest(self.stage, stages)}")

    async def run(self, stage: StageRun, path: str) -> None:
        raise GotoStage(self.stage)

    def ways(self) -> list[Way]:
        return []

    def describe(self) -> tuple[str, list[str]]:
        return "flag", [f"goto {self.stage}"]

    def stage_edge(self) -> tuple[str | None, str] | None:
        return self.stage, "goto"
