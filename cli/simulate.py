"""`lifecycle simulate`: preview a customer's whole lifecycle on a virtual clock."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load
from engine.scenario import (
    DEFAULT_HORIZON,
    ScenarioError,
    check_profile,
    parse_customer,
    parse_events,
    parse_until,
    read_scenario_file,
)
from engine.promises import PROMISE_KINDS
from engine.simulator import Timeline, simulate
from engine.state import Record


@click.command("simulate")
@click.argument("lifecycle", type=click.Path(exists=True, path_type=Path))
@click.option("--customer", "customer_file", type=click.Path(exists=True, path_type=Path),
              help="YAML file with the customer profile.")
@click.option("--events", "events_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="YAML file with the events and when they arrive.")
@click.option("--until", "until_text", metavar="DATE|DURATION",
              help="Stop at this date, or this long after the first event "
                   "(default: ten years after it).")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
def simulate_command(lifecycle: Path, customer_file: Path | None, events_file: Path,
                     until_text: str | None, as_json: bool) -> None:
    """Run LIFECYCLE for one customer over the events file, months in milliseconds.

    Exits 1 when an event of the scenario was rejected (each is printed with the reason), or
    when the customer ends held on an incident (a step that failed at run time).
    """
    project = load(lifecycle_path(lifecycle))
    try:
        customer_doc = read_scenario_file(customer_file) if customer_file else None
        customer = parse_customer(customer_doc.data if customer_doc else {}, str(customer_file), customer_doc)
        check_profile(project.lifecycle, customer, str(customer_file), customer_doc)
        events_doc = read_scenario_file(events_file)
        events = parse_events(events_doc.data, customer["id"], str(events_file), events_doc)
    except ScenarioError as error:
        for line in str(error).splitlines():
            click.echo(line, err=True)
        sys.exit(1)
    if not events:
        fail(f"{events_file}: no events; the first one starts the lifecycle")
    first = min(item.at for item in events)
    try:
        until = parse_until(until_text, first) if until_text else first + DEFAULT_HORIZON
    except ValueError as error:
        fail(f"--until: {error}")
    if until < first:  # the first event would still run, after the clock had stopped
        fail(f"--until: {until:%Y-%m-%d %H:%M} is before the first event ({first:%Y-%m-%d %H:%M}); "
             f"nothing would be simulated")
    try:
        timeline = simulate(project, customer, events, until=until)
    except ValueError as error:  # the customer profile or an event does not fit the lifecycle
        fail(str(error).splitlines()[0])
    except OverflowError:
        fail(f"a timer would go past the year 9999; stop earlier with --until (now {until:%Y-%m-%d})")
    except Exception as error:  # noqa: BLE001 - the edge: one readable line, never a traceback
        fail(f"the simulation failed: {type(error).__name__}: {error}".splitlines()[0])
    if as_json:
        click.echo(json.dumps(timeline.to_json(), indent=2, default=str))
    else:
        click.echo(format_timeline(timeline))
    if timeline.stopped_at is not None and not until_text:
        click.echo(f"-- stopped at {timeline.stopped_at:%Y-%m-%d}, ten years after the first event; "
                   f"pass --until DATE|DURATION to see further", err=True)
    rejected = [(item, receipt) for item, receipt in timeline.receipts if receipt.status == "rejected"]
    if rejected:
        click.echo(f"error: {len(rejected)} event(s) of the scenario were rejected", err=True)
    incident = timeline.state.incident
    if incident:
        click.echo(f"error: the customer is held at step '{incident.step or incident.stage}': "
                   f"{incident.kind} failure: {incident.error.splitlines()[0]}", err=True)
    if rejected or incident:
        sys.exit(1)


def entered_via(records: list[Record], index: int) -> str:
    """What moved the customer into the stage entered at `records[index]`: an event, or `goto`.

    The entry's own `event` is the event the stage starts with; after a goto that is the one
    the previous stage was working with, possibly months old. An event that moved the customer
    is recorded just before the entry, at the same time, with nothing between them but other
    events and failures (of a fact update or a guard).
    """
    entry = records[index]
    name = entry.detail.get("event")
    for record in reversed(records[:index]):
        if record.at != entry.at or record.kind not in ("event", "failed"):
            break
        if record.kind == "event" and record.detail.get("event") == name:
            return str(name)
    return "goto"


def _minute(moment: object) -> str:
    """An ISO time as the timeline prints it: 2026-03-04 09:00."""
    return str(moment)[:16].replace("T", " ")


_KEPT_BY = {"on_or_before": "<=", "at_most": "<=", "at_least": ">=", "equal": "="}


def _kept_by(timeline: Timeline, promise: str | None) -> str:
    """How a kept promise's actual value compared with the expected one, by what it is about."""
    entry = timeline.state.promises.get(promise or "")
    kind = PROMISE_KINDS.get(entry.about if entry else "", PROMISE_KINDS["other"])
    return _KEPT_BY.get(kind.rule, "~")


