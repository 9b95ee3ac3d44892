"""Shared fixtures: one real Temporal dev server per session, a real SMTP server, a real HTTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devserver import SEARCH_ATTRIBUTES, free_port, temporal_binary

# --- Temporal -------------------------------------------------------------------------

_KEYS = {
    "Keyword": SearchAttributeKey.for_keyword,
    "Text": SearchAttributeKey.for_text,
    "Int": SearchAttributeKey.for_int,
    "Double": SearchAttributeKey.for_float,
    "Bool": SearchAttributeKey.for_bool,
    "Datetime": SearchAttributeKey.for_datetime,
    "KeywordList": SearchAttributeKey.for_keyword_list,
}


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One in-memory dev server (the venv's `temporal` binary) for the whole session.

    Started again (up to 3 times) when it fails to start: the SDK picks its ports by binding
    port 0 and closing it, and on a busy machine (other servers starting and stopping) another
    process can take one before the server binds it; devserver.DevServer does the same."""
    for attempt in range(1, 4):
        try:
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=temporal_binary(),
                data_converter=pydantic_data_converter,
                search_attributes=[_KEYS[kind](name) for name, kind in SEARCH_ATTRIBUTES.items()],
            )
            break
        except Exception as error:  # noqa: BLE001 - reported, then tried again on other ports
            print(f"the session's dev server did not start (attempt {attempt} of 3): {error!r}", file=sys.stderr)
            if attempt == 3:
                raise
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's dev server, using the pydantic data converter."""
    return temporal_env.client


@pytest.fixture
async def harness(client: Client, tmp_path) -> AsyncIterator:
    """A worker on its own task queue over a fresh copy of the fast fixture lifecycle."""
    from harness import FIXTURE, Harness

    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")
    async with harness.worker:
        yield harness


@pytest.fixture
def desk() -> Iterator:
    """A help desk on loopback that takes task webhooks and can hold them (harness.HelpDesk)."""
    from harness import HelpDesk

    desk = HelpDesk()
    try:
        yield desk
    finally:
        desk.close()


# --- playbook files ------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the valid fixture lifecycle; error paths come out relative: p/sale.yaml:3:5."""
    from workspace import Workspace

    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path)


# --- SMTP -----------------------------------------------------------------------------


@dataclass
class SmtpServer:
    """A real SMTP server on loopback that keeps what it receives."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    data_delay: float = 0.0
    """Seconds between taking a message and answering the final "." (a slow relay)."""

    def refuse(self, address: str, reply: str = "550 5.1.1 mailbox unavailable") -> None:
        """Answer RCPT TO for `address` with `reply` (a 5xx or 4xx SMTP line)."""
        self.refusals[address.lower()] = reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """aiosmtpd hook: accept the recipient unless a refusal was set for it."""
        reply = self.refusals.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd hook: parse and keep the message."""
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        # Line ends as a mail store keeps them, so bodies compare with Python strings.
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        self.envelopes.append(envelope)
        # Like a relay delivering before it answers: the message is taken even if the
        # client stops waiting.
        await asyncio.sleep(self.data_delay)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1 and a free port, fresh for each test."""
    server = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- HTTP -----------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A real HTTP server on loopback that records requests and answers scripted statuses."""

    url: str = ""
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    holds: list[float] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def hold(self, *seconds: float) -> None:
        """Keep the next requests waiting this long before answering (a slow receiver)."""
        with self.lock:
            self.holds.extend(seconds)

    def respond(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next requests with these statuses, in order, then `default_status`."""
        with self.lock:
            self.statuses.extend(statuses)
            self.headers.update(headers or {})

    def _next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.default_status


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            receiver.requests.append(
                ReceivedRequest(self.command, self.path, dict(self.headers.items()), body)
            )
            receiver.arrived.set()
            with receiver.lock:
                hold = receiver.holds.pop(0) if receiver.holds else 0.0
            time.sleep(hold)
            status = receiver._next_status()
            payload = json.dumps({"status": status}).encode()
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _record

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 in a background thread, fresh for each test."""
    receiver = HttpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
