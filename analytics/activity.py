"""The worker's side of the record stream: the `store_records` activity.

The workflow sends each new run of timeline records once it has them; a retry (a worker
killed mid-write, a busy file) sends the very same batch, and the store keeps each record id
once, so nothing is counted twice and nothing is lost while retries last.
"""

from __future__ import annotations

import asyncio
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

    def write(self, batch: RecordBatch) -> int:
        """Insert the batch; return how many of its records were new."""
        with open_store(self.path) as store:
            return store.insert([batch])

    @activity.defn(name=STORE_RECORDS)
    async def store_records(self, batch: RecordBatch) -> int:
        """Insert the batch (idempotent by record id); a busy or failing store is retried."""
        try:
            return await asyncio.to_thread(self.write, batch)
        except (StoreBusy, StoreError) as error:
            raise ApplicationError(str(error), type=type(error).__name__) from None
