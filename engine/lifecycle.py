"""A customer's lifecycle: events in, stage transitions, and the loop that runs stage playbooks.

`receive` is synchronous and pure apart from the state it owns, so the workflow can call it
from an update handler and the simulator from its event loop; `run` is the long-lived loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine import policy
from engine.context import Scope
from engine.events import POLICY_EVENTS, PayloadError, check_customer, check_event, declared_events
from engine.expressions import ExpressionError, evaluate, evaluate_in, to_plain
from engine.exits import EndLifecycle, GotoStage, Interrupted, Released, Suspended
from engine.interpreter import StageRun, incident_action
from engine.memo import per_object
from engine.limits import EVENT_DATA_BYTES, INBOX_PER_EVENT, bounded, json_size, size_bound
from engine.model import Lifecycle, Playbook
from engine.project import StageBundle
from engine.runtime import Runtime, StageLoadError
from engine import tasks
from engine.schedules import Due, ScheduledRuntime, next_due
from engine.state import (RECORD_KINDS, Event, EventReceipt, Incident, IncidentKind, LifecycleState, Record,
                          TaskCommand, TaskEntity, built, made)
from engine.types import PLAIN_TYPES
from engine.walk import walk_steps

SEEN_KEYS_KEPT = 1000  # idempotency keys remembered per lifecycle; older ones age out


def lifecycle_id(customer_id: str) -> str:
    """The workflow id of a customer's lifecycle, so an event always finds it."""
    return f"lifecycle/{customer_id}"


@per_object
def events_waited_for(playbook: Playbook | None) -> frozenset[str]:
    """Events a stage playbook can take in a wait_for, or as a task completion."""
    if playbook is None:
        return frozenset()
    return frozenset(name for step, _ in walk_steps(playbook.steps) for name in step.events_waited())


@per_object
def _taken_everywhere(lifecycle: Lifecycle) -> frozenset[str]:
    """The events every stage takes whatever its playbook, terminal ones too: fact updates, the
    contact policy's (consent and opt-out take effect in any stage: engine.policy)."""
    return frozenset({name for name, spec in lifecycle.events.items() if spec.updates} | set(POLICY_EVENTS))


@per_object
def _taken_in_stages(lifecycle: Lifecycle) -> dict[str, frozenset[str]]:
    """Per stage, the events it takes whatever its playbook: `_taken_everywhere`, its transitions."""
    always = _taken_everywhere(lifecycle)
    return {stage: frozenset(always | {t.on for t in lifecycle.transitions if t.applies_in(stage)})
            for stage in lifecycle.stages}


def _taken_in(lifecycle: Lifecycle, stage: str) -> frozenset[str]:
    known = _taken_in_stages(lifecycle).get(stage)
    if known is None:  # not a stage of this lifecycle version: work it out
        always = {name for name, spec in lifecycle.events.items() if spec.updates} | set(POLICY_EVENTS)
        known = frozenset(always | {t.on for t in lifecycle.transitions if t.applies_in(stage)})
    return known


