"""A profile's contact fields are checked against the lifecycle's channels: the contact policy
reads a consent that is not `true` as no consent, so `consent: {sms: "yes"}` silently sent the
message elsewhere (or made it a task), and a `preferred_channel` the lifecycle does not have was
silently ignored. A release before that took them, and its histories replay with
`LifecycleMachine.predates`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.events import PROFILE_VALUES_CHECKED, PayloadError, check_customer
from engine.lifecycle import LifecycleMachine
from engine.loader import load_project
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event
from workspace import in_memory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
BUNDLED = load_project(Path(__file__).parent.parent / "playbooks" / "lifecycle.yaml")

LIFECYCLE = """
lifecycle: shop
channels:
  email: {contact: email}
  sms: {contact: phone}
roles:
  staff: Answers the customers.
events:
  order.placed: {starts_lifecycle: true}
  visit.made: {updates: {visits: facts.visits + 1}}
facts:
  visits: {type: int, initial: 0}
initial_stage: sale
stages:
  sale: {playbook: sale}
transitions: []
"""

SALE = """
playbook: sale
steps:
  - kind: send
    id: welcome
    template: welcome
    category: service
"""


@pytest.mark.parametrize("profile", [
    {"preferred_channel": "sms"},
    {"consent": {"email": True, "sms": False}},
    {"consent": {"email": True, "marketing": False, "survey": {"sms": False, "email": True}}},
    {"consent": {}},
    {"preferred_channel": None, "consent": None},
])
def test_channels_and_categories_with_true_or_false_are_taken(profile):
    assert check_customer(BUNDLED.lifecycle, "c-1", profile) == profile


@pytest.mark.parametrize("profile, field, message", [
    ({"preferred_channel": "whatsapp"}, "customer.preferred_channel",
     "unknown channel 'whatsapp' (one of: email, sms, letter)"),
    ({"preferred_channel": "Email"}, "customer.preferred_channel", "(did you mean 'email'?)"),
    ({"consent": {"sms": "yes"}}, "customer.consent.sms", "must be true or false, got 'yes'"),
    ({"consent": {"email": 1}}, "customer.consent.email", "must be true or false, got 1"),
    ({"consent": {"emial": True}}, "customer.consent.emial",
     "'emial' is neither a channel (email, sms, letter) nor a category (transactional, service, survey, "
     "marketing) (did you mean 'email'?)"),
    ({"consent": {"marketing": "no"}}, "customer.consent.marketing",
     "must be true or false or a map of channel to true or false, got 'no'"),
    ({"consent": {"survey": {"fax": True}}}, "customer.consent.survey.fax", "unknown channel 'fax'"),
    ({"consent": {"survey": {"sms": None}}}, "customer.consent.survey.sms", "must be true or false, got None"),
])
def test_a_contact_field_the_policy_would_misread_is_refused_naming_it(profile, field, message):
    with pytest.raises(PayloadError) as error:
        check_customer(BUNDLED.lifecycle, "c-1", profile)
    assert error.value.field == field
    assert message in str(error.value)


def machine() -> LifecycleMachine:
    project = in_memory(LIFECYCLE, {"sale": SALE}, templates={"welcome": "Welcome"})
    return LifecycleMachine.new(project.lifecycle, "c-1", T0)


def placed(**customer) -> Event:
    return Event(customer_id="c-1", name="order.placed", customer={"email": "a@example.com", **customer})


def test_the_lifecycle_refuses_it_with_the_field_and_changes_nothing():
    lifecycle = machine()
    receipt = lifecycle.start(placed(consent={"email": "yes"}), T0)
    assert (receipt.status, receipt.code) == ("rejected", "invalid_payload")
    assert "field 'customer.consent.email' must be true or false" in receipt.reason
    assert lifecycle.state.timeline == []
    assert lifecycle.start(placed(consent={"email": True}), T0).status == "accepted"


def test_a_run_recorded_before_the_change_takes_it_as_it_did():
    lifecycle = machine()
    lifecycle.predates = frozenset({PROFILE_VALUES_CHECKED})  # what the workflow sets when replaying such a run
    assert lifecycle.start(placed(consent={"email": "yes"}, preferred_channel="pigeon"), T0).status == "accepted"


def test_the_simulator_refuses_a_later_event_that_would_have_misdirected_the_message():
    project = in_memory(LIFECYCLE, {"sale": SALE}, templates={"welcome": "Welcome"})
    visits = [Event(customer_id="c-1", name="visit.made", customer={"consent": consent})
              for consent in ({"sms": "yes"}, {"sms": True})]
    timeline = simulate(project, {"id": "c-1", "email": "a@example.com", "consent": {"email": True}},
                        [ScheduledEvent(T0, placed(consent={"email": True}))]
                        + [ScheduledEvent(T0, visit) for visit in visits])
    (_, first), (_, refused), (_, taken) = timeline.receipts
    assert (first.status, refused.code, taken.status) == ("accepted", "invalid_payload", "accepted")
    assert "field 'customer.consent.sms' must be true or false" in refused.reason
    assert timeline.state.customer["consent"] == {"sms": True} and timeline.state.facts["visits"] == 1
