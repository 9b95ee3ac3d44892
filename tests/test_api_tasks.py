"""The task API on a real `lifecycle api` process, the dev server and a worker: the inbox,
complete with a structured outcome, reassign, snooze, cancel, and the contract (401, 404, 409,
410, 422, idempotency) as the event API has it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from harness import FIXTURE, Harness, HelpDesk
from test_api import AUTH, ApiProcess, assert_error, event, eventually, placed, start_api
from test_tasks_workflow import PLAYBOOK


@pytest.fixture(scope="module")
async def harness(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    import shutil

    root = tmp_path_factory.mktemp("api-tasks")
    folder = root / "playbooks"
    shutil.copytree(FIXTURE, folder)
    # The survey ends the lifecycle (test_an_ended_lifecycle_...); no other test here sends it.
    (folder / "set-expectations.yaml").write_text(PLAYBOOK + "  - {kind: end, outcome: answered}\n")
    harness = Harness(client, folder, root / "state")
    async with harness.worker:
        yield harness


@pytest.fixture(scope="module")
def api(harness: Harness, temporal_env: WorkflowEnvironment,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    process = start_api(temporal_env, harness.folder, harness.task_queue,
                        tmp_path_factory.mktemp("api-tasks-log") / "api.log")
    yield process
    process.stop()


@pytest.fixture
async def http(api: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=60) as client:
        yield client


async def customer_with_tasks(http: httpx.AsyncClient) -> str:
    customer = f"api-{uuid.uuid4().hex[:8]}"
    response = await http.post("/v1/events", json=placed(customer))
    assert response.status_code == 202, response.text

    async def has_tasks() -> bool:
        answer = await http.get(f"/v1/customers/{customer}")
        return answer.status_code == 200 and len(answer.json()["tasks"]) == 2

    await eventually(has_tasks)
    return customer


async def reminder_armed(http: httpx.AsyncClient, customer: str) -> bool:
    """Whether the `call` task's wait has armed its reminder (`remind: 1h`)."""
    return (await http.get(f"/v1/tasks/{call(customer)}")).json()["reminder_at"] is not None


def call(customer: str) -> str:
    return f"lifecycle/{customer}/set_expectations/1/call"


def plan(customer: str) -> str:
    return f"lifecycle/{customer}/set_expectations/1/plan_install"


async def test_the_inbox_lists_by_role_status_and_due_before(http):
    customers = [await customer_with_tasks(http) for _ in range(2)]

    async def inbox(**params) -> set[tuple[str, str]]:
        response = await http.get("/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        return {(task["customer_id"], task["step"]) for task in response.json()["tasks"]
                if task["customer_id"] in customers}

    every = lambda step: {(customer, step) for customer in customers}  # noqa: E731
    await eventually(lambda: _equals(inbox(role="account_manager"), every("call")))
    await eventually(lambda: _equals(inbox(status="overdue"), every("plan_install")))
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    await eventually(lambda: _equals(inbox(due_before=soon), every("plan_install")))
    response = await http.get("/v1/tasks", params={"role": "account_manager"})
    task = next(task for task in response.json()["tasks"] if task["customer_id"] == customers[0])
    assert (task["id"], task["status"], task["outcomes"]) == (call(customers[0]), "open", ["reached", "no_answer"])
    # `remind: 1h`: the inbox says when the next reminder comes.
    due, reminder = (datetime.fromisoformat(task[key]) for key in ("due_at", "reminder_at"))
    assert reminder == due - timedelta(hours=1)
    one = await http.get(f"/v1/tasks/{call(customers[0])}")
    assert one.status_code == 200 and one.json()["title"] == "Call about the order"


async def _equals(found, expected) -> bool:
    return await found == expected


