"""`task`: work for a human role; with `on_done` or `on_overdue` the stage waits for its outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from engine.durations import format_duration
from engine.fields import Name, Strict, TimeSpan
from engine.flow import Way
from engine.state import Action, ActionResult, Event, Pending
from engine.steps.base import BranchLabel, Checks, Events, Lint, Step, short
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import Effect, StageRun
    from engine.steps import AnyStep  # noqa: F401  (resolved when engine.steps rebuilds the models)


class TaskSpec(Strict):
    """Work for a human role, with the best-practice guideline for that step."""

    role: Name = Field(description="The role that does the task.", examples=["account_manager"])
    title: str = Field(description="The task in a few words.", examples=["Call the customer about the delivery"])
    guideline: str = Field(
        description="What good practice looks like for this task.",
        examples=["Ask how the installation went; listen before you suggest anything."],
    )
    due: TimeSpan | None = Field(None, description="How long the role has to do it.", examples=["2d"])


def task_effect(stage: StageRun, spec: TaskSpec, step: Any, path: str, reason: str = "") -> Effect:
    """The task action of `spec` for `step` (a task, or a send's `otherwise`), and its record."""
    key = step_key(step, path)
    due_at = stage.deadline(spec.due, spec.role) if spec.due else None
    action = Action(
        id=stage.action_id(step, path), kind="task", customer_id=stage.state.customer["id"],
        stage=stage.state.stage, step=key, role=spec.role, title=spec.title,
        guideline=spec.guideline, due_at=due_at,
    )
    stage.checked_action(f"the task '{key}'", action)
    detail = {"role": spec.role, "title": spec.title, "action_id": action.id}
    if reason:
        detail["reason"] = reason
    if due_at:
        detail["due_at"] = due_at.isoformat()

    def on_result(result: ActionResult) -> None:
        if result.status == "done":
            stage.record("task", key, **detail)
            if key not in stage.state.open_tasks:
                stage.state.open_tasks.append(key)
        else:
            stage.record("failed", key, error=result.detail, **detail)

    return action, on_result


class Task(Step, TaskSpec):
    """Create a task; with `on_done` or `on_overdue` the stage waits for its outcome."""

    kind: Literal["task"] = Field("task", description="Create a task for a role.", examples=["task"])
    on_done: list[AnyStep] = Field(
        default_factory=list,
        description="Steps to run when the task is reported done (event task.completed).",
        examples=[[{"kind": "set", "var": "called", "value": "true"}]],
    )
    on_overdue: list[AnyStep] = Field(
        default_factory=list, description="Escalation when the task is not done by `due`.",
        examples=[[{"kind": "task", "role": "project_manager", "title": "Escalated",
                    "guideline": "Call the customer today."}]],
    )

    @model_validator(mode="after")
    def _due_for_overdue(self) -> Task:
        if self.on_overdue and self.due is None:
            raise ValueError("'on_overdue' needs 'due'")
        return self

    def waits(self) -> bool:
        """Whether the stage waits for its outcome (otherwise it is created and the run goes on)."""
        return bool(self.on_done or self.on_overdue)

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.role((*path, "role"), self.role)
        playbook.span((*path, "due"), self.due, events)

    def prepare(self, stage: StageRun, path: str) -> list[Effect] | None:
        return None if self.waits() else [task_effect(stage, self, self, path)]

    async def run(self, stage: StageRun, path: str) -> None:
        key = step_key(self, path)
        if stage.paused_at(path):  # created before a new run: only its wait goes on
            due_at = stage.resumed_until(path, lambda: None)
        else:
            effect = task_effect(stage, self, self, path)
            await stage.act([effect])
            due_at = effect[0].due_at if effect[0] else None
        if not self.waits():
            return

        def done(event: Event) -> bool:
            return event.name == "task.completed" and event.data.get("task") == key

        if await stage.pause(self, path, Pending(step=key, task=key, until=due_at), lambda: stage.has(done), due_at):
            stage.event = stage.take(done)
            await stage.steps(self.on_done, f"{path}.on_done.")
        else:
            stage.record("timeout", key, reason="task overdue", role=self.role)
            await stage.steps(self.on_overdue, f"{path}.on_overdue.")

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_done",), self.on_done), (("on_overdue",), self.on_overdue)]

    def ways(self) -> list[Way]:
        if not self.waits():
            return [Way("")]
        taken = [Way("done", ("on_done",), self.on_done, frozenset({"task.completed"}))]
        if self.due is not None:
            taken.append(Way("overdue", ("on_overdue",), self.on_overdue))
        return taken

    def keeps_event(self) -> bool:
        return self.waits()  # the checks have always allowed it after a task that waits

    def way_text(self, way: Way) -> str:
        return f"overdue after {format_duration(self.due)}" if way.label == ("on_overdue",) else way.name

    def describe(self) -> tuple[str, list[str]]:
        due = f" (due {format_duration(self.due)})" if self.due else ""
        return "box", [f"task {self.role}{due}", short(self.title)]

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        if self.on_done and self.due is None:
            linter.warn(path, "wait-without-timeout",
                        "task with on_done has no due: if nobody reports it done, the stage "
                        "waits for good (add due and on_overdue)")

    def events_waited(self) -> list[str]:
        return ["task.completed"] if self.waits() else []
