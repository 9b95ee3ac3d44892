"""Every timeline record reaches the analytics store exactly once, from a real worker."""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.delivery import Delivery
from analytics.activity import RecordSink
from analytics.journal import JOURNAL_FILE

from analytics.store import STORE_FILE, StoreBusy, StoreError, open_store
from harness import FIXTURE, Harness, eventually, long_lifecycle, pending_step, record_history, stage_of
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from workflows.client import LifecycleClient
from workflows.contract import LifecycleResult


def stored(harness: Harness, customer: str) -> list[dict]:
    path = harness.settings.state_dir / STORE_FILE
    if not path.exists():
        return []
    with open_store(path) as store:
        return store.query("SELECT chain, seq, kind, stage, step FROM records WHERE customer_id = ? ORDER BY seq",
                           [customer])


async def test_a_finished_lifecycle_has_every_record_in_the_store_once(harness: Harness, client: Client):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer, preferred_channel="email")
    await eventually(lambda: stage_of(harness, customer, "set_expectations"))
    await harness.event(customer, "order.delivered", delivered_at="2026-03-12")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    await harness.event(customer, "survey.answered", score=10)
    result = await client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult).result()
    timeline = result.state.timeline

    async def all_stored() -> bool:  # the workflow ends once its records are journaled
        return len(stored(harness, customer)) >= len(timeline)

    await eventually(all_stored)
    rows = stored(harness, customer)
    assert result.state.recorded == len(timeline) == len(rows)
    assert [row["seq"] for row in rows] == list(range(len(timeline)))
    assert [(row["kind"], row["stage"], row["step"]) for row in rows] == \
        [(record.kind, record.stage, record.step) for record in timeline]
    assert len({row["chain"] for row in rows}) == 1
    with open_store(harness.settings.state_dir / STORE_FILE) as store:
        assert store.query("SELECT preferred_channel FROM customers WHERE customer_id = ?", [customer]) == \
            [{"preferred_channel": "email"}]
    await record_history(client, customer, "records-ride-with-deliveries")


async def test_records_a_delivery_could_not_journal_are_sent_on_their_own(client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")
    broken = tmp_path / "broken"
    (broken / JOURNAL_FILE).mkdir(parents=True)  # the deliveries' journal cannot be written
    store = RecordSink(harness.settings.state_dir)  # store_records' can
    queue = f"broken-journal-{uuid.uuid4().hex[:6]}"  # not the harness worker's
    harness.lifecycles = LifecycleClient(client, harness.source.project().lifecycle, queue)
    delivery = Delivery(harness.settings, RecordSink(broken))
    worker = Worker(client, task_queue=queue, workflows=CUSTOMER_WORKFLOWS,
                    activities=[delivery.deliver_all, delivery.deliver_with_records, harness.source.load_stage,
                                store.store_records],
                    workflow_runner=WORKFLOW_RUNNER)
    async with worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await harness.start(customer)
        await harness.event(customer, "order.delivered", delivered_at="2026-03-12")
        await eventually(lambda: pending_step(harness, customer, "await_survey"))
        await harness.event(customer, "survey.answered", score=10)
        result = await client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult).result()
        await store.flush()
    assert harness.steps(customer) == ["summary", "apology", "check_in", "survey", "ask_referral"]
    assert [row["seq"] for row in stored(harness, customer)] == list(range(result.state.recorded))


async def test_records_keep_their_ids_across_continue_as_new(client: Client, tmp_path: Path):
    async with long_lifecycle(client, tmp_path) as (harness, customer):
        runs = [run async for run in client.list_workflows(f"WorkflowId = 'lifecycle/{customer}'")]
        assert len(runs) > 1
        status = await harness.lifecycles.status(customer)
        expected = [(r.kind, r.step) for r in status.recent]

        async def all_stored() -> bool:
            return len(stored(harness, customer)) >= len(expected)

        await eventually(all_stored)
        rows = stored(harness, customer)
        assert [row["seq"] for row in rows] == list(range(len(rows)))  # no gap, no second copy
        assert len({row["chain"] for row in rows}) == 1  # one lifecycle, however many runs
        assert [(row["kind"], row["step"]) for row in rows][-len(expected):] == expected


async def test_records_are_stored_exactly_once_across_worker_kills(client: Client, tmp_path: Path):
    """Workers killed -9 while events pour in (records being written): afterwards every record of
    every lifecycle is in the store once: no gap, no second copy under another lifecycle."""
    from test_durability import spawn_worker, stop_worker

    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    warranty = folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("timeout: 30s", "timeout: 300s"))
    state = tmp_path / "state"
    harness = Harness(client, folder, state)  # its client only; the workers are processes
    address = client.service_client.config.target_host
    worker = spawn_worker(address, folder, state, harness.task_queue)
    customers = [f"x-{uuid.uuid4().hex[:6]}" for _ in range(4)]

    async def tickets(first: int, count: int) -> None:
        await asyncio.gather(*(harness.event(customer, "ticket.opened", key=f"t{n}", ticket_id=f"T{n}")
                               for customer in customers for n in range(first, first + count)))

    try:
        for customer in customers:
            await harness.start(customer)
        pouring = asyncio.create_task(tickets(0, 5))
        await eventually(lambda: _has_records(state), timeout=60)
        worker.send_signal(signal.SIGKILL)  # mid-stream: some batches written, some in flight
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, state, harness.task_queue)
        await pouring
        for customer in customers:
            await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
        pouring = asyncio.create_task(tickets(5, 5))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, state, harness.task_queue)
        await pouring
        for customer in customers:
            await eventually(lambda c=customer: pending_step(harness, c, "await_survey"), timeout=150)
            await harness.event(customer, "survey.answered", score=10)
        results = {}
        for customer in customers:
            handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
            results[customer] = await asyncio.wait_for(handle.result(), timeout=150)
    finally:
        stop_worker(worker)
    for customer, result in results.items():
        rows = stored(harness, customer)
        assert [row["seq"] for row in rows] == list(range(result.state.recorded)), customer
        assert len({row["chain"] for row in rows}) == 1
        assert sum(1 for row in rows if row["kind"] == "event") >= 12  # start, 10 tickets, delivery, survey


async def _has_records(state: Path) -> bool:
    path = state / STORE_FILE
    if not path.exists():
        return False
    try:
        with open_store(path, read_only=True, wait=0) as store:
            return store.count() > 0
    except (StoreBusy, StoreError):  # the worker holds the file right now
        return False
