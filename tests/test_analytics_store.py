"""The analytics store without Temporal: ids, idempotent inserts, unknown kinds, exports."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from analytics.activity import RecordSink
from analytics.store import StoreError, open_store
from analytics.stream import RecordBatch, batches_of, record_id
from analytics.stream import StreamRecord as Record
from engine.state import Record as EngineRecord

T0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def record(kind: str, minutes: int = 0, stage: str = "s", step: str | None = None, **detail) -> Record:
    return Record(at=T0 + timedelta(minutes=minutes), stage=stage, kind=kind, step=step, detail=detail)


def batch(customer: str, first: int, records: list[Record], **profile) -> RecordBatch:
    return RecordBatch(lifecycle="l", customer_id=customer, chain="run-1", first_seq=first, records=records,
                       customer={"id": customer, **profile})


def test_a_record_is_stored_once_however_often_its_batch_is_sent(tmp_path: Path):
    path = tmp_path / "a.duckdb"
    first = batch("c1", 0, [record("stage_entered"), record("message", 1, channel="email", template="t")])
    with open_store(path) as store:
        assert store.insert([first]) == 2
        assert store.insert([first]) == 0  # a retried activity
        # A retry that overlaps what was stored and adds one more: only the new one counts.
        again = batch("c1", 1, [record("message", 1, channel="email", template="t"), record("ended", 2)])
        assert store.insert([again]) == 1
        assert store.count() == 3
        ids = [row["record_id"] for row in store.query("SELECT record_id FROM records ORDER BY seq")]
    assert ids == [record_id("c1", "run-1", n) for n in range(3)]
    with open_store(path) as reopened:  # it is a file: a new process sees the same
        assert reopened.insert([first, again]) == 0


def test_the_same_sequence_in_another_lifecycle_is_another_record(tmp_path: Path):
    with open_store(tmp_path / "a.duckdb") as store:
        store.insert([batch("c1", 0, [record("stage_entered")])])
        other_chain = batch("c1", 0, [record("stage_entered")]).model_copy(update={"chain": "run-2"})
        assert store.insert([other_chain, batch("c2", 0, [record("stage_entered")])]) == 2


def test_typed_columns_and_an_unknown_kind_are_kept(tmp_path: Path):
    with open_store(tmp_path / "a.duckdb") as store:
        store.insert([batch("c1", 0, [
            record("task", step="call", role="installer", due_at="2026-03-02T09:00:00+01:00", title="Call"),
            record("deferred", 5, channel="sms", template="t", category="marketing", until="quiet hours"),
        ])])
        rows = store.query("SELECT kind, role, due_at, channel, category, detail FROM records ORDER BY seq")
    assert rows[0]["role"] == "installer"
    assert rows[0]["due_at"] == datetime(2026, 3, 2, 8, 0)  # UTC
    assert rows[1]["kind"] == "deferred" and rows[1]["category"] == "marketing"
    assert json.loads(rows[1]["detail"])["until"] == "quiet hours"


def test_the_customer_profile_is_the_latest_shipped(tmp_path: Path):
    with open_store(tmp_path / "a.duckdb") as store:
        store.insert([batch("c1", 1, [record("event", 10)], segment="enterprise", preferred_channel="sms")])
        store.insert([batch("c1", 0, [record("stage_entered", 0)], segment="consumer")])  # an older batch, late
        row = store.query("SELECT segment, preferred_channel FROM customers")[0]
    assert row == {"segment": "enterprise", "preferred_channel": "sms"}


def test_a_whole_timeline_goes_in_as_batches_from_zero():
    records = [EngineRecord(at=T0, stage="s", kind="event") for n in range(25)]
    batches = list(batches_of("l", {"id": "c9"}, records, chain="sim", size=10))
    assert [(b.first_seq, len(b.records)) for b in batches] == [(0, 10), (10, 10), (20, 5)]


def test_export_to_parquet_and_json_lines(tmp_path: Path):
    with open_store(tmp_path / "a.duckdb") as store:
        store.insert([batch("c1", 0, [record("stage_entered"), record("ended", 1)], segment="consumer")])
        assert store.export(tmp_path / "out" / "records.parquet", "parquet") == 2
        store.export(tmp_path / "out" / "records.jsonl", "jsonl")
        with pytest.raises(StoreError, match="unknown export format"):
            store.export(tmp_path / "records.csv", "csv")
    lines = (tmp_path / "out" / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["stage_entered", "ended"]
    parquet = duckdb.sql(f"SELECT kind, seq FROM '{tmp_path / 'out' / 'records.parquet'}' ORDER BY seq").fetchall()
    assert parquet == [("stage_entered", 0), ("ended", 1)]
    customers = (tmp_path / "out" / "records.customers.jsonl").read_text()
    assert json.loads(customers)["segment"] == "consumer"


def test_reading_a_store_that_is_not_there_says_so(tmp_path: Path):
    with pytest.raises(StoreError, match="no analytics store here"):
        with open_store(tmp_path / "missing.duckdb", read_only=True):
            pass


class CountingSink(RecordSink):
    """A sink that counts its imports into DuckDB."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.imports = 0

    def import_journal(self) -> bool:
        self.imports += 1
        return super().import_journal()


