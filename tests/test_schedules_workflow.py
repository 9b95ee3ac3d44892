"""Schedules and splits on a real Temporal dev server: a durable timer across worker restarts,
a branch kept across continue-as-new (tests/fixtures/scheduled, times in seconds)."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.steps.split import choose
from engine.state import Event
from harness import Harness, eventually, pending_step, record_history
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from workflows.contract import EVENT_UPDATE, LifecycleResult, LifecycleStart

FIXTURE = Path(__file__).parent / "fixtures" / "scheduled"
BRANCHES = ["short", "long"]


def customer_in(branch: str) -> str:
    """A new customer id that the split `welcome_test` sends down `branch`."""
    while True:
        customer = f"s-{uuid.uuid4().hex[:6]}"
        if BRANCHES[choose(f"lifecycle/{customer}/active/welcome_test", [1, 1])] == branch:
            return customer


async def sign(harness: Harness, customer: str, remind_at: datetime):
    return await harness.lifecycles.send(Event(
        customer_id=customer, name="contract.signed", data={"remind_at": remind_at.isoformat()},
        customer={"email": f"{customer}@example.com", "consent": {"email": True}}))


def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    return folder


async def test_a_schedule_fires_once_across_a_worker_restart(client: Client, tmp_path: Path):
    folder, state = copy(tmp_path), tmp_path / "state"
    first = Harness(client, folder, state)
    customer = customer_in("short")
    remind_at = datetime.now(timezone.utc) + timedelta(seconds=4)
    async with first.worker:
        assert (await sign(first, customer, remind_at)).status == "accepted"
        await eventually(lambda: pending_step(first, customer, "idle"))
        status = await first.lifecycles.status(customer)
        assert status.next_schedule is not None and status.next_schedule.event == "reminder.due"
    # No worker while the moment passes: the durable timer fires on the server alone.
    await asyncio.sleep(max(0.0, (remind_at - datetime.now(timezone.utc)).total_seconds()) + 1)
    second = Harness(client, folder, state, task_queue=first.task_queue)
    async with second.worker:
        handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.outcome == "reminded"
    assert second.steps(customer) == ["short_welcome", "reminder"]
    fired = [r for r in result.state.timeline if r.kind == "schedule"]
    assert [(r.detail["event"], r.detail["moment"]) for r in fired] == [("reminder.due", remind_at.isoformat())]
    assert [r.detail["branch"] for r in result.state.timeline if r.kind == "split"] == ["short"]
    # A third worker replaying the whole history from scratch decides the same, once.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=CUSTOMER_WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=WORKFLOW_RUNNER)
    await replayer.replay_workflow(WorkflowHistory.from_json(customer, history.to_json()))
    await record_history(client, customer, "schedule-and-split-across-a-worker-restart")


async def test_a_split_branch_and_a_schedule_survive_continue_as_new(client: Client, tmp_path: Path):
    harness = Harness(client, copy(tmp_path), tmp_path / "state", max_history=8)
    customer = customer_in("long")
    remind_at = datetime.now(timezone.utc) + timedelta(seconds=5)
    async with harness.worker:
        await sign(harness, customer, remind_at)
        handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
        result = await asyncio.wait_for(handle.result(), 40)
    runs = [run async for run in client.list_workflows(f"WorkflowId = 'lifecycle/{customer}'")]
    assert len(runs) > 1
    first = min(runs, key=lambda run: run.start_time)
    history = await client.get_workflow_handle(f"lifecycle/{customer}", run_id=first.run_id).fetch_history()
    [continued] = [event.workflow_execution_continued_as_new_event_attributes for event in history.events
                   if event.HasField("workflow_execution_continued_as_new_event_attributes")]
    [carried] = await pydantic_data_converter.decode(continued.input.payloads, [LifecycleStart])
    assert carried.state.resume.path.startswith("0.variants.1.steps.")  # inside the long branch
    assert harness.steps(customer) == ["long_welcome", "long_follow_up", "reminder"]
    assert [r.detail["branch"] for r in result.state.timeline if r.kind == "split"] == ["long"]
    assert [r.detail["event"] for r in result.state.timeline if r.kind == "schedule"] == ["reminder.due"]
    assert result.state.schedules == {"reminder.due": remind_at}


async def test_a_split_tells_operators_its_branch_once_in_the_outbox(client: Client, tmp_path: Path):
    harness = Harness(client, copy(tmp_path), tmp_path / "state")
    customer = customer_in("long")
    remind_at = datetime.now(timezone.utc) + timedelta(seconds=3)
    async with harness.worker:
        await sign(harness, customer, remind_at)
        handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
        result = await asyncio.wait_for(handle.result(), 40)
        # The replay corpus (tests/histories): a split's assignment with its notice (patch split-notices).
        await record_history(client, customer, "split-with-its-notice")
    lines = [line for line in harness.outbox() if line["customer_id"] == customer]
    # One notice, before the branch's first message; the branch's steps as before.
    assert [(line["kind"], line["step"]) for line in lines][:2] == [("notice", "welcome_test"),
                                                                   ("message", "long_welcome")]
    [notice] = [line for line in lines if line["kind"] == "notice"]
    assert notice["title"] == "Split welcome_test: branch long"
    assert notice["id"] == f"lifecycle/{customer}/active/1/welcome_test/split@long"
    assert "short 1 (50%), long 1 (50%)" in notice["guideline"] and "stable hash" in notice["guideline"]
    assert "to" not in notice or notice["to"] is None
    assert harness.steps(customer) == ["long_welcome", "long_follow_up", "reminder"]
    assert [r.detail for r in result.state.timeline if r.kind == "split"] == [{"branch": "long", "kept": False}]
    # Replayed from scratch, the history with its patch marker takes the same path.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=CUSTOMER_WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=WORKFLOW_RUNNER)
    await replayer.replay_workflow(WorkflowHistory.from_json(customer, history.to_json()))


async def test_the_workflow_itself_refuses_a_timestamp_without_its_offset(client: Client, tmp_path: Path):
    """The client checks payloads before it sends (workflows/client.py); a caller of the workflow's
    update that skips it meets the same check inside, on the payload, before anything else."""
    harness = Harness(client, copy(tmp_path), tmp_path / "state")
    customer = customer_in("short")
    async with harness.worker:
        assert (await sign(harness, customer, datetime.now(timezone.utc) + timedelta(hours=1))).status == "accepted"
        handle = client.get_workflow_handle(f"lifecycle/{customer}")
        naive = Event(customer_id=customer, name="contract.signed", data={"remind_at": "2030-01-01T09:00:00"})
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(EVENT_UPDATE, naive)
        assert "must be a timestamp with its UTC offset" in str(info.value.cause)
        assert info.value.cause.type == "EventRejected" and info.value.cause.details[0] == "invalid_payload"
