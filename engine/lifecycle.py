"""A customer's lifecycle: events in, stage transitions, and the loop that runs stage playbooks.

`receive` is synchronous and pure apart from the state it owns, so the workflow can call it
from an update handler and the simulator from its event loop; `run` is the long-lived loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.context import expression_names
from engine.events import PayloadError, check_customer, check_event, declared_events
from engine.expressions import ExpressionError, evaluate, is_true, to_plain
from engine.interpreter import EndLifecycle, GotoStage, Interrupted, StageRun
from engine.model import Lifecycle, Playbook, WaitFor
from engine.project import StageBundle
from engine.runtime import Runtime
from engine.state import Event, EventReceipt, LifecycleState, Record
from engine.walk import walk_steps

SEEN_KEYS_KEPT = 1000  # idempotency keys remembered per lifecycle; older ones age out


def lifecycle_id(customer_id: str) -> str:
    """The workflow id of a customer's lifecycle, so an event always finds it."""
    return f"lifecycle/{customer_id}"


def events_waited_for(playbook: Playbook | None) -> frozenset[str]:
    """Events a stage playbook can take in a wait_for, or as a task completion."""
    if playbook is None:
        return frozenset()
    names: set[str] = set()
    for step, _ in walk_steps(playbook.steps):
        if isinstance(step, WaitFor):
            names.update(step.events)
        elif step.kind == "task" and (step.on_done or step.on_overdue):
            names.add("task.completed")
    return frozenset(names)


