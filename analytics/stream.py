"""The record stream: a lifecycle's timeline records with a stable id each.

A record's id is `customer/chain/seq`: `chain` names one lifecycle of the customer (the
first run id of the workflow, kept across continue-as-new; or a backtest's name), `seq` is
the record's place in that lifecycle's timeline, counted from 0 whether or not the workflow
still holds it. The same record always gets the same id, so the store can refuse a second
copy: a retried activity or a killed worker never counts anything twice.

Plain data only (no DuckDB): the workflow imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.state import Action, ActionResult


class StreamRecord(BaseModel):
    """A timeline record (engine.state.Record) as the store takes it: any kind, so a record kind
    added to the engine later is stored and counted before the store knows its name."""

    model_config = ConfigDict(from_attributes=True)  # an engine Record validates as one

    at: datetime
    stage: str
    kind: str
    step: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class RecordBatch(BaseModel):
    """Consecutive records of one lifecycle, from `first_seq` on, and the customer as it is now."""

    lifecycle: str = Field(description="The lifecycle's name (e.g. customer_relationship).")
    customer_id: str
    chain: str = Field(description="Which lifecycle of this customer: stable across continue-as-new.")
    first_seq: int = Field(ge=0, description="The sequence number of `records[0]`.")
    records: list[StreamRecord]
    customer: dict[str, Any] = Field(default_factory=dict, description="The customer's profile when shipped.")

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.records) - 1


def record_id(customer_id: str, chain: str, seq: int) -> str:
    """The id of a record: the same on every retry, different for every record."""
    return f"{customer_id}/{chain}/{seq}"


def rows(batch: RecordBatch) -> Iterator[dict[str, Any]]:
    """The batch as store rows: common fields promoted to typed columns, the rest in `detail`."""
    for offset, record in enumerate(batch.records):
        seq = batch.first_seq + offset
        detail = record.detail
        yield {
            "record_id": record_id(batch.customer_id, batch.chain, seq),
            "lifecycle": batch.lifecycle,
            "customer_id": batch.customer_id,
            "chain": batch.chain,
            "seq": seq,
            "occurred_at": record.at.isoformat(),
            "stage": record.stage,
            "kind": record.kind,
            "step": record.step,
            "event": _text(detail.get("event")),
            "channel": _text(detail.get("channel")),
            "template": _text(detail.get("template")),
            "category": _text(detail.get("category")),
            "role": _text(detail.get("role")),
            "promise": _text(detail.get("promise")),
            "about": _text(detail.get("about")),
            "made_by": _text(detail.get("made_by")),
            "due_at": _text(detail.get("due_at")),
            "detail": detail,
        }


def batches_of(lifecycle: str, customer: dict[str, Any], records: Iterable[Any], chain: str,
               size: int = 10_000) -> Iterator[RecordBatch]:
    """A whole timeline (e.g. a simulation's) as batches from seq 0."""
    customer_id = str(customer.get("id", ""))
    pending: list[Any] = []
    first = 0
    for record in records:
        pending.append(record)
        if len(pending) >= size:
            yield RecordBatch(lifecycle=lifecycle, customer_id=customer_id, chain=chain, first_seq=first,
                              records=pending, customer=customer)
            first += len(pending)
            pending = []
    if pending or first == 0:
        yield RecordBatch(lifecycle=lifecycle, customer_id=customer_id, chain=chain, first_seq=first,
                          records=pending, customer=customer)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


STORE_RECORDS = "store_records"
"""The activity that writes a RecordBatch to the store (analytics.activity)."""

DELIVER_WITH_RECORDS = "deliver_with_records"
"""The activity that performs a workflow task's effects (as `deliver_all`) and journals the
records that task made (as `store_records`): one activity where there would be two."""


class DeliveryWithRecords(BaseModel):
    """The input of DELIVER_WITH_RECORDS: the effects of one instant, and the records so far."""

    actions: list[Action]
    records: RecordBatch


class DeliveredWithRecords(BaseModel):
    """What DELIVER_WITH_RECORDS answers: each action's result, and whether the records were
    journaled (if not, the workflow sends them with STORE_RECORDS)."""

    results: list[ActionResult]
    records_kept: bool
