"""The pure interpreter and lifecycle machine, through the simulator: no Temporal, no loader."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine.project import Project
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event
from workspace import in_memory

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

LIFECYCLE = """
lifecycle: test
channels:
  email: {contact: email}
  sms: {contact: phone}
roles:
  account_manager: Owns the relationship.
  help_desk_agent: Answers tickets.
events:
  order.placed:
    starts_lifecycle: true
    payload: {promised_delivery: date!, price: number!}
  order.delivered:
    payload: {delivered_at: date!, price_charged: number}
  survey.answered:
    payload: {score: int!}
    updates: {last_score: event.data.score}
  ticket.opened:
    payload: {ticket_id: string!}
    updates: {open_tickets: facts.open_tickets + 1}
  customer.lost:
    payload: {reason: string}
facts:
  open_tickets: {type: int, initial: 0}
  last_score: {type: int}
initial_stage: sale
stages:
  sale: {playbook: sale}
  delivery: {playbook: delivery}
  closed: {terminal: true}
  lost: {terminal: true}
transitions:
  - {from: sale, "on": order.delivered, to: delivery}
  - {from: "*", "on": customer.lost, to: lost}
"""

SALE = """
playbook: sale
steps:
  - {kind: promise, id: promise_date, promise: delivery_date, about: delivery_date,
     expected: event.data.promised_delivery, made_by: account_manager, tolerance: 1d}
  - {kind: promise, id: promise_price, promise: price, about: price, expected: event.data.price,
     made_by: account_manager}
  - {kind: send, id: summary, template: summary}
  - {kind: wait, id: nudge_later, duration: 30d}
  - {kind: send, id: still_waiting, template: summary}
"""

DELIVERY = """
playbook: delivery
vars: {promoter: 9}
steps:
  - kind: check_promise
    id: check_date
    promise: delivery_date
    actual: event.data.delivered_at
    on_broken:
      - {kind: send, id: apology, template: summary}
  - {kind: wait, id: settle, duration: 2d}
  - {kind: send, id: survey, template: summary}
  - kind: wait_for
    id: await_survey
    events: [survey.answered]
    timeout: 7d
    on_timeout:
      - kind: task
        id: call_back
        role: account_manager
        title: Call the customer
        guideline: Ask how it went; listen first.
        due: 2d
        on_overdue:
          - {kind: task, id: escalate, role: help_desk_agent, title: Escalated, guideline: Call today.}
        on_done:
          - {kind: set, id: called, var: called, value: "true"}
  - kind: if
    id: referral_gate
    when: facts.last_score != null && facts.last_score >= vars.promoter && facts.open_tickets == 0
    then:
      - {kind: send, id: referral, template: summary, channel: preferred, category: marketing,
         otherwise: {role: account_manager, title: Ask in person, guideline: Only if happy.}}
    else:
      - {kind: set, id: note_no_referral, fact: open_tickets, value: facts.open_tickets}
  - {kind: end, id: done}
"""

TEMPLATES = {"summary": "Subject: Hello {{ customer.name }}\n\nDelivery by {{ promises.delivery_date.expected }}."}


def project(sale: str = SALE, delivery: str = DELIVERY, lifecycle: str = LIFECYCLE,
            templates: dict[str, str] | None = None) -> Project:
    return in_memory(lifecycle, {"sale": sale, "delivery": delivery}, {**TEMPLATES, **(templates or {})})


CUSTOMER = {"id": "c1", "name": "Ada", "email": "ada@example.com", "phone": "+15550100",
            "preferred_channel": "email", "consent": {"email": True, "sms": True}}


def at(days: float, name: str, key: str | None = None, **data) -> ScheduledEvent:
    return ScheduledEvent(T0 + timedelta(days=days),
                          Event(customer_id="c1", name=name, data=data, idempotency_key=key))


def release(days: float, action: str) -> ScheduledEvent:
    """An operator's retry or skip of the incident the customer is held on."""
    return ScheduledEvent(T0 + timedelta(days=days), release=action)


def placed(**overrides) -> ScheduledEvent:
    return at(0, "order.placed", promised_delivery="2026-03-10", price=100, **overrides)


def delivered(day: int, **data) -> ScheduledEvent:
    return at(day, "order.delivered", delivered_at=(T0 + timedelta(days=day)).date().isoformat(), **data)


def test_happy_path_asks_a_promoter_for_a_referral():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(8), at(11, "survey.answered", score=10)])
    assert timeline.steps() == ["summary", "survey", "referral"]
    assert timeline.stages() == ["sale", "delivery"]
    assert timeline.state.ended == "closed"
    assert timeline.state.promises["delivery_date"].state == "kept"


