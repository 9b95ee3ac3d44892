"""The engine's own records, made without validation in the step loop, are the models validation makes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.lifecycle import LifecycleMachine
from engine.loader import load_project
from engine.state import Action, Event, LifecycleState, Pending, Record, Resume, TaskEntity, built, made
from engine.types import to_plain

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
EVENT = Event(customer_id="c1", name="order.placed", data={"order_id": "A-1"}, occurred_at=NOW)


@pytest.mark.parametrize(("model", "values"), [
    (Record, {"at": NOW, "stage": "sale", "kind": "event", "step": None,
              "detail": to_plain({"event": "order.placed", "data": {"due": NOW}})}),
    (Resume, {"path": "3.then.0", "mode": "pause", "until": NOW, "event": EVENT}),
    (Event, {"customer_id": "c1", "name": "x", "data": {"a": [1]}, "idempotency_key": None, "occurred_at": NOW,
             "customer": None}),
])
def test_made_is_the_validated_model(model, values) -> None:
    fast, checked = made(model, dict(values)), model(**values)
    assert fast == checked and repr(fast) == repr(checked)
    assert fast.model_dump(mode="json") == checked.model_dump(mode="json")
    assert fast.model_fields_set == checked.model_fields_set
    assert model.model_validate_json(fast.model_dump_json()) == checked  # what a workflow stores reads back


def test_made_refuses_values_that_are_not_every_field() -> None:
    with pytest.raises(TypeError, match="Resume has fields"):
        made(Resume, {"path": "0", "mode": "pause"})


def test_a_record_of_an_unknown_kind_is_a_bug_not_a_line() -> None:
    project = load_project(Path(__file__).parent.parent / "playbooks" / "lifecycle.yaml")
    machine = LifecycleMachine.new(project.lifecycle, "c1", NOW)
    machine.record("event", at=NOW, event="order.placed")
    with pytest.raises(ValueError, match="no record kind 'evnt'"):
        machine.record("evnt", at=NOW)
    assert [record.kind for record in machine.state.timeline] == ["event"]
    assert LifecycleState.model_validate_json(machine.state.model_dump_json()) == machine.state


@pytest.mark.parametrize(("model", "values"), [
    (Action, {"id": "lifecycle/c1/sale/1/summary", "kind": "message", "customer_id": "c1", "stage": "sale",
              "step": "summary", "channel": "email", "to": "ada@example.com", "template": "order_summary",
              "category": "transactional", "subject": "Your order", "body": "Dear Ada"}),
    (Action, {"id": "t1", "kind": "task", "customer_id": "c1", "stage": "sale", "step": "brief",
              "role": "account_manager", "title": "Brief", "guideline": "Read it", "due_at": NOW, "task_id": "t1",
              "outcomes": ["done"], "fields": {"type": "object"}}),
    (TaskEntity, {"id": "t1", "customer_id": "c1", "stage": "sale", "stage_entry": 2, "step": "brief", "path": "3",
                  "role": "account_manager", "title": "Brief", "guideline": "", "created_at": NOW, "due_at": None,
                  "outcomes": [], "field_specs": {"x": {"type": "bool"}}, "waited": True}),
    (Pending, {"step": "wait@2", "events": ["survey.answered"], "until": NOW}),
    (Pending, {"step": "call", "task": "call", "until": None}),
])
def test_built_is_the_validated_model_with_its_defaults(model, values) -> None:
    fast, checked = built(model, **values), model(**values)
    assert fast == checked and repr(fast) == repr(checked)
    assert fast.model_dump(mode="json") == checked.model_dump(mode="json")
    assert fast.model_fields_set == checked.model_fields_set
    assert model.model_validate_json(fast.model_dump_json()) == checked


def test_built_gives_each_model_its_own_default_lists() -> None:
    first, second = built(Pending, step="a"), built(Pending, step="b")
    first.events.append("x")
    assert second.events == [] and Pending(step="c").events == []


@pytest.mark.parametrize("values", [{"until": NOW}, {"step": "a", "stepp": "b"}])
def test_built_refuses_a_missing_required_field_or_an_unknown_one(values) -> None:
    with pytest.raises(TypeError, match="Pending has fields"):
        built(Pending, **values)
