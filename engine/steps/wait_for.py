"""`wait_for`: wait for one of several events; after a timeout, run `on_timeout` instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from engine.durations import format_duration
from engine.errors import suggest
from engine.fields import EventName, TimeSpan
from engine.flow import Way
from engine.state import Event, Pending, built
from engine.steps.base import BranchLabel, Checks, Events, Lint, Step
from engine.walk import DataPath, step_key

if TYPE_CHECKING:
    from engine.interpreter import StageRun
    from engine.steps import AnyStep  # noqa: F401  (resolved when engine.steps rebuilds the models)


class WaitFor(Step):
    """Wait for one of several events; after a timeout, run `on_timeout` instead."""

    kind: Literal["wait_for"] = Field("wait_for", description="Wait for an event.", examples=["wait_for"])
    events: list[EventName] = Field(
        min_length=1, description="The events that end the wait.", examples=[["survey.answered"]]
    )
    timeout: TimeSpan | None = Field(None, description="How long to wait at most.", examples=["7d"])
    take: Literal["oldest", "latest"] = Field(
        "oldest",
        description="Which matching event in the stage's inbox ends the wait: the oldest (the others "
        "stay for later waits), or the latest (the older matching ones are dropped as outdated).",
        examples=["latest"],
    )
    on_timeout: list[AnyStep] = Field(
        default_factory=list, description="Steps to run when no event came before the timeout.",
        examples=[[{"kind": "task", "role": "account_manager", "title": "Call the customer",
                    "guideline": "Ask how it went."}]],
    )
    on: dict[EventName, list[AnyStep]] = Field(
        default_factory=dict, description="Steps to run for a particular event that arrived.",
        examples=[{"survey.answered": [{"kind": "set", "var": "answered", "value": "true"}]}],
    )

    @model_validator(mode="after")
    def _timeout_for_steps(self) -> WaitFor:
        if self.on_timeout and self.timeout is None:
            raise ValueError("'on_timeout' needs 'timeout'")
        return self

    def check(self, playbook: Checks, path: DataPath, events: Events) -> None:
        playbook.span((*path, "timeout"), self.timeout, events)
        seen: set[str] = set()
        for index, name in enumerate(self.events):
            if name in seen:
                playbook.error((*path, "events", index), f"event '{name}' is listed twice")
            seen.add(name)
            if name not in playbook.events:
                playbook.error((*path, "events", index), f"unknown event '{name}'{suggest(name, playbook.events)}")
        for name in self.on:
            if name not in self.events:
                playbook.error((*path, "on", name), f"'on' names event '{name}' that this wait_for does not "
                                                    f"wait for{suggest(name, self.events)}", key=True)

    async def run(self, stage: StageRun, path: str) -> None:
        key = step_key(self, path)
        names = set(self.events)
        until = stage.resumed_until(path, lambda: stage.deadline(self.timeout) if self.timeout else None)

        def wanted(event: Event) -> bool:
            return event.name in names

        pending = built(Pending, step=key, events=sorted(names), until=until)
        if await stage.pause(self, path, pending, lambda: stage.has(wanted), until):
            stage.event = stage.take(wanted, latest=self.take == "latest")
            assert stage.event is not None
            await stage.steps(self.on.get(stage.event.name, []), f"{path}.on.{stage.event.name}.")
        else:
            stage.record("timeout", key, events=sorted(names))
            await stage.steps(self.on_timeout, f"{path}.on_timeout.")

    def branches(self) -> list[tuple[BranchLabel, list[Any]]]:
        return [(("on_timeout",), self.on_timeout), *((("on", event), steps) for event, steps in self.on.items())]

    def ways(self) -> list[Way]:
        plain = [name for name in self.events if name not in self.on]  # no steps of their own: go on
        taken = [Way(", ".join(plain), (), [], frozenset(plain))] if plain else []
        taken += [Way(name, ("on", name), steps, frozenset({name})) for name, steps in self.on.items()]
        if self.timeout is not None:
            taken.append(Way("timeout", ("on_timeout",), self.on_timeout))
        return taken

    def way_text(self, way: Way) -> str:
        return f"timeout {format_duration(self.timeout)}" if way.label == ("on_timeout",) else way.name

    def describe(self) -> tuple[str, list[str]]:
        return "hexagon", ["wait for " + ", ".join(self.events)]

    def lint(self, linter: Lint, path: DataPath, guarded: bool) -> None:
        for index, event in enumerate(self.events):
            if event in linter.interrupting:
                linter.warn((*path, "events", index), "wait-interrupted",
                            f"'{event}' never reaches this wait_for: the transition from "
                            f"'{linter.stage}' on '{event}' moves the customer to "
                            f"'{linter.interrupting[event]}' first")
        if self.timeout is None:
            linter.warn(path, "wait-without-timeout",
                        "wait_for has no timeout: if the event never comes, the stage waits "
                        "for good (add timeout and on_timeout)")

    def events_waited(self) -> list[str]:
        return list(self.events)
