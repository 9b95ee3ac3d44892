"""A help desk that completes a task the moment the webhook hands it over, on a real dev server.

The help desk here holds its answer to the task webhook until the test has completed the task:
the delivery activity is still in flight, so the workflow has not heard the hand-off's result.
The completion is taken at once and applied once, and on_done runs when the hand-off answers
(before the patch `task-made-at-hand-off`, it was refused `unknown_task`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from engine.state import Event, TaskCommand, TaskEntity
from harness import FIXTURE, HOLD_AT_MOST, Harness, HelpDesk, arrived, eventually, record_history
from test_tasks_workflow import PLAYBOOK

@pytest.fixture
def webhook_harness(client: Client, tmp_path: Path, desk: HelpDesk) -> Harness:
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    (folder / "set-expectations.yaml").write_text(PLAYBOOK)
    return Harness(client, folder, tmp_path / "state", tasks="webhook",
                   webhook={"url": desk.url, "timeout": HOLD_AT_MOST + 10})


def call(customer: str) -> str:
    return f"lifecycle/{customer}/set_expectations/1/call"


def steps_sent(harness: Harness, customer: str) -> list[str]:
    return [entry["step"] for entry in harness.outbox() if entry["customer_id"] == customer]


async def test_a_task_completed_while_its_webhook_call_is_held_is_taken_and_on_done_runs_once(
        webhook_harness: Harness, desk: HelpDesk, client: Client):
    harness = webhook_harness
    customer = f"ho{uuid.uuid4().hex[:6]}"
    came, release = desk.hold(customer, "call")
    async with harness.worker:
        assert (await harness.start(customer)).status == "accepted"
        await eventually(lambda: arrived(came))
        # The help desk has the task (and its id); the delivery activity has not answered yet.
        order = TaskCommand(task=call(customer), action="complete", outcome="reached",
                            fields={"battery_interest": True}, by="sam", idempotency_key=f"hd-{customer}")
        done = await harness.lifecycles.task_command(customer, order)
        assert isinstance(done, TaskEntity), done  # before the fix: rejected, unknown_task
        assert (done.status, done.outcome, done.by) == ("done", "reached", "sam")
        again = await harness.lifecycles.task_command(customer, order)  # the help desk retries
        assert isinstance(again, TaskEntity) and again.status == "done"
        status = await harness.lifecycles.status(customer)
        assert [record.kind for record in status.recent if record.step == "call"] == []  # not handed off yet
        assert "offer" not in steps_sent(harness, customer)
        release.set()

        await eventually(lambda: _async("offer" in steps_sent(harness, customer)))
        await eventually(lambda: _idle(harness, customer))
        status = await harness.lifecycles.status(customer)
        [task] = [task for task in status.tasks if task.step == "call"]
        assert (task.status, task.outcome, task.fields) == ("done", "reached", {"battery_interest": True})
        completions = [r for r in status.recent if r.kind == "event" and r.detail["event"] == "task.completed"]
        assert len(completions) == 1  # applied once, the retry a duplicate
        assert [r.kind for r in status.recent if r.step == "call"] == ["task"]  # no timeout, no failure
        assert steps_sent(harness, customer).count("offer") == 1 and "no_offer" not in steps_sent(harness, customer)
        assert [body["step"] for body in desk.received if body["customer_id"] == customer] == ["plan_install", "call"]
        await record_history(client, customer, "task-completed-while-its-hand-off-was-in-flight")


async def test_a_task_completed_by_event_and_one_reassigned_while_their_webhook_calls_are_held(
        webhook_harness: Harness, desk: HelpDesk):
    """The `event` update road (POST /v1/events with task.completed, by step id) and a command
    on a task nothing waits for, both while their hand-off is held."""
    harness = webhook_harness
    customer = f"he{uuid.uuid4().hex[:6]}"
    plan_came, plan_release = desk.hold(customer, "plan_install")
    call_came, call_release = desk.hold(customer, "call")
    async with harness.worker:
        assert (await harness.start(customer)).status == "accepted"
        await eventually(lambda: arrived(plan_came))
        moved = await harness.lifecycles.task_command(customer, TaskCommand(
            task=f"lifecycle/{customer}/set_expectations/1/plan_install", action="reassign", assignee="kim"))
        assert isinstance(moved, TaskEntity) and moved.assignee == "kim", moved
        plan_release.set()
        await eventually(lambda: arrived(call_came))
        receipt = await harness.lifecycles.send(Event(customer_id=customer, name="task.completed",
                                                      data={"task": "call", "outcome": "no_answer"}))
        assert receipt.status == "accepted", receipt
        call_release.set()

        await eventually(lambda: _async("no_offer" in steps_sent(harness, customer)))
        await eventually(lambda: _idle(harness, customer))
        status = await harness.lifecycles.status(customer)
        by_step = {task.step: task for task in status.tasks}
        assert (by_step["plan_install"].status, by_step["plan_install"].assignee) == ("open", "kim")
        assert (by_step["call"].status, by_step["call"].outcome) == ("done", "no_answer")
        assert "offer" not in steps_sent(harness, customer)


async def _idle(harness: Harness, customer: str) -> bool:
    status = await harness.lifecycles.status(customer)
    return status.pending is not None and status.pending.step == "idle"


async def _async(value: bool) -> bool:
    return value
