"""The `lifecycle` command: one entry point, one module per subcommand."""

from __future__ import annotations

import os
import sys

import click

from cli import commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Customer lifecycle playbooks: validate, simulate and run them on Temporal."""


for command in commands.ALL:
    main.add_command(command)


def run() -> None:
    """The console script: run the command, then leave without interpreter finalization.

    Once a command has finished, the Temporal core's background threads can abort the
    interpreter while it finalizes ("PyGILState_Release", exit -6) after a clean run;
    skipping finalization keeps the exit code the command chose.
    """
    try:
        main(prog_name="lifecycle")
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if isinstance(exit.code, str):
            click.echo(exit.code, err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
