"""The HTTP API on a real uvicorn server (`lifecycle api`, a subprocess on loopback), the real
dev server and an in-process worker: status codes, auth, limits, batches, listings, the
OpenAPI document, the CLI and plain-Temporal roads, and 1,000 concurrent events."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api import ApiSettings, create_app
from api.errors import install_error_handlers
from api.server import listen, serve
from devserver import free_port, temporal_binary
from harness import FIXTURE, Harness

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
TOKEN = f"tok-{uuid.uuid4().hex}"
OTHER_TOKEN = f"tok-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# The fixture lifecycle, with the help desk's events as the bundled lifecycle has them.
TICKET_CLOSED = """\
  ticket.closed:
    payload:
      ticket_id: string!
      resolved: bool
    updates:
      open_tickets: "facts.open_tickets > 0 ? facts.open_tickets - 1 : 0"
"""


# --- a `lifecycle api` process ---------------------------------------------------------


@dataclass
class ApiProcess:
    """`lifecycle api` in a subprocess on a free loopback port."""

    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        """What the server printed and logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def temporal_environ(env: WorkflowEnvironment, **extra: str) -> dict[str, str]:
    """The environment of a `lifecycle` subprocess talking to the session's dev server."""
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("TEMPORAL_", "LIFECYCLE_"))}
    environ.update(TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
                   TEMPORAL_NAMESPACE=env.client.namespace, PYTHONUNBUFFERED="1", **extra)
    return environ


def start_api(env: WorkflowEnvironment, folder: Path, task_queue: str, log: Path,
              tokens: str = f"tests:{TOKEN},other:{OTHER_TOKEN}", **settings: str) -> ApiProcess:
    """Start `lifecycle api` and wait (with a deadline) until /healthz answers.

    `settings` are more environment variables; the shared API runs without a rate limit, which
    would otherwise refuse the thousand-event test (tests/test_api_security.py tests the limit)."""
    settings = {"LIFECYCLE_API_RATE": "off", **settings}
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "lifecycle"), "api", "--host", "127.0.0.1", "--port", str(port),
             "--playbooks", str(folder), "--task-queue", task_queue],
            env=temporal_environ(env, LIFECYCLE_API_TOKENS=tokens, **settings), stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = ApiProcess(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"lifecycle api exited with {process.returncode}:\n{api.output()}")
        try:
            if httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200:
                return api
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            api.stop()
            raise AssertionError(f"lifecycle api did not come up:\n{api.output()}")
        time.sleep(0.1)


def playbook_folder(root: Path) -> Path:
    """A copy of the fast fixture with `ticket.closed` added."""
    folder = root / "playbooks"
    shutil.copytree(FIXTURE, folder)
    lifecycle = folder / "lifecycle.yaml"
    text = lifecycle.read_text().replace("  referral.made:\n", TICKET_CLOSED + "  referral.made:\n")
    text = text.replace("      ticket_id: string!\n    updates:\n      open_tickets: facts.open_tickets + 1",
                        "      ticket_id: string!\n      subject: string\n    updates:\n"
                        "      open_tickets: facts.open_tickets + 1")
    assert "subject: string" in text and "ticket.closed" in text
    lifecycle.write_text(text)
    return folder


