"""`lifecycle schema`: JSON Schemas generated from the models, committed, and used by editors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from cli.main import main
from engine.loader import parse_yaml
from engine.schema import SCHEMAS_DIR, lifecycle_schema, playbook_schema, render, schemas, stale

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "playbooks"
FIXTURE = ROOT / "tests" / "fixtures" / "authoring"


def _data(path: Path):
    doc, errors = parse_yaml(str(path), path.read_text())
    assert not errors
    return doc.data


def _properties(schema: dict):
    """(model, field, field schema) for every field of every model in a schema."""
    models = {"(root)": schema, **schema.get("$defs", {})}
    for model, definition in models.items():
        variants = definition.get("anyOf", [definition])
        for variant in variants:
            for name, field in variant.get("properties", {}).items():
                yield model, name, field


def test_committed_schemas_are_up_to_date():
    out_of_date = stale()
    assert not out_of_date, (
        f"schemas/{', schemas/'.join(out_of_date)} differ from the models; regenerate with:\n"
        f"    .venv/bin/lifecycle schema --output schemas"
    )


@pytest.mark.parametrize("name", sorted(schemas()))
def test_schema_is_valid_json_schema(name):
    jsonschema.Draft202012Validator.check_schema(schemas()[name])


@pytest.mark.parametrize("schema", [lifecycle_schema(), playbook_schema()], ids=["lifecycle", "playbook"])
def test_every_field_has_a_description_and_examples(schema):
    missing = [f"{model}.{name}: {key}" for model, name, field in _properties(schema)
               for key in ("description", "examples") if key not in field]
    assert missing == []


def _bundled_files():
    files = sorted(BUNDLED.glob("*.yaml")) + sorted(FIXTURE.glob("*.yaml"))
    return [pytest.param(path, id=str(path.relative_to(ROOT))) for path in files]


@pytest.mark.parametrize("path", _bundled_files())
def test_playbook_files_validate_against_the_schema_they_name(path):
    first = path.read_text().splitlines()[0]
    kind = "lifecycle" if path.name == "lifecycle.yaml" else "playbook"
    assert first.startswith("# yaml-language-server: $schema="), f"{path} lacks the schema line"
    named = (path.parent / first.split("$schema=", 1)[1].strip()).resolve()
    assert named == SCHEMAS_DIR / f"{kind}.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(named.read_text()))
    assert [error.message for error in validator.iter_errors(_data(path))] == []


def test_schema_accepts_the_shorthands_the_models_accept():
    validator = jsonschema.Draft202012Validator(lifecycle_schema())
    lifecycle = _data(FIXTURE / "lifecycle.yaml")
    lifecycle["events"]["order.placed"]["payload"]["order_id"] = "string!"
    lifecycle["transitions"][0]["from"] = "sale"
    assert list(validator.iter_errors(lifecycle)) == []


def test_schema_rejects_a_misspelt_field_and_a_missing_kind():
    lifecycle = _data(FIXTURE / "lifecycle.yaml")
    lifecycle["stages"]["sale"]["playbok"] = "sale.yaml"
    assert any("playbok" in e.message for e in jsonschema.Draft202012Validator(lifecycle_schema()).iter_errors(lifecycle))
    playbook = {"playbook": "sale", "steps": [{"template": "summary"}]}
    assert list(jsonschema.Draft202012Validator(playbook_schema()).iter_errors(playbook))


def test_schema_command_writes_both_files(tmp_path):
    result = CliRunner().invoke(main, ["schema", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "lifecycle.schema.json").read_text() == render(lifecycle_schema())
    assert stale(tmp_path / "out") == []


def test_schema_command_prints_one_schema():
    result = CliRunner().invoke(main, ["schema", "playbook"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Stage playbook"


def test_schema_command_without_kind_or_output_is_one_line_error():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
