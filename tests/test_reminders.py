"""Reminders before a task is due (`remind`, engine.reminders), through the simulator and the
loader: no Temporal. The dev-server test is in tests/test_tasks_workflow.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import yaml

from cli.simulate import format_timeline
from engine import tasks
from engine.model import Playbook
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event, TaskCommand
from workspace import in_memory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)

LIFECYCLE = """
lifecycle: test
channels:
  email: {contact: email}
roles:
  installer: Installs.
  project_manager: Escalations.
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
    due: 2d
    remind: %s
    on_done: [{kind: set, id: checked, var: checked, value: "true"}]
    on_overdue:
      - {kind: task, id: escalate, role: project_manager, title: Escalated, guideline: Call today.}
  - {kind: wait, id: idle, duration: 60d}
"""

CUSTOMER = {"id": "c1", "email": "c1@example.com", "consent": {"email": True}}


def run(*events: ScheduledEvent, remind: str = "[4h]", hours: float = 24 * 10, continue_as_new: bool = False):
    project = in_memory(LIFECYCLE, {"install": INSTALL % remind})
    start = ScheduledEvent(T0, Event(customer_id="c1", name="order.placed"))
    return simulate(project, CUSTOMER, [start, *events], until=T0 + timedelta(hours=hours),
                    continue_as_new=continue_as_new)


def at(hours: float, name: str, **data) -> ScheduledEvent:
    return ScheduledEvent(T0 + hours * HOUR, Event(customer_id="c1", name=name, data=data))


def command(hours: float, **order) -> ScheduledEvent:
    return ScheduledEvent(T0 + hours * HOUR, task=TaskCommand(**order))


def reminded(timeline) -> list:
    return [record for record in timeline.records if record.kind == "task_reminded"]


def reminders_sent(timeline) -> list:
    return [action for action in timeline.actions if action.kind == "reminder"]


def test_a_reminder_is_acted_and_recorded_the_span_before_due():
    timeline = run()
    due = T0 + 48 * HOUR
    [record] = reminded(timeline)
    assert record.at == due - 4 * HOUR and record.step == "install_check"
    task_id = "lifecycle/c1/install/1/install_check"
    assert record.detail == {"task": task_id, "role": "installer", "assignee": None, "due_at": due.isoformat(),
                             "action_id": f"{task_id}/reminder@{(due - 4 * HOUR).isoformat()}"}
    [action] = reminders_sent(timeline)
    assert (action.kind, action.role, action.task_id, action.due_at) == ("reminder", "installer", task_id, due)
    assert action.title.startswith("Reminder: Check the installation")
    # The reminder is an earlier wake-up, not the end of the wait: the task still escalates at due.
    [timeout] = [record for record in timeline.records if record.kind == "timeout"]
    assert timeout.at == due and "escalate" in timeline.steps()
    assert tasks.find(timeline.state, "install_check").reminder_at is None


def test_several_spans_give_one_reminder_each_in_time_order_and_a_single_value_is_a_list():
    several = run(remind="[4h, 1d, 4h]")
    assert [record.at for record in reminded(several)] == [T0 + 24 * HOUR, T0 + 44 * HOUR]
    single = run(remind="30m")
    assert [record.at for record in reminded(single)] == [T0 + 48 * HOUR - timedelta(minutes=30)]


def test_no_reminder_for_a_task_completed_or_cancelled_before_the_moment():
    done = run(at(10, "task.completed", task="install_check"))
    assert reminded(done) == [] and reminders_sent(done) == []
    assert done.state.vars["checked"] is True
    cancelled = run(command(10, task="install_check", action="cancel", reason="done on site"))
    assert reminded(cancelled) == [] and reminders_sent(cancelled) == []


def test_no_reminder_after_the_stage_is_left():
    timeline = run(at(10, "customer.lost"))
    assert reminded(timeline) == [] and timeline.state.stage == "lost"


def test_a_snooze_moves_the_reminder_with_the_due_time():
    new_due = T0 + 96 * HOUR
    timeline = run(command(10, task="install_check", action="snooze", until=new_due))
    [record] = reminded(timeline)
    assert record.at == new_due - 4 * HOUR and record.detail["due_at"] == new_due.isoformat()
    [timeout] = [record for record in timeline.records if record.kind == "timeout"]
    assert timeout.at == new_due


def test_a_snooze_after_a_reminder_reminds_again_before_the_new_due_time():
    new_due = T0 + 96 * HOUR
    timeline = run(command(46, task="install_check", action="snooze", until=new_due))
    assert [record.at for record in reminded(timeline)] == [T0 + 44 * HOUR, new_due - 4 * HOUR]


def test_a_reassignment_reminds_the_assignee():
    timeline = run(command(10, task="install_check", action="reassign", assignee="sam"))
    [record] = reminded(timeline)
    [action] = reminders_sent(timeline)
    assert record.detail["assignee"] == action.assignee == "sam"


def test_a_moment_already_past_when_the_due_time_is_set_gets_no_reminder():
    # Snoozed at hour 10 to hour 12: the 4h reminder would fall at hour 8, before the snooze.
    timeline = run(command(10, task="install_check", action="snooze", until=T0 + 12 * HOUR))
    assert reminded(timeline) == []
    [timeout] = [record for record in timeline.records if record.kind == "timeout"]
    assert timeout.at == T0 + 12 * HOUR


def test_reminders_are_the_same_when_the_lifecycle_continues_as_new_at_every_wait():
    snooze = command(46, task="install_check", action="snooze", until=T0 + 96 * HOUR)
    plain = run(snooze, remind="[1d, 4h]")
    renewed = run(snooze, remind="[1d, 4h]", continue_as_new=True)
    assert renewed.runs > 3
    assert [(r.at, r.detail) for r in reminded(renewed)] == [(r.at, r.detail) for r in reminded(plain)]
    assert len(reminded(plain)) == 4 and len(reminders_sent(renewed)) == 4


def test_the_simulator_shows_the_reminder_on_the_timeline():
    text = format_timeline(run())
    [line] = [line for line in text.splitlines() if "task_reminded" in line]
    assert line.startswith("2026-03-04 05:00") and "installer" in line and "due 2026-03-04 09:00" in line
    assert "[install_check]" in line


def test_the_graph_box_of_the_task_names_its_reminders():
    playbook = Playbook.model_validate(yaml.safe_load(INSTALL % "[1d, 4h]"))
    assert playbook.steps[0].describe() == ("box", ["task installer (due 2d, remind 1d, 4h)",
                                                    "Check the installation"])


# ---------------------------------------------------------------- load checks

TASK = """\
- kind: task
  id: call
  role: account_manager
  title: Call
  guideline: Listen.
