"""The list of subcommands; each lives in its own module under cli/."""

from __future__ import annotations

import click

from cli import dev, operate, simulate, validate, worker_cmd

ALL: list[click.Command] = []
ALL.append(worker_cmd.command)
ALL += [simulate.simulate_command, dev.dev_command, operate.event_command,
        operate.status_command, operate.list_command]

# The authoring toolkit: schema, lint, graph, test cases, scaffolding.
from cli import graph as _graph, lint as _lint, new as _new, schema as _schema, test_cmd as _test  # noqa: E402

ALL += [_schema.schema_command, _lint.lint_command, _graph.graph_command, _test.test_command,
        _new.new_command]
ALL.append(validate.validate_command)
