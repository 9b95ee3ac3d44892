"""`lifecycle simulate`: preview a customer's whole lifecycle on a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from cli.output import fail, lifecycle_path, load
from engine.scenario import ScenarioError, parse_customer, parse_events
from engine.simulator import Timeline, simulate
from engine.state import Record


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"{path}: {error}".splitlines()[0])


@click.command("simulate")
@click.argument("lifecycle", type=click.Path(exists=True, path_type=Path))
@click.option("--customer", "customer_file", type=click.Path(exists=True, path_type=Path),
              help="YAML file with the customer profile.")
@click.option("--events", "events_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="YAML file with the events and when they arrive.")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
def simulate_command(lifecycle: Path, customer_file: Path | None, events_file: Path, as_json: bool) -> None:
    """Run LIFECYCLE for one customer over the events file, months in milliseconds."""
    project = load(lifecycle_path(lifecycle))
    try:
        customer = parse_customer(_read_yaml(customer_file) if customer_file else {}, str(customer_file))
        events = parse_events(_read_yaml(events_file), customer["id"], str(events_file))
        timeline = simulate(project, customer, events)
    except (ScenarioError, ValueError) as error:
        fail(str(error))
    if as_json:
        click.echo(json.dumps(timeline.to_json(), indent=2, default=str))
    else:
        click.echo(format_timeline(timeline))


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


def format_timeline(timeline: Timeline) -> str:
    """One line per record: time, stage, what happened, and its details."""
    lines = []
    records = timeline.records
    for index, record in enumerate(records):
        detail = record.detail
        what = {
            "message": lambda: f"{detail.get('channel')}: {detail.get('template')}",
            "task": lambda: f"{detail.get('role')}: {detail.get('title')}",
            "event": lambda: detail.get("event", ""),
            "stage_entered": lambda: f"via {entered_via(records, index)}",
            "promise": lambda: f"{detail.get('promise')} = {detail.get('expected')} (by {detail.get('made_by')})",
            "promise_kept": lambda: f"{detail.get('promise')}: {detail.get('actual')} <= {detail.get('expected')}",
            "promise_broken": lambda: f"{detail.get('promise')}: {detail.get('actual')} vs {detail.get('expected')}",
        }.get(record.kind, lambda: ", ".join(f"{k}={v}" for k, v in detail.items()))()
        step = f" [{record.step}]" if record.step else ""
        lines.append(f"{record.at:%Y-%m-%d %H:%M}  {record.stage:<20} {record.kind:<15} {what}{step}")
    ended = timeline.state.ended
    lines.append(f"-- {'ended: ' + ended if ended else 'now in stage ' + timeline.state.stage}; "
                 f"promises: " + (", ".join(f"{n}={p.state}" for n, p in timeline.state.promises.items()) or "none"))
    for scheduled, receipt in timeline.receipts:
        if receipt.status == "rejected":
            lines.append(f"!! {scheduled.at:%Y-%m-%d %H:%M} {scheduled.event.name} rejected: {receipt.reason}")
    return "\n".join(lines)
