"""Serve the API with uvicorn: on its own (`lifecycle api`) or beside a worker (`lifecycle dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from shutdown import until_stopped


class ApiServerError(RuntimeError):
    """The API cannot listen; the message is one line."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a taken port is one readable error, not uvicorn's exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ApiServerError(f"cannot resolve {host}: {error}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ApiServerError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class NoQueryStrings(logging.Filter):
    """Drop query strings from uvicorn's access log: page tokens and filters stay out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def _drop_query_strings() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(known, NoQueryStrings) for known in access.filters):
        access.addFilter(NoQueryStrings())


KEEP_ALIVE_SECONDS = 90


class _QuietSignals(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve` (or to `lifecycle dev`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: FastAPI, sock: socket.socket, stop: asyncio.Event | None = None,
                access_log: bool = True) -> None:
    """Serve `app` on `sock` until `stop` is set, or until SIGINT/SIGTERM when no `stop` is given.

    Either way uvicorn stops gracefully (in-flight requests finish) and this returns normally,
    so a requested stop is a clean exit rather than uvicorn's re-raised signal.
    """
    # An idle connection is kept longer than load balancers and pooled clients keep theirs
    # (AWS ALB 60 s, nginx 75 s): with uvicorn's 5 s, a sender reusing a connection just as the
    # server closes it gets a reset instead of an answer.
    config = uvicorn.Config(app, log_level="info", access_log=access_log, lifespan="off",
                            timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    _drop_query_strings()  # after Config, which sets up uvicorn's loggers
    server = _QuietSignals(config)

    async def shut_down() -> None:
        server.should_exit = True

    await until_stopped(server.serve(sockets=[sock]), shut_down, stop)
