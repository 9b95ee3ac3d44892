"""Task SLAs in business hours (`due: 4 business hours`), through the simulator (the interpreter
the workflow runs), the loader and `lifecycle simulate`: no Temporal. The calendar arithmetic is
in tests/test_calendars.py, the dev-server test in tests/test_tasks_workflow.py."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest
import yaml
from click.testing import CliRunner

from engine.simulator import ScheduledEvent, simulate
from engine.state import Event, TaskCommand
from workspace import in_memory

# Friday 2026-01-09 16:00 in Berlin (CET, +1).
FRIDAY_4PM = datetime(2026, 1, 9, 15, tzinfo=timezone.utc)
# 4 business hours of 08:00-17:00 later: one on Friday, three on Monday: Monday 11:00 CET.
MONDAY_11AM = datetime(2026, 1, 12, 10, tzinfo=timezone.utc)

LIFECYCLE = """
lifecycle: test
channels:
  email: {contact: email}
roles:
  installer: Installs.
  project_manager: Escalations.
contact:
  timezone: America/New_York
  calendar: US
  roles:
    installer: {calendar: DE-BY, timezone: Europe/Berlin, business_hours: "08:00-17:00"}
    project_manager: {business_hours: "09:00-17:00"}
events:
  order.placed: {starts_lifecycle: true}
  customer.lost: {}
initial_stage: install
stages:
  install: {playbook: install}
  lost: {terminal: true}
transitions:
  - {from: "*", "on": customer.lost, to: lost}
"""

INSTALL = """
playbook: install
steps:
  - kind: task
    id: install_check
    role: installer
    title: Check the installation
    guideline: Call the customer and ask whether the system runs.
    due: 4 business hours
    remind: %s
    on_done: [{kind: set, id: checked, var: checked, value: "true"}]
    on_overdue:
      - {kind: task, id: escalate, role: project_manager, title: Escalated, guideline: Call today.,
         due: 2 business hours}
  - {kind: wait, id: idle, duration: 60d}