class LifecycleMachine:
    """The lifecycle of one customer over a LifecycleState that it owns and mutates."""

    def __init__(self, lifecycle: Lifecycle, state: LifecycleState, timeline_limit: int | None = None):
        self.lifecycle = lifecycle
        self.state = state
        self.timeline_limit = timeline_limit
        self.playbook: Playbook | None = None  # the pinned playbook of the running stage
        self.waited_for: frozenset[str] = frozenset()  # its wait_for events, computed once per entry
        self._clock: Callable[[], datetime] = lambda: state.stage_since

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
        self.state.timeline.append(Record(
            at=at or self._clock(), stage=self.state.stage, kind=kind, step=step, detail=to_plain(detail),
        ))
        if self.timeline_limit and len(self.state.timeline) > self.timeline_limit:
            del self.state.timeline[: len(self.state.timeline) - self.timeline_limit]

    def accepts(self) -> set[str]:
        """Events the current stage can take: fact updates, transitions, waits of its playbook."""
        stage = self.state.next_stage or self.state.stage
        names = {name for name, spec in self.lifecycle.events.items() if spec.updates}
        names |= {t.on for t in self.lifecycle.transitions if t.applies_in(stage)}
        if self.state.next_stage is None:
            names |= self.waited_for
        if self.state.next_stage is not None or (self.playbook is None and not self.state.stage_done):
            # Between stages the next playbook is not pinned yet: keep its events for it.
            names |= set(declared_events(self.lifecycle))
        return names

    def check(self, event: Event) -> EventReceipt | None:
        """The rejection `event` would get, or None. Changes nothing: fit for an update validator.

        Callers ask `is_duplicate` first: a duplicate is acknowledged, never rejected."""
        def rejected(code: str, reason: str) -> EventReceipt:
            return EventReceipt(status="rejected", code=code, reason=reason, stage=self.state.stage)

        if self.state.ended:
            return rejected("ended", f"the lifecycle has ended ({self.state.ended})")
        try:
            check_event(self.lifecycle, event.name, event.data)
            check_customer(self.lifecycle, self.state.customer["id"], event.customer)
        except PayloadError as error:
            return rejected("invalid_payload", str(error))
        if event.name not in self.accepts():
            return rejected("stage_cannot_take", f"stage '{self.state.stage}' cannot take '{event.name}'")
        return None

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
        return EventReceipt(status="accepted", stage=self.state.stage)

    def receive(self, event: Event, now: datetime) -> EventReceipt:
        """Take an event: profile merge, fact updates, then a transition or the stage's inbox."""
        admitted = self._admit(event, now)
        if isinstance(admitted, EventReceipt):
            return admitted
        target = self._transition_for(admitted, now)
        if target is not None:
            self.state.next_stage = target
            self.state.next_event = admitted
            self.state.inbox.clear()  # events before the transition belong to the old stage
            return EventReceipt(status="accepted", stage=self.state.stage, transition=target)
        if self.playbook is None or admitted.name in self.waited_for:
            self.state.inbox.append(admitted)  # others (fact updates only) need not be kept
        return EventReceipt(status="accepted", stage=self.state.stage)

    def _admit(self, event: Event, now: datetime) -> Event | EventReceipt:
        """Dedupe and check an event, then apply what every event does: profile and facts."""
        if self.is_duplicate(event):
            return EventReceipt(status="duplicate", stage=self.state.stage)
        rejection = self.check(event)
        if rejection:
            return rejection
        event = event.model_copy(update={
            "data": check_event(self.lifecycle, event.name, event.data),
            "customer": check_customer(self.lifecycle, self.state.customer["id"], event.customer),
            "occurred_at": event.occurred_at or now,
        })
        if event.idempotency_key:
            self.state.seen_keys.append(event.idempotency_key)
            del self.state.seen_keys[:-SEEN_KEYS_KEPT]
        if event.customer:
            self.state.customer.update({k: v for k, v in event.customer.items() if k != "id"})
        self.record("event", at=now, event=event.name, data=event.data)
        self._apply_updates(event, now)
        return event

    def _names(self, event: Event, now: datetime, source: str | None = None) -> dict[str, Any]:
        return expression_names(self.lifecycle, self.state, event, now, with_vars=False, source=source)

    def _apply_updates(self, event: Event, now: datetime) -> None:
        spec = self.lifecycle.events.get(event.name)
        if spec is None:
            return
        names = self._names(event, now)  # every update sees the facts as they were before
        for fact, source in spec.updates.items():
            try:
                self.state.facts[fact] = to_plain(evaluate(source, names))
            except ExpressionError as error:
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
            try:
                if is_true(transition.when, self._names(event, now, transition.when)):
                    return transition.to
            except ExpressionError as error:
                self.record("failed", None, at=now, transition=f"{stage} -> {transition.to}",
                            error=str(error))
        return None

    # ------------------------------------------------------------ the run loop

    def enter(self, stage: str, event: Event | None, now: datetime) -> None:
        """Move to `stage` now; the next `run` iteration runs its playbook."""
        state = self.state
        state.stage = stage
        state.stage_since = now
        state.stage_entry += 1
        state.stage_event = event
        state.stage_done = False
        state.stage_version = ""
        state.next_stage = None
        state.next_event = None
        state.vars = {}
        self.playbook = None
        self.waited_for = frozenset()
        self.record("stage_entered", None, at=now, event=event.name if event else None)

    async def run(self, runtime: Runtime, pause: Callable[[], bool] = lambda: False) -> str | None:
        """Run stages until the lifecycle ends (its outcome) or `pause()` asks to stop (None).

        `pause` is asked only at stage boundaries and while idle, where the whole lifecycle
        is in `state` and can continue in a new run (Temporal's continue-as-new).
        """
        self._clock = runtime.now
        state = self.state
        while state.ended is None:
            if self.lifecycle.stages[state.stage].terminal:
                self._finish(state.stage)
                break
            if not state.stage_done:
                if pause():
                    return None
                await self._run_stage(runtime)
                continue
            if state.next_stage is None:
                await runtime.wait(lambda: state.next_stage is not None or pause(), None)
                if state.next_stage is None:
                    return None
            self.enter(state.next_stage, state.next_event, runtime.now())
        return state.ended

    async def _run_stage(self, runtime: Runtime) -> None:
        state = self.state
        bundle = await runtime.stage_bundle(state.stage)
        self.pin(bundle)
        run = StageRun(self.lifecycle, bundle, state, runtime, self.record)
        try:
            if bundle.playbook is not None:
                await run.run()
        except GotoStage as goto:
            # The next stage sees the event this one was working with, as after a transition;
            # events still unread here belonged to this stage.
            state.next_stage, state.next_event = goto.stage, run.event
            state.inbox.clear()
        except EndLifecycle as end:
            self._finish(end.outcome)
        except Interrupted:
            pass
        state.stage_done = True

    def pin(self, bundle: StageBundle) -> None:
        """Pin the playbook version this stage entry runs with."""
        if bundle.lifecycle is not None:
            self.lifecycle = bundle.lifecycle
        self.playbook = bundle.playbook
        self.waited_for = events_waited_for(bundle.playbook)
        self.state.stage_version = bundle.version
        if bundle.playbook is not None:
            self.state.vars = dict(bundle.playbook.vars)

    def _finish(self, outcome: str) -> None:
        self.state.ended = outcome
        self.state.pending = None
        self.record("ended", None, outcome=outcome)
