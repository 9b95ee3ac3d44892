"""A timestamp sent without its UTC offset is refused, not read as UTC (a clinic's system that
sends local times would have every reminder off by its offset); a release before that took it,
and its histories replay with `LifecycleMachine.predates`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.events import TIMES_NEED_AN_OFFSET, PayloadError, validate_payload
from engine.lifecycle import LifecycleMachine
from engine.model import EventSpec, FieldSpec
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event
from workspace import in_memory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SPEC = EventSpec(payload={"starts_at": FieldSpec(type="timestamp"), "day": FieldSpec(type="date")})

LIFECYCLE = """
lifecycle: clinic
channels:
  email: {contact: email}
roles:
  front_desk: Books the visits.
customer:
  last_visit: timestamp
events:
  visit.booked: {starts_lifecycle: true, payload: {starts_at: timestamp!}}
  visit.moved: {payload: {starts_at: timestamp!}}
initial_stage: booked
stages:
  booked: {playbook: booked}
transitions: []
"""

BOOKED = """
playbook: booked
steps:
  - kind: task
    id: confirm
    role: front_desk
    title: Confirm the visit
    guideline: Call the day before.
    fields: {confirmed_for: timestamp}
  - {kind: wait, id: idle, duration: 300d}
"""


@pytest.mark.parametrize("value", [
    "2026-12-24T10:00:00Z", "2026-12-24T10:00:00+01:00", "2026-12-24T10:00:00.250-05:00",
    "2026-12-24",  # a date: midnight UTC
    datetime(2026, 12, 24, 10, tzinfo=timezone(timedelta(hours=1))),
])
def test_a_timestamp_with_its_offset_or_a_date_is_taken(value):
    assert validate_payload("visit.booked", SPEC, {"starts_at": value})["starts_at"]


@pytest.mark.parametrize("value", [
    "2026-12-24T10:00:00", "2026-12-24 10:00", "2026-12-24T10:00:00.5", datetime(2026, 12, 24, 10),
])
def test_a_timestamp_without_its_offset_is_refused_with_the_fix(value):
    with pytest.raises(PayloadError) as info:
        validate_payload("visit.booked", SPEC, {"starts_at": value})
    assert info.value.field == "starts_at"
    assert str(info.value).startswith("field 'starts_at' must be a timestamp with its UTC offset (Z or +01:00), got '2026-12-24")


def test_a_date_field_takes_a_date_or_a_time_with_its_offset_and_histories_from_before_take_a_naive_one_as_utc():
    assert validate_payload("e", SPEC, {"day": "2026-12-24"}) == {"day": "2026-12-24"}
    assert validate_payload("e", SPEC, {"day": "2026-12-24T10:00:00Z"}) == {"day": "2026-12-24T10:00:00Z"}
    with pytest.raises(PayloadError) as info:
        validate_payload("e", SPEC, {"day": "2026-12-24T10:00:00"})
    assert str(info.value).startswith("field 'day' must be a date (2026-03-10), or a timestamp with its UTC offset")
    before = frozenset({TIMES_NEED_AN_OFFSET})
    assert validate_payload("e", SPEC, {"day": "2026-12-24T10:00:00"}, before) == {"day": "2026-12-24T10:00:00"}
    assert validate_payload("e", SPEC, {"starts_at": "2026-12-24T10:00:00"}, before) == \
        {"starts_at": "2026-12-24T10:00:00"}


def machine() -> LifecycleMachine:
    project = in_memory(LIFECYCLE, {"booked": BOOKED})
    return LifecycleMachine.new(project.lifecycle, "p1", T0)


def booked(starts_at: str, **extra) -> Event:
    return Event(customer_id="p1", name="visit.booked", data={"starts_at": starts_at}, **extra)


def test_the_lifecycle_refuses_a_naive_timestamp_in_the_data_and_in_the_profile_and_changes_nothing():
    lifecycle = machine()
    receipt = lifecycle.start(booked("2026-12-24T10:00:00"), T0)
    assert (receipt.status, receipt.code) == ("rejected", "invalid_payload")
    assert "field 'starts_at' must be a timestamp with its UTC offset" in receipt.reason
    assert lifecycle.state.timeline == []
    receipt = lifecycle.start(booked("2026-12-24T10:00:00Z", customer={"last_visit": "2026-06-01T08:30:00"}), T0)
    assert receipt.code == "invalid_payload" and "field 'customer.last_visit' must be a timestamp with its UTC offset" \
        in receipt.reason
    assert lifecycle.start(booked("2026-12-24T10:00:00+01:00"), T0).status == "accepted"


def test_a_task_field_needs_its_offset_too():
    project = in_memory(LIFECYCLE, {"booked": BOOKED})
    task = "lifecycle/p1/booked/1/confirm"
    events = [ScheduledEvent(T0, booked("2026-12-24T10:00:00Z"))] + [
        ScheduledEvent(T0 + timedelta(hours=hour), Event(customer_id="p1", name="task.completed",
                                                          data={"task": task, "fields": {"confirmed_for": value}}))
        for hour, value in ((1, "2026-12-24T10:00"), (2, "2026-12-24T10:00Z"))]
    timeline = simulate(project, {"id": "p1", "email": "p1@example.com"}, events)
    (_, naive), (_, aware) = timeline.receipts[1:]
    assert (naive.status, naive.field) == ("rejected", "fields.confirmed_for") and "UTC offset" in naive.reason
    assert aware.status == "accepted"
    assert [entity.fields for entity in timeline.state.tasks] == [{"confirmed_for": "2026-12-24T10:00Z"}]


def test_a_run_recorded_before_the_change_takes_a_naive_timestamp_as_utc_as_it_did():
    lifecycle = machine()
    lifecycle.predates = frozenset({TIMES_NEED_AN_OFFSET})  # what the workflow sets when replaying such a run
    assert lifecycle.start(booked("2026-12-24T10:00:00"), T0).status == "accepted"