"""

CUSTOMER = {"id": "c1", "email": "c1@example.com", "consent": {"email": True}}
TASK = "lifecycle/c1/install/1/install_check"


def run(*events: ScheduledEvent, remind: str = "[]", start: datetime = FRIDAY_4PM, customer=None,
        days: float = 10):
    project = in_memory(LIFECYCLE, {"install": INSTALL % remind})
    begin = ScheduledEvent(start, Event(customer_id="c1", name="order.placed"))
    return simulate(project, customer or CUSTOMER, [begin, *events], until=start + timedelta(days=days))


def command(moment: datetime, **order) -> ScheduledEvent:
    return ScheduledEvent(moment, task=TaskCommand(task=TASK, **order))


def due_of(timeline, step: str) -> str:
    [record] = [record for record in timeline.of_kind("task") if record.step == step]
    return record.detail["due_at"]


def overdue_at(timeline) -> datetime:
    [record] = [record for record in timeline.records if record.kind == "timeout"]
    return record.at


# ---------------------------------------------------------------- the due time and on_overdue


def test_a_task_due_in_business_hours_skips_the_night_and_the_weekend():
    timeline = run()
    assert due_of(timeline, "install_check") == MONDAY_11AM.isoformat()
    [entity] = [task for task in timeline.state.tasks if task.step == "install_check"]
    assert entity.due_at == MONDAY_11AM and entity.status == "escalated"


def test_on_overdue_runs_at_the_business_hours_due_time_and_counts_its_own_roles_hours():
    timeline = run()
    assert overdue_at(timeline) == MONDAY_11AM
    # The escalation counts the project manager's hours: 09:00-17:00 in New York (contact.timezone),
    # on the US calendar (contact.calendar). 10:00Z is 05:00 EST, before the opening: 11:00 EST.
    assert due_of(timeline, "escalate") == datetime(2026, 1, 12, 16, tzinfo=timezone.utc).isoformat()


def test_a_role_without_its_own_zone_counts_in_the_customers():
    in_la = dict(CUSTOMER, timezone="America/Los_Angeles")
    timeline = run(customer=in_la)
    # 09:00 PST is 17:00Z: two business hours later, 19:00Z.
    assert due_of(timeline, "escalate") == datetime(2026, 1, 12, 19, tzinfo=timezone.utc).isoformat()


def test_a_task_created_on_saturday_counts_from_mondays_opening():
    saturday = datetime(2026, 1, 10, 9, tzinfo=timezone.utc)
    timeline = run(start=saturday)
    assert due_of(timeline, "install_check") == datetime(2026, 1, 12, 11, tzinfo=timezone.utc).isoformat()


def test_a_holiday_of_the_roles_calendar_does_not_count():
    # Monday 2026-01-05 16:00 CET; Tuesday is Epiphany in Bavaria (the installer's DE-BY), not in
    # the US (the lifecycle's calendar): one hour on Monday, three on Wednesday.
    monday = datetime(2026, 1, 5, 15, tzinfo=timezone.utc)
    timeline = run(start=monday)
    assert due_of(timeline, "install_check") == datetime(2026, 1, 7, 10, tzinfo=timezone.utc).isoformat()


# ---------------------------------------------------------------- snooze and reassign


def test_a_snooze_moves_the_clock_to_the_time_it_gives():
    snoozed_to = datetime(2026, 1, 12, 14, tzinfo=timezone.utc)
    timeline = run(command(FRIDAY_4PM + timedelta(hours=1), action="snooze", until=snoozed_to))
    assert overdue_at(timeline) == snoozed_to


def test_a_snooze_moves_the_reminder_with_the_clock():
    snoozed_to = datetime(2026, 1, 12, 14, tzinfo=timezone.utc)
    timeline = run(command(FRIDAY_4PM + timedelta(hours=1), action="snooze", until=snoozed_to), remind="[1h]")
    reminded = [record.at for record in timeline.records if record.kind == "task_reminded"]
    assert reminded == [snoozed_to - timedelta(hours=1)]


def test_a_reassignment_keeps_the_business_hours_due_time_of_the_tasks_role():
    timeline = run(command(FRIDAY_4PM + timedelta(hours=1), action="reassign", assignee="sam"))
    [entity] = [task for task in timeline.state.tasks if task.step == "install_check"]
    assert (entity.assignee, entity.role, entity.due_at) == ("sam", "installer", MONDAY_11AM)
    assert overdue_at(timeline) == MONDAY_11AM


def test_a_completion_before_the_business_hours_due_time_runs_on_done_not_on_overdue():
    timeline = run(ScheduledEvent(MONDAY_11AM - timedelta(minutes=1),
                                  Event(customer_id="c1", name="task.completed", data={"task": "install_check"})))
    assert not [record for record in timeline.records if record.kind == "timeout"]
    assert timeline.state.vars["checked"] is True


# ---------------------------------------------------------------- reminders


def test_a_reminder_is_an_elapsed_span_before_a_business_hours_due_time():
    timeline = run(remind="[1h, 4h]")
    reminded = [record.at for record in timeline.records if record.kind == "task_reminded"]
    # 1h before Monday 11:00 CET, and 4h before (07:00 CET, outside business hours: spans are
    # clock time, the way a snooze is); both after the task was created on Friday.
    assert reminded == [MONDAY_11AM - timedelta(hours=4), MONDAY_11AM - timedelta(hours=1)]


def test_the_next_reminder_is_kept_on_the_open_task_and_cleared_when_the_stage_is_left():
    waiting = run(remind="[1h]", days=1)
    [entity] = [task for task in waiting.state.tasks if task.step == "install_check"]
    assert entity.is_open and entity.reminder_at == MONDAY_11AM - timedelta(hours=1)
    lost = ScheduledEvent(FRIDAY_4PM + timedelta(hours=2), Event(customer_id="c1", name="customer.lost"))
    left = run(lost, remind="[1h]", days=1)
    [entity] = [task for task in left.state.tasks if task.step == "install_check"]
    assert entity.reminder_at is None  # nothing waits for it any more: no reminder is listed
    assert not [record for record in left.records if record.kind == "task_reminded"]


def test_a_reminder_longer_than_the_time_left_is_skipped():
    timeline = run(remind="[4d]")  # 4 days before Monday 11:00 is before the task was created
    assert not [record for record in timeline.records if record.kind == "task_reminded"]
    assert overdue_at(timeline) == MONDAY_11AM


# ---------------------------------------------------------------- load-time checks


TASK_STEP = """\
  - {kind: task, id: call, role: installer, title: Call, guideline: Call., due: %s, on_done: []}
