"""`task`: work for a human role; with `on_done` or `on_overdue` the stage waits for its outcome."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from engine import reminders, tasks
from engine.calendars import business_days, business_hours
from engine.durations import format_duration
from engine.exits import Interrupted
from engine.fields import Duration, FieldSpec, Name, Strict, TimeSpan
from engine.flow import Way
from engine.state import Action, ActionResult, Event, Pending, TaskEntity, built
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
    # Structured outcomes: checked when the task is completed, typed in `on_done` (engine/tasks.py).
    outcomes: list[Name] = Field(
        default_factory=list, description="The outcomes a completion may report (event.data.outcome); "
        "empty: any text.", examples=[["reached", "no_answer", "wrong_number"]],
    )
    fields: dict[Name, FieldSpec] = Field(
        default_factory=dict, description="Typed fields a completion carries (event.data.fields.<name>).",
        examples=[{"battery_interest": "bool"}],
    )

    @field_validator("outcomes")
    @classmethod
    def _distinct_outcomes(cls, outcomes: list[str]) -> list[str]:
        repeated = sorted({name for name in outcomes if outcomes.count(name) > 1})
        if repeated:
            raise ValueError(f"outcome '{repeated[0]}' is listed twice")
        return outcomes


TASK_AT_HAND_OFF = "task-made-at-hand-off"
"""The change that makes a task's entity as its hand-off is sent, not when the delivery's result
comes back: a help desk that completes the task the moment the webhook (or outbox) has it was
refused `unknown_task` before. A history recorded before it makes the entity on the result."""


def task_effect(stage: StageRun, spec: TaskSpec, step: Any, path: str, reason: str = "") -> Effect:
    """The task action of `spec` for `step` (a task, or a send's `otherwise`), and its record.

    The task entity (engine/tasks.py) is made here, before the delivery activity runs: the help
    desk has the task id as soon as the webhook calls it, and may complete (reassign, snooze,
    cancel) it at once, before the delivery's result reaches the workflow. Making it first, not
    holding such a command until that result comes, keeps every command answered at once (a
    help desk that completes the task inside its webhook handler would otherwise wait on
    itself) and keeps what a command does the same whenever it comes. A hand-off that fails
    drops the task unless someone acted on it meanwhile (`tasks.hand_off_failed`)."""
    key = step_key(step, path)
    # The due time: `due` from now, or N business days on the role's calendar (engine.policy).
    due_at = stage.deadline(spec.due, spec.role) if spec.due else None
    now = stage.runtime.now()
    task_id = stage.action_id(step, path)
    action = built(
        Action, id=task_id, kind="task", customer_id=stage.state.customer["id"],
        stage=stage.state.stage, step=key, role=spec.role, title=spec.title,
        guideline=spec.guideline, due_at=due_at, task_id=task_id, outcomes=list(spec.outcomes),
        fields=tasks.schema_of(spec.fields) if spec.fields else {},
    )
    stage.checked_action(f"the task '{key}'", action)
    detail = {"role": spec.role, "title": spec.title, "action_id": action.id}
    if reason:
        detail["reason"] = reason
    if due_at:
        detail["due_at"] = due_at.isoformat()
    waited = isinstance(step, Task) and step.waits()
    at_hand_off = stage.runtime.patched(TASK_AT_HAND_OFF)
    if at_hand_off:
        tasks.create(stage.state, task_id, key, path, spec, now, due_at, waited)

    def on_result(result: ActionResult) -> None:
        if result.status == "done":
            stage.record("task", key, **detail)
            if not at_hand_off:  # a history from before TASK_AT_HAND_OFF: the entity is made now
                if key not in stage.state.open_tasks:
                    stage.state.open_tasks.append(key)
                tasks.create(stage.state, task_id, key, path, spec, now, due_at, waited)
                tasks.link_escalation(stage.state, path, task_id)
                return
            entity = tasks.handed_off(stage.state, task_id, path)
            # Not listed open when it was completed or cancelled while its delivery was in flight.
            if key not in stage.state.open_tasks and entity is not None and entity.is_open:
                stage.state.open_tasks.append(key)
        else:
            if at_hand_off:
                tasks.hand_off_failed(stage.state, task_id, path, due_at)
            stage.record("failed", key, error=result.detail, **detail)

    return action, on_result


def _one_or_more(value: Any) -> Any:
    spans = value if isinstance(value, list) else [value]
    for span in spans:  # reminders are clock time before due, whatever `due` counts
        if business_days(span) is not None or business_hours(span) is not None:
            raise ValueError(f"'{span}' is not a duration: a reminder is clock time before the due time "
                             f"(4h, 1d), also when 'due' counts business hours or days")
    return spans


Spans = Annotated[list[Duration], BeforeValidator(_one_or_more)]


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
    remind: Spans = Field(
        default_factory=list,
        description="Remind the role (and assignee) this long before `due`, once per span: a `reminder` "
        "hand-off and a `task_reminded` record. Needs `due` and `on_done` or `on_overdue`; a snooze moves it.",
        examples=[["4h"], ["1d", "2h"]],
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
        playbook.span((*path, "due"), self.due, events, self.role)
        if self.remind:
            self._check_remind(playbook, (*path, "remind"))

    def _check_remind(self, playbook: Checks, path: DataPath) -> None:
        """`remind` needs `due`, a wait to wake (a task nothing waits on has no timer to remind
        it by), and spans above 0 and shorter than `due` where `due` is a fixed duration."""
        if self.due is None:
            playbook.error(path, "'remind' needs 'due': a reminder is this long before the task is due", key=True)
        elif not self.waits():
            playbook.error(path, "'remind' needs 'on_done' or 'on_overdue': only a task the stage waits on "
                                 "is reminded", key=True)
        else:
            for index, span in enumerate(self.remind):
                if span <= timedelta(0):
                    playbook.error((*path, index), "a reminder must be some time before 'due', not 0")
                elif isinstance(self.due, timedelta) and span >= self.due:
                    playbook.error((*path, index), f"a reminder {format_duration(span)} before 'due' "
                                                   f"({format_duration(self.due)}) would come before the task")

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
        task_id = stage.action_id(self, path)
        entity = next((e for e in stage.state.tasks if e.id == task_id), None)  # None: state from before entities

        def done(event: Event) -> bool:  # the task id, or its step id as `task.completed` always took
            return event.name == "task.completed" and event.data.get("task") in (key, task_id)

        def cancelled() -> bool:
            return entity is not None and entity.status == "cancelled"

        while True:
            until = entity.due_at if entity is not None else due_at
            wake = await self._remind(stage, entity, until) if self.remind else None

            def moved() -> bool:  # snoozed or given a new due time: the overdue clock moves with it
                return entity is not None and entity.due_at != until

            pending = built(Pending, step=key, task=key, until=until)
            try:
                finished = await stage.pause(self, path, pending,
                                             lambda: stage.has(done) or cancelled() or moved(), wake or until)
            except Interrupted:  # the stage is left: nothing wakes for the reminder any more
                if entity is not None:
                    entity.reminder_at = None
                raise
            if finished and not stage.has(done) and not cancelled() and moved():
                continue
            if not finished and wake is not None and until is not None and stage.runtime.now() < until:
                continue  # woken for a reminder: act it (next turn), then sleep on
            break
        if entity is not None:
            entity.reminder_at = None
        if finished and stage.has(done):
            stage.event = stage.take(done)
            await stage.steps(self.on_done, f"{path}.on_done.")
        elif finished and cancelled():
            stage.record("task_changed", key, action="cancelled",
                         reason="the task was cancelled: neither on_done nor on_overdue runs")
        else:
            if entity is not None and entity.is_open:
                entity.status = "escalated" if self.on_overdue else "overdue"
            stage.record("timeout", key, reason="task overdue", role=self.role)
            await stage.steps(self.on_overdue, f"{path}.on_overdue.")

    async def _remind(self, stage: StageRun, entity: TaskEntity | None, until: datetime | None) -> datetime | None:
        """Act the reminder whose moment has come (if any), and the moment to wake for the next
        one (None: sleep until due). Only with a task entity: what reminders it had is kept there."""
        if entity is None or until is None:
            return None
        now = stage.runtime.now()
        moment = reminders.come(entity, self.remind, now)
        if moment is not None:
            action = reminders.reminder_action(entity, moment)
            detail = {"task": entity.id, "role": entity.role, "assignee": entity.assignee,
                      "due_at": until.isoformat(), "action_id": action.id}

            def on_result(result: ActionResult) -> None:
                if result.status == "done":
                    stage.record("task_reminded", entity.step, **detail)
                else:
                    stage.record("failed", entity.step, error=f"reminder: {result.detail}", **detail)

            await stage.act([(action, on_result)])
        return reminders.arm(entity, self.remind, now)

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
        remind = f", remind {', '.join(format_duration(span) for span in self.remind)}" if self.remind else ""
        due = f" (due {format_duration(self.due)}{remind})" if self.due else ""
        return "box", [f"task {self.role}{due}", short(self.title)]

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        if self.on_done and self.due is None:
            linter.warn(path, "wait-without-timeout",
                        "task with on_done has no due: if nobody reports it done, the stage "
                        "waits for good (add due and on_overdue)")

    def events_waited(self) -> list[str]:
        return ["task.completed"] if self.waits() else []
