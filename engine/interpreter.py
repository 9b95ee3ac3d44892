"""The interpreter: runs one stage playbook against a Runtime, step by step.

The loop is generic: each step runs by its kind (`Step.run`, `Step.prepare`: engine.steps),
with the helpers here (`value`, `condition`, `deadline`, `pause`, `act`, `record`, ...). The
loop keeps what is the same for every kind: batching, resuming, incidents.

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

from engine import policy
from engine.calendars import CalendarError, business_days, business_hours
from engine.context import Scope, expression_names, template_context
from engine.durations import format_duration
from engine.exits import Interrupted, Released, StageExit, StepFailed, Suspended
from engine.expressions import ExpressionError, duration_of, evaluate_in
from engine.limits import ACTION_BYTES, fits, json_size
from engine.memo import per_object
from engine.model import Lifecycle
from engine.project import StageBundle
from engine.runtime import Runtime
from engine.state import Action, ActionResult, Event, Incident, LifecycleState, Pending, Resume, made
from engine.steps.base import Step
from engine.templates import TemplateRenderError, names_read
from engine.templates import render as render_template
from engine.walk import children, step_key


# An action (None for a suppressed send) and what to record of its result.
Effect = tuple[Action | None, Callable[[ActionResult | None], None]]


HOLD_ON_FAILURE = "hold-on-failure"
"""The change that made a failing step hold the customer: histories recorded before it, where a
failing condition counted as false and a failing value skipped its step, replay as they ran."""


class _LegacySkip(Exception):
    """Before HOLD_ON_FAILURE: a step whose value failed was recorded as failed and skipped."""


@per_object
def _var_kinds(playbook: Any) -> dict[str, str]:
    """`playbook.var_kinds()`, once per loaded playbook (a stage run reads it; none changes it)."""
    return playbook.var_kinds()


_PLANS: dict[tuple[int, str], tuple[list[Any], list[tuple[Any, str, bool]]]] = {}


def _plan(steps: list[Any], prefix: str) -> list[tuple[Any, str, bool]]:
    """Each step of a list with its path and whether it may batch (it has a `Step.prepare`),
    worked out once per list: a loaded playbook never changes, and every customer runs it."""
    known = _PLANS.get((id(steps), prefix))
    if known is None or known[0] is not steps:
        if len(_PLANS) >= 4096:
            _PLANS.clear()
        known = _PLANS[(id(steps), prefix)] = (steps, [
            (step, f"{prefix}{index}", type(step).prepare is not Step.prepare) for index, step in enumerate(steps)])
    return known[1]


class StageRun:
    """One run of a stage playbook for one stage entry: from the top, or from `state.resume`."""

    def __init__(self, lifecycle: Lifecycle, bundle: StageBundle, state: LifecycleState,
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
        self.var_kinds = _var_kinds(bundle.playbook) if bundle.playbook else {}

    async def run(self) -> None:
        """Run the steps; raises a StageExit subclass to leave the stage early."""
        assert self.bundle.playbook is not None
        await self.steps(self.bundle.playbook.steps, "")

    # ------------------------------------------------------------ the loop

    async def steps(self, steps: list[Any], prefix: str) -> None:
        """Run a list of steps (the playbook's, or a branch's under `prefix`), each by its kind.

        Consecutive steps that act at once (sends, plain tasks: `Step.prepare`) happen at the
        same instant anyway; acting on them in one batch costs the workflow one activity
        instead of one per step.
        """
        batch: list[Effect] = []
        plan = _plan(steps, prefix)
        if self.resume is not None:
            plan = plan[self._first_index(prefix):]
        for step, path, batched in plan:
            mode = None
            if self.resume is not None:  # only a resumed run looks for its position
                if self._resuming_inside(path):
                    await self.act(batch)
                    await self._descend(step, path)
                    continue
                mode = self._resume_mode_at(path)
                if mode == "skip":
                    continue
            try:
                if mode == "pause":
                    await step.run(self, path)
                elif mode == "held":
                    await self._hold_again(step, path)
                elif batched and (effects := step.prepare(self, path)) is not None:
                    batch += effects
                else:
                    if batch:
                        await self.act(batch)
                    await step.run(self, path)
            except StageExit:
                raise
            except _LegacySkip:
                continue
            except Exception as error:  # whatever fails, the customer is held here, visibly
                failure = error if isinstance(error, StepFailed) else \
                    StepFailed("internal", f"{type(error).__name__}: {error}")
                await self.act(batch)  # the steps before it are done
                await self._hold(step, path, failure)
        if batch:
            await self.act(batch)

    async def act(self, batch: list[Effect]) -> None:
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
                await self.steps(nested, prefix)
                return
        self.resume = None  # the position is not in this playbook (it was edited): go on after it

    # ------------------------------------------------------------ incidents

    async def _hold(self, step: Any, path: str, failure: StepFailed) -> None:
        """Hold the customer at this step until an operator or a fix releases it."""
        incident = Incident(kind=failure.kind, stage=self.state.stage, step=step_key(step, path), path=path,
                            error=failure.error[:2000], since=self.runtime.now())
        self.state.incident = incident
        self.record("incident", incident.step, failure=incident.kind, error=incident.error)
        await self.runtime.act([incident_action(self.state, incident, self.action_id(step, path))])
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

    # ------------------------------------------------------------ helpers for the step kinds

    def names(self, source: str) -> dict[str, Any]:
        """The names an expression can read here: customer, event, facts, vars, promises, now."""
        return expression_names(self.lifecycle, self.state, self.event, self.runtime.now(), source=source,
                                var_kinds=self.var_kinds)

    def value(self, source: str, step: Any, path: str) -> Any:
        """The value of an expression; a failure holds the step (it is never taken as false)."""
        try:
            return evaluate_in(source, Scope(self.lifecycle, self.state, self.event, self.runtime.now(), source,
                                             var_kinds=self.var_kinds))
        except ExpressionError as error:
            self.legacy_failure(step, path, str(error))
            raise StepFailed("expression", str(error)) from None

    def condition(self, source: str, step: Any, path: str) -> bool:
        """A condition's truth; a failure or a value that is not a bool holds the step."""
        try:
            value = self.value(source, step, path)
        except _LegacySkip:
            return False  # before HOLD_ON_FAILURE a failing condition counted as false
        if not isinstance(value, bool):
            if not self.runtime.patched(HOLD_ON_FAILURE):
                return False  # before HOLD_ON_FAILURE anything but true counted as false, unrecorded
            raise StepFailed("expression", f"{source!r} gave {value!r}, not true or false")
        return value

    def legacy_failure(self, step: Any, path: str, error: str) -> None:
        """In a history recorded before HOLD_ON_FAILURE, fail as that release did."""
        if not self.runtime.patched(HOLD_ON_FAILURE):
            self.record("failed", step_key(step, path), error=error)
            raise _LegacySkip()

    def action_id(self, step: Any, path: str) -> str:
        """The idempotency key of the step's action in this stage entry."""
        state = self.state
        return f"{state.lifecycle_id}/{state.stage}/{state.stage_entry}/{step_key(step, path)}"

    def _interrupted(self) -> bool:
        return self.state.next_stage is not None

    def deadline(self, delay: timedelta | str, role: str | None = None) -> datetime:
        """Now plus a duration (a literal or an expression), `N business days` (on the calendar of
        `role` when the contact policy gives it one, else the customer's) or `N business hours` (of
        `role`'s business_hours window); a bad one holds the step."""
        count = business_days(delay)
        if count is not None:
            return self._business_deadline(count, role, "days")
        count = business_hours(delay)
        if count is not None:
            return self._business_deadline(count, role, "hours")
        try:
            delay = duration_of(delay, self.names)  # a literal, or an expression: days(vars.sla_days)
        except ExpressionError as error:
            raise StepFailed("expression", str(error)) from None
        if delay < timedelta(0):  # e.g. `facts.sla - hours(48)` with a short SLA: never a silent no-wait
            raise StepFailed("expression", f"the duration is negative (-{format_duration(-delay)}): the time it "
                                           "counts to has passed; to go on at once then, write "
                                           "max(<the duration>, duration('0s'))")
        try:
            return self.runtime.now() + delay
        except OverflowError:
            raise StepFailed("expression", f"a wait of {delay} goes past the year 9999") from None

    def _business_deadline(self, count: int, role: str | None, unit: str) -> datetime:
        try:
            return policy.business_deadline(policy.policy_of(self.lifecycle), self.state.customer, role,
                                            self.runtime.now(), count, unit)
        except CalendarError as error:
            raise StepFailed("policy", str(error)) from None

    async def pause(self, step: Any, path: str, pending: Pending, ready: Callable[[], bool],
                    until: datetime | None) -> bool:
        """Wait on the runtime until `ready()` or `until`; whether it ended ready. A transition
        interrupts any wait, a suspension leaves the run (to resume here in a new one)."""
        self.state.assign(resume=made(Resume, {"path": path, "mode": "pause", "until": until, "event": self.event}),
                          pending=pending)
        done = await self.runtime.wait(lambda: self._interrupted() or ready() or self.suspend(), until)
        if self._interrupted():
            raise Interrupted()
        if not ready() and self.suspend():
            raise Suspended()
        self.state.assign(pending=None, resume=None)
        self.resume = None
        return done and ready()

    def paused_at(self, path: str) -> bool:
        """Whether the run resumes a wait of the step at `path` (what came before it is done)."""
        return self.resume is not None and self.resume.path == path and self.resume.mode == "pause"

    def resumed_until(self, path: str, fresh: Callable[[], datetime | None]) -> datetime | None:
        """The deadline of a wait: the one it had before a new run, else a fresh one."""
        resume = self.resume
        if resume is not None and resume.path == path and resume.mode == "pause":
            self.resume = None
            return resume.until
        return fresh()

    def take(self, match: Callable[[Event], bool], latest: bool = False) -> Event | None:
        """Remove and return the oldest (or the latest) matching event of the stage's inbox."""
        if latest:  # the newest wins; the older matching events are outdated by it and dropped
            matching = [event for event in self.state.inbox if match(event)]
            self.state.inbox[:] = [event for event in self.state.inbox if not match(event)]
            return matching[-1] if matching else None
        for index, event in enumerate(self.state.inbox):
            if match(event):
                return self.state.inbox.pop(index)
        return None

    def has(self, match: Callable[[Event], bool]) -> bool:
        """Whether the stage's inbox holds a matching event."""
        return any(match(event) for event in self.state.inbox)

    def checked_action(self, what: str, action: Action) -> None:
        """Hold the step when the action is over its size budget."""
        # Only the texts of an action can be large: judge by their length first (a character
        # takes at most 6 bytes in JSON), and measure exactly only near the budget.
        characters = len(action.subject) + len(action.body) + len(action.title or "") + \
            len(action.guideline or "") + len(action.to or "")
        if 6 * characters + 4096 > ACTION_BYTES:
            self.checked_size(what, action.model_dump(mode="json"), ACTION_BYTES)

    def checked_size(self, what: str, value: Any, budget: int) -> None:
        """Hold the step when a value is over its size budget."""
        if not fits(value, budget):
            raise StepFailed("payload", f"{what} is {json_size(value):,} bytes, over its budget of {budget:,}")

    def render(self, template: str) -> tuple[str, str]:
        """The subject and body of a message template here; a template error holds the step."""
        source = self.bundle.templates[template]
        context = template_context(self.state, self.event, self.runtime.now(), names_read(source))
        try:
            return render_template(source, context, name=template)
        except TemplateRenderError as error:  # held, never a stuck workflow
            raise StepFailed("template", str(error)) from None


def incident_action(state: LifecycleState, incident: Incident, base_id: str) -> Action:
    """The record an operator gets (outbox or webhook) when a customer is held."""
    return Action(
        id=f"{base_id}/incident@{incident.since.isoformat()}", kind="incident", customer_id=state.customer["id"],
        stage=incident.stage, step=incident.step or "", role="operator",
        title=f"Customer held: {incident.kind} failure at {incident.step or 'stage ' + incident.stage}",
        guideline=f"{incident.error}\nFix the playbook (the customer resumes by itself) or run "
                  f"`lifecycle retry {state.customer['id']}` / `lifecycle skip {state.customer['id']}`.",
    )

