"""Schedules turn time into events, whatever the stage: pure tests on the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from engine.errors import PlaybookLoadError
from engine.loader import load_project
from engine.schedules import Due, next_moment, parse_period
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event

UTC = timezone.utc
START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)

LIFECYCLE = """\
lifecycle: renewals
channels: {email: {contact: email}}
roles: {account_manager: Owns the relationship.}
customer:
  contract_end: date
events:
  contract.signed:
    starts_lifecycle: true
    payload: {installed_at: timestamp}
    updates: {installed_at: event.data.installed_at}
  equipment.installed:
    payload: {installed_at: timestamp!}
    updates: {installed_at: event.data.installed_at}
  maintenance.due:
    description: A year since the installation, and every year after.
    updates: {maintenance_count: facts.maintenance_count + 1}
  renewal.window_opened:
    description: Three months before the contract ends.
  profile.changed: {}
facts:
  installed_at: {type: timestamp}
  maintenance_count: {type: int, initial: 0}
initial_stage: active
stages:
  active: {playbook: active.yaml}
  renewing: {playbook: renewing.yaml}
  closed: {terminal: true}
transitions:
  - {from: "*", except: [renewing], on: renewal.window_opened, to: renewing}
  - {from: "*", except: [renewing], on: profile.changed, to: active}
schedules:
  maintenance.due: {every: 1y, from: facts.installed_at}
  renewal.window_opened: {at: "add_months(customer.contract_end, -3)"}
"""

ACTIVE = """\
playbook: active
steps:
  - id: welcome
    kind: send
    template: note
  - id: long_wait
    kind: wait
    duration: 700d
"""

RENEWING = """\
playbook: renewing
steps:
  - id: renewal_offer
    kind: send
    template: note
  - id: done
    kind: end
    outcome: renewed