def test_transition_event_interrupts_a_wait():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(8)])
    assert "still_waiting" not in timeline.steps()  # the 30-day wait was cut short by delivery
    assert timeline.stages()[-1] == "delivery"


def test_wait_runs_its_full_duration_when_nothing_arrives():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(40)])
    still = [a for a in timeline.actions if a.step == "still_waiting"]
    assert len(still) == 1
    message = next(r for r in timeline.records if r.step == "still_waiting")
    assert message.at == T0 + timedelta(days=30)


def test_late_delivery_breaks_the_promise_and_runs_recovery():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(12), at(15, "survey.answered", score=10)])
    assert timeline.state.promises["delivery_date"].state == "broken"
    assert "apology" in timeline.steps()


def test_tolerance_keeps_a_promise_one_day_late():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(10)])  # promised 03-10, came 03-11
    assert timeline.state.promises["delivery_date"].state == "kept"


def test_no_survey_answer_takes_the_timeout_branch_then_escalates():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(8)])
    assert timeline.steps() == ["summary", "survey", "call_back", "escalate"]
    timeout = timeline.of_kind("timeout")
    assert [r.step for r in timeout] == ["await_survey", "call_back"]
    assert timeout[0].at == T0 + timedelta(days=8 + 2 + 7)


def test_completed_task_runs_on_done_instead_of_escalating():
    events = [placed(), delivered(8), at(18, "task.completed", task="call_back", outcome="happy")]
    timeline = simulate(project(), CUSTOMER, events)
    assert "escalate" not in timeline.steps()
    assert any(r.kind == "set" and r.step == "called" for r in timeline.records)


def test_open_ticket_suppresses_the_referral():
    events = [placed(), delivered(8), at(9, "ticket.opened", ticket_id="T-1"), at(11, "survey.answered", score=10)]
    timeline = simulate(project(), CUSTOMER, events)
    assert timeline.state.facts["open_tickets"] == 1
    assert "referral" not in timeline.steps()


def test_without_email_consent_the_message_goes_to_the_fallback_channel():
    customer = {**CUSTOMER, "consent": {"email": False, "sms": True}}
    timeline = simulate(project(), customer, [placed(), delivered(8), at(11, "survey.answered", score=10)])
    assert {a.channel for a in timeline.actions if a.kind == "message"} == {"sms"}
    assert timeline.actions[0].to == "+15550100"


def test_without_any_consent_a_task_replaces_the_referral_message():
    customer = {**CUSTOMER, "consent": {}}
    timeline = simulate(project(), customer, [placed(), delivered(8), at(11, "survey.answered", score=10)])
    referral = [a for a in timeline.actions if a.step == "referral"]
    assert referral and referral[0].kind == "task" and referral[0].role == "account_manager"
    assert [r.step for r in timeline.of_kind("suppressed")] == ["summary", "survey"]


def test_action_ids_are_stable_across_runs_and_unique():
    events = [placed(), delivered(12), at(15, "survey.answered", score=10)]
    first = [a.id for a in simulate(project(), CUSTOMER, events).actions]
    second = [a.id for a in simulate(project(), CUSTOMER, events).actions]
    assert first == second
    assert len(set(first)) == len(first)
    assert first[0] == "lifecycle/c1/sale/1/summary"


def test_duplicate_idempotency_key_is_acknowledged_and_acted_on_once():
    events = [placed(), at(1, "ticket.opened", key="k1", ticket_id="T-1"),
              at(2, "ticket.opened", key="k1", ticket_id="T-1")]
    timeline = simulate(project(), CUSTOMER, events)
    assert [r.status for _, r in timeline.receipts] == ["accepted", "accepted", "duplicate"]
    assert timeline.state.facts["open_tickets"] == 1


def test_event_the_stage_cannot_take_is_rejected_with_the_reason():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(8), delivered(9)])
    receipt = timeline.receipts[2][1]
    assert (receipt.status, receipt.code) == ("rejected", "stage_cannot_take")
    assert receipt.reason == "stage 'delivery' cannot take 'order.delivered'"


def test_bad_payload_is_rejected_and_the_lifecycle_goes_on():
    events = [placed(), at(1, "order.delivered", delivered_at="soon"), delivered(8)]
    timeline = simulate(project(), CUSTOMER, events)
    assert timeline.receipts[1][1].status == "rejected"
    assert "delivered_at" in timeline.receipts[1][1].reason
    assert timeline.stages() == ["sale", "delivery"]


def test_wildcard_transition_ends_the_lifecycle_from_any_stage():
    timeline = simulate(project(), CUSTOMER, [placed(), delivered(8), at(9, "customer.lost", reason="moved")])
    assert timeline.state.ended == "lost"
    assert "survey" not in timeline.steps()


