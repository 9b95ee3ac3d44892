"""What the simulator and the demo print: a stage entry names what caused it; an overdue task is overdue."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from cli.demo import Character, _print
from cli.simulate import entered_via, format_timeline
from engine.loader import load_project
from engine.scenario import parse_customer, parse_events
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event, Record
from workspace import in_memory

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def bundled_example():
    project = load_project(ROOT / "playbooks" / "lifecycle.yaml")
    customer = parse_customer(yaml.safe_load((ROOT / "examples" / "customer.yaml").read_text()), "customer.yaml")
    events = parse_events(yaml.safe_load((ROOT / "examples" / "events.yaml").read_text()), customer["id"], "events.yaml")
    return simulate(project, customer, events)


def test_a_stage_entered_by_goto_says_goto_not_an_event_from_weeks_before():
    timeline = bundled_example()
    entries = [line.split("via ", 1)[1] for line in format_timeline(timeline).splitlines() if "stage_entered" in line]
    assert entries == ["order.placed", "order.delivered", "goto", "goto", "goto", "goto"]


def test_every_event_named_as_the_cause_arrived_at_the_moment_of_the_entry():
    records = bundled_example().records
    for index, record in enumerate(records):
        if record.kind != "stage_entered":
            continue
        via = entered_via(records, index)
        if via != "goto":
            assert any(r.kind == "event" and r.detail["event"] == via and r.at == record.at for r in records[:index])


def test_an_event_arriving_with_the_transition_event_does_not_hide_it():
    records = [
        Record(at=AT, stage="sale", kind="event", detail={"event": "order.delivered"}),
        Record(at=AT, stage="sale", kind="failed", detail={"fact": "x", "error": "no"}),
        Record(at=AT, stage="sale", kind="event", detail={"event": "ticket.opened"}),
        Record(at=AT, stage="delivery", kind="stage_entered", detail={"event": "order.delivered"}),
    ]
    assert entered_via(records, 3) == "order.delivered"


def test_a_goto_at_the_moment_an_old_event_is_carried_along_is_a_goto():
    records = [
        Record(at=AT - timedelta(days=30), stage="sale", kind="event", detail={"event": "order.delivered"}),
        Record(at=AT, stage="delivery", kind="message", step="check_in", detail={}),
        Record(at=AT, stage="service", kind="stage_entered", detail={"event": "order.delivered"}),
    ]
    assert entered_via(records, 2) == "goto"


def test_the_demo_calls_an_overdue_task_overdue_and_an_unanswered_wait_no_answer(capsys):
    character = Character("demo-late", "late delivery", 3, None, False)
    _print(character, Record(at=AT, stage="warranty_follow_up", kind="timeout", step="close_the_loop",
                             detail={"reason": "task overdue", "role": "customer_service_representative"}))
    _print(character, Record(at=AT, stage="warranty_follow_up", kind="timeout", step="wait_for_score",
                             detail={"events": ["survey.answered"]}))
    overdue, unanswered = capsys.readouterr().out.splitlines()
    assert "overdue" in overdue and "no answer" not in overdue and "close_the_loop" in overdue
    assert "no answer" in unanswered and "wait_for_score" in unanswered


def test_a_kept_promise_shows_the_comparison_its_kind_makes():
    lifecycle = """
lifecycle: solar
channels: {email: {contact: email}}
roles: {installer: Installs.}
events:
  install.booked: {starts_lifecycle: true}
  install.done: {payload: {kwh: number!, price: number!, panels: string!}}
initial_stage: install
stages: {install: {playbook: install}}
transitions: []
"""
    install = """
playbook: install
steps:
  - {id: p_energy, kind: promise, promise: energy, about: quantity, expected: "5000.0", made_by: sales}
  - {id: p_price, kind: promise, promise: price, about: price, expected: "9000.0", made_by: sales}
  - {id: p_scope, kind: promise, promise: panels, about: scope, expected: "'12 panels'", made_by: sales}
  - {id: done, kind: wait_for, events: [install.done]}
  - {id: c_energy, kind: check_promise, promise: energy, actual: event.data.kwh}
  - {id: c_price, kind: check_promise, promise: price, actual: event.data.price}
  - {id: c_scope, kind: check_promise, promise: panels, actual: event.data.panels}
"""
    events = [ScheduledEvent(AT, Event(customer_id="s1", name="install.booked")),
              ScheduledEvent(AT + timedelta(days=30), Event(customer_id="s1", name="install.done",
                                                            data={"kwh": 5200.0, "price": 8900.0, "panels": "12 panels"}))]
    timeline = simulate(in_memory(lifecycle, {"install": install}), {"id": "s1"}, events)
    kept = [line.split("promise_kept", 1)[1].split("[")[0].strip() for line in format_timeline(timeline).splitlines()
            if "promise_kept" in line]
    assert kept == ["energy: 5200.0 >= 5000.0", "price: 8900.0 <= 9000.0", "panels: 12 panels = 12 panels"]
