"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis 4).

For every operation, valid requests (positive) and requests that break the schema
(negative) drawn from /openapi.json are sent to a real `lifecycle api` process backed by
the dev server and a worker. The property: never a 5xx, and every error is the JSON error
shape. Examples are bounded and derandomized so the suite stays fast and repeatable; set
API_FUZZ_EXAMPLES=200 (and API_FUZZ_RANDOM=1 for fresh examples each run) for a longer hunt.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from harness import Harness, eventually, pending_step
# The same module-scoped fixtures as the API tests: a worker, and the API as a real process.
from test_api import AUTH, ApiProcess, api, harness  # noqa: F401

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "20"))

OPERATIONS = [
    "POST /v1/events", "POST /v1/events:batch", "GET /v1/customers/{customer_id}", "GET /v1/customers",
    "GET /v1/playbooks", "GET /readyz", "GET /healthz", "HEAD /readyz", "HEAD /healthz",
    "POST /v1/customers/{customer_id}/retry", "POST /v1/customers/{customer_id}/skip",
    "GET /v1/tasks", "GET /v1/tasks/{task_id}", "POST /v1/tasks/{task_command}",
    *(f"GET /v1/analytics/{name}" for name in (
        "report", "funnel", "time-in-stage", "promises", "recovery", "nps", "referrals", "tasks", "messages",
        "consent", "channels", "revenue", "rank")),
]


@pytest.fixture(scope="module")
def schema(api: ApiProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", headers=AUTH)


@pytest.fixture(scope="module")
async def customers(harness: Harness) -> list[str]:
    """Lifecycles for generated events to land on: new, waiting for a survey, ended."""
    run = uuid.uuid4().hex[:6]
    new, waiting, ended = (f"fuzz-{run}-{name}" for name in ("new", "waiting", "ended"))
    for customer in (new, waiting, ended):
        await harness.start(customer)
    for customer in (waiting, ended):
        await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    for customer in (waiting, ended):
        await eventually(lambda c=customer: pending_step(harness, c, "await_survey"))
    await harness.event(ended, "survey.answered", score=2)
    return [new, waiting, ended]


def aim(body: Any, customers: list[str]) -> None:
    """Point most generated events at real lifecycles, so more than 404s come back."""
    events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict) and isinstance(event.get("customer_id"), str):
            pick = zlib.crc32(event["customer_id"].encode()) % (len(customers) + 1)
            if pick < len(customers):  # the rest keep their generated id
                event["customer_id"] = customers[pick]


def test_every_operation_of_the_api_is_fuzzed(schema: schemathesis.BaseSchema):
    documented = {f"{operation.ok().method.upper()} {operation.ok().path}" for operation in schema.get_all_operations()}
    assert documented == set(OPERATIONS)


def fuzz(schema: schemathesis.BaseSchema, base_url: str, label: str, mode: GenerationMode,
         customers: list[str]) -> int:
    """Run the property on one operation; returns how many requests were sent."""
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    session = requests.Session()
    sent = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=os.environ.get("API_FUZZ_RANDOM") is None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode))
    def no_server_error(case: schemathesis.Case) -> None:
        nonlocal sent
        if mode == GenerationMode.POSITIVE:
            aim(case.body, customers)
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=60)
        sent += 1
        described = f"{case.method} {case.formatted_path} body={case.body!r} -> {response.status_code} {response.text}"
        assert response.status_code < 500, described
        content_type = response.headers.get("content-type", [""])  # schemathesis: name → values
        assert content_type[0].startswith("application/json"), described
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str), described

    no_server_error()
    return sent


CASES = [pytest.param(label, mode, id=f"{label}-{mode.value}")
         for label in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if not (label == "GET /healthz" and mode == GenerationMode.NEGATIVE)  # nothing there to break
         and not label.startswith("HEAD ")]  # a GET without its body: the GET is fuzzed


@pytest.mark.parametrize("label, mode", CASES)
async def test_no_request_drawn_from_the_openapi_document_gets_a_server_error(
        schema: schemathesis.BaseSchema, api: ApiProcess, customers: list[str], label: str,
        mode: GenerationMode):
    # A thread, so the worker on this event loop keeps taking the events the fuzzer sends.
    sent = await asyncio.to_thread(fuzz, schema, api.url, label, mode, customers)
    assert sent > 0