async def test_complete_with_an_outcome_then_the_task_is_closed(http, harness):
    customer = await customer_with_tasks(http)
    await eventually(lambda: reminder_armed(http, customer))
    body = {"outcome": "reached", "fields": {"battery_interest": True}}
    headers = {"Idempotency-Key": f"hd-{customer}"}
    done = await http.post(f"/v1/tasks/{call(customer)}:complete", json=body, headers=headers)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["status"] == "accepted"
    assert (answer["task"]["status"], answer["task"]["outcome"], answer["task"]["by"]) == ("done", "reached", "tests")
    assert answer["task"]["reminder_at"] is None  # `remind: 1h` armed one: none comes for a done task
    again = await http.post(f"/v1/tasks/{call(customer)}:complete", json=body, headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    reused = await http.post(f"/v1/tasks/{call(customer)}:complete", json={"outcome": "no_answer"}, headers=headers)
    assert_error(reused, 409, "idempotency_key_reused", "idempotency_key")
    closed = await http.post(f"/v1/tasks/{call(customer)}:complete", json={"outcome": "no_answer"})
    assert_error(closed, 409, "task_closed")

    async def offered() -> bool:
        return any(entry["customer_id"] == customer and entry["step"] == "offer" for entry in harness.outbox())

    await eventually(offered)


async def test_reassign_snooze_and_cancel(http):
    customer = await customer_with_tasks(http)
    until = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    moved = await http.post(f"/v1/tasks/{call(customer)}:reassign", json={"assignee": "sam", "until": until.isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["task"]["assignee"] == "sam"
    assert datetime.fromisoformat(moved.json()["task"]["due_at"]) == until
    snoozed = await http.post(f"/v1/tasks/{plan(customer)}:snooze", json={"until": until.isoformat()})
    assert snoozed.status_code == 200 and snoozed.json()["task"]["status"] == "open"
    cancelled = await http.post(f"/v1/tasks/{plan(customer)}:cancel", json={"reason": "not needed"})
    assert cancelled.status_code == 200
    assert (cancelled.json()["task"]["status"], cancelled.json()["task"]["reason"]) == ("cancelled", "not needed")

    async def assigned() -> bool:
        response = await http.get("/v1/tasks", params={"assignee": "sam"})
        return any(task["id"] == call(customer) for task in response.json()["tasks"])

    await eventually(assigned)

    await eventually(lambda: reminder_armed(http, customer))  # for the new due time
    cancelled = await http.post(f"/v1/tasks/{call(customer)}:cancel", json={"reason": "sam called"})
    assert (cancelled.json()["task"]["status"], cancelled.json()["task"]["reminder_at"]) == ("cancelled", None)


async def test_the_contract_401_404_422(http, api):
    customer = await customer_with_tasks(http)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        assert_error(await anonymous.get("/v1/tasks"), 401, "unauthorized")
        assert_error(await anonymous.post(f"/v1/tasks/{call(customer)}:cancel", json={}), 401, "unauthorized")
    assert_error(await http.post(f"/v1/tasks/lifecycle/{customer}/set_expectations/1/nope:complete", json={}),
                 404, "task_not_found")
    assert_error(await http.post("/v1/tasks/lifecycle/nobody-here/s/1/call:complete", json={}), 404, "task_not_found")
    assert_error(await http.post("/v1/tasks/not-an-id:complete", json={}), 404, "task_not_found")
    assert_error(await http.get(f"/v1/tasks/lifecycle/{customer}/set_expectations/1/nope"), 404, "task_not_found")
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:frobnicate", json={}), 404, "not_found")
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:complete", json={"outcome": "reachd"}),
                 422, "invalid_payload", "outcome")
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:complete",
                                 json={"outcome": "reached", "fields": {"battery_interest": "yes"}}),
                 422, "invalid_payload", "fields.battery_interest")
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:complete", json={"outcom": "reached"}),
                 422, "invalid_request", "outcom")
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:snooze", json={"until": past}),
                 422, "invalid_payload", "until")
    assert_error(await http.post(f"/v1/tasks/{call(customer)}:snooze", json={"until": "2030-01-01T00:00:00"}),
                 422, "invalid_request", "until")
    assert_error(await http.get("/v1/tasks", params={"role": "astronaut"}), 422, "invalid_request", "role")
    assert_error(await http.get("/v1/tasks", params={"status": "done"}), 422, "invalid_request", "status")


