"""The records journal: a durable queue between the `store_records` activity and the store.

A DuckDB write costs ~60 ms of CPU whatever its size (opening the file is most of it), and the
activity is a local one, so its time is spent inside the workflow task that made the records:
an event's update waited for the write, and a burst of events kept a core busy writing. So the
activity only appends the batch here (one SQLite transaction, fsynced, a millisecond) and
returns; the worker moves the journal into DuckDB at most once a second (`RecordSink`).

SQLite because it is in the standard library and already is what this needs: appends that
survive kill -9 (a torn one is rolled back, and the activity that made it is retried),
several worker processes on one state directory, and readers that delete what they took.
Importing is idempotent (the store ignores a record id it has), so two importers taking the
same rows, or one killed between the DuckDB write and the delete, count nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from analytics.stream import RecordBatch

JOURNAL_FILE = "analytics-journal.sqlite"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    records TEXT NOT NULL,   -- store rows, JSON lines (analytics.store.stage)
    customers TEXT NOT NULL  -- the customer's row, JSON lines
)
"""


@dataclass(frozen=True)
class Taken:
    """Journal entries read for import: their store rows, the last id they cover, and whether
    the take was cut at its limit (more are waiting)."""

    last_id: int
    more: bool
    records: str
    customers: str


class RecordJournal:
    """The journal file of a state directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, batches: Iterable[RecordBatch]) -> int:
        """Keep the batches durably, in one transaction; return how many records they hold."""
        from analytics.store import stage  # DuckDB loads with the store, not with the journal

        rows = []
        count = 0
        for batch in batches:
            records, customers = StringIO(), StringIO()
            count += stage([batch], records, customers)
            rows.append((records.getvalue(), customers.getvalue()))
        with self._connect() as connection:
            connection.executemany("INSERT INTO batches (records, customers) VALUES (?, ?)", rows)
        return count

    def take(self, limit: int = 10_000) -> Taken | None:
        """The oldest `limit` entries joined (None when the journal is empty); they stay until `drop`."""
        with self._connect() as connection:
            entries = connection.execute(
                "SELECT id, records, customers FROM batches ORDER BY id LIMIT ?", (limit,)).fetchall()
        if not entries:
            return None
        return Taken(last_id=entries[-1][0], more=len(entries) == limit, records="".join(entry[1] for entry in entries),
                     customers="".join(entry[2] for entry in entries))

    def drop(self, last_id: int) -> None:
        """Forget the entries up to `last_id` (imported)."""
        with self._connect() as connection:
            connection.execute("DELETE FROM batches WHERE id <= ?", (last_id,))

    def pending(self) -> int:
        """How many batches wait for import."""
        if not self.path.exists():
            return 0
        with self._connect() as connection:
            return int(connection.execute("SELECT count(*) FROM batches").fetchone()[0])

    def _connect(self) -> _Transaction:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # an appended batch survives a power cut
        connection.execute(_SCHEMA)
        return _Transaction(connection)


class _Transaction:
    """A connection used as `with`: one transaction, committed (or rolled back), then closed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, trace) -> None:
        try:
            self.connection.execute("ROLLBACK" if error else "COMMIT")
        finally:
            self.connection.close()
