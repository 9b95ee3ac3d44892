"""`lifecycle backtest`: a synthetic population through the simulator, into a store.

The population (seeded: the same seed gives the same customers, in any number of processes):
each customer gets one year from a start date, drawn as follows (only the fields and events
the lifecycle declares are used):

- profile: segment consumer 70% / small_business 20% / enterprise 10%; preferred channel
  email 60% / sms 30% / letter 10%; consent to email 90%, to sms 70%.
- an order on day 0: price log-normal around 800 (consumer), 3,000 (small business) or
  15,000 (enterprise); delivery promised 7-14 days later; installation sold 40%.
- delivery: on time or up to 2 days early 70%, 1-3 days late 20%, 4-10 days late 10%;
  a delay notice (order.delivery_at_risk) 3 days before for half the late ones.
- warranty registered at delivery 60%.
- tickets: none 60%, one 30%, two 10%, in the first 120 days, each closed 1-10 days later.
- survey: 75% answer, 8-20 days after delivery; score 8-10 mostly when the delivery was on
  time (9-10 60%, 7-8 30%, 0-6 10%), lower when late (9-10 25%, 7-8 30%, 0-6 45%), one
  point lower for each open ticket at the time.
- referral: 35% of promoters refer someone 5-40 days after their answer.
- a repeat order (with its delivery) on day 60-300 for 15%; lost (customer.lost) on a random
  day for 6%.

Customers are simulated in a process pool (one process per core by default); each process
stages its customers' records as JSON lines and the store takes the files in turn.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.simulator import ScheduledEvent
from engine.state import Event

START = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
YEAR = timedelta(days=365)
CHUNK = 250  # customers per task handed to a process


@dataclass
class BacktestResult:
    """What a backtest did."""

    customers: int
    records: int
    rejected: int
    seconds: float

    @property
    def customer_years_per_second(self) -> float:
        return self.customers / self.seconds if self.seconds else 0.0


def population_member(index: int, seed: int, declared_customer: set[str], declared_events: set[str],
                      start: datetime = START) -> tuple[dict[str, Any], list[ScheduledEvent]]:
    """Customer number `index` of the population `seed`: a profile and a year of events."""
    rng = random.Random(f"{seed}/{index}")
    cid = f"bt-{index:06d}"
    segment = rng.choices(["consumer", "small_business", "enterprise"], [70, 20, 10])[0]
    customer: dict[str, Any] = {
        "id": cid, "name": f"Customer {index}", "email": f"{cid}@example.com", "phone": f"+1555{index:07d}",
        "address": f"{index} Main Street",
        "preferred_channel": rng.choices(["email", "sms", "letter"], [60, 30, 10])[0],
        "consent": {"email": rng.random() < 0.9, "sms": rng.random() < 0.7},
    }
    if "segment" in declared_customer:
        customer["segment"] = segment
    events: list[ScheduledEvent] = []

    def at(day: float, name: str, **data: Any) -> None:
        if name in declared_events:
            events.append(ScheduledEvent(start + timedelta(days=day), Event(customer_id=cid, name=name, data=data)))

    def day_text(day: float) -> str:
        return (start + timedelta(days=day)).date().isoformat()

    lost_day = rng.uniform(1, 365) if rng.random() < 0.06 else None
    base = {"consumer": 800, "small_business": 3000, "enterprise": 15000}[segment]

    def order(day: float, number: int) -> float:
        order_id = f"{cid}-{number}"
        price = round(base * math.exp(rng.gauss(0, 0.5)), 2)
        promised = day + rng.randint(7, 14)
        at(day, "order.placed", order_id=order_id, promised_delivery=day_text(promised), price=price,
           scope="As in the offer", installation=rng.random() < 0.4)
        roll = rng.random()
        delay = rng.randint(-2, 0) if roll < 0.7 else rng.randint(1, 3) if roll < 0.9 else rng.randint(4, 10)
        if delay > 0 and rng.random() < 0.5:
            at(promised - 3, "order.delivery_at_risk", new_estimate=day_text(promised + delay), reason="supplier")
        delivered = promised + delay
        at(delivered + 0.5, "order.delivered", order_id=order_id, delivered_at=day_text(delivered), price_charged=price)
        if rng.random() < 0.6:
            at(delivered + 0.6, "warranty.registered", warranty_ends=day_text(delivered + 730))
        return delivered + 0.5 if delay <= 0 else -(delivered + 0.5)

    delivered = order(0, 1)
    late, delivered = delivered < 0, abs(delivered)
    tickets = rng.choices([0, 1, 2], [60, 30, 10])[0]
    open_until = []
    for number in range(tickets):
        opened = rng.uniform(1, 120)
        closed = opened + rng.uniform(1, 10)
        at(opened, "ticket.opened", ticket_id=f"{cid}-T{number}", subject="A problem")
        at(closed, "ticket.closed", ticket_id=f"{cid}-T{number}", resolved=rng.random() < 0.8)
        open_until.append((opened, closed))
    if rng.random() < 0.75:
        answered = delivered + rng.uniform(8, 20)
        weights = [25, 30, 45] if late else [60, 30, 10]
        band = rng.choices(["promoter", "passive", "detractor"], weights)[0]
        score = {"promoter": rng.randint(9, 10), "passive": rng.randint(7, 8), "detractor": rng.randint(0, 6)}[band]
        score = max(0, score - sum(1 for opened, closed in open_until if opened <= answered < closed))
        at(answered, "survey.answered", score=score)
        if score >= 9 and rng.random() < 0.35:
            at(answered + rng.uniform(5, 40), "referral.made", referred_name="A friend")
    if rng.random() < 0.15:
        order(rng.uniform(60, 300), 2)
    if lost_day is not None:
        at(lost_day, "customer.lost", reason="moved away")
        events = [item for item in events if item.at <= start + timedelta(days=lost_day)]
    events.sort(key=lambda item: item.at)
    # The lifecycle starts with its first event: make sure that is the order.
    first_order = next((i for i, item in enumerate(events) if item.event and item.event.name == "order.placed"), None)
    if first_order:
        events.insert(0, events.pop(first_order))
    return customer, events


# ------------------------------------------------------------ the process pool

_PROJECT: Any = None
_LIFECYCLE_FILE: Path | None = None


def _load(lifecycle_file: Path) -> Any:
    global _PROJECT, _LIFECYCLE_FILE
    if _PROJECT is None or _LIFECYCLE_FILE != lifecycle_file:
        from engine.loader import load_project

        _PROJECT, _LIFECYCLE_FILE = load_project(lifecycle_file), lifecycle_file
    return _PROJECT


def simulate_chunk(lifecycle_file: Path, seed: int, first: int, count: int, chain: str,
                   folder: Path) -> tuple[Path, Path, int, int]:
    """Simulate customers first..first+count-1 and stage their records in `folder`; returns the
    records file, the customers file, the number of records and of rejected events."""
    from analytics.store import stage
    from analytics.stream import batches_of
    from engine.simulator import simulate

    project = _load(lifecycle_file)
    lifecycle = project.lifecycle
    declared_customer, declared_events = set(lifecycle.customer), set(lifecycle.events)
    records_path = folder / f"records-{first:08d}.jsonl"
    customers_path = folder / f"customers-{first:08d}.jsonl"
    written = rejected = 0
    with open(records_path, "w", encoding="utf-8") as records, open(customers_path, "w", encoding="utf-8") as customers:
        for index in range(first, first + count):
            customer, events = population_member(index, seed, declared_customer, declared_events)
            timeline = simulate(project, customer, events, until=events[0].at + YEAR)
            rejected += sum(1 for _, receipt in timeline.receipts if receipt.status == "rejected")
            written += stage(batches_of(lifecycle.lifecycle, timeline.state.customer, timeline.records, chain),
                             records, customers)
    return records_path, customers_path, written, rejected


def backtest(lifecycle_file: Path, population: int, seed: int, out: Path, processes: int | None = None,
             progress: Any = None) -> BacktestResult:
    """Run `population` synthetic customer-years of the lifecycle into the store at `out`
    (records of an earlier backtest with the same seed are kept once, not twice)."""
    from analytics.store import open_store

    processes = processes or os.cpu_count() or 1
    chain = f"backtest-{seed}"
    started = time.perf_counter()
    records = rejected = 0
    chunks = [(first, min(CHUNK, population - first)) for first in range(0, population, CHUNK)]
    with tempfile.TemporaryDirectory(prefix="lifecycle-backtest-") as folder, open_store(out) as store:
        if processes == 1:
            results = (simulate_chunk(lifecycle_file, seed, first, count, chain, Path(folder))
                       for first, count in chunks)
            for records_path, customers_path, written, refused in results:
                store.insert_staged(records_path, customers_path)
                records, rejected = records + written, rejected + refused
                if progress:
                    progress(records)
        else:
            with ProcessPoolExecutor(max_workers=processes) as pool:
                futures = [pool.submit(simulate_chunk, lifecycle_file, seed, first, count, chain, Path(folder))
                           for first, count in chunks]
                for future in futures:
                    records_path, customers_path, written, refused = future.result()
                    store.insert_staged(records_path, customers_path)
                    records_path.unlink()
                    customers_path.unlink()
                    records, rejected = records + written, rejected + refused
                    if progress:
                        progress(records)
    return BacktestResult(customers=population, records=records, rejected=rejected,
                          seconds=time.perf_counter() - started)


