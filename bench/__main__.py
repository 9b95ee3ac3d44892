"""`make bench`: every benchmark, one table each."""

from __future__ import annotations

import argparse
import asyncio

from bench import simulator, temporal


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--lifecycles", type=int, default=500, help="Lifecycles per Temporal variant.")
    parser.add_argument("--customers", type=int, default=200, help="Simulated customers.")
    parser.add_argument("--only", choices=["simulator", "temporal"], help="Run one benchmark.")
    args = parser.parse_args()
    if args.only in (None, "simulator"):
        simulator.run(args.customers)
    if args.only in (None, "temporal"):
        asyncio.run(temporal.run(args.lifecycles))


if __name__ == "__main__":
    main()
