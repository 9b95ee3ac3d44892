"""`lifecycle event`, `status` and `list`: the CLI road to the event contract.

They judge like the HTTP API: the same id rules and size budgets (engine/limits.py), the same
`LifecycleClient`, and every failure is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.output import fail, lifecycle_path, load_lifecycle
from engine.errors import suggest
from engine.events import PayloadError, declared_events
from engine.limits import ID_RULE, KEY_RULE, TooLarge, is_id, is_key
from engine.state import Event, EventReceipt

T = TypeVar("T")

PLAYBOOKS = click.option(
    "--playbooks", type=click.Path(exists=True, path_type=Path),
    default=lambda: os.environ.get("LIFECYCLE_PLAYBOOKS", "playbooks"), show_default="playbooks",
    help="The lifecycle file or its folder (env LIFECYCLE_PLAYBOOKS).",
)
QUEUE = click.option("--task-queue", default=lambda: os.environ.get("LIFECYCLE_TASK_QUEUE", "lifecycle"),
                     show_default="lifecycle", help="Task queue of the workers (env LIFECYCLE_TASK_QUEUE).")
ADDRESS = click.option("--address", default=None, metavar="HOST:PORT",
                       help="Temporal frontend to talk to (default: env TEMPORAL_ADDRESS, else localhost:7233; "
                       "TEMPORAL_API_KEY, TEMPORAL_TLS* and TEMPORAL_PROFILE apply as for the temporal CLI).")
NAMESPACE = click.option("--namespace", default=None,
                         help="Temporal namespace (default: env TEMPORAL_NAMESPACE, else default).")

HINT = "is the server running? `lifecycle dev` starts one; point at another with --address or TEMPORAL_ADDRESS"


def temporal_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--playbooks, --task-queue, --address and --namespace."""
    for option in (NAMESPACE, ADDRESS, QUEUE, PLAYBOOKS):
        command = option(command)
    return command


