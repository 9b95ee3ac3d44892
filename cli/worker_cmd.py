"""`lifecycle worker`: run a worker that executes customer lifecycles and their effects."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("worker")
@click.option(
    "--playbooks", envvar="LIFECYCLE_PLAYBOOKS", type=click.Path(path_type=Path), default=None,
    help="The lifecycle file or its folder (env LIFECYCLE_PLAYBOOKS; default playbooks).",
)
@click.option(
    "--task-queue", envvar="LIFECYCLE_TASK_QUEUE", default="lifecycle", show_default=True,
    help="Task queue to poll (env LIFECYCLE_TASK_QUEUE).",
)
@click.option(
    "--profile", envvar="TEMPORAL_PROFILE", default=None,
    help="Temporal env config profile (env TEMPORAL_PROFILE); TEMPORAL_ADDRESS, "
    "TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TLS variables apply as in the temporal CLI.",
)
def command(playbooks: Path | None, task_queue: str, profile: str | None) -> None:
    """Run a worker until SIGTERM or Ctrl-C; start several to scale out.

    Effects go where LIFECYCLE_CHANNELS / LIFECYCLE_TASKS say (default: the outbox file
    in LIFECYCLE_STATE_DIR).
    """
    import worker  # late: keeps `lifecycle --help` fast

    sys.exit(worker.main(task_queue=task_queue, profile=profile, playbooks=playbooks))
