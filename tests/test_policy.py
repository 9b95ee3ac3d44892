"""The contact policy through the simulator (the interpreter the workflow runs): consent by
category, quiet hours in the customer's zone, caps across stages, opt-out, business days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from engine.casefile import compare
from engine.model import Lifecycle
from engine.policy import decide
from engine.simulator import ScheduledEvent, simulate
from engine.state import ContactState, Event
from test_interpreter import LIFECYCLE, project

NY = "America/New_York"
# Saturday 2026-03-07 23:30 in New York (EST); clocks go forward the next night at 02:00.
LATE = datetime(2026, 3, 8, 4, 30, tzinfo=timezone.utc)

CONTACT = """
contact:
  timezone: America/New_York
  calendar: US
  requires_consent: [marketing]
  quiet_hours:
    - {channels: [sms], categories: [service, survey, marketing], allowed: "08:00-21:00"}
  caps:
    - {id: marketing_weekly, categories: [marketing], at_most: 1, per: 7d}
    - {id: after_ticket, after: ticket.opened, categories: [survey, marketing], per: 24h, then: defer}
  do_not_contact: [blocked@example.com]
"""

SMS_CUSTOMER = {"id": "c1", "name": "Ada", "phone": "+15550100", "preferred_channel": "sms",
                "consent": {"sms": True, "email": True}, "email": "ada@example.com"}


def lifecycle(contact: str = CONTACT) -> str:
    return LIFECYCLE + contact + """
  # the events the tests send
"""


def at(moment: datetime, name: str, **data) -> ScheduledEvent:
    return ScheduledEvent(moment, Event(customer_id="c1", name=name, data=data))


def placed(moment: datetime = LATE) -> ScheduledEvent:
    return at(moment, "order.placed", promised_delivery="2026-03-20", price=100)


SALE_SMS = """
playbook: sale
steps:
  - {kind: send, id: hello, template: summary, channel: sms, category: service}
  - {kind: wait, id: later, duration: 30d}
