"""An `int` field takes an integral number (7.0) as that int, as the published JSON Schema's
`integer` does; a run recorded before that refuses it as it did (`integral-numbers-are-ints`,
tests/histories/previous-release-integral-float-signal-refused.json)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest

from engine.events import INTEGRAL_NUMBERS_ARE_INTS, PayloadError, payload_json_schema, validate_payload
from engine.lifecycle import LifecycleMachine
from engine.model import EventSpec, FieldSpec
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event
from harness import eventually, pending_step
from workspace import in_memory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SPEC = EventSpec(payload={"visits": FieldSpec(type="int", max=100), "fee": FieldSpec(type="number")})

LIFECYCLE = """
lifecycle: gym
channels:
  email: {contact: email}
roles:
  front_desk: Signs members up.
customer:
  age: int
events:
  member.joined: {starts_lifecycle: true, payload: {months: int!}}
facts:
  months: {type: int, initial: 0}
initial_stage: member
stages:
  member: {playbook: member}
transitions: []
"""

MEMBER = """
playbook: member
steps:
  - {kind: set, id: term, fact: months, value: event.data.months + 1}
  - kind: task
    id: welcome
    role: front_desk
    title: Welcome the member
    guideline: Show them around.
    fields: {lockers: int}
  - {kind: wait, id: idle, duration: 300d}
"""


@pytest.mark.parametrize("value, taken", [(7, 7), (7.0, 7), (-0.0, 0), (1e2, 100)])
def test_an_integral_number_is_taken_as_that_int(value, taken):
    checked = validate_payload("e", SPEC, {"visits": value})["visits"]
    assert checked == taken and type(checked) is int
    jsonschema.validate({"visits": value}, payload_json_schema(SPEC))  # the published schema agrees


@pytest.mark.parametrize("value, message", [
    (7.5, "field 'visits' must be an int, got float"),
    (True, "field 'visits' must be an int, got bool"),
    ("7", "field 'visits' must be an int, got str"),
    (float("inf"), "field 'visits' must be an int, got float"),
    (1e300, "field 'visits' is out of range (64-bit integers)"),
    (101.0, "field 'visits' must be at most 100, got 101"),
])
def test_anything_else_is_refused_as_before(value, message):
    with pytest.raises(PayloadError) as info:
        validate_payload("e", SPEC, {"visits": value})
    assert str(info.value) == message and info.value.field == "visits"


def test_a_number_field_keeps_its_float_and_a_run_from_before_refuses_an_integral_one():
    assert type(validate_payload("e", SPEC, {"fee": 7.0})["fee"]) is float
    with pytest.raises(PayloadError, match="field 'visits' must be an int, got float"):
        validate_payload("e", SPEC, {"visits": 7.0}, before=frozenset({INTEGRAL_NUMBERS_ARE_INTS}))


def machine() -> LifecycleMachine:
    return LifecycleMachine.new(in_memory(LIFECYCLE, {"member": MEMBER}).lifecycle, "m1", T0)


def test_the_lifecycle_takes_7_0_as_7_in_the_data_the_profile_and_cel_and_a_run_from_before_does_not():
    lifecycle = machine()
    event = Event(customer_id="m1", name="member.joined", data={"months": 12.0}, customer={"age": 30.0})
    assert lifecycle.start(event, T0).status == "accepted"
    assert type(lifecycle.state.customer["age"]) is int
    old = machine()
    old.predates = frozenset({INTEGRAL_NUMBERS_ARE_INTS})  # as the workflow sets it replaying a run from before
    receipt = old.start(event, T0)
    assert (receipt.status, receipt.code) == ("rejected", "invalid_payload")


def test_a_task_field_takes_an_integral_number_too():
    project = in_memory(LIFECYCLE, {"member": MEMBER})
    task = "lifecycle/m1/member/1/welcome"
    events = [ScheduledEvent(T0, Event(customer_id="m1", name="member.joined", data={"months": 12.0})),
              ScheduledEvent(T0 + timedelta(hours=1), Event(customer_id="m1", name="task.completed",
                                                             data={"task": task, "fields": {"lockers": 2.0}}))]
    timeline = simulate(project, {"id": "m1", "email": "m1@example.com"}, events)
    assert [receipt.status for _, receipt in timeline.receipts] == ["accepted", "accepted"]
    assert timeline.state.facts["months"] == 13 and type(timeline.state.facts["months"]) is int
    assert [entity.fields for entity in timeline.state.tasks] == [{"lockers": 2}]


async def test_a_running_lifecycle_takes_9_0_for_an_int_through_the_client_and_the_workflow(harness):
    customer = f"i-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    receipt = await harness.event(customer, "survey.answered", score=9.0)
    assert receipt.status == "accepted", receipt
    status = await harness.lifecycles.status(customer)
    assert status.facts["last_score"] == 9 and type(status.facts["last_score"]) is int
