"""The task inbox on a real dev server: tasks of several customers found by role, assignee and
overdue state through visibility; completed with a structured outcome that branches; reassigned,
snoozed and cancelled; unknown and closed tasks refused."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from engine.state import EventReceipt, TaskCommand, TaskEntity
from harness import Harness, eventually, record_history
from test_reminders_workflow import PLAYBOOK as REMINDED_PLAYBOOK
from workflows.client import TaskFilter

PLAYBOOK = """\
playbook: set_expectations
steps:
  - {kind: promise, id: promise_delivery, promise: delivery_date, about: delivery_date,
     expected: event.data.promised_delivery, made_by: account_manager}
  - {kind: task, id: plan_install, role: warranty_technician, title: Plan the installation,
     guideline: Call before you go., due: 1s}
  - kind: task
    id: call
    role: account_manager
    title: Call about the order
    guideline: Listen first.
    due: 1d
    remind: 1h
    outcomes: [reached, no_answer]
    fields: {battery_interest: bool}
    on_done:
      - kind: if
        when: event.data.outcome == 'reached' && event.data.fields.battery_interest == true
        then: [{kind: send, id: offer, template: summary}]
        else: [{kind: send, id: no_offer, template: summary}]
  - {kind: wait_for, id: idle, events: [survey.answered]}
