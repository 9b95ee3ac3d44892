"""Analytics: backtest throughput (customer-years/s) and the whole report over 1,000,000 records.

The backtest runs the bundled lifecycle over the seeded synthetic population in a process pool
(one process per core). The report store is a backtest copied under new customer ids until it
holds a million records (the same shape of data, more customers), then every question of
`lifecycle report` is asked at once.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from analytics.backtest import backtest
from analytics.metrics import Analyst
from analytics.store import open_store

BUNDLED = Path(__file__).resolve().parent.parent / "playbooks" / "lifecycle.yaml"


def run(population: int, records: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as folder:
        store_path = Path(folder) / "a.duckdb"
        processes = os.cpu_count() or 1
        result = backtest(BUNDLED, population, 1, store_path, processes=processes)
        print()
        print("Analytics (bundled lifecycle, synthetic population; docs/analytics.md)")
        print(f"  backtest            {result.customers:>10,} customer-years, {result.records:,} records, "
              f"{processes} processes")
        print(f"                      {result.seconds:>10.1f} s   {result.customer_years_per_second:,.0f} "
              f"customer-years/s   (10,000 customer-years in ~{10_000 / result.customer_years_per_second:,.0f} s)")
        with open_store(store_path) as store:
            copies = 1
            while store.count() < records:
                store.connection.execute(f"""
                    INSERT INTO records SELECT * REPLACE (customer_id || '~{copies}' AS customer_id,
                        record_id || '~{copies}' AS record_id)
                    FROM records WHERE NOT contains(customer_id, '~') LIMIT {records - store.count()}""")
                store.connection.execute(f"""
                    INSERT OR IGNORE INTO customers SELECT * REPLACE (customer_id || '~{copies}' AS customer_id)
                    FROM customers WHERE NOT contains(customer_id, '~')""")
                copies += 1
            total = store.count()
        with open_store(store_path, read_only=True) as store:
            started = time.perf_counter()
            Analyst(store).report()
            elapsed = time.perf_counter() - started
        print(f"  report              {total:>10,} records: every question in {elapsed:.2f} s (target < 2 s)")
