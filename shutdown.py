"""Run a long-lived service until it ends or is told to stop: shared by the worker and the HTTP API."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


async def until_stopped(running: Awaitable[None], shut_down: Callable[[], Awaitable[None]],
                        stop: asyncio.Event | None = None) -> None:
    """Await `running` until it ends or `stop` is set (SIGTERM/SIGINT when no `stop` is given);
    then `shut_down()` and let `running` finish."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    task = asyncio.ensure_future(running)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await shut_down()
        await task
    finally:
        stopping.cancel()
        for signum in handled:
            loop.remove_signal_handler(signum)
