"""Simulator throughput: simulated customer-years per second on the bundled playbooks.

The ratio printed is virtual time over wall-clock time: how much faster than real life a
playbook can be previewed and tested.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

from engine.loader import load_project
from engine.scenario import DEFAULT_START
from engine.simulator import ScheduledEvent, simulate
from engine.state import Event

BUNDLED = Path(__file__).resolve().parent.parent / "playbooks" / "lifecycle.yaml"
YEAR = timedelta(days=365)


def customer(number: int) -> dict:
    return {"id": f"c{number}", "name": "Ada", "email": "ada@example.com", "phone": "+15550100",
            "preferred_channel": "email", "consent": {"email": True, "sms": True}}


def year_of_events(number: int) -> list[ScheduledEvent]:
    """A year for one customer: order, delivery, a ticket opened and closed, a survey, a referral."""
    cid = f"c{number}"
    late = number % 3 == 0  # every third delivery is late: recovery paths get exercised too

    def at(days: int, name: str, **data) -> ScheduledEvent:
        return ScheduledEvent(DEFAULT_START + timedelta(days=days), Event(customer_id=cid, name=name, data=data))

    start = DEFAULT_START.date()
    return [
        at(0, "order.placed", order_id=f"A-{number}", promised_delivery=(start + timedelta(days=10)).isoformat(),
           price=1200, scope="Sofa, delivered and assembled"),
        at(12 if late else 9, "order.delivered",
           delivered_at=(start + timedelta(days=12 if late else 9)).isoformat(), price_charged=1200),
        at(20, "survey.answered", score=10 if not late else 6),
        at(40, "ticket.opened", ticket_id=f"T-{number}", subject="Scratch on the left arm"),
        at(45, "ticket.closed", ticket_id=f"T-{number}", resolved=True),
        at(90, "referral.made", referred_name="Bo"),
    ]


def _simulate_shard(numbers: range) -> tuple[int, int]:
    """One process's share of a population: (actions, records). Loads the project itself."""
    project = load_project(BUNDLED)
    actions = records = 0
    for number in numbers:
        timeline = simulate(project, customer(number), year_of_events(number), until=DEFAULT_START + YEAR)
        actions += len(timeline.actions)
        records += len(timeline.records)
    return actions, records


def run_population(customers: int, processes: int) -> tuple[float, int, int]:
    """Seconds to simulate `customers` customer-years over `processes` processes, start-up and
    playbook loading included (what `lifecycle backtest` and a test run pay)."""
    shards = [range(first, customers, processes) for first in range(processes)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        totals = list(pool.map(_simulate_shard, shards))
    return time.perf_counter() - started, sum(a for a, _ in totals), sum(r for _, r in totals)


def run(customers: int) -> None:
    project = load_project(BUNDLED)
    scenarios = [(customer(n), year_of_events(n)) for n in range(customers)]
    simulate(project, *scenarios[0])  # warm the expression and template caches
    started = time.perf_counter()
    actions = records = 0
    for profile, events in scenarios:
        timeline = simulate(project, profile, events, until=DEFAULT_START + YEAR)
        actions += len(timeline.actions)
        records += len(timeline.records)
    elapsed = time.perf_counter() - started
    years_per_s = customers / elapsed
    print()
    print("simulator (bundled playbooks, one customer-year each)")
    print(f"{'customers':>10} {'seconds':>9} {'customer-years/s':>17} {'ms/customer-year':>17} "
          f"{'actions':>8} {'records':>8}")
    print(f"{customers:>10} {elapsed:>9.3f} {years_per_s:>17.1f} {1000 / years_per_s:>17.2f} "
          f"{actions:>8} {records:>8}")
    print(f"ratio virtual/wall time: {customers * YEAR.total_seconds() / elapsed:.3g}")
    # A population is simulated one customer per process at a time: one process per core.
    population, processes = 10 * customers, os.cpu_count() or 1
    seconds, actions, records = run_population(population, processes)
    print(f"{population:>10} {seconds:>9.3f} {population / seconds:>17.1f} {1000 * seconds / population:>17.2f} "
          f"{actions:>8} {records:>8}  ({processes} processes, start-up included)")
    print(f"ratio {processes} processes/1 process customer-years/s: {population / seconds / years_per_s:.2f}")
