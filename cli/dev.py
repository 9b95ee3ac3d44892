"""`lifecycle dev`: the embedded default: a Temporal dev server on SQLite, and a worker.

Running it again on the same state dir resumes every lifecycle where it was: the SQLite
file is Temporal's database, and the workflows carry all their state.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load


@click.command("dev")
@click.option("--state-dir", type=click.Path(path_type=Path), default=".lifecycle", show_default=True,
              help="Where the Temporal database, the outbox and logs live.")
@click.option("--playbooks", type=click.Path(exists=True, path_type=Path), default="playbooks",
              show_default=True, help="The lifecycle file or its folder.")
@click.option("--port", type=int, default=7233, show_default=True, help="Temporal gRPC port.")
@click.option("--ui-port", type=int, default=8233, show_default=True, help="Temporal web UI port.")
@click.option("--api-port", type=int, default=8000, show_default=True,
              help="HTTP API port on 127.0.0.1 (0: no API).")
def dev_command(state_dir: Path, playbooks: Path, port: int, ui_port: int, api_port: int) -> None:
    """Start Temporal (with its web UI), a worker running the playbooks and the HTTP API;
    Ctrl-C stops them all."""
    lifecycle_file = lifecycle_path(playbooks)
    load(lifecycle_file)  # refuse to start on playbooks that do not load
    state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LIFECYCLE_STATE_DIR", str(state_dir))
    os.environ["LIFECYCLE_PLAYBOOKS"] = str(lifecycle_file)
    api = None
    if api_port:
        from cli.api_cmd import DevApi

        api = DevApi(state_dir, lifecycle_file, api_port)  # a taken port fails before Temporal starts
    try:
        asyncio.run(_serve(state_dir, lifecycle_file, port, ui_port, api))
    except KeyboardInterrupt:
        pass


async def _serve(state_dir: Path, lifecycle_file: Path, port: int, ui_port: int, api=None) -> None:
    from activities.config import LifecycleSettings
    from devserver import DevServer, DevServerError
    from worker import WorkerError, customer_workflows, run_worker, worker_activities

    settings = LifecycleSettings.from_env()
    server = DevServer(state_dir / "temporal.db", port=port, ui_port=ui_port)
    try:
        await server.start_async()
    except DevServerError as error:
        fail(str(error))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    serving_api = None
    try:
        client = await server.connect()
        click.echo(f"Temporal   {server.address} (namespace {server.namespace})")
        click.echo(f"Web UI     {server.ui_url}")
        click.echo(f"Playbooks  {lifecycle_file}")
        click.echo(f"Outbox     {settings.outbox_path}")
        click.echo(f"Worker     task queue {settings.task_queue}; Ctrl-C stops everything")
        click.echo("Try        lifecycle event cust-1 order.placed --data "
                   "'{\"order_id\": \"A-1\", \"promised_delivery\": \"2026-12-01\", \"price\": 1200}'")
        if api is not None:
            serving_api = asyncio.create_task(api.serve(client, stop))
        await run_worker(client, settings.task_queue, customer_workflows(),
                         worker_activities(settings, lifecycle_file), stop=stop)
    except WorkerError as error:
        fail(str(error))
    finally:
        if serving_api is not None:
            stop.set()
            await serving_api
        await server.stop_async()
        click.echo("stopped")