async def test_an_ended_lifecycle_s_open_tasks_read_as_cancelled_by_its_end(http):
    customer = await customer_with_tasks(http)
    done = await http.post(f"/v1/tasks/{call(customer)}:complete", json={"outcome": "no_answer"})
    assert done.status_code == 200, done.text
    # The playbook then waits for the survey, which ends the lifecycle: `plan_install` is still open.
    assert (await http.post("/v1/events", json=event(customer, "survey.answered", score=5))).status_code == 202

    async def ended() -> dict | None:
        status = (await http.get(f"/v1/customers/{customer}")).json()
        return status if status["ended"] else None

    status = await eventually(ended)
    assert {task["step"]: task["status"] for task in status["tasks"]} == {"call": "done", "plan_install": "cancelled"}
    task = (await http.get(f"/v1/tasks/{plan(customer)}")).json()
    assert (task["status"], task["reason"], task["reminder_at"]) == ("cancelled", "the lifecycle ended (answered)", None)
    assert task["completed_at"] is not None
    assert_error(await http.post(f"/v1/tasks/{plan(customer)}:cancel", json={}), 410, "lifecycle_ended")


# ---------------------------------------------------------------- hand-off to a help desk, end to end

async def test_a_task_handed_to_a_help_desk_is_completed_from_it(client, harness, temporal_env, tmp_path):
    """The task webhook gives the help desk what it needs; the help desk's `task.solved`, through
    the example receiver (docs/examples/helpdesk_webhook.py), completes it and on_done runs."""
    import os
    import subprocess
    import sys

    from devserver import free_port
    from test_api import EXAMPLES, TOKEN

    desk = HelpDesk()
    webhook = Harness(client, harness.folder, tmp_path / "state", tasks="webhook", webhook={"url": desk.url})
    api = start_api(temporal_env, harness.folder, webhook.task_queue, tmp_path / "api.log")
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "helpdesk_webhook.py")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        env={**os.environ, "LIFECYCLE_API_URL": api.url, "LIFECYCLE_API_TOKEN": TOKEN, "HELPDESK_SECRET": "s3cret",
             "PORT": str(port)})
    try:
        async with webhook.worker, httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=60) as http:
            customer = f"hd-{uuid.uuid4().hex[:8]}"
            assert (await http.post("/v1/events", json=placed(customer))).status_code == 202

            async def handed() -> dict | None:
                return next((body for body in desk.received if body["step"] == "call"
                             and body["customer_id"] == customer), None)

            task = await eventually(handed)
            assert task["task_id"] == call(customer)
            assert (task["role"], task["outcomes"]) == ("account_manager", ["reached", "no_answer"])
            assert task["fields"]["properties"]["battery_interest"] == {"type": "boolean"}
            solved = {"type": "task.solved", "task": {"external_id": task["task_id"], "outcome": "reached",
                                                      "fields": {"battery_interest": True}, "agent": "sam"}}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as helpdesk:
                async def post() -> httpx.Response | None:
                    try:
                        return await helpdesk.post("/helpdesk", json=solved, headers={"X-Helpdesk-Secret": "s3cret"})
                    except httpx.TransportError:
                        return None  # the receiver is still starting

                first = await eventually(post)
                assert first.status_code == 200, first.text
                assert first.json()["task"]["status"] == "done" and first.json()["task"]["by"] == "sam"
                retried = await post()  # the help desk retries: acted on once
                assert retried.status_code == 200 and retried.json()["status"] == "duplicate"

            async def offered() -> bool:
                return any(body["step"] == "offer" for body in desk.received if body["customer_id"] == customer) \
                    or any(e["customer_id"] == customer and e["step"] == "offer" for e in webhook.outbox())

            await eventually(offered)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        api.stop()
        desk.close()
