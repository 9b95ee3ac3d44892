"""`lifecycle new stage`: a scaffold that validates once wired in, and a test case to grow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from engine.casefile import load_case, run_cases
from engine.loader import load_project
from engine.schema import SCHEMAS_DIR

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "authoring"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, target)
    return target


def new_stage(folder: Path, name: str = "onboarding_call"):
    return CliRunner().invoke(main, ["new", "stage", name, "--dir", str(folder)])


def wire(folder: Path) -> None:
    """What the command tells the author to add: the stage, and a transition into it."""
    lifecycle = folder / "lifecycle.yaml"
    text = lifecycle.read_text()
    text = text.replace("  closed: {terminal: true}\n",
                        "  onboarding_call:\n    description: TODO\n    playbook: onboarding-call.yaml\n"
                        "  closed: {terminal: true}\n")
    text = text.replace("    on: order.delivered\n    to: check_in\n", "    on: order.delivered\n    to: onboarding_call\n")
    lifecycle.write_text(text)


def test_creates_a_playbook_and_a_test_case_and_says_what_to_add(folder):
    result = new_stage(folder)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == [f"created {folder / 'onboarding-call.yaml'}",
                         f"created {folder / 'tests' / 'onboarding-call.yaml'}"]
    assert "  onboarding_call:" in lines and "    playbook: onboarding-call.yaml" in lines
    assert "    to: onboarding_call" in lines


def test_scaffold_validates_once_wired_into_the_lifecycle(folder):
    assert new_stage(folder).exit_code == 0
    wire(folder)
    project = load_project(folder / "lifecycle.yaml")
    assert project.playbooks["onboarding_call"].steps[0].id == "settle_in"


def test_scaffolded_case_passes_once_it_has_the_event_into_the_stage(folder):
    assert new_stage(folder).exit_code == 0
    wire(folder)
    case = folder / "tests" / "onboarding-call.yaml"
    assert load_case(case).expect == {"stages": {"includes": ["onboarding_call"]}}
    assert not run_cases([case])[0].ok  # nothing brings the customer there yet
    text = case.read_text().replace(
        "  # - at: 3d\n  #   event: EVENT ",
        "  - at: 3d\n    event: order.delivered\n    data: {delivered_at: 2026-01-08}\n   ")
    case.write_text(text)
    result, = run_cases([case])
    assert result.ok, result.failures


def test_start_event_gets_example_values_for_its_required_fields(folder):
    assert new_stage(folder).exit_code == 0
    case = load_case(folder / "tests" / "onboarding-call.yaml")
    event, = case.events
    assert (event.event.name, set(event.event.data)) == ("order.placed", {"order_id", "promised_delivery"})


def test_example_values_pass_the_fields_own_checks(folder):
    lifecycle = folder / "lifecycle.yaml"
    lifecycle.write_text(lifecycle.read_text().replace(
        "      order_id: string!\n",
        "      order_id: string!\n      plan: {type: string, required: true, enum: [basic, premium]}\n"
        "      months: {type: int, required: true, min: 1.5}\n      fee: {type: number, required: true, max: 20}\n"))
    assert new_stage(folder).exit_code == 0
    case = load_case(folder / "tests" / "onboarding-call.yaml")
    event, = case.events
    assert {name: event.event.data[name] for name in ("plan", "months", "fee")} == {"plan": "basic", "months": 2,
                                                                                   "fee": 20}
    assert "rejected" not in "".join(run_cases([folder / "tests" / "onboarding-call.yaml"])[0].failures)


def test_schema_line_points_at_the_committed_schema(folder):
    assert new_stage(folder).exit_code == 0
    first = (folder / "onboarding-call.yaml").read_text().splitlines()[0]
    relative = first.removeprefix("# yaml-language-server: $schema=")
    assert (folder / relative).resolve() == SCHEMAS_DIR / "playbook.schema.json"


def test_name_is_normalised_to_a_stage_name(folder):
    result = new_stage(folder, "Onboarding call")
    assert result.exit_code == 0
    assert (folder / "onboarding-call.yaml").read_text().count("playbook: onboarding_call\n") == 1


def test_refuses_to_overwrite(folder):
    assert new_stage(folder).exit_code == 0
    playbook = folder / "onboarding-call.yaml"
    playbook.write_text("mine")
    result = new_stage(folder)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {playbook}, {folder / 'tests' / 'onboarding-call.yaml'} already exist")
    assert playbook.read_text() == "mine"


def test_refuses_a_stage_the_lifecycle_already_has(folder):
    result = new_stage(folder, "check_in")
    assert (result.exit_code, result.output) == (1, f"error: stage 'check_in' is already in {folder / 'lifecycle.yaml'}\n")
    assert not (folder / "check-in.yaml").read_text().startswith("# Stage playbook")


def test_invalid_name_is_a_one_line_error(folder):
    result = new_stage(folder, "2nd-stage")
    assert result.exit_code == 1
    assert result.output == "error: '2nd-stage' is not a valid stage name: use lower_snake_case, e.g. onboarding_call\n"
