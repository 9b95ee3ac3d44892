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

from harness import FIXTURE, Harness, break_check_in, eventually, stage_of

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
    # The stage is the customer's current one, which the fast fixture may have moved on from.
    assert again.returncode == 0 and again.stdout.startswith("duplicate (stage "), again.stdout
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


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (never a traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


async def test_ids_the_api_refuses_are_refused_before_anything_is_sent(running):
    harness, env = running
    for args in (["event", "a/b", "order.placed", "--data", PLACED], ["status", "a/b"],
                 ["event", "cust 1", "order.placed"], ["event", "c-1", "order placed"],
                 ["event", "c-1", "order.placed", "--key", "has space"]):
        line = one_line_error(await run(env, *args))
        assert "A-Z a-z 0-9 . _ : @ -" in line or "printable ASCII" in line, line
    line = one_line_error(await run(env, "list", "--stage", "nowhere"))
    assert "unknown stage 'nowhere'" in line and "set_expectations" in line
    # An event or a role of another lifecycle: the file it was checked against, and how to pick one.
    folder = env["LIFECYCLE_PLAYBOOKS"]
    line = one_line_error(await run(env, "event", "c-1", "review.left"))
    assert line.startswith(f"error: rejected: unknown event 'review.left' in {folder}/lifecycle.yaml (its events: ")
    assert "order.placed" in line and line.endswith("another lifecycle: --playbooks or LIFECYCLE_PLAYBOOKS")
    line = one_line_error(await run(env, "event", "c-1", "order.placd"))
    assert line.startswith("error: rejected: unknown event 'order.placd' (did you mean 'order.placed'?) in ")
    line = one_line_error(await run(env, "event", "c-1", "ticket.opened", "--data", '{"ticket_idd": "T"}'))
    assert line == "error: rejected: 'ticket.opened' has no field 'ticket_idd' (did you mean 'ticket_id'?)"
    line = one_line_error(await run(env, "event", "c-1", "ticket.opened", "--data", "ticket_id=T"))
    assert line.startswith("error: --data: not JSON (") and line.endswith("give a JSON object, e.g. "
                                                                       "'{\"name\": \"value\"}', or @file.json")
    line = one_line_error(await run(env, "tasks", "--role", "front_desk"))
    assert f"unknown role 'front_desk' in {folder}/lifecycle.yaml (its roles: " in line and "--playbooks" in line
    # Nothing was created for the refused ids.
    listing = await run(env, "list", "--json")
    assert not [item for item in json.loads(listing.stdout) if item["customer_id"] in ("a/b", "cust 1")]


async def test_address_and_namespace_options_replace_the_environment(running, client: Client):
    harness, env = running
    bare = {key: value for key, value in env.items() if not key.startswith("TEMPORAL_")}
    address = client.service_client.config.target_host
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    sent = await run(bare, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE,
                     "--address", address, "--namespace", client.namespace)
    assert (sent.returncode, sent.stdout.strip()) == (0, "accepted (stage set_expectations)"), sent.stderr
    status = await run(bare, "status", customer, "--json", "--address", address)
    assert json.loads(status.stdout)["stage"] == "set_expectations"
    wrong = one_line_error(await run(bare, "status", customer, "--address", address, "--namespace", "nowhere"))
    assert "nowhere" in wrong
    listed = one_line_error(await run(bare, "list", "--address", address, "--namespace", "nowhere"))
    assert "nowhere" in listed and "--namespace or TEMPORAL_NAMESPACE" in listed and "server running" not in listed
    for command in ("event", "status", "list"):
        help_text = (await run(bare, command, "--help")).stdout
        assert "--address" in help_text and "TEMPORAL_ADDRESS" in help_text and "--namespace" in help_text


async def test_an_unreachable_server_is_one_line_with_a_hint(running):
    harness, env = running
    from devserver import free_port

    nowhere = f"127.0.0.1:{free_port()}"
    for args in (["event", "c-1", "ticket.opened", "--data", '{"ticket_id": "T"}'], ["status", "c-1"], ["list"]):
        line = one_line_error(await run(env, *args, "--address", nowhere))
        assert f"cannot connect to Temporal at {nowhere}" in line and "connection refused" in line
        assert "TEMPORAL_ADDRESS" in line and "tonic" not in line


async def test_over_size_data_is_refused_in_one_line_naming_the_limit(running):
    harness, env = running
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    long_scope = json.dumps({"order_id": "A-1", "promised_delivery": "2026-03-10", "price": 100,
                             "scope": "x" * 20_000})
    line = one_line_error(await run(env, "event", customer, "order.placed", "--data", long_scope))
    assert "field 'scope' is longer than 16384 bytes" in line and "payload_too_large" in line
    profile = json.dumps({"name": "Ada", "address": "y" * 17_000})
    line = one_line_error(await run(env, "event", customer, "order.placed", "--data", PLACED,
                                    "--customer-json", profile))
    assert "customer.address" in line
    assert one_line_error(await run(env, "status", customer)).endswith("has no lifecycle")


async def test_a_lifecycle_whose_workflow_fails_is_reported_in_one_line(running, client: Client):
    """A workflow whose code fails (here: an input it cannot decode) cannot answer the status
    query nor take an event; the CLI says so in one line."""
    harness, env = running
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    await client.start_workflow("CustomerLifecycle", {"not": "a lifecycle start"}, id=f"lifecycle/{customer}",
                                task_queue=harness.task_queue)
    status = one_line_error(await run(env, "status", customer))
    sent = one_line_error(await run(env, "event", customer, "ticket.opened", "--data", '{"ticket_id": "T"}',
                                    "--timeout", "3"))
    assert "workflow code is failing" in status and "workflow_task_failed" in status, status
    assert "workflow code is failing" in sent and "workflow_task_failed" in sent, sent


async def test_without_a_worker_a_keyed_event_is_queued_and_an_unkeyed_one_says_why_not(running):
    harness, env = running
    idle = {**env, "LIFECYCLE_TASK_QUEUE": f"idle-{uuid.uuid4().hex[:6]}"}  # no worker polls it
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    queued = await run(idle, "event", customer, "order.placed", "--data", PLACED, "--key", "q-1", "--timeout", "1")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.startswith("queued (no worker took it within 1s") and "--key q-1 is safe" in queued.stdout
    unkeyed = one_line_error(await run(idle, "event", f"{customer}-2", "order.placed", "--data", PLACED,
                                       "--timeout", "1"))
    assert "no worker took the event within 1s" in unkeyed and "idempotency key" in unkeyed, unkeyed
    silent = one_line_error(await run(idle, "status", customer, "--timeout", "1"))
    assert silent.endswith(f"does a worker poll task queue '{idle['LIFECYCLE_TASK_QUEUE']}'?"), silent  # the hint once


async def test_an_operator_sees_a_held_customer_and_retries_or_skips_from_the_cli(running):
    harness, env = running
    template = harness.folder / "templates" / "summary.txt"
    template.write_text("Subject: Hi\n\nYou have {{ 10 // facts.open_tickets }} credits.\n")
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    await run(env, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE)

    async def held() -> bool:
        return (await harness.lifecycles.status(customer)).incident is not None

    await eventually(held)
    status = await run(env, "status", customer)
    assert "HELD      template failure at summary" in status.stdout
    assert f"lifecycle retry {customer}" in status.stdout

    async def listed() -> bool:
        found = await run(env, "list", "--incidents")
        return f"{customer}" in found.stdout and "held: template" in found.stdout

    await eventually(listed)
    skipped = await run(env, "skip", customer, "--by", "ops")
    assert (skipped.returncode, skipped.stdout.split(" (")[0]) == (0, "skip")
    again = await run(env, "retry", customer)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: retry: the customer is not held on an incident"
    unknown = await run(env, "retry", "nobody-" + customer)
    assert unknown.returncode == 1 and "has no lifecycle" in unknown.stderr
    assert "Traceback" not in again.stderr + unknown.stderr


async def test_a_broken_stage_playbook_leaves_every_operating_command_working(running):
    # The moment an operator needs `list --incidents`, `status` and `retry` is when a stage's
    # playbook is broken on disk; they judge by the lifecycle file, which is sound, so they
    # warn in one line and work (they refused, printing the playbook's error, before).
    harness, env = running
    playbook = harness.folder / "delivery-check-in.yaml"
    good = break_check_in(harness.folder)
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    started = await run(env, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE)
    assert (started.returncode, started.stdout.strip()) == (0, "accepted (stage set_expectations)")
    assert started.stderr.startswith("warning: customers entering delivery_check_in are held until their files load: ")
    assert "delivery-check-in.yaml:" in started.stderr and started.stderr.count("\n") == 1
    delivered = await run(env, "event", customer, "order.delivered", "--data", '{"delivered_at": "2026-03-09"}')
    assert delivered.returncode == 0, delivered.stderr

    async def listed() -> bool:
        found = await run(env, "list", "--incidents")
        return found.returncode == 0 and f"{customer}" in found.stdout and "held: load" in found.stdout

    await eventually(listed)
    status = await run(env, "status", customer)
    assert status.returncode == 0 and "HELD      load failure at stage delivery_check_in" in status.stdout
    # A skip runs none of the stage's playbook: say so where it is offered.
    assert "runs none of the stage's playbook: the customer stays in delivery_check_in" in status.stdout
    retried = await run(env, "retry", customer)
    assert retried.returncode == 0, retried.stderr
    assert "Traceback" not in started.stderr + status.stderr + retried.stderr

    # A broken lifecycle file is another matter: nothing can be judged by it.
    lifecycle = harness.folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text() + "  junk: [\n")
    refused = await run(env, "list")
    assert refused.returncode == 1 and "lifecycle.yaml:" in refused.stderr and "YAML syntax error" in refused.stderr
    playbook.write_text(good)