def test_events_after_the_end_are_rejected():
    events = [placed(), at(1, "customer.lost"), at(2, "ticket.opened", ticket_id="T")]
    timeline = simulate(project(), CUSTOMER, events)
    assert timeline.receipts[-1][1].reason == "the lifecycle has ended (lost)"


def test_a_start_event_is_required_first():
    timeline = simulate(project(), CUSTOMER, [at(0, "ticket.opened", ticket_id="T")])
    assert timeline.receipts[0][1].status == "rejected"
    assert timeline.actions == []


def test_wait_until_a_computed_time():
    sale = """
playbook: sale
steps:
  - {kind: wait, id: until_before, until: "timestamp(event.data.promised_delivery) - days(2)"}
  - {kind: send, id: heads_up, template: summary}
"""
    timeline = simulate(project(sale=sale), CUSTOMER, [placed()])
    sent = next(r for r in timeline.records if r.step == "heads_up")
    assert sent.at == datetime(2026, 3, 8, tzinfo=timezone.utc)


def test_goto_moves_to_another_stage_with_its_own_entry_number():
    sale = """
playbook: sale
steps:
  - {kind: send, id: summary, template: summary}
  - {kind: goto, id: skip, stage: delivery}
"""
    delivery = """
playbook: delivery
steps:
  - {kind: send, id: hello, template: summary}
"""
    timeline = simulate(project(sale=sale, delivery=delivery), CUSTOMER, [placed()])
    assert timeline.stages() == ["sale", "delivery"]
    assert [a.id for a in timeline.actions] == ["lifecycle/c1/sale/1/summary", "lifecycle/c1/delivery/2/hello"]


GATED = """
playbook: delivery
steps:
  - kind: if
    id: gate
    when: facts.last_score >= 9
    then: [{kind: send, id: referral, template: summary}]
  - {kind: send, id: after_gate, template: summary}
"""


def test_a_failing_condition_holds_the_customer_instead_of_counting_as_false():
    timeline = simulate(project(delivery=GATED), CUSTOMER, [placed(), delivered(8)])
    assert "referral" not in timeline.steps() and "after_gate" not in timeline.steps()
    incident = timeline.state.incident
    assert (incident.kind, incident.step, incident.stage) == ("expression", "gate", "delivery")
    assert "last_score" in incident.error
    assert timeline.of_kind("incident")[0].step == "gate"
    assert timeline.state.pending.step == "gate"


PAST_DEADLINE = """
playbook: delivery
steps:
  - {kind: wait_for, id: survey_until_promised, events: [survey.answered],
     timeout: promises.delivery_date.expected - now, on_timeout: [{kind: send, id: late, template: summary}]}
"""


def test_a_negative_duration_holds_the_step_and_says_how_to_go_on_at_once():
    timeline = simulate(project(delivery=PAST_DEADLINE), CUSTOMER, [placed(), delivered(12)])
    incident = timeline.state.incident
    assert (incident.kind, incident.step) == ("expression", "survey_until_promised")
    assert incident.error.startswith("the duration is negative (-3d9h): the time it counts to has passed; "
                                     "to go on at once then, write max(<the duration>, duration('0s'))")
    at_once = PAST_DEADLINE.replace("timeout: promises.delivery_date.expected - now",
                                    "timeout: \"max(promises.delivery_date.expected - now, duration('0s'))\"")
    assert "late" in simulate(project(delivery=at_once), CUSTOMER, [placed(), delivered(12)]).steps()


def test_a_retry_after_the_data_is_fixed_runs_the_held_step_again():
    events = [placed(), delivered(8), at(9, "survey.answered", score=10), release(10, "retry")]
    timeline = simulate(project(delivery=GATED), CUSTOMER, events)
    assert timeline.steps()[-2:] == ["referral", "after_gate"]
    assert timeline.state.incident is None
    assert [r.detail["action"] for r in timeline.of_kind("resolved")] == ["retry"]


def test_a_skip_goes_on_after_the_held_step():
    timeline = simulate(project(delivery=GATED), CUSTOMER, [placed(), delivered(8), release(9, "skip")])
    assert timeline.steps()[-1] == "after_gate" and "referral" not in timeline.steps()


def test_a_transition_moves_a_held_customer_on_and_closes_the_incident():
    events = [placed(), delivered(8), at(9, "customer.lost", reason="moved away")]
    timeline = simulate(project(delivery=GATED), CUSTOMER, events)
    assert timeline.state.ended == "lost" and timeline.state.incident is None
    assert timeline.of_kind("resolved")[0].detail["action"] == "left"


