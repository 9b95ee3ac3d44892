"""Readiness: Temporal answers, and a worker polls the lifecycles' task queue *now*.

Events sent while no worker polls are queued (docs/events.md), not applied, so a load
balancer should route to an API instance only when it is ready.

Temporal lists a poller for minutes after its worker died, so being listed proves little.
Two signals tell a live worker from a dead one:

- `last_access_time` of each poller (DescribeTaskQueue): an idle worker's long poll returns
  and is renewed about every 60 s, so a poller seen within `POLLER_FRESH` (70 s) is alive;
- worker heartbeats (ListWorkers, servers 1.29+, SDKs that send them): a worker that stopped
  cleanly says so as it goes, so its poller stops counting at once instead of 70 s later.
  A poller last seen after that heartbeat belongs to a new process with the same identity
  (a restarted container) and counts again.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from temporalio.api.enums.v1 import TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ApiError
from api.events import refused
from workflows.client import TemporalRefused, refusal

CHECK_TIMEOUT = timedelta(seconds=5)
POLLER_FRESH = timedelta(seconds=70)
"""A poller seen this recently is alive: long polls are renewed about every 60 s."""

_GONE = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)


async def live_pollers(client: Client, task_queue: str, now: datetime | None = None) -> int:
    """How many workers poll `task_queue` for workflow tasks now (see the module docstring)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    response = await client.workflow_service.describe_task_queue(request, timeout=CHECK_TIMEOUT)
    now = now or datetime.now(timezone.utc)
    stopped = await stopped_workers(client, task_queue)
    live = 0
    for poller in response.pollers:
        seen = poller.last_access_time.ToDatetime(timezone.utc)
        if now - seen > POLLER_FRESH:
            continue
        if poller.identity in stopped and stopped[poller.identity] >= seen:
            continue
        live += 1
    return live


async def stopped_workers(client: Client, task_queue: str) -> dict[str, datetime]:
    """Worker identity → when it said it was stopping, from worker heartbeats (empty when the
    server keeps none or refuses to tell: readiness then rests on `last_access_time` alone)."""
    request = ListWorkersRequest(namespace=client.namespace, page_size=200,
                                 query=f"TaskQueue = '{task_queue.replace(chr(39), '')}'")
    try:
        response = await client.workflow_service.list_workers(request, timeout=CHECK_TIMEOUT)
    except RPCError:
        return {}
    stopped: dict[str, datetime] = {}
    for info in response.workers_info:
        beat = info.worker_heartbeat
        if beat.status in _GONE:
            at = beat.heartbeat_time.ToDatetime(timezone.utc)
            stopped[beat.worker_identity] = max(at, stopped.get(beat.worker_identity, at))
    return stopped


async def check_ready(client: Client, task_queue: str) -> int:
    """The number of live pollers, or a 503 ApiError saying what is missing."""
    try:
        pollers = await live_pollers(client, task_queue)
    except RPCError as error:
        answer = refusal(error)
        if isinstance(answer, TemporalRefused):  # e.g. the API's namespace does not exist: 502
            raise refused(answer) from None
        raise ApiError(503, "temporal_unavailable", f"Temporal does not answer: {error.message}") from None
    if pollers == 0:
        raise ApiError(503, "no_worker", f"no worker polls task queue '{task_queue}' "
                       f"(none seen in the last {POLLER_FRESH.total_seconds():g}s)")
    return pollers
