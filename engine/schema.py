"""JSON Schemas of the lifecycle file and of a stage playbook, generated from the models.

Editors use them (through a `# yaml-language-server: $schema=...` first line) to complete
field names and show each field's description while an author types. The models stay the
single source: this module only adds what pydantic cannot see, namely the shorthands that
the models' before-validators accept (`date!` for a field spec, a single stage for `from` and `except`)
and that a step's `kind` is required by the discriminated union.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from engine.model import FieldKind, Lifecycle, Playbook

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# File names under schemas/, as the bundled playbooks reference them.
LIFECYCLE_FILE = "lifecycle.schema.json"
PLAYBOOK_FILE = "playbook.schema.json"

# The committed copies live next to the engine package, at the top of the repository.
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

_TYPES = FieldKind.__args__  # type: ignore[attr-defined]
_SHORTHAND = {
    "type": "string",
    "pattern": "^(" + "|".join(_TYPES) + ")!?$",
    "description": "Shorthand: the type, with a trailing '!' when the value is required.",
    "examples": ["date!", "string"],
}


def lifecycle_schema() -> dict[str, Any]:
    """The JSON Schema of a lifecycle file (e.g. playbooks/lifecycle.yaml)."""
    schema = Lifecycle.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    for name in ("FieldSpec", "FactSpec"):
        defs[name] = _or_shorthand(defs[name])
    for key in ("from", "except"):
        stages = defs["Transition"]["properties"][key]
        items = stages.pop("items")
        kind = stages.pop("type")
        stages["anyOf"] = [{"type": "string"}, {"type": kind, "items": items, "minItems": 1}]
    return _document(schema, LIFECYCLE_FILE, "Lifecycle")


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema of a stage playbook file (e.g. playbooks/delivery-check-in.yaml)."""
    schema = Playbook.model_json_schema(by_alias=True)
    mapping = schema["properties"]["steps"]["items"]["discriminator"]["mapping"]
    for ref in mapping.values():
        step = schema["$defs"][ref.rsplit("/", 1)[-1]]
        required = step.setdefault("required", [])
        if "kind" not in required:
            required.insert(0, "kind")
    return _document(schema, PLAYBOOK_FILE, "Stage playbook")


def schemas() -> dict[str, dict[str, Any]]:
    """Every schema by its file name under schemas/."""
    return {LIFECYCLE_FILE: lifecycle_schema(), PLAYBOOK_FILE: playbook_schema()}


def render(schema: dict[str, Any]) -> str:
    """The text committed to schemas/: stable key order, so a diff shows real changes only."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def stale(folder: Path = SCHEMAS_DIR) -> list[str]:
    """File names under `folder` that are missing or differ from what the models generate."""
    out = []
    for name, schema in schemas().items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            out.append(name)
    return out


def _or_shorthand(spec: dict[str, Any]) -> dict[str, Any]:
    """A field spec may be written as `date!`: accept the string form beside the mapping."""
    mapping = copy.deepcopy(spec)
    outer = {key: mapping.pop(key) for key in ("title", "description") if key in mapping}
    return {**outer, "anyOf": [_SHORTHAND, mapping]}


def _document(schema: dict[str, Any], file: str, title: str) -> dict[str, Any]:
    return {"$schema": DRAFT, **schema, "title": title}
