"""`lifecycle event`, `status` and `list` as a person runs them: real processes, real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from harness import FIXTURE, Harness, eventually, stage_of

LIFECYCLE = str(Path(sys.executable).parent / "lifecycle")


@pytest.fixture
async def running(client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")
    env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "LIFECYCLE_PLAYBOOKS": str(folder), "LIFECYCLE_TASK_QUEUE": harness.task_queue}
    async with harness.worker:
        yield harness, env


async def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, [LIFECYCLE, *args], env=env, capture_output=True,
                                   text=True, timeout=60)


PLACED = json.dumps({"order_id": "A-1", "promised_delivery": "2026-03-10", "price": 100})
PROFILE = json.dumps({"name": "Ada", "email": "ada@example.com", "consent": {"email": True}})


async def test_event_prints_the_receipt_and_exits_by_outcome(running):
    harness, env = running
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    started = await run(env, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE)
    assert (started.returncode, started.stdout.strip()) == (0, "accepted (stage set_expectations)")
    delivered = ["event", customer, "order.delivered", "--data", '{"delivered_at": "2026-03-09"}', "--key", "d-1"]
    first, again = await run(env, *delivered), await run(env, *delivered)
    assert first.stdout.strip() == "accepted (stage set_expectations -> delivery_check_in)"
    assert (again.returncode, again.stdout.strip()) == (0, "duplicate (stage delivery_check_in)")
    bad = await run(env, "event", customer, "survey.answered", "--data", '{"score": "ten"}')
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: rejected: field 'score' must be an int, got str"
    unknown = await run(env, "event", "nobody-" + customer, "ticket.opened", "--data", '{"ticket_id": "T"}')
    assert unknown.returncode == 1 and "has no lifecycle" in unknown.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr


async def test_status_and_list_show_where_the_customer_is(running):
    harness, env = running
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    await run(env, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE)
    await eventually(lambda: stage_of(harness, customer, "set_expectations"))
    status = await run(env, "status", customer, "--json")
    assert status.returncode == 0
    body = json.loads(status.stdout)
    assert body["stage"] == "set_expectations"
    assert body["promises"]["delivery_date"]["state"] == "open"
    text = await run(env, "status", customer)
    assert "promise   delivery_date: open" in text.stdout

    async def listed() -> bool:
        result = await run(env, "list", "--stage", "set_expectations", "--json")
        return any(item["customer_id"] == customer for item in json.loads(result.stdout))

    await eventually(listed)
