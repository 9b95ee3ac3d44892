"""Run a lifecycle worker: the customer workflows and every activity, on one task queue.

Connection settings come from Temporal's standard environment configuration
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE,
TEMPORAL_CONFIG_FILE), so the same worker runs against the embedded dev server, a
self-hosted cluster or Temporal Cloud. Start as many as needed: they share the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkflowRunner

from shutdown import until_stopped

if TYPE_CHECKING:
    from activities.config import LifecycleSettings

DEFAULT_ADDRESS = "localhost:7233"
"""Where to connect when neither TEMPORAL_ADDRESS nor a profile says otherwise."""

GRACEFUL_SHUTDOWN = timedelta(seconds=10)
"""How long running activities may finish after SIGTERM before they are cancelled."""

FLUSH_ON_STOP = timedelta(seconds=3)
"""How long a stopping worker spends importing its analytics journal (an import takes well under
a second; what is left is imported by the next worker on the same state directory)."""

WORKFLOW_TASK_SLOTS = 10
"""Workflow tasks a worker takes at once. A Python worker runs activations one at a time (the
GIL), and a task's 10-second start-to-close clock runs from the moment the worker takes it: with
the SDK's default of 100, a burst of events (a thousand updates to a hundred customers) queued
tasks inside the worker until they timed out, and their updates failed. Ten keep the core busy
while some tasks wait on local activities; the rest wait in Temporal, where no clock runs."""

log = logging.getLogger("lifecycle.worker")


class WorkerError(RuntimeError):
    """The worker cannot start or stopped on an error; the message is one line."""


def customer_workflows() -> list[type]:
    """The workflow classes to register (none until `workflows.CUSTOMER_WORKFLOWS` exists)."""
    import workflows  # late: the workflow package pulls in the whole engine

    return list(getattr(workflows, "CUSTOMER_WORKFLOWS", []))


def customer_workflow_runner() -> WorkflowRunner | None:
    """The sandbox the workflow package asks for (`workflows.WORKFLOW_RUNNER`), if any."""
    import workflows

    return getattr(workflows, "WORKFLOW_RUNNER", None)


def worker_activities(settings: LifecycleSettings, lifecycle_file: Path) -> list[Callable[..., Any]]:
    """Every activity, bound to these settings and this lifecycle file."""
    from activities.delivery import Delivery
    from activities.playbooks import PlaybookSource
    from analytics.activity import RecordSink

    records = RecordSink(settings.state_dir)
    delivery = Delivery(settings, records)
    return [delivery.deliver_all, delivery.deliver_with_records, PlaybookSource(lifecycle_file).load_stage,
            records.store_records]


async def connect(
    profile: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Client:
    """A client configured like any Temporal tool: env config profile, env variables, overrides.

    Payloads use the pydantic data converter, since events, actions and state are pydantic.
    """
    try:
        profile_config = ClientConfigProfile.load(profile, override_env_vars=env)
    except Exception as error:  # the bridge reports TOML and env errors as plain exceptions
        raise WorkerError(f"Temporal client configuration: {_first_line(error)}") from error
    config = dict(profile_config.to_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.update(overrides)
    target = config.pop("target_host")
    try:
        return await Client.connect(target, data_converter=pydantic_data_converter, **config)
    except RuntimeError as error:
        namespace = config.get("namespace", "default")
        raise WorkerError(
            f"cannot connect to Temporal at {target} (namespace {namespace}): {_plain_connect_error(error)}"
        ) from error


def _plain_connect_error(error: BaseException) -> str:
    """A connect error without the transport's nested debug text, when we know what it says."""
    detail = _first_line(error)
    for needle, plain in (("Connection refused", "connection refused"), ("dns error", "unknown host"),
                          ("timed out", "timed out"),
                          ("get_system_info", "it answers, but not as Temporal's gRPC frontend (the web UI's "
                                              "port? the frontend's is 7233 unless set otherwise)")):
        if needle.lower() in detail.lower():
            return plain
    return detail


