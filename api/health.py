"""Readiness: Temporal answers, and some worker polls the lifecycles' task queue.

Events sent while no worker polls would wait until one does (and the caller's request
would time out), so a load balancer should route to an API instance only when it is ready.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ApiError

CHECK_TIMEOUT = timedelta(seconds=5)


async def workflow_pollers(client: Client, task_queue: str) -> int:
    """How many workers the server has seen polling `task_queue` for workflow tasks lately.

    The server keeps a poller listed for a few minutes after its last poll, so a worker that
    just died may still count for that long.
    """
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    response = await client.workflow_service.describe_task_queue(request, timeout=CHECK_TIMEOUT)
    return len(response.pollers)


async def check_ready(client: Client, task_queue: str) -> int:
    """The number of pollers, or a 503 ApiError saying what is missing."""
    try:
        pollers = await workflow_pollers(client, task_queue)
    except RPCError as error:
        raise ApiError(503, "temporal_unavailable", f"Temporal does not answer: {error.message}") from None
    if pollers == 0:
        raise ApiError(503, "no_worker", f"no worker polls task queue '{task_queue}'")
    return pollers
