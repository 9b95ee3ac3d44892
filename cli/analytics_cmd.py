"""`lifecycle report`, `lifecycle rank`, `lifecycle export`: the analytics store, read (docs/analytics.md)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cli.output import fail


def default_store() -> Path:
    """The store `lifecycle dev` and workers write: $LIFECYCLE_STATE_DIR/analytics.duckdb."""
    from analytics.store import STORE_FILE

    return Path(os.environ.get("LIFECYCLE_STATE_DIR", ".lifecycle")) / STORE_FILE


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from analytics.metrics import window_bound

    try:
        return window_bound(value)
    except ValueError as error:
        fail(f"{option}: {error}")


def build_report(store_path: Path, since: str | None = None, until: str | None = None,
                 segment: str | None = None) -> dict[str, Any]:
    """The whole report of a store, or exit 1 with one line."""
    from analytics.metrics import Analyst, Filters
    from analytics.store import StoreError, open_store

    filters = Filters(since=_moment(since, "--since"), until=_moment(until, "--until"), segment=segment)
    try:
        with open_store(store_path, read_only=True) as store:
            return Analyst(store, filters).report()
    except StoreError as error:
        fail(str(error))


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=lambda value: value.isoformat() if hasattr(value, "isoformat")
                      else str(value))


store_option = click.option("--store", "store_path", type=click.Path(path_type=Path), default=None,
                            help="The DuckDB file [default: $LIFECYCLE_STATE_DIR/analytics.duckdb].")


@click.command("report")
@store_option
@click.option("--since", help="Only records at or after this date or time.")
@click.option("--until", help="Only records before this date or time.")
@click.option("--segment", help="Only customers of this segment.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--html", "html_file", type=click.Path(path_type=Path), help="Write a self-contained HTML page.")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), metavar="A.duckdb B.duckdb",
              help="Two stores (e.g. two backtests) side by side.")
def report_command(store_path: Path | None, since: str | None, until: str | None, segment: str | None,
                   as_json: bool, html_file: Path | None, compare: tuple[Path, Path] | None) -> None:
    """Funnel, time in stage, promises, recovery, NPS, referrals, task SLA, messages, revenue and
    CLV, rankings: every question of docs/analytics.md over the analytics store."""
    from analytics.report import comparison, print_report, table

    console = _console()
    if compare:
        left, right = (build_report(path, since, until, segment) for path in compare)
        rows = comparison(left, right)
        if as_json:
            click.echo(_json({"A": str(compare[0]), "B": str(compare[1]), "figures": rows}))
        else:
            console.print(f"A = {compare[0]}   B = {compare[1]}")
            console.print(table("A and B side by side", rows))
        return
    report = build_report(store_path or default_store(), since, until, segment)
    if html_file:
        from analytics.html import render

        try:
            html_file.write_text(render(report), encoding="utf-8")
        except OSError as error:
            fail(f"{html_file}: {error.strerror}")
        click.echo(f"wrote {html_file}")
    elif as_json:
        click.echo(_json(report))
    else:
        print_report(report, console)


PIPE_WIDTH = 200
"""Columns of the tables written to a pipe or a file: wider than the widest table."""


def _console():
    """Rich's console. Into a pipe or a file (`lifecycle rank > calls.txt`, a cron mail) Rich
    assumes 80 columns and cut customer ids and amounts to "bt-000…" and "55,170…"; there it
    is as wide as the tables, unless COLUMNS says otherwise."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=PIPE_WIDTH)
    return console


@click.command("rank")
@store_option
@click.option("--by", type=click.Choice(["value", "risk"]), default="value", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--until", help="Rank as of this date or time (default: the latest record).")
@click.option("--segment", help="Only customers of this segment.")
@click.option("--json", "as_json", is_flag=True)
def rank_command(store_path: Path | None, by: str, top: int, until: str | None, segment: str | None,
                 as_json: bool) -> None:
    """Customers by value (revenue) or by risk (open tickets, broken promises, detractor score,
    days since the last contact): whom to call first."""
    from analytics.metrics import Analyst, Filters
    from analytics.report import table
    from analytics.store import StoreError, open_store

    filters = Filters(until=_moment(until, "--until"), segment=segment)  # a bad --until first, store or not
    try:
        with open_store(store_path or default_store(), read_only=True) as store:
            rows = Analyst(store, filters).ranking(by, top)
    except StoreError as error:
        fail(str(error))
    if as_json:
        click.echo(_json(rows))
    else:
        _console().print(table(f"Customers by {by}", rows))


@click.command("export")
@store_option
@click.argument("out", type=click.Path(path_type=Path))
def export_command(store_path: Path | None, out: Path) -> None:
    """Write every record to OUT.parquet or OUT.jsonl (customers to OUT.customers.*), for a warehouse."""
    from analytics.store import StoreError, open_store

    formats = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    if out.suffix not in formats:
        fail(f"{out}: name it .parquet or .jsonl")
    try:
        with open_store(store_path or default_store(), read_only=True) as store:
            count = store.export(out, formats[out.suffix])
    except StoreError as error:
        fail(str(error))
    click.echo(f"wrote {count:,} records to {out}")


@click.command("backtest")
@click.argument("lifecycle", type=click.Path(exists=True, path_type=Path))
@click.option("--population", type=click.IntRange(min=1), required=True, help="Customers, one year each.")
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed draws the same population.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The DuckDB file to write.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Simulating processes [default: one per core].")
def backtest_command(lifecycle: Path, population: int, seed: int, out: Path, processes: int | None) -> None:
    """Run a synthetic population (docs/analytics.md, "Backtest") through LIFECYCLE's simulator
    into a store; compare two with `lifecycle report --compare A.duckdb B.duckdb`."""
    from analytics.backtest import backtest
    from analytics.store import StoreError
    from cli.output import lifecycle_path, load

    lifecycle_file = lifecycle_path(lifecycle).resolve()
    load(lifecycle_file)  # a playbook that does not load says where, before any process starts
    try:
        result = backtest(lifecycle_file, population, seed, out, processes)
    except StoreError as error:
        fail(str(error))
    click.echo(f"{result.customers:,} customer-years, {result.records:,} records, {result.rejected:,} events "
               f"refused by the lifecycle, in {result.seconds:.1f} s ({result.customer_years_per_second:,.0f} "
               f"customer-years/s) -> {out}")
