"""The interpreter: runs one stage playbook against a Runtime, step by step.

It knows nothing of Temporal. Everything it does to the world goes through `runtime.act`,
with an action id built from lifecycle id, stage, stage entry and step path, so the same
step in the same stage entry always has the same idempotency key, on replay too.

A stage run can stop in the middle and be picked up again: before it waits (or is held on
an incident) it writes its position to `state.resume`, and a run started with that position
skips the steps before it and follows the branches that lead to it. That is how a lifecycle
continues-as-new inside a months-long wait, and how an operator's retry or skip goes on.

A step that fails (an expression or template error, a value over its size budget, anything
unexpected) never counts as false and never wedges the workflow: the customer is held at
that step on an `incident` until the playbook is fixed or an operator says retry or skip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine import model as m
from engine import policy
from engine.calendars import CalendarError, business_days
from engine.context import expression_names, template_context
from engine.expressions import ExpressionError, duration_of, evaluate, parse_time, to_plain
from engine.limits import ACTION_BYTES, VALUE_BYTES, fits, json_size
from engine.policy import Decision
from engine.project import StageBundle
from engine.promises import promise_kept
from engine.runtime import Runtime
from engine.state import Action, ActionResult, Event, Incident, LifecycleState, Pending, PromiseEntry, Resume
from engine.templates import TemplateRenderError, render
from engine.walk import children, step_key


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


class Suspended(StageExit):
    """The run stops here to continue in a new one; `state.resume` says where."""


class Released(StageExit):
    """An incident was released (retry or skip): the stage runs again from `state.resume`,
    with `bundle` when the release came from a fixed playbook."""

    def __init__(self, bundle: StageBundle | None = None) -> None:
        self.bundle = bundle


HOLD_ON_FAILURE = "hold-on-failure"
"""The change that made a failing step hold the customer: histories recorded before it, where a
failing condition counted as false and a failing value skipped its step, replay as they ran."""


CONTACT_POLICY = "contact-policy"
"""The change that made every send go through the contact policy (engine.policy): a history
recorded before it sends where the policy would defer or suppress, on the channel the old rule chose."""


class _LegacySkip(Exception):
    """Before HOLD_ON_FAILURE: a step whose value failed was recorded as failed and skipped."""


class StepFailed(Exception):
    """A step cannot go on; the customer is held on an incident of this kind."""

    def __init__(self, kind: str, error: str) -> None:
        super().__init__(error)
        self.kind = kind
        self.error = error


class StageRun:
    """One run of a stage playbook for one stage entry: from the top, or from `state.resume`."""

    def __init__(self, lifecycle: m.Lifecycle, bundle: StageBundle, state: LifecycleState,
                 runtime: Runtime, record: Callable[..., None],
                 suspend: Callable[[], bool] = lambda: False) -> None:
        self.lifecycle = lifecycle
        self.bundle = bundle
        self.state = state
        self.runtime = runtime
        self.record = record
        self.suspend = suspend  # asked while waiting: stop here to continue in a new run
        self.resume = state.resume
        self.event = self.resume.event if self.resume else state.stage_event
        self.var_kinds = bundle.playbook.var_kinds() if bundle.playbook else {}
        # Sends and plain tasks are batched by `_steps`; every other kind runs on its own.
        self._run = {
            m.Task: self._task, m.Wait: self._wait, m.WaitFor: self._wait_for,
            m.If: self._if, m.Set: self._set, m.Promise: self._promise,
            m.CheckPromise: self._check_promise, m.Goto: self._goto, m.End: self._end,
            m.Send: self._send_later,  # only a send deferred by the contact policy runs on its own
        }

    async def run(self) -> None:
        """Run the steps; raises a StageExit subclass to leave the stage early."""
        assert self.bundle.playbook is not None
        await self._steps(self.bundle.playbook.steps, "")

    # ------------------------------------------------------------ the loop

    async def _steps(self, steps: list[Any], prefix: str) -> None:
        # Consecutive sends and plain tasks happen at the same instant anyway; acting on them
        # in one batch costs the workflow one activity instead of one per step.
        batch: list[Effect] = []
        for index in range(self._first_index(prefix), len(steps)):
            step, path = steps[index], f"{prefix}{index}"
            if self._resuming_inside(path):
                await self._act(batch)
                await self._descend(step, path)
                continue
            mode = self._resume_mode_at(path)
            if mode == "skip":
                continue
            try:
                if mode == "pause":
                    await self._run[type(step)](step, path)
                elif mode == "held":
                    await self._hold_again(step, path)
                elif isinstance(step, m.Send):
                    effects = self._prepare_send(step, path)
                    if isinstance(effects, Decision):  # deferred: the steps before it go out first
                        await self._act(batch)
                        await self._send_later(step, path, effects)
                    else:
                        batch += effects
                elif isinstance(step, m.Task) and not (step.on_done or step.on_overdue):
                    batch.append(self._prepare_task(step, step, path))
                else:
                    await self._act(batch)
                    await self._run[type(step)](step, path)
            except StageExit:
                raise
            except _LegacySkip:
                continue
            except Exception as error:  # whatever fails, the customer is held here, visibly
                failure = error if isinstance(error, StepFailed) else \
                    StepFailed("internal", f"{type(error).__name__}: {error}")
                await self._act(batch)  # the steps before it are done
                await self._hold(step, path, failure)
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

    # ------------------------------------------------------------ resuming

    def _first_index(self, prefix: str) -> int:
        """Where a list of steps starts: 0, or the index on the way to the resume position."""
        if self.resume is None or not self.resume.path.startswith(prefix):
            return 0
        head = self.resume.path[len(prefix):].split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    def _resuming_inside(self, path: str) -> bool:
        return self.resume is not None and self.resume.path.startswith(f"{path}.")

    def _resume_mode_at(self, path: str) -> str | None:
        """The resume mode if `path` is the resume position (which is then used up)."""
        if self.resume is None or self.resume.path != path:
            return None
        mode = self.resume.mode
        if mode in ("retry", "skip"):
            self.resume = None
        return mode

    async def _descend(self, step: Any, path: str) -> None:
        """Go into the branch of `step` that holds the resume position, without re-deciding it."""
        assert self.resume is not None
        branches = [(f"{path}.{label}.", nested) for label, nested in children(step)]
        # The longest prefix: event names have dots (`on.order.` vs `on.order.delivered.`).
        for prefix, nested in sorted(branches, key=lambda item: -len(item[0])):
            if self.resume.path.startswith(prefix) and self.resume.path[len(prefix):].split(".")[0].isdigit():
                await self._steps(nested, prefix)
                return
        self.resume = None  # the position is not in this playbook (it was edited): go on after it

    # ------------------------------------------------------------ incidents

    async def _hold(self, step: Any, path: str, failure: StepFailed) -> None:
        """Hold the customer at this step until an operator or a fix releases it."""
        incident = Incident(kind=failure.kind, stage=self.state.stage, step=step_key(step, path), path=path,
                            error=failure.error[:2000], since=self.runtime.now())
        self.state.incident = incident
        self.record("incident", incident.step, failure=incident.kind, error=incident.error)
        await self.runtime.act([incident_action(self.state, incident, self._action_id(step, path))])
        await self._hold_again(step, path)

    async def _hold_again(self, step: Any, path: str) -> None:
        """Wait for the release of the incident at `path`; leave the run to act on it."""
        self.state.resume = Resume(path=path, mode="held", event=self.event)
        self.state.pending = Pending(step=step_key(step, path))
        fixed = await self.runtime.hold(
            self.state.stage, self.state.stage_version,
            lambda: self._interrupted() or self.suspend() or self._released(),
        )
        self.state.pending = None
        if self._interrupted():
            raise Interrupted()
        if fixed is not None and self.state.incident is not None:
            self.state.incident.release = "retry"
            self.state.incident.released_by = f"the playbook was changed (version {fixed.version})"
            raise Released(fixed)
        if self._released():
            raise Released()
        raise Suspended()

    def _released(self) -> bool:
        return self.state.incident is not None and self.state.incident.release is not None

    # ------------------------------------------------------------ helpers

    def _names(self, source: str) -> dict[str, Any]:
        return expression_names(self.lifecycle, self.state, self.event, self.runtime.now(), source=source,
                                var_kinds=self.var_kinds)

    def _value(self, source: str, step: Any, path: str) -> Any:
        """The value of an expression; a failure holds the step (it is never taken as false)."""
        try:
            return evaluate(source, self._names(source))
        except ExpressionError as error:
            self._legacy_failure(step, path, str(error))
            raise StepFailed("expression", str(error)) from None

    def _condition(self, source: str, step: Any, path: str) -> bool:
        try:
            value = self._value(source, step, path)
        except _LegacySkip:
            return False  # before HOLD_ON_FAILURE a failing condition counted as false
        if not isinstance(value, bool):
            if not self.runtime.patched(HOLD_ON_FAILURE):
                return False  # before HOLD_ON_FAILURE anything but true counted as false, unrecorded
            raise StepFailed("expression", f"{source!r} gave {value!r}, not true or false")
        return value

    def _legacy_failure(self, step: Any, path: str, error: str) -> None:
        """In a history recorded before HOLD_ON_FAILURE, fail as that release did."""
        if not self.runtime.patched(HOLD_ON_FAILURE):
            self.record("failed", step_key(step, path), error=error)
            raise _LegacySkip()

    def _action_id(self, step: Any, path: str) -> str:
        state = self.state
        return f"{state.lifecycle_id}/{state.stage}/{state.stage_entry}/{step_key(step, path)}"

    def _interrupted(self) -> bool:
        return self.state.next_stage is not None

    def _deadline(self, delay: timedelta | str, role: str | None = None) -> datetime:
        count = business_days(delay)
        if count is not None:  # `2 business days`: on the role's or the customer's calendar
            return self._business_deadline(count, role)
        try:
            delay = duration_of(delay, self._names)  # a literal, or an expression: days(vars.sla_days)
        except ExpressionError as error:
            raise StepFailed("expression", str(error)) from None
        if delay < timedelta(0):  # e.g. `facts.sla - hours(48)` with a short SLA: never a silent no-wait
            raise StepFailed("expression", f"a duration of {delay} is negative")
        try:
            return self.runtime.now() + delay
        except OverflowError:
            raise StepFailed("expression", f"a wait of {delay} goes past the year 9999") from None

    def _business_deadline(self, count: int, role: str | None) -> datetime:
        try:
            return policy.business_deadline(policy.policy_of(self.lifecycle), self.state.customer, role,
                                            self.runtime.now(), count)
        except CalendarError as error:
            raise StepFailed("policy", str(error)) from None

    async def _pause(self, step: Any, path: str, pending: Pending, ready: Callable[[], bool],
                     until: datetime | None) -> bool:
        """Wait on the runtime; a transition interrupts any wait, a suspension leaves the run."""
        self.state.resume = Resume(path=path, mode="pause", until=until, event=self.event)
        self.state.pending = pending
        done = await self.runtime.wait(lambda: self._interrupted() or ready() or self.suspend(), until)
        if self._interrupted():
            raise Interrupted()
        if not ready() and self.suspend():
            raise Suspended()
        self.state.pending = None
        self.state.resume = self.resume = None
        return done and ready()

    def _resumed_until(self, path: str, fresh: Callable[[], datetime | None]) -> datetime | None:
        """The deadline of a wait: the one it had before a new run, else a fresh one."""
        resume = self.resume
        if resume is not None and resume.path == path and resume.mode == "pause":
            self.resume = None
            return resume.until
        return fresh()

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

    def _checked_action(self, what: str, action: Action) -> None:
        # Only the texts of an action can be large: judge by their length first (a character
        # takes at most 6 bytes in JSON), and measure exactly only near the budget.
        texts = (action.subject, action.body, action.title or "", action.guideline or "", action.to or "")
        if 6 * sum(len(text) for text in texts) + 4096 > ACTION_BYTES:
            self._checked_size(what, action.model_dump(mode="json"), ACTION_BYTES)

    def _checked_size(self, what: str, value: Any, budget: int) -> None:
        if not fits(value, budget):
            raise StepFailed("payload", f"{what} is {json_size(value):,} bytes, over its budget of {budget:,}")

    # ------------------------------------------------------------ effects

    def _channel_for(self, step: m.Send) -> tuple[str, str] | None:
        """Before CONTACT_POLICY: the first channel with consent and an address, the asked one or
        preferred then fallbacks (kept to replay histories recorded before the contact policy)."""
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

    # ------------------------------------------------------------ contact policy (engine.policy)

    def _decide(self, step: m.Send) -> Decision:
        """The contact policy's decision for this send now. A history recorded before the policy
        existed replays the old rule (first channel with consent and an address, sent at once)."""
        now = self.runtime.now()
        decision = policy.decide(self.lifecycle, self.state.customer, self.state.contact, step.channel,
                                 step.category, now)
        legacy = self._channel_for(step)
        same = decision.action == "send" and legacy is not None and decision.channel == legacy[0] or \
            decision.action == "suppress" and decision.no_channel and legacy is None
        if same or self.runtime.patched(CONTACT_POLICY):
            return decision
        if legacy is None:
            return Decision("suppress", reason="no channel with consent", no_channel=True)
        return Decision("send", legacy[0], legacy[1])

    async def _send_later(self, step: m.Send, path: str, decision: Decision | None = None) -> None:
        """A send the policy deferred: wait (a durable timer, interrupted by a transition like any
        wait), then decide again: an opt-out or a cap that came meanwhile still applies."""
        key = step_key(step, path)
        while True:
            if decision is not None:
                zone = policy.customer_zone(policy.policy_of(self.lifecycle), self.state.customer)
                self.record("deferred", key, template=step.template, **decision.detail(zone))
            until = self._resumed_until(path, lambda: decision.until if decision else None)
            before = self.state.pending  # after continue-as-new the reason is the one recorded
            reason = decision.reason if decision else (before.deferred if before and before.deferred else "deferred")
            pending = Pending(step=key, until=until, deferred=reason)
            await self._pause(step, path, pending, lambda: False, until)
            effects = self._prepare_send(step, path)
            if not isinstance(effects, Decision):
                return await self._act(effects)
            decision = effects

    def _prepare_send(self, step: m.Send, path: str) -> list[Effect] | Decision:
        """The message, the task replacing it, (no action) the record of its suppression, or the
        Decision to defer it."""
        key = step_key(step, path)
        try:
            decision = self._decide(step)
        except CalendarError as error:  # e.g. a profile's time zone this machine does not know
            raise StepFailed("policy", str(error)) from None
        if decision.action == "defer":
            return decision
        if decision.action == "suppress":
            if step.otherwise is None or not decision.no_channel:
                return [(None, lambda _: self.record("suppressed", key, template=step.template,
                                                      **decision.detail()))]
            return [self._prepare_task(step.otherwise, step, path, reason=f"no consent to send '{step.template}'")]
        channel, address = decision.channel, decision.address
        assert channel is not None and address is not None
        context = template_context(self.state, self.event, self.runtime.now())
        try:
            subject, body = render(self.bundle.templates[step.template], context, name=step.template)
        except TemplateRenderError as error:  # held, never a stuck workflow
            raise StepFailed("template", str(error)) from None
        action = Action(
            id=self._action_id(step, path), kind="message", customer_id=self.state.customer["id"],
            stage=self.state.stage, step=key, channel=channel, to=address, template=step.template,
            category=step.category, subject=subject, body=body,
        )
        self._checked_action(f"the message of '{step.template}'", action)
        # Logged for the caps now, not when its batch is delivered: the next send of the same
        # batch must count it (a message that then fails to go out still counts: caps err on quiet).
        policy.note_sent(policy.policy_of(self.lifecycle), self.state.contact, self.runtime.now(), channel,
                         step.category)

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                self.record("message", key, channel=channel, template=step.template, action_id=action.id)
            else:
                self.record("failed", key, channel=channel, template=step.template, error=result.detail)

        return [(action, on_result)]

    def _prepare_task(self, spec: m.TaskSpec, step: Any, path: str, reason: str = "") -> Effect:
        key = step_key(step, path)
        due_at = self._deadline(spec.due, spec.role) if spec.due else None
        action = Action(
            id=self._action_id(step, path), kind="task", customer_id=self.state.customer["id"],
            stage=self.state.stage, step=key, role=spec.role, title=spec.title,
            guideline=spec.guideline, due_at=due_at,
        )
        self._checked_action(f"the task '{key}'", action)
        detail = {"role": spec.role, "title": spec.title, "action_id": action.id}
        if reason:
            detail["reason"] = reason
        if due_at:
            detail["due_at"] = due_at.isoformat()

        def on_result(result: ActionResult) -> None:
            if result.status == "done":
                self.record("task", key, **detail)
                if key not in self.state.open_tasks:
                    self.state.open_tasks.append(key)
            else:
                self.record("failed", key, error=result.detail, **detail)

        return action, on_result

    async def _task(self, step: m.Task, path: str) -> None:
        key = step_key(step, path)
        resumed = self.resume is not None and self.resume.path == path and self.resume.mode == "pause"
        if resumed:  # created before a new run: only its wait goes on
            due_at = self._resumed_until(path, lambda: None)
        else:
            effect = self._prepare_task(step, step, path)
            await self._act([effect])
            due_at = effect[0].due_at if effect[0] else None
        if not (step.on_done or step.on_overdue):
            return

        def done(event: Event) -> bool:
            return event.name == "task.completed" and event.data.get("task") == key

        if await self._pause(step, path, Pending(step=key, task=key, until=due_at), lambda: self._has(done), due_at):
            self.event = self._take(done)
            await self._steps(step.on_done, f"{path}.on_done.")
        else:
            self.record("timeout", key, reason="task overdue", role=step.role)
            await self._steps(step.on_overdue, f"{path}.on_overdue.")

    # ------------------------------------------------------------ flow

    async def _wait(self, step: m.Wait, path: str) -> None:
        until = self._resumed_until(path, lambda: self._wait_until(step, path))
        if until is None or until <= self.runtime.now():
            return
        await self._pause(step, path, Pending(step=step_key(step, path), until=until), lambda: False, until)

    def _wait_until(self, step: m.Wait, path: str) -> datetime:
        if step.duration is not None:
            return self._deadline(step.duration)
        value = self._value(step.until, step, path)
        until = parse_time(value)
        if until is None:
            self._legacy_failure(step, path, f"'until' gave {value!r}, not a time")
            raise StepFailed("expression", f"'until' gave {value!r}, not a time")
        return until

    async def _wait_for(self, step: m.WaitFor, path: str) -> None:
        key = step_key(step, path)
        names = set(step.events)
        until = self._resumed_until(path, lambda: self._deadline(step.timeout) if step.timeout else None)

        def wanted(event: Event) -> bool:
            return event.name in names

        pending = Pending(step=key, events=sorted(names), until=until)
        if await self._pause(step, path, pending, lambda: self._has(wanted), until):
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
        value = to_plain(self._value(step.value, step, path))
        name = step.var or step.fact
        self._checked_size(f"the value for '{name}'", value, VALUE_BYTES)
        target = self.state.vars if step.var else self.state.facts
        target[name] = value
        self.record("set", step_key(step, path), **{("var" if step.var else "fact"): name, "value": value})

    async def _goto(self, step: m.Goto, path: str) -> None:
        raise GotoStage(step.stage)

    async def _end(self, step: m.End, path: str) -> None:
        raise EndLifecycle(step.outcome)

    # ------------------------------------------------------------ promises

    async def _promise(self, step: m.Promise, path: str) -> None:
        expected = to_plain(self._value(step.expected, step, path))
        self._checked_size(f"the promise '{step.promise}'", expected, VALUE_BYTES)
        entry = PromiseEntry(
            name=step.promise, about=step.about, description=step.description,
            expected=expected, made_by=step.made_by, made_at=self.runtime.now(),
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
        actual = self._value(step.actual, step, path)
        kept = promise_kept(entry.about, entry.expected, actual, entry.tolerance)
        entry.state = "kept" if kept else "broken"
        entry.actual = to_plain(actual)
        entry.checked_at = self.runtime.now()
        self.record("promise_kept" if kept else "promise_broken", key, promise=step.promise,
                    expected=entry.expected, actual=entry.actual)
        if kept:
            await self._steps(step.on_kept, f"{path}.on_kept.")
        else:
            await self._steps(step.on_broken, f"{path}.on_broken.")


def incident_action(state: LifecycleState, incident: Incident, base_id: str) -> Action:
    """The record an operator gets (outbox or webhook) when a customer is held."""
    return Action(
        id=f"{base_id}/incident@{incident.since.isoformat()}", kind="incident", customer_id=state.customer["id"],
        stage=incident.stage, step=incident.step or "", role="operator",
        title=f"Customer held: {incident.kind} failure at {incident.step or 'stage ' + incident.stage}",
        guideline=f"{incident.error}\nFix the playbook (the customer resumes by itself) or run "
                  f"`lifecycle retry {state.customer['id']}` / `lifecycle skip {state.customer['id']}`.",
    )