def _client(playbooks: Path, task_queue: str, address: str | None, namespace: str | None):
    from workflows.client import LifecycleClient
    from worker import WorkerError, connect

    lifecycle = load_lifecycle(lifecycle_path(playbooks))
    overrides = {key: value for key, value in (("target_host", address), ("namespace", namespace)) if value}

    async def make() -> LifecycleClient:
        try:
            return LifecycleClient(await connect(**overrides), lifecycle, task_queue)
        except WorkerError as error:
            fail(f"{error}; {HINT}")

    return lifecycle, make


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`, turning every failure into one line on stderr and exit 1."""
    from temporalio.client import RPCTimeoutOrCancelledError
    from temporalio.exceptions import TemporalError
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.client import LifecycleNotFound, TemporalBusy, TemporalRefused

    try:
        return asyncio.run(work())
    except PayloadError as error:
        fail(f"rejected: {error}")
    except LifecycleNotFound as error:
        fail(str(error))
    except TemporalRefused as error:
        fail(f"refused: {error.message} ({error.code})")
    except TemporalBusy as error:
        fail(f"busy: {error}; try again in a second")
    except (asyncio.TimeoutError, RPCTimeoutOrCancelledError) as error:
        message = str(error) or "no answer in time"
        fail(message if "worker" in message else f"{message}; is a worker running on this task queue? (`lifecycle worker`)")
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:  # the namespace: the server answered
            fail(f"Temporal: {error.message}; name the lifecycle's namespace with --namespace or TEMPORAL_NAMESPACE")
        fail(f"Temporal: {error.message}; {HINT}")
    except TemporalError as error:
        fail(f"Temporal: {error}")
    except Exception as error:  # a bug; the one line still says what, never a traceback
        fail(f"unexpected {type(error).__name__}: {error}")


def _data(text: str | None, option: str = "--data") -> dict[str, Any]:
    if not text:
        return {}
    try:
        source = Path(text[1:]).read_text() if text.startswith("@") else text
        data = json.loads(source)
    except OSError as error:
        fail(f"{option}: {error}")
    except json.JSONDecodeError as error:
        fail(f"{option}: not JSON ({error}): give a JSON object, e.g. '{{\"name\": \"value\"}}', or @file.json")
    if not isinstance(data, dict):
        fail(f"{option}: expected a JSON object")
    return data


def _customer_id(customer: str) -> str:
    if not is_id(customer):
        fail(f"customer id '{customer}' is not {ID_RULE}")
    return customer


@click.command("event")
@click.argument("customer")
@click.argument("event")
@click.option("--data", "data_text", help="The payload: JSON, or @file.json.")
@click.option("--key", help="Idempotency key: the same key is acted on once.")
@click.option("--customer-json", help="Profile fields to set on the customer, as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for a worker; after that an event with --key is queued (exit 0).")
@temporal_options
def event_command(customer: str, event: str, data_text: str | None, key: str | None, customer_json: str | None,
                  timeout: float, playbooks: Path, task_queue: str, address: str | None,
                  namespace: str | None) -> None:
    """Send EVENT for CUSTOMER; a start event creates the lifecycle.

    Prints `accepted (stage S)`, `duplicate (stage S)` or `queued (...)`; a rejection is one
    line on stderr and exit 1. Talks to the Temporal at --address or TEMPORAL_ADDRESS."""
    _customer_id(customer)
    if not is_id(event):
        fail(f"event name '{event}' is not {ID_RULE}")
    if key is not None and not is_key(key):
        fail(f"--key '{key}' is not {KEY_RULE}")
    profile = _data(customer_json, "--customer-json") if customer_json else None
    message = Event(customer_id=customer, name=event, data=_data(data_text), idempotency_key=key,
                    customer=profile)
    from workflows.client import check_sizes

    try:
        check_sizes(message)  # as the API does: name the field and the limit
    except TooLarge as error:
        fail(f"rejected: {error} (payload_too_large, limit {error.limit} bytes)")
    lifecycle, make = _client(playbooks, task_queue, address, namespace)
    if event not in declared_events(lifecycle):  # checked against a file: say which, and how to pick another
        fail(f"rejected: unknown event '{event}'{suggest(event, declared_events(lifecycle))} in "
             f"{lifecycle_path(playbooks)} (its events: "
             f"{', '.join(declared_events(lifecycle))}); another lifecycle: --playbooks or LIFECYCLE_PLAYBOOKS")

    async def send():
        return await (await make()).send(message, wait=timeout)

    receipt = _run(send)
    if receipt.status == "rejected":
        fail(f"rejected: {receipt.reason}")
    if receipt.status == "queued":
        click.echo(f"queued (no worker took it within {timeout:g}s; it is stored and applied when a worker "
                   f"polls task queue '{task_queue}'; sending it again with --key {key} is safe)")
        return
    moved = f" -> {receipt.transition}" if receipt.transition else ""
    click.echo(f"{receipt.status} (stage {receipt.stage}{moved})")


@click.command("status")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="Seconds to wait for the lifecycle (a worker) to answer; a worker that died holds "
                   "the lifecycles it had in memory for 10 s before another answers for them.")
@temporal_options
def status_command(customer: str, as_json: bool, timeout: float, playbooks: Path, task_queue: str,
                   address: str | None, namespace: str | None) -> None:
    """Where CUSTOMER is: stage, facts, promise ledger, what it waits for, recent actions.

    Talks to the Temporal at --address or TEMPORAL_ADDRESS."""
    _customer_id(customer)
    _, make = _client(playbooks, task_queue, address, namespace)

    async def query():
        lifecycles = await make()
        status = await lifecycles.status(customer, timeout=timeout)
        return status, ([] if as_json else await _retrying(lifecycles, customer))

    status, retrying = _run(query)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
        return
    click.echo(f"customer  {status.customer_id}")
    click.echo(f"stage     {status.stage} since {status.since:%Y-%m-%d %H:%M:%S} (version {status.version})")
    if status.ended:
        click.echo(f"ended     {status.ended}")
    if status.incident:
        incident = status.incident
        click.echo(f"HELD      {incident.kind} failure at {incident.step or 'stage ' + incident.stage} "
                   f"since {incident.since:%Y-%m-%d %H:%M:%S}: {incident.error.splitlines()[0]}")
        click.echo(f"          fix the playbook, or: lifecycle retry {status.customer_id} | "
                   f"lifecycle skip {status.customer_id}"
                   + (f" (runs none of the stage's playbook: the customer stays in {incident.stage} until an "
                      f"event moves them)" if incident.kind == "load" else ""))
    if status.pending:
        waiting = ", ".join(status.pending.events) or status.pending.task or \
            (f"deferred ({status.pending.deferred})" if status.pending.deferred else "time")
        until = f" until {status.pending.until:%Y-%m-%d %H:%M:%S}" if status.pending.until else ""
        click.echo(f"waiting   {status.pending.step}: {waiting}{until}")
    for line in retrying:
        click.echo(f"RETRYING  {line}")
    if status.next_schedule:
        click.echo(f"schedule  {status.next_schedule.event} at {status.next_schedule.at:%Y-%m-%d %H:%M:%S}")
    click.echo("facts     " + ", ".join(f"{k}={v}" for k, v in status.facts.items()))
    for task in status.tasks:  # --- task entities (engine/tasks.py): the open ones
        if task.is_open:
            due = f", due {task.due_at:%Y-%m-%d %H:%M:%S}" if task.due_at else ""
            due += f", reminder {task.reminder_at:%Y-%m-%d %H:%M:%S}" if task.reminder_at else ""
            who = f" ({task.assignee})" if task.assignee else ""
            click.echo(f"task      {task.step}: {task.role}{who}{due}, {task.status} [{task.id}]")
    for name, promise in status.promises.items():
        click.echo(f"promise   {name}: {promise['state']} (expected {promise['expected']}"
                   + (f", actual {promise['actual']}" if promise.get("actual") else "") + ")")
    for record in status.recent[-10:]:
        detail = record.detail.get("template") or record.detail.get("title") or record.detail.get("event") or ""
        if record.kind in ("deferred", "suppressed") and record.detail.get("reason"):  # the policy's why
            detail += f": {record.detail.get('local') or ''} {record.detail['reason']}".replace(":  ", ": ")
        if record.kind == "failed" and record.detail.get("error"):  # e.g. an event dropped unread, and why
            detail = f"{detail}: {str(record.detail['error']).splitlines()[0]}" if detail else str(record.detail["error"])
        click.echo(f"  {record.at:%Y-%m-%d %H:%M:%S} {record.kind:<14} {record.step or ''} {detail}")


async def _retrying(lifecycles: Any, customer: str) -> list[str]:
    """The activities Temporal keeps retrying for the customer (a relay that is down, a full
    disk under the outbox): the lifecycle waits for them without knowing, so its status query
    cannot say; the workflow's description can. One line each, with the last error."""
    from datetime import timedelta

    from temporalio.service import RPCError

    from engine.lifecycle import lifecycle_id

    try:
        description = await lifecycles.client.get_workflow_handle(lifecycle_id(customer)).describe(
            rpc_timeout=timedelta(seconds=5))
    except RPCError:
        return []
    lines = []
    for pending in description.raw_description.pending_activities:
        if pending.attempt < 2:
            continue
        failure = pending.last_failure
        while failure.HasField("cause") and failure.message.startswith("Failure exceeds size limit"):
            failure = failure.cause  # Temporal cut the stack traces, the cause says what failed
        kind = failure.application_failure_info.type if failure.HasField("application_failure_info") else ""
        lines.append(f"{pending.activity_type.name}: attempt {pending.attempt}, "
                     f"last error {kind + ': ' if kind else ''}{failure.message or '(none)'}")
    return lines


@click.command("list")
@click.option("--stage", help="Only customers in this stage.")
@click.option("--incidents", "held", is_flag=True, help="Only customers held on an incident.")
@click.option("--all", "include_closed", is_flag=True, help="Include ended lifecycles.")
@click.option("--json", "as_json", is_flag=True)
@temporal_options
def list_command(stage: str | None, held: bool, include_closed: bool, as_json: bool, playbooks: Path,
                 task_queue: str, address: str | None, namespace: str | None) -> None:
    """Who is in which stage (a visibility query on the Temporal at --address or TEMPORAL_ADDRESS)."""
    lifecycle, make = _client(playbooks, task_queue, address, namespace)
    if stage is not None:
        stages = lifecycle.stages
        if stage not in stages:
            fail(f"--stage: unknown stage '{stage}' (stages: {', '.join(stages)})")

    async def listing():
        return await (await make()).list(stage=stage, running_only=not include_closed, held=held)

    found = _run(listing)
    if as_json:
        click.echo(json.dumps([item.__dict__ for item in found], default=str, indent=2))
        return
    for item in found:
        held_on = f"  held: {item.incident}" if item.incident else ""
        click.echo(f"{item.customer_id:<24} {item.stage:<22} {item.status}{held_on}")
    click.echo(f"{len(found)} lifecycle(s)")


def _release_command(action: str, summary: str) -> click.Command:
    @click.command(action, help=f"{summary}\n\nTalks to the Temporal at --address or TEMPORAL_ADDRESS.")
    @click.argument("customer")
    @click.option("--by", default=lambda: os.environ.get("USER", ""), show_default="$USER",
                  help="Who asks (recorded on the customer's timeline).")
    @temporal_options
    def command(customer: str, by: str, playbooks: Path, task_queue: str, address: str | None,
                namespace: str | None) -> None:
        _customer_id(customer)
        _, make = _client(playbooks, task_queue, address, namespace)

        async def release():
            return await (await make()).release_incident(customer, action, by)

        answer = _run(release)
        if isinstance(answer, EventReceipt):
            fail(f"{action}: {answer.reason}")
        click.echo(f"{action} ({answer.kind} failure at {answer.step or 'stage ' + answer.stage}: "
                   f"{answer.error.splitlines()[0]})")

    return command


retry_command = _release_command(
    "retry", "Run again the step CUSTOMER is held on (after the data or the playbook was fixed).")
skip_command = _release_command("skip", "Go on after the step CUSTOMER is held on, without running it.")
