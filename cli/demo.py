"""`lifecycle demo`: three customers through the bundled playbooks, a day every two seconds.

It starts its own in-memory Temporal server and worker, plays the other systems (orders,
surveys, referrals) for three customers, and prints each lifecycle's timeline as it unfolds,
so a newcomer sees every stage in a minute or two.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load
from engine.state import Event

DAY_SECONDS = 2.0  # one simulated day of the demo takes this long
PROMISED_DAYS = 5  # delivery is promised this many days after the order


@dataclass
class Character:
    """A demo customer, and how the other systems treat them."""

    customer_id: str
    story: str
    delivery_delay_days: int  # after the promised date; 0 is on time
    score: int | None  # survey answer, None when they never answer
    refers: bool
    sent: set[str] = field(default_factory=set)
    printed: set[tuple] = field(default_factory=set)


CAST = [
    Character("demo-ada", "on time, a promoter who refers a friend", 0, 10, True),
    Character("demo-bo", "delivered late, unhappy: recovery and a call-back", 3, 5, False),
    Character("demo-cy", "on time, never answers the survey", 0, None, False),
]


@click.command("demo")
@click.option("--playbooks", type=click.Path(exists=True, path_type=Path), default="playbooks",
              show_default=True, help="The lifecycle file or its folder.")
@click.option("--state-dir", type=click.Path(path_type=Path), default=".lifecycle-demo", show_default=True,
              help="Where the demo's outbox goes.")
@click.option("--seconds", type=float, default=150, show_default=True, help="Stop after this long.")
def demo_command(playbooks: Path, state_dir: Path, seconds: float) -> None:
    """Drive three customers through every stage, a day every two seconds."""
    lifecycle_file = lifecycle_path(playbooks)
    project = load(lifecycle_file)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_demo(project, lifecycle_file, state_dir, seconds))
    except KeyboardInterrupt:
        pass


async def _demo(project, lifecycle_file: Path, state_dir: Path, seconds: float) -> None:
    from activities.config import LifecycleSettings
    from devserver import DevServer, DevServerError
    from workflows.client import LifecycleClient
    from worker import run_worker, worker_activities

    settings = LifecycleSettings(state_dir=state_dir, task_queue="lifecycle-demo")
    try:
        server = await DevServer().start_async()
    except DevServerError as error:
        fail(str(error))
    stop = asyncio.Event()
    try:
        client = await server.connect()
        click.echo(f"Temporal web UI: {server.ui_url}   outbox: {settings.outbox_path}")
        click.echo(f"One day = {DAY_SECONDS:g}s. Customers: " +
                   "; ".join(f"{c.customer_id} ({c.story})" for c in CAST))
        worker = asyncio.create_task(run_worker(
            client, settings.task_queue, _workflows(), worker_activities(settings, lifecycle_file), stop=stop))
        lifecycles = LifecycleClient(client, project.lifecycle, settings.task_queue,
                                     time_scale=86400 / DAY_SECONDS)
        await _play(lifecycles, seconds)
        stop.set()
        await worker
    finally:
        await server.stop_async()


def _workflows():
    from worker import customer_workflows

    return customer_workflows()


def _date_in(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


async def _play(lifecycles, seconds: float) -> None:
    for character in CAST:
        await lifecycles.send(Event(
            customer_id=character.customer_id, name="order.placed",
            data={"order_id": f"A-{character.customer_id[5:]}", "promised_delivery": _date_in(PROMISED_DAYS),
                  "price": 1200, "scope": "Three-seat sofa, delivered and assembled", "installation": True},
            customer={"name": character.customer_id[5:].title(), "email": f"{character.customer_id}@example.com",
                      "preferred_channel": "email", "consent": {"email": True, "sms": False}},
        ))
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        days = (time.monotonic() - started) / DAY_SECONDS
        finished = 0
        for character in CAST:
            status = await lifecycles.status(character.customer_id)
            for record in status.recent:
                mark = (record.at, record.kind, record.step)
                if mark not in character.printed:
                    character.printed.add(mark)
                    _print(character, record)
            await _react(lifecycles, character, status, days)
            finished += status.ended is not None or "referral" in character.sent
        if finished == len(CAST):
            break
        await asyncio.sleep(0.5)
    click.echo("demo finished. `make run` starts the same engine for real, persisted in .lifecycle/.")


def _print(character: Character, record) -> None:
    shown = {"stage_entered": "entered stage", "message": "message", "task": "task for",
             "promise": "promise made", "promise_kept": "promise kept", "promise_broken": "PROMISE BROKEN",
             "timeout": "no answer", "ended": "lifecycle ended", "suppressed": "not sent"}
    if record.kind not in shown:
        return
    detail = record.detail
    # A task past its due time is overdue; a wait_for that timed out got no answer.
    label = "overdue" if record.kind == "timeout" and detail.get("reason") == "task overdue" else shown[record.kind]
    what = {
        "stage_entered": record.stage,
        "message": f"{detail.get('channel')}: {detail.get('template')}",
        "task": f"{detail.get('role')}: {detail.get('title')}",
        "promise": f"{detail.get('promise')} = {detail.get('expected')}",
        "promise_kept": detail.get("promise"), "promise_broken": detail.get("promise"),
        "timeout": record.step, "ended": detail.get("outcome"), "suppressed": detail.get("template"),
    }[record.kind]
    click.echo(f"{record.at:%Y-%m-%d} {character.customer_id:<9} {label:<16} {what}")


async def _react(lifecycles, character: Character, status, days: float) -> None:
    """Play the other systems: deliver, answer the survey, make a referral, when it is time."""
    waiting = set(status.pending.events) if status.pending else set()
    moves = []
    if "delivered" not in character.sent and days >= PROMISED_DAYS + character.delivery_delay_days:
        delivered = _date_in(PROMISED_DAYS + character.delivery_delay_days)
        moves.append(("delivered", "order.delivered", {"delivered_at": delivered, "installed": True}))
    if "survey.answered" in waiting and character.score is not None and "survey" not in character.sent:
        moves.append(("survey", "survey.answered", {"score": character.score}))
    if "referral.made" in waiting and character.refers and "referral" not in character.sent:
        moves.append(("referral", "referral.made", {"referred_name": "Dee"}))
    for tag, name, data in moves:
        character.sent.add(tag)
        receipt = await lifecycles.send(Event(customer_id=character.customer_id, name=name, data=data))
        click.echo(f"{'':10} {character.customer_id:<9} << {name} {data}: {receipt.status}")
