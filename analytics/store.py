"""The analytics store: one DuckDB file, records inserted once by id, exports for a warehouse.

One typed table holds every record kind (docs/analytics.md says why): the fields most
questions filter on are columns, everything else stays in `detail` (JSON), so a record kind
the store has never seen (say `deferred`) is kept as it comes and counted where it fits.

DuckDB lets one process write a file at a time. Within a process every use of a file goes
through one lock; a connection is opened for each use and closed after it, so a report in
another process (or a second worker on the same state dir) gets its turn: a writer that
finds the file busy fails, and its activity is retried; a reader waits for it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import duckdb

from analytics.stream import RecordBatch, rows

STORE_FILE = "analytics.duckdb"
"""The store's file name in a state directory (`lifecycle dev` writes .lifecycle/analytics.duckdb)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id   VARCHAR PRIMARY KEY,  -- customer/chain/seq: the same on every retry
    lifecycle   VARCHAR NOT NULL,     -- the lifecycle's name
    customer_id VARCHAR NOT NULL,
    chain       VARCHAR NOT NULL,     -- which lifecycle of the customer (first run id, or a backtest's)
    seq         BIGINT NOT NULL,      -- place in that lifecycle's timeline, from 0
    occurred_at TIMESTAMP NOT NULL,   -- UTC
    stage       VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,     -- stage_entered, event, message, task, promise, promise_kept, ...
    step        VARCHAR,
    event       VARCHAR,              -- event records: the event's name; stage_entered: what brought it
    channel     VARCHAR,              -- message records
    template    VARCHAR,
    category    VARCHAR,              -- transactional / marketing, when the record carries it
    role        VARCHAR,              -- task and task-timeout records
    promise     VARCHAR,              -- promise, promise_kept, promise_broken records
    about       VARCHAR,              -- promise records: what kind of promise (delivery_date, price, ...)
    made_by     VARCHAR,              -- promise records: the role that made it
    due_at      TIMESTAMP,            -- task records
    detail      JSON                  -- the record's whole detail
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id       VARCHAR PRIMARY KEY,
    lifecycle         VARCHAR NOT NULL,
    segment           VARCHAR,
    preferred_channel VARCHAR,
    profile           JSON,           -- the whole profile as last shipped
    updated_at        TIMESTAMP       -- the time of the latest record shipped with it
);
"""

_COLUMNS = {
    "record_id": "VARCHAR", "lifecycle": "VARCHAR", "customer_id": "VARCHAR", "chain": "VARCHAR",
    "seq": "BIGINT", "occurred_at": "TIMESTAMP", "stage": "VARCHAR", "kind": "VARCHAR", "step": "VARCHAR",
    "event": "VARCHAR", "channel": "VARCHAR", "template": "VARCHAR", "category": "VARCHAR", "role": "VARCHAR",
    "promise": "VARCHAR", "about": "VARCHAR", "made_by": "VARCHAR", "due_at": "TIMESTAMP", "detail": "JSON",
}
_CUSTOMER_COLUMNS = {
    "customer_id": "VARCHAR", "lifecycle": "VARCHAR", "segment": "VARCHAR", "preferred_channel": "VARCHAR",
    "profile": "JSON", "updated_at": "TIMESTAMP",
}

BUSY_WAIT = 10.0
"""Seconds a reader waits for another process to let go of the file."""


class StoreBusy(RuntimeError):
    """Another process holds the store file."""


class StoreError(RuntimeError):
    """The store cannot be opened or read; the message is one line."""


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(os.path.abspath(path), threading.Lock())


class Store:
    """An open analytics store (use `open_store`)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, writable: bool) -> None:
        self.connection = connection
        self.writable = writable

    def insert(self, batches: Iterable[RecordBatch]) -> int:
        """Insert the batches' records, each at most once ever; return how many were new.

        The customers' profiles are kept as of their latest record."""
        with _temporary("records") as records, _temporary("customers") as customers:
            with open(records, "w", encoding="utf-8") as out_records, \
                    open(customers, "w", encoding="utf-8") as out_customers:
                stage(batches, out_records, out_customers)
            return self.insert_staged(records, customers)

    def insert_staged(self, records: Path, customers: Path) -> int:
        """Insert rows that `stage` wrote to two JSON-lines files; return how many records were new.

        DuckDB reads a file far faster than rows inserted one by one; a backtest's processes
        stage their customers in parallel and the store takes the files in turn."""
        if records.stat().st_size == 0:
            return 0
        inserted = self.connection.execute(
            f"INSERT OR IGNORE INTO records SELECT DISTINCT ON (record_id) {', '.join(_COLUMNS)} "
            f"FROM {_read_json(records, _COLUMNS)}"
        ).fetchone()[0]
        if customers.stat().st_size:
            self.connection.execute(
                f"INSERT INTO customers SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM ("
                f"SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC) AS newest "
                f"FROM {_read_json(customers, _CUSTOMER_COLUMNS)}) WHERE newest = 1 "
                "ON CONFLICT (customer_id) DO UPDATE SET "
                "lifecycle = excluded.lifecycle, segment = excluded.segment, "
                "preferred_channel = excluded.preferred_channel, profile = excluded.profile, "
                "updated_at = excluded.updated_at WHERE excluded.updated_at >= customers.updated_at"
            )
        return int(inserted)

    def count(self) -> int:
        """How many records the store holds."""
        return int(self.connection.execute("SELECT count(*) FROM records").fetchone()[0])

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a query as dicts."""
        cursor = self.connection.execute(sql, parameters or [])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def export(self, out: Path, format: str) -> int:
        """Write every record to `out` as Parquet (`parquet`) or JSON lines (`jsonl`); the customers
        go next to it (`<name>.customers.<ext>`). Returns the number of records written."""
        if format not in ("parquet", "jsonl"):
            raise StoreError(f"unknown export format '{format}' (parquet or jsonl)")
        options = "FORMAT parquet" if format == "parquet" else "FORMAT json"
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        customers = out.with_name(f"{out.stem}.customers{out.suffix}")
        self.connection.execute(
            f"COPY (SELECT * FROM records ORDER BY customer_id, chain, seq) TO {_quote(out)} ({options})")
        self.connection.execute(
            f"COPY (SELECT * FROM customers ORDER BY customer_id) TO {_quote(customers)} ({options})")
        return self.count()


@contextmanager
def open_store(path: Path, read_only: bool = False, wait: float = BUSY_WAIT) -> Iterator[Store]:
    """The store at `path` (created, with its schema, unless `read_only`), closed afterwards.

    A writer that finds the file held by another process raises StoreBusy at once (its
    activity is retried); a reader waits up to `wait` seconds for it."""
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"{path}: no analytics store here (run the worker or `lifecycle backtest` first)")
    lock = _lock_for(path)
    with lock:
        connection = _connect(path, read_only, wait)
        try:
            if not read_only:
                connection.execute(SCHEMA)
            yield Store(connection, not read_only)
        finally:
            connection.close()


def _connect(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + (wait if read_only else 0)
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise StoreError(f"{path}: {str(error).splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                raise StoreBusy(f"{path} is in use by another process; try again") from None
            time.sleep(0.1)
        except duckdb.Error as error:
            raise StoreError(f"{path}: {str(error).splitlines()[0]}") from None


def stage(batches: Iterable[RecordBatch], records: IO[str], customers: IO[str]) -> int:
    """Write the batches as store rows, JSON lines, to `records` and `customers` (one customer
    line per batch, as of its last record); return the number of records written."""
    count = 0
    for batch in batches:
        for row in rows(batch):
            row["occurred_at"] = _utc(row["occurred_at"])
            row["due_at"] = _utc(row["due_at"]) if row["due_at"] else None
            records.write(json.dumps(row, ensure_ascii=False, default=str, separators=(",", ":")))
            records.write("\n")
            count += 1
        if batch.records:
            customers.write(json.dumps({
                "customer_id": batch.customer_id, "lifecycle": batch.lifecycle,
                "segment": _text(batch.customer.get("segment")),
                "preferred_channel": _text(batch.customer.get("preferred_channel")),
                "profile": batch.customer, "updated_at": _utc(batch.records[-1].at.isoformat()),
            }, ensure_ascii=False, default=str, separators=(",", ":")))
            customers.write("\n")
    return count


@contextmanager
def _temporary(name: str) -> Iterator[Path]:
    handle, path = tempfile.mkstemp(prefix=f"lifecycle-{name}-", suffix=".jsonl")
    os.close(handle)
    try:
        yield Path(path)
    finally:
        os.unlink(path)


def _read_json(path: Path, columns: dict[str, str]) -> str:
    spec = ", ".join(f"{name}: '{kind}'" for name, kind in columns.items())
    return f"read_json({_quote(path)}, format='newline_delimited', columns={{{spec}}})"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _utc(text: str) -> str:
    """An ISO time as naive UTC, which is what the TIMESTAMP columns hold."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
