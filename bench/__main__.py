"""`make bench`: every benchmark, one table each."""

from __future__ import annotations

import argparse
import asyncio

from bench import analytics, api, footprint, simulator, temporal


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--lifecycles", type=int, default=500, help="Lifecycles per Temporal variant.")
    parser.add_argument("--customers", type=int, default=200, help="Simulated customers.")
    parser.add_argument("--only", choices=["simulator", "temporal", "api", "footprint", "analytics"],
                        help="Run one benchmark.")
    parser.add_argument("--events", type=int, default=1000, help="Events per API variant.")
    parser.add_argument("--footprint-customers", type=int, default=30,
                        help="Customer-years for the footprint (history, actions, CPU per customer-year).")
    parser.add_argument("--backtest-population", type=int, default=2000,
                        help="Customer-years for the analytics backtest.")
    parser.add_argument("--report-records", type=int, default=1_000_000, help="Records the analytics report reads.")
    args = parser.parse_args()
    if args.only in (None, "simulator"):
        simulator.run(args.customers)
    if args.only in (None, "temporal"):
        asyncio.run(temporal.run(args.lifecycles))
    if args.only in (None, "api"):
        asyncio.run(api.run(args.events))
    if args.only in (None, "footprint"):
        footprint.run(args.footprint_customers)
    if args.only in (None, "analytics"):
        analytics.run(args.backtest_population, args.report_records)


if __name__ == "__main__":
    main()
