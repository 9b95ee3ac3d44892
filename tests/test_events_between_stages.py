"""Events sent while a customer moves to another stage, on the pure engine (no Temporal).

A transition does not move the customer at once: the stage it leaves may be inside an activity
(a message on its way), and the stage it enters loads its playbook first. The runtime here makes
both take time, as they do in a workflow, and the test sends events meanwhile. Every event
accepted then is judged by the stage it lands in, and is applied there or recorded, never left
unread (docs/events.md, "Events sent while the customer changes stage").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from engine.events import check_customer
from engine.lifecycle import LifecycleMachine
from engine.project import Project, StageBundle
from engine.simulator import VirtualRuntime, WaitRequest
from engine.state import Action, ActionResult, Event, EventReceipt
from workspace import in_memory

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

LIFECYCLE = """
lifecycle: moves
channels:
  email: {contact: email}
roles:
  account_manager: Owns the relationship.
events:
  order.placed: {starts_lifecycle: true}
  order.delayed: {description: Only the sale stage waits for it.}
  order.delivered: {}
  survey.answered:
    description: Only the delivery stage waits for it.
    payload: {score: int!}
  ticket.opened:
    payload: {ticket_id: string!}
    updates: {open_tickets: facts.open_tickets + 1}
  customer.lost: {}
  order.returned: {description: A transition from the delivery stage only.}
facts:
  open_tickets: {type: int, initial: 0}
initial_stage: sale
stages:
  sale: {playbook: sale}
  delivery: {playbook: delivery}
  closed: {terminal: true}
  lost: {terminal: true}
transitions:
  - {from: sale, "on": order.delivered, to: delivery}
  - {from: "*", "on": customer.lost, to: lost}
  - {from: delivery, "on": order.returned, to: closed}
"""

SALE = """
playbook: sale
steps:
  - {kind: send, id: summary, template: note}
  - kind: wait_for
    id: await_delay
    events: [order.delayed]
    timeout: 30d
    "on":
      order.delayed: [{kind: send, id: delay_notice, template: note}]
"""

DELIVERY = """
playbook: delivery
steps:
  - kind: wait_for
    id: await_survey
    events: [survey.answered]
    timeout: 7d
  - {kind: send, id: thanks, template: note}
