"""`if`: run the first branch whose condition holds, else the `else` steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from engine.fields import Expression, Strict
from engine.flow import Way
from engine.steps.base import STEPS_EXAMPLE, BranchLabel, Checks, Events, Step, short
from engine.walk import DataPath

if TYPE_CHECKING:
    from engine.interpreter import StageRun
    from engine.steps import AnyStep  # noqa: F401  (resolved when engine.steps rebuilds the models)


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

    guards: ClassVar[bool] = True

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.expression((*path, "when"), self.when, events, ("bool", "a condition"))
        for index, branch in enumerate(self.elif_):
            playbook.expression((*path, "elif", index, "when"), branch.when, events, ("bool", "a condition"))

    async def run(self, stage: StageRun, path: str) -> None:
        if stage.condition(self.when, self, path):
            return await stage.steps(self.then, f"{path}.then.")
        for index, branch in enumerate(self.elif_):
            if stage.condition(branch.when, self, path):
                return await stage.steps(branch.then, f"{path}.elif.{index}.then.")
        if self.else_:  # most have none: nothing to run, nor to resume in
            await stage.steps(self.else_, f"{path}.else.")

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("then",), self.then),
                *((("elif", index, "then"), branch.then) for index, branch in enumerate(self.elif_)),
                (("else",), self.else_)]

    def ways(self) -> list[Way]:
        return [Way("then", ("then",), self.then),
                *(Way("elif", ("elif", index, "then"), branch.then) for index, branch in enumerate(self.elif_)),
                Way("else", ("else",), self.else_)]  # an empty `else` goes on

    def way_text(self, way: Way) -> str:
        if way.label[:1] == ("elif",):
            return f"elif {short(self.elif_[way.label[1]].when)}"
        return way.name

    def describe(self) -> tuple[str, list[str]]:
        return "diamond", [f"if {short(self.when)}"]
