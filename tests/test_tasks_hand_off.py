"""A task acted on while its hand-off is in flight, through the pure machine: no Temporal.

A help desk may complete (reassign, snooze, cancel) a task the moment the webhook or outbox has
it, before the delivery's result reaches the lifecycle. The runtime here holds every delivery
with a task in it until the test answers it, the way a slow webhook holds the activity.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta

import pytest

from engine import tasks
from engine.events import check_customer
from engine.lifecycle import LifecycleMachine
from engine.simulator import VirtualRuntime, WaitRequest
from engine.state import Action, ActionResult, Event, EventReceipt, TaskCommand, TaskEntity
from engine.steps.task import TASK_AT_HAND_OFF
from test_tasks import CUSTOMER, T0, project

PLAN = "lifecycle/c1/sale/1/plan_install"
CALL = "lifecycle/c1/delivery/2/call"


class Held:
    """A delivery in flight: awaited by the runtime, answered by the test."""

    def __init__(self, actions: list[Action]) -> None:
        self.actions = actions

    def __await__(self) -> Generator[Held, list[ActionResult], list[ActionResult]]:
        return (yield self)


class HoldingRuntime(VirtualRuntime):
    """The simulator's runtime, except that a delivery with a task in it waits for the test."""

    def __init__(self, changes: bool = True) -> None:
        super().__init__(project(), T0)
        self.changes = changes

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        if not any(action.kind == "task" for action in actions):
            return await super().act(actions)
        self.actions.extend(actions)
        return await Held(actions)

    def patched(self, change: str) -> bool:
        return self.changes or change != TASK_AT_HAND_OFF  # False: a history from before the change


class Customer:
    """One customer's lifecycle, driven step by step: each call runs it to its next hold or wait."""

    def __init__(self, changes: bool = True) -> None:
        self.runtime = HoldingRuntime(changes)
        lifecycle = self.runtime.project.lifecycle
        self.machine = LifecycleMachine.new(lifecycle, "c1", T0)
        self.machine.state.customer.update(check_customer(lifecycle, "c1", CUSTOMER))
        assert self.machine.start(Event(customer_id="c1", name="order.placed"), T0).status == "accepted"
        self.runner = self.machine.run(self.runtime).__await__()
        self.request: Held | WaitRequest | None = self.runner.send(None)

    @property
    def state(self):
        return self.machine.state

    def held(self) -> list[str]:
        assert isinstance(self.request, Held), f"no delivery in flight: {self.request}"
        return [action.step for action in self.request.actions]

    def deliver(self, status: str = "done") -> None:
        """The delivery in flight answers: every action `status` (done, failed)."""
        assert isinstance(self.request, Held)
        results = [ActionResult(status=status, detail="" if status == "done" else "webhook answered 500")
                   for _ in self.request.actions]
        self.request = self.runner.send(results)
        self._then(None)

    def waiting(self) -> WaitRequest:
        assert isinstance(self.request, WaitRequest), f"not waiting: {self.request}"
        return self.request

    def complete(self, task: str, days: float, **data) -> EventReceipt:
        event = Event(customer_id="c1", name="task.completed", data={"task": task, **data})
        return self._then(self.machine.receive(event, self._at(days)))

    def command(self, days: float, **order) -> TaskEntity | EventReceipt:
        return self._then(self.machine.task_command(TaskCommand(**order), self._at(days)))

    def to_delivery(self) -> None:
        """Deliver the order (day 1): the `delivery` stage hands off its waited task `call`."""
        self.waiting()
        receipt = self.machine.receive(Event(customer_id="c1", name="order.delivered"), self._at(1))
        assert receipt.transition == "delivery"
        self.request = self.runner.send(True)
        assert self.held() == ["call"]

    def until(self, days: float) -> None:
        """Let time pass to day `days`, timers firing on the way."""
        while isinstance(self.request, WaitRequest) and self.request.until is not None \
                and self.request.until <= T0 + timedelta(days=days):
            self.runtime.clock = self.request.until
            self.request = self.runner.send(False)

    def _at(self, days: float):
        self.runtime.clock = max(self.runtime.clock, T0 + timedelta(days=days))
        return self.runtime.clock

    def _then(self, answer):
        """What the machine answered; a wait that is ready goes on (as Temporal's would)."""
        while isinstance(self.request, WaitRequest) and self.request.ready():
            self.request = self.runner.send(True)
        return answer

    def kinds(self, *wanted: str) -> list[tuple[str, str | None]]:
        return [(record.kind, record.step) for record in self.state.timeline if record.kind in wanted]


