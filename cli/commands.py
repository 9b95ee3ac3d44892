"""The list of subcommands; each lives in its own module under cli/."""

from __future__ import annotations

import click

from cli import dev, operate, simulate, validate, worker_cmd

ALL: list[click.Command] = []
ALL.append(worker_cmd.command)
ALL += [simulate.simulate_command, dev.dev_command, operate.event_command,
        operate.status_command, operate.list_command]

# The authoring toolkit: schema, lint, graph, test cases, scaffolding.
from cli import schema as _schema  # noqa: E402

ALL += [_schema.schema_command]
ALL.append(validate.validate_command)
