"""A worker with its own task queue, playbook folder and outbox, for integration tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.config import LifecycleSettings
from activities.delivery import Delivery
from activities.playbooks import PlaybookSource
from analytics.activity import RecordSink
from engine.state import Event
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from workflows.client import LifecycleClient, LifecycleNotFound
from worker import WORKFLOW_TASK_SLOTS

FIXTURE = Path(__file__).parent / "fixtures" / "fast"
HISTORIES = Path(__file__).parent / "histories"


async def record_history(client: Client, customer: str, name: str, run_id: str | None = None) -> None:
    """With RECORD_HISTORIES=1, keep this run's history as a replay fixture (tests/histories)."""
    if os.environ.get("RECORD_HISTORIES"):
        handle = client.get_workflow_handle(f"lifecycle/{customer}", run_id=run_id)
        (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())


class Harness:
    """A worker on its own task queue, its playbook folder and outbox, and a client."""

    def __init__(self, client: Client, folder: Path, state_dir: Path, max_history: int = 10_000,
                 task_queue: str | None = None, **settings: Any):
        self.folder = folder
        self.task_queue = task_queue or f"test-{uuid.uuid4().hex[:8]}"
        self.settings = LifecycleSettings(state_dir=state_dir, task_queue=self.task_queue, **settings)
        self.source = PlaybookSource(folder / "lifecycle.yaml")
        self.lifecycles = LifecycleClient(client, self.source.project().lifecycle, self.task_queue,
                                          max_history=max_history)
        records = RecordSink(state_dir)
        delivery = Delivery(self.settings, records)
        self.worker = Worker(
            client, task_queue=self.task_queue, workflows=CUSTOMER_WORKFLOWS,
            activities=[delivery.deliver_all, delivery.deliver_with_records, self.source.load_stage,
                        records.store_records],
            workflow_runner=WORKFLOW_RUNNER, max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
        )

    def outbox(self) -> list[dict[str, Any]]:
        path = self.settings.outbox_path
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def steps(self, customer: str) -> list[str]:
        """Steps of the messages and tasks sent for `customer` (not incidents nor notices)."""
        return [entry["step"] for entry in self.outbox()
                if entry["customer_id"] == customer and entry["kind"] not in ("incident", "notice", "reminder")]

    async def event(self, customer: str, name: str, key: str | None = None, **data: Any):
        return await self.lifecycles.send(Event(customer_id=customer, name=name, data=data,
                                                idempotency_key=key))

    async def start(self, customer: str, **profile: Any):
        event = Event(customer_id=customer, name="order.placed",
                      data={"order_id": "A-1", "promised_delivery": "2026-03-10", "price": 100},
                      customer={"name": "Ada", "email": f"{customer}@example.com",
                                "consent": {"email": True}, **profile})
        return await self.lifecycles.send(event)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll until `check` returns a truthy value; no fixed sleeps waiting for results."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except (LifecycleNotFound, AssertionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


async def stage_of(harness: Harness, customer: str, stage: str) -> bool:
    return (await harness.lifecycles.status(customer)).stage == stage


async def pending_step(harness: Harness, customer: str, step: str) -> bool:
    status = await harness.lifecycles.status(customer)
    return status.pending is not None and status.pending.step == step


@asynccontextmanager
async def long_lifecycle(client: Client, tmp_path: Path) -> AsyncIterator[tuple[Harness, str]]:
    """A customer whose lifecycle has continued as new (a 15-event history limit) and waits for
    its survey: four tickets and a delivery. The worker runs until the block ends."""
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state", max_history=15)
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await harness.start(customer)
        for number in range(4):
            await harness.event(customer, "ticket.opened", key=f"k{number}", ticket_id=f"T{number}")
        await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
        await eventually(lambda: pending_step(harness, customer, "await_survey"))
        yield harness, customer



def break_check_in(folder: Path) -> str:
    """Make the fast fixture's delivery-check-in playbook unloadable (a YAML syntax error); its
    text as it was, to restore it."""
    playbook = folder / "delivery-check-in.yaml"
    good = playbook.read_text()
    playbook.write_text(good.replace("playbook: delivery_check_in", "playbook: delivery_check_in\n  bad: [", 1))
    return good


HOLD_AT_MOST = 20.0  # seconds a held hand-off waits for the test (a failing test must not hang)


async def arrived(gate: threading.Event) -> bool:
    """Whether a HelpDesk gate's request has arrived (a check for `eventually`)."""
    return gate.is_set()


class HelpDesk:
    """A help desk on loopback that takes the task webhook's calls (`received`: their bodies),
    and holds its answer to the ones a test names (`hold`) until the test lets it go."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.held: dict[tuple[str, str], tuple[threading.Event, threading.Event]] = {}
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                desk.received.append(body)
                gate = desk.held.get((body["customer_id"], body["step"]))
                if gate is not None:
                    arrived, release = gate
                    arrived.set()
                    release.wait(HOLD_AT_MOST)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tasks"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def hold(self, customer: str, step: str) -> tuple[threading.Event, threading.Event]:
        """Hold the answer to the hand-off of `step` for `customer`: (arrived, release)."""
        gate = self.held[(customer, step)] = (threading.Event(), threading.Event())
        return gate

    def release_all(self) -> None:
        for _, release in self.held.values():
            release.set()

    def close(self) -> None:
        self.release_all()
        self.server.shutdown()
        self.server.server_close()
