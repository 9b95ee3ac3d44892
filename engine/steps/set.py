"""`set`: set a stage variable or a customer fact from an expression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from engine.errors import suggest
from engine.expressions import to_plain
from engine.fields import Expression, Name
from engine.limits import VALUE_BYTES
from engine.steps.base import Checks, Events, Step, short
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun


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

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        facts = playbook.lifecycle.facts
        if self.fact is not None and self.fact not in facts:
            playbook.error((*path, "fact"), f"unknown fact '{self.fact}'{suggest(self.fact, facts)}")
        playbook.expression((*path, "value"), self.value, events, self._type(playbook))

    def _type(self, playbook: Checks) -> tuple[str, str] | None:
        """The type the value must have: the fact's, or the var's (declared or first set)."""
        if self.fact is not None:
            spec = playbook.lifecycle.facts.get(self.fact)
            return (spec.type, f"fact '{self.fact}'") if spec else None
        assert self.var is not None
        return (playbook.var_kinds.get(self.var, "dyn"), f"var '{self.var}'")

    async def run(self, stage: StageRun, path: str) -> None:
        value = to_plain(stage.value(self.value, self, path))
        var = self.var
        name = var or self.fact
        stage.checked_size(f"the value for '{name}'", value, VALUE_BYTES)
        target = stage.state.vars if var else stage.state.facts
        target[name] = value
        stage.record("set", step_key(self, path), **{("var" if var else "fact"): name, "value": value})

    def vars_set(self) -> list[tuple[str, str]]:
        return [(self.var, self.value)] if self.var else []

    def describe(self) -> tuple[str, list[str]]:
        target = f"var {self.var}" if self.var else f"fact {self.fact}"
        return "box", [f"set {target}", f"= {short(self.value)}"]
