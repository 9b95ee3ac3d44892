"""The offline simulator: the same interpreter on a virtual clock, months in milliseconds.

The interpreter awaits `runtime.wait(...)`; here that await hands a WaitRequest straight
back to the driver loop below, which moves the clock to the next event or deadline and
resumes it. No asyncio, no real time: what is previewed is what the workflow runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.events import check_customer
from engine.lifecycle import LifecycleMachine
from engine.project import Project, StageBundle
from engine.state import Action, ActionResult, Event, EventReceipt, LifecycleState, Record, TaskCommand


RECURRING_HORIZON = timedelta(days=3653)
"""Where a simulation without `until` stops when a recurring schedule would go on for ever."""


@dataclass
class ScheduledEvent:
    """An event that another system sends at a given (virtual) time, or an operator's
    `release` ("retry" or "skip") of the incident the customer is held on."""

    at: datetime
    event: Event | None = None
    release: str | None = None
    task: TaskCommand | None = None  # a person's reassign, snooze or cancel of a task (engine.tasks)


@dataclass
class WaitRequest:
    ready: Callable[[], bool]
    until: datetime | None


class _Suspend:
    """An awaitable that passes a request up to the driver and returns what it sends back."""

    def __init__(self, request: WaitRequest) -> None:
        self.request = request

    def __await__(self) -> Generator[WaitRequest, bool, bool]:
        return (yield self.request)


_DONE = ActionResult(status="done")


class VirtualRuntime:
    """The Runtime on a virtual clock; every action succeeds and is kept for inspection."""

    def __init__(self, project: Project, start: datetime) -> None:
        self.project = project
        self.clock = start
        self.actions: list[Action] = []
        self.batches: list[list[str]] = []  # step ids per `act` call: one activity each in Temporal

    def now(self) -> datetime:
        return self.clock

    async def wait(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        return await _Suspend(WaitRequest(ready, until))

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        self.actions.extend(actions)
        self.batches.append([action.step for action in actions])
        return [_DONE] * len(actions)  # read, never changed, by what records the results

    async def stage_bundle(self, stage: str) -> StageBundle:
        return self.project.bundle(stage)

    async def hold(self, stage: str, version: str, released: Callable[[], bool]) -> StageBundle | None:
        # The project does not change during a simulation: only a transition moves a held customer.
        await self.wait(released, None)
        return None

    def patched(self, change: str) -> bool:
        return True


@dataclass
class Timeline:
    """What happened to one simulated customer."""

    state: LifecycleState
    actions: list[Action]
    receipts: list[tuple[ScheduledEvent, EventReceipt]] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    runs: int = 1  # more than one when the simulation continued-as-new
    stopped_at: datetime | None = None  # `until`, when a timer or an event lay beyond it

    @property
    def records(self) -> list[Record]:
        return self.state.timeline

    def steps(self) -> list[str]:
        """Step ids of every message and task, in order (not the incidents, the policy's notices nor
        the reminders of tasks)."""
        return [action.step for action in self.actions if action.kind not in ("incident", "notice", "reminder")]

    def stages(self) -> list[str]:
        """Every stage entered, in order."""
        return [record.stage for record in self.records if record.kind == "stage_entered"]

    def of_kind(self, kind: str) -> list[Record]:
        return [record for record in self.records if record.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.state.customer,
            "stage": self.state.stage,
            "ended": self.state.ended,
            "facts": self.state.facts,
            "promises": {k: v.model_dump(mode="json") for k, v in self.state.promises.items()},
            "timeline": [record.model_dump(mode="json") for record in self.records],
            "actions": [action.model_dump(mode="json", exclude_none=True) for action in self.actions],
            "rejected": [
                {"at": item.at.isoformat(), "event": item.event.name if item.event else f"@{item.release}",
                 "reason": receipt.reason}
                for item, receipt in self.receipts if receipt.status == "rejected"
            ],
        }


def simulate(project: Project, customer: dict[str, Any], events: list[ScheduledEvent],
             until: datetime | None = None, continue_as_new: bool = False) -> Timeline:
    """Run one customer's lifecycle over `events`; timers fire up to `until` (default: never stop
    while a timer is pending, i.e. until the lifecycle ends or waits only for events).

    With `continue_as_new`, the lifecycle stops at every new wait and goes on from its state
    after a JSON round trip, in a new machine, as a workflow does after continue-as-new: the
    timeline must be the same as without.
    """
    queue = sorted(events, key=lambda item: item.at)
    if not queue or queue[0].event is None:
        raise ValueError("a simulation needs at least one event: the one that starts the lifecycle")
    first = queue.pop(0)
    assert first.event is not None
    runtime = VirtualRuntime(project, first.at)
    machine = LifecycleMachine.new(project.lifecycle, str(customer.get("id", "customer-1")), first.at)
    machine.state.customer.update(check_customer(project.lifecycle, machine.state.customer["id"], customer))
    receipts = [(first, machine.start(first.event, first.at))]
    timeline = Timeline(machine.state, runtime.actions, receipts, runtime.batches)
    if receipts[0][1].status != "accepted":
        return timeline

    if until is None and any(spec.every for spec in project.lifecycle.schedules.values()):
        until = first.at + RECURRING_HORIZON  # a recurring schedule always has a next moment
    restart = _Restarts(enabled=continue_as_new)
    runner = machine.run(runtime, pause=restart.wanted).__await__()
    request = _resume(runner, None)
    while True:
        if request is None:
            if not restart.pending:
                break
            machine = restart.new_machine(machine)
            timeline.state = machine.state
            timeline.runs += 1
            runner = machine.run(runtime, pause=restart.wanted).__await__()
            request = _resume(runner, None)
            continue
        if request.ready():
            request = _resume(runner, True)
            continue
        if restart.due(machine):
            request = _resume(runner, True)  # it sees `pause()` and stops, as a workflow would
            continue
        upcoming = queue[0] if queue else None
        if upcoming and (request.until is None or upcoming.at <= request.until) and \
                (until is None or upcoming.at <= until):
            queue.pop(0)
            runtime.clock = max(runtime.clock, upcoming.at)
            receipts.append((upcoming, _deliver(machine, upcoming, runtime.clock)))
        elif request.until is not None and (until is None or request.until <= until):
            runtime.clock = max(runtime.clock, request.until)
            request = _resume(runner, False)
        else:
            if request.until is not None or queue:
                timeline.stopped_at = until  # more would happen after `until`
            break  # only events could move it on, and none are left before `until`
    for leftover in queue:
        if until is None or leftover.at <= until:
            runtime.clock = max(runtime.clock, leftover.at)
            receipts.append((leftover, _deliver(machine, leftover, runtime.clock)))
        else:
            timeline.stopped_at = until
    return timeline


def _deliver(machine: LifecycleMachine, item: ScheduledEvent, now: datetime) -> EventReceipt:
    """An event to the machine, or an operator's release of its incident."""
    if item.event is not None:
        return machine.receive(item.event, now)
    if item.task is not None:
        answer = machine.task_command(item.task, now)
        return answer if isinstance(answer, EventReceipt) else EventReceipt(status="accepted", stage=machine.state.stage)
    if machine.release_incident(item.release or "retry", "an operator (scenario)") is None:
        return EventReceipt(status="rejected", code="no_incident", reason="the customer is not held on an incident")
    return EventReceipt(status="accepted", stage=machine.state.stage)


@dataclass
class _Restarts:
    """Continue-as-new at every new wait of a simulation (a test of resuming, not a feature)."""

    enabled: bool
    pending: bool = False
    seen: set[str] = field(default_factory=set)

    def wanted(self) -> bool:
        return self.pending

    def due(self, machine: LifecycleMachine) -> bool:
        if not self.enabled:
            return False
        state = machine.state
        where = f"{state.stage_entry}/{state.stage_done}/{state.resume.model_dump_json() if state.resume else ''}"
        if where in self.seen:
            return False
        self.seen.add(where)
        self.pending = True
        return True

    def new_machine(self, old: LifecycleMachine) -> LifecycleMachine:
        self.pending = False
        state = LifecycleState.model_validate_json(old.state.model_dump_json())
        machine = LifecycleMachine(old.lifecycle, state)
        if old.bundle is not None:
            machine.restore(StageBundle.model_validate_json(old.bundle.model_dump_json()))
        return machine


def _resume(runner: Generator[WaitRequest, bool, Any], value: bool | None) -> WaitRequest | None:
    try:
        return runner.send(value)
    except StopIteration:
        return None