"""


def run(sale: str = SALE_SMS, events=(), customer=None, contact: str = CONTACT, delivery: str | None = None,
        **options):
    kwargs = {"sale": sale, "lifecycle": lifecycle(contact)}
    if delivery:
        kwargs["delivery"] = delivery
    return simulate(project(**kwargs), customer or SMS_CUSTOMER, [placed(), *events],
                    until=LATE + timedelta(days=20), **options)


def kinds(timeline, step: str) -> list[str]:
    return [record.kind for record in timeline.records if record.step == step]


# ---------------------------------------------------------------- quiet hours


def test_an_sms_at_night_waits_for_eight_local_on_the_day_clocks_change():
    timeline = run()
    deferred = timeline.of_kind("deferred")[0]
    # 08:00 EDT on 2026-03-08 is 12:00Z (it would be 13:00Z the day before, in EST).
    assert deferred.detail["until"] == "2026-03-08T12:00:00+00:00"
    assert deferred.detail["local"] == "2026-03-08 08:00 America/New_York"
    assert deferred.detail["rule"] == "quiet_hours[0]"
    assert "sms only 08:00-21:00" in deferred.detail["reason"]
    message = timeline.of_kind("message")[0]
    assert message.at == datetime(2026, 3, 8, 12, tzinfo=timezone.utc)
    assert [(action.kind, action.step) for action in timeline.actions] == [("notice", "hello"), ("message", "hello")]


def test_the_same_through_continue_as_new():
    plain, restarted = run(), run(continue_as_new=True)
    assert restarted.runs > 1
    assert [(r.kind, r.step, r.at) for r in restarted.records] == [(r.kind, r.step, r.at) for r in plain.records]


def test_transactional_and_email_go_at_once():
    sale = SALE_SMS.replace("category: service", "category: transactional")
    assert kinds(run(sale), "hello") == ["message"]
    email = dict(SMS_CUSTOMER, preferred_channel="email")
    assert kinds(run(SALE_SMS.replace("channel: sms", "channel: preferred"), customer=email), "hello") == ["message"]


def test_a_deferred_send_tells_operators_why_before_the_message_goes():
    timeline = run()
    notice, message = timeline.actions
    assert notice.kind == "notice" and message.kind == "message"
    assert notice.title == ("Message 'summary' on sms deferred to 2026-03-08 08:00 America/New_York: "
                            f"{timeline.of_kind('deferred')[0].detail['reason']}")
    assert "quiet_hours[0]" in (notice.guideline or "")
    # Its own id, distinct from the message's and naming the moment, so a retry is the same notice.
    assert notice.id == f"{message.id}/deferred@2026-03-08T12:00:00+00:00"
    assert (notice.channel, notice.to, notice.body) == ("sms", None, "")
    assert timeline.steps() == ["hello"]  # a notice is not a step of the playbook
    assert run(continue_as_new=True).actions == timeline.actions  # the wait resumed is not noticed again


def test_a_suppressed_marketing_send_tells_operators_and_sends_nothing():
    sale = SALE_SMS.replace("category: service", "category: marketing")
    timeline = run(sale, customer=dict(SMS_CUSTOMER, consent={"sms": True, "marketing": False}))
    assert kinds(timeline, "hello") == ["suppressed"]
    [notice] = timeline.actions
    assert notice.kind == "notice" and notice.id.endswith("/hello/suppressed")
    reason = timeline.of_kind("suppressed")[0].detail["reason"]
    assert notice.title == f"Message 'summary' suppressed: {reason}"
    assert reason in (notice.guideline or "")
    assert timeline.steps() == []


def test_a_history_from_before_notices_acts_only_on_messages(monkeypatch):
    from engine.simulator import VirtualRuntime
    from engine.steps.send import POLICY_NOTICES

    monkeypatch.setattr(VirtualRuntime, "patched", lambda self, change: change != POLICY_NOTICES)
    timeline = run(events=[at(LATE + timedelta(hours=2), "customer.unsubscribed", reason="STOP reply")])
    assert kinds(timeline, "hello") == ["deferred", "suppressed"]
    assert timeline.actions == []


def test_the_customers_own_zone_wins_over_the_default():
    # 04:30Z is 13:30 in Tokyo: inside the window.
    timeline = run(customer=dict(SMS_CUSTOMER, timezone="Asia/Tokyo"))
    assert kinds(timeline, "hello") == ["message"]


def test_an_opt_out_while_deferred_suppresses_it():
    timeline = run(events=[at(LATE + timedelta(hours=2), "customer.unsubscribed", reason="STOP reply")])
    assert kinds(timeline, "hello") == ["deferred", "suppressed"]
    suppressed = timeline.of_kind("suppressed")[0]
    assert suppressed.detail["reason"] == "opted out (unsubscribed: STOP reply)"
    assert [action.kind for action in timeline.actions] == ["notice", "notice"]  # deferred, then suppressed
    assert timeline.of_kind("consent")[0].detail["change"] == "opted out of every message"


def test_a_transition_while_deferred_interrupts_it():
    timeline = run(events=[at(LATE + timedelta(hours=1), "order.delivered", delivered_at="2026-03-08")])
    assert kinds(timeline, "hello") == ["deferred"]
    assert "hello" not in timeline.steps()
    assert timeline.stages() == ["sale", "delivery"]


def test_consent_withdrawn_for_a_channel_in_a_running_stage_moves_the_next_message():
    sale = """
playbook: sale
steps:
  - {kind: wait, id: first, duration: 1d}
  - {kind: send, id: hello, template: summary, channel: preferred, category: transactional}
  - {kind: wait, id: later, duration: 30d}
