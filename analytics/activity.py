"""The worker's side of the record stream: the `store_records` activity and the importer.

The workflow sends each new run of timeline records once it has them: with the delivery that
workflow task sends anyway (`Delivery.deliver_with_records` calls `keep`), or else as a local
activity, which runs inside the workflow task that made them (and that task, with the event's
update in it, waits for it). The activity therefore only journals the batch (analytics.journal:
durable, a millisecond) and returns. The importer moves the journal into the DuckDB store at
most once every `IMPORT_EVERY` seconds, so a burst of a thousand events costs a few writes
(a write costs ~60 ms of CPU whatever its size) and never the latency of an event.

A retry (a worker killed mid-append, a busy disk) journals the very same batch again, and the
store keeps each record id once, so nothing is counted twice and nothing is lost. Records of
a worker that died before importing them are imported by the next importer that runs on the
same state directory.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from analytics.journal import JOURNAL_FILE, RecordJournal
from analytics.store import STORE_FILE, StoreBusy, StoreError, open_store
from analytics.stream import STORE_RECORDS, RecordBatch

IMPORT_EVERY = 1.0  # seconds between two imports into DuckDB while records keep coming
RETRY_AT_MOST = 60.0  # seconds between tries while the store is busy or failing

log = logging.getLogger(__name__)


class RecordSink:
    """Journals record batches and imports them into the DuckDB store of a state directory."""

    def __init__(self, state_dir: Path) -> None:
        """Keep the journal and the store at `state_dir` (analytics-journal.sqlite, analytics.duckdb)."""
        self.path = Path(state_dir) / STORE_FILE
        self.journal = RecordJournal(Path(state_dir) / JOURNAL_FILE)
        self._waiting: list[tuple[RecordBatch, asyncio.Future[int]]] = []
        self._appender: asyncio.Task[None] | None = None
        self._importer: asyncio.Task[None] | None = None
        self._appends = 0  # journal transactions so far: an importer finishing checks none came meanwhile
        self._last_import = -IMPORT_EVERY  # monotonic time of the last import: at most one a second
        # One thread appends, another writes DuckDB: an import never delays an append.
        self._append_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-journal")
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics-store")

    @activity.defn(name=STORE_RECORDS)
    async def store_records(self, batch: RecordBatch) -> int:
        """Journal the batch (`keep`) and return its number of records. A journal that cannot
        be written fails the attempt (retried)."""
        return await self.keep(batch)

    async def keep(self, batch: RecordBatch) -> int:
        """Journal the batch (with whatever other batches are waiting, in one transaction) and
        return its number of records; the store has them within about `IMPORT_EVERY` seconds.
        Raises ApplicationError when the journal cannot be written."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._appender is None or self._appender.done():
            self._appender = asyncio.create_task(self._append_waiting())
        await future
        self.start()
        return len(batch.records)

    def start(self) -> None:
        """Import what the journal holds (also what a dead worker left), now and as it grows."""
        if self._importer is None or self._importer.done():
            self._importer = asyncio.create_task(self._import_until_empty())

    async def flush(self) -> None:
        """Import everything journaled so far, now (tests, shutdown): a store held by another
        process is waited for; one that fails raises StoreError."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not await loop.run_in_executor(self._store_thread, self.import_journal):
                    return
            except StoreBusy:
                await asyncio.sleep(0.2)

    def import_journal(self) -> bool:
        """Move the oldest journal entries into the store, in one write; True if more are left."""
        taken = self.journal.take()
        if taken is None:
            return False
        with tempfile.TemporaryDirectory(prefix="lifecycle-import-") as folder:
            records, customers = Path(folder) / "records.jsonl", Path(folder) / "customers.jsonl"
            records.write_text(taken.records, encoding="utf-8")
            customers.write_text(taken.customers, encoding="utf-8")
            with open_store(self.path) as store:
                store.insert_staged(records, customers)
        self.journal.drop(taken.last_id)
        return taken.more  # what was appended meanwhile is seen by the caller (`_appends`)

    async def _append_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await loop.run_in_executor(self._append_thread, self.journal.append, [batch for batch, _ in group])
            except Exception as error:  # never leave an attempt waiting for ever
                failure = ApplicationError(f"analytics journal: {type(error).__name__}: {error}")
                for _, future in group:
                    if not future.done():
                        future.set_exception(failure)
                continue
            self._appends += 1
            for batch, future in group:
                if not future.done():
                    future.set_result(len(batch.records))

    async def _import_until_empty(self) -> None:
        loop = asyncio.get_running_loop()
        # A lone event after a quiet second is in the store in milliseconds; a steady stream
        # of them waits its turn, one import a second.
        pause = max(0.0, self._last_import + IMPORT_EVERY - time.monotonic())
        while True:
            await asyncio.sleep(pause)
            appends = self._appends
            self._last_import = time.monotonic()
            try:
                more = await loop.run_in_executor(self._store_thread, self.import_journal)
            except StoreBusy:  # a report reading it, say: its turn is short
                pause = IMPORT_EVERY
                continue
            except (StoreError, sqlite3.Error, OSError) as error:
                # Kept in the journal: tried again, less often while the store keeps failing.
                pause = min(max(pause * 2, IMPORT_EVERY), RETRY_AT_MOST)
                log.warning("analytics store not written (%s); the journal keeps the records, next try in %.0f s",
                            error, pause)
                continue
            if not more and appends == self._appends:
                return
            pause = IMPORT_EVERY
