"""The embedded dev server: starts, keeps its data in SQLite across restarts, stops cleanly."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from devserver import SEARCH_ATTRIBUTES, DevServer, DevServerError

STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")


async def custom_attributes(client: Client) -> set[str]:
    """Names of the namespace's custom search attributes."""
    listing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return set(listing.custom_attributes)


async def listed(client: Client, query: str, deadline: float = 10.0) -> list[str]:
    """Workflow ids matching a visibility query, polled until non-empty (visibility lags)."""
    end = time.monotonic() + deadline
    while True:
        ids = [execution.id async for execution in client.list_workflows(query)]
        if ids or time.monotonic() > end:
            return ids
        await asyncio.sleep(0.1)


async def test_a_lifecycle_survives_a_restart_on_the_same_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "state" / "temporal.db"
    async with DevServer(db, headless=True) as server:
        client = await server.connect()
        # No worker polls this queue: the execution simply stays open, as a customer would.
        await client.start_workflow(
            "Parked", id="lifecycle-cust-1", task_queue="nobody",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(STAGE, "sale"), SearchAttributePair(CUSTOMER, "cust-1")]
            ),
        )
    assert server.process is None and db.exists()

    async with DevServer(db, headless=True) as server:
        client = await server.connect()
        description = await client.get_workflow_handle("lifecycle-cust-1").describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert description.typed_search_attributes.get(STAGE) == "sale"
        assert await listed(client, "LifecycleStage = 'sale'") == ["lifecycle-cust-1"]


async def test_search_attributes_added_later_are_registered_on_restart(tmp_path: Path) -> None:
    db = tmp_path / "temporal.db"
    async with DevServer(db, headless=True, search_attributes={"LifecycleStage": "Keyword"}) as server:
        assert "CustomerId" not in await custom_attributes(await server.connect())
    # The dev server ignores --search-attribute for an existing database; DevServer adds them.
    async with DevServer(db, headless=True) as server:
        assert set(SEARCH_ATTRIBUTES) <= await custom_attributes(await server.connect())


async def test_stop_ends_the_server_process(tmp_path: Path) -> None:
    server = await DevServer(headless=True).start_async()
    process = server.process
    assert process is not None and process.poll() is None
    await server.stop_async()
    assert process.poll() is not None
    with pytest.raises(RuntimeError):
        await Client.connect(server.address)


async def test_the_web_ui_answers_unless_headless(tmp_path: Path) -> None:
    async with DevServer(tmp_path / "temporal.db") as server:
        assert server.ui_url is not None
        async with httpx.AsyncClient() as http:
            end = time.monotonic() + 15
            while True:  # the UI server comes up a moment after the frontend
                try:
                    response = await http.get(server.ui_url)
                    break
                except httpx.TransportError:
                    if time.monotonic() > end:
                        raise
                    await asyncio.sleep(0.1)
        assert response.status_code == 200
    assert (tmp_path / "temporal.log").exists()


def test_a_server_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = DevServer(headless=True, port=taken.getsockname()[1], startup_timeout=20)
        with pytest.raises(DevServerError) as caught:
            with server:
                pass
    message = str(caught.value)
    assert "exited with code 1" in message and "address already in use" in message
    assert "\n" not in message
    assert server.process is None


def test_an_unknown_search_attribute_type_is_refused() -> None:
    with pytest.raises(DevServerError, match="unknown search attribute type 'Money'"):
        DevServer(search_attributes={"Revenue": "Money"})
