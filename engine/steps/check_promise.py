"""`check_promise`: compare a promise with what happened, mark it kept or broken, recover when broken."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from engine.errors import suggest
from engine.expressions import to_plain
from engine.fields import Expression, Name
from engine.flow import Way
from engine.promises import promise_kept, promise_type
from engine.steps.base import STEPS_EXAMPLE, BranchLabel, Checks, Events, Step
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun
    from engine.steps import AnyStep  # noqa: F401  (resolved when engine.steps rebuilds the models)


class CheckPromise(Step):
    """Compare a promise with what happened, mark it kept or broken, recover when broken."""

    kind: Literal["check_promise"] = Field(
        "check_promise", description="Check a promise.", examples=["check_promise"]
    )
    promise: Name = Field(description="The promise to check.", examples=["delivery_date"])
    actual: Expression = Field(description="What actually happened.", examples=["event.data.delivered_at"])
    on_kept: list[AnyStep] = Field(
        default_factory=list, description="Steps to run when the promise was kept.",
        examples=[[{"kind": "send", "template": "thank_you"}]],
    )
    on_broken: list[AnyStep] = Field(
        default_factory=list, description="Service recovery: acknowledge, apologise, fix, offer.",
        examples=[STEPS_EXAMPLE],
    )

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        promises = playbook.promises
        if promises is not None and self.promise not in promises:
            playbook.error((*path, "promise"), f"no 'promise' step records a promise named '{self.promise}'"
                                               f"{suggest(self.promise, promises)}")
        about = promises.get(self.promise) if isinstance(promises, dict) else None
        kind = promise_type(about) if about else None
        playbook.expression((*path, "actual"), self.actual, events,
                            (kind, f"what happened to a {about} promise") if kind else None)

    async def run(self, stage: StageRun, path: str) -> None:
        key = step_key(self, path)
        entry = stage.state.promises.get(self.promise)
        if entry is None:
            stage.record("failed", key, error=f"no promise '{self.promise}' was recorded")
            return
        actual = stage.value(self.actual, self, path)
        kept = promise_kept(entry.about, entry.expected, actual, entry.tolerance)
        entry.state = "kept" if kept else "broken"
        entry.actual = to_plain(actual)
        entry.checked_at = stage.runtime.now()
        stage.record("promise_kept" if kept else "promise_broken", key, promise=self.promise,
                     expected=entry.expected, actual=entry.actual)
        if kept:
            await stage.steps(self.on_kept, f"{path}.on_kept.")
        else:
            await stage.steps(self.on_broken, f"{path}.on_broken.")

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_kept",), self.on_kept), (("on_broken",), self.on_broken)]

    def ways(self) -> list[Way]:
        # A promise never recorded also goes on past it, as a failure in the timeline: only the
        # event flow counts that way (`keeps_event`).
        return [Way("kept", ("on_kept",), self.on_kept), Way("broken", ("on_broken",), self.on_broken)]

    def keeps_event(self) -> bool:
        return True  # a promise never recorded for this customer runs neither branch

    def describe(self) -> tuple[str, list[str]]:
        return "diamond", [f"check {self.promise}"]