class LifecycleMachine:
    """The lifecycle of one customer over a LifecycleState that it owns and mutates."""

    def __init__(self, lifecycle: Lifecycle, state: LifecycleState, timeline_limit: int | None = None):
        self.lifecycle = lifecycle
        self.state = state
        self.timeline_limit = timeline_limit
        self.bundle: StageBundle | None = None  # what the running stage entry pinned
        self.playbook: Playbook | None = None  # the pinned playbook of the running stage
        self.waited_for: frozenset[str] = frozenset()  # its wait_for events, computed once per entry
        self._clock: Callable[[], datetime] = lambda: state.stage_since
        self._suspend: Callable[[], bool] = lambda: False  # `run` sets it: stop inside a stage
        # Refuse an event whose fact updates or transition guards fail (see `_rule_failure`);
        # the workflow turns it off to replay histories recorded before that rule.
        self.strict_rules = True
        # Tasks are entities (engine.tasks): any open task can be completed by id, in any stage
        # entry; the workflow turns it off to replay histories recorded before (`task-entities`).
        self.task_entities = True
        # The changes to payload checks (engine.events.PAYLOAD_CHANGES: a timestamp needs its
        # offset, 7.0 is an int, consent is checked) this run predates: the workflow sets them to
        # replay histories recorded before each.
        self.predates: frozenset[str] = frozenset()
        # An event sent while the customer moves to another stage is judged by that stage, and
        # one that no wait of the stage it ends up in takes is recorded as dropped (`can_take`,
        # `_drop_unread`); the workflow turns it off to replay histories recorded before
        # (`events-between-stages`).
        self.between_stages = True
        # Per stage, the events its playbook waits for, as the project was when the running
        # stage entry was pinned (StageBundle.waits); kept across `enter` so that the stage being
        # entered is judged by it until its own playbook is pinned. None: not known.
        self.stage_waits: dict[str, list[str]] | None = None
        # What `check` worked out for the event it was given: kept for `_admit` to apply.
        # (event, now, normalized event, updated facts, each guard's outcome by transition)
        self._checked: tuple[Event, datetime, Event, dict[str, Any], dict[int, bool]] | None = None
        self._guards: dict[int, bool] = {}  # the outcomes for the event `_admit` just took

    @classmethod
    def new(cls, lifecycle: Lifecycle, customer_id: str, now: datetime, **options: Any) -> LifecycleMachine:
        """A lifecycle about to enter its initial stage; `start` gives it its first event."""
        state = LifecycleState(
            lifecycle_id=lifecycle_id(customer_id),
            customer={"id": customer_id},
            stage=lifecycle.initial_stage,
            stage_since=now,
            facts={name: spec.initial for name, spec in lifecycle.facts.items()},
        )
        return cls(lifecycle, state, **options)

    # ------------------------------------------------------------ events

    def record(self, kind: str, step: str | None = None, at: datetime | None = None, **detail: Any) -> None:
        """Append to the timeline (trimmed to the limit, if any)."""
        if kind not in RECORD_KINDS:  # `made` does not validate: a kind Record does not know is a bug
            raise ValueError(f"no record kind '{kind}'")
        if not PLAIN_TYPES.issuperset(map(type, detail.values())):
            for key, value in detail.items():  # `to_plain(detail)`, in the dict made for this call
                if type(value) not in PLAIN_TYPES:
                    detail[key] = to_plain(value)
        state = self.state
        timeline = state.timeline
        timeline.append(made(Record, {"at": at or self._clock(), "stage": state.stage, "kind": kind, "step": step,
                                      "detail": detail}))
        state.recorded += 1
        if self.timeline_limit and len(timeline) > self.timeline_limit:
            del timeline[: len(timeline) - self.timeline_limit]

    def can_take(self, name: str) -> bool:
        """Whether the stage the event lands in can take event `name`: a fact update, a
        transition, a task's completion, a wait of its playbook. That stage is the next one while
        a transition is in progress: the customer is leaving this one."""
        if not self.between_stages:
            return self._could_take(name)
        state = self.state
        if name == "task.completed" and \
                (state.open_tasks or (self.task_entities and any(t.is_open for t in state.tasks))):
            return True  # `check` has made sure that the task is open
        stage = state.next_stage or state.stage
        spec = self.lifecycle.stages.get(stage)
        if spec is not None and spec.terminal:  # entering it ends the lifecycle: no transition
            return name in _taken_everywhere(self.lifecycle)
        return name in _taken_in(self.lifecycle, stage) or self._may_wait_for(name)

    def _may_wait_for(self, name: str) -> bool:
        """Whether a wait of the stage an event lands in can take `name`: of its pinned playbook
        while it runs; between stages, of the next stage's playbook as the project was when this
        stage entry was pinned (`stage_waits`), or when that is not known, any declared event
        (kept for it, and judged when its playbook is pinned: `pin`)."""
        state = self.state
        if state.next_stage is None and state.stage_done:
            return False  # its playbook has ended (or was skipped): only a transition moves it on
        if state.next_stage is None and self.bundle is not None:
            return name in self.waited_for
        stage = state.next_stage or state.stage
        spec = self.lifecycle.stages.get(stage)
        if spec is not None and (spec.terminal or not spec.playbook):
            return False  # nothing waits there
        waits = self.stage_waits.get(stage) if self.stage_waits is not None else None
        return name in waits if waits is not None else name in declared_events(self.lifecycle)

    def _could_take(self, name: str) -> bool:
        """`can_take` as it was before `between_stages`, for the histories recorded before it."""
        state = self.state
        if name in _taken_in(self.lifecycle, state.next_stage or state.stage):
            return True
        if state.next_stage is None:
            if name in self.waited_for:
                return True
            if name == "task.completed" and \
                    (state.open_tasks or (self.task_entities and any(t.is_open for t in state.tasks))):
                return True
        if state.next_stage is not None or (self.playbook is None and not state.stage_done):
            # Between stages the next playbook is not pinned yet: keep its events for it.
            return name in declared_events(self.lifecycle)
        return False

    def check(self, event: Event, now: datetime | None = None) -> EventReceipt | None:
        """The rejection `event` would get, or None. Changes nothing: fit for an update validator.

        Callers ask `is_duplicate` first: a duplicate is acknowledged, never rejected."""
        def rejected(code: str, reason: str) -> EventReceipt:
            return EventReceipt(status="rejected", code=code, reason=reason, stage=self.state.stage)

        if self.state.ended:
            return rejected("ended", f"the lifecycle has ended ({self.state.ended})")
        bound = size_bound(event.data), size_bound(event.customer or {})
        if None in bound or sum(bound) > EVENT_DATA_BYTES:  # type: ignore[arg-type]
            size = json_size(event.data) + (json_size(event.customer) if event.customer else 2)
            if size > EVENT_DATA_BYTES:
                return rejected("too_large",
                                f"the event's data is {size:,} bytes; at most {EVENT_DATA_BYTES:,} are taken")
        try:
            checked = (check_event(self.lifecycle, event.name, event.data, self.predates),
                       check_customer(self.lifecycle, self.state.customer["id"], event.customer, self.predates))
        except PayloadError as error:
            return rejected("invalid_payload", str(error))
        if self.strict_rules and event.name == "task.completed":
            problem = self._completion_problem(event)
            if problem is not None:
                return problem
        if not self.can_take(event.name):
            moving = self.state.next_stage if self.between_stages else None
            if moving is None:
                return rejected("stage_cannot_take", f"stage '{self.state.stage}' cannot take '{event.name}'")
            return rejected("stage_cannot_take", f"stage '{moving}' cannot take '{event.name}' (the customer is "
                                                 f"moving there from '{self.state.stage}')")
        if self.strict_rules:
            failure = self._rule_failure(event, now, checked)
            if failure:
                return rejected("rule_failed", failure)
        return None

    def _rule_failure(self, event: Event, now: datetime | None = None,
                      checked: tuple[dict[str, Any], dict[str, Any] | None] | None = None) -> str | None:
        """Why the lifecycle's own rules (fact updates, transition guards) cannot judge `event`.

        An event whose rules fail is refused, with the reason, rather than taken with a fact
        left stale or a guard counted as false: the sender hears of it, and an operator fixes
        the rule (or the data) and sends it again. The rules see the state as `_admit` will
        make it (profile merged, facts updated); the updates are kept for `_admit`. `checked`:
        the payload and profile as `check` just validated them."""
        now = now or self._clock()
        try:
            normalized = self._normalized(event, now, checked)
        except PayloadError:
            return None  # reported as invalid_payload
        state = self.state
        customer, facts = state.customer, state.facts
        if normalized.customer:
            state.customer = {**customer, **{k: v for k, v in normalized.customer.items() if k != "id"}}
        try:
            try:
                updated = self._updated_facts(normalized, now)
            except ExpressionError as error:
                return f"a fact update of '{event.name}' failed: {error}"
            if updated:
                state.facts = {**facts, **updated}
            guards = {}
            for transition in self._candidate_transitions(normalized):
                try:
                    value = evaluate_in(transition.when, self._scope(normalized, now, transition.when))
                except ExpressionError as error:
                    return f"the guard of the transition to '{transition.to}' failed: {error}"
                guards[id(transition)] = value is True
        finally:
            if state.customer is not customer or state.facts is not facts:
                state.assign(customer=customer, facts=facts)
        self._checked = (event, now, normalized, updated, guards)
        return None

    def _candidate_transitions(self, event: Event) -> list[Any]:
        stage = self.state.next_stage or self.state.stage
        if self.lifecycle.stages[stage].terminal:
            return []
        return [t for t in self.lifecycle.transitions
                if t.on == event.name and t.when is not None and t.applies_in(stage)]

    # ------------------------------------------------------------ tasks (issue 12: task entities)

    def _completion_problem(self, event: Event) -> EventReceipt | None:
        """Why a `task.completed` cannot be taken: an unknown or closed task, an outcome or a
        field its task does not declare; None when it can."""
        ref = str(event.data.get("task"))
        if self.task_entities and tasks.find(self.state, ref) is not None:
            try:
                tasks.checked_completion(self.state, event.data, self.predates)
            except tasks.TaskProblem as problem:
                return EventReceipt(status="rejected", code=problem.code, reason=problem.message,
                                    field=problem.field, stage=self.state.stage)
            return None
        if self._task_is_open(ref):  # a task of a lifecycle from before task entities
            return None
        return EventReceipt(status="rejected", code="unknown_task", field="task", stage=self.state.stage,
                            reason=f"no open task '{ref}' in stage '{self.state.stage}'")

    def _complete_task(self, event: Event, now: datetime) -> None:
        entity = tasks.find(self.state, str(event.data.get("task")))
        if entity is None or not entity.is_open:
            return
        try:
            _, fields = tasks.checked_completion(self.state, event.data, self.predates)
        except tasks.TaskProblem:  # only replaying a history from before task entities
            fields = event.data.get("fields") or {}
        tasks.complete(self.state, entity, event.data.get("outcome"), fields, now, str(event.data.get("by") or ""))

    def check_task_command(self, order: TaskCommand, now: datetime | None = None) -> EventReceipt | None:
        """The rejection a reassign, snooze or cancel would get, or None. Changes nothing."""
        if self.state.ended:
            return EventReceipt(status="rejected", code="ended", reason=f"the lifecycle has ended ({self.state.ended})",
                                stage=self.state.stage)
        try:
            tasks.checked_command(self.state, order, now or self._clock())
        except tasks.TaskProblem as problem:
            return EventReceipt(status="rejected", code=problem.code, reason=problem.message, field=problem.field,
                                stage=self.state.stage)
        return None

    def task_command(self, order: TaskCommand, now: datetime) -> TaskEntity | EventReceipt:
        """Reassign, snooze or cancel a task: the task as it is now, or the rejection. A command
        with an idempotency key seen before changes nothing and answers the task as it is."""
        if order.idempotency_key and order.idempotency_key in self.state.seen_keys:
            found = tasks.find(self.state, order.task)
            if found is not None:
                return found
        rejection = self.check_task_command(order, now)
        if rejection is not None:
            return rejection
        entity = tasks.command(self.state, order, now)
        if order.idempotency_key:
            self.state.seen_keys.append(order.idempotency_key)
            del self.state.seen_keys[:-SEEN_KEYS_KEPT]
        detail = {"task": entity.id, "action": order.action, "by": order.by}
        if order.action == "reassign":
            detail["assignee"] = entity.assignee
        if order.until is not None:
            detail["due_at"] = entity.due_at.isoformat() if entity.due_at else None
        if order.reason:
            detail["reason"] = order.reason
        self.record("task_changed", entity.step, at=now, **detail)
        return entity

    def _task_is_open(self, task: str) -> bool:
        pending = self.state.pending
        # A lifecycle from before `open_tasks` was kept knows its awaited task from `pending`.
        return task in self.state.open_tasks or (pending is not None and pending.task == task)

    def is_duplicate(self, event: Event) -> bool:
        return bool(event.idempotency_key) and event.idempotency_key in self.state.seen_keys

    def start(self, event: Event, now: datetime) -> EventReceipt:
        """Take the event that starts the lifecycle and enter the initial stage with it."""
        spec = self.lifecycle.events.get(event.name)
        if spec is None or not spec.starts_lifecycle:
            return EventReceipt(status="rejected", code="not_a_start_event",
                                reason=f"'{event.name}' does not start a lifecycle")
        admitted = self._admit(event, now)
        if isinstance(admitted, EventReceipt):
            return admitted
        self.enter(self.lifecycle.initial_stage, admitted, now)
        return built(EventReceipt, status="accepted", stage=self.state.stage)

    def receive(self, event: Event, now: datetime) -> EventReceipt:
        """Take an event: profile merge, fact updates, then a transition or the stage's inbox."""
        admitted = self._admit(event, now)
        if isinstance(admitted, EventReceipt):
            return admitted
        if admitted.name == "task.completed":
            self._complete_task(admitted, now)
        target = self._transition_for(admitted, now)
        if target is not None:
            # Events before the transition belong to the stage it leaves (or was moving to).
            self._drop_unread(f"the customer moved to '{target}' before a wait took it", now)
            self.state.assign(next_stage=target, next_event=admitted)
            return built(EventReceipt, status="accepted", stage=self.state.stage, transition=target)
        if admitted.name == "task.completed" and admitted.data.get("task") in self.state.open_tasks:
            self.state.open_tasks.remove(admitted.data["task"])
        if self.between_stages:
            waited = self._may_wait_for(admitted.name)
        else:
            waited = self.playbook is None or admitted.name in self.waited_for
        if waited:
            self._keep(admitted, now)  # others (fact updates only) need not be kept
        return built(EventReceipt, status="accepted", stage=self.state.stage)

    def _drop_unread(self, why: str, now: datetime | None = None,
                     keep: Callable[[Event], bool] = lambda event: False) -> None:
        """Empty the inbox but for the events `keep` wants. An event dropped unread whose only
        effect was to wait there (no fact update, no consent, no task completed) is recorded,
        with `why`: an accepted event is never lost silently. (Before `between_stages`: emptied.)"""
        inbox = self.state.inbox
        if not self.between_stages:
            inbox.clear()
            return
        kept = []
        for event in inbox:
            if keep(event):
                kept.append(event)
            elif event.name not in _taken_everywhere(self.lifecycle) and event.name != "task.completed":
                key = {"key": event.idempotency_key} if event.idempotency_key else {}
                self.record("failed", None, at=now, event=event.name, error=f"dropped: {why}", **key)
        inbox[:] = kept

    def _keep(self, event: Event, now: datetime) -> None:
        """Put an event in the inbox, keeping at most INBOX_PER_EVENT of one name (the newest)."""
        inbox = self.state.inbox
        inbox.append(event)
        same = [index for index, queued in enumerate(inbox) if queued.name == event.name]
        if len(same) > INBOX_PER_EVENT and self.strict_rules:
            dropped = inbox.pop(same[0])
            self.record("failed", None, at=now, event=dropped.name,
                        error=f"dropped: more than {INBOX_PER_EVENT} '{dropped.name}' events waiting")

    def _admit(self, event: Event, now: datetime) -> Event | EventReceipt:
        """Dedupe and check an event, then apply what every event does: profile and facts."""
        if self.is_duplicate(event):
            return EventReceipt(status="duplicate", stage=self.state.stage)
        rejection = self.check(event, now)
        if rejection:
            return rejection
        checked, self._checked = self._checked, None
        reused = checked is not None and checked[0] is event and checked[1] == now
        event, updated = (checked[2], checked[3]) if reused else (self._normalized(event, now), None)
        self._guards = checked[4] if reused else {}
        if event.idempotency_key:
            self.state.seen_keys.append(event.idempotency_key)
            del self.state.seen_keys[:-SEEN_KEYS_KEPT]
        if event.customer:
            self.state.customer.update({k: v for k, v in event.customer.items() if k != "id"})
        self.record("event", at=now, event=event.name, data=bounded(event.data))
        if updated is not None:
            self.state.facts.update(updated)  # computed by `check` on this very state
        else:
            self._apply_updates(event, now)
        # The contact policy: consent and opt-out at once, whatever the stage does; cap marks.
        change = policy.note_event(policy.policy_of(self.lifecycle), self.state.contact, self.state.customer,
                                   self.lifecycle.channels, event.name, event.data, now)
        if change:
            self.record("consent", None, at=now, event=event.name, change=change)
        return event

    def _normalized(self, event: Event, now: datetime,
                    checked: tuple[dict[str, Any], dict[str, Any] | None] | None = None) -> Event:
        """The event as the lifecycle keeps it: payload and profile checked (unless `checked`
        gives them so), a time of its own. Raises PayloadError."""
        if checked is None:
            checked = (check_event(self.lifecycle, event.name, event.data, self.predates),
                       check_customer(self.lifecycle, self.state.customer["id"], event.customer, self.predates))
        return made(Event, {"customer_id": event.customer_id, "name": event.name, "data": checked[0],
                            "idempotency_key": event.idempotency_key, "occurred_at": event.occurred_at or now,
                            "customer": checked[1]})

    def _scope(self, event: Event, now: datetime, source: str | tuple[str, ...]) -> Scope:
        return Scope(self.lifecycle, self.state, event, now, source, with_vars=False)

    def _updated_facts(self, event: Event, now: datetime) -> dict[str, Any]:
        """The new values of the facts `event` updates; raises ExpressionError naming the fact."""
        spec = self.lifecycle.events.get(event.name)
        if spec is None or not spec.updates:
            return {}
        # Every update sees the facts as they were before (none is applied until all are computed).
        scope = self._scope(event, now, tuple(spec.updates.values()))
        updated = {}
        for fact, source in spec.updates.items():
            try:
                updated[fact] = to_plain(evaluate_in(source, scope))
            except ExpressionError as error:
                raise ExpressionError(f"fact '{fact}': {error}") from None
        return updated

    def _apply_updates(self, event: Event, now: datetime) -> None:
        spec = self.lifecycle.events.get(event.name)
        if spec is None:
            return
        # The names are made before the first update is applied: each sees the facts as they were.
        names = self._scope(event, now, tuple(spec.updates.values())).names()
        for fact, source in spec.updates.items():
            try:
                self.state.facts[fact] = to_plain(evaluate(source, names))
            except ExpressionError as error:  # only before strict rules: `check` refuses it now
                self.record("failed", None, at=now, fact=fact, error=str(error))

    def _transition_for(self, event: Event, now: datetime) -> str | None:
        stage = self.state.next_stage or self.state.stage
        if self.lifecycle.stages[stage].terminal:
            return None
        for transition in self.lifecycle.transitions:
            if transition.on != event.name or not transition.applies_in(stage):
                continue
            if transition.when is None:
                return transition.to
            if id(transition) in self._guards:  # judged by `check` on this very state
                if self._guards[id(transition)]:
                    return transition.to
                continue
            try:
                if evaluate_in(transition.when, self._scope(event, now, transition.when)) is True:
                    return transition.to
            except ExpressionError as error:
                self.record("failed", None, at=now, transition=f"{stage} -> {transition.to}",
                            error=str(error))
        return None

    # ------------------------------------------------------------ the run loop

    def enter(self, stage: str, event: Event | None, now: datetime) -> None:
        """Move to `stage` now; the next `run` iteration runs its playbook."""
        state = self.state
        state.assign(stage=stage, stage_since=now, stage_entry=state.stage_entry + 1, stage_event=event,
                     stage_done=False, stage_version="", next_stage=None, next_event=None, vars={},
                     resume=None, incident=None, pending=None, open_tasks=[])
        self.bundle = None
        self.playbook = None
        self.waited_for = frozenset()
        self.record("stage_entered", None, at=now, event=event.name if event else None)

    async def run(self, runtime: Runtime, pause: Callable[[], bool] = lambda: False,
                  in_stage: bool = True) -> str | None:
        """Run stages until the lifecycle ends (its outcome) or `pause()` asks to stop (None).

        `pause` is asked at stage boundaries, while idle and inside every wait of a stage (which
        then records where it is in `state.resume`; not when `in_stage` is false): the whole
        lifecycle is in `state` and can continue in a new run (Temporal's continue-as-new).
        """
        self._suspend = pause if in_stage else (lambda: False)
        self._clock = runtime.now
        runtime = ScheduledRuntime(runtime, self.next_schedule, self._fire_schedule)  # type: ignore[assignment]
        state = self.state
        while state.ended is None:
            if self.lifecycle.stages[state.stage].terminal:
                self._finish(state.stage)
                break
            if not state.stage_done:
                if pause() or await self._run_stage(runtime, pause):
                    return None
                continue
            if state.next_stage is None:
                await runtime.wait(lambda: state.next_stage is not None or pause(), None)
                if state.next_stage is None:
                    return None
            self.enter(state.next_stage, state.next_event, runtime.now())
        return state.ended

    async def _run_stage(self, runtime: Runtime, pause: Callable[[], bool]) -> bool:
        """Run (or go on with) the stage's playbook; True when it stopped to continue in a new run."""
        state = self.state
        if self.bundle is None:
            try:
                self.pin(await runtime.stage_bundle(state.stage))
            except StageLoadError as error:
                return await self._hold_unloaded(runtime, pause, str(error))
            except Exception as error:  # a bug: the customer is held where an operator sees it
                return await self._hold_unloaded(runtime, pause, f"{type(error).__name__}: {error}", "internal")
        assert self.bundle is not None
        run = StageRun(self.lifecycle, self.bundle, state, runtime, self.record, suspend=self._suspend)
        try:
            if self.bundle.playbook is not None:
                await run.run()
        except Suspended:
            return True
        except Released as released:
            self._release(released.bundle)
            return False
        except GotoStage as goto:
            # The next stage sees the event this one was working with, as after a transition;
            # events still unread here belonged to this stage.
            self._drop_unread(f"a goto left the stage for '{goto.stage}' before a wait took it")
            state.assign(next_stage=goto.stage, next_event=run.event)
        except EndLifecycle as end:
            self._finish(end.outcome)
        except Interrupted:
            self._abandon_incident()
        self._stage_finished()
        return False

    def _stage_finished(self) -> None:
        self.state.assign(stage_done=True, resume=None, pending=None)

    # ------------------------------------------------------------ schedules

    def next_schedule(self) -> Due | None:
        """The next moment a schedule sends its event (engine.schedules), or None."""
        return next_due(self.lifecycle, self.state, self._clock())

    def _fire_schedule(self, due: Due) -> None:
        """Send a schedule's event now, through the normal event path; a stage that cannot take
        it leaves it recorded, not taken. It fires once whatever came of it."""
        now = self._clock()
        self.state.schedules[due.name] = due.at
        self.record("schedule", None, at=now, event=due.name, moment=due.at.isoformat())
        record = self.state.timeline[-1]
        event = Event(customer_id=self.state.customer["id"], name=due.name, idempotency_key=due.key,
                      occurred_at=due.at)
        try:
            receipt = self.receive(event, now)
        except Exception as error:  # a bug: recorded, never a failed workflow task
            receipt = EventReceipt(status="rejected", reason=f"{type(error).__name__}: {error}"[:500])
        if receipt.status != "accepted":
            record.detail.update(taken=False, reason=receipt.reason or receipt.status)

    # ------------------------------------------------------------ incidents

    async def _incident(self, runtime: Runtime, kind: IncidentKind, error: str) -> None:
        """Hold the whole stage entry (no step): record it once, and tell an operator."""
        state = self.state
        if state.incident is None or state.incident.error != error[:2000]:
            state.incident = Incident(kind=kind, stage=state.stage, error=error[:2000], since=self._clock())
            self.record("incident", None, failure=kind, error=state.incident.error)
            base = f"{state.lifecycle_id}/{state.stage}/{state.stage_entry}"
            await runtime.act([incident_action(state, state.incident, base)])

    async def _hold_unloaded(self, runtime: Runtime, pause: Callable[[], bool], error: str,
                             kind: IncidentKind = "load") -> bool:
        """The stage's playbook does not load: hold until it does, or an operator retries or skips."""
        state = self.state
        await self._incident(runtime, kind, error)
        state.pending = None
        released = lambda: state.next_stage is not None or self._suspend() or self._released()  # noqa: E731
        fixed = await runtime.hold(state.stage, "", released)
        if state.next_stage is not None:
            self._abandon_incident()
            self._stage_finished()
        elif fixed is not None:
            self._resolved("retry", f"the playbook loads again (version {fixed.version})")
            self.pin(fixed)
        elif self._released():
            assert state.incident is not None
            action = state.incident.release or "retry"
            self._resolved(action, state.incident.released_by)
            if action == "skip":
                if self.between_stages:
                    self._drop_unread("the stage's playbook was skipped")
                self._stage_finished()
        else:
            return True
        return False

    def _released(self) -> bool:
        return self.state.incident is not None and self.state.incident.release is not None

    def _release(self, fixed: StageBundle | None) -> None:
        """An operator or a fix released the held step: go on from it (retry) or after it (skip)."""
        state = self.state
        incident, resume = state.incident, state.resume
        assert incident is not None and incident.release is not None and resume is not None
        state.resume = resume.model_copy(update={"mode": incident.release})
        self._resolved(incident.release, incident.released_by)
        if fixed is not None:
            self.pin(fixed)
        elif incident.release == "retry":
            self.bundle = None  # a retry runs the playbook as it is on disk now

    def _resolved(self, action: str, by: str) -> None:
        incident = self.state.incident
        assert incident is not None
        self.record("resolved", incident.step, action=action, by=by, failure=incident.kind)
        self.state.incident = None

    def _abandon_incident(self) -> None:
        if self.state.incident is not None:
            self._resolved("left", "a transition to another stage")

    def release_incident(self, action: str, by: str) -> Incident | None:
        """An operator's retry or skip of the current incident; None when there is none."""
        incident = self.state.incident
        if incident is None or self.state.ended:
            return None
        incident.release = action  # type: ignore[assignment]
        incident.released_by = by or "an operator"
        return incident

    def restore(self, bundle: StageBundle) -> None:
        """A new run (continue-as-new) takes over the bundle its stage entry pinned, as it was."""
        if bundle.lifecycle is not None:
            self.lifecycle = bundle.lifecycle
        self.bundle = bundle
        self.playbook = bundle.playbook
        self.waited_for = events_waited_for(bundle.playbook)
        if bundle.waits is not None:
            self.stage_waits = bundle.waits

    def pin(self, bundle: StageBundle) -> None:
        """Pin the playbook version this stage entry runs with (vars start anew only on entry)."""
        fresh = self.state.resume is None and self.state.stage_version == ""
        self.restore(bundle)
        # Events kept while its playbook was not pinned (a transition in progress, a load held):
        # those it does not wait for are recorded, not left unread in the inbox.
        if self.between_stages and self.state.inbox:
            version = f" (version {bundle.version})" if bundle.version else ""
            self._drop_unread(f"stage '{self.state.stage}'{version} does not wait for it",
                              keep=lambda event: event.name in self.waited_for)
        if bundle.playbook is not None and fresh:
            self.state.assign(stage_version=bundle.version, vars=dict(bundle.playbook.vars))
        else:
            self.state.stage_version = bundle.version

    def _finish(self, outcome: str) -> None:
        self.state.assign(ended=outcome, pending=None)
        self.record("ended", None, outcome=outcome)
