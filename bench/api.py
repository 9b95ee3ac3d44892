"""The HTTP API under load: POST /v1/events against the same events sent straight through
`LifecycleClient` (no HTTP), on the embedded Temporal server with one worker.

The scenario is the API test's concurrency case, scaled: customers get 8 tickets each, a
fifth of the events are sent twice (same idempotency key), all in flight at once up to a
concurrency limit. The API runs as its own process (`lifecycle api`), as in production;
the worker and the load generator share the bench process in both variants, so the ratio
is the price of the HTTP hop (auth, validation, JSON, the API's idempotency record).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from activities.config import LifecycleSettings
from devserver import DevServer, free_port
from engine.loader import load_project
from engine.state import Event
from worker import WORKFLOW_TASK_SLOTS, customer_workflow_runner, customer_workflows, worker_activities
from workflows.client import LifecycleClient

IN_FLIGHT = 50  # concurrent requests, in both variants
DUPLICATES = 0.2

LIFECYCLE = """\
lifecycle: api_bench
channels: {email: {contact: email}}
roles: {account_manager: Owns the relationship.}
events:
  order.placed: {starts_lifecycle: true, payload: {order_id: string!}}
  ticket.opened:
    payload: {ticket_id: string!}
    updates: {open_tickets: facts.open_tickets + 1}
facts: {open_tickets: {type: int, initial: 0}}
initial_stage: active
stages:
  active: {playbook: active.yaml}
  closed: {terminal: true}
transitions:
  - {from: active, "on": order.placed, to: closed}
"""
PLAYBOOK = "playbook: active\nsteps:\n  - {kind: send, id: welcome, template: note}\n"


def write_lifecycle(folder: Path) -> Path:
    """The bench lifecycle: a start event, and a ticket event that only updates a fact."""
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "note.txt").write_text("Subject: Welcome\n\nHello {{ customer.name }}.\n")
    (folder / "active.yaml").write_text(PLAYBOOK)
    (folder / "lifecycle.yaml").write_text(LIFECYCLE)
    return folder / "lifecycle.yaml"


def scenario(run: str, customers: int, events: int) -> tuple[list[str], list[dict]]:
    """Customers, and `events` ticket events for them with a fifth sent twice, shuffled."""
    names = [f"{run}-{n}" for n in range(customers)]
    unique = round(events * (1 - DUPLICATES))
    tickets = [{"customer_id": names[n % customers], "event": "ticket.opened",
                "data": {"ticket_id": f"T{n}"}, "idempotency_key": f"{run}-T{n}"} for n in range(unique)]
    rng = random.Random(run)
    bodies = tickets + rng.sample(tickets, events - unique)
    rng.shuffle(bodies)
    return names, bodies


Sender = Callable[[dict], Awaitable[str]]


async def measure(bodies: list[dict], sender: Callable[[], Awaitable[Sender]]) -> dict:
    """IN_FLIGHT senders take bodies off one queue (a closed loop, as a load generator does);
    throughput and latency percentiles."""
    queue = iter(bodies)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def loop() -> None:
        send = await sender()
        for body in queue:
            began = time.perf_counter()
            outcome = await send(body)
            latencies.append(time.perf_counter() - began)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"events": len(bodies), "seconds": elapsed, "per_s": len(bodies) / elapsed,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "outcomes": outcomes}


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the status code.

    A general client (httpx) spends milliseconds of CPU per request at this concurrency,
    on the same two cores as the worker; this costs a few hundredths, so the bench measures
    the API rather than its load generator.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> None:
        self.reader, self.writer = reader, writer
        self.head = f"Host: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"

    @classmethod
    async def open(cls, url: str, token: str) -> Connection:
        """Connect to `url` (http://host:port)."""
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)), token)

    async def post(self, path: str, body: dict) -> int:
        """POST `body` as JSON; the response's status code (its body is read and dropped)."""
        payload = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n".encode()
                          + payload)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])


def start_api(address: str, lifecycle_file: Path, task_queue: str, token: str, log: Path) -> tuple[subprocess.Popen, str]:
    """`lifecycle api` as its own process; waits until it answers."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "LIFECYCLE_"))}
    # No per-caller rate limit: the benchmark measures what one caller can push through.
    env.update(TEMPORAL_ADDRESS=address, LIFECYCLE_API_TOKENS=f"bench:{token}", LIFECYCLE_API_RATE="off")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "lifecycle"), "api", "--port", str(port), "--playbooks",
             str(lifecycle_file), "--task-queue", task_queue], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"lifecycle api exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"lifecycle api did not come up:\n{log.read_text()}")
        time.sleep(0.1)


async def run(events: int = 1000, customers: int = 100) -> None:
    """Print the table: HTTP vs direct, events/s and p50/p99 latency, and their ratios."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        root = Path(scratch)
        lifecycle_file = write_lifecycle(root / "playbooks")
        queue = f"bench-api-{uuid.uuid4().hex[:6]}"
        settings = LifecycleSettings(state_dir=root / "state", task_queue=queue)
        token = secrets.token_urlsafe(24)
        async with DevServer(headless=True) as server:
            client = await server.connect()
            lifecycles = LifecycleClient(client, load_project(lifecycle_file).lifecycle, queue)
            api, url = start_api(server.address, lifecycle_file, queue, token, root / "api.log")
            from temporalio.worker import Worker

            worker = Worker(client, task_queue=queue, workflows=customer_workflows(),
                            activities=worker_activities(settings, lifecycle_file),
                            workflow_runner=customer_workflow_runner(),
                            max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS)
            try:
                async with worker:

                    async def via_http() -> Sender:
                        connection = await Connection.open(url, token)

                        async def send(body: dict) -> str:
                            return str(await connection.post("/v1/events", body))

                        return send

                    async def direct() -> Sender:
                        async def send(body: dict) -> str:
                            receipt = await lifecycles.send(Event(
                                customer_id=body["customer_id"], name=body["event"], data=body["data"],
                                idempotency_key=body.get("idempotency_key"), customer=body.get("customer")))
                            return receipt.status

                        return send

                    rows = []
                    for name, send in (("warmup", via_http), ("direct", direct), ("http", via_http)):
                        count = 100 if name == "warmup" else events
                        names, bodies = scenario(f"{name}-{uuid.uuid4().hex[:4]}", max(10, customers * count // events),
                                                 count)
                        await measure([{"customer_id": n, "event": "order.placed", "data": {"order_id": "A"},
                                        "customer": {"name": "Ada"}} for n in names], send)
                        row = await measure(bodies, send)
                        if name != "warmup":
                            rows.append({"variant": name, **row})
            finally:
                api.terminate()
                api.wait(timeout=15)
    print()
    print(f"api: POST /v1/events vs LifecycleClient.send, {events} events for {customers} customers, "
          f"{DUPLICATES:.0%} duplicates, {IN_FLIGHT} in flight (embedded dev server, one worker)")
    print(f"{'variant':<8} {'events':>7} {'seconds':>8} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}  outcomes")
    for row in rows:
        outcomes = ", ".join(f"{key}: {value}" for key, value in sorted(row["outcomes"].items()))
        print(f"{row['variant']:<8} {row['events']:>7} {row['seconds']:>8.2f} {row['per_s']:>9.1f} "
              f"{row['p50']:>8.1f} {row['p99']:>8.1f}  {outcomes}")
    direct_row, http_row = rows
    print(f"ratio http/direct events/s: {http_row['per_s'] / direct_row['per_s']:.2f}; "
          f"p50 latency: {http_row['p50'] / direct_row['p50']:.2f}x")


if __name__ == "__main__":
    asyncio.run(run())
