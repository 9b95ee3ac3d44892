"""What one customer-year of the bundled lifecycle costs Temporal and a worker.

Customers live through the simulator benchmark's year of events (order, delivery, survey,
a ticket, a referral; every third delivery late) on the embedded dev server, with the
workflow clock scaled (as in `lifecycle demo`) so a year takes about a minute. A real
`lifecycle worker` process runs them, delivering to an outbox file. Then, per customer-year:

- history events and history bytes (what persistence stores), payload bytes among them,
- actions (messages and tasks), visibility updates (search attribute upserts),
- workflow tasks, and the events they would replay if no task found its lifecycle in
  the worker's cache (the case at scale: a lifecycle wakes up every few days);
- worker CPU per 1,000 history events, live and when replaying a whole history (what a
  worker pays for a lifecycle that is no longer in its cache).

docs/operations.md ("Beyond one machine") sizes a cluster from these figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from bench.simulator import BUNDLED, YEAR, customer, year_of_events
from devserver import DevServer
from engine.loader import load_project
from engine.scenario import DEFAULT_START
from engine.simulator import simulate
from engine.state import Event
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from workflows.client import LifecycleClient, LifecycleNotFound

BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Footprint:
    """Totals over every customer's year."""

    customers: int
    runs: int = 0
    events: int = 0
    history_bytes: int = 0
    payload_bytes: int = 0
    upserts: int = 0
    actions: int = 0
    rejected: int = 0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    replay_cpu: float = 0.0
    payload_by_kind: dict[str, int] = field(default_factory=dict)
    open_at_year_end: int = 0
    days_open: float = 0.0
    workflow_tasks: int = 0
    cold_replay_events: int = 0

    def per_year(self, total: float) -> float:
        return total / self.customers


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def payload_bytes(message: Message) -> int:
    """Bytes of every Payload's data inside a protobuf message."""
    if isinstance(message, Payload):
        return len(message.data)
    total = 0
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            values = [value]
        elif hasattr(value, "values"):  # a map field
            values = list(value.values())
        else:  # a repeated field
            values = list(value)
        total += sum(payload_bytes(item) for item in values if isinstance(item, Message))
    return total