async def test_batches_sent_at_once_are_written_together_and_each_once(tmp_path: Path):
    sink = CountingSink(tmp_path)
    batches = [batch(f"c{n}", 0, [record("stage_entered"), record("ended", 1)]) for n in range(40)]
    results = await asyncio.gather(*(sink.store_records(b) for b in batches + batches[:10]))  # 10 resent
    assert results == [2] * 50  # journaled, each with its two records
    await sink.flush()
    assert sink.imports < 5  # grouped, not one write per batch
    assert sink.journal.pending() == 0
    with open_store(tmp_path / "analytics.duckdb") as store:
        assert store.count() == 80


async def test_journaled_records_of_a_worker_that_died_are_imported_by_the_next(tmp_path: Path):
    RecordSink(tmp_path).journal.append([batch("c1", 0, [record("stage_entered"), record("ended", 1)])])
    # The first worker died before importing: its journal is on disk, the store is not there.
    assert not (tmp_path / "analytics.duckdb").exists()
    await RecordSink(tmp_path).flush()
    with open_store(tmp_path / "analytics.duckdb") as store:
        assert store.count() == 2


async def test_a_store_held_by_another_process_keeps_the_records_in_the_journal_until_it_is_free(tmp_path: Path):
    sink = RecordSink(tmp_path)
    holder = subprocess.Popen([
        sys.executable, "-c",
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(3)",
        str(tmp_path / "analytics.duckdb")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert await sink.store_records(batch("c1", 0, [record("stage_entered")])) == 1  # never waits on the store
    assert sink.journal.pending() == 1
    holder.wait()
    await asyncio.wait_for(sink.flush(), timeout=30)
    assert sink.journal.pending() == 0
    with open_store(tmp_path / "analytics.duckdb") as store:
        assert store.count() == 1


async def test_a_steady_trickle_of_batches_is_imported_at_most_once_a_second(tmp_path: Path):
    sink = CountingSink(tmp_path)
    began = asyncio.get_running_loop().time()
    for n in range(15):  # one batch every 0.1 s, each after the previous import has finished
        await sink.store_records(batch(f"c{n}", 0, [record("stage_entered")]))
        await asyncio.sleep(0.1)
    await sink.flush()
    seconds = asyncio.get_running_loop().time() - began
    assert sink.imports <= seconds / 1.0 + 2, (sink.imports, seconds)
    with open_store(tmp_path / "analytics.duckdb") as store:
        assert store.count() == 15


async def test_records_riding_with_a_delivery_are_journaled_once_however_often_it_is_retried(tmp_path: Path):
    from activities.config import LifecycleSettings
    from activities.delivery import Delivery
    from analytics.stream import DeliveryWithRecords
    from test_activities import message

    settings = LifecycleSettings.from_mapping({"state_dir": str(tmp_path)})
    delivery = Delivery(settings, RecordSink(tmp_path))
    order = DeliveryWithRecords(actions=[message()], records=batch("c1", 0, [record("stage_entered"), record("sent", 1)]))
    for _ in range(3):  # a first attempt, then two retries of the same activity
        done = await delivery.deliver_with_records(order)
        assert done.records_kept and [result.status for result in done.results] == ["done"]
    await delivery.records.flush()
    with open_store(tmp_path / "analytics.duckdb") as store:
        assert store.count() == 2
    outbox = [json.loads(line) for line in settings.outbox_path.read_text().splitlines()]
    assert [entry["id"] for entry in outbox] == [message().id]  # the action, once, too


async def test_a_journal_that_cannot_be_written_does_not_hold_the_delivery_up(tmp_path: Path):
    from activities.config import LifecycleSettings
    from activities.delivery import Delivery
    from analytics.journal import JOURNAL_FILE
    from analytics.stream import DeliveryWithRecords
    from test_activities import message

    broken = tmp_path / "broken"
    (broken / JOURNAL_FILE).mkdir(parents=True)  # a folder where the journal file should be
    settings = LifecycleSettings.from_mapping({"state_dir": str(tmp_path)})
    delivery = Delivery(settings, RecordSink(broken))
    done = await delivery.deliver_with_records(
        DeliveryWithRecords(actions=[message()], records=batch("c1", 0, [record("stage_entered")])))
    assert not done.records_kept  # the workflow sends them with store_records
    assert [result.status for result in done.results] == ["done"]
    assert settings.outbox_path.exists()