"""
    timeline = run(sale, events=[at(LATE + timedelta(hours=1), "consent.changed", channel="sms", granted=False)])
    assert timeline.of_kind("message")[0].detail["channel"] == "email"
    assert timeline.state.customer["consent"]["sms"] is False


# ---------------------------------------------------------------- consent by category


REFERRAL = """
playbook: sale
steps:
  - kind: send
    id: referral
    template: summary
    channel: email
    category: marketing
    otherwise: {role: account_manager, title: Ask in person, guideline: Only if happy.}
  - {kind: wait, id: later, duration: 30d}
"""


def test_marketing_needs_an_explicit_yes_when_the_policy_says_so():
    # Today's profiles ({email: true}) still get what needs no explicit consent ...
    email_only = {"id": "c1", "email": "ada@example.com", "consent": {"email": True}}
    timeline = run(REFERRAL, customer=email_only)
    assert kinds(timeline, "referral") == ["task"]  # the `otherwise` task
    yes = dict(email_only, consent={"email": True, "marketing": True})
    assert kinds(run(REFERRAL, customer=yes), "referral") == ["message"]
    by_channel = dict(email_only, consent={"email": True, "marketing": {"email": False, "sms": True}})
    assert kinds(run(REFERRAL, customer=by_channel), "referral") == ["task"]
    # ... and without a contact policy, channel consent is enough, as before.
    assert kinds(run(REFERRAL, customer=email_only, contact=""), "referral") == ["message"]


def test_consent_changed_for_a_category_takes_effect_for_the_next_send():
    sale = REFERRAL.replace("  - kind: send", "  - {kind: wait, id: first, duration: 1d}\n  - kind: send", 1)
    customer = {"id": "c1", "email": "ada@example.com", "consent": {"email": True}}
    timeline = run(sale, customer=customer,
                   events=[at(LATE + timedelta(hours=1), "consent.changed", category="marketing", granted=True)])
    assert kinds(timeline, "referral") == ["message"]


def test_the_do_not_contact_list_is_checked_before_every_send():
    customer = dict(SMS_CUSTOMER, email="blocked@example.com", preferred_channel="email",
                    consent={"email": True})
    timeline = run(SALE_SMS.replace("channel: sms", "channel: email"), customer=customer)
    assert kinds(timeline, "hello") == ["suppressed"]


# ---------------------------------------------------------------- caps


DELIVERY_MARKETING = """
playbook: delivery
steps:
  - {kind: send, id: offer, template: summary, channel: email, category: marketing}
  - {kind: end, id: done}
"""


def test_a_cap_counts_messages_across_two_stages():
    customer = {"id": "c1", "email": "ada@example.com", "consent": {"email": True, "marketing": True}}
    sale = REFERRAL
    events = [at(LATE + timedelta(days=2), "order.delivered", delivered_at="2026-03-10")]
    timeline = run(sale, events=events, customer=customer, delivery=DELIVERY_MARKETING)
    assert kinds(timeline, "referral") == ["message"]
    assert kinds(timeline, "offer") == ["suppressed"]
    capped = [r for r in timeline.of_kind("suppressed") if r.step == "offer"][0]
    assert capped.detail["rule"] == "marketing_weekly"
    assert capped.detail["reason"] == "at most 1 marketing in 1w"
    # Past the window the same send goes out.
    later = [at(LATE + timedelta(days=8), "order.delivered", delivered_at="2026-03-16")]
    assert kinds(run(sale, events=later, customer=customer, delivery=DELIVERY_MARKETING), "offer") == ["message"]


def test_a_cap_after_an_event_defers_until_it_has_passed():
    customer = {"id": "c1", "email": "ada@example.com", "consent": {"email": True, "marketing": True}}
    ticket = LATE + timedelta(hours=1)
    sale = REFERRAL.replace("  - kind: send", "  - {kind: wait, id: first, duration: 2h}\n  - kind: send", 1)
    timeline = run(sale, customer=customer, events=[at(ticket, "ticket.opened", ticket_id="T-1")])
    deferred = timeline.of_kind("deferred")[0]
    assert deferred.detail["rule"] == "after_ticket"
    assert timeline.of_kind("message")[0].at == ticket + timedelta(hours=24)


def test_the_send_log_forgets_what_no_cap_can_count():
    customer = {"id": "c1", "email": "ada@example.com", "consent": {"email": True, "marketing": True}}
    sale = """
