"""The step kinds of a stage playbook: one module each, registered here.

`STEP_KINDS` (kind name → model) is the registry; `AnyStep`, the discriminated union that
`Playbook.steps` and every nested step list hold, is built from it, so a kind that is
registered is a kind the loader, the schema and every analysis know. The order is the
order of the JSON Schema's `oneOf`. How to add a kind: README.md, "Adding a step kind".
"""

from __future__ import annotations

import sys
from typing import Annotated, Union

from pydantic import BaseModel, Field

from engine.steps.base import Step
from engine.steps.check_promise import CheckPromise
from engine.steps.end import End
from engine.steps.goto import Goto
from engine.steps.if_ import Branch, If
from engine.steps.promise import Promise
from engine.steps.send import Send
from engine.steps.set import Set
from engine.steps.split import Split, SplitVariant
from engine.steps.task import Task, TaskSpec
from engine.steps.wait import Wait
from engine.steps.wait_for import WaitFor

STEP_KINDS: dict[str, type[Step]] = {
    kind.model_fields["kind"].default: kind
    for kind in (Send, Task, Wait, WaitFor, If, Set, Promise, CheckPromise, Goto, End, Split)
}

AnyStep = Annotated[Union[tuple(STEP_KINDS.values())], Field(discriminator="kind")]  # noqa: UP007


def _resolve_nested_steps() -> None:
    """Complete the models that hold steps (`list[AnyStep]`, written before the union existed)."""
    for kind in STEP_KINDS.values():
        module = sys.modules[kind.__module__]
        for model in vars(module).values():
            if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == module.__name__:
                model.model_rebuild(_types_namespace={"AnyStep": AnyStep})


_resolve_nested_steps()

__all__ = ["STEP_KINDS", "AnyStep", "Branch", "CheckPromise", "End", "Goto", "If", "Promise", "Send", "Set",
           "Split", "SplitVariant", "Step", "Task", "TaskSpec", "Wait", "WaitFor"]
