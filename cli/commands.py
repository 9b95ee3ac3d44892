"""The list of subcommands; each lives in its own module under cli/."""

from __future__ import annotations

import click

from cli import demo, dev, graph, lint, new, operate, schema, simulate, test_cmd, validate, worker_cmd

ALL: list[click.Command] = [
    # authoring: check, preview and test playbooks
    validate.validate_command, lint.lint_command, simulate.simulate_command, test_cmd.test_command,
    graph.graph_command, schema.schema_command, new.new_command,
    # running: the embedded server, workers, and the event contract
    dev.dev_command, demo.demo_command, worker_cmd.command,
    operate.event_command, operate.status_command, operate.list_command, operate.retry_command,
    operate.skip_command,
]

# Tasks: the inbox across customers and what people do with a task (engine/tasks.py).
from cli import tasks_cmd  # noqa: E402

ALL += [tasks_cmd.tasks_command, tasks_cmd.task_group]

# The HTTP API for other systems (docs/events.md).
from cli import api_cmd  # noqa: E402

ALL.append(api_cmd.api_command)

# Analytics over the record store (docs/analytics.md).
from cli import analytics_cmd  # noqa: E402

ALL += [analytics_cmd.report_command, analytics_cmd.rank_command, analytics_cmd.export_command,
        analytics_cmd.backtest_command]
