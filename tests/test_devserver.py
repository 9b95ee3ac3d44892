"""The embedded dev server: starts, keeps its data in SQLite across restarts, stops cleanly,
and `lifecycle dev` never shares a state folder or a port with another process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from devserver import SEARCH_ATTRIBUTES, DevServer, DevServerError, PortTaken, free_port

REPO = Path(__file__).resolve().parent.parent
LIFECYCLE = Path(sys.executable).parent / "lifecycle"

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


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = DevServer(headless=True, port=port, startup_timeout=20)
        with pytest.raises(PortTaken) as caught:
            with server:
                pass
    assert str(caught.value) == f"127.0.0.1:{port} (Temporal gRPC) is not free: address already in use"
    assert server.process is None


def test_a_server_that_exits_at_start_says_why_with_its_log_tail(tmp_path: Path) -> None:
    (tmp_path / "temporal.db").mkdir()  # SQLite cannot open a folder
    server = DevServer(tmp_path / "temporal.db", headless=True, startup_timeout=20)
    with pytest.raises(DevServerError) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith("temporal dev server exited with code 1: ")
    assert "unable to open database file" in message and "\n" not in message
    assert server.process is None


def test_a_server_that_crashes_while_starting_is_started_again_on_other_ports(tmp_path: Path) -> None:
    # The real binary behind a wrapper that crashes its first start as a Go panic does
    # (exit code 2, the cause first, then a stack), like a port taken between choosing it
    # and binding it. CI once failed on exactly that, with only the stack in the message.
    from devserver import temporal_binary

    marker = tmp_path / "crashed-once"
    wrapper = tmp_path / "temporal"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e {marker} ]; then\n"
        f"  : > {marker}; echo 'panic: listen tcp 127.0.0.1:1: bind: address already in use'\n"
        "  echo 'goroutine 1 [running]:'; echo 'main.main()'; exit 2\n"
        "fi\n"
        f'exec {temporal_binary()} "$@"\n'
    )
    wrapper.chmod(0o755)
    with DevServer(headless=True, binary=str(wrapper)) as server:
        assert marker.exists() and server.process is not None and server.process.poll() is None


def test_a_crash_on_ports_the_caller_chose_is_reported_with_its_cause(tmp_path: Path) -> None:
    # Ports given by the caller are not ours to change: one attempt, and the message
    # leads with the panic's cause rather than the goroutine stack.
    wrapper = tmp_path / "temporal"
    wrapper.write_text(
        "#!/bin/sh\necho 'panic: listen tcp: address already in use'\n"
        "echo 'goroutine 1 [running]:'; echo 'main.main()'; exit 2\n"
    )
    wrapper.chmod(0o755)
    server = DevServer(headless=True, port=free_port(), binary=str(wrapper))
    with pytest.raises(DevServerError) as caught:
        server.start()
    assert str(caught.value) == (
        "temporal dev server exited with code 2: panic: listen tcp: address already in use"
        " | goroutine 1 [running]: | main.main()"
    )


def test_an_unknown_search_attribute_type_is_refused() -> None:
    with pytest.raises(DevServerError, match="unknown search attribute type 'Money'"):
        DevServer(search_attributes={"Revenue": "Money"})


# --- `lifecycle dev` as a user runs it: real processes ----------------------------------


def dev(state_dir: Path, port: int, ui_port: int, api_port: int = 0) -> subprocess.Popen:
    """Start `lifecycle dev` on these ports, as `make run` would."""
    return subprocess.Popen(
        [str(LIFECYCLE), "dev", "--state-dir", str(state_dir), "--playbooks", str(REPO / "playbooks"),
         "--port", str(port), "--ui-port", str(ui_port), "--api-port", str(api_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=state_dir.parent,
        env={key: value for key, value in os.environ.items() if not key.startswith("LIFECYCLE_")},
    )


def banner(process: subprocess.Popen, last: str = "Try        curl") -> list[str]:
    """The lines `lifecycle dev` prints until it is serving (the last banner line)."""
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(last):
            return lines
    raise AssertionError(f"lifecycle dev stopped before serving: {lines} {process.stderr.read()}")


def refusal(process: subprocess.Popen) -> str:
    """What a `lifecycle dev` that must refuse prints; it must exit 1 with one line, quickly."""
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.rstrip().endswith("stopped")


def test_a_second_lifecycle_dev_on_the_same_state_dir_refuses(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = dev(state, free_port(), free_port(), free_port())
    try:
        shown = banner(first)
        second = dev(state, free_port(), free_port())
        assert refusal(second) == (
            f"error: {state} is in use by another process (pid {first.pid}); "
            "stop it, or give this one another state folder"
        )
        assert first.poll() is None, "the refusal must not disturb the running instance"
    finally:
        stop(first)
    assert any(line.startswith("Web UI     http://127.0.0.1:") for line in shown)
    # Stopped, the folder is free again: the lock is the process's, not a file left behind.
    again = dev(state, free_port(), free_port())
    try:
        banner(again, last="Try        ")
    finally:
        stop(again)


async def test_lifecycle_dev_refuses_a_temporal_port_another_server_holds(tmp_path: Path) -> None:
    async with DevServer(headless=True) as other:
        process = await asyncio.to_thread(dev, tmp_path / "state", other.port, free_port())
        line = await asyncio.to_thread(refusal, process)
        assert line == (f"error: 127.0.0.1:{other.port} (Temporal gRPC) is not free: address already in use"
                        " (--port, --ui-port and --api-port choose others)")
        client = await other.connect()
        assert [execution.id async for execution in client.list_workflows()] == []


def test_lifecycle_dev_refuses_a_web_ui_or_api_port_someone_listens_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"127.0.0.1:{port} (Temporal web UI) is not free" in refusal(
            dev(tmp_path / "a", free_port(), port))
        assert refusal(dev(tmp_path / "b", free_port(), free_port(), api_port=port)) == (
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_lifecycle_dev_that_cannot_start_its_server_says_why_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "state" / "temporal.db").mkdir(parents=True)
    line = refusal(dev(tmp_path / "state", free_port(), free_port()))
    assert line.startswith("error: temporal dev server exited with code 1: ")
    assert "unable to open database file" in line


def test_the_banner_hint_works_when_pasted(tmp_path: Path) -> None:
    port = free_port()
    process = dev(tmp_path / "state", port, free_port())
    try:
        hint = next(line for line in banner(process, last="Try        ")
                    if line.startswith("Try        "))[len("Try        "):]
        # Pasted into another terminal, in the same folder, with a clean environment.
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("LIFECYCLE_", "TEMPORAL_"))}
        env["PATH"] = "/usr/bin:/bin"  # the venv is not on PATH: the hint must name it
        sent = subprocess.run(["sh", "-c", hint], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    finally:
        stop(process)
    assert hint.startswith(f"TEMPORAL_ADDRESS=127.0.0.1:{port} ")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("accepted")


def test_a_state_dir_lock_dies_with_its_holder_even_by_kill_9(tmp_path: Path) -> None:
    from devserver import StateDirLock, StateDirLocked

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from devserver import StateDirLock; "
         f"StateDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirLocked, match=f"pid {holder.pid}"):
            StateDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with StateDirLock(tmp_path):  # no stale lock left behind
        assert (tmp_path / "lock").read_text() == f"{os.getpid()}\n"
    StateDirLock(tmp_path).acquire().release()  # and released on leaving the block


def test_the_banner_hint_sends_the_lifecycles_own_start_event_with_data_it_accepts() -> None:
    # It named the bundled `order.placed` whatever lifecycle `--playbooks` ran: pasted, a
    # dental clinic's lifecycle answered "unknown event 'order.placed'".
    from cli.dev import start_example, try_command
    from engine.events import check_event
    from engine.model import Lifecycle

    lifecycle = Lifecycle.model_validate({
        "lifecycle": "dental", "channels": {"sms": {"contact": "phone"}}, "roles": {"front_desk": "Books."},
        "events": {
            "visit.completed": {"payload": {"finished_at": "timestamp!"}},
            "appointment.booked": {"starts_lifecycle": True, "payload": {
                "appointment_id": "string!", "starts_at": "timestamp!", "day": "date!", "length": "duration!",
                "treatment": {"type": "string", "required": True, "enum": ["checkup", "filling"]},
                "chair": {"type": "int", "required": True, "min": 3, "max": 9},
                "price": {"type": "number", "required": True, "max": 50}, "note": "string"}},
        },
        "initial_stage": "booked", "stages": {"booked": {}},
    })
    event, data = start_example(lifecycle)
    assert event == "appointment.booked"
    assert set(data) == {"appointment_id", "starts_at", "day", "length", "treatment", "chair", "price"}
    assert (data["treatment"], data["chair"], data["price"]) == ("checkup", 3, 50)
    check_event(lifecycle, event, data)  # raises PayloadError on a value the lifecycle would refuse
    hint = try_command("127.0.0.1:7234", 7234, Path("dental/lifecycle.yaml"), (event, data))
    assert " event cust-1 appointment.booked --data '{\"appointment_id\": \"A-1\", " in hint
    assert hint.endswith(" --playbooks dental/lifecycle.yaml")
