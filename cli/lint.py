"""`lifecycle lint`: warnings about playbooks that load but probably do not do what was meant."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.output import lifecycle_path
from engine.errors import PlaybookLoadError
from engine.lint import RULES, lint_project


@click.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--warn-only", is_flag=True, help="Print the warnings but exit 0.")
@click.option("--rules", "show_rules", is_flag=True, help="List the rules and exit.")
def lint_command(paths: tuple[Path, ...], warn_only: bool, show_rules: bool) -> None:
    """Warn about what loads but is rarely meant (PATH: lifecycle file or folder).

    Silence a warning where it is intended with `# lint: ignore[rule-id]` on the line or
    the line above. Exit 1 on any warning (unless --warn-only) or any load error.
    """
    from engine.loader import load_project

    if show_rules:
        for rule, text in RULES.items():
            click.echo(f"{rule:<28} {text}")
        return
    if not paths:
        paths = (Path("playbooks"),)
    failed = False
    count = 0
    for path in paths:
        try:
            project = load_project(lifecycle_path(path))
        except PlaybookLoadError as error:
            for line in error.errors:
                click.echo(str(line), err=True)
            failed = True
            continue
        for warning in lint_project(project):
            click.echo(str(warning))
            count += 1
    if count:
        click.echo(f"{count} warning{'s' if count != 1 else ''}", err=True)
    if failed or (count and not warn_only):
        sys.exit(1)