@pytest.fixture(scope="module")
async def harness(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    root = tmp_path_factory.mktemp("api")
    harness = Harness(client, playbook_folder(root), root / "state")
    async with harness.worker:
        yield harness


@pytest.fixture(scope="module")
def api(harness: Harness, temporal_env: WorkflowEnvironment,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    process = start_api(temporal_env, harness.folder, harness.task_queue,
                        tmp_path_factory.mktemp("api-log") / "api.log")
    yield process
    process.stop()


@pytest.fixture
async def http(api: ApiProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=60) as client:
        yield client


def customer_id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def placed(customer: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"customer_id": customer, "event": "order.placed",
            "data": {"order_id": "A-1", "promised_delivery": "2026-03-10", "price": 100},
            "customer": {"name": "Ada", "email": f"{customer}@example.com", "consent": {"email": True}}}
    if key:
        body["idempotency_key"] = key
    return {**body, **extra}


def event(customer: str, name: str, key: str | None = None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": customer, "event": name, "data": data}
    if key:
        body["idempotency_key"] = key
    return body


async def started(http: httpx.AsyncClient, prefix: str = "c") -> str:
    customer = customer_id(prefix)
    response = await http.post("/v1/events", json=placed(customer))
    assert response.status_code == 202, response.text
    return customer


async def eventually(check, timeout: float = 30.0) -> Any:
    """Poll `check` (an async callable) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


# --- auth --------------------------------------------------------------------------------


async def test_healthz_is_open_and_everything_else_needs_a_valid_token(api: ApiProcess):
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok", "task_queue": None, "pollers": None}
        probe = await anonymous.head("/healthz")  # as load balancers probe
        assert (probe.status_code, probe.content) == (200, b"")
        for method, path in [("GET", "/readyz"), ("GET", "/v1/playbooks"), ("POST", "/v1/events"),
                             ("POST", "/v1/events:batch"), ("GET", "/v1/customers"),
                             ("GET", "/v1/customers/c-1"), ("GET", "/openapi.json"), ("GET", "/docs")]:
            for headers in [{}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"},
                            {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}]:
                response = await anonymous.request(method, path, headers=headers, json={})
                assert_error(response, 401, "unauthorized")
                assert "WWW-Authenticate" in response.headers
        other = await anonymous.get("/v1/playbooks", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert other.status_code == 200  # every listed caller gets in


async def test_an_idle_connection_stays_open_for_a_sender_that_reuses_it(api: ApiProcess):
    """A pooled client (or a load balancer) reuses a connection idle for seconds; uvicorn's default
    closes it after 5 s, and a request sent just then is reset instead of answered."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        for number in range(2):
            if number:
                await asyncio.sleep(6.5)  # longer than uvicorn's default keep-alive
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
    finally:
        writer.close()


async def test_docs_take_basic_auth_with_the_token_as_password_so_a_browser_can_open_them(api: ApiProcess):
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        challenge = await browser.get("/docs")
        assert challenge.headers["WWW-Authenticate"].startswith("Basic")
        page = await browser.get("/docs", auth=("anyone", TOKEN))
        assert page.status_code == 200 and "swagger" in page.text.lower()
        assert (await browser.get("/openapi.json", auth=("anyone", TOKEN))).status_code == 200
        # Basic is for the docs only.
        assert (await browser.get("/v1/playbooks", auth=("anyone", TOKEN))).status_code == 401


async def test_readyz_is_ready_when_a_worker_polls_the_task_queue(http: httpx.AsyncClient, harness: Harness):
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready" and response.json()["pollers"] >= 1
    assert response.json()["task_queue"] == harness.task_queue


async def test_readyz_turns_503_as_soon_as_the_last_worker_stops(client: Client, harness: Harness, tmp_path: Path):
    queue = f"ready-{uuid.uuid4().hex[:6]}"
    settings = ApiSettings(lifecycle_file=harness.folder / "lifecycle.yaml", tokens={"tests": TOKEN},
                           task_queue=queue)
    async with served(lambda: create_app(settings, client)) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
            worker = Harness(client, harness.folder, tmp_path / "state", task_queue=queue)
            async with worker.worker:
                async def ready() -> httpx.Response | None:
                    response = await http.get("/readyz")
                    return response if response.status_code == 200 else None

                assert (await eventually(ready)).json()["pollers"] == 1
            # Temporal still lists the stopped worker's poller (for minutes), but it is not ready:
            # well before a poller would count as stale (70 s).
            began = time.monotonic()

            async def not_ready() -> httpx.Response | None:
                response = await http.get("/readyz")
                return response if response.status_code != 200 else None

            assert_error(await eventually(not_ready, timeout=20), 503, "no_worker")
            print(f"/readyz said 503 {time.monotonic() - began:.1f}s after the worker stopped")


async def test_an_api_on_a_missing_namespace_says_so_with_502_not_503(client: Client, harness: Harness):
    from temporalio.contrib.pydantic import pydantic_data_converter

    wrong = await Client.connect(client.service_client.config.target_host, namespace=f"nowhere-{uuid.uuid4().hex[:4]}",
                                 data_converter=pydantic_data_converter)
    settings = ApiSettings(lifecycle_file=harness.folder / "lifecycle.yaml", tokens={"tests": TOKEN},
                           task_queue=harness.task_queue, event_timeout=5.0)
    async with served(lambda: create_app(settings, wrong)) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
            assert_error(await eventually(lambda: _get_or_none(http, "/readyz")), 502, "namespace_not_found")
            assert_error(await http.post("/v1/events", json=placed(customer_id(), key="ns-1")), 502,
                         "namespace_not_found")
            assert_error(await http.get("/v1/customers/c-1"), 502, "namespace_not_found")
            assert_error(await http.get("/v1/customers"), 502, "namespace_not_found")


async def test_a_poller_not_seen_for_70_seconds_is_not_alive(client: Client, harness: Harness):
    from datetime import datetime, timedelta, timezone

    from api.health import live_pollers

    now = datetime.now(timezone.utc)
    assert await live_pollers(client, harness.task_queue, now=now) == 1  # the module's worker
    assert await live_pollers(client, harness.task_queue, now=now + timedelta(seconds=71 + 60)) == 0


async def test_without_a_worker_a_keyed_event_is_queued_and_applied_when_a_worker_comes(
        client: Client, harness: Harness, tmp_path: Path):
    # An API in this process, on a task queue no worker polls yet, with a short engine timeout.
    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    settings = ApiSettings(lifecycle_file=harness.folder / "lifecycle.yaml", tokens={"tests": TOKEN},
                           task_queue=queue, event_timeout=1.0)
    async with served(lambda: create_app(settings, client)) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
            assert_error(await eventually(lambda: _get_or_none(http, "/readyz")), 503, "no_worker")
            customer = customer_id("late")
            queued = await http.post("/v1/events", json=placed(customer, key="late-1"))
            assert queued.status_code == 202, queued.text
            assert queued.json()["status"] == "queued" and queued.json()["stage"] is None
            # Without a key the event cannot be queued safely: 504, and the message says why.
            unkeyed = await http.post("/v1/events", json=placed(customer_id("late")))
            assert "idempotency key" in assert_error(unkeyed, 504, "temporal_timeout")["message"]
            # A resend is safe: the same answer, nothing sent twice.
            again = await http.post("/v1/events", json=placed(customer, key="late-1"))
            assert (again.status_code, again.json()["status"]) == (200, "duplicate")
            # An ordinary event for the started-but-unserved lifecycle is queued too.
            ticket = await http.post("/v1/events", json=event(customer, "ticket.opened", "late-t1", ticket_id="T-1"))
            assert (ticket.status_code, ticket.json()["status"]) == (202, "queued")
            late = Harness(client, harness.folder, tmp_path / "state", task_queue=queue)
            async with late.worker:
                async def applied() -> bool:
                    response = await http.get(f"/v1/customers/{customer}")
                    return response.status_code == 200 and response.json()["facts"]["open_tickets"] == 1

                await eventually(applied)
                status = (await http.get(f"/v1/customers/{customer}")).json()
                assert status["stage"] == "set_expectations"
                assert sum(1 for r in status["recent"] if r["kind"] == "event"
                           and r["detail"].get("event") == "order.placed") == 1, status["recent"]
                assert [entry["step"] for entry in late.outbox() if entry["customer_id"] == customer].count("summary") == 1


# --- POST /v1/events ----------------------------------------------------------------------


async def test_a_start_event_is_accepted_and_the_customer_shows_up(http: httpx.AsyncClient, harness: Harness):
    customer = customer_id()
    response = await http.post("/v1/events", json=placed(customer, key="order-A-1"))
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "customer_id": customer, "event": "order.placed",
                               "idempotency_key": "order-A-1", "stage": "set_expectations", "transition": None}
    status = (await http.get(f"/v1/customers/{customer}")).json()
    assert status["stage"] == "set_expectations"
    assert status["customer"]["email"] == f"{customer}@example.com"
    assert status["facts"]["open_tickets"] == 0


async def test_same_key_and_body_is_a_duplicate_answered_with_the_first_answer(http: httpx.AsyncClient):
    customer = await started(http)
    body = event(customer, "order.delivered", key="delivery-1", delivered_at="2026-03-09")
    first = await http.post("/v1/events", json=body)
    again = await http.post("/v1/events", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["transition"] == "delivery_check_in"
    assert again.json() == {**first.json(), "status": "duplicate"}


async def test_a_resent_event_is_answered_duplicate_by_the_lifecycle_and_costs_no_history(
        http: httpx.AsyncClient, harness: Harness, client: Client):
    """Past the API's own memory (here: the client road), the workflow's validator refuses a seen
    key, so no update is accepted into history, and the caller is still answered `duplicate`."""
    from temporalio.api.enums.v1 import EventType

    customer = await started(http)
    first = await harness.event(customer, "ticket.opened", "resent-1", ticket_id="T-1")
    handle = client.get_workflow_handle(f"lifecycle/{customer}")

    async def accepted_updates() -> int:
        history = await handle.fetch_history()
        return sum(1 for item in history.events
                   if item.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)

    before = await accepted_updates()
    again = await harness.event(customer, "ticket.opened", "resent-1", ticket_id="T-1")
    assert first.status == "accepted"
    assert (again.status, again.stage) == ("duplicate", "set_expectations")
    assert await accepted_updates() == before
    by_http = await http.post("/v1/events", json=event(customer, "ticket.opened", "resent-1", ticket_id="T-1"))
    assert (by_http.status_code, by_http.json()["status"], by_http.json()["stage"]) == (
        200, "duplicate", "set_expectations")
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1


async def test_the_key_may_come_as_an_idempotency_key_header(http: httpx.AsyncClient):
    customer = await started(http)
    body = event(customer, "ticket.opened", ticket_id="T-1")
    first = await http.post("/v1/events", json=body, headers={"Idempotency-Key": "ticket-T-1"})
    again = await http.post("/v1/events", json={**body, "idempotency_key": "ticket-T-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["idempotency_key"] == "ticket-T-1"
    facts = (await http.get(f"/v1/customers/{customer}")).json()["facts"]
    assert facts["open_tickets"] == 1
    differing = await http.post("/v1/events", json={**body, "idempotency_key": "a"}, headers={"Idempotency-Key": "b"})
    assert_error(differing, 422, "invalid_request", "idempotency_key")


async def test_same_key_with_a_different_body_is_a_conflict_and_is_not_acted_on(http: httpx.AsyncClient):
    customer = await started(http)
    assert (await http.post("/v1/events", json=event(customer, "ticket.opened", "k-1", ticket_id="T-1"))
            ).status_code == 202
    conflict = await http.post("/v1/events", json=event(customer, "ticket.opened", "k-1", ticket_id="T-2"))
    assert_error(conflict, 409, "idempotency_key_reused", "idempotency_key")
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1
    # Keys are per customer: another customer may use the same key.
    other = await started(http)
    assert (await http.post("/v1/events", json=event(other, "ticket.opened", "k-1", ticket_id="T-2"))
            ).status_code == 202


async def test_an_event_for_a_customer_without_lifecycle_is_not_found_unless_it_starts_one(
        http: httpx.AsyncClient):
    nobody = customer_id("nobody")
    assert_error(await http.post("/v1/events", json=event(nobody, "ticket.opened", ticket_id="T")),
                 404, "customer_not_found")
    assert_error(await http.get(f"/v1/customers/{nobody}"), 404, "customer_not_found")


@pytest.mark.parametrize("body, field", [
    ({"event": "order.delivered", "data": {"delivered_at": "tomorrow-ish"}}, "delivered_at"),
    ({"event": "order.delivered", "data": {}}, "delivered_at"),
    ({"event": "order.delivered", "data": {"delivered_at": "2026-03-09", "colour": "red"}}, "colour"),
    ({"event": "survey.answered", "data": {"score": "ten"}}, "score"),
    ({"event": "survey.answered", "data": {"score": 2**64}}, "score"),
    ({"event": "order.teleported", "data": {}}, "event"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "customer": {"consent": ["email"]}}, "customer.consent"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "customer": {"shoe_size": 9}}, "customer.shoe_size"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "customer": {"consent": {"sms": "yes"}}},
     "customer.consent.sms"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "customer": {"preferred_channel": "fax"}},
     "customer.preferred_channel"),
])
async def test_a_payload_that_does_not_match_the_event_schema_is_422_naming_the_field(
        http: httpx.AsyncClient, body: dict, field: str):
    customer = await started(http)
    assert_error(await http.post("/v1/events", json={"customer_id": customer, **body}), 422, "invalid_payload", field)
    assert (await http.get(f"/v1/customers/{customer}")).json()["stage"] == "set_expectations"


@pytest.mark.parametrize("body, field", [
    ({"data": {"ticket_id": "T"}}, "event"),
    ({"event": "ticket.opened", "data": "T-1"}, "data"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "sent_by": "crm"}, "sent_by"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "occurred_at": "2026-03-09T10:00:00"}, "occurred_at"),
    ({"event": "ticket.opened", "data": {"ticket_id": "T"}, "idempotency_key": "has space"}, "idempotency_key"),
])
async def test_an_envelope_that_does_not_fit_is_422_naming_the_field(http: httpx.AsyncClient, body: dict, field: str):
    assert_error(await http.post("/v1/events", json={"customer_id": "c-1", **body}), 422, "invalid_request", field)


