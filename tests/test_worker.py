"""The worker on the session's dev server: activities run through Temporal, retries, shutdown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ActivityError, ApplicationError

from activities import DELIVERY_OPTIONS, Delivery
from workflows.policy import HEARTBEAT_TIMEOUT
from activities.config import LifecycleSettings
from devserver import DevServer, free_port
from engine.state import Action, ActionResult
from harness import break_check_in
from worker import run_worker

REPO = Path(__file__).resolve().parent.parent
LIFECYCLE = str(Path(sys.executable).parent / "lifecycle")


@workflow.defn(sandboxed=False)
class DeliverOnce:
    """Asks for one action the way the lifecycle workflow does, and reports what came of it."""

    @workflow.run
    async def run(self, action: Action) -> ActionResult:
        try:
            return await workflow.execute_activity(
                "deliver", action, result_type=ActionResult, **DELIVERY_OPTIONS
            )
        except ActivityError as error:
            cause = error.cause
            assert isinstance(cause, ApplicationError)
            return ActionResult(status="failed", detail=f"{cause.type}: {cause.message}")


@workflow.defn(sandboxed=False)
class DeliverAllOnce:
    """Asks for a run of actions the way the lifecycle workflow does."""

    @workflow.run
    async def run(self, actions: list[Action]) -> list[ActionResult]:
        return await workflow.execute_activity(
            "deliver_all", actions, result_type=list[ActionResult], **DELIVERY_OPTIONS
        )


@asynccontextmanager
async def running_worker(
    client: Client, activities: list[Callable[..., Any]]
) -> AsyncIterator[str]:
    """A worker on a fresh task queue for the duration of the block; yields the queue."""
    queue = f"test-{uuid.uuid4()}"
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(client, queue, [DeliverOnce, DeliverAllOnce], activities, stop=stop))
    try:
        yield queue
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def action(kind: str = "message") -> Action:
    return Action(
        id=f"lifecycle/{uuid.uuid4()}/sale/1/summary", kind=kind, customer_id="cust-1",
        stage="sale", step="summary", channel="sms", to="+4915112345678", body="Hello",
        role="account_manager" if kind == "task" else None,
    )


async def deliver_once(client: Client, queue: str, act: Action) -> ActionResult:
    return await client.execute_workflow(
        DeliverOnce.run, act, id=f"deliver-{uuid.uuid4()}", task_queue=queue,
        result_type=ActionResult,
    )


async def test_an_action_is_delivered_through_a_real_worker(client: Client, tmp_path: Path) -> None:
    settings = LifecycleSettings.from_mapping({"state_dir": str(tmp_path)})
    act = action()
    async with running_worker(client, [Delivery(settings).deliver]) as queue:
        result = await deliver_once(client, queue, act)
    assert result.status == "done"
    assert [line for line in (tmp_path / "outbox.jsonl").read_text().splitlines() if act.id in line]


async def test_a_permanent_failure_reaches_the_workflow_after_one_attempt(
    client: Client, tmp_path: Path, http_receiver
) -> None:
    http_receiver.respond(404)
    settings = LifecycleSettings.from_mapping(
        {"state_dir": str(tmp_path), "tasks": "webhook", "webhook": {"url": http_receiver.url}}
    )
    async with running_worker(client, [Delivery(settings).deliver]) as queue:
        result = await deliver_once(client, queue, action("task"))
    assert result.status == "failed"
    assert result.detail.startswith("DeliveryRejected: ") and "404" in result.detail
    assert len(http_receiver.requests) == 1


async def test_a_transient_failure_is_retried_with_the_same_idempotency_key(
    client: Client, tmp_path: Path, http_receiver
) -> None:
    http_receiver.respond(503)
    settings = LifecycleSettings.from_mapping(
        {"state_dir": str(tmp_path), "tasks": "webhook", "webhook": {"url": http_receiver.url}}
    )
    act = action("task")
    async with running_worker(client, [Delivery(settings).deliver]) as queue:
        result = await deliver_once(client, queue, act)
    assert result.status == "done"
    assert [r.headers["Idempotency-Key"] for r in http_receiver.requests] == [act.id, act.id]


async def test_a_relay_slower_than_the_heartbeat_timeout_gets_the_message_once(
    client: Client, tmp_path: Path, smtp_server
) -> None:
    # The relay answers the final "." after 20 s, longer than the 15 s heartbeat timeout: the
    # worker heartbeats while it waits, so the server neither abandons nor retries the attempt.
    smtp_server.data_delay = HEARTBEAT_TIMEOUT.total_seconds() + 5
    settings = LifecycleSettings.from_mapping({
        "state_dir": str(tmp_path), "channels": {"email": "smtp"},
        "smtp": {"host": smtp_server.host, "port": smtp_server.port, "timeout": 1, "data_timeout": 60},
    })
    email = Action(id=f"lifecycle/{uuid.uuid4()}/sale/1/summary", kind="message", customer_id="cust-1",
                   stage="sale", step="summary", channel="email", to="ada@example.com", subject="Hi",
                   body="Hello")
    async with running_worker(client, [Delivery(settings).deliver_all]) as queue:
        handle = await client.start_workflow(DeliverAllOnce.run, [email], id=f"deliver-{uuid.uuid4()}",
                                             task_queue=queue)
        [result] = await handle.result()
    assert result.status == "done"
    assert len(smtp_server.messages) == 1
    started = [event async for event in handle.fetch_history_events()
               if event.HasField("activity_task_started_event_attributes")]
    assert [event.activity_task_started_event_attributes.attempt for event in started] == [1]


async def _pollers(client: Client, queue: str) -> int:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(response.pollers)


@asynccontextmanager
async def polling_worker(
    client: Client, tmp_path: Path, playbooks: Path = REPO / "tests" / "fixtures" / "fast"
) -> AsyncIterator[subprocess.Popen[str]]:
    """`lifecycle worker` on its own task queue, once it polls; killed if still running at the end."""
    queue = f"test-{uuid.uuid4()}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "LIFECYCLE_TASK_QUEUE": queue,
        "LIFECYCLE_STATE_DIR": str(tmp_path),
        "LIFECYCLE_PLAYBOOKS": str(playbooks),
    }
    process = subprocess.Popen(
        [LIFECYCLE, "worker"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while await _pollers(client, queue) == 0:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the worker never polled its task queue"
            await asyncio.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_the_worker_command_polls_and_stops_cleanly_on_sigterm(
    client: Client, tmp_path: Path
) -> None:
    async with polling_worker(client, tmp_path) as process:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0


async def test_a_worker_whose_server_died_still_stops_on_sigterm(tmp_path: Path) -> None:
    # An orchestrator stops workers during a Temporal outage too: polls that cannot reach
    # the server must not keep the process alive until it is killed.
    async with DevServer(headless=True) as server:
        async with polling_worker(await server.connect(), tmp_path) as process:
            assert server.process is not None
            server.process.kill()
            await asyncio.to_thread(server.process.wait)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 30) == 0
            assert "Traceback" not in (process.stderr.read() if process.stderr else "")


async def test_a_worker_starts_with_a_broken_stage_playbook_and_refuses_a_broken_lifecycle_file(
    client: Client, tmp_path: Path
) -> None:
    # A broken stage playbook holds only the customers entering its stage; a worker restarted
    # (killed, redeployed) while it is broken must still run every other stage. It refused to
    # start, and every customer in every stage stopped until the file was fixed.
    folder = tmp_path / "playbooks"
    shutil.copytree(REPO / "tests" / "fixtures" / "fast", folder)
    break_check_in(folder)
    async with polling_worker(client, tmp_path, folder) as process:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        log = process.stderr.read() if process.stderr else ""
    assert "WARNING lifecycle.worker: " in log and "delivery-check-in.yaml:" in log
    assert "customers entering delivery_check_in are held until their files load" in log

    lifecycle = folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text() + "  junk: [\n")
    env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "LIFECYCLE_STATE_DIR": str(tmp_path), "LIFECYCLE_PLAYBOOKS": str(folder)}
    done = await asyncio.to_thread(subprocess.run, [LIFECYCLE, "worker"], cwd=REPO, env=env,
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "lifecycle.yaml:" in done.stderr and "YAML syntax error" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_worker_command_without_a_server_fails_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "LIFECYCLE_STATE_DIR": str(tmp_path),
        "LIFECYCLE_PLAYBOOKS": str(REPO / "tests" / "fixtures" / "fast"),
    }
    done = subprocess.run(
        [LIFECYCLE, "worker"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to Temporal at 127.0.0.1:")
    assert done.stderr.endswith(": connection refused\n") and "tonic" not in done.stderr  # as the CLI says it
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_the_worker_pointed_at_the_web_ui_port_says_so_in_one_line(tmp_path: Path) -> None:
    # 8233 for 7233: the transport's nested debug text ("h2 protocol error", tonic, hyper).
    with DevServer(headless=False) as server:
        env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{server.ui_port}", "LIFECYCLE_STATE_DIR": str(tmp_path),
               "LIFECYCLE_PLAYBOOKS": str(REPO / "tests" / "fixtures" / "fast")}
        done = subprocess.run([LIFECYCLE, "worker"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.endswith("it answers, but not as Temporal's gRPC frontend (the web UI's port? the "
                                "frontend's is 7233 unless set otherwise)\n"), done.stderr
    assert "tonic" not in done.stderr and done.stderr.count("\n") == 1


def test_the_worker_refuses_a_namespace_without_the_lifecycle_search_attributes(tmp_path: Path) -> None:
    # Every workflow task that sets a missing attribute would fail: refuse before polling.
    with DevServer(headless=True, search_attributes={"LifecycleStage": "Keyword"}) as server:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_NAMESPACE": server.namespace,
            "LIFECYCLE_STATE_DIR": str(tmp_path),
            "LIFECYCLE_PLAYBOOKS": str(REPO / "tests" / "fixtures" / "fast"),
        }
        done = subprocess.run([LIFECYCLE, "worker"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: namespace default lacks the search attributes LifecyclePlaybook, CustomerId, ")
    assert "LifecycleTaskRoles" in done.stderr and "LifecycleStage" not in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


async def test_the_worker_refuses_a_namespace_that_does_not_exist_in_one_line(client: Client, tmp_path: Path) -> None:
    # It warned that it "could not check the search attributes", started, and then stopped on
    # the SDK's validation error with its gRPC details.
    env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "TEMPORAL_NAMESPACE": "no-such-namespace", "LIFECYCLE_STATE_DIR": str(tmp_path),
           "LIFECYCLE_PLAYBOOKS": str(REPO / "tests" / "fixtures" / "fast")}
    done = await asyncio.to_thread(subprocess.run, [LIFECYCLE, "worker"], cwd=REPO, env=env,
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (f"error: namespace no-such-namespace does not exist on {client.service_client.config.target_host}: "
                           "create it, or set TEMPORAL_NAMESPACE to the lifecycle's namespace\n")


def test_the_dev_server_registers_every_attribute_a_lifecycle_sets() -> None:
    from devserver import SEARCH_ATTRIBUTES
    from workflows.contract import SEARCH_ATTRIBUTES as KEYS

    assert set(SEARCH_ATTRIBUTES) == {key.name for key in KEYS}