"""

CUSTOMER = {"name": "Ada", "email": "ada@example.com", "consent": {"email": True}}


def project() -> Project:
    return in_memory(LIFECYCLE, {"sale": SALE, "delivery": DELIVERY}, {"note": "Subject: Hello\n\nHello."})


class SlowRuntime(VirtualRuntime):
    """The simulator's runtime, where an activity and a stage's load take time: each hands
    control back to the test (as a workflow takes updates while an activity runs)."""

    def __init__(self, project: Project, bundle: Callable[[str], StageBundle]) -> None:
        super().__init__(project, T0)
        self.bundle = bundle
        self.in_flight: str | None = None  # what the lifecycle is in the middle of

    async def act(self, actions: list[Action]) -> list[ActionResult]:
        self.in_flight = "act " + ",".join(action.step for action in actions)
        await self.wait(lambda: True, None)
        self.in_flight = None
        return await super().act(actions)

    async def stage_bundle(self, stage: str) -> StageBundle:
        self.in_flight = f"load {stage}"
        await self.wait(lambda: True, None)
        self.in_flight = None
        return self.bundle(stage)


class Customer:
    """One lifecycle on the pure engine, driven step by step."""

    def __init__(self, bundle: Callable[[str], StageBundle] | None = None, between_stages: bool = True) -> None:
        loaded = project()
        self.runtime = SlowRuntime(loaded, bundle or loaded.bundle)
        self.machine = LifecycleMachine.new(loaded.lifecycle, "c1", T0)
        self.machine.between_stages = between_stages
        self.machine.state.customer.update(check_customer(loaded.lifecycle, "c1", CUSTOMER))
        assert self.machine.start(Event(customer_id="c1", name="order.placed"), T0).status == "accepted"
        self.runner = self.machine.run(self.runtime).__await__()
        self.request: WaitRequest | None = self.runner.send(None)
        self.keys = 0

    def send(self, name: str, **data: Any) -> EventReceipt:
        self.runtime.clock += timedelta(seconds=1)
        self.keys += 1
        event = Event(customer_id="c1", name=name, data=data, idempotency_key=f"k{self.keys}")
        rejection = self.machine.check(event, self.runtime.now())  # what a workflow's update validator asks
        return rejection or self.machine.receive(event, self.runtime.now())

    def until(self, in_flight: str | None) -> None:
        """Go on until the lifecycle is in the middle of `in_flight` (None: waits for an event).
        No wait times out: the clock moves a second a step."""
        while self.request is not None and self.request.ready():  # in flight, or what it waits for came
            if self.runtime.in_flight == in_flight and in_flight is not None:
                return
            self.runtime.clock += timedelta(seconds=1)
            try:
                self.request = self.runner.send(True)
            except StopIteration:
                self.request = None
        assert self.runtime.in_flight == in_flight

    def dropped(self) -> list[tuple[str, str, str]]:
        return [(record.stage, record.detail["event"], record.detail["error"])
                for record in self.machine.state.timeline
                if record.kind == "failed" and str(record.detail.get("error", "")).startswith("dropped")]


def accepted(receipt: EventReceipt) -> bool:
    return receipt.status == "accepted"


def test_an_event_the_next_stage_cannot_take_is_refused_while_the_stage_it_leaves_sends_a_message():
    customer = Customer()
    customer.until("act summary")  # the sale stage's summary is on its way
    assert customer.send("order.delivered").transition == "delivery"
    # The sale stage waits for a delay notice, but the customer is leaving it: the delivery
    # stage cannot take one, as it says a moment later.
    during = customer.send("order.delayed")
    assert (during.status, during.code, during.stage) == ("rejected", "stage_cannot_take", "sale")
    assert during.reason == "stage 'delivery' cannot take 'order.delayed' (the customer is moving there from 'sale')"
    customer.until(None)
    after = customer.send("order.delayed")
    assert (after.status, after.code, after.stage) == ("rejected", "stage_cannot_take", "delivery")
    assert customer.dropped() == []


def test_an_event_the_next_stage_waits_for_is_kept_for_it_and_taken_there():
    customer = Customer()
    customer.until("act summary")
    customer.send("order.delivered")
    assert accepted(customer.send("survey.answered", score=9))  # the sale stage never waits for it
    assert accepted(customer.send("ticket.opened", ticket_id="T1"))  # a fact update: any stage
    customer.until("act thanks")  # the delivery stage took the survey answer
    assert customer.machine.state.facts["open_tickets"] == 1
    assert customer.machine.state.inbox == [] and customer.dropped() == []


def test_while_the_next_stage_loads_it_is_judged_by_the_playbooks_the_lifecycle_last_pinned():
    customer = Customer()
    customer.until("act summary")
    customer.send("order.delivered")
    customer.until("load delivery")
    assert customer.machine.state.stage == "delivery"
    assert customer.send("order.delayed").code == "stage_cannot_take"
    assert accepted(customer.send("survey.answered", score=9))
    customer.until("act thanks")
    assert customer.dropped() == []


def test_without_knowing_the_next_stages_playbook_an_event_is_kept_and_recorded_if_it_does_not_wait_for_it():
    # A bundle pinned by a worker from before StageBundle.waits: the next stage's waits are not known.
    loaded = project()
    customer = Customer(bundle=lambda stage: loaded.bundle(stage).model_copy(update={"waits": None}))
    customer.until("act summary")
    customer.send("order.delivered")
    assert accepted(customer.send("order.delayed"))
    assert accepted(customer.send("survey.answered", score=9))
    customer.until("act thanks")  # the survey answer was taken; the delay notice could not be
    assert customer.dropped() == [
        ("delivery", "order.delayed", "dropped: stage 'delivery' (version v1) does not wait for it")]
    assert customer.machine.state.inbox == []


def test_events_unread_when_the_customer_leaves_a_stage_are_recorded():
    customer = Customer()
    customer.until("act summary")
    assert accepted(customer.send("order.delayed"))  # the sale stage waits for it, after the summary
    customer.send("order.delivered")  # ... but the customer leaves before it gets there
    assert customer.dropped() == [
        ("sale", "order.delayed", "dropped: the customer moved to 'delivery' before a wait took it")]
    failed = customer.machine.state.timeline[-1]
    assert (failed.kind, failed.detail["key"]) == ("failed", "k1")  # the sender's idempotency key


def test_a_transition_from_the_next_stage_replaces_the_move_in_progress():
    customer = Customer()
    customer.until("act summary")
    customer.send("order.delivered")
    assert accepted(customer.send("survey.answered", score=9))  # kept for the delivery stage
    returned = customer.send("order.returned")  # judged by delivery, the stage the customer is moving to
    assert (returned.status, returned.stage, returned.transition) == ("accepted", "sale", "closed")
    assert customer.dropped() == [
        ("sale", "survey.answered", "dropped: the customer moved to 'closed' before a wait took it")]
    customer.until(None)
    assert customer.machine.state.ended == "closed"
    entered = [(r.stage, r.detail["event"]) for r in customer.machine.state.timeline if r.kind == "stage_entered"]
    assert entered == [("sale", "order.placed"), ("closed", "order.returned")]  # delivery never ran


def test_a_customer_on_the_way_to_a_terminal_stage_takes_only_fact_updates():
    customer = Customer()
    customer.until("act summary")
    assert customer.send("customer.lost").transition == "lost"
    late = customer.send("order.delayed")
    assert (late.code, late.reason) == (
        "stage_cannot_take", "stage 'lost' cannot take 'order.delayed' (the customer is moving there from 'sale')")
    assert customer.send("order.delivered").code == "stage_cannot_take"  # no transition out of 'lost'
    assert accepted(customer.send("ticket.opened", ticket_id="T1"))
    customer.until(None)
    assert customer.machine.state.ended == "lost"
    assert customer.machine.state.facts["open_tickets"] == 1


def test_a_stage_whose_playbook_has_ended_takes_no_event_for_a_wait():
    customer = Customer()
    customer.until("act summary")
    customer.send("order.delivered")
    customer.send("survey.answered", score=9)
    customer.until("act thanks")
    customer.until(None)  # the delivery playbook has ended: the customer stays until a transition
    assert customer.machine.state.stage_done
    again = customer.send("survey.answered", score=10)
    assert (again.status, again.code) == ("rejected", "stage_cannot_take")


@pytest.mark.parametrize("between_stages", [False])
def test_histories_from_before_keep_the_old_judgement(between_stages):
    """What `between_stages` off replays (a workflow recorded before `events-between-stages`):
    the event is accepted and, its stage not waiting for it, never applied."""
    customer = Customer(between_stages=between_stages)
    customer.until("act summary")
    customer.send("order.delivered")
    assert accepted(customer.send("order.delayed"))
    assert accepted(customer.send("survey.answered", score=9))
    customer.until(None)
    assert customer.machine.state.stage == "delivery" and customer.dropped() == []
