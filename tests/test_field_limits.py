"""Field specs with `min`, `max` and `max_length`: load checks, events that break them, JSON Schemas."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from engine.errors import PlaybookLoadError
from engine.events import PayloadError, check_customer, check_event, declared_events, payload_json_schema
from engine.lifecycle import LifecycleMachine
from engine.loader import load_project
from engine.schema import lifecycle_schema
from engine.state import Event

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "valid"
BUNDLED = ROOT / "playbooks" / "lifecycle.yaml"


@pytest.fixture(scope="module")
def bundled():
    return load_project(BUNDLED).lifecycle


@pytest.fixture
def lifecycle_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the valid fixture; errors come out relative, as p/lifecycle.yaml:L:C."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(VALID, tmp_path / "p")
    return Path("p/lifecycle.yaml")


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def load_errors(path: Path) -> list[str]:
    with pytest.raises(PlaybookLoadError) as info:
        load_project(path)
    return [str(error) for error in info.value.errors]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# ---------------------------------------------------------------- load checks


def test_min_on_a_string_field_is_a_located_load_error(lifecycle_file):
    replace(lifecycle_file, "      order_id: string!\n",
            "      order_id: {type: string, required: true, min: 3}\n")
    errors = load_errors(lifecycle_file)
    assert len(errors) == 1
    assert errors[0].startswith(f"p/lifecycle.yaml:{line_of(lifecycle_file, 'min: 3')}:")
    assert "'min' applies to int and number fields, not to a string field" in errors[0]


def test_min_greater_than_max_is_a_located_load_error(lifecycle_file):
    replace(lifecycle_file, "      score: int!\n", "      score:\n        type: int\n        min: 10\n        max: 0\n")
    errors = load_errors(lifecycle_file)
    assert len(errors) == 1
    assert errors[0].startswith(f"p/lifecycle.yaml:{line_of(lifecycle_file, 'max: 0')}:")
    assert "'min' (10) is greater than 'max' (0)" in errors[0]


def test_max_length_on_a_number_and_a_negative_max_length_are_load_errors(lifecycle_file):
    replace(lifecycle_file, "      price: number\n", "      price: {type: number, max_length: 5}\n")
    replace(lifecycle_file, "      ticket_id: string!\n", "      ticket_id: {type: string, max_length: -1}\n")
    errors = load_errors(lifecycle_file)
    assert len(errors) == 2
    assert any("'max_length' applies to string fields, not to a number field" in e for e in errors)
    assert any(f":{line_of(lifecycle_file, 'max_length: -1')}:" in e for e in errors)


def test_a_limit_on_a_fact_is_a_load_error(lifecycle_file):
    replace(lifecycle_file, "  last_satisfaction:\n    type: int\n",
            "  last_satisfaction:\n    type: int\n    max: 10\n")
    errors = load_errors(lifecycle_file)
    assert len(errors) == 1
    assert "'max' (for event payloads and customer fields) cannot be used in fact 'last_satisfaction'" in errors[0]
    assert errors[0].startswith("p/lifecycle.yaml:")


def test_limits_that_fit_load(lifecycle_file):
    replace(lifecycle_file, "      score: int!\n", "      score: {type: int, required: true, min: 0, max: 10}\n")
    replace(lifecycle_file, "      order_id: string!\n", "      order_id: {type: string, required: true, max_length: 20}\n")
    spec = load_project(lifecycle_file).lifecycle.events["survey.answered"].payload["score"]
    assert (spec.min, spec.max) == (0, 10)


# ---------------------------------------------------------------- events that break them


@pytest.mark.parametrize("score", [-1, 11, 100])
def test_a_survey_score_outside_0_to_10_is_rejected_naming_the_field(bundled, score):
    with pytest.raises(PayloadError) as info:
        check_event(bundled, "survey.answered", {"score": score})
    assert info.value.field == "score"
    assert str(info.value) == (f"field 'score' must be at least 0, got {score}" if score < 0
                               else f"field 'score' must be at most 10, got {score}")


@pytest.mark.parametrize("score", [0, 6, 10])
def test_the_survey_score_bounds_are_inclusive(bundled, score):
    assert check_event(bundled, "survey.answered", {"score": score}) == {"score": score}


def test_a_machine_rejects_an_out_of_range_score_before_it_changes_anything(bundled):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    machine = LifecycleMachine.new(bundled, "c-1", now)
    order = {"order_id": "A-1", "promised_delivery": "2026-03-10", "price": 100}
    assert machine.start(Event(customer_id="c-1", name="order.placed", data=order), now).status == "accepted"
    receipt = machine.receive(Event(customer_id="c-1", name="survey.answered", data={"score": 11}), now)
    assert (receipt.status, receipt.code) == ("rejected", "invalid_payload")
    assert "'score' must be at most 10" in receipt.reason
    assert machine.state.facts["last_satisfaction"] is None


def test_max_length_and_number_bounds_apply_to_customer_fields_too(lifecycle_file):
    replace(lifecycle_file, "  warranty_ends: date\n",
            "  warranty_ends: date\n  nickname: {type: string, max_length: 4}\n"
            "  lifetime_value: {type: number, min: 0}\n")
    lifecycle = load_project(lifecycle_file).lifecycle
    with pytest.raises(PayloadError) as info:
        check_customer(lifecycle, "c-1", {"nickname": "Adelaide"})
    assert info.value.field == "customer.nickname"
    assert "at most 4 characters, got 8" in str(info.value)
    with pytest.raises(PayloadError) as info:
        check_customer(lifecycle, "c-1", {"lifetime_value": -0.5})
    assert info.value.field == "customer.lifetime_value"
    assert check_customer(lifecycle, "c-1", {"nickname": "Ada", "lifetime_value": 0}) == {
        "nickname": "Ada", "lifetime_value": 0}


# ---------------------------------------------------------------- JSON Schemas


def test_the_payload_schema_carries_the_limits_and_judges_like_the_engine(bundled):
    schema = payload_json_schema(declared_events(bundled)["survey.answered"])
    assert schema["properties"]["score"]["minimum"] == 0
    assert schema["properties"]["score"]["maximum"] == 10
    jsonschema.validate({"score": 10}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 11}, schema)


def test_the_lifecycle_file_schema_offers_min_max_and_max_length():
    spec = next(variant for variant in lifecycle_schema()["$defs"]["FieldSpec"]["anyOf"] if "properties" in variant)
    assert {"min", "max", "max_length"} <= set(spec["properties"])
