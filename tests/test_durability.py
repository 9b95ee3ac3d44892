"""Crashes and restarts: a killed worker and a restarted server lose no lifecycle and repeat no effect."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.contrib.pydantic import pydantic_data_converter

from devserver import DevServer
from harness import FIXTURE, Harness, eventually, pending_step, stage_of
from workflows.contract import LifecycleResult

BIN = Path(sys.executable).parent


def spawn_worker(address: str, folder: Path, state_dir: Path, task_queue: str, **extra: str) -> subprocess.Popen:
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default",
           "LIFECYCLE_PLAYBOOKS": str(folder / "lifecycle.yaml"), "LIFECYCLE_STATE_DIR": str(state_dir),
           "LIFECYCLE_TASK_QUEUE": task_queue, **extra}
    return subprocess.Popen([str(BIN / "lifecycle"), "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM, as an operator stops a worker; one that has not exited in 15 s is killed (no
    process outlives the test) and the test fails."""
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        raise


async def test_killed_worker_restarts_and_every_action_happens_exactly_once(client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    # Longer timers than the fixture's, so every customer is surely waiting when the worker dies.
    check_in = folder / "delivery-check-in.yaml"
    check_in.write_text(check_in.read_text().replace("duration: 2s", "duration: 8s"))
    warranty = folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("timeout: 30s", "timeout: 300s"))
    harness = Harness(client, folder, tmp_path / "state")  # its client only; workers are processes
    address = client.service_client.config.target_host
    worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    customers = [f"k-{uuid.uuid4().hex[:6]}" for _ in range(6)]
    try:
        for customer in customers:
            await harness.start(customer)
            await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
        for customer in customers:
            await eventually(lambda c=customer: stage_of(harness, c, "delivery_check_in"), timeout=120)
        # Everyone is in delivery check-in, most on its durable timer, maybe one mid-activity:
        # the worker dies. (A killed attempt is retried after its start-to-close timeout.)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
        for customer in customers:
            await eventually(lambda c=customer: pending_step(harness, c, "await_survey"), timeout=150)
        worker.send_signal(signal.SIGKILL)  # and once more while they wait for an event
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
        for customer in customers:
            await harness.event(customer, "survey.answered", score=10)
        for customer in customers:
            handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
            assert (await handle.result()).outcome == "closed"
    finally:
        stop_worker(worker)
    ids = Counter(entry["id"] for entry in harness.outbox())
    assert ids and max(ids.values()) == 1, "an action reached the outbox twice"
    for customer in customers:
        assert harness.steps(customer) == ["summary", "check_in", "survey", "ask_referral"]