def test_a_task_nothing_waits_for_can_be_completed_before_its_delivery_answers():
    customer = Customer()
    assert customer.held() == ["plan_install"]
    assert tasks.find(customer.state, PLAN).status == "open"  # the help desk has its id: so has the lifecycle
    receipt = customer.complete(PLAN, 0.01, outcome="booked", by="sam")
    assert receipt.status == "accepted", receipt
    customer.deliver()
    [plan] = customer.state.tasks
    assert (plan.status, plan.outcome, plan.by) == ("done", "booked", "sam")
    assert customer.state.open_tasks == []  # it was done before the lifecycle heard it was handed off
    assert customer.kinds("event", "task") == [("event", None), ("event", None), ("task", "plan_install")]
    again = customer.complete(PLAN, 0.02)
    assert (again.status, again.code) == ("rejected", "task_closed")  # never applied twice


def test_a_waited_task_completed_in_flight_runs_on_done_once_its_delivery_answers():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    receipt = customer.complete(CALL, 1.01, outcome="reached", fields={"battery_interest": True})
    assert receipt.status == "accepted", receipt
    assert "next" not in customer.state.vars  # on_done runs after the hand-off, as the step is written
    customer.deliver()
    assert customer.state.vars["next"] == "battery_offer"
    assert customer.waiting().until == customer.runtime.clock + timedelta(days=60)  # the step after: idle
    call = tasks.find(customer.state, CALL)
    assert (call.status, call.outcome) == ("done", "reached")
    assert customer.state.inbox == [] and customer.state.open_tasks == []
    customer.until(10)
    assert "escalate" not in [action.step for action in customer.runtime.actions]
    assert customer.kinds("timeout") == []


def test_the_step_id_finds_the_task_in_flight_too():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    assert customer.complete("call", 1.01, outcome="no_answer").status == "accepted"
    customer.deliver()
    assert customer.state.vars["next"] == "call_again"


def test_a_task_cancelled_in_flight_goes_on_after_the_step_without_either_branch():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    cancelled = customer.command(1.01, task=CALL, action="cancel", reason="duplicate")
    assert isinstance(cancelled, TaskEntity) and cancelled.status == "cancelled"
    customer.deliver()
    assert customer.waiting().until == customer.runtime.clock + timedelta(days=60)
    assert ("task_changed", "call") in customer.kinds("task_changed")
    assert "next" not in customer.state.vars and customer.state.open_tasks == []


def test_a_task_snoozed_and_reassigned_in_flight_escalates_at_its_new_due_time():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    new_due = T0 + timedelta(days=8)
    snoozed = customer.command(1.01, task=CALL, action="reassign", assignee="sam", until=new_due)
    assert isinstance(snoozed, TaskEntity)
    customer.deliver()
    assert customer.waiting().until == new_due
    assert customer.state.open_tasks == ["call"]
    customer.until(9)
    assert [record.at for record in customer.state.timeline if record.kind == "timeout"] == [new_due]
    assert tasks.find(customer.state, CALL).assignee == "sam"


def test_a_failed_hand_off_nobody_acted_on_leaves_no_task_and_escalates_when_due_as_before():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    customer.deliver("failed")
    assert tasks.find(customer.state, CALL) is None
    assert ("failed", "call") in customer.kinds("failed")
    refused = customer.complete(CALL, 1.5)
    assert (refused.status, refused.code) == ("rejected", "unknown_task")
    assert customer.waiting().until == T0 + timedelta(days=3)  # due 2d after day 1
    customer.until(3)
    assert customer.held() == ["escalate"]  # on_overdue, as a failed hand-off always escalated


def test_a_failed_hand_off_keeps_a_completion_someone_made_meanwhile_and_on_done_runs():
    customer = Customer()
    customer.deliver()
    customer.to_delivery()
    assert customer.complete(CALL, 1.01, outcome="reached", fields={"battery_interest": False}).status == "accepted"
    customer.deliver("failed")  # e.g. the webhook took the task, then its answer was lost
    call = tasks.find(customer.state, CALL)
    assert call is not None and call.status == "done"
    assert customer.state.vars["next"] == "nothing" and ("failed", "call") in customer.kinds("failed")


def test_a_history_from_before_the_change_refuses_a_completion_in_flight_as_it_did():
    """Replaying a history recorded before TASK_AT_HAND_OFF: the entity is made on the result."""
    customer = Customer(changes=False)
    assert customer.state.tasks == []
    refused = customer.complete(PLAN, 0.01)
    assert (refused.status, refused.code) == ("rejected", "unknown_task")
    customer.deliver()
    assert [task.id for task in customer.state.tasks] == [PLAN]
    assert customer.state.open_tasks == ["plan_install"]


@pytest.mark.parametrize("changes", [True, False])
def test_a_hand_off_nobody_races_leaves_the_same_state_with_or_without_the_change(changes):
    customer = Customer(changes)
    customer.deliver()
    customer.to_delivery()
    customer.deliver()
    state = customer.state.model_dump(mode="json", exclude={"timeline"})
    baseline = Customer(not changes)
    baseline.deliver()
    baseline.to_delivery()
    baseline.deliver()
    assert state == baseline.state.model_dump(mode="json", exclude={"timeline"})
    assert [(r.kind, r.step) for r in customer.state.timeline] == [(r.kind, r.step) for r in baseline.state.timeline]
