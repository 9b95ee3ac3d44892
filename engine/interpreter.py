"""The interpreter: runs one stage playbook against a Runtime, step by step.

It knows nothing of Temporal. Everything it does to the world goes through `runtime.act`,
with an action id built from lifecycle id, stage, stage entry and step path, so the same
step in the same stage entry always has the same idempotency key, on replay too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine import model as m
from engine.durations import parse_duration
from engine.context import expression_names, template_context
from engine.expressions import ExpressionError, evaluate, is_true, parse_time, to_plain
from engine.project import StageBundle
from engine.runtime import Runtime
from engine.state import Action, ActionResult, Event, LifecycleState, Pending, PromiseEntry
from engine.templates import render
from engine.walk import step_key


# An action (None for a suppressed send) and what to record of its result.
Effect = tuple[Action | None, Callable[[ActionResult | None], None]]


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


class StageRun:
    """One run of a stage playbook, from the top, for one stage entry."""

    def __init__(self, lifecycle: m.Lifecycle, bundle: StageBundle, state: LifecycleState,
                 runtime: Runtime, record: Callable[..., None]) -> None:
        self.lifecycle = lifecycle
        self.bundle = bundle
        self.state = state
        self.runtime = runtime
        self.record = record
        self.event = state.stage_event
        # Sends and plain tasks are batched by `_steps`; every other kind runs on its own.
        self._run = {
            m.Task: self._task, m.Wait: self._wait, m.WaitFor: self._wait_for,
            m.If: self._if, m.Set: self._set, m.Promise: self._promise,
            m.CheckPromise: self._check_promise, m.Goto: self._goto, m.End: self._end,
        }

    async def run(self) -> None:
        """Run every step; raises a StageExit subclass to leave the stage early."""
        assert self.bundle.playbook is not None
        await self._steps(self.bundle.playbook.steps, "")

    # ------------------------------------------------------------ helpers

    async def _steps(self, steps: list[Any], prefix: str) -> None:
        # Consecutive sends and plain tasks happen at the same instant anyway; acting on them
        # in one batch costs the workflow one activity instead of one per step.
        batch: list[Effect] = []
        for index, step in enumerate(steps):
            path = f"{prefix}{index}"
            if isinstance(step, m.Send):
                batch += self._prepare_send(step, path)
            elif isinstance(step, m.Task) and not (step.on_done or step.on_overdue):
                batch.append(self._prepare_task(step, step, path))
            else:
                await self._act(batch)
                await self._run[type(step)](step, path)
        await self._act(batch)

    async def _act(self, batch: list[Effect]) -> None:
        """Perform the prepared effects (if any) and record what came of each."""
        if not batch:
            return
        actions = [action for action, _ in batch if action is not None]
        results = iter(await self.runtime.act(actions) if actions else [])
        for action, on_result in batch:  # records keep the order of the steps
            on_result(next(results) if action is not None else None)
        batch.clear()

    def _names(self, source: str) -> dict[str, Any]:
        return expression_names(self.lifecycle, self.state, self.event, self.runtime.now(), source=source)

    def _value(self, source: str, step: Any, path: str) -> tuple[bool, Any]:
        """(ok, value); a failing expression is recorded on the timeline, never raised."""
        try:
            return True, evaluate(source, self._names(source))
        except ExpressionError as error:
            self.record("failed", step_key(step, path), error=str(error))
            return False, None

    def _condition(self, source: str, step: Any, path: str) -> bool:
        try:
            return is_true(source, self._names(source))
        except ExpressionError as error:
            # A rule that cannot be evaluated (e.g. a fact still null) counts as false.
            self.record("failed", step_key(step, path), error=str(error))
            return False

    def _action_id(self, step: Any, path: str) -> str:
        state = self.state
        return f"{state.lifecycle_id}/{state.stage}/{state.stage_entry}/{step_key(step, path)}"

    def _interrupted(self) -> bool:
        return self.state.next_stage is not None

    async def _pause(self, pending: Pending, ready: Callable[[], bool], until: datetime | None) -> bool:
        """Wait on the runtime; a transition interrupts any wait."""
        self.state.pending = pending
        try:
            done = await self.runtime.wait(lambda: self._interrupted() or ready(), until)
        finally:
            self.state.pending = None
        if self._interrupted():
            raise Interrupted()
        return done and ready()

    def _take(self, match: Callable[[Event], bool], latest: bool = False) -> Event | None:
        if latest:  # the newest wins; the older matching events are outdated by it and dropped
            matching = [event for event in self.state.inbox if match(event)]
            self.state.inbox[:] = [event for event in self.state.inbox if not match(event)]
            return matching[-1] if matching else None
        for index, event in enumerate(self.state.inbox):
            if match(event):
                return self.state.inbox.pop(index)
        return None

    def _has(self, match: Callable[[Event], bool]) -> bool:
        return any(match(event) for event in self.state.inbox)

    # ------------------------------------------------------------ effects

    def _channel_for(self, step: m.Send) -> tuple[str, str] | None:
        """The first channel with consent and an address: the asked one, or preferred then fallbacks."""
        customer = self.state.customer
        consent = customer.get("consent") or {}
        if step.channel == "preferred":
            order = list(self.lifecycle.channels)
            preferred = customer.get("preferred_channel")
            if preferred in order:
                order.remove(preferred)
                order.insert(0, preferred)
        else:
            order = [step.channel]
        for channel in order:
            address = customer.get(self.lifecycle.channels[channel].contact)
            if consent.get(channel) is True and address:
                return channel, str(address)
        return None

    def _prepare_send(self, step: m.Send, path: str) -> list[Effect]:
        """The message, the task replacing it, or (no action) the record of its suppression."""
        key = step_key(step, path)
        chosen = self._channel_for(step)
        if chosen is None:
            if step.otherwise is None:
                return [(None, lambda _: self.record("suppressed", key, template=step.template,
                                                      reason="no channel with consent"))]
            return [self._prepare_task(step.otherwise, step, path, reason=f"no consent to send '{step.template}'")]
        channel, address = chosen
        context = template_context(self.state, self.event, self.runtime.now())
        subject, body = render(self.bundle.templates[step.template], context)
        action = Action(
            id=self._action_id(step, path), kind="message", customer_id=self.state.customer["id"],
            stage=self.state.stage, step=key, channel=channel, to=address, template=step.template,
            category=step.category, subject=subject, body=body,
        )

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                self.record("message", key, channel=channel, template=step.template, action_id=action.id)
            else:
                self.record("failed", key, channel=channel, template=step.template, error=result.detail)

        return [(action, on_result)]

    def _prepare_task(self, spec: m.TaskSpec, step: Any, path: str, reason: str = "") -> Effect:
        key = step_key(step, path)
        due_at = self.runtime.now() + spec.due if spec.due else None
        action = Action(
            id=self._action_id(step, path), kind="task", customer_id=self.state.customer["id"],
            stage=self.state.stage, step=key, role=spec.role, title=spec.title,
            guideline=spec.guideline, due_at=due_at,
        )
        detail = {"role": spec.role, "title": spec.title, "action_id": action.id}
        if reason:
            detail["reason"] = reason
        if due_at:
            detail["due_at"] = due_at.isoformat()

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                self.record("task", key, **detail)
            else:
                self.record("failed", key, error=result.detail, **detail)

        return action, on_result

    async def _task(self, step: m.Task, path: str) -> None:
        effect = self._prepare_task(step, step, path)
        await self._act([effect])
        action = effect[0]
        if not (step.on_done or step.on_overdue):
            return
        key = step_key(step, path)

        def done(event: Event) -> bool:
            return event.name == "task.completed" and event.data.get("task") == key

        if await self._pause(Pending(step=key, task=key, until=action.due_at), lambda: self._has(done),
                             action.due_at):
            self.event = self._take(done)
            await self._steps(step.on_done, f"{path}.on_done.")
        else:
            self.record("timeout", key, reason="task overdue", role=step.role)
            await self._steps(step.on_overdue, f"{path}.on_overdue.")

    # ------------------------------------------------------------ flow

    async def _wait(self, step: m.Wait, path: str) -> None:
        if step.duration is not None:
            until = self.runtime.now() + step.duration
        else:
            ok, value = self._value(step.until, step, path)
            until = parse_time(value) if ok else None
            if until is None:
                if ok:
                    self.record("failed", step_key(step, path), error=f"'until' gave {value!r}, not a time")
                return
        if until <= self.runtime.now():
            return
        await self._pause(Pending(step=step_key(step, path), until=until), lambda: False, until)

    async def _wait_for(self, step: m.WaitFor, path: str) -> None:
        key = step_key(step, path)
        names = set(step.events)
        until = self.runtime.now() + step.timeout if step.timeout else None

        def wanted(event: Event) -> bool:
            return event.name in names

        pending = Pending(step=key, events=sorted(names), until=until)
        if await self._pause(pending, lambda: self._has(wanted), until):
            self.event = self._take(wanted, latest=step.take == "latest")
            assert self.event is not None
            await self._steps(step.on.get(self.event.name, []), f"{path}.on.{self.event.name}.")
        else:
            self.record("timeout", key, events=sorted(names))
            await self._steps(step.on_timeout, f"{path}.on_timeout.")

    async def _if(self, step: m.If, path: str) -> None:
        if self._condition(step.when, step, path):
            return await self._steps(step.then, f"{path}.then.")
        for index, branch in enumerate(step.elif_):
            if self._condition(branch.when, step, path):
                return await self._steps(branch.then, f"{path}.elif.{index}.then.")
        await self._steps(step.else_, f"{path}.else.")

    async def _set(self, step: m.Set, path: str) -> None:
        ok, value = self._value(step.value, step, path)
        if not ok:
            return
        target = self.state.vars if step.var else self.state.facts
        name = step.var or step.fact
        target[name] = to_plain(value)
        self.record("set", step_key(step, path), **{("var" if step.var else "fact"): name,
                                                    "value": to_plain(value)})

    async def _goto(self, step: m.Goto, path: str) -> None:
        raise GotoStage(step.stage)

    async def _end(self, step: m.End, path: str) -> None:
        raise EndLifecycle(step.outcome)

    # ------------------------------------------------------------ promises

    async def _promise(self, step: m.Promise, path: str) -> None:
        ok, expected = self._value(step.expected, step, path)
        if not ok:
            return
        entry = PromiseEntry(
            name=step.promise, about=step.about, description=step.description,
            expected=to_plain(expected), made_by=step.made_by, made_at=self.runtime.now(),
            stage=self.state.stage, tolerance=to_plain(step.tolerance),
        )
        self.state.promises[step.promise] = entry
        self.record("promise", step_key(step, path), promise=step.promise, about=step.about,
                    expected=entry.expected, made_by=step.made_by)

    async def _check_promise(self, step: m.CheckPromise, path: str) -> None:
        key = step_key(step, path)
        entry = self.state.promises.get(step.promise)
        if entry is None:
            self.record("failed", key, error=f"no promise '{step.promise}' was recorded")
            return
        ok, actual = self._value(step.actual, step, path)
        if not ok:
            return
        kept = promise_kept(entry.expected, actual, entry.tolerance)
        entry.state = "kept" if kept else "broken"
        entry.actual = to_plain(actual)
        entry.checked_at = self.runtime.now()
        self.record("promise_kept" if kept else "promise_broken", key, promise=step.promise,
                    expected=entry.expected, actual=entry.actual)
        if kept:
            await self._steps(step.on_kept, f"{path}.on_kept.")
        else:
            await self._steps(step.on_broken, f"{path}.on_broken.")


def promise_kept(expected: Any, actual: Any, tolerance: Any = None) -> bool:
    """Dates: kept when actual <= expected + tolerance; numbers likewise; other values: equal."""
    expected_time, actual_time = parse_time(expected), parse_time(actual)
    if expected_time is not None and actual_time is not None:
        slack = parse_duration(tolerance) if isinstance(tolerance, str) else timedelta(0)
        return actual_time <= expected_time + slack
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers) and not isinstance(actual, bool):
        slack = tolerance if isinstance(tolerance, numbers) else 0
        return actual <= expected + slack
    return expected == actual
