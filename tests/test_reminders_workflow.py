"""Reminders before a task is due on a real dev server: the reminder reaches the outbox (the
task hand-off) and the timeline at due minus its span, not for a task done before, and on a
durable timer that outlives a worker killed with SIGKILL."""

from __future__ import annotations

import shutil
import signal
import uuid
from datetime import datetime, timedelta

from harness import FIXTURE, Harness, eventually, record_history

PLAYBOOK = """\
playbook: set_expectations
steps:
  - {kind: promise, id: promise_delivery, promise: delivery_date, about: delivery_date,
     expected: event.data.promised_delivery, made_by: account_manager}
  - kind: task
    id: call
    role: account_manager
    title: Call about the order
    guideline: Listen first.
    due: %(due)s
    remind: %(remind)s
    on_done: [{kind: send, id: thanks, template: summary}]
    on_overdue: [{kind: send, id: late, template: summary}]
  - {kind: wait_for, id: idle, events: [survey.answered]}
"""


def reminders(harness: Harness, customer: str) -> list[dict]:
    return [entry for entry in harness.outbox() if entry["customer_id"] == customer and entry["kind"] == "reminder"]


def task_of(harness: Harness, customer: str) -> dict | None:
    return next((entry for entry in harness.outbox()
                 if entry["customer_id"] == customer and entry["kind"] == "task"), None)


async def test_a_reminder_reaches_the_outbox_and_the_timeline_at_due_minus_its_span(harness: Harness):
    (harness.folder / "set-expectations.yaml").write_text(PLAYBOOK % {"due": "12s", "remind": "[10s]"})
    run = uuid.uuid4().hex[:6]
    waiting, done = f"r{run}-1", f"r{run}-2"
    for customer in (waiting, done):
        assert (await harness.start(customer)).status == "accepted"
    # Completed the moment the outbox has it (the workflow may not have the delivery's result yet).
    await eventually(lambda: _async(task_of(harness, done)))
    receipt = await harness.event(done, "task.completed", task="call")
    assert receipt.status == "accepted", receipt

    [reminder] = await eventually(lambda: _async(reminders(harness, waiting)))
    task = task_of(harness, waiting)
    assert reminder["task_id"] == task["task_id"] == f"lifecycle/{waiting}/set_expectations/1/call"
    assert (reminder["role"], reminder["due_at"]) == ("account_manager", task["due_at"])
    due = datetime.fromisoformat(task["due_at"])
    status = await harness.lifecycles.status(waiting)
    [record] = [record for record in status.recent if record.kind == "task_reminded"]
    assert record.detail["task"] == task["task_id"] and record.detail["due_at"] == due.isoformat()
    assert record.detail["action_id"] == reminder["id"] == f"{task['task_id']}/reminder@" \
        f"{(due - timedelta(seconds=10)).isoformat()}"
    # Two seconds (the span is 10s of a 12s due) after the task: not before, and before due.
    created = next(r.at for r in status.recent if r.kind == "task")
    assert 1.5 <= (record.at - created).total_seconds() < 12

    # The task done before its reminder moment: none for it, then or after it would have been due.
    await eventually(lambda: _async("late" in harness.steps(waiting)))
    assert reminders(harness, done) == []
    assert "thanks" in harness.steps(done)


async def test_a_reminder_survives_a_worker_killed_before_its_moment(client, tmp_path):
    from test_durability import spawn_worker, stop_worker

    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    # The reminder comes 30 s after the task: room for the kill and a restart under load (a
    # moment already past when the new worker arms the wait gets no reminder, by design).
    (folder / "set-expectations.yaml").write_text(PLAYBOOK % {"due": "150s", "remind": "[120s]"})
    harness = Harness(client, folder, tmp_path / "state")  # its client only; workers are processes
    address = client.service_client.config.target_host
    worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    customer = f"k{uuid.uuid4().hex[:6]}"
    try:
        await harness.start(customer)
        await eventually(lambda: _async(task_of(harness, customer)), timeout=90)
        # The reminder is 30s away, its due time 150s: its timer is on the server. (A worker down
        # past the due time too would find the task overdue: no reminder then, the escalation.)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert reminders(harness, customer) == []
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
        [reminder] = await eventually(lambda: _async(reminders(harness, customer)), timeout=90)
        assert reminder["task_id"] == f"lifecycle/{customer}/set_expectations/1/call"
        # The reminder was an earlier wake-up: the task is still open and waited on until due.
        status = await eventually(lambda: _reminded_status(harness, customer), timeout=30)
        assert status.pending is not None and status.pending.step == "call"
        assert status.pending.until == datetime.fromisoformat(reminder["due_at"])
        assert [task.status for task in status.tasks] == ["open"]
        await record_history(client, customer, "task-reminded-across-a-worker-restart")
    finally:
        stop_worker(worker)


async def _reminded_status(harness: Harness, customer: str):
    status = await harness.lifecycles.status(customer)
    return status if any(record.kind == "task_reminded" for record in status.recent) else None


async def _async(value):
    return value
