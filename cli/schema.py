"""`lifecycle schema`: the JSON Schemas editors use to check and complete playbook YAML."""

from __future__ import annotations

from pathlib import Path

import click

from cli.output import fail
from engine.schema import LIFECYCLE_FILE, PLAYBOOK_FILE, lifecycle_schema, playbook_schema, render


@click.command("schema")
@click.argument("kind", required=False, type=click.Choice(["lifecycle", "playbook"]))
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="Write to this file (with KIND) or folder (both schemas) instead of printing.")
def schema_command(kind: str | None, output: Path | None) -> None:
    """Print or write the JSON Schemas editors use for playbook files.

    \b
    lifecycle schema playbook           print the stage playbook schema
    lifecycle schema --output schemas   write schemas/lifecycle.schema.json and playbook.schema.json
    """
    generated = {"lifecycle": (LIFECYCLE_FILE, lifecycle_schema), "playbook": (PLAYBOOK_FILE, playbook_schema)}
    if output is None:
        if kind is None:
            fail("give KIND (lifecycle or playbook) to print one schema, or --output FOLDER to write both")
        click.echo(render(generated[kind][1]()), nl=False)
        return
    if kind is None or output.is_dir():
        chosen = [kind] if kind else list(generated)
        targets = [(output / generated[name][0], generated[name][1]) for name in chosen]
    else:
        targets = [(output, generated[kind][1])]
    for path, make in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(make()), encoding="utf-8")
        except OSError as error:
            fail(f"cannot write {path}: {error.strerror or error}")
        click.echo(f"wrote {path}")