async def test_an_event_the_current_stage_cannot_take_is_409_with_the_stage(http: httpx.AsyncClient):
    customer = await started(http)
    error = assert_error(await http.post("/v1/events", json=event(customer, "referral.made", referred_name="Bo")),
                         409, "stage_cannot_take_event")
    assert error["stage"] == "set_expectations"
    assert "referral.made" in error["message"]


async def test_an_event_after_the_lifecycle_ended_is_410(http: httpx.AsyncClient):
    customer = await started(http)
    await http.post("/v1/events", json=event(customer, "order.delivered", delivered_at="2026-03-09"))

    async def waiting_for_the_survey() -> bool:
        pending = (await http.get(f"/v1/customers/{customer}")).json()["pending"]
        return pending is not None and pending["step"] == "await_survey"

    await eventually(waiting_for_the_survey)
    assert (await http.post("/v1/events", json=event(customer, "survey.answered", score=3))).status_code == 202

    async def ended() -> bool:
        return (await http.get(f"/v1/customers/{customer}")).json()["ended"] is not None

    await eventually(ended)
    late = await http.post("/v1/events", json=event(customer, "ticket.opened", ticket_id="T-9"))
    assert_error(late, 410, "lifecycle_ended")


async def test_an_event_for_a_terminated_lifecycle_is_410_never_503(http: httpx.AsyncClient, client: Client):
    customer = await started(http)
    await client.get_workflow_handle(f"lifecycle/{customer}").terminate(reason="test: an operator stopped it")
    late = await http.post("/v1/events", json=event(customer, "ticket.opened", "after-end", ticket_id="T-9"))
    assert_error(late, 410, "lifecycle_ended")
    # A start event begins a new lifecycle after the terminated one.
    again = await http.post("/v1/events", json=placed(customer, key="restart"))
    assert (again.status_code, again.json()["status"]) == (202, "accepted"), again.text


