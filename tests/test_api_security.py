"""The API against abusive or careless callers, on a real `lifecycle api` process: per-caller
rate limits, a body that never finishes arriving, two callers sharing a token, query strings
kept out of the access log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from test_api import AUTH, OTHER_TOKEN, TOKEN, ApiProcess, harness, start_api, temporal_environ  # noqa: F401
from harness import Harness

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def strict_api(harness: Harness, temporal_env: WorkflowEnvironment,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """An API allowing 5 requests a second per caller and 1 second to send a body."""
    process = start_api(temporal_env, harness.folder, harness.task_queue,
                        tmp_path_factory.mktemp("strict-api") / "api.log",
                        LIFECYCLE_API_RATE="5/s", LIFECYCLE_API_BODY_TIMEOUT="1")
    yield process
    process.stop()


async def test_a_caller_over_its_rate_gets_429_with_retry_after_and_others_do_not(strict_api: ApiProcess):
    async with httpx.AsyncClient(base_url=strict_api.url, headers=AUTH, timeout=30) as crm:
        await asyncio.sleep(1.1)  # a fresh window
        answers = [await crm.get("/v1/playbooks") for _ in range(8)]
        codes = [answer.status_code for answer in answers]
        assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["limit"] == 5
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 2
        # Another caller has its own budget.
        other = await crm.get("/v1/playbooks", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert other.status_code == 200
        # The health check is not a caller's request.
        assert (await crm.get("/healthz")).status_code == 200
        await asyncio.sleep(wait + 0.1)
        assert (await crm.get("/v1/playbooks")).status_code == 200


async def test_a_body_dribbled_slower_than_the_timeout_is_cut_with_408(strict_api: ApiProcess):
    host, port = strict_api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"customer_id\"").encode())
    await writer.drain()
    began = time.monotonic()

    async def dribble() -> None:
        try:
            for _ in range(30):
                await asyncio.sleep(0.3)
                writer.write(b" ")
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server closed the connection: what we want

    dribbling = asyncio.create_task(dribble())
    async def until_closed() -> bytes:
        # The head and the body may come in two reads; the server closes after them.
        received = b""
        while chunk := await reader.read(65536):
            received += chunk
        return received

    answer = await asyncio.wait_for(until_closed(), timeout=10)
    elapsed = time.monotonic() - began
    dribbling.cancel()
    writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408"), answer
    assert '"code":"body_timeout"' in body.replace(" ", "")
    assert elapsed < 5, elapsed
    assert "connection: close" in head.lower()


async def test_query_strings_stay_out_of_the_access_log(strict_api: ApiProcess):
    secret = f"s3cret-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=strict_api.url, headers=AUTH, timeout=30) as crm:
        await asyncio.sleep(1.1)  # a fresh rate window
        await crm.get("/v1/customers", params={"stage": "set_expectations", "page_token": secret})

    def logged() -> bool:
        return "GET /v1/customers HTTP/1.1" in strict_api.output()

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert logged(), strict_api.output()[-2000:]
    assert secret not in strict_api.output() and "page_token" not in strict_api.output()


@pytest.mark.parametrize("variable, value, expected", [
    ("LIFECYCLE_API_TOKENS", "crm:{t},helpdesk:{t}",
     "error: LIFECYCLE_API_TOKENS: callers 'crm' and 'helpdesk' share one token; give each caller its own"),
    ("LIFECYCLE_API_RATE", "lots", "error: LIFECYCLE_API_RATE: 'lots' is not a rate like 100/s, 6000/minute or off"),
])
def test_a_bad_configuration_fails_at_start_in_one_line(harness: Harness, temporal_env: WorkflowEnvironment,
                                                        variable: str, value: str, expected: str):
    shared = f"tok-{uuid.uuid4().hex}"
    environ = temporal_environ(temporal_env, LIFECYCLE_API_TOKENS=f"tests:{TOKEN}")
    environ[variable] = value.format(t=shared)
    result = subprocess.run([str(BIN / "lifecycle"), "api", "--port", "0", "--playbooks", str(harness.folder)],
                            env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == expected
    assert shared not in result.stdout + result.stderr
