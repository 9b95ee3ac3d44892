"""Reminders before a task is due: when they fall, and the hand-off that tells the role.

A task step that the stage waits on (`on_done` / `on_overdue`) may give `remind: [1d, 4h]`:
spans before `due`. Its wait loop (engine/steps/task.py) sleeps until the next reminder
moment (due minus a span) instead of the due time, acts the reminder, and sleeps again.

The moments follow the task's *current* due time, so a snooze or a reassignment with a new
due time moves them. A moment already past when the wait is armed gets no reminder (a task
created or snoozed late is not reminded after the fact), nor does a task done or cancelled
before it. The armed moment is kept on the task entity (`reminder_at`), so a new run
(continue-as-new) acts a reminder whose timer fired just before it, and never one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.state import Action, TaskEntity


def moments(due_at: datetime, spans: list[timedelta]) -> list[datetime]:
    """The reminder moments of a task due at `due_at`, earliest first."""
    return sorted({due_at - span for span in spans})


def arm(entity: TaskEntity, spans: list[timedelta], now: datetime) -> datetime | None:
    """The next reminder moment after `now` for the task's current due time, kept on the
    entity as `reminder_at` (None: no reminder is left before it is due)."""
    upcoming = [moment for moment in moments(entity.due_at, spans) if moment > now] if entity.due_at else []
    entity.reminder_at = upcoming[0] if upcoming else None
    return entity.reminder_at


def come(entity: TaskEntity, spans: list[timedelta], now: datetime) -> datetime | None:
    """The armed reminder whose moment has come (and which is still one of the current due
    time's moments, and before it): it is to be acted now. Disarms it."""
    moment = entity.reminder_at
    if moment is None or moment > now or entity.due_at is None:
        return None
    entity.reminder_at = None
    if moment not in moments(entity.due_at, spans) or now >= entity.due_at or not entity.is_open:
        return None
    return moment


def reminder_action(entity: TaskEntity, moment: datetime) -> Action:
    """The `reminder` hand-off of the task (outbox or task webhook, like the task itself): who
    it is for (role, assignee), which task (`task_id`, to call back `:complete`) and when it is
    due. Its id is the task's plus the moment, so a retry is the same reminder."""
    due = entity.due_at
    assert due is not None
    return Action(
        id=f"{entity.id}/reminder@{moment.isoformat()}", kind="reminder", customer_id=entity.customer_id,
        stage=entity.stage, step=entity.step, role=entity.role, assignee=entity.assignee,
        title=f"Reminder: {entity.title} (due {due.isoformat()})", guideline=entity.guideline,
        due_at=due, task_id=entity.id,
    )
