"""The `lifecycle` command: one entry point, one module per subcommand."""

from __future__ import annotations

import click

from cli import commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Customer lifecycle playbooks: validate, simulate and run them on Temporal."""


for command in commands.ALL:
    main.add_command(command)
