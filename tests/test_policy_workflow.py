"""The contact policy on a real Temporal dev server: a deferred message is a durable timer."""

from __future__ import annotations

import shutil
import signal
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.client import Client

from engine.calendars import add_business_days, is_business_day

from harness import FIXTURE, Harness, eventually, pending_step, record_history
from test_durability import spawn_worker, stop_worker

# No message for 12 seconds after a ticket is opened: the check-in that falls due meanwhile waits.
CONTACT = """
contact:
  timezone: America/New_York
  calendar: US
  caps:
    - {id: quiet_after_ticket, after: ticket.opened, per: 12s, then: defer}
"""


async def test_a_deferred_message_survives_a_worker_restart_and_goes_out_once_when_allowed(
        client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    lifecycle = folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text() + CONTACT)
    # A task due in business days after the check-in: holidays are computed inside the workflow.
    check_in = folder / "delivery-check-in.yaml"
    check_in.write_text(check_in.read_text().replace("  - kind: goto", """  - kind: task
    id: follow_up
    role: account_manager
    title: Follow up
    guideline: Ask how it went.
    due: 2 business days
  - kind: goto""", 1))
    harness = Harness(client, folder, tmp_path / "state")  # its client only; the worker is a process
    address = client.service_client.config.target_host
    worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    customer = f"d-{uuid.uuid4().hex[:6]}"
    try:
        await harness.start(customer)
        await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
        await harness.event(customer, "ticket.opened", ticket_id="T-1")
        # The check-in (due 2 s after the delivery) is deferred: the stage waits at that send.
        await eventually(lambda: pending_step(harness, customer, "check_in"), timeout=60)
        status = await harness.lifecycles.status(customer)
        assert status.pending is not None and status.pending.deferred == "within 12s after ticket.opened"
        assert "check_in" not in harness.steps(customer)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)

        async def sent() -> bool:
            return "check_in" in harness.steps(customer)

        await eventually(sent, timeout=90)

        async def recorded():
            status = await harness.lifecycles.status(customer)
            return status if any(record.step == "follow_up" for record in status.recent) else None

        status = await eventually(recorded, timeout=30)
        # The replay corpus (tests/histories): a send deferred by the contact policy, across a restart.
        await record_history(client, customer, "contact-policy-deferred-across-restart")
    finally:
        stop_worker(worker)
    assert harness.steps(customer).count("check_in") == 1
    # Operators were told, once, before the message went: a notice in the outbox with the reason.
    told = [(entry["kind"], entry.get("title")) for entry in harness.outbox()
            if entry["customer_id"] == customer and entry["step"] == "check_in"]
    assert [kind for kind, _ in told] == ["notice", "message"]
    assert told[0][1].startswith("Message 'summary' on email deferred to ")
    assert "America/New_York: within 12s after ticket.opened" in told[0][1]
    records = {record.kind: record for record in status.recent if record.step == "check_in"}
    ticket = next(record.at for record in status.recent
                  if record.kind == "event" and record.detail.get("event") == "ticket.opened")
    deferred, message = records["deferred"], records["message"]
    assert deferred.detail["rule"] == "quiet_after_ticket"
    assert deferred.detail["until"] == (ticket + timedelta(seconds=12)).isoformat()
    # Local time, from zoneinfo inside the workflow.
    local = (ticket + timedelta(seconds=12)).astimezone(ZoneInfo("America/New_York"))
    assert deferred.detail["local"] == f"{local:%Y-%m-%d %H:%M} America/New_York"
    assert message.at >= ticket + timedelta(seconds=12)
    task = next(record for record in status.recent if record.kind == "task" and record.step == "follow_up")
    # Due two US business days after it was created (a moment before it was recorded), same clock time.
    due = datetime.fromisoformat(task.detail["due_at"])
    assert due in {add_business_days(task.at - timedelta(seconds=seconds), 2, "US").replace(
        hour=due.hour, minute=due.minute, second=due.second, microsecond=due.microsecond) for seconds in (0, 5)}
    assert is_business_day(due, "US") and timedelta(days=2) <= due - task.at + timedelta(seconds=5) <= timedelta(days=6)
