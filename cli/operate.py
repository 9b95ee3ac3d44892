"""`lifecycle event`, `status` and `list`: the CLI road to the event contract."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from cli.output import fail, lifecycle_path, load
from engine.events import PayloadError
from engine.state import Event

PLAYBOOKS = click.option(
    "--playbooks", type=click.Path(exists=True, path_type=Path),
    default=lambda: os.environ.get("LIFECYCLE_PLAYBOOKS", "playbooks"), show_default="playbooks",
    help="The lifecycle file or its folder (env LIFECYCLE_PLAYBOOKS).",
)
QUEUE = click.option("--task-queue", default=lambda: os.environ.get("LIFECYCLE_TASK_QUEUE", "lifecycle"),
                     show_default="lifecycle", help="Task queue of the workers (env LIFECYCLE_TASK_QUEUE).")


def _client(playbooks: Path, task_queue: str):
    from workflows.client import LifecycleClient
    from worker import WorkerError, connect

    project = load(lifecycle_path(playbooks))

    async def make() -> LifecycleClient:
        try:
            return LifecycleClient(await connect(), project.lifecycle, task_queue)
        except WorkerError as error:
            fail(str(error))

    return make


def _data(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        source = Path(text[1:]).read_text() if text.startswith("@") else text
        data = json.loads(source)
    except (OSError, json.JSONDecodeError) as error:
        fail(f"--data: {error}")
    if not isinstance(data, dict):
        fail("--data: expected a JSON object")
    return data


@click.command("event")
@click.argument("customer")
@click.argument("event")
@click.option("--data", "data_text", help="The payload: JSON, or @file.json.")
@click.option("--key", help="Idempotency key: the same key is acted on once.")
@click.option("--customer-json", help="Profile fields to set on the customer, as JSON.")
@PLAYBOOKS
@QUEUE
def event_command(customer: str, event: str, data_text: str | None, key: str | None,
                  customer_json: str | None, playbooks: Path, task_queue: str) -> None:
    """Send EVENT for CUSTOMER; a start event creates the lifecycle."""
    from workflows.client import LifecycleNotFound

    profile = _data(customer_json) if customer_json else None
    message = Event(customer_id=customer, name=event, data=_data(data_text), idempotency_key=key,
                    customer=profile)
    make = _client(playbooks, task_queue)

    async def send():
        return await (await make()).send(message)

    try:
        receipt = asyncio.run(send())
    except PayloadError as error:
        fail(f"rejected: {error}")
    except LifecycleNotFound as error:
        fail(str(error))
    if receipt.status == "rejected":
        fail(f"rejected: {receipt.reason}")
    moved = f" -> {receipt.transition}" if receipt.transition else ""
    click.echo(f"{receipt.status} (stage {receipt.stage}{moved})")


@click.command("status")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
@PLAYBOOKS
@QUEUE
def status_command(customer: str, as_json: bool, playbooks: Path, task_queue: str) -> None:
    """Where CUSTOMER is: stage, facts, promise ledger, what it waits for, recent actions."""
    from workflows.client import LifecycleNotFound

    make = _client(playbooks, task_queue)

    async def query():
        return await (await make()).status(customer)

    try:
        status = asyncio.run(query())
    except LifecycleNotFound as error:
        fail(str(error))
    if as_json:
        click.echo(status.model_dump_json(indent=2))
        return
    click.echo(f"customer  {status.customer_id}")
    click.echo(f"stage     {status.stage} since {status.since:%Y-%m-%d %H:%M:%S} (version {status.version})")
    if status.ended:
        click.echo(f"ended     {status.ended}")
    if status.pending:
        waiting = ", ".join(status.pending.events) or status.pending.task or "time"
        until = f" until {status.pending.until:%Y-%m-%d %H:%M:%S}" if status.pending.until else ""
        click.echo(f"waiting   {status.pending.step}: {waiting}{until}")
    click.echo("facts     " + ", ".join(f"{k}={v}" for k, v in status.facts.items()))
    for name, promise in status.promises.items():
        click.echo(f"promise   {name}: {promise['state']} (expected {promise['expected']}"
                   + (f", actual {promise['actual']}" if promise.get("actual") else "") + ")")
    for record in status.recent[-10:]:
        detail = record.detail.get("template") or record.detail.get("title") or record.detail.get("event") or ""
        click.echo(f"  {record.at:%Y-%m-%d %H:%M:%S} {record.kind:<14} {record.step or ''} {detail}")


@click.command("list")
@click.option("--stage", help="Only customers in this stage.")
@click.option("--all", "include_closed", is_flag=True, help="Include ended lifecycles.")
@click.option("--json", "as_json", is_flag=True)
@PLAYBOOKS
@QUEUE
def list_command(stage: str | None, include_closed: bool, as_json: bool, playbooks: Path, task_queue: str) -> None:
    """Who is in which stage (a visibility query)."""
    make = _client(playbooks, task_queue)

    async def listing():
        return await (await make()).list(stage=stage, running_only=not include_closed)

    found = asyncio.run(listing())
    if as_json:
        click.echo(json.dumps([item.__dict__ for item in found], default=str, indent=2))
        return
    for item in found:
        click.echo(f"{item.customer_id:<24} {item.stage:<22} {item.status}")
    click.echo(f"{len(found)} lifecycle(s)")
