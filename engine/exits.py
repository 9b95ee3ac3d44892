"""How a stage run stops before its last step: the exceptions the interpreter and the step kinds raise.

A leaf module, so that the step kinds (engine.steps) can leave the stage or hold the customer
without importing the interpreter that runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.project import StageBundle


class StageExit(Exception):
    """Leaves the stage playbook early: a goto, an end, or a transition event."""


class GotoStage(StageExit):
    def __init__(self, stage: str) -> None:
        self.stage = stage


class EndLifecycle(StageExit):
    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


class Interrupted(StageExit):
    """A transition event arrived; the lifecycle moves on."""


class Suspended(StageExit):
    """The run stops here to continue in a new one; `state.resume` says where."""


class Released(StageExit):
    """An incident was released (retry or skip): the stage runs again from `state.resume`,
    with `bundle` when the release came from a fixed playbook."""

    def __init__(self, bundle: StageBundle | None = None) -> None:
        self.bundle = bundle


class StepFailed(Exception):
    """A step cannot go on; the customer is held on an incident of this kind."""

    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind = kind
        self.error = error