playbook: sale
steps:
  - {kind: send, id: first, template: summary, channel: email, category: transactional}
  - {kind: wait, id: later, duration: 10d}
  - {kind: send, id: second, template: summary, channel: email, category: transactional}
"""
    timeline = run(sale, customer=customer)
    assert [entry.at for entry in timeline.state.contact.sent] == [LATE + timedelta(days=10)]


# ---------------------------------------------------------------- business days


def test_a_task_due_in_business_days_skips_the_weekend_and_a_holiday():
    sale = """
playbook: sale
steps:
  - {kind: task, id: call, role: account_manager, title: Call, guideline: Call them., due: 2 business days}
"""
    # Thursday 2026-07-02 10:00 New York; Friday July 3 is the observed Independence Day.
    thursday = datetime(2026, 7, 2, 14, tzinfo=timezone.utc)
    timeline = simulate(project(sale=sale, lifecycle=lifecycle()), SMS_CUSTOMER, [placed(thursday)])
    assert timeline.of_kind("task")[0].detail["due_at"] == "2026-07-07T14:00:00+00:00"


# ---------------------------------------------------------------- decide, alone


def test_decide_without_a_policy_is_the_old_rule():
    plain = Lifecycle.model_validate(yaml.safe_load(LIFECYCLE))
    decision = decide(plain, SMS_CUSTOMER, ContactState(), "sms", "marketing", LATE)
    assert (decision.action, decision.channel) == ("send", "sms")
    decision = decide(plain, dict(SMS_CUSTOMER, consent={}), ContactState(), "preferred", "service", LATE)
    assert decision.action == "suppress" and decision.no_channel


def test_a_case_file_can_expect_a_deferral():
    timeline = run()
    assert compare({"deferred": {"hello": "08:00 local"}}, timeline) == []
    assert compare({"deferred": {"hello": "09:00 local"}}, timeline) == [
        "deferred.hello: expected deferred to 09:00 local, got deferred to 2026-03-08 08:00 America/New_York"]


# ---------------------------------------------------------------- load-time checks


def test_the_contact_section_is_checked_with_locations(ws):
    ws.lifecycle("templates: templates", """templates: templates
contact:
  timezone: Europe/Berln
  calendar: US-XX
  quiet_hours:
    - {channels: [smss], allowed: "08:00-21:00"}
  caps:
    - {id: weekly, categories: [marketing], channels: [fax], at_most: 2, per: 7d}
    - {id: weekly, after: ticket.openned, per: 24h}
