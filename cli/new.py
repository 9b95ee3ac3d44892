"""`lifecycle new stage NAME`: scaffold a stage playbook and its test case, ready to wire in."""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import yaml

from cli.output import fail
from engine.schema import PLAYBOOK_FILE, SCHEMAS_DIR
from engine.scenario import DEFAULT_START

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

PLAYBOOK = """\
{schema_line}# Stage playbook of `{stage}`: its steps run top to bottom each time a customer enters
# the stage. Check it with `lifecycle validate` and `lifecycle lint`, draw it with
# `lifecycle graph {folder} --stage {stage}`, and test it with `lifecycle test`.
playbook: {stage}
description: >
  TODO: what this stage is for, and what good practice says a customer should get here.

# Parameters the steps read as vars.NAME; people who run the playbook tune them here.
vars: {{}}

steps:
  # Give the customer a day before the first contact of this stage.
  - kind: wait
    id: settle_in
    duration: 1d

  # Uncomment and adapt what you need (every step kind: docs/authoring.md).
  #
  # - kind: send                      # a message from templates/<template>.txt
  #   id: {stage}_message
  #   template: {stage}_message
  #   channel: preferred              # the customer's preferred channel, then the fallbacks
  #   otherwise:                      # no channel with consent: a person does it instead
  #     role: account_manager
  #     title: Call the customer
  #     guideline: What good practice looks like for this call.
  #
  # - kind: wait_for                  # wait for an event, but never for good
  #   id: wait_for_answer
  #   events: [survey.answered]
  #   timeout: 7d
  #   on_timeout:
  #     - kind: task
  #       role: account_manager
  #       title: Follow up in person
  #       guideline: Ask how it went; listen first.
  #
  # - kind: if                        # marketing only for satisfied customers
  #   when: facts.open_tickets == 0
  #   then:
  #     - kind: send
  #       template: offer
  #       category: marketing
  #
  # - kind: goto                      # where customers go when this stage is done
  #   stage: next_stage
"""

CASE = """\
# Test case for stage `{stage}`: run it with `lifecycle test` (or `make test`).
# TODO: add the events that bring a customer into `{stage}`, then expect what must happen
# there: the step ids of messages and tasks (actions), promises, facts, and the outcome.
name: {stage} runs for a new customer
lifecycle: ../{lifecycle}
customer:
  id: c-1
  name: Ada Example
  email: ada@example.com
  phone: "+15550100"
  preferred_channel: email
  consent: {{email: true, sms: true}}
events:
{events}
expect:
  stages: {{includes: [{stage}]}}
"""


def stage_name(text: str) -> str:
    """`Onboarding call`, `onboarding-call` → `onboarding_call`."""
    return re.sub(r"[\s-]+", "_", text.strip()).lower()


@click.group("new")
def new_command() -> None:
    """Scaffold new playbook files."""


@new_command.command("stage")
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("playbooks"),
              show_default=True, help="The folder with lifecycle.yaml.")
def new_stage(name: str, folder: Path) -> None:
    """Scaffold a stage playbook and its test case, and say how to wire them in.

    Creates <dir>/<name>.yaml and <dir>/tests/<name>.yaml (NAME with dashes); never
    overwrites a file.
    """
    stage = stage_name(name)
    if not _NAME.match(stage):
        fail(f"'{name}' is not a valid stage name: use lower_snake_case, e.g. onboarding_call")
    file = stage.replace("_", "-") + ".yaml"
    playbook_path, case_path = folder / file, folder / "tests" / file
    lifecycle_file = folder / "lifecycle.yaml"
    lifecycle = _read_lifecycle(lifecycle_file)
    if stage in (lifecycle.get("stages") or {}):
        fail(f"stage '{stage}' is already in {lifecycle_file}")
    existing = [str(p) for p in (playbook_path, case_path) if p.exists()]
    if existing:
        fail(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; not overwriting")
    try:
        case_path.parent.mkdir(parents=True, exist_ok=True)
        playbook_path.write_text(PLAYBOOK.format(stage=stage, folder=folder, schema_line=_schema_line(folder)),
                                 encoding="utf-8")
        case_path.write_text(CASE.format(stage=stage, lifecycle=lifecycle_file.name,
                                         events=_start_events(lifecycle, stage)), encoding="utf-8")
    except OSError as error:
        fail(f"cannot write in {folder}: {error.strerror or error}")
    click.echo(f"created {playbook_path}")
    click.echo(f"created {case_path}")
    click.echo(f"""
Add the stage to {lifecycle_file}, with a way in (a transition, or a goto step elsewhere):

stages:
  {stage}:
    description: TODO
    playbook: {file}

transitions:
  - from: STAGE_BEFORE             # the stage customers come from
    on: EVENT                      # the event that moves them here
    to: {stage}

Then: lifecycle validate {folder} && lifecycle lint {folder} && lifecycle test {case_path}""")


def _schema_line(folder: Path) -> str:
    """The editor hint, when the committed schema can be reached from the new file."""
    schema = SCHEMAS_DIR / PLAYBOOK_FILE
    if not schema.is_file():
        return ""
    try:
        relative = os.path.relpath(schema, folder.resolve())
    except ValueError:  # another drive on Windows
        return ""
    return f"# yaml-language-server: $schema={Path(relative).as_posix()}\n"


def _read_lifecycle(path: Path) -> dict[str, Any]:
    """The lifecycle as plain data, or {} when there is none yet (the scaffold still helps)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


_EXAMPLES: dict[str, Any] = {
    "string": "X-1", "int": 1, "number": 100, "bool": True, "duration": "1d", "list": [], "map": {},
}


def _example(kind: str, spec: dict[str, Any]) -> Any:
    """A value of a required field that its own checks accept: an enum's first value, a number
    within its `min` and `max` (as `lifecycle dev`'s first event does, from the loaded model)."""
    if kind in ("date", "timestamp"):
        when = DEFAULT_START + timedelta(days=10)
        return when.date().isoformat() if kind == "date" else when.isoformat()
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return spec["enum"][0]
    low, high = (spec.get(end) for end in ("min", "max"))
    if kind in ("int", "number") and isinstance(low, (int, float)):
        return math.ceil(low) if kind == "int" else low
    if kind in ("int", "number") and isinstance(high, (int, float)):
        return min(_EXAMPLES[kind], math.floor(high) if kind == "int" else high)
    return _EXAMPLES.get(kind, "X-1")


def _start_events(lifecycle: dict[str, Any], stage: str) -> str:
    """YAML for the events list: the lifecycle's start event with example required fields."""
    events = lifecycle.get("events") if isinstance(lifecycle.get("events"), dict) else {}
    start = next((name for name, spec in events.items()
                  if isinstance(spec, dict) and spec.get("starts_lifecycle")), None)
    lines = []
    if start is None:
        lines.append("  - at: 0d\n    event: EVENT_THAT_STARTS_THE_LIFECYCLE")
    else:
        data = {}
        payload = events[start].get("payload") or {}
        for field, spec in payload.items():
            kind = spec if isinstance(spec, str) else (spec or {}).get("type", "string")
            required = kind.endswith("!") if isinstance(spec, str) else bool((spec or {}).get("required"))
            kind = str(kind).rstrip("!")
            if not required:
                continue
            data[field] = _example(kind, spec if isinstance(spec, dict) else {})
        flow = yaml.safe_dump(data, default_flow_style=True, sort_keys=False).strip()
        lines.append(f"  - at: 0d\n    event: {start}\n    data: {flow}")
    lines.append(f"  # - at: 3d\n  #   event: EVENT            # the event that brings the customer into {stage}")
    return "\n".join(lines)
