"""Every question of docs/analytics.md against a two-customer fixture computed by hand.

c1 (consumer, email), from 2026-03-01: one order (100); a delivery promise kept, a price
promise broken; a task done on time; the recovery task goes overdue and is escalated; scores
5; lost. c2 (enterprise, sms), from 2026-02-01: order B (300); the summary is suppressed; a
task done late; scores 9, is asked for and makes a referral; a second order C (200, sent
twice), a ticket opened, scores 10.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from analytics.metrics import Analyst, Filters
from analytics.store import open_store
from analytics.stream import RecordBatch, StreamRecord

T1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
T2 = datetime(2026, 2, 1, 9, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def r(at: datetime, stage: str, kind: str, step: str | None = None, **detail) -> StreamRecord:
    return StreamRecord(at=at, stage=stage, kind=kind, step=step, detail=detail)


def event(at: datetime, stage: str, name: str, **data) -> StreamRecord:
    return r(at, stage, "event", event=name, data=data)


C1 = [
    event(T1, "S1", "order.placed", order_id="A", price=100),
    r(T1, "S1", "stage_entered", event="order.placed"),
    r(T1, "S1", "promise", "p1", promise="delivery_date", about="delivery_date", made_by="sales_rep"),
    r(T1, "S1", "promise", "p2", promise="price", about="price", made_by="sales_rep"),
    r(T1, "S1", "message", "summary", channel="email", template="summary", category="transactional"),
    r(T1, "S1", "task", "t1", role="account_manager", due_at=(T1 + DAY).isoformat()),
    event(T1 + DAY / 2, "S1", "task.completed", task="t1"),
    event(T1 + 4 * DAY, "S1", "order.delivered"),
    r(T1 + 4 * DAY, "S2", "stage_entered", event="order.delivered"),
    r(T1 + 4 * DAY, "S2", "promise_kept", "c1", promise="delivery_date"),
    r(T1 + 4 * DAY, "S2", "promise_broken", "c2", promise="price"),
    r(T1 + 4 * DAY, "S2", "task", "recover", role="account_manager", due_at=(T1 + 5 * DAY).isoformat()),
    r(T1 + 6 * DAY, "S2", "timeout", "recover", reason="task overdue", role="account_manager"),
    r(T1 + 6 * DAY, "S2", "task", "recover_overdue", role="project_manager", due_at=(T1 + 7 * DAY).isoformat()),
    event(T1 + 10 * DAY, "S2", "survey.answered", score=5),
    r(T1 + 10 * DAY, "lost", "stage_entered", event="customer.lost"),
    r(T1 + 10 * DAY, "lost", "ended", outcome="lost"),
]
C2 = [
    event(T2, "S1", "order.placed", order_id="B", price=300),
    r(T2, "S1", "stage_entered", event="order.placed"),
    r(T2, "S1", "promise", "p1", promise="delivery_date", about="delivery_date", made_by="sales_rep"),
    r(T2, "S1", "suppressed", "summary", template="summary", reason="no channel with consent"),
    event(T2 + 2 * DAY, "S1", "order.delivered"),
    r(T2 + 2 * DAY, "S2", "stage_entered", event="order.delivered"),
    r(T2 + 2 * DAY, "S2", "promise_kept", "c1", promise="delivery_date"),
    r(T2 + 2 * DAY, "S2", "task", "call", role="installer", due_at=(T2 + 4 * DAY).isoformat()),
    event(T2 + 5 * DAY, "S2", "task.completed", task="call"),
    event(T2 + 9 * DAY, "S2", "survey.answered", score=9),
    r(T2 + 9 * DAY, "S3", "stage_entered", event="survey.answered"),
    r(T2 + 9 * DAY, "S3", "message", "ask", channel="sms", template="referral_request", category="marketing"),
    event(T2 + 19 * DAY, "S3", "referral.made", referred_name="Bo"),
    event(T2 + 32 * DAY, "S3", "order.placed", order_id="C", price=200),
    event(T2 + 32 * DAY, "S3", "order.placed", order_id="C", price=200),
    r(T2 + 32 * DAY, "S1", "stage_entered", event="order.placed"),
    event(T2 + 33 * DAY, "S1", "ticket.opened", ticket_id="T1"),
    event(T2 + 37 * DAY, "S1", "survey.answered", score=10),
]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "a.duckdb"
    with open_store(path) as store:
        store.insert([
            RecordBatch(lifecycle="l", customer_id="c1", chain="x", first_seq=0, records=C1,
                        customer={"id": "c1", "segment": "consumer", "preferred_channel": "email"}),
            RecordBatch(lifecycle="l", customer_id="c2", chain="y", first_seq=0, records=C2,
                        customer={"id": "c2", "segment": "enterprise", "preferred_channel": "sms"}),
        ])
    return path


def ask(store_path: Path, question: str, *args, **filters):
    with open_store(store_path, read_only=True) as store:
        return getattr(Analyst(store, Filters(**filters)), question)(*args)


def test_funnel(store_path: Path):
    rows = ask(store_path, "funnel")
    assert [(row["stage"], row["customers"], row["entries"], row["now_here"], row["lost_from"], row["conversion"])
            for row in rows] == [
        ("S1", 2, 3, 1, 0, 1.0),  # both went on to S2; c2 is back in S1 now
        ("S2", 2, 2, 0, 1, 0.5),  # c1 was lost from S2; only c2 reached S3
        ("S3", 1, 1, 0, 0, 0.0),
        ("lost", 1, 1, 1, 0, None),
    ]


def test_time_in_stage(store_path: Path):
    rows = {row["stage"]: row for row in ask(store_path, "time_in_stage")}
    assert set(rows) == {"S1", "S2", "S3"}  # nobody leaves `lost`
    assert (rows["S1"]["left"], rows["S1"]["still_in"]) == (2, 1)  # 4 and 2 days; c2's second entry is open
    assert (rows["S1"]["p50_days"], rows["S1"]["p90_days"], rows["S1"]["mean_days"]) == (3.0, 3.8, 3.0)
    assert (rows["S2"]["p50_days"], rows["S2"]["p90_days"]) == (6.5, 6.9)  # 6 and 7 days
    assert rows["S3"]["p50_days"] == 23.0


def test_promises_by_kind_role_and_segment(store_path: Path):
    assert ask(store_path, "promises", "about") == [
        {"about": "delivery_date", "made": 2, "kept": 2, "broken": 0, "kept_rate": 1.0},
        {"about": "price", "made": 1, "kept": 0, "broken": 1, "kept_rate": 0.0},
    ]
    assert ask(store_path, "promises", "made_by") == [
        {"made_by": "sales_rep", "made": 3, "kept": 2, "broken": 1, "kept_rate": 0.6667}]
    assert ask(store_path, "promises", "segment") == [
        {"segment": "consumer", "made": 2, "kept": 1, "broken": 1, "kept_rate": 0.5},
        {"segment": "enterprise", "made": 1, "kept": 1, "broken": 0, "kept_rate": 1.0},
    ]


def test_after_a_broken_promise(store_path: Path):
    assert ask(store_path, "recovery") == {
        "broken": 1, "with_recovery_task": 1, "recovered_in_time": 0, "recovery_in_time_rate": 0.0,
        "customers": 1, "answered_after": 1, "mean_score_after": 5.0, "nps_after": -100.0,
    }


def test_nps_overall_and_by_segment_cohort_month_and_broken_promise(store_path: Path):
    def nps(by=None, **filters):
        return {row[by or "group"]: (row["answers"], row["nps"]) for row in ask(store_path, "nps", by, **filters)}

    assert nps() == {"all": (3, 33.3)}  # 9 and 10 promote, 5 detracts
    row = ask(store_path, "nps")[0]
    assert (row["promoters"], row["passives"], row["detractors"]) == (2, 0, 1)
    assert nps("segment") == {"consumer": (1, -100.0), "enterprise": (2, 100.0)}
    assert nps("cohort") == {"2026-02": (2, 100.0), "2026-03": (1, -100.0)}
    assert nps("month") == {"2026-02": (1, 100.0), "2026-03": (2, 0.0)}
    assert nps("broken_promise") == {"broken": (1, -100.0), "none broken": (2, 100.0)}
    assert nps(since=datetime(2026, 3, 1, tzinfo=timezone.utc)) == {"all": (2, 0.0)}
    assert nps(segment="enterprise") == {"all": (2, 100.0)}


def test_referrals(store_path: Path):
    assert ask(store_path, "referrals") == {
        "requests": 1, "customers_asked": 1, "referrals_made": 1, "customers_referring": 1,
        "referring_after_asked": 1, "conversion": 1.0,
    }


def test_task_sla_by_role(store_path: Path):
    rows = {row["role"]: row for row in ask(store_path, "task_sla")}
    unchanged = {"cancelled": 0, "snoozed": 0, "reassigned": 0}
    assert rows["account_manager"] == {"role": "account_manager", "created": 2, "done": 1, "done_on_time": 1,
                                       "done_late": 0, **unchanged, "overdue": 1, "escalated": 1,
                                       "on_time_rate": 0.5}
    assert rows["installer"] == {"role": "installer", "created": 1, "done": 1, "done_on_time": 0, "done_late": 1,
                                 **unchanged, "overdue": 0, "escalated": 0, "on_time_rate": 0.0}
    assert rows["project_manager"]["created"] == 1 and rows["project_manager"]["on_time_rate"] is None


def test_messages_by_channel_and_category(store_path: Path):
    assert [(row["kind"], row["channel"], row["category"], row["records"]) for row in ask(store_path, "messages")] == [
        ("message", "email", "transactional", 1),
        ("message", "sms", "marketing", 1),
        ("suppressed", "(none)", "(none)", 1),
    ]


# The contact policy and task entities, in a store of their own. c3, from 2026-04-01: withdraws
# marketing on sms, then grants marketing on every channel; two sends suppressed by the weekly
# cap; three support tasks: t9 snoozed from day 2 to day 4, reassigned, done on day 3 by its id
# (on time against the snoozed due time, late against the first); t10 done by its id on day 2,
# due day 1 (late); t11 cancelled by command, then by its waiting step (one cancelled task);
# unsubscribes on May 11. c4 withdraws consent for every message on April 10 (an opt-out); a
# send suppressed by the opt-out and one deferred by quiet hours.
T3 = datetime(2026, 4, 1, 9, tzinfo=timezone.utc)


def consent(at: datetime, name: str, change: str, **data) -> list[StreamRecord]:
    return [event(at, "S1", name, **data), r(at, "S1", "consent", event=name, change=change)]


def task(step: str, role: str, task_id: str, due_at: datetime) -> StreamRecord:
    return r(T3, "S1", "task", step, role=role, title=step, action_id=task_id, due_at=due_at.isoformat())


C3 = [
    *consent(T3, "consent.changed", "consent withdrawn: marketing on sms", granted=False, channel="sms",
             category="marketing"),
    task("t9", "support", "c3-t9-1", T3 + 2 * DAY),
    task("t10", "support", "c3-t10-1", T3 + DAY),
    task("t11", "support", "c3-t11-1", T3 + DAY),
    *consent(T3 + DAY, "consent.changed", "consent given: marketing", granted=True, category="marketing"),
    r(T3 + DAY, "S1", "task_changed", "t9", task="c3-t9-1", action="snooze", by="ann",
      due_at=(T3 + 4 * DAY).isoformat()),
    r(T3 + DAY, "S1", "task_changed", "t9", task="c3-t9-1", action="reassign", by="ann", assignee="bob"),
    r(T3 + DAY, "S1", "task_changed", "t11", task="c3-t11-1", action="cancel", by="ann"),
    r(T3 + DAY, "S1", "task_changed", "t11", action="cancelled", reason="the task was cancelled"),
    event(T3 + 2 * DAY, "S1", "task.completed", task="c3-t10-1"),
    event(T3 + 3 * DAY, "S1", "task.completed", task="c3-t9-1"),
    r(T3 + 5 * DAY, "S1", "suppressed", "promo", template="promo", reason="weekly cap", rule="caps[0]"),
    r(T3 + 6 * DAY, "S1", "suppressed", "promo", template="promo", reason="weekly cap", rule="caps[0]"),
    *consent(T3 + 40 * DAY, "customer.unsubscribed", "opted out of every message"),
]
C4 = [
    *consent(T3 + 9 * DAY, "consent.changed", "opted out of every message", granted=False),
    r(T3 + 9 * DAY, "S1", "suppressed", "promo", template="promo",
      reason="opted out (consent withdrawn for every message)", rule="opt-out"),
    r(T3 + 9 * DAY, "S1", "deferred", "news", template="news", reason="quiet hours: email only 09:00-18:00 (UTC)",
      rule="quiet_hours[0]", until=(T3 + 10 * DAY).isoformat()),
]


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "policy.duckdb"
    with open_store(path) as store:
        store.insert([
            RecordBatch(lifecycle="l", customer_id=customer, chain=customer, first_seq=0, records=records,
                        customer={"id": customer, "segment": "consumer", "preferred_channel": "email"})
            for customer, records in (("c3", C3), ("c4", C4))
        ])
    return path


def test_consent_opt_outs_changes_suppressed_and_deferred(policy_path: Path):
    answer = ask(policy_path, "consent")
    assert answer["opt_outs"] == [{"month": "2026-04", "customers": 1, "opt_outs": 1},  # c4's withdrawal
                                  {"month": "2026-05", "customers": 1, "opt_outs": 1}]  # c3 unsubscribed
    assert answer["changes"] == [
        {"channel": "(all)", "category": "(all)", "granted": 0, "withdrawn": 1, "customers": 1},
        {"channel": "(all)", "category": "marketing", "granted": 1, "withdrawn": 0, "customers": 1},
        {"channel": "sms", "category": "marketing", "granted": 0, "withdrawn": 1, "customers": 1},
    ]
    assert answer["suppressed"] == [
        {"reason": "weekly cap", "rule": "caps[0]", "records": 2, "customers": 1},
        {"reason": "opted out (consent withdrawn for every message)", "rule": "opt-out", "records": 1,
         "customers": 1},
    ]
    assert answer["deferred"] == [{"reason": "quiet hours: email only 09:00-18:00 (UTC)", "rule": "quiet_hours[0]",
                                   "records": 1, "customers": 1}]
    may = ask(policy_path, "consent", since=datetime(2026, 5, 1, tzinfo=timezone.utc))
    assert may["opt_outs"] == [{"month": "2026-05", "customers": 1, "opt_outs": 1}] and may["changes"] == []


def test_task_sla_counts_task_entities_completed_snoozed_and_cancelled(policy_path: Path):
    assert ask(policy_path, "task_sla") == [{
        "role": "support", "created": 3, "done": 2, "done_on_time": 1, "done_late": 1, "cancelled": 1,
        "snoozed": 1, "reassigned": 1, "overdue": 0, "escalated": 0, "on_time_rate": 0.5}]


def test_channel_preferences(store_path: Path):
    assert ask(store_path, "channel_preferences") == [
        {"channel": "email", "customers": 1, "share": 0.5}, {"channel": "sms", "customers": 1, "share": 0.5}]


def test_revenue_repeat_purchases_and_clv(store_path: Path):
    row = ask(store_path, "revenue")
    assert (row["customers"], row["orders"], row["revenue"]) == (2, 3, 600.0)  # C sent twice counts once
    assert (row["revenue_per_customer"], row["average_order_value"]) == (300.0, 200.0)
    assert (row["repeat_customers"], row["repeat_rate"], row["lost"]) == (1, 0.5, 1)
    years = 1 / 12 + 38 / 365.25  # c1 was lost after 10 days (counted as a month); c2 is seen to Mar 11
    assert row["customer_years"] == round(years, 2)
    assert row["orders_per_customer_year"] == round(3 / years, 3)
    assert row["yearly_churn"] == round(1 / years, 4)
    assert row["clv"] == 600.0  # 200 x (3 / years) x (years / 1)


def test_ranking_by_value_and_by_risk(store_path: Path):
    by_value = ask(store_path, "ranking", "value", 10)
    assert [(row["customer_id"], row["revenue"], row["orders"]) for row in by_value] == [("c2", 500.0, 2),
                                                                                          ("c1", 100.0, 1)]
    by_risk = ask(store_path, "ranking", "risk", 10)
    assert [(row["customer_id"], row["open_tickets"], row["broken_promises"], row["latest_score"],
             row["days_since_contact"], row["risk"]) for row in by_risk] == [
        ("c1", 0, 1, 5, 4.0, 4.13),   # 2 x 1 broken + (7 - 5) + 4 / 30
        ("c2", 1, 0, 10, 29.0, 3.97),  # 3 x 1 ticket + 29 / 30
    ]
    assert len(ask(store_path, "ranking", "risk", 1)) == 1


def test_the_window_and_segment_filter_every_question(store_path: Path):
    consumer = ask(store_path, "summary", segment="consumer")
    assert (consumer["records"], consumer["customers"]) == (len(C1), 1)
    before = ask(store_path, "summary", until=datetime(2026, 2, 5, tzinfo=timezone.utc))
    assert (before["records"], before["customers"]) == (8, 1)  # c2 up to its delivery day (Feb 3)


def test_a_question_asked_wrong_says_which(store_path: Path):
    with pytest.raises(ValueError, match="rank by 'money'"):
        ask(store_path, "ranking", "money")


def test_an_empty_store_or_window_answers_every_question_with_nothing(store_path: Path, tmp_path: Path):
    with open_store(tmp_path / "empty.duckdb"):
        pass
    with open_store(tmp_path / "empty.duckdb", read_only=True) as store:
        report = Analyst(store).report()
    assert report["summary"]["records"] == 0 and report["nps"] == [] and report["funnel"] == []
    assert report["consent_opt_outs"] == [] and report["consent_suppressed"] == [] and report["task_sla"] == []
    assert report["revenue"]["clv"] == 0.0 and report["recovery"]["broken"] == 0
    with open_store(store_path, read_only=True) as store:
        later = Analyst(store, Filters(since=datetime(2030, 1, 1, tzinfo=timezone.utc), segment="x' OR '1'='1")).report()
    assert later["summary"]["records"] == 0 and later["top_risk"] == []
