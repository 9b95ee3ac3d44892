"""`lifecycle validate`: load lifecycles the way the worker does and report every error."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import PlaybookError, PlaybookLoadError
from engine.loader import load_project, parse_yaml
from engine.project import Project
from engine.walk import walk_steps

LIFECYCLE_FILES = ("lifecycle.yaml", "lifecycle.yml")


class _NotFound(Exception):
    """A path that names no lifecycle; its message is the one line to print."""


def _beside(folder: Path) -> Path | None:
    for name in LIFECYCLE_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _is_stage_playbook(path: Path) -> bool:
    """Whether a file reads as a stage playbook (`playbook:` at the top, no `lifecycle:`)."""
    try:
        doc, _ = parse_yaml(str(path), path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return False
    data = doc.data
    return isinstance(data, dict) and "playbook" in data and "lifecycle" not in data


def resolve(path: Path) -> tuple[Path, Path | None]:
    """(lifecycle file, stage playbook file or None) for a file or folder given by the user."""
    if path.is_dir():
        found = _beside(path)
        if found is None:
            raise _NotFound(f"{path}: no lifecycle.yaml in this folder")
        return found, None
    if not path.exists():
        raise _NotFound(f"{path}: no such file or folder")
    if path.name in LIFECYCLE_FILES or not _is_stage_playbook(path):
        return path, None
    found = _beside(path.parent)
    if found is None:
        raise _NotFound(f"{path}:1:1: a stage playbook needs a lifecycle.yaml beside it")
    return found, path


def _uses(project: Project, playbook: Path) -> bool:
    target = playbook.resolve()
    return any(
        spec.playbook and (project.path.parent / spec.playbook).resolve() == target
        for spec in project.lifecycle.stages.values()
    )


def summary(project: Project) -> str:
    """`N stages, M steps`, counting nested steps."""
    steps = sum(sum(1 for _ in walk_steps(p.steps)) for p in project.playbooks.values())
    return f"{len(project.lifecycle.stages)} stages, {steps} steps"


def validate_one(path: Path) -> list[str]:
    """Check one path; the lines to print: `ok ...`, or one per error."""
    lifecycle, playbook = resolve(path)
    try:
        project = load_project(lifecycle)
    except PlaybookLoadError as error:
        return [str(e) for e in error.errors]
    if playbook is not None and not _uses(project, playbook):
        return [str(PlaybookError(str(playbook), 1, 1, f"no stage of {lifecycle} uses this playbook"))]
    return [f"ok {lifecycle} ({summary(project)})"]


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate_command(paths: tuple[Path, ...]) -> None:
    """Check lifecycle files, folders holding a lifecycle.yaml, or stage playbooks.

    Prints `ok PATH (N stages, M steps)` for each good lifecycle and one
    `file:line:column: message` line per error; exits 1 when anything is wrong.
    """
    failed = False
    done: set[tuple[Path, Path | None]] = set()
    printed: set[str] = set()
    for path in paths:
        try:
            key = resolve(path)
            key = (key[0].resolve(), key[1].resolve() if key[1] else None)
            if key in done:
                continue
            done.add(key)
            lines = validate_one(path)
        except _NotFound as error:
            lines = [str(error)]
        except Exception as error:  # the edge: one readable line, never a traceback
            lines = [f"{path}: internal error: {type(error).__name__}: {error}"]
        for line in lines:
            if line in printed:
                continue  # a folder and a playbook of the same lifecycle: say it once
            printed.add(line)
            if line.startswith("ok "):
                click.echo(line)
            else:
                failed = True
                click.echo(line, err=True)
    sys.exit(1 if failed else 0)
