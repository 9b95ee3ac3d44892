"""What every subcommand shares: one readable line on failure, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from engine.errors import PlaybookLoadError
from engine.model import Lifecycle
from engine.project import Project, held_stages


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


def load_lifecycle(path: Path) -> Lifecycle:
    """The lifecycle the operating commands judge by. A broken stage playbook or template only
    holds the customers entering its stage, and those customers are what an operator needs
    `status`, `list --incidents`, `retry` and `skip` for: say so in one line and go on. A
    broken lifecycle file prints its located errors and exits 1, as `load` does."""
    from engine.loader import load_project

    try:
        return load_project(path).lifecycle
    except PlaybookLoadError as error:
        held = held_stages(error)
        if held is None:
            for line in error.errors:
                click.echo(str(line), err=True)
            sys.exit(1)
        click.echo(f"warning: customers entering {', '.join(held) or 'no stage'} are held until their files "
                   f"load: {error.errors[0]} (`lifecycle validate {path}` lists every error)", err=True)
        return error.partial.lifecycle