# --- limits and ids -------------------------------------------------------------------------


async def test_a_body_over_one_mebibyte_is_413_declared_or_streamed(http: httpx.AsyncClient):
    big = json.dumps(event("c-1", "ticket.opened", ticket_id="x" * (1024 * 1024))).encode()
    assert assert_error(await http.post("/v1/events", content=big), 413, "body_too_large")["limit"] == 1024 * 1024

    async def chunks():  # no Content-Length: the limit is counted while reading
        for start in range(0, len(big), 64 * 1024):
            yield big[start:start + 64 * 1024]

    assert_error(await http.post("/v1/events", content=chunks()), 413, "body_too_large")


async def test_an_event_over_its_budget_is_422_naming_the_field_and_the_limit(http: httpx.AsyncClient):
    customer = await started(http)
    long = await http.post("/v1/events", json=event(customer, "ticket.opened", ticket_id="x" * 20_000))
    assert assert_error(long, 422, "payload_too_large", "ticket_id")["limit"] == 16 * 1024
    profile = await http.post("/v1/events", json={**event(customer, "ticket.opened", ticket_id="T"),
                                                  "customer": {"name": "n" * 17_000}})
    assert assert_error(profile, 422, "payload_too_large", "customer.name")["limit"] == 16 * 1024
    # Fields each within the string budget, together over the profile's budget.
    both = await http.post("/v1/events", json={**event(customer, "ticket.opened", ticket_id="T"),
                                               "customer": {"name": "n" * 9_000, "address": "a" * 9_000}})
    assert assert_error(both, 422, "payload_too_large", "customer")["limit"] == 16 * 1024
    status = (await http.get(f"/v1/customers/{customer}")).json()
    assert status["facts"]["open_tickets"] == 0  # nothing refused was acted on


@pytest.mark.parametrize("customer", ["has/slash", "has space", "x" * 201, "", "ünïcode", "a'b"])
async def test_customer_ids_outside_the_id_syntax_never_reach_temporal(http: httpx.AsyncClient, customer: str):
    assert_error(await http.post("/v1/events", json=placed(customer)), 422, "invalid_request", "customer_id")


