"""`lifecycle dev`: the embedded default: a Temporal dev server on SQLite, and a worker.

Running it again on the same state dir resumes every lifecycle where it was: the SQLite
file is Temporal's database, and the workflows carry all their state. It never shares:
a state dir in use by another `lifecycle dev`, or a port someone else listens on, is a
one-line refusal, not an instance quietly attached to someone else's server.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import shutil
import signal
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load
from engine.model import Lifecycle

DEFAULT_PORT = 7233  # where `lifecycle` and `temporal` connect when TEMPORAL_ADDRESS is unset
DEFAULT_PLAYBOOKS = Path("playbooks")


@click.command("dev")
@click.option("--state-dir", type=click.Path(path_type=Path), default=".lifecycle", show_default=True,
              help="Where the Temporal database, the outbox and logs live.")
@click.option("--playbooks", type=click.Path(exists=True, path_type=Path), default=str(DEFAULT_PLAYBOOKS),
              show_default=True, help="The lifecycle file or its folder.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Temporal gRPC port.")
@click.option("--ui-port", type=int, default=8233, show_default=True, help="Temporal web UI port.")
@click.option("--api-port", type=int, default=8000, show_default=True,
              help="HTTP API port on 127.0.0.1 (0: no API).")
def dev_command(state_dir: Path, playbooks: Path, port: int, ui_port: int, api_port: int) -> None:
    """Start Temporal (with its web UI), a worker running the playbooks and the HTTP API;
    Ctrl-C stops them all."""
    from devserver import StateDirLock, StateDirLocked

    lifecycle_file = lifecycle_path(playbooks)
    project = load(lifecycle_file)  # refuse to start on playbooks that do not load
    lock = StateDirLock(state_dir)
    try:
        lock.acquire()  # held until this process exits, however it exits
    except (StateDirLocked, OSError) as error:
        fail(str(error))
    os.environ.setdefault("LIFECYCLE_STATE_DIR", str(state_dir))
    os.environ["LIFECYCLE_PLAYBOOKS"] = str(lifecycle_file)
    api = None
    if api_port:
        from cli.api_cmd import DevApi

        api = DevApi(state_dir, lifecycle_file, api_port)  # a taken port fails before Temporal starts
    try:
        asyncio.run(_serve(state_dir, lifecycle_file, port, ui_port, api, start_example(project.lifecycle)))
    except KeyboardInterrupt:
        pass


async def _serve(state_dir: Path, lifecycle_file: Path, port: int, ui_port: int, api=None,
                 example: tuple[str, dict] = ("order.placed", {})) -> None:
    from activities.config import LifecycleSettings
    from devserver import DevServer, DevServerError, PortTaken
    from worker import WorkerError, customer_workflows, run_worker, worker_activities

    settings = LifecycleSettings.from_env()
    server = DevServer(state_dir / "temporal.db", port=port, ui_port=ui_port)
    try:
        await server.start_async()
    except PortTaken as error:
        fail(f"{error} (--port, --ui-port and --api-port choose others)")
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
        click.echo(f"Analytics  {settings.state_dir / 'analytics.duckdb'} (lifecycle report, lifecycle rank)")
        click.echo(f"Worker     task queue {settings.task_queue}; Ctrl-C stops everything")
        click.echo("Try        " + try_command(server.address, port, lifecycle_file, example))
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


def try_command(address: str, port: int, lifecycle_file: Path, example: tuple[str, dict]) -> str:
    """A first `lifecycle event` that works when pasted into another terminal, from the same folder:
    `example` is the lifecycle's start event and its data (`start_example`)."""
    prefix = f"TEMPORAL_ADDRESS={address} " if port != DEFAULT_PORT else ""
    event, data = example
    words = [lifecycle_program(), "event", "cust-1", event, "--data", json.dumps(data)]
    if lifecycle_file.resolve() != lifecycle_path(DEFAULT_PLAYBOOKS).resolve():
        words += ["--playbooks", str(lifecycle_file)]
    return prefix + shlex.join(words)


def start_example(lifecycle: Lifecycle) -> tuple[str, dict]:
    """The lifecycle's first start event, with a value for each required field that its checks
    accept (an enum's first value, a number within its limits): the banner's first event."""
    event, spec = next((name, spec) for name, spec in lifecycle.events.items() if spec.starts_lifecycle)
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    plain = {"string": "A-1", "bool": True, "date": soon.date().isoformat(), "duration": "1d",
             "timestamp": soon.isoformat().replace("+00:00", "Z"), "list": [], "map": {}}
    data: dict = {}
    for name, field in spec.payload.items():
        if not field.required:
            continue
        if field.type in ("int", "number"):
            low = field.min if field.min is not None else min(100, field.max if field.max is not None else 100)
            data[name] = int(math.ceil(low)) if field.type == "int" else low
        elif field.type == "string" and field.enum:
            data[name] = field.enum[0]
        else:
            data[name] = plain[field.type]
    return event, data


def lifecycle_program() -> str:
    """How to call this `lifecycle`: its bare name when PATH finds this one, else its path."""
    program = Path(sys.argv[0])
    on_path = shutil.which(program.name)
    if program.name == "lifecycle" and on_path and Path(on_path).resolve() == program.resolve():
        return "lifecycle"
    relative = os.path.relpath(program.resolve())
    if relative.startswith(".."):
        return str(program.resolve())
    return relative if os.sep in relative else f".{os.sep}{relative}"