"""


@pytest.fixture
def tasks_harness(harness: Harness) -> Harness:
    (harness.folder / "set-expectations.yaml").write_text(PLAYBOOK)
    return harness


async def open_tasks(harness: Harness, **which) -> list[TaskEntity]:
    page = await harness.lifecycles.tasks(TaskFilter(**which))
    assert page.unavailable == []  # only this test's lifecycles are on its task queue
    return page.tasks


async def listed(harness: Harness, customers: set[str], expected: set[tuple[str, str]], **which) -> bool:
    """Whether the inbox shows exactly `expected` (customer, step) among `customers`."""
    found = {(task.customer_id, task.step) for task in await open_tasks(harness, **which)
             if task.customer_id in customers}
    return found == expected


async def command(harness: Harness, customer: str, **order) -> TaskEntity | EventReceipt:
    return await harness.lifecycles.task_command(customer, TaskCommand(**order))


async def test_the_inbox_lists_tasks_by_role_assignee_and_overdue_and_commands_change_them(tasks_harness):
    harness = tasks_harness
    run = uuid.uuid4().hex[:6]
    c1, c2, c3 = (f"t{run}-{n}" for n in (1, 2, 3))
    customers = {c1, c2, c3}
    for customer in customers:
        assert (await harness.start(customer)).status == "accepted"

    every_plan = {(c, "plan_install") for c in customers}
    every_call = {(c, "call") for c in customers}
    await eventually(lambda: listed(harness, customers, every_plan, role="warranty_technician"))
    await eventually(lambda: listed(harness, customers, every_call, role="account_manager"))
    # `plan_install` is due after 1s: overdue, and listed so; the calls are not.
    await eventually(lambda: listed(harness, customers, every_plan, status="overdue"))

    # Complete with a structured outcome: on_done branches on it.
    call_1 = f"lifecycle/{c1}/set_expectations/1/call"
    done = await command(harness, c1, task=call_1, action="complete", outcome="reached",
                         fields={"battery_interest": True}, by="ada")
    assert isinstance(done, TaskEntity) and (done.status, done.outcome, done.by) == ("done", "reached", "ada")
    assert done.fields == {"battery_interest": True}
    # The step id still names the task, as `task.completed` always took it.
    other = await harness.event(c2, "task.completed", task="call", outcome="no_answer")
    assert other.status == "accepted"
    await eventually(lambda: _steps_sent(harness, {c1: "offer", c2: "no_offer"}))

    # Refusals: an outcome or field the task does not declare, a closed task, an unknown one.
    wrong = await command(harness, c3, task="call", action="complete", outcome="reachd")
    assert isinstance(wrong, EventReceipt) and (wrong.code, wrong.field) == ("invalid_payload", "outcome")
    wrong = await command(harness, c3, task="call", action="complete", outcome="reached",
                          fields={"battery_interest": "yes"})
    assert (wrong.code, wrong.field) == ("invalid_payload", "fields.battery_interest")
    again = await command(harness, c1, task=call_1, action="complete", outcome="reached")
    assert isinstance(again, EventReceipt) and again.code == "task_closed"
    unknown = await command(harness, c1, task="no_such_task", action="cancel")
    assert isinstance(unknown, EventReceipt) and unknown.code == "unknown_task"

    # Reassign c3's call with a new due time; snooze c2's plan; cancel c1's plan.
    soon = datetime.now(timezone.utc) + timedelta(hours=3)
    moved = await command(harness, c3, task="call", action="reassign", assignee="sam", until=soon)
    assert isinstance(moved, TaskEntity) and (moved.assignee, moved.due_at) == ("sam", soon)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    snoozed = await command(harness, c2, task="plan_install", action="snooze", until=later)
    assert isinstance(snoozed, TaskEntity) and snoozed.due_at == later
    cancelled = await command(harness, c1, task="plan_install", action="cancel", reason="installed already")
    assert isinstance(cancelled, TaskEntity) and cancelled.status == "cancelled"

    await eventually(lambda: listed(harness, customers, {(c3, "call")}, assignee="sam"))
    await eventually(lambda: listed(harness, customers, {(c3, "plan_install")}, status="overdue"))
    await eventually(lambda: listed(harness, customers, {(c2, "plan_install"), (c3, "plan_install"), (c3, "call")}))
    # c1 has no open task left: visibility no longer lists its lifecycle in the inbox at all.
    await eventually(lambda: _not_in_inbox(harness, c1))
    status = await harness.lifecycles.status(c3)
    [call] = [task for task in status.tasks if task.step == "call"]
    assert (call.status, call.assignee, call.waited) == ("open", "sam", True)
    await record_history(harness.lifecycles.client, c1, "task-completed-with-an-outcome-plan-cancelled")
    await record_history(harness.lifecycles.client, c3, "task-reassigned-with-a-new-due-time-while-waited-for")


async def _steps_sent(harness: Harness, wanted: dict[str, str]) -> bool:
    sent = {(entry["customer_id"], entry["step"]) for entry in harness.outbox() if entry["kind"] == "message"}
    return all((customer, step) in sent for customer, step in wanted.items())


async def _not_in_inbox(harness: Harness, customer: str) -> bool:
    query = f"LifecycleTaskRoles IS NOT NULL AND CustomerId = '{customer}'"
    return not [execution async for execution in harness.lifecycles.client.list_workflows(query)]


async def test_the_task_hand_off_carries_what_a_help_desk_needs_to_call_back(tasks_harness):
    harness = tasks_harness
    customer = f"h{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    record = await eventually(lambda: _task_record(harness, customer, "call"))
    assert record["task_id"] == f"lifecycle/{customer}/set_expectations/1/call" == record["id"]
    assert (record["role"], record["outcomes"]) == ("account_manager", ["reached", "no_answer"])
    assert record["fields"]["properties"] == {"battery_interest": {"type": "boolean"}}
    assert record["due_at"] and record["guideline"] == "Listen first."


async def _task_record(harness: Harness, customer: str, step: str) -> dict | None:
    return next((entry for entry in harness.outbox()
                 if entry["customer_id"] == customer and entry["step"] == step and entry["kind"] == "task"), None)


# ---------------------------------------------------------------- the CLI road

async def test_the_cli_lists_the_inbox_and_completes_reassigns_snoozes_and_cancels(tasks_harness):
    import asyncio
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    harness = tasks_harness
    lifecycle = str(Path(sys.executable).parent / "lifecycle")
    env = {**os.environ, "TEMPORAL_ADDRESS": harness.lifecycles.client.service_client.config.target_host,
           "LIFECYCLE_PLAYBOOKS": str(harness.folder), "LIFECYCLE_TASK_QUEUE": harness.task_queue}

    async def cli(*args: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(subprocess.run, [lifecycle, *args], env=env, capture_output=True,
                                       text=True, timeout=60)

    customer = f"cli{uuid.uuid4().hex[:6]}"
    await harness.start(customer)

    async def mine(*args: str) -> list[dict]:
        answer = await cli("tasks", "--json", *args)
        assert answer.returncode == 0, answer.stderr
        return [task for task in json.loads(answer.stdout) if task["customer_id"] == customer]

    assert {t["step"] for t in await eventually(lambda: mine("--role", "account_manager"))} == {"call"}
    assert {t["step"] for t in await eventually(lambda: mine("--overdue"))} == {"plan_install"}
    table = await cli("tasks", "--role", "warranty_technician")
    assert f"[lifecycle/{customer}/set_expectations/1/plan_install]" in table.stdout and "overdue" in table.stdout
    # The call is reminded an hour before it is due (`remind: 1h`): the table says when.
    [call_task] = await mine("--role", "account_manager")
    reminder = datetime.fromisoformat(call_task["reminder_at"])
    assert reminder == datetime.fromisoformat(call_task["due_at"]) - timedelta(hours=1)
    table = await cli("tasks", "--role", "account_manager")
    [line] = [line for line in table.stdout.splitlines() if f"[lifecycle/{customer}/" in line]
    assert f"Call about the order  (reminder {reminder:%Y-%m-%d %H:%M})  [" in line, line
    status = await cli("status", customer)
    assert f", reminder {reminder:%Y-%m-%d %H:%M:%S}, open [lifecycle/{customer}/set_expectations/1/call]" \
        in status.stdout, status.stdout

    done = await cli("task", "done", "call", "--customer", customer, "--outcome", "no_answer", "--by", "ada")
    assert (done.returncode, done.stdout.split(":")[0]) == (0, "done"), done.stderr
    wrong = await cli("task", "done", f"lifecycle/{customer}/set_expectations/1/plan_install", "--fields", "[1]")
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: --fields: expected a JSON object"
    closed = await cli("task", "done", "call", "--customer", customer)
    assert closed.returncode == 1 and "[task_closed]" in closed.stderr and "Traceback" not in closed.stderr
    moved = await cli("task", "reassign", "plan_install", "sam", "--customer", customer, "--until", "2h")
    assert moved.returncode == 0 and "assigned to sam" in moved.stdout, moved.stderr
    status = await cli("status", customer)
    assert f"task      plan_install: warranty_technician (sam), due " in status.stdout, status.stdout
    snoozed = await cli("task", "snooze", "plan_install", "2030-01-01T09:00:00+00:00", "--customer", customer)
    assert snoozed.returncode == 0 and "due 2030-01-01 09:00" in snoozed.stdout, snoozed.stderr
    naive = await cli("task", "snooze", "plan_install", "2030-01-01T09:00:00", "--customer", customer)
    assert naive.returncode == 1 and "needs a time zone" in naive.stderr
    cancelled = await cli("task", "cancel", f"lifecycle/{customer}/set_expectations/1/plan_install", "--reason", "x")
    assert cancelled.returncode == 0 and cancelled.stdout.startswith("cancelled:"), cancelled.stderr
    unknown = await cli("task", "cancel", "nope", "--customer", customer)
    assert unknown.returncode == 1 and "no task 'nope'" in unknown.stderr
    await eventually(lambda: _not_in_inbox(harness, customer))


# ---------------------------------------------------------------- durability

async def test_the_inbox_is_right_after_a_worker_is_killed_and_restarted(client, tmp_path):
    """Workers killed with SIGKILL between commands: on restart the lifecycles replay (patch
    markers, upserts and all) and the inbox shows what the commands made of the tasks."""
    import shutil
    import signal

    from harness import FIXTURE
    from test_durability import spawn_worker, stop_worker

    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    (folder / "set-expectations.yaml").write_text(PLAYBOOK)
    harness = Harness(client, folder, tmp_path / "state")  # its client only; workers are processes
    address = client.service_client.config.target_host
    worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    run = uuid.uuid4().hex[:6]
    c1, c2, c3 = (f"k{run}-{n}" for n in (1, 2, 3))
    customers = {c1, c2, c3}
    try:
        for customer in customers:
            await harness.start(customer)
        await eventually(lambda: listed(harness, customers, {(c, "call") for c in customers}, role="account_manager"),
                         timeout=90)
        done = await command(harness, c1, task="call", action="complete", outcome="reached",
                             fields={"battery_interest": False})
        assert isinstance(done, TaskEntity)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        # No worker: the inbox still answers, naming the lifecycles it could not ask.
        page = await harness.lifecycles.tasks(TaskFilter(role="warranty_technician"))
        assert (page.tasks, page.unavailable) == ([], sorted(customers))
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
        until = datetime.now(timezone.utc) + timedelta(hours=1)
        snoozed = await eventually(lambda: _accepted(command(harness, c2, task="plan_install", action="snooze",
                                                             until=until)), timeout=90)
        assert snoozed.due_at == until
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
        cancelled = await eventually(lambda: _accepted(command(harness, c3, task="call", action="cancel")),
                                     timeout=90)
        assert cancelled.status == "cancelled"
        await eventually(lambda: listed(harness, customers, {(c1, "plan_install"), (c3, "plan_install")},
                                        status="overdue"), timeout=60)
        await eventually(lambda: listed(harness, customers, {(c1, "plan_install"), (c2, "plan_install"),
                                                             (c2, "call"), (c3, "plan_install")}), timeout=60)
        await eventually(lambda: _steps_sent(harness, {c1: "no_offer"}), timeout=60)
    finally:
        stop_worker(worker)


async def _accepted(answer) -> TaskEntity | None:
    """The task, once a worker took the command (a restarting worker may not answer at first)."""
    try:
        result = await answer
    except Exception:  # no worker yet: the update times out or Temporal says so
        return None
    return result if isinstance(result, TaskEntity) else None


# ---------------------------------------------------------------- business hours

# The reminders test's playbook (a promise, a reminded task, a wait), due in business hours.
BUSINESS_HOURS = REMINDED_PLAYBOOK % {"due": "2 business hours", "remind": "1h"}


def evening_zone(now: datetime) -> str:
    """A fixed-offset zone where it is now between 18:00 and 21:59: after the close of 08:00-17:00."""
    for offset in range(-12, 15):
        if 18 <= (now + timedelta(hours=offset)).hour <= 21:
            return f"Etc/GMT{-offset:+d}"  # Etc/GMT-3 is UTC+3: the sign is the other way round
    raise AssertionError("every hour of the day is in one of 27 offsets")


async def test_a_task_due_in_business_hours_waits_for_the_next_business_morning_and_a_snooze_fires_on_time(
        harness: Harness):
    from zoneinfo import ZoneInfo

    from engine.calendars import add_business_hours, is_business_date

    zone = evening_zone(datetime.now(timezone.utc) + timedelta(minutes=1))
    lifecycle = harness.folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text() + f"contact:\n  calendar: US\n  roles:\n    account_manager: "
                                                 f"{{timezone: '{zone}', business_hours: '08:00-17:00'}}\n")
    (harness.folder / "set-expectations.yaml").write_text(BUSINESS_HOURS)
    customer = f"bh{uuid.uuid4().hex[:6]}"
    assert (await harness.start(customer)).status == "accepted"

    async def the_call() -> TaskEntity | None:
        status = await harness.lifecycles.status(customer)
        task = next((task for task in status.tasks if task.step == "call"), None)
        return task if task is not None and task.reminder_at is not None else None

    task = await eventually(the_call)
    # Created in the evening, local time: due at 10:00 on the next business day of the US calendar.
    created, due = task.created_at.astimezone(ZoneInfo(zone)), task.due_at.astimezone(ZoneInfo(zone))
    assert (due.hour, due.minute) == (10, 0) and due.date() > created.date() and is_business_date(due.date(), "US")
    assert task.due_at == add_business_hours(task.created_at, 2, "US", zone, "08:00", "17:00")
    assert task.reminder_at == task.due_at - timedelta(hours=1)
    # The workflow's timer is armed for that moment (the reminder first), not for 2 hours from now.
    history = await harness.lifecycles.client.get_workflow_handle(f"lifecycle/{customer}").fetch_history()
    [timer] = [event for event in history.events if event.HasField("timer_started_event_attributes")][-1:]
    fires = timer.event_time.ToDatetime(timezone.utc) + \
        timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    assert abs(fires - task.reminder_at) < timedelta(seconds=2)
    # The inbox shows the reminder it waits for.
    [listed_task] = [t for t in await open_tasks(harness, role="account_manager") if t.customer_id == customer]
    assert (listed_task.due_at, listed_task.reminder_at) == (task.due_at, task.reminder_at)

    # A snooze to a time seconds away moves the clock: on_overdue runs then, and no reminder (its
    # moment, an hour before, has passed).
    until = datetime.now(timezone.utc) + timedelta(seconds=4)
    snoozed = await command(harness, customer, task=task.id, action="snooze", until=until)
    assert isinstance(snoozed, TaskEntity) and snoozed.due_at == until
    await eventually(lambda: _async("late" in harness.steps(customer)))
    status = await harness.lifecycles.status(customer)
    [timeout] = [record for record in status.recent if record.kind == "timeout"]
    assert until <= timeout.at < until + timedelta(seconds=10)
    assert not [record for record in status.recent if record.kind == "task_reminded"]


async def _async(value):
    return value