def spawn_worker(address: str, state_dir: Path, task_queue: str) -> subprocess.Popen:
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default",
           "LIFECYCLE_PLAYBOOKS": str(BUNDLED), "LIFECYCLE_STATE_DIR": str(state_dir),
           "LIFECYCLE_TASK_QUEUE": task_queue}
    return subprocess.Popen([str(BIN / "lifecycle"), "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def live_year(lifecycles: LifecycleClient, number: int, day_seconds: float, began: float,
                    footprint: Footprint) -> str:
    """Send one customer's events at their scaled times; return the customer id."""
    profile = customer(number)
    cid = f"fp-{uuid.uuid4().hex[:6]}-{profile.pop('id')}"
    shift = date.today() - DEFAULT_START.date()  # the scaled clock starts today
    for scheduled in year_of_events(number):
        day = (scheduled.at - DEFAULT_START) / timedelta(days=1)
        await asyncio.sleep(max(0.0, began + day * day_seconds - time.monotonic()))
        data = {key: _shifted(value, shift) for key, value in scheduled.event.data.items()}
        event = Event(customer_id=cid, name=scheduled.event.name, data=data,
                      customer=profile if scheduled.event.name == "order.placed" else None)
        try:
            receipt = await lifecycles.send(event)
        except LifecycleNotFound:
            footprint.rejected += 1
            continue
        footprint.rejected += receipt.status == "rejected"
    return cid


def days_open(project, number: int) -> float:
    """Days from the order to the lifecycle's end (a year if it is still open), from the simulator:
    exact, where the scaled clock adds each workflow task's latency, multiplied by the scale."""
    profile = customer(number)
    timeline = simulate(project, profile, year_of_events(number), until=DEFAULT_START + YEAR)
    ended = [record.at for record in timeline.records if record.kind == "ended"]
    return ((ended[0] if ended else DEFAULT_START + YEAR) - DEFAULT_START) / timedelta(days=1)


def _shifted(value, shift: timedelta):
    try:
        return (date.fromisoformat(value) + shift).isoformat()
    except (TypeError, ValueError):
        return value


async def histories(client: Client, customer_id: str) -> list[WorkflowHistory]:
    """Every run of a customer's lifecycle (continue-as-new starts new ones)."""
    runs = [execution async for execution in client.list_workflows(f"WorkflowId = 'lifecycle/{customer_id}'")]
    return [await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history() for run in runs]


async def measure(customers: int, year_seconds: float) -> Footprint:
    footprint = Footprint(customers)
    day_seconds = year_seconds / 365
    project = load_project(BUNDLED)
    with tempfile.TemporaryDirectory() as state:
        async with DevServer(headless=True) as server:
            client = await server.connect()
            queue = f"footprint-{uuid.uuid4().hex[:6]}"
            worker = spawn_worker(server.address, Path(state), queue)
            try:
                await asyncio.sleep(3)  # imports and first poll: not part of the figure
                worker_start, server_start = cpu_seconds(worker.pid), cpu_seconds(server.process.pid)
                lifecycles = LifecycleClient(client, project.lifecycle, queue,
                                             time_scale=YEAR.total_seconds() / year_seconds)
                began = time.monotonic()
                ids = await asyncio.gather(*(live_year(lifecycles, n, day_seconds, began, footprint)
                                             for n in range(customers)))
                await asyncio.sleep(max(0.0, began + year_seconds - time.monotonic()))
                footprint.worker_cpu = cpu_seconds(worker.pid) - worker_start
                footprint.server_cpu = cpu_seconds(server.process.pid) - server_start
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
            runs = [history for cid in ids for history in await histories(client, cid)]
        outbox = Path(state) / "outbox.jsonl"
        footprint.actions = len(outbox.read_text().splitlines()) if outbox.exists() else 0
    footprint.runs = len(runs)
    footprint.days_open = sum(days_open(project, n) for n in range(customers))
    footprint.open_at_year_end = sum(
        not any(event.HasField(f"workflow_execution_{end}_event_attributes")
                for event in history.events[-1:] for end in ("completed", "failed", "terminated", "continued_as_new"))
        for history in runs)
    for history in runs:
        for event in history.events:
            footprint.events += 1
            footprint.history_bytes += event.ByteSize()
            size = payload_bytes(event)
            footprint.payload_bytes += size
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
            footprint.payload_by_kind[kind] = footprint.payload_by_kind.get(kind, 0) + size
            footprint.upserts += event.HasField("upsert_workflow_search_attributes_event_attributes")
            if event.HasField("workflow_task_started_event_attributes"):
                footprint.workflow_tasks += 1
                # Without the worker's cache, a task first replays the history before it.
                footprint.cold_replay_events += event.event_id - 1
    replayer = Replayer(workflows=CUSTOMER_WORKFLOWS, workflow_runner=WORKFLOW_RUNNER,
                        data_converter=pydantic_data_converter)
    await replayer.replay_workflow(runs[0])  # warm the sandbox's module cache
    started = time.process_time()
    for history in runs:
        await replayer.replay_workflow(history)
    footprint.replay_cpu = time.process_time() - started
    return footprint


def table(footprint: Footprint) -> list[tuple[str, str]]:
    per = footprint.per_year
    thousand = footprint.events / 1000
    return [
        ("customer-years", f"{footprint.customers}"),
        ("workflow runs", f"{footprint.runs}"),
        ("history events / customer-year", f"{per(footprint.events):.0f}"),
        ("history bytes / customer-year", f"{per(footprint.history_bytes):,.0f}"),
        ("  of which payload bytes", f"{per(footprint.payload_bytes):,.0f}"),
        *[(f"  in {kind}", f"{per(size):,.0f}") for kind, size in
          sorted(footprint.payload_by_kind.items(), key=lambda item: -item[1])[:4]],
        ("lifecycles still open after the year", f"{footprint.open_at_year_end}"),
        ("days a lifecycle is open (mean, simulator)", f"{per(footprint.days_open):.0f}"),
        ("actions / customer-year", f"{per(footprint.actions):.1f}"),
        ("workflow tasks / customer-year", f"{per(footprint.workflow_tasks):.1f}"),
        ("events replayed / customer-year, no cache", f"{per(footprint.cold_replay_events):,.0f}"),
        ("visibility upserts / customer-year", f"{per(footprint.upserts):.1f}"),
        ("events sent / customer-year", f"{len(year_of_events(0))} ({per(footprint.rejected):.1f} refused)"),
        ("worker CPU s / 1,000 history events (live)", f"{footprint.worker_cpu / thousand:.3f}"),
        ("worker CPU s / 1,000 history events (replay)", f"{footprint.replay_cpu / thousand:.3f}"),
        ("dev server CPU s / 1,000 history events", f"{footprint.server_cpu / thousand:.3f}"),
    ]


def run(customers: int, year_seconds: float = 60.0, as_json: bool = False) -> None:
    footprint = asyncio.run(measure(customers, year_seconds))
    rows = table(footprint)
    if as_json:
        print(json.dumps(dict(rows), indent=2))
        return
    print()
    print(f"footprint: the bundled lifecycle, one customer-year each (a year in {year_seconds:g} s, "
          "real worker process, embedded dev server)")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.footprint")
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--year-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run(args.customers, args.year_seconds, args.json)
