"""A lifecycle reads only files inside its own folder: no absolute paths, no `..`, no links out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.validate import validate_command
from engine.errors import PlaybookLoadError
from engine.loader import load_project

VALID = Path(__file__).parent / "fixtures" / "valid"
SECRET = "root:x:0:0"  # what /etc/passwd's first line looks like


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(VALID, tmp_path / "p")
    # A file just outside the lifecycle's folder, which would fail loudly if it were read.
    (tmp_path / "outside.yaml").write_text(f"{SECRET}\nplaybook: [\n")
    (tmp_path / "outside.txt").write_text(f"{SECRET} {{{{ \n")
    return Path("p")


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "lifecycle.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def errors(folder: Path) -> list[str]:
    with pytest.raises(PlaybookLoadError) as info:
        load_project(folder / "lifecycle.yaml")
    found = [str(error) for error in info.value.errors]
    assert not any(SECRET in line or "root:" in line for line in found)
    return found


def test_templates_folder_given_as_an_absolute_path(folder: Path) -> None:
    edit(folder, "templates: templates", "templates: /etc")
    assert errors(folder) == ["p/lifecycle.yaml:59:12: '/etc' is an absolute path; give a path inside "
                              "the lifecycle's folder, relative to it"]


def test_templates_folder_outside_through_dot_dot(folder: Path) -> None:
    edit(folder, "templates: templates", "templates: ../p/../..")
    assert errors(folder) == ["p/lifecycle.yaml:59:12: '../p/../..' leads outside the lifecycle's folder "
                              "(through '..' or a link); keep the files inside it"]


def test_templates_folder_inside_through_dot_dot_is_fine(folder: Path) -> None:
    edit(folder, "templates: templates", "templates: ../p/templates")
    assert set(load_project(folder / "lifecycle.yaml").templates) == {"order_summary", "apology", "check_in"}


def test_template_linked_to_a_file_outside_is_never_read(folder: Path) -> None:
    target = folder / "templates" / "check_in.txt"
    target.unlink()
    os.symlink("/etc/passwd", target)
    assert errors(folder) == ["p/templates/check_in.txt:1:1: this template is a link to a file outside the "
                              "lifecycle's folder; copy the file in instead"]


def test_templates_folder_linked_outside(folder: Path, tmp_path: Path) -> None:
    shutil.move(folder / "templates", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", folder / "templates")
    assert errors(folder) == ["p/lifecycle.yaml:59:12: 'templates' leads outside the lifecycle's folder "
                              "(through '..' or a link); keep the files inside it"]


def test_playbook_given_as_an_absolute_path_is_never_read(folder: Path) -> None:
    edit(folder, "playbook: sale.yaml", "playbook: /etc/passwd")
    assert errors(folder) == ["p/lifecycle.yaml:46:15: stage 'sale': '/etc/passwd' is an absolute path; "
                              "give a path inside the lifecycle's folder, relative to it"]


def test_playbook_outside_through_dot_dot_is_never_read(folder: Path) -> None:
    edit(folder, "playbook: sale.yaml", "playbook: ../outside.yaml")
    assert errors(folder) == ["p/lifecycle.yaml:46:15: stage 'sale': '../outside.yaml' leads outside the "
                              "lifecycle's folder (through '..' or a link); keep the files inside it"]


def test_playbook_linked_outside_is_never_read(folder: Path) -> None:
    (folder / "sale.yaml").unlink()
    os.symlink(Path("../outside.yaml"), folder / "sale.yaml")
    assert errors(folder) == ["p/lifecycle.yaml:46:15: stage 'sale': 'sale.yaml' leads outside the "
                              "lifecycle's folder (through '..' or a link); keep the files inside it"]


def test_playbook_outside_is_refused_even_when_the_lifecycle_is_invalid(folder: Path) -> None:
    # An invalid lifecycle still has its playbooks checked: they must not be read either.
    edit(folder, "playbook: sale.yaml", "playbook: /etc/passwd")
    edit(folder, "initial_stage: sale", "initial_stage: 12")
    found = errors(folder)
    assert "p/lifecycle.yaml:46:15: stage 'sale': '/etc/passwd' is an absolute path; give a path inside " \
           "the lifecycle's folder, relative to it" in found


def test_validate_prints_one_line_and_never_the_file(folder: Path) -> None:
    edit(folder, "playbook: sale.yaml", "playbook: /etc/passwd")
    result = CliRunner().invoke(validate_command, ["p"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "root:" not in result.stderr