async def test_worker_killed_mid_delivery_retries_it_with_the_same_idempotency_key(
        client: Client, tmp_path: Path, http_receiver):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")
    address = client.service_client.config.target_host
    webhook = {"LIFECYCLE_CHANNELS": "email=webhook", "LIFECYCLE_WEBHOOK_URL": http_receiver.url}
    http_receiver.hold(30)  # the first delivery hangs: the worker dies while it is in flight
    worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue, **webhook)
    customer = f"m-{uuid.uuid4().hex[:6]}"
    try:
        await harness.start(customer)
        assert await asyncio.to_thread(http_receiver.arrived.wait, 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker = spawn_worker(address, folder, tmp_path / "state", harness.task_queue, **webhook)

        async def sent() -> bool:
            status = await harness.lifecycles.status(customer)
            return any(r.kind == "message" and r.step == "summary" for r in status.recent)

        await eventually(sent, timeout=90)  # noticed by the missed heartbeat, then retried
    finally:
        stop_worker(worker)
    keys = [request.headers["Idempotency-Key"] for request in http_receiver.requests]
    assert len(keys) >= 2 and set(keys) == {f"lifecycle/{customer}/set_expectations/1/summary"}


async def test_server_restart_on_the_same_database_resumes_lifecycles(tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    database = tmp_path / "temporal.db"
    customer = f"r-{uuid.uuid4().hex[:6]}"
    async with DevServer(database, headless=True) as server:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        harness = Harness(client, folder, tmp_path / "state")
        async with harness.worker:
            await harness.start(customer)
            await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
            await eventually(lambda: pending_step(harness, customer, "await_survey"))
        port, queue = server.port, harness.task_queue
    async with DevServer(database, headless=True, port=port) as server:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        harness = Harness(client, folder, tmp_path / "state", task_queue=queue)
        async with harness.worker:
            status = await harness.lifecycles.status(customer)
            assert status.stage == "warranty_follow_up"
            assert status.promises["delivery_date"]["state"] == "kept"
            await harness.event(customer, "survey.answered", score=10)
            handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
            assert (await handle.result()).outcome == "closed"
    assert harness.steps(customer) == ["summary", "check_in", "survey", "ask_referral"]


async def _pollers(client: Client, task_queue: str) -> set[str]:
    """`pid@` of the workers polling `task_queue` for workflow tasks."""
    request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    response = await client.workflow_service.describe_task_queue(request)
    return {poller.identity.split("@")[0] + "@" for poller in response.pollers}


async def _started_by(client: Client, workflow_id: str) -> set[str]:
    """Identities of the workers that ran this lifecycle's workflow tasks and activities."""
    handle = client.get_workflow_handle(workflow_id)
    identities = set()
    async for event in handle.fetch_history_events():
        for attributes in ("workflow_task_started_event_attributes", "activity_task_started_event_attributes"):
            if event.HasField(attributes):
                identities.add(getattr(event, attributes).identity)
    return identities


async def test_two_workers_one_killed_mid_burst_every_lifecycle_completes_its_effects_once(
        client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    # The survey waits long enough that no customer times out while the killed worker's
    # tasks are taken over (its activities after the heartbeat timeout, 15 s).
    warranty = folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("timeout: 30s", "timeout: 300s"))
    harness = Harness(client, folder, tmp_path / "state")  # its client only; workers are processes
    address = client.service_client.config.target_host
    doomed = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    survivor = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    customers = [f"b-{index:02d}-{uuid.uuid4().hex[:4]}" for index in range(30)]
    try:
        async def order_and_delivery(customer: str) -> None:
            await harness.start(customer)
            await harness.event(customer, "order.delivered", delivered_at="2026-03-09")

        # Both workers poll before the burst, so both get lifecycles in hand.
        async def both_polling() -> bool:
            return {f"{doomed.pid}@", f"{survivor.pid}@"} <= await _pollers(client, harness.task_queue)

        await eventually(both_polling, timeout=120)
        burst = asyncio.gather(*(order_and_delivery(customer) for customer in customers))
        # Kill one worker while the burst is being worked through, once it has done part of it:
        # some effects are out, most are still to come.
        async def under_way() -> bool:
            if len(harness.outbox()) < 10:
                return False
            for customer in customers[:10]:
                try:
                    if any(i.startswith(f"{doomed.pid}@") for i in await _started_by(client, f"lifecycle/{customer}")):
                        return True
                except RPCError:
                    pass  # not started yet
            return False

        await eventually(under_way, timeout=120)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        at_kill = len(harness.outbox())
        await burst
        assert at_kill < 3 * len(customers), "the burst was over before the kill"
        for customer in customers:
            await eventually(lambda c=customer: pending_step(harness, c, "await_survey"), timeout=180)
        await asyncio.gather(*(harness.event(customer, "survey.answered", score=10) for customer in customers))
        for customer in customers:
            handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
            assert (await asyncio.wait_for(handle.result(), 120)).outcome == "closed"
    finally:
        for worker in (doomed, survivor):
            if worker.poll() is None:
                stop_worker(worker)
    ids = Counter(entry["id"] for entry in harness.outbox())
    assert max(ids.values()) == 1, [key for key, count in ids.items() if count > 1]
    for customer in customers:
        assert harness.steps(customer) == ["summary", "check_in", "survey", "ask_referral"], customer
    # Both workers did part of the work: the killed one really had lifecycles in hand.
    identities = set().union(*[await _started_by(client, f"lifecycle/{c}") for c in customers])
    assert any(identity.startswith(f"{doomed.pid}@") for identity in identities), identities
    assert any(identity.startswith(f"{survivor.pid}@") for identity in identities), identities


async def test_status_answers_when_the_worker_holding_the_lifecycle_was_just_killed(client: Client, tmp_path: Path):
    # Temporal gives a killed worker's lifecycles to another worker only after its sticky
    # queue's 10 s: `lifecycle status` gave up at 10 s with "does a worker poll task queue?"
    # while one did. It waits long enough for the other worker to answer.
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")  # its client only; workers are processes
    address = client.service_client.config.target_host
    first = spawn_worker(address, folder, tmp_path / "state", harness.task_queue)
    customer = f"k-{uuid.uuid4().hex[:6]}"
    second = None
    try:
        await harness.start(customer)
        await eventually(lambda: stage_of(harness, customer, "set_expectations"), timeout=60)
        second = spawn_worker(address, folder, tmp_path / "state2", harness.task_queue)
        await eventually(lambda: _polled_by(client, harness.task_queue, 2), timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "LIFECYCLE_PLAYBOOKS": str(folder),
               "LIFECYCLE_TASK_QUEUE": harness.task_queue}
        status = await asyncio.to_thread(subprocess.run, [str(BIN / "lifecycle"), "status", customer],
                                         env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert f"customer  {customer}" in status.stdout
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()


async def _polled_by(client: Client, task_queue: str, workers: int) -> bool:
    response = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return len({poller.identity for poller in response.pollers}) >= workers