async def run_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    *,
    stop: asyncio.Event | None = None,
    workflow_runner: WorkflowRunner | None = None,
) -> None:
    """Poll `task_queue` until `stop` is set, or until SIGTERM/SIGINT when no `stop` is given.

    On stop the worker stops polling, lets running activities finish (up to
    GRACEFUL_SHUTDOWN) and returns. A fatal worker error (such as an unknown namespace)
    is raised as WorkerError. The workflow sandbox defaults to `workflows.WORKFLOW_RUNNER`.
    """
    options: dict[str, Any] = {}
    runner = workflow_runner or (customer_workflow_runner() if workflows else None)
    if runner is not None:
        options["workflow_runner"] = runner
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
        **options,
    )
    async def shut_down() -> None:
        log.info("stopping worker on %s", task_queue)
        await worker.shutdown()

    sinks = _record_sinks(activities)
    for sink in sinks:
        sink.start()  # what a worker killed on this state directory journaled and had not imported
    try:
        await until_stopped(worker.run(), shut_down, stop)  # re-raises a fatal worker error
    except RuntimeError as error:
        raise WorkerError(f"worker on {task_queue} stopped: {_first_line(error)}") from error
    finally:
        for sink in sinks:
            try:  # the records journaled so far reach the store before the worker exits
                await asyncio.wait_for(sink.flush(), FLUSH_ON_STOP.total_seconds())
            except Exception as error:  # timed out, or a failing store: the next worker imports them
                log.warning("analytics store not written before stopping (%s); the journal keeps the records",
                            _first_line(error))


def _record_sinks(activities: Sequence[Callable[..., Any]]) -> list[Any]:
    from analytics.activity import RecordSink

    owners = {id(owner): owner for owner in (getattr(function, "__self__", None) for function in activities)}
    return [owner for owner in owners.values() if isinstance(owner, RecordSink)]


async def _check_search_attributes(client: Client) -> None:
    """Refuse to start on a namespace without the lifecycle's search attributes: every workflow
    task that sets a missing one would fail, and customers would stop moving."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    from workflows.contract import SEARCH_ATTRIBUTES

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
    except RPCError as error:  # e.g. a cloud namespace that does not let a worker list them
        if error.status == RPCStatusCode.NOT_FOUND:  # the namespace itself: polling would fail too
            raise WorkerError(f"namespace {client.namespace} does not exist on "
                              f"{client.service_client.config.target_host}: create it, or set "
                              f"TEMPORAL_NAMESPACE to the lifecycle's namespace") from error
        log.warning("could not check the search attributes (%s); see docs/operations.md", _first_line(error))
        return
    known = set(listed.custom_attributes) | set(listed.system_attributes)
    missing = [key for key in SEARCH_ATTRIBUTES if key.name not in known]
    if missing:
        kind = IndexedValueType.Name(missing[0].indexed_value_type).removeprefix("INDEXED_VALUE_TYPE_")
        raise WorkerError(
            f"namespace {client.namespace} lacks the search attributes {', '.join(key.name for key in missing)}: "
            f"register them before starting a worker (docs/operations.md, e.g. temporal operator "
            f"search-attribute create --name {missing[0].name} --type {kind.title().replace('_', '')})"
        )


def _check_playbooks(lifecycle_file: Path) -> None:
    """Raise PlaybookLoadError, listing every mistake, when the lifecycle file does not load.

    A broken stage playbook or template holds only the customers entering its stage (each on a
    `load` incident, released when the file is fixed), so a worker restarted while one is
    broken must run every other stage: refusing to start would stop every customer."""
    from engine.errors import PlaybookLoadError
    from engine.loader import load_project
    from engine.project import held_stages

    try:
        load_project(lifecycle_file)
    except PlaybookLoadError as error:
        held = held_stages(error)
        if held is None:
            raise
        for problem in error.errors:
            log.warning("%s", problem)
        log.warning("customers entering %s are held until their files load; the other stages run",
                    ", ".join(held) or "no stage")


async def serve(
    task_queue: str | None = None, profile: str | None = None, playbooks: Path | None = None
) -> None:
    """Connect from the environment and run a worker with everything registered.

    Configuration and playbooks are checked before connecting, so a mistake is reported
    at start-up rather than by the first lifecycle that needs it.
    """
    from activities.config import LifecycleSettings

    settings = LifecycleSettings.from_env()
    if playbooks is not None:
        settings = settings.model_copy(update={"playbooks": playbooks})
    _check_playbooks(settings.lifecycle_file)
    queue = task_queue or settings.task_queue
    client = await connect(profile)
    await _check_search_attributes(client)
    log.info("worker on %s, namespace %s, queue %s, playbooks %s",
             client.service_client.config.target_host, client.namespace, queue,
             settings.lifecycle_file)
    await run_worker(client, queue, customer_workflows(),
                     worker_activities(settings, settings.lifecycle_file))


def main(
    task_queue: str | None = None, profile: str | None = None, playbooks: Path | None = None
) -> int:
    """Run until SIGTERM/SIGINT; on a start-up failure print readable lines and return 1."""
    from activities.config import SettingsError
    from engine.errors import PlaybookLoadError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(task_queue, profile, playbooks))
    except (WorkerError, SettingsError) as error:  # one readable line, never a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    except PlaybookLoadError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return 1
    return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


if __name__ == "__main__":
    # Settings from the environment only (`lifecycle worker` has the options). Leave without
    # interpreter finalization, as `lifecycle` does: Temporal's core threads can abort it.
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
