"""`lifecycle tasks` (the inbox across customers) and `lifecycle task done|reassign|snooze|cancel`.

The inbox is a visibility query on the task search attributes (which lifecycles have open tasks
for a role, an assignee, or past due), then each lifecycle's status for the details; the
commands are the workflow's `task` update, through the same `LifecycleClient` as the HTTP API.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from cli.operate import _client, _customer_id, _data, _run, temporal_options
from cli.output import fail, lifecycle_path
from engine.calendars import business_days, business_hours
from engine.durations import parse_duration
from engine.limits import ID_RULE, KEY_RULE, is_id, is_key
from engine.state import EventReceipt, TaskCommand, TaskEntity


@click.command("tasks")
@click.option("--role", help="Only tasks for this role.")
@click.option("--assignee", help="Only tasks assigned to this person.")
@click.option("--overdue", is_flag=True, help="Only tasks past their due time.")
@click.option("--escalated", is_flag=True, help="Only tasks whose playbook escalated them.")
@click.option("--json", "as_json", is_flag=True, help="The tasks as JSON (one array).")
@temporal_options
def tasks_command(role: str | None, assignee: str | None, overdue: bool, escalated: bool, as_json: bool,
                  playbooks: Path, task_queue: str, address: str | None, namespace: str | None) -> None:
    """Open tasks across all customers, soonest due first (a visibility query on the Temporal at
    --address or TEMPORAL_ADDRESS, then each lifecycle's status)."""
    from workflows.client import TaskFilter

    lifecycle, make = _client(playbooks, task_queue, address, namespace)
    if role is not None and role not in lifecycle.roles:
        fail(f"--role: unknown role '{role}' in {lifecycle_path(playbooks)} (its roles: {', '.join(lifecycle.roles)}); "
             f"another lifecycle: --playbooks or LIFECYCLE_PLAYBOOKS")
    if assignee is not None and not is_id(assignee):
        fail(f"--assignee '{assignee}' is not {ID_RULE}")
    if overdue and escalated:
        fail("--overdue and --escalated: give one")
    which = TaskFilter(role=role, assignee=assignee,
                       status="overdue" if overdue else "escalated" if escalated else "open")

    async def listing():
        return await (await make()).tasks(which)

    page = _run(listing)
    found = page.tasks
    if page.unavailable:  # their tasks are missing: say so, without failing the whole inbox
        shown = ", ".join(page.unavailable[:10]) + (" …" if len(page.unavailable) > 10 else "")
        click.echo(f"warning: {len(page.unavailable)} lifecycle(s) did not answer, their tasks are not listed: "
                   f"{shown}", err=True)
    if as_json:
        click.echo(json.dumps([task.model_dump(mode="json") for task in found], indent=2))
        return
    for task in found:
        due = f"{task.due_at:%Y-%m-%d %H:%M}" if task.due_at else "-"
        who = task.assignee or "-"
        reminder = f"  (reminder {task.reminder_at:%Y-%m-%d %H:%M})" if task.reminder_at else ""
        click.echo(f"{task.status:<9} {due:<16} {task.role:<22} {who:<12} {task.customer_id:<16} "
                   f"{task.title}{reminder}  [{task.id}]")
    click.echo(f"{len(found)} task(s)")


@click.group("task")
def task_group() -> None:
    """Complete, reassign, snooze or cancel one task.

    TASK is a task id (`lifecycle tasks` shows them: lifecycle/<customer>/<stage>/<entry>/<step>),
    or a step id with --customer."""


def _target(task: str, customer: str | None) -> str:
    from workflows.client import customer_of_task

    owner = customer_of_task(task)
    if customer is not None:
        _customer_id(customer)
        if owner is not None and owner != customer:
            fail(f"task '{task}' belongs to customer '{owner}', not '{customer}'")
        return customer
    if owner is None:
        fail(f"'{task}' is not a task id (lifecycle/<customer>/<stage>/<entry>/<step>); "
             "give a step id with --customer")
    return owner


def _until(text: str) -> datetime:
    """An ISO 8601 time with a zone, or a duration from now (`2h`, `1d`)."""
    try:
        return datetime.now(timezone.utc) + parse_duration(text)
    except ValueError:
        pass
    if business_days(text) is not None or business_hours(text) is not None:
        fail(f"--until: '{text}': a snooze counts elapsed time; give a duration (2h, 1d) or the time "
             f"to be due, e.g. 2026-03-09T11:00:00+01:00")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--until: '{text}' is neither a duration (2h, 1d) nor an ISO 8601 time")
    if moment.tzinfo is None:
        fail(f"--until: '{text}' needs a time zone, e.g. {text}+00:00")
    return moment


def _send(order: dict[str, Any], customer: str | None, playbooks: Path, task_queue: str, address: str | None,
          namespace: str | None) -> None:
    key = order.get("idempotency_key")
    if key is not None and not is_key(key):
        fail(f"--key '{key}' is not {KEY_RULE}")
    owner = _target(order["task"], customer)
    _, make = _client(playbooks, task_queue, address, namespace)

    async def send() -> TaskEntity | EventReceipt:
        return await (await make()).task_command(owner, TaskCommand(**order))

    answer = _run(send)
    if isinstance(answer, EventReceipt):
        where = f" ({answer.field})" if answer.field else ""
        fail(f"{order['action']}: {answer.reason}{where} [{answer.code}]")
    due = f", due {answer.due_at:%Y-%m-%d %H:%M %Z}" if answer.due_at else ""
    who = f", assigned to {answer.assignee}" if answer.assignee else ""
    outcome = f", outcome {answer.outcome}" if answer.outcome else ""
    click.echo(f"{answer.status}: {answer.title} [{answer.id}]{outcome}{who}{due}")


CUSTOMER = click.option("--customer", help="The customer, when TASK is a step id.")
BY = click.option("--by", default=lambda: os.environ.get("USER", ""), show_default="$USER",
                  help="Who does it (kept on the task and the timeline).")
KEY = click.option("--key", help="Idempotency key: the same key is acted on once.")


@task_group.command("done")
@click.argument("task")
@click.option("--outcome", help="One of the task's outcomes (free text when it declares none).")
@click.option("--fields", "fields_text", help="The task's fields as JSON, or @file.json.")
@CUSTOMER
@BY
@KEY
@temporal_options
def done_command(task: str, outcome: str | None, fields_text: str | None, customer: str | None, by: str,
                 key: str | None, **temporal: Any) -> None:
    """Complete TASK, with its outcome and fields; a playbook waiting for it runs its on_done."""
    order = {"task": task, "action": "complete", "outcome": outcome, "fields": _data(fields_text, "--fields"),
             "by": by, "idempotency_key": key}
    _send(order, customer, **temporal)


@task_group.command("reassign")
@click.argument("task")
@click.argument("assignee")
@click.option("--until", "until_text", help="A new due time: ISO 8601 with a zone, or a duration from now (2h).")
@CUSTOMER
@BY
@KEY
@temporal_options
def reassign_command(task: str, assignee: str, until_text: str | None, customer: str | None, by: str,
                     key: str | None, **temporal: Any) -> None:
    """Give TASK to ASSIGNEE (the due time stays unless --until moves it)."""
    order = {"task": task, "action": "reassign", "assignee": assignee, "by": by, "idempotency_key": key,
             "until": _until(until_text) if until_text else None}
    _send(order, customer, **temporal)


@task_group.command("snooze")
@click.argument("task")
@click.argument("until_text", metavar="UNTIL")
@CUSTOMER
@BY
@KEY
@temporal_options
def snooze_command(task: str, until_text: str, customer: str | None, by: str, key: str | None,
                   **temporal: Any) -> None:
    """Move TASK's due time to UNTIL (ISO 8601 with a zone, or a duration from now: 2h, 1d, elapsed
    time, not business hours); a playbook waiting for it escalates at the new time."""
    order = {"task": task, "action": "snooze", "until": _until(until_text), "by": by, "idempotency_key": key}
    _send(order, customer, **temporal)


@task_group.command("cancel")
@click.argument("task")
@click.option("--reason", default="", help="Why (kept on the task).")
@CUSTOMER
@BY
@KEY
@temporal_options
def cancel_command(task: str, reason: str, customer: str | None, by: str, key: str | None,
                   **temporal: Any) -> None:
    """Cancel TASK; a playbook waiting for it goes on after it (neither on_done nor on_overdue)."""
    order = {"task": task, "action": "cancel", "reason": reason, "by": by, "idempotency_key": key}
    _send(order, customer, **temporal)