""")
    errors = ws.errors()
    assert [e.split(": ", 1)[1] for e in errors] == [
        "unknown time zone 'Europe/Berln' (an IANA name such as America/New_York or Europe/Berlin)",
        "unknown holiday calendar 'US-XX': 'XX' is not a subdivision of US (AK, AL, AR, AS, AZ, CA, CO, CT, "
        "DC, DE, FL, GA ...)",
        "unknown channel 'smss' (did you mean 'sms'?)",
        "unknown channel 'fax'",
        "cap 'weekly' is defined twice",
        "unknown event 'ticket.openned' (did you mean 'ticket.opened'?)",
    ]
    assert all(e.startswith("p/lifecycle.yaml:") for e in errors)
    line = ws.root.joinpath("p/lifecycle.yaml").read_text().splitlines().index("  timezone: Europe/Berln") + 1
    assert errors[0].startswith(f"p/lifecycle.yaml:{line}:13:")


@pytest.mark.parametrize("contact, message", [
    ("quiet_hours: [{allowed: '21:00-08:00'}]", "the window must open before it closes"),
    ("quiet_hours: [{allowed: '8-21'}]", "'8' is not a clock time"),
    ("caps: [{id: x, categories: [promo], at_most: 1, per: 1d}]", "'promo' is not one of"),
    ("caps: [{id: x, per: 1d}]", "give exactly one of 'at_most'"),
])
def test_malformed_policy_fields(ws, contact, message):
    ws.lifecycle("templates: templates", f"templates: templates\ncontact:\n  {contact}\n")
    errors = ws.errors()
    assert len(errors) == 1 and message in errors[0] and errors[0].startswith("p/lifecycle.yaml:")


def test_business_days_need_a_calendar(ws):
    ws.sale("""\
      - {kind: task, role: account_manager, title: Call, guideline: Call., due: 2 business days}
    """)
    assert ws.errors() == ["p/sale.yaml:3:77: '2 business days' needs a holiday calendar: set contact.calendar "
                           "in the lifecycle file (customers with their own 'calendar' use theirs)"]
    ws.lifecycle("templates: templates", "templates: templates\ncontact: {calendar: US}\n")
    ws.load()


# ---------------------------------------------------------------- versioning


def test_a_history_from_before_the_policy_replays_the_old_rule(monkeypatch):
    """Replaying a history recorded before `contact-policy` (Temporal's patched() is False):
    the message goes out at once on the channel the old rule chose, as it did then."""
    from engine.steps.send import CONTACT_POLICY
    from engine.simulator import VirtualRuntime

    asked: list[str] = []

    def patched(self, change: str) -> bool:
        asked.append(change)
        return change != CONTACT_POLICY

    monkeypatch.setattr(VirtualRuntime, "patched", patched)
    timeline = run()
    assert kinds(timeline, "hello") == ["message"]
    assert timeline.of_kind("message")[0].at == LATE
    email_only = {"id": "c1", "email": "ada@example.com", "consent": {"email": True}}
    assert kinds(run(REFERRAL, customer=email_only), "referral") == ["message"]
    assert CONTACT_POLICY in asked


def test_the_patch_is_asked_only_when_the_policy_changes_something(monkeypatch):
    from engine.simulator import VirtualRuntime

    asked: list[str] = []
    monkeypatch.setattr(VirtualRuntime, "patched", lambda self, change: asked.append(change) or True)
    run(SALE_SMS.replace("category: service", "category: transactional"))
    assert "contact-policy" not in asked


# ---------------------------------------------------------------- bad values from other systems


def test_an_unknown_zone_calendar_or_channel_is_refused_with_the_reason():
    from engine.events import PayloadError, check_customer, check_event

    plain = Lifecycle.model_validate(yaml.safe_load(LIFECYCLE))
    with pytest.raises(PayloadError, match="customer.timezone': unknown time zone 'Mars/Olympus'"):
        check_customer(plain, "c1", {"timezone": "Mars/Olympus"})
    with pytest.raises(PayloadError, match="customer.calendar': unknown holiday calendar 'XX'"):
        check_customer(plain, "c1", {"calendar": "XX"})
    with pytest.raises(PayloadError, match="unknown channel 'fax'"):
        check_event(plain, "consent.changed", {"channel": "fax", "granted": False})
    with pytest.raises(PayloadError, match="'category' must be one of transactional, service, survey, marketing"):
        check_event(plain, "consent.changed", {"category": "promo", "granted": False})
    assert check_customer(plain, "c1", {"timezone": NY, "calendar": "US-NY"}) == {"timezone": NY, "calendar": "US-NY"}


def test_a_roles_calendar_and_business_hours_set_its_tasks_deadline():
    sale = """
playbook: sale
steps:
  - {kind: task, id: call, role: account_manager, title: Call, guideline: Call them., due: 1 business day}
  - {kind: task, id: ticket, role: help_desk_agent, title: Look, guideline: Look., due: 1 business day}
"""
    contact = CONTACT + """  roles:
    account_manager: {calendar: DE-BY, timezone: Europe/Berlin, business_hours: "08:00-17:00"}
"""
    monday = datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    timeline = simulate(project(sale=sale, lifecycle=lifecycle(contact)), SMS_CUSTOMER, [placed(monday)])
    due = {record.step: record.detail["due_at"] for record in timeline.of_kind("task")}
    # Epiphany (Jan 6) is a holiday in Bavaria: due Wednesday at 17:00 Berlin time (16:00Z).
    assert due["call"] == "2026-01-07T16:00:00+00:00"
    # The help desk has no calendar of its own: the customer's (the default, US), same clock time.
    assert due["ticket"] == "2026-01-06T10:00:00+00:00"


def test_a_role_calendar_on_an_unknown_role_is_a_load_error(ws):
    ws.lifecycle("templates: templates", "templates: templates\ncontact:\n  roles:\n"
                                         "    instaler: {calendar: DE, timezone: Europe/Berlni}\n")
    errors = ws.errors()
    assert [e.split(": ", 1)[1] for e in errors] == [
        "unknown role 'instaler' (did you mean 'installer'?)", "unknown time zone 'Europe/Berlni'"]


def test_a_window_on_business_days_waits_over_the_weekend_and_a_holiday():
    contact = """
contact:
  timezone: America/New_York
  calendar: US
  quiet_hours:
    - {channels: [sms], allowed: "09:00-17:00", days: business}
"""
    # Friday 2026-07-03 (Independence Day observed) 12:00 in New York.
    friday = datetime(2026, 7, 3, 16, tzinfo=timezone.utc)
    timeline = simulate(project(sale=SALE_SMS, lifecycle=lifecycle(contact)), SMS_CUSTOMER, [placed(friday)],
                        until=friday + timedelta(days=10))
    assert timeline.of_kind("deferred")[0].detail["local"] == "2026-07-06 09:00 America/New_York"
    assert timeline.of_kind("message")[0].at == datetime(2026, 7, 6, 13, tzinfo=timezone.utc)


def test_a_count_cap_that_defers_waits_until_the_oldest_message_leaves_the_window():
    contact = """
contact:
  caps:
    - {id: two_a_day, at_most: 2, per: 24h, then: defer}
"""
    sale = """
playbook: sale
steps:
  - {kind: send, id: one, template: summary, channel: email}
  - {kind: wait, id: a_bit, duration: 1h}
  - {kind: send, id: two, template: summary, channel: email}
  - {kind: send, id: three, template: summary, channel: email}
"""
    customer = {"id": "c1", "email": "ada@example.com", "consent": {"email": True}}
    timeline = simulate(project(sale=sale, lifecycle=lifecycle(contact)), customer, [placed()])
    sent = {record.step: record.at for record in timeline.of_kind("message")}
    assert sent == {"one": LATE, "two": LATE + timedelta(hours=1), "three": LATE + timedelta(hours=24)}
    assert timeline.of_kind("deferred")[0].detail["rule"] == "two_a_day"


def test_the_do_not_contact_file_is_read_at_load_and_bounded(ws):
    ws.lifecycle("templates: templates", "templates: templates\ncontact:\n  do_not_contact_file: dnc.txt\n")
    ws.write("dnc.txt", "# operators' list\nc-9  # asked by phone\nsomeone@example.com\n\n")
    assert ws.load().lifecycle.contact.do_not_contact == ["c-9", "someone@example.com"]
    ws.write("dnc.txt", "".join(f"c-{n}\n" for n in range(2001)))
    assert "the do-not-contact list has 2,001 entries" in ws.errors()[0]
    (ws.root / "p" / "dnc.txt").unlink()
    assert "cannot read 'dnc.txt'" in ws.errors()[0]
