"""Engine vs hand-written workflow on the embedded Temporal server, same work, same worker.

The work: one message, wait for an event, three messages. (a) is what an engineer would
write by hand with the SDK; (b) is the same as a playbook run by the engine. Both share
the in-memory `deliver` activity below, so the difference is the engine's own cost.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.playbooks import PlaybookSource
from analytics.stream import DeliveredWithRecords, DeliveryWithRecords
from devserver import DevServer
from engine.state import Action, ActionResult, Event
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from workflows.client import LifecycleClient
from bench.handwritten import HandwrittenOnboarding, HandwrittenUnsandboxed
from worker import WORKFLOW_TASK_SLOTS

LIFECYCLE = Path(__file__).parent / "playbook" / "lifecycle.yaml"
IN_FLIGHT = 50  # concurrent client calls
first_action_after_event: dict[str, float] = {}  # workflow id → monotonic time of the first message after the event
event_sent: dict[str, float] = {}


@activity.defn(name="deliver")
async def deliver(action: Action) -> ActionResult:
    """An in-memory channel: records when the first message after the event went out."""
    if action.step == "check_in":
        first_action_after_event.setdefault(f"lifecycle/{action.customer_id}", time.monotonic())
    return ActionResult(status="done")


@activity.defn(name="deliver_all")
async def deliver_all(actions: list[Action]) -> list[ActionResult]:
    """The same channel for the engine's batches of simultaneous effects."""
    return [await deliver(action) for action in actions]


@activity.defn(name="deliver_with_records")
async def deliver_with_records(order: DeliveryWithRecords) -> DeliveredWithRecords:
    """The same channel, with the records of the workflow task riding along (kept in memory)."""
    return DeliveredWithRecords(results=await deliver_all(order.actions), records_kept=True)


@activity.defn(name="store_records")
async def store_records(batch: dict) -> int:
    """The analytics store, in memory: the engine ships its timeline records as it runs."""
    return len(batch.get("records", []))


async def _bounded(calls, limit: int = IN_FLIGHT) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call):
        async with gate:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


async def _history_events(client: Client, ids: list[str]) -> list[int]:
    counts = []
    for workflow_id in ids[:20]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        counts.append(len(history.events))
    return counts


@dataclass
class Round:
    """One batch of lifecycles of one variant, start to finish."""

    count: int
    seconds: float
    latencies: list[float]
    history: list[int]


async def _round(client: Client, name: str, count: int, start, send_event) -> Round:
    first_action_after_event.clear()
    event_sent.clear()
    ids = [f"lifecycle/bench-{name}-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    began = time.monotonic()
    await _bounded([lambda i=i: start(i) for i in ids])

    async def event(workflow_id: str) -> None:
        event_sent[workflow_id] = time.monotonic()
        await send_event(workflow_id)

    await _bounded([lambda i=i: event(i) for i in ids])
    await _bounded([lambda i=i: client.get_workflow_handle(i).result() for i in ids])
    elapsed = time.monotonic() - began
    latencies = [first_action_after_event[i] - event_sent[i] for i in ids if i in first_action_after_event]
    return Round(count, elapsed, latencies, await _history_events(client, ids))


def _row(name: str, rounds: list[Round]) -> dict:
    count = sum(r.count for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    latencies = sorted(latency for r in rounds for latency in r.latencies)
    history = [events for r in rounds for events in r.history]
    return {
        "variant": name, "lifecycles": count, "seconds": seconds,
        "lifecycles_per_s": count / seconds, "actions_per_s": 4 * count / seconds,
        "history": statistics.mean(history),
        "p50": latencies[len(latencies) // 2] * 1000, "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def run(count: int) -> None:
    # The sandbox imports each workflow's module again for every run (bench/handwritten.py here);
    # a deployed worker reads that from bytecode, but under PYTHONDONTWRITEBYTECODE every import
    # compiles the source again.
    sys.dont_write_bytecode = False
    source = PlaybookSource(LIFECYCLE)
    async with DevServer(headless=True) as server:
        client = await server.connect()
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        lifecycles = LifecycleClient(client, source.project().lifecycle, queue)
        worker = Worker(client, task_queue=queue, workflows=[*CUSTOMER_WORKFLOWS, HandwrittenOnboarding, HandwrittenUnsandboxed],
                        activities=[deliver, deliver_all, deliver_with_records, store_records, source.load_stage], workflow_runner=WORKFLOW_RUNNER,
                        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS)
        async with worker:
            def by_hand(workflow: type):
                async def start(workflow_id: str) -> None:
                    await client.start_workflow(workflow.run, workflow_id.split("/", 1)[1],
                                                id=workflow_id, task_queue=queue)

                async def event(workflow_id: str) -> None:
                    await client.get_workflow_handle(workflow_id).execute_update(
                        workflow.delivered_event, "2026-03-10")
                return start, event

            hand_start, hand_event = by_hand(HandwrittenOnboarding)
            bare_start, bare_event = by_hand(HandwrittenUnsandboxed)

            async def engine_start(workflow_id: str) -> None:
                customer = workflow_id.split("/", 1)[1]
                await lifecycles.send(Event(customer_id=customer, name="order.placed", data={"order_id": "A-1"},
                                            customer={"name": "Ada", "email": "ada@example.com",
                                                      "consent": {"email": True}}))

            async def engine_event(workflow_id: str) -> None:
                await lifecycles.send(Event(customer_id=workflow_id.split("/", 1)[1], name="order.delivered",
                                            data={"delivered_at": "2026-03-10"}))

            await _round(client, "warmup", min(20, count), engine_start, engine_event)
            await _round(client, "warmup", min(20, count), hand_start, hand_event)
            await _round(client, "warmup", min(20, count), bare_start, bare_event)
            # Two halves each, in the order H B E E B H, so drift in the shared server (history
            # piling up in memory, a busy neighbour) weighs on every variant alike.
            half = max(1, count // 2)
            hand, bare, engine = [], [], []
            hand.append(await _round(client, "handwritten", half, hand_start, hand_event))
            bare.append(await _round(client, "unsandboxed", half, bare_start, bare_event))
            engine.append(await _round(client, "engine", half, engine_start, engine_event))
            engine.append(await _round(client, "engine", count - half, engine_start, engine_event))
            bare.append(await _round(client, "unsandboxed", count - half, bare_start, bare_event))
            hand.append(await _round(client, "handwritten", count - half, hand_start, hand_event))
            rows = [_row("handwritten", hand), _row("hand, no sandbox", bare), _row("engine", engine)]
    print()
    print("temporal: one message, wait for an event, three messages (embedded dev server)")
    print(f"{'variant':<17} {'lifecycles':>10} {'seconds':>8} {'lifecycles/s':>13} {'actions/s':>10} "
          f"{'history/lc':>11} {'event→action p50 ms':>20} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['variant']:<17} {row['lifecycles']:>10} {row['seconds']:>8.2f} {row['lifecycles_per_s']:>13.1f} "
              f"{row['actions_per_s']:>10.1f} {row['history']:>11.1f} {row['p50']:>20.1f} {row['p99']:>8.1f}")
    hand, bare, engine = (row["lifecycles_per_s"] for row in rows)
    print(f"ratio engine/handwritten lifecycles_per_s: {engine / hand:.2f}")
    print(f"ratio engine/handwritten without the sandbox (as the engine runs): {engine / bare:.2f}")