async def test_ids_in_paths_and_queries_and_event_names_are_checked_too(http: httpx.AsyncClient):
    assert_error(await http.get("/v1/customers/has%20space"), 422, "invalid_request", "customer_id")
    assert_error(await http.get("/v1/customers/" + "x" * 201), 422, "invalid_request", "customer_id")
    assert_error(await http.get("/v1/customers", params={"stage": "a' OR '1'='1"}), 422, "invalid_request", "stage")
    assert_error(await http.get("/v1/customers", params={"stage": "nowhere"}), 422, "invalid_request", "stage")
    assert_error(await http.post("/v1/events", json={**placed("c-1"), "event": "order placed!"}),
                 422, "invalid_request", "event")


async def test_ids_with_every_allowed_character_work(http: httpx.AsyncClient):
    customer = f"Crm:{uuid.uuid4().hex[:6]}.x_y-z@acme"
    assert (await http.post("/v1/events", json=placed(customer))).status_code == 202
    assert (await http.get(f"/v1/customers/{customer}")).json()["customer_id"] == customer


# --- errors are JSON ------------------------------------------------------------------------


async def test_routing_and_parsing_errors_are_json_too(http: httpx.AsyncClient):
    assert_error(await http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await http.get("/v1/events"), 405, "method_not_allowed")
    assert_error(await http.post("/v1/events", content=b"{not json"), 400, "invalid_json")
    assert_error(await http.post("/v1/events", content=b'{"price": NaN}'), 400, "invalid_json")
    assert_error(await http.post("/v1/events", content=b"[" * 100_000), 400, "invalid_json")
    assert_error(await http.post("/v1/events", json=[1, 2]), 422, "invalid_request")
    assert_error(await http.get("/v1/customers", params={"page_size": 0}), 422, "invalid_request", "page_size")


@pytest.mark.parametrize("body", [
    b'{"customer_id": "c-1", "event": "ticket.opened", "data": {"ticket_id": "T-\\ud800"}}',
    b'{"customer_id": "c-1", "event": "ticket.opened", "data": {"ticket_id": "T"}, "customer": {"name": "\\udc00"}}',
    b'{"customer_id": "c-1", "event": "ticket.opened", "data": {"\\ud83d": "T"}}',
])
async def test_a_string_with_an_unpaired_surrogate_is_400_invalid_json_not_a_500(http: httpx.AsyncClient,
                                                                                  body: bytes):
    # JSON lets a string escape half a UTF-16 pair; no UTF-8 can carry it (this was a 500).
    assert_error(await http.post("/v1/events", content=body), 400, "invalid_json")
    batch = b'{"events": [' + body + b']}'
    assert_error(await http.post("/v1/events:batch", content=batch), 400, "invalid_json")
    command = b'{"outcome": "\\ud800"}'
    assert_error(await http.post("/v1/tasks/lifecycle/c-1/s/1/t:complete", content=command), 400, "invalid_json")


async def test_a_whole_surrogate_pair_is_one_character_and_is_taken(http: httpx.AsyncClient):
    customer = await started(http)
    body = ('{"customer_id": "%s", "event": "ticket.opened", "data": {"ticket_id": "T-\\ud83d\\ude00"}}'
            % customer).encode()
    assert (await http.post("/v1/events", content=body)).status_code == 202
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1


@pytest.mark.parametrize("when", [1765000000, "1765000000", 1765000000000.0])
async def test_a_number_for_a_time_is_refused_not_read_as_unix_time(http: httpx.AsyncClient, when: Any):
    customer = await started(http)
    late = {**event(customer, "ticket.opened", ticket_id="T"), "occurred_at": when}
    assert_error(await http.post("/v1/events", json=late), 422, "invalid_request", "occurred_at")
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 0
    task = f"lifecycle/{customer}/set_expectations/1/brief"
    assert_error(await http.post(f"/v1/tasks/{task}:snooze", json={"until": when}), 422, "invalid_request", "until")
    assert_error(await http.post(f"/v1/tasks/{task}:reassign", json={"assignee": "sam", "until": when}),
                 422, "invalid_request", "until")
    assert_error(await http.get("/v1/tasks", params={"due_before": str(when)}), 422, "invalid_request", "due_before")


async def test_every_status_the_api_answers_is_in_its_openapi_document(http: httpx.AsyncClient, api: ApiProcess):
    paths = (await http.get("/openapi.json")).json()["paths"]

    def documented(method: str, path: str, status: int) -> bool:
        return str(status) in paths[path][method]["responses"]

    customer = await started(http)
    seen = [
        ("post", "/v1/tasks/{task_command}", await http.post(f"/v1/tasks/lifecycle/{customer}/x/1/y:cancel",
                                                              content=b"{not json")),
        ("post", "/v1/customers/{customer_id}/retry", await http.post(f"/v1/customers/{customer}/retry",
                                                                      content=b"{not json")),
        ("post", "/v1/customers/{customer_id}/skip", await http.post(f"/v1/customers/{customer}/skip",
                                                                     content=b"{not json")),
        ("get", "/v1/analytics/report", await httpx.AsyncClient(base_url=api.url).get("/v1/analytics/report")),
    ]
    assert [(path, response.status_code) for method, path, response in seen
            if not documented(method, path, response.status_code)] == []
    assert [response.status_code for _, _, response in seen] == [400, 400, 400, 401]
    # Answers that need a broken deployment to provoke, from the code paths that give them:
    # a failing workflow (409 workflow_task_failed, query_failed) on reads, a slow visibility
    # store (504), a wrong namespace (502) on /readyz, and a bug (500) anywhere.
    for method, path, status in [("get", "/v1/customers/{customer_id}", 409), ("get", "/v1/tasks/{task_id}", 409),
                                 ("get", "/v1/tasks", 409), ("get", "/v1/customers", 504),
                                 ("get", "/readyz", 502), ("post", "/v1/events", 500),
                                 ("get", "/v1/analytics/funnel", 429)]:
        assert documented(method, path, status), (method, path, status)