def test_a_template_error_at_render_time_holds_the_send():
    templates = {"summary": "Subject: Hi\n\n{{ 10 // facts.open_tickets }}"}
    timeline = simulate(project(templates=templates), CUSTOMER, [placed()])
    assert timeline.steps() == []
    assert (timeline.state.incident.kind, timeline.state.incident.step) == ("template", "summary")
    assert "ZeroDivisionError" in timeline.state.incident.error


def test_a_value_over_its_budget_holds_the_step():
    sale = """
playbook: sale
steps:
  - {kind: set, id: big, var: blob, value: customer.name + customer.name}
  - {kind: send, id: summary, template: summary}
"""
    timeline = simulate(project(sale=sale), {**CUSTOMER, "name": "x" * 40_000}, [placed()])
    assert (timeline.state.incident.kind, timeline.state.incident.step) == ("payload", "big")
    assert "blob" not in timeline.state.vars and timeline.steps() == []


def test_templates_render_customer_and_promises():
    timeline = simulate(project(), CUSTOMER, [placed()])
    message = timeline.actions[0]
    assert message.subject == "Hello Ada"
    assert message.body == "Delivery by 2026-03-10T00:00:00+00:00."


def test_events_waited_for_later_in_the_stage_are_kept_in_the_inbox():
    # An answer that arrives before the wait_for reaches it is not lost.
    events = [placed(), delivered(8), at(9, "survey.answered", score=10)]
    timeline = simulate(project(), CUSTOMER, events)
    assert "referral" in timeline.steps()


def test_simultaneous_effects_are_performed_as_one_batch():
    sale = """
playbook: sale
steps:
  - {kind: send, id: summary, template: summary}
  - {kind: send, id: copy_by_sms, template: summary, channel: sms}
  - {kind: task, id: brief, role: account_manager, title: Brief, guideline: Read the order.}
  - {kind: wait, id: pause, duration: 1d}
  - {kind: send, id: follow_up, template: summary}
"""
    timeline = simulate(project(sale=sale), CUSTOMER, [placed()])
    assert timeline.batches == [["summary", "copy_by_sms", "brief"], ["follow_up"]]
    assert [r.step for r in timeline.records if r.kind in ("message", "task")] == [
        "summary", "copy_by_sms", "brief", "follow_up"]


def test_a_malformed_profile_in_an_event_is_rejected_before_it_can_break_the_lifecycle():
    bad = at(1, "ticket.opened", ticket_id="T-1")
    bad.event.customer = {"consent": "yes please"}
    timeline = simulate(project(), CUSTOMER, [placed(), bad, delivered(8)])
    receipt = timeline.receipts[1][1]
    assert (receipt.status, receipt.reason) == ("rejected", "field 'customer.consent' must be a map, got str")
    assert timeline.stages() == ["sale", "delivery"]


def test_an_event_whose_transition_guard_fails_is_refused_with_the_reason_not_taken_as_false():
    guarded = LIFECYCLE.replace("  - {from: sale, \"on\": order.delivered, to: delivery}",
                                "  - {from: sale, \"on\": order.delivered, to: delivery, when: facts.last_score >= 9}")
    assert guarded != LIFECYCLE
    events = [placed(), delivered(8), at(9, "survey.answered", score=10), delivered(10)]
    timeline = simulate(project(lifecycle=guarded), CUSTOMER, events)
    refused = timeline.receipts[1][1]
    assert (refused.status, refused.code) == ("rejected", "rule_failed")
    assert "transition to 'delivery'" in refused.reason and "last_score" in refused.reason
    assert timeline.receipts[3][1].transition == "delivery"


def test_an_event_whose_fact_update_fails_is_refused_and_changes_nothing():
    dividing = LIFECYCLE.replace("updates: {open_tickets: facts.open_tickets + 1}",
                                 "updates: {open_tickets: 10 / (facts.open_tickets - facts.open_tickets)}")
    assert dividing != LIFECYCLE
    timeline = simulate(project(lifecycle=dividing), CUSTOMER, [placed(), at(1, "ticket.opened", ticket_id="T-1")])
    refused = timeline.receipts[1][1]
    assert (refused.status, refused.code) == ("rejected", "rule_failed")
    assert "open_tickets" in refused.reason
    assert timeline.state.facts["open_tickets"] == 0


def test_a_negative_duration_from_an_expression_holds_the_step_instead_of_not_waiting():
    sale = """
playbook: sale
steps:
  - {kind: wait, id: too_short, duration: "hours(1) - days(1)"}
  - {kind: send, id: summary, template: summary}
"""
    timeline = simulate(project(sale=sale), CUSTOMER, [placed()])
    assert timeline.steps() == []
    incident = timeline.state.incident
    assert (incident.kind, incident.step) == ("expression", "too_short") and "negative" in incident.error
