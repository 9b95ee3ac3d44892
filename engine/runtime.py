"""The small interface between the interpreter and whatever runs it.

The Temporal workflow implements it with `workflow.now()`, `workflow.wait_condition` and
activities; the simulator with a virtual clock. Sleeping and waiting for an event are both
"wait until a condition holds or a deadline passes", because a transition event must be able
to interrupt either: that is exactly `workflow.wait_condition(fn, timeout=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from engine.project import StageBundle
from engine.state import Action, ActionResult


class Runtime(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""

    async def wait(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        """Wait until `ready()` holds (True) or `until` passes (False); None waits forever.

        `ready` must not change state: it is evaluated again after every event.
        """

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        """Perform effects that happen at the same instant, each once (keyed by its id),
        and return a result for each, in order."""

    async def stage_bundle(self, stage: str) -> StageBundle:
        """The current version of a stage's playbook and templates, to pin for this entry.

        Raises StageLoadError when it cannot be loaded (the customer is then held)."""

    async def hold(self, stage: str, version: str, released: Callable[[], bool]) -> StageBundle | None:
        """Wait while a customer is held on an incident, until `released()` holds (None) or the
        stage's playbook on disk differs from `version` and loads (the new bundle)."""

    def patched(self, change: str) -> bool:
        """False only when replaying a history recorded before `change` (Temporal's `patched`)."""


class StageLoadError(Exception):
    """A stage's playbook (or the lifecycle file) cannot be loaded; the message says why."""
