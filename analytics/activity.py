"""The worker's side of the record stream: the `store_records` activity.

The workflow sends each new run of timeline records once it has them; a retry (a worker
killed mid-write, a busy file) sends the very same batch, and the store keeps each record id
once, so nothing is counted twice and nothing is lost while retries last.

Writes are grouped: one DuckDB file takes one writer at a time, and opening, inserting and
closing it costs tens of milliseconds whatever the size of the insert. So the batches of all
lifecycles that arrive while a write is under way go together in the next one (group commit),
on one thread of its own: a thousand lifecycles busy at once cost a few writes a second, and
never take the threads other activities (the outbox) need.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from analytics.store import STORE_FILE, StoreBusy, StoreError, open_store
from analytics.stream import STORE_RECORDS, RecordBatch


class RecordSink:
    """Writes record batches into the DuckDB store of a state directory."""

    def __init__(self, state_dir: Path) -> None:
        """Keep the store at `state_dir`/analytics.duckdb."""
        self.path = Path(state_dir) / STORE_FILE
        self._waiting: list[tuple[RecordBatch, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-store")

    def write(self, batches: list[RecordBatch]) -> int:
        """Insert the batches in one write; return how many of their records were new."""
        with open_store(self.path) as store:
            return store.insert(batches)

    @activity.defn(name=STORE_RECORDS)
    async def store_records(self, batch: RecordBatch) -> int:
        """Insert the batch (idempotent by record id) with whatever else is waiting; return the
        number of records that write added. A busy or failing store fails the attempt (retried)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        return await future

    async def _write_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                added = await loop.run_in_executor(self._thread, self.write, [batch for batch, _ in group])
            except (StoreBusy, StoreError) as error:
                failure: BaseException = ApplicationError(str(error), type=type(error).__name__)
                for _, future in group:
                    if not future.done():
                        future.set_exception(failure)
                continue
            except Exception as error:  # never leave an attempt waiting for ever
                for _, future in group:
                    if not future.done():
                        future.set_exception(ApplicationError(f"{type(error).__name__}: {error}"))
                continue
            for _, future in group:
                if not future.done():
                    future.set_result(added)