"""
WAITS = "  on_done: [{kind: end, outcome: done}]\n"


def test_remind_without_due_is_an_error_at_the_key(ws):
    ws.sale(TASK + "  remind: [4h]\n" + WAITS)
    assert ws.errors() == ["p/sale.yaml:8:5: 'remind' needs 'due': a reminder is this long before the task is due"]


def test_remind_on_a_task_nothing_waits_on_is_refused(ws):
    ws.sale(TASK + "  due: 2d\n  remind: 4h\n")
    assert ws.errors() == ["p/sale.yaml:9:5: 'remind' needs 'on_done' or 'on_overdue': only a task the stage "
                           "waits on is reminded"]


def test_a_reminder_not_shorter_than_due_is_an_error_at_its_span(ws):
    ws.sale(TASK + "  due: 2d\n  remind: [4h, 2d, 3d]\n" + WAITS)
    assert ws.errors() == [
        "p/sale.yaml:9:18: a reminder 2d before 'due' (2d) would come before the task",
        "p/sale.yaml:9:22: a reminder 3d before 'due' (2d) would come before the task",
    ]


def test_a_reminder_of_no_time_before_due_is_an_error(ws):
    ws.sale(TASK + "  due: 2 business days\n  remind: [0s]\n" + WAITS)
    errors = ws.errors()
    assert "p/sale.yaml:9:14: a reminder must be some time before 'due', not 0" in errors


def test_a_bad_reminder_duration_is_an_error_at_its_span(ws):
    ws.sale(TASK + "  due: 2d\n  remind: [4h, soon]\n" + WAITS)
    [error] = ws.errors()
    assert error.startswith("p/sale.yaml:9:18: ") and "'soon' is not a duration" in error


def test_a_reminder_of_a_task_due_in_business_days_or_by_an_expression_loads(ws):
    ws.sale(TASK + "  due: days(2)\n  remind: [1d]\n" + WAITS)
    ws.load()


# ---------------------------------------------------------------- `lifecycle test` cases

def test_a_case_file_can_expect_the_reminders_of_a_task():
    from engine.casefile import compare

    timeline = run(remind="[1d, 4h]")
    assert compare({"reminded": {"install_check": 2}}, timeline) == []
    assert compare({"reminded": {"install_check": 0}}, timeline) == [
        "reminded.install_check: expected 0 reminders, got 2"]
    done = run(at(10, "task.completed", task="install_check"), remind="[1d, 4h]")
    assert compare({"reminded": {"install_check": 1}}, done) == [
        "reminded.install_check: expected 1 reminder, got 0"]


def test_a_malformed_reminded_expectation_is_located(tmp_path):
    import pytest

    from engine.casefile import CaseError, load_case

    path = tmp_path / "case.yaml"
    path.write_text("name: reminded\nevents:\n  - {at: 0d, event: order.placed}\nexpect:\n"
                    "  reminded: {call: yes}\n")
    with pytest.raises(CaseError) as error:
        load_case(path)
    assert str(error.value) == (f"{path}:5:13: 'reminded' must be a mapping of task step id to a number of "
                                f"reminders, e.g. {{call: 1}}")