"""
HOURS = 'contact:\n  calendar: US\n  roles:\n    installer: {timezone: Europe/Berlin, business_hours: "08:00-17:00"}\n'


def test_business_hours_need_the_roles_business_hours(ws):
    ws.sale(TASK_STEP % "4 business hours")
    [error] = ws.errors()
    assert error == ("p/sale.yaml:3:81: '4 business hours' needs the business hours of role 'installer': add "
                     "them in the lifecycle file, e.g. contact: {roles: {installer: {business_hours: "
                     "\"08:00-17:00\", timezone: Europe/Berlin}}}")
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS)
    ws.load()


def test_business_hours_need_a_calendar(ws):
    ws.sale(TASK_STEP % "1 business hour")
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS.replace("  calendar: US\n", ""))
    assert ws.errors() == ["p/sale.yaml:3:81: '1 business hour' needs a holiday calendar: set contact.calendar "
                           "in the lifecycle file, or contact.roles.installer.calendar"]


def test_business_hours_beyond_ten_years_are_a_load_error(ws):
    ws.sale(TASK_STEP % "20001 business hours")
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS)
    assert ws.errors() == ["p/sale.yaml:3:81: '20001 business hours' is more than 20000 business hours, "
                           "about ten years of installer's 08:00-17:00"]


def test_a_wait_in_business_hours_is_a_load_error(ws):
    ws.sale("  - {kind: wait, id: pause, duration: 2 business hours}\n")
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS)
    assert ws.errors() == ["p/sale.yaml:3:39: '2 business hours': business hours are counted in a role's "
                           "business_hours, so only a task's 'due' takes them (write a duration such as 4h, "
                           "or N business days)"]


def test_a_reminder_in_business_hours_is_a_load_error(ws):
    ws.sale(TASK_STEP.replace("on_done: []", "remind: 1 business hour, on_done: []") % "4 business hours")
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS)
    assert ws.errors() == ["p/sale.yaml:3:107: '1 business hour' is not a duration: a reminder is clock time "
                           "before the due time (4h, 1d), also when 'due' counts business hours or days"]


def test_a_snooze_by_business_hours_is_refused_with_the_way_to_write_it():
    from cli.tasks_cmd import task_group

    result = CliRunner().invoke(task_group, ["snooze", "lifecycle/c1/install/1/install_check", "4 business hours"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == ("error: --until: '4 business hours': a snooze counts elapsed time; give a duration "
                             "(2h, 1d) or the time to be due, e.g. 2026-03-09T11:00:00+01:00\n")


# ---------------------------------------------------------------- `lifecycle simulate` and the docs


def test_lifecycle_simulate_prints_the_business_hours_due_time(tmp_path: Path):
    from cli.simulate import simulate_command

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "lifecycle.yaml").write_text(LIFECYCLE.replace("{playbook: install}", "{playbook: install.yaml}"))
    (folder / "install.yaml").write_text(INSTALL % "[]")
    (tmp_path / "customer.yaml").write_text(yaml.safe_dump(CUSTOMER))
    (tmp_path / "events.yaml").write_text(dedent("""\
        start: 2026-01-09T15:00:00Z
        events:
          - {at: 0d, event: order.placed}
        """))
    result = CliRunner().invoke(simulate_command, [str(folder), "--customer", str(tmp_path / "customer.yaml"),
                                                   "--events", str(tmp_path / "events.yaml"), "--until", "4d"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    [created] = [line for line in lines if "install_check" in line and " task " in f" {line} "]
    assert created.endswith("installer: Check the installation (due 2026-01-12 10:00) [install_check]"), created
    [timeout] = [line for line in lines if "timeout" in line]
    assert timeout.startswith("2026-01-12 10:00"), timeout


def test_the_example_of_the_docs_is_due_when_the_docs_say():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "playbooks.md").read_text()
    section = docs.split("\n#### Due in business hours\n", 1)[1].split("\n#### ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    contact, step = block.split("# a stage playbook\n")
    lifecycle = yaml.safe_load(LIFECYCLE)
    lifecycle["contact"] = yaml.safe_load(contact)["contact"]
    playbook = {"playbook": "install", "steps": [*yaml.safe_load(step), {"kind": "wait", "duration": "60d"}]}
    project = in_memory(lifecycle, {"install": playbook})
    timeline = simulate(project, CUSTOMER, [ScheduledEvent(FRIDAY_4PM, Event(customer_id="c1", name="order.placed"))],
                        until=FRIDAY_4PM + timedelta(days=5))
    assert "created Friday 16:00 Berlin: due Monday 11:00" in block and "remind: 1h                        # Monday 10:00" in block
    assert due_of(timeline, "install_check") == MONDAY_11AM.isoformat()  # 11:00 CET
    assert [record.at for record in timeline.records if record.kind == "task_reminded"] == [
        MONDAY_11AM - timedelta(hours=1)]
    assert overdue_at(timeline) == MONDAY_11AM


def test_a_sends_otherwise_task_takes_business_hours_of_its_role(ws):
    ws.sale("""\
      - kind: send
        id: hello
        template: order_summary
        otherwise: {role: installer, title: Call, guideline: Call., due: 2 business hours}
    """)
    ws.lifecycle("templates: templates", "templates: templates\n" + HOURS)
    ws.load()
    ws.lifecycle(HOURS, HOURS.replace("installer", "account_manager"))
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:6:70: '2 business hours' needs the business hours of role 'installer'")


def test_a_role_without_business_hours_at_run_time_holds_the_step_with_the_reason(monkeypatch):
    """What the load check prevents (the project here is built without it): an incident, not a crash."""
    monkeypatch.setattr(sys.modules[__name__], "LIFECYCLE", LIFECYCLE.replace(', business_hours: "08:00-17:00"}', "}"))
    timeline = run()
    [incident] = timeline.of_kind("incident")
    assert incident.step == "install_check" and incident.detail == {
        "failure": "policy", "error": "4 business hours: role 'installer' has no business_hours in contact.roles"}
    assert not timeline.of_kind("task")
