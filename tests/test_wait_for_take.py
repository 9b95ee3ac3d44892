"""`wait_for` with `take: latest`: the newest matching event ends the wait, older ones are outdated."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.errors import PlaybookLoadError
from engine.loader import load_project
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event

START = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)

LIFECYCLE = """\
lifecycle: estimates
channels: {email: {contact: email}}
roles: {project_manager: Owns the delivery plan.}
events:
  order.placed: {starts_lifecycle: true}
  estimate.changed: {payload: {new_date: date!}}
  note.added: {payload: {text: string}}
facts:
  planned_for: {type: date}
  second_estimate: {type: date}
initial_stage: planning
stages:
  planning: {playbook: planning.yaml}
  done: {terminal: true}
templates: templates
"""
# Estimates arrive while the stage sleeps; the first wait_for then takes one, the second another.
PLANNING = """\
playbook: planning
steps:
  - {id: busy, kind: wait, duration: 5d}
  - id: first_estimate
    kind: wait_for
    events: [estimate.changed, note.added]
    take: TAKE
    timeout: 1d
    on:
      estimate.changed:
        - {id: plan, kind: set, fact: planned_for, value: event.data.new_date}
  - id: another_estimate
    kind: wait_for
    events: [estimate.changed]
    timeout: 1d
    on:
      estimate.changed:
        - {id: replan, kind: set, fact: second_estimate, value: event.data.new_date}
  - {id: finish, kind: goto, stage: done}
"""


def project(tmp_path: Path, take: str | None):
    root = tmp_path / "p"
    (root / "templates").mkdir(parents=True)
    (root / "lifecycle.yaml").write_text(LIFECYCLE)
    text = PLANNING.replace("TAKE", take) if take else PLANNING.replace("    take: TAKE\n", "")
    (root / "planning.yaml").write_text(text)
    return load_project(root / "lifecycle.yaml")


def run(tmp_path: Path, take: str | None):
    events = [("0d", "order.placed", {}), ("1d", "estimate.changed", {"new_date": "2026-04-01"}),
              ("2d", "note.added", {"text": "supplier called"}),
              ("3d", "estimate.changed", {"new_date": "2026-04-15"})]
    scheduled = [ScheduledEvent(START + timedelta(days=float(at.rstrip("d"))),
                                Event(customer_id="c-1", name=name, data=data)) for at, name, data in events]
    return simulate(project(tmp_path, take), {"id": "c-1"}, scheduled)


def test_by_default_the_oldest_matching_event_is_taken_and_the_others_wait(tmp_path):
    timeline = run(tmp_path, None)
    assert timeline.state.facts["planned_for"] .startswith("2026-04-01")
    assert timeline.state.facts["second_estimate"] .startswith("2026-04-15")


def test_take_latest_takes_the_newest_and_drops_the_outdated_ones(tmp_path):
    timeline = run(tmp_path, "latest")
    assert timeline.state.facts["planned_for"] .startswith("2026-04-15")
    # The older estimate was outdated by the newer one: the next wait finds nothing and times out.
    assert timeline.state.facts["second_estimate"] is None
    assert [r.step for r in timeline.of_kind("timeout")] == ["another_estimate"]


def test_take_latest_looks_at_every_event_the_wait_names(tmp_path):
    # A note after both estimates is the newest event the first wait names: it is taken (no
    # branch for it), and both estimates are dropped as older, so the next wait times out.
    events = [(1, "estimate.changed", {"new_date": "2026-04-01"}), (2, "estimate.changed", {"new_date": "2026-04-15"}),
              (3, "note.added", {"text": "customer asked to wait"})]
    scheduled = [ScheduledEvent(START, Event(customer_id="c-1", name="order.placed", data={}))] + [
        ScheduledEvent(START + timedelta(days=day), Event(customer_id="c-1", name=name, data=data))
        for day, name, data in events]
    timeline = simulate(project(tmp_path, "latest"), {"id": "c-1"}, scheduled)
    assert timeline.state.facts["planned_for"] is None
    assert timeline.state.facts["second_estimate"] is None
    assert [r.step for r in timeline.of_kind("timeout")] == ["another_estimate"]


def test_take_latest_with_a_single_event_waits_for_it_like_oldest(tmp_path):
    scheduled = [ScheduledEvent(START, Event(customer_id="c-1", name="order.placed", data={})),
                 ScheduledEvent(START + timedelta(days=5, hours=12),
                                Event(customer_id="c-1", name="estimate.changed", data={"new_date": "2026-05-01"}))]
    timeline = simulate(project(tmp_path, "latest"), {"id": "c-1"}, scheduled)
    assert timeline.state.facts["planned_for"] .startswith("2026-05-01")


def test_take_is_oldest_or_latest(tmp_path):
    with pytest.raises(PlaybookLoadError) as info:
        project(tmp_path, "newest")
    message = str(info.value.errors[0])
    assert message.startswith(f"{tmp_path}/p/planning.yaml:7:11:")
    assert "'newest' is not one of: oldest, latest" in message