async def test_status_shows_a_delivery_temporal_keeps_retrying_with_its_last_error(running):
    # A full disk under the outbox or a relay that is down: the lifecycle waits for a delivery
    # Temporal retries, and `status` showed nothing but a customer who did not move.
    harness, env = running
    harness.settings.outbox_path.mkdir(parents=True)  # the outbox cannot be written
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    await run(env, "event", customer, "order.placed", "--data", PLACED, "--customer-json", PROFILE)

    async def retrying() -> str:
        status = await run(env, "status", customer)
        return status.stdout if "RETRYING  " in status.stdout else ""

    shown = await eventually(retrying)
    [line] = [line for line in shown.splitlines() if line.startswith("RETRYING  ")]
    assert line.startswith("RETRYING  deliver_with_records: attempt ")
    assert "last error " in line and "Is a directory" in line
    harness.settings.outbox_path.rmdir()  # room again: the retry delivers, the line goes

    async def delivered() -> bool:
        status = await run(env, "status", customer)
        return "RETRYING" not in status.stdout and "summary" in harness.steps(customer)

    await eventually(delivered, timeout=60)


async def test_the_api_starts_with_a_broken_stage_playbook_and_refuses_a_broken_lifecycle_file(running):
    # Like the worker: a stage file broken on disk when the API (re)starts held every event
    # from every other system; the API needs only the lifecycle file to judge them.
    import httpx

    from devserver import free_port

    harness, env = running
    break_check_in(harness.folder)
    port = free_port()
    api_env = {**env, "LIFECYCLE_API_TOKENS": "ops:" + "t" * 32}
    process = subprocess.Popen([LIFECYCLE, "api", "--port", str(port)], env=api_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def healthy() -> bool:
            assert process.poll() is None, process.communicate()[1]
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert "warning: customers entering delivery_check_in are held until their files load: " in errors
    assert "Traceback" not in errors

    lifecycle = harness.folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text() + "  junk: [\n")
    refused = await run(api_env, "api", "--port", str(free_port()))
    assert refused.returncode == 1 and "lifecycle.yaml:" in refused.stderr and "YAML syntax error" in refused.stderr
