"""The offline simulator: the same interpreter on a virtual clock, months in milliseconds.

The interpreter awaits `runtime.wait(...)`; here that await hands a WaitRequest straight
back to the driver loop below, which moves the clock to the next event or deadline and
resumes it. No asyncio, no real time: what is previewed is what the workflow runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.events import check_customer
from engine.lifecycle import LifecycleMachine
from engine.project import Project, StageBundle
from engine.state import Action, ActionResult, Event, EventReceipt, LifecycleState, Record


@dataclass
class ScheduledEvent:
    """An event that another system sends at a given (virtual) time."""

    at: datetime
    event: Event


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
        return [ActionResult(status="done") for _ in actions]

    async def stage_bundle(self, stage: str) -> StageBundle:
        return self.project.bundle(stage)


@dataclass
class Timeline:
    """What happened to one simulated customer."""

    state: LifecycleState
    actions: list[Action]
    receipts: list[tuple[ScheduledEvent, EventReceipt]] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    stopped_at: datetime | None = None  # `until`, when a timer or an event lay beyond it

    @property
    def records(self) -> list[Record]:
        return self.state.timeline

    def steps(self) -> list[str]:
        """Step ids of every message and task, in order."""
        return [action.step for action in self.actions]

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
                {"at": item.at.isoformat(), "event": item.event.name, "reason": receipt.reason}
                for item, receipt in self.receipts if receipt.status == "rejected"
            ],
        }


def simulate(project: Project, customer: dict[str, Any], events: list[ScheduledEvent],
             until: datetime | None = None) -> Timeline:
    """Run one customer's lifecycle over `events`; timers fire up to `until` (default: never stop
    while a timer is pending, i.e. until the lifecycle ends or waits only for events)."""
    queue = sorted(events, key=lambda item: item.at)
    if not queue:
        raise ValueError("a simulation needs at least one event: the one that starts the lifecycle")
    first = queue.pop(0)
    runtime = VirtualRuntime(project, first.at)
    machine = LifecycleMachine.new(project.lifecycle, str(customer.get("id", "customer-1")), first.at)
    machine.state.customer.update(check_customer(project.lifecycle, machine.state.customer["id"], customer))
    receipts = [(first, machine.start(first.event, first.at))]
    timeline = Timeline(machine.state, runtime.actions, receipts, runtime.batches)
    if receipts[0][1].status != "accepted":
        return timeline

    runner = machine.run(runtime).__await__()
    request = _resume(runner, None)
    while request is not None:
        if request.ready():
            request = _resume(runner, True)
            continue
        upcoming = queue[0] if queue else None
        if upcoming and (request.until is None or upcoming.at <= request.until) and \
                (until is None or upcoming.at <= until):
            queue.pop(0)
            runtime.clock = max(runtime.clock, upcoming.at)
            receipts.append((upcoming, machine.receive(upcoming.event, runtime.clock)))
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
            receipts.append((leftover, machine.receive(leftover.event, runtime.clock)))
        else:
            timeline.stopped_at = until
    return timeline


def _resume(runner: Generator[WaitRequest, bool, Any], value: bool | None) -> WaitRequest | None:
    try:
        return runner.send(value)
    except StopIteration:
        return None