"""


def project(tmp_path: Path, lifecycle: str = LIFECYCLE, active: str = ACTIVE):
    folder = tmp_path / "p"
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "templates" / "note.txt").write_text("Hello\n")
    (folder / "lifecycle.yaml").write_text(lifecycle)
    (folder / "active.yaml").write_text(active)
    (folder / "renewing.yaml").write_text(RENEWING)
    return load_project(folder / "lifecycle.yaml")


def at(when: datetime | timedelta, name: str, customer: dict | None = None, **data) -> ScheduledEvent:
    moment = START + when if isinstance(when, timedelta) else when
    return ScheduledEvent(at=moment, event=Event(customer_id="c-1", name=name, data=data, customer=customer))


def fired(timeline) -> list[tuple[str, str]]:
    return [(r.detail["event"], r.detail["moment"][:10]) for r in timeline.of_kind("schedule")]


CUSTOMER = {"id": "c-1", "email": "c@example.com", "consent": {"email": True}}


# ---------------------------------------------------------------- recurrence


def test_a_yearly_schedule_keeps_feb_29_across_leap_years_without_drift(tmp_path: Path):
    timeline = simulate(project(tmp_path), CUSTOMER,
                        [at(START, "contract.signed", installed_at="2028-02-29T10:00:00Z")],
                        until=datetime(2033, 1, 1, tzinfo=UTC))
    assert fired(timeline) == [("maintenance.due", "2029-02-28"), ("maintenance.due", "2030-02-28"),
                               ("maintenance.due", "2031-02-28"), ("maintenance.due", "2032-02-29")]
    assert [r.at for r in timeline.of_kind("schedule")][0] == datetime(2029, 2, 28, 10, tzinfo=UTC)
    assert timeline.state.facts["maintenance_count"] == 4  # each went through the event's updates


def test_a_monthly_schedule_from_the_31st_stays_at_month_end(tmp_path: Path):
    text = LIFECYCLE.replace("{every: 1y, from: facts.installed_at}", "{every: 1mo, from: facts.installed_at}")
    timeline = simulate(project(tmp_path, text), CUSTOMER,
                        [at(START, "contract.signed", installed_at="2027-01-31T08:00:00Z")],
                        until=datetime(2027, 6, 15, tzinfo=UTC))
    assert [moment for _, moment in fired(timeline)] == ["2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]


def test_periods_and_moments_are_computed_from_the_anchor():
    assert parse_period("1y").months == 12 and parse_period("P1Y6M").months == 18
    assert parse_period("6mo").months == 6 and parse_period("1w").span == timedelta(days=7)
    for bad in ("10m", "1x", "0mo", ""):
        with pytest.raises(ValueError):
            parse_period(bad)

    class Spec:
        every, from_ = "1mo", "anchor"

    anchor = datetime(2027, 1, 31, tzinfo=UTC)
    # far ahead of its last firing: the latest moment that passed fires, once
    assert next_moment(Spec(), anchor, datetime(2027, 2, 28, tzinfo=UTC), datetime(2027, 8, 5, tzinfo=UTC)) \
        == datetime(2027, 7, 31, tzinfo=UTC)
    assert next_moment(Spec(), anchor, datetime(2027, 7, 31, tzinfo=UTC), datetime(2027, 8, 5, tzinfo=UTC)) \
        == datetime(2027, 8, 31, tzinfo=UTC)
    assert Due(anchor, "x.y").key == "schedule:x.y:2027-01-31T00:00:00+00:00"


    class StartingAt:
        every, from_ = "1y", None

    # `at` with `every`: the first moment is the anchor itself
    assert next_moment(StartingAt(), anchor, None, datetime(2026, 5, 1, tzinfo=UTC)) == anchor
    assert next_moment(StartingAt(), anchor, anchor, datetime(2026, 5, 1, tzinfo=UTC)) == \
        datetime(2028, 1, 31, tzinfo=UTC)


# ---------------------------------------------------------------- anchors


def test_a_schedule_anchored_on_a_fact_set_later_starts_then(tmp_path: Path):
    events = [at(START, "contract.signed"),
              at(timedelta(days=40), "equipment.installed", installed_at="2027-02-19T12:00:00Z")]
    timeline = simulate(project(tmp_path), CUSTOMER, events, until=datetime(2029, 3, 1, tzinfo=UTC))
    assert fired(timeline) == [("maintenance.due", "2028-02-19"), ("maintenance.due", "2029-02-19")]


def test_a_null_anchor_is_not_scheduled(tmp_path: Path):
    timeline = simulate(project(tmp_path), CUSTOMER, [at(START, "contract.signed")],
                        until=datetime(2030, 1, 1, tzinfo=UTC))
    assert fired(timeline) == []
    assert timeline.stages() == ["active"]


def test_a_changed_anchor_moves_the_schedule(tmp_path: Path):
    events = [at(START, "contract.signed", customer={"contract_end": "2027-12-31"}),
              # the contract is extended before the window opens: the window moves with it
              at(timedelta(days=100), "profile.changed", customer={"contract_end": "2028-06-30"})]
    timeline = simulate(project(tmp_path), CUSTOMER, events, until=datetime(2029, 1, 1, tzinfo=UTC))
    assert fired(timeline) == [("renewal.window_opened", "2028-03-30")]


# ---------------------------------------------------------------- the event path


def test_a_schedule_event_moves_the_customer_from_any_stage_even_mid_wait(tmp_path: Path):
    events = [at(START, "contract.signed", customer={"contract_end": "2027-09-30"})]
    timeline = simulate(project(tmp_path), CUSTOMER, events)
    assert timeline.stages() == ["active", "renewing"]
    assert timeline.state.ended == "renewed"
    entered = timeline.of_kind("stage_entered")[1]
    assert entered.at == datetime(2027, 6, 30, tzinfo=UTC)  # mid-way through active's 700-day wait
    assert entered.detail["event"] == "renewal.window_opened"
    assert timeline.steps() == ["welcome", "renewal_offer"]


def test_a_moment_already_past_fires_once_at_once(tmp_path: Path):
    # the window opened before the lifecycle knew the contract's end: it opens now, late, once
    events = [at(START, "contract.signed", customer={"contract_end": "2027-02-28"})]
    timeline = simulate(project(tmp_path), CUSTOMER, events)
    assert fired(timeline) == [("renewal.window_opened", "2026-11-28")]
    assert timeline.of_kind("schedule")[0].at == START
    assert timeline.state.ended == "renewed"


def test_a_stage_that_cannot_take_the_event_records_it_not_taken(tmp_path: Path):
    text = LIFECYCLE.replace('  - {from: "*", except: [renewing], on: renewal.window_opened, to: renewing}\n', "")
    text = text.replace("on: profile.changed, to: active}", "on: profile.changed, to: active}\n"
                        "  - {from: renewing, on: renewal.window_opened, to: closed}")
    events = [at(START, "contract.signed", customer={"contract_end": "2027-09-30"})]
    timeline = simulate(project(tmp_path, text), CUSTOMER, events, until=datetime(2028, 1, 1, tzinfo=UTC))
    [record] = timeline.of_kind("schedule")
    assert record.detail["taken"] is False
    assert "cannot take 'renewal.window_opened'" in record.detail["reason"]
    assert timeline.stages() == ["active"]
    assert timeline.state.schedules == {"renewal.window_opened": datetime(2027, 6, 30, tzinfo=UTC)}


def test_continue_as_new_never_fires_a_moment_twice(tmp_path: Path):
    events = [at(START, "contract.signed", installed_at="2027-01-01T00:00:00Z",
                 customer={"contract_end": "2030-03-31"})]
    until = datetime(2031, 1, 1, tzinfo=UTC)
    plain = simulate(project(tmp_path), CUSTOMER, events, until=until)
    restarted = simulate(project(tmp_path), CUSTOMER, events, until=until, continue_as_new=True)
    assert restarted.runs > 1
    assert fired(plain) == fired(restarted) == [
        ("maintenance.due", "2028-01-01"), ("maintenance.due", "2029-01-01"),
        ("renewal.window_opened", "2029-12-31")]
    assert [r.kind for r in plain.records] == [r.kind for r in restarted.records]


def test_without_until_a_recurring_schedule_stops_at_the_horizon(tmp_path: Path):
    timeline = simulate(project(tmp_path), CUSTOMER, [at(START, "contract.signed", installed_at="2027-01-01T00:00:00Z")])
    assert len(fired(timeline)) == 10 and timeline.stopped_at is not None


# ---------------------------------------------------------------- load errors


@pytest.mark.parametrize(("old", "new", "error"), [
    ("  maintenance.due: {every: 1y", "  maintenance.dew: {every: 1y",
     "lifecycle.yaml:32:3: unknown event 'maintenance.dew' (did you mean 'maintenance.due'?): "
     "a schedule sends an event declared in 'events'"),
    ("{every: 1y, from: facts.installed_at}", "{every: 10m, from: facts.installed_at}",
     "lifecycle.yaml:32:28: '10m' is shorter than an hour: a schedule fires at most hourly"),
    ("{every: 1y, from: facts.installed_at}", "{from: facts.installed_at}",
     "lifecycle.yaml:32:20: 'from' needs 'every'"),
    ('{at: "add_months(customer.contract_end, -3)"}', '{at: "customer.contract_end + 3"}',
     "lifecycle.yaml:33:54: '+' cannot take timestamp and int"),
    ('{at: "add_months(customer.contract_end, -3)"}', '{at: "now + days(3)"}',
     "lifecycle.yaml:33:32: 'now' cannot be used in a schedule (it can read customer, facts, promises)"),
    ('{at: "add_months(customer.contract_end, -3)"}', '{at: "customer.email"}',
     "lifecycle.yaml:33:32: a schedule's 'at' must be a timestamp, but this expression is a string"),
    ("  renewal.window_opened:\n    description: Three months before the contract ends.\n",
     "  renewal.window_opened:\n    payload: {reason: string!}\n",
     "lifecycle.yaml:33:3: event 'renewal.window_opened' needs payload field 'reason', but a schedule "
     "sends its event without data"),
])
def test_schedule_mistakes_are_load_errors_with_their_place(tmp_path: Path, monkeypatch, old, new, error):
    assert old in LIFECYCLE
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlaybookLoadError) as info:
        project(Path("."), LIFECYCLE.replace(old, new))
    messages = [str(e) for e in info.value.errors]
    assert any(message.startswith(f"p/{error}") for message in messages), messages


def test_lifecycle_simulate_prints_each_firing_at_its_virtual_time(tmp_path: Path):
    from click.testing import CliRunner

    from cli.main import main

    project(tmp_path)
    (tmp_path / "events.yaml").write_text(
        "start: 2027-01-10T09:00:00Z\n"
        "events:\n"
        "  - {at: 0d, event: contract.signed, data: {installed_at: '2027-01-01T08:00:00Z'},"
        " customer: {contract_end: '2028-09-30'}}\n")
    (tmp_path / "customer.yaml").write_text("id: c-1\nemail: c@example.com\nconsent: {email: true}\n")
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "p"), "--events", str(tmp_path / "events.yaml"),
                                       "--customer", str(tmp_path / "customer.yaml")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " schedule " in line]
    assert lines == [
        "2028-01-01 08:00  active               schedule        maintenance.due (due 2028-01-01 08:00)",
        "2028-06-30 00:00  active               schedule        renewal.window_opened (due 2028-06-30 00:00)",
    ]
    assert "renewing             stage_entered   via renewal.window_opened" in result.output


def test_the_lifecycle_diagram_marks_transitions_a_schedule_drives(tmp_path: Path):
    from engine.graph import lifecycle_graph, to_mermaid

    chart = to_mermaid(lifecycle_graph(project(tmp_path)))
    assert "any_stage_except_renewing --> renewing: renewal.window_opened (schedule)" in chart
    assert "any_stage_except_renewing --> active: profile.changed\n" in chart
