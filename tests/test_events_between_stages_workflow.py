"""An event sent while a customer changes stage, on the bundled lifecycle and a real dev server.

The help desk holds its answer to the sale stage's task hand-off, so set_expectations is inside
its delivery activity when `order.delivered` moves the customer on: the transition waits for that
activity. An `order.delivery_at_risk` sent then was answered 202 and never applied (before the
patch `events-between-stages`); it is now judged by delivery_check_in, which cannot take it (409,
as a moment later), and the one set_expectations had not read yet is recorded as dropped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from harness import HOLD_AT_MOST, Harness, HelpDesk, arrived, eventually, record_history, stage_of
from test_analytics_workflow import stored
from test_cli_operate import run
from test_workflow import patch_ids
from workflows.lifecycle import BASELINE_3

BUNDLED = Path(__file__).parent.parent / "playbooks"


async def test_an_event_sent_while_the_stage_changes_is_judged_by_the_next_stage_and_none_is_lost(
        client: Client, tmp_path: Path, desk: HelpDesk):
    folder = tmp_path / "playbooks"
    shutil.copytree(BUNDLED, folder, ignore=shutil.ignore_patterns("tests"))
    harness = Harness(client, folder, tmp_path / "state", tasks="webhook",
                      webhook={"url": desk.url, "timeout": HOLD_AT_MOST + 10})
    customer = f"bs{uuid.uuid4().hex[:6]}"
    came, release = desk.hold(customer, "brief_account_manager")
    async with harness.worker:
        assert (await harness.start(customer)).status == "accepted"
        await eventually(lambda: arrived(came))  # set_expectations is inside its delivery activity
        first = await harness.event(customer, "order.delivery_at_risk", key="oms-risk-1", reason="supplier")
        assert (first.status, first.stage) == ("accepted", "set_expectations")  # it waits for it, later on
        delivered = await harness.event(customer, "order.delivered", key="oms-delivered",
                                        order_id="A-1", delivered_at="2026-03-09")
        assert delivered.transition == "delivery_check_in"
        again = await harness.event(customer, "order.delivery_at_risk", key="oms-risk-2", reason="weather")
        # Before the fix: accepted, stage set_expectations, and never applied.
        assert (again.status, again.code, again.stage) == ("rejected", "stage_cannot_take", "set_expectations")
        assert again.reason == ("stage 'delivery_check_in' cannot take 'order.delivery_at_risk' "
                                "(the customer is moving there from 'set_expectations')")
        release.set()

        await eventually(lambda: stage_of(harness, customer, "delivery_check_in"))
        later = await harness.event(customer, "order.delivery_at_risk", key="oms-risk-3", reason="weather")
        assert (later.status, later.code) == ("rejected", "stage_cannot_take")  # the same answer, a moment later
        status = await harness.lifecycles.status(customer)
        dropped = [(record.stage, record.detail) for record in status.recent if record.kind == "failed"]
        assert dropped == [("set_expectations", {
            "event": "order.delivery_at_risk", "key": "oms-risk-1",
            "error": "dropped: the customer moved to 'delivery_check_in' before a wait took it"})]
        # `lifecycle status` says so too, with why.
        env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host,
               "LIFECYCLE_PLAYBOOKS": str(folder), "LIFECYCLE_TASK_QUEUE": harness.task_queue}
        shown = await run(env, "status", customer)
        assert ("failed          order.delivery_at_risk: dropped: the customer moved to 'delivery_check_in' "
                "before a wait took it") in shown.stdout, shown.stdout
        # ... and the analytics store has it, as every record.
        await eventually(lambda: _true(("failed", "set_expectations") in
                                       [(row["kind"], row["stage"]) for row in stored(harness, customer)]))
        history = await client.get_workflow_handle(f"lifecycle/{customer}").fetch_history()
        assert patch_ids(history) == [BASELINE_3]
        await record_history(client, customer, "event-sent-while-the-stage-changes")


async def _true(value: bool) -> bool:
    return value