def format_timeline(timeline: Timeline) -> str:
    """One line per record: time, stage, what happened, and its details."""
    lines = []
    records = timeline.records
    for index, record in enumerate(records):
        detail = record.detail
        what = {
            "message": lambda: f"{detail.get('channel')}: {detail.get('template')}",
            "task": lambda: f"{detail.get('role')}: {detail.get('title')}"
                            f"{' (due ' + _minute(detail['due_at']) + ')' if detail.get('due_at') else ''}",
            "task_reminded": lambda: f"{detail.get('assignee') or detail.get('role')}: due "
                                     f"{str(detail.get('due_at'))[:16].replace('T', ' ')}",
            "event": lambda: detail.get("event", ""),
            "stage_entered": lambda: f"via {entered_via(records, index)}",
            "promise": lambda: f"{detail.get('promise')} = {detail.get('expected')} (by {detail.get('made_by')})",
            "promise_kept": lambda: f"{detail.get('promise')}: {detail.get('actual')} "
                                    f"{_kept_by(timeline, detail.get('promise'))} {detail.get('expected')}",
            "promise_broken": lambda: f"{detail.get('promise')}: {detail.get('actual')} vs {detail.get('expected')}",
            "incident": lambda: f"held: {detail.get('failure')} failure: {str(detail.get('error', '')).splitlines()[0]}",
            "resolved": lambda: f"{detail.get('action')} by {detail.get('by')}",
            # The contact policy's decisions, with the reason (and the rule) that made them.
            "deferred": lambda: f"{detail.get('template')} to {detail.get('local') or detail.get('until')}: "
                                f"{detail.get('reason')}",
            "suppressed": lambda: f"{detail.get('template')}: {detail.get('reason')}"
                                  + (f" (rule {detail['rule']})" if detail.get("rule") else ""),
            "consent": lambda: f"{detail.get('event')}: {detail.get('change')}",
            "schedule": lambda: f"{detail.get('event')} (due {str(detail.get('moment'))[:16].replace('T', ' ')})"
                                + (f": not taken: {detail.get('reason')}" if detail.get("taken") is False else ""),
            "split": lambda: f"branch {detail.get('branch')}" + (" (kept)" if detail.get("kept") else ""),
        }.get(record.kind, lambda: ", ".join(f"{k}={v}" for k, v in detail.items()))()
        step = f" [{record.step}]" if record.step else ""
        lines.append(f"{record.at:%Y-%m-%d %H:%M}  {record.stage:<20} {record.kind:<15} {what}{step}")
    ended = timeline.state.ended
    stopped = f" at {timeline.stopped_at:%Y-%m-%d}" if timeline.stopped_at and not ended else ""
    lines.append(f"-- {'ended: ' + ended if ended else 'now in stage ' + timeline.state.stage + stopped}; "
                 f"promises: " + (", ".join(f"{n}={p.state}" for n, p in timeline.state.promises.items()) or "none"))
    for scheduled, receipt in timeline.receipts:
        if receipt.status == "rejected":
            name = scheduled.event.name if scheduled.event else f"@{scheduled.release}"
            lines.append(f"!! {scheduled.at:%Y-%m-%d %H:%M} {name} rejected: {receipt.reason}")
    return "\n".join(lines)
