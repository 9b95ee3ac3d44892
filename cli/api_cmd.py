"""`lifecycle api`: serve the HTTP API for other systems, next to workers on the same Temporal."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import click

from cli.output import fail, lifecycle_path, load_lifecycle


@click.command("api")
@click.option("--host", default=lambda: os.environ.get("LIFECYCLE_API_HOST", "127.0.0.1"),
              show_default="127.0.0.1", help="Address to listen on (env LIFECYCLE_API_HOST).")
@click.option("--port", type=int, default=lambda: int(os.environ.get("LIFECYCLE_API_PORT", "8000")),
              show_default="8000", help="Port to listen on (env LIFECYCLE_API_PORT).")
@click.option("--playbooks", type=click.Path(exists=True, path_type=Path),
              default=lambda: os.environ.get("LIFECYCLE_PLAYBOOKS", "playbooks"), show_default="playbooks",
              help="The lifecycle file or its folder (env LIFECYCLE_PLAYBOOKS).")
@click.option("--task-queue", default=lambda: os.environ.get("LIFECYCLE_TASK_QUEUE", "lifecycle"),
              show_default="lifecycle", help="Task queue of the workers (env LIFECYCLE_TASK_QUEUE).")
@click.option("--profile", envvar="TEMPORAL_PROFILE", default=None,
              help="Temporal env config profile; TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY "
              "and TLS variables apply as in the temporal CLI.")
def api_command(host: str, port: int, playbooks: Path, task_queue: str, profile: str | None) -> None:
    """Serve POST /v1/events and friends until Ctrl-C; callers authenticate with a bearer
    token from LIFECYCLE_API_TOKENS ("name:token,name2:token2"). docs/events.md is the contract."""
    from api.server import ApiServerError, listen
    from api.settings import TOKENS_VAR, ApiSettings, ApiSettingsError

    try:
        settings = ApiSettings.from_env(lifecycle_file=lifecycle_path(playbooks), task_queue=task_queue)
    except ApiSettingsError as error:
        fail(str(error))
    if not settings.tokens:
        fail(f"{TOKENS_VAR} is not set: no caller could authenticate (example: crm:<a long random token>)")
    load_lifecycle(settings.lifecycle_file)  # a broken lifecycle file: located errors and exit 1, before anything listens
    try:
        sock = listen(host, port)
    except ApiServerError as error:
        fail(str(error))
    try:
        asyncio.run(_serve(settings, profile, sock))
    except KeyboardInterrupt:
        pass


async def _serve(settings, profile: str | None, sock: socket.socket) -> None:
    from api import create_app
    from api.server import serve
    from worker import WorkerError, connect

    try:
        client = await connect(profile)
    except WorkerError as error:
        fail(str(error))
    host, port = sock.getsockname()[:2]
    click.echo(f"API        http://{host}:{port} (docs /docs, contract docs/events.md)")
    click.echo(f"Temporal   {client.service_client.config.target_host}, namespace {client.namespace}, "
               f"task queue {settings.task_queue}")
    click.echo(f"Playbooks  {settings.lifecycle_file}")
    click.echo(f"Callers    {', '.join(sorted(settings.tokens))}")
    await serve(create_app(settings, client), sock)


class DevApi:
    """The API of `lifecycle dev`, prepared before anything starts so mistakes fail early."""

    def __init__(self, state_dir: Path, lifecycle_file: Path, port: int) -> None:
        from api.server import ApiServerError, listen
        from api.settings import TOKENS_VAR, ApiSettings, ApiSettingsError, dev_token

        self.token_file = dev_token(state_dir)
        tokens = f"dev:{self.token_file.read_text().strip()}"
        if os.environ.get(TOKENS_VAR):
            tokens = f"{os.environ[TOKENS_VAR]},{tokens}"
        try:
            self.settings = ApiSettings.from_env({**os.environ, TOKENS_VAR: tokens}, lifecycle_file=lifecycle_file)
            self.sock = listen("127.0.0.1", port)
        except (ApiSettingsError, ApiServerError) as error:
            fail(str(error))

    async def serve(self, client, stop: asyncio.Event) -> None:
        """Print how to call it, then serve until `stop` is set."""
        from api import create_app
        from api.server import serve
        from api.settings import TOKENS_VAR

        host, port = self.sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        click.echo(f"API        {url} (docs {url}/docs: any user name, the token as password)")
        click.echo(f"Token      {self.token_file} (caller 'dev'; add callers with {TOKENS_VAR})")
        click.echo(f"Try        curl -H \"Authorization: Bearer $(cat {self.token_file})\" {url}/v1/playbooks")
        await serve(create_app(self.settings, client), self.sock, stop)
