"""What every subcommand shares: one readable line on failure, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from engine.errors import PlaybookLoadError
from engine.project import Project


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def lifecycle_path(path: Path) -> Path:
    """A lifecycle file, or the `lifecycle.yaml` in a folder."""
    return path / "lifecycle.yaml" if path.is_dir() else path


def load(path: Path) -> Project:
    """Load a project, or print its located errors and exit 1."""
    from engine.loader import load_project

    try:
        return load_project(path)
    except PlaybookLoadError as error:
        for line in error.errors:
            click.echo(str(line), err=True)
        sys.exit(1)