async def test_an_unexpected_exception_is_a_json_500_without_a_stack_trace():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    async with served(lambda: app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await eventually(lambda: _get_or_none(http, "/boom"))
        assert_error(response, 500, "internal")
        assert "secret" not in response.text and "Traceback" not in response.text


@asynccontextmanager
async def served(make_app: Callable[[], Any]) -> AsyncIterator[str]:
    """An app served in this process on a free loopback port: its base URL, until the block ends."""
    stop = asyncio.Event()
    sock = listen("127.0.0.1", 0)
    serving = asyncio.create_task(serve(make_app(), sock, stop, access_log=False))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        await serving


async def _get_or_none(http: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await http.get(path)
    except httpx.TransportError:
        return None


# --- batch ------------------------------------------------------------------------------------


async def test_a_batch_answers_each_event_as_alone_and_keeps_one_customers_order(http: httpx.AsyncClient):
    customer = customer_id("batch")
    events = [
        placed(customer, key="b-start"),
        event(customer, "ticket.opened", "b-t1", ticket_id="T-1"),   # needs the lifecycle started first
        event(customer, "ticket.opened", "b-t1", ticket_id="T-1"),   # duplicate
        event(customer, "ticket.opened", "b-t1", ticket_id="T-9"),   # same key, other body
        event(customer, "referral.made", referred_name="Bo"),        # wrong stage
        event(customer, "order.delivered", delivered_at="soon"),     # bad payload
        event(customer_id("nobody"), "ticket.opened", ticket_id="T"),  # no lifecycle
        {"customer_id": "bad id", "event": "ticket.opened"},          # bad envelope
        "not an object",
    ]
    response = await http.post("/v1/events:batch", json={"events": events})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 200, 409, 409, 422, 404, 422, 422]
    assert results[2]["body"]["status"] == "duplicate"
    assert [r["body"]["error"]["code"] for r in results[3:]] == [
        "idempotency_key_reused", "stage_cannot_take_event", "invalid_payload", "customer_not_found",
        "invalid_request", "invalid_request"]
    assert results[5]["body"]["error"]["field"] == "delivered_at"
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1


async def test_a_batch_takes_at_most_500_events(http: httpx.AsyncClient):
    too_many = [event("c-1", "ticket.opened", ticket_id=f"T-{n}") for n in range(501)]
    assert_error(await http.post("/v1/events:batch", json={"events": too_many}), 422, "invalid_request", "events")
    assert_error(await http.post("/v1/events:batch", json=too_many), 422, "invalid_request", "events")
    empty = await http.post("/v1/events:batch", json={"events": []})
    assert (empty.status_code, empty.json()) == (200, {"results": []})


# --- reading ----------------------------------------------------------------------------------


async def test_customers_are_listed_page_by_page_and_by_stage(http: httpx.AsyncClient):
    mine = {await started(http, "page") for _ in range(5)}

    async def every_page() -> set[str]:
        seen: list[str] = []
        token = None
        while True:
            params = {"stage": "set_expectations", "page_size": 2, **({"page_token": token} if token else {})}
            page = (await http.get("/v1/customers", params=params)).json()
            assert len(page["customers"]) <= 2
            assert all(item["stage"] == "set_expectations" for item in page["customers"])
            seen += [item["customer_id"] for item in page["customers"]]
            token = page["next_page_token"]
            if not token:
                break
        assert len(seen) == len(set(seen))  # no customer on two pages
        return mine <= set(seen)

    await eventually(every_page)
    elsewhere = (await http.get("/v1/customers", params={"stage": "referral_request"})).json()["customers"]
    assert (await http.get("/v1/customers", params={"stage": "", "playbook": ""})).status_code == 200
    assert not mine & {item["customer_id"] for item in elsewhere}
    assert_error(await http.get("/v1/customers", params={"page_token": "bm90IGEgdG9rZW4"}),
                 422, "invalid_request", "page_token")


async def test_playbooks_describe_stages_events_schemas_and_versions(http: httpx.AsyncClient):
    contract = (await http.get("/v1/playbooks")).json()
    assert contract["lifecycle"] == "fast" and contract["initial_stage"] == "set_expectations"
    stages = {stage["name"]: stage for stage in contract["stages"]}
    assert stages["closed"]["terminal"] and stages["set_expectations"]["version"]
    events = {item["name"]: item for item in contract["events"]}
    assert events["order.placed"]["starts_lifecycle"]
    assert events["order.placed"]["schema"]["required"] == ["order_id", "promised_delivery", "price"]
    assert events["order.delivered"]["schema"]["properties"]["delivered_at"] == {"type": "string", "format": "date"}
    assert events["task.completed"]["builtin"] and events["ticket.closed"]["updates"] == ["open_tickets"]
    assert events["consent.changed"]["builtin"] and events["customer.unsubscribed"]["builtin"]
    assert not events["order.placed"]["builtin"]
    assert contract["transitions"][0] == {"from": ["set_expectations"], "on": "order.delivered",
                                          "to": "delivery_check_in", "when": None}


async def test_openapi_has_one_request_variant_per_event_discriminated_by_name(http: httpx.AsyncClient):
    document = (await http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    union = schemas["EventRequest"]
    assert union["discriminator"]["propertyName"] == "event"
    assert set(union["discriminator"]["mapping"]) == {
        "order.placed", "order.delivered", "survey.answered", "ticket.opened", "ticket.closed",
        "referral.made", "task.completed", "consent.changed", "customer.unsubscribed"}
    survey = schemas["Event-survey.answered"]
    assert survey["properties"]["data"]["properties"]["score"]["type"] == "integer"
    assert survey["required"] == ["customer_id", "event", "data"]
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EventRequest"}
    responses = document["paths"]["/v1/events"]["post"]["responses"]
    assert {"200", "202", "401", "404", "409", "410", "413", "422"} <= set(responses)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# --- the other roads share validation and idempotency ------------------------------------------


async def test_the_cli_and_the_api_share_idempotency_keys(http: httpx.AsyncClient, harness: Harness,
                                                         temporal_env: WorkflowEnvironment):
    customer = await started(http)
    assert (await http.post("/v1/events", json=event(customer, "ticket.opened", "shared-1", ticket_id="T-1"))
            ).status_code == 202
    cli = await asyncio.create_subprocess_exec(
        str(BIN / "lifecycle"), "event", customer, "ticket.opened", "--key", "shared-1",
        "--data", '{"ticket_id": "T-1"}', "--playbooks", str(harness.folder), "--task-queue", harness.task_queue,
        env=temporal_environ(temporal_env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    assert out.decode().startswith("duplicate")
    assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1


async def test_plain_temporal_clients_send_events_with_the_temporal_cli(http: httpx.AsyncClient,
                                                                       temporal_env: WorkflowEnvironment):
    """The road in docs/events.md: `temporal workflow update execute` and `signal`."""
    customer = await started(http)
    address = temporal_env.client.service_client.config.target_host
    update = {"customer_id": customer, "name": "ticket.opened", "data": {"ticket_id": "T-7"},
              "idempotency_key": "plain-1"}
    run = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "update", "execute", "--address", address,
        "--workflow-id", f"lifecycle/{customer}", "--name", "event", "--input", json.dumps(update),
        "--output", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await run.communicate()
    assert run.returncode == 0, err.decode()
    assert json.loads(out)["result"]["status"] == "accepted"
    signal_ = {**update, "idempotency_key": "plain-2", "data": {"ticket_id": "T-8"}}
    run = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "signal", "--address", address,
        "--workflow-id", f"lifecycle/{customer}", "--name", "event_signal", "--input", json.dumps(signal_),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert (await run.wait()) == 0, (await run.stderr.read()).decode()

    async def both_counted() -> bool:
        return (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 2

    await eventually(both_counted)
    run = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "query", "--address", address, "--workflow-id", f"lifecycle/{customer}",
        "--name", "status", "--output", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await run.communicate()
    assert run.returncode == 0, err.decode()
    assert json.loads(out)["queryResult"][0]["facts"]["open_tickets"] == 2
    # The same key through HTTP is then a duplicate: one contract, three roads.
    again = await http.post("/v1/events", json=event(customer, "ticket.opened", "plain-1", ticket_id="T-7"))
    assert again.json()["status"] == "duplicate"


async def test_the_helpdesk_webhook_example_forwards_tickets(http: httpx.AsyncClient, api: ApiProcess):
    customer = await started(http)
    port = free_port()
    environ = {**os.environ, "LIFECYCLE_API_URL": api.url, "LIFECYCLE_API_TOKEN": TOKEN,
               "HELPDESK_SECRET": "s3cret", "PORT": str(port)}
    receiver = subprocess.Popen([sys.executable, str(EXAMPLES / "helpdesk_webhook.py")], env=environ,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as helpdesk:
            opened = {"type": "ticket.opened", "ticket": {"id": "HD-1", "subject": "Leaking tap",
                                                          "requester": {"external_id": customer}}}

            async def forwarded() -> httpx.Response | None:
                try:
                    return await helpdesk.post("/helpdesk", json=opened, headers={"X-Helpdesk-Secret": "s3cret"})
                except httpx.TransportError:
                    return None  # still starting

            first = await eventually(forwarded)
            assert first.status_code == 202, first.text
            assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 1
            closed = {"type": "ticket.closed", "ticket": {"id": "HD-1", "requester": {"external_id": customer}}}
            response = await helpdesk.post("/helpdesk", json=closed, headers={"X-Helpdesk-Secret": "s3cret"})
            assert response.status_code == 202, response.text
            assert (await http.get(f"/v1/customers/{customer}")).json()["facts"]["open_tickets"] == 0
            # The help desk retries deliveries: the ticket id makes the key, so a retry is a duplicate.
            retried = await helpdesk.post("/helpdesk", json=closed, headers={"X-Helpdesk-Secret": "s3cret"})
            assert retried.status_code == 200
            assert (await helpdesk.post("/helpdesk", json=closed)).status_code == 401
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


# --- concurrency --------------------------------------------------------------------------------


async def test_a_thousand_concurrent_events_with_duplicates_are_each_acted_on_once(
        api: ApiProcess, harness: Harness):
    run = uuid.uuid4().hex[:6]
    customers = [f"load-{run}-{n}" for n in range(100)]
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=120, limits=limits) as http:

        async def send_all(bodies: list[dict]) -> list[httpx.Response]:
            return await asyncio.gather(*(http.post("/v1/events", json=body) for body in bodies))

        # Every lifecycle starts once, though 20% of the start events come twice.
        starts = [placed(customer, key=f"start-{customer}") for customer in customers]
        starts += rng.sample(starts, 20)
        rng.shuffle(starts)
        answers = await send_all(starts)
        assert Counter(r.status_code for r in answers) == {202: 100, 200: 20}, [r.text for r in answers if r.status_code >= 300][:3]
        # 800 tickets, 8 per customer, and 200 of them sent twice: 1,000 events at once.
        tickets = [event(customer, "ticket.opened", f"{customer}-T{n}", ticket_id=f"T{n}")
                   for customer in customers for n in range(8)]
        bodies = tickets + rng.sample(tickets, 200)
        rng.shuffle(bodies)
        began = time.monotonic()
        answers = await send_all(bodies)
        elapsed = time.monotonic() - began
        by_key: dict[str, list[httpx.Response]] = defaultdict(list)
        for body, answer in zip(bodies, answers):
            by_key[body["idempotency_key"]].append(answer)
        for key, replies in by_key.items():
            codes = sorted(r.status_code for r in replies)
            assert codes in ([202], [200, 202]), (key, [r.text for r in replies])
            assert [r.json()["status"] for r in replies if r.status_code == 200] in ([], ["duplicate"])
        print(f"1,000 events in {elapsed:.1f}s ({1000 / elapsed:.0f}/s)")

        # Acted on once: each customer counts exactly its 8 tickets, and got one summary.
        for customer in customers:
            status = (await http.get(f"/v1/customers/{customer}")).json()
            assert (status["stage"], status["facts"]["open_tickets"]) == ("set_expectations", 8), status

        async def one_summary_each() -> bool:
            sent = Counter(entry["customer_id"] for entry in harness.outbox() if entry["step"] == "summary")
            return all(sent[customer] == 1 for customer in customers)

        await eventually(one_summary_each, timeout=60)
        assert Counter(entry["customer_id"] for entry in harness.outbox()
                       if entry["customer_id"] in set(customers)) == {customer: 1 for customer in customers}


async def test_tokens_never_reach_the_server_log(api: ApiProcess):
    output = api.output()
    assert "POST /v1/events" in output  # the access log is on
    assert TOKEN not in output and OTHER_TOKEN not in output


async def test_an_event_added_to_the_lifecycle_file_is_taken_without_a_restart(
        http: httpx.AsyncClient, harness: Harness):
    lifecycle = harness.folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text().replace("  referral.made:\n", (
        "  ticket.escalated:\n    payload:\n      ticket_id: string!\n"
        "    updates:\n      open_tickets: facts.open_tickets + 1\n  referral.made:\n")))

    async def published() -> bool:
        events = (await http.get("/v1/playbooks")).json()["events"]
        return "ticket.escalated" in {item["name"] for item in events}

    await eventually(published, timeout=15)
    document = (await http.get("/openapi.json")).json()
    assert "Event-ticket.escalated" in document["components"]["schemas"]
    customer = await started(http)  # a new lifecycle starts with the current file
    escalated = await http.post("/v1/events", json=event(customer, "ticket.escalated", ticket_id="T-1"))
    assert escalated.status_code == 202, escalated.text


async def test_a_held_customer_is_listed_and_released_over_http(api: ApiProcess, harness: Harness):
    template = harness.folder / "templates" / "summary.txt"
    good = template.read_text()
    customer = f"held-{uuid.uuid4().hex[:6]}"
    template.write_text("Subject: Hi\n\nYou have {{ 10 // facts.open_tickets }} credits.\n")
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=30) as http:
            assert (await http.post("/v1/events", json=placed(customer))).status_code == 202

            async def held() -> dict | None:
                body = (await http.get(f"/v1/customers/{customer}")).json()
                return body if body.get("incident") else None

            body = await eventually(held)
            assert (body["incident"]["kind"], body["incident"]["step"]) == ("template", "summary")

            async def listed() -> bool:
                page = (await http.get("/v1/customers", params={"held": "true"})).json()
                return any(c["customer_id"] == customer and c["incident"] == "template" for c in page["customers"])

            await eventually(listed)
            template.write_text(good)  # fixed on disk; an operator retries at once instead of waiting
            answer = await http.post(f"/v1/customers/{customer}/retry", json={"by": "ops@example.com"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["release"] == "retry" and answer.json()["released_by"] == "ops@example.com"
            again = await http.post(f"/v1/customers/{customer}/skip")
            assert (again.status_code, again.json()["error"]["code"]) == (409, "no_incident")
            missing = await http.post(f"/v1/customers/nobody-{customer}/retry")
            assert missing.status_code == 404

            async def sent() -> bool:
                return "summary" in harness.steps(customer)

            await eventually(sent)
    finally:
        template.write_text(good)


async def test_a_release_body_with_an_unknown_field_is_refused_naming_it(api: ApiProcess):
    # A misspelt `by` was ignored: the timeline then named the caller, not the operator.
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=30) as http:
        answer = await http.post("/v1/customers/anyone/retry", json={"bye": "ops@example.com"})
        listed = await http.post("/v1/customers/anyone/skip", json=[])
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == {"code": "invalid_request", "message": "bye: unknown field", "field": "bye"}
    assert (listed.status_code, listed.json()["error"]["code"]) == (422, "invalid_request")


def test_sigterm_stops_the_api_cleanly(api: ApiProcess):
    api.stop()
    assert api.process.returncode == 0, api.output()
    assert "Finished server process" in api.output()
