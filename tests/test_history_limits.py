"""Temporal's limits, met on a real dev server: thousands of events to one waiting customer,
resent events, and payloads near the limits never freeze or lose a lifecycle."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
from temporalio.client import Client

from harness import FIXTURE, Harness, eventually, pending_step, record_history
from workflows.contract import LifecycleResult


def waiting_fixture(tmp_path):
    """The fast fixture, with a survey that waits an hour: a stage that waits while events pour in."""
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    warranty = folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("timeout: 30s", "timeout: 1h"))
    return folder


async def runs_of(client: Client, customer: str) -> int:
    return len([e async for e in client.list_workflows(f"WorkflowId = 'lifecycle/{customer}'")])


async def history_length(client: Client, customer: str) -> int:
    return len((await client.get_workflow_handle(f"lifecycle/{customer}").fetch_history()).events)


async def settled(client: Client, customer: str) -> bool:
    """No workflow task and no activity in flight (e.g. the analytics records of the last event,
    written by a local activity inside a workflow task): the history grows no further until
    something happens."""
    description = (await client.get_workflow_handle(f"lifecycle/{customer}").describe()).raw_description
    return not description.pending_activities and not description.HasField("pending_workflow_task")


async def to_the_survey(harness: Harness, customer: str) -> None:
    await harness.start(customer)
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))


async def test_a_stage_that_waits_continues_as_new_in_the_middle_and_keeps_its_place(client, tmp_path):
    harness = Harness(client, waiting_fixture(tmp_path), tmp_path / "state", max_history=60)
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await to_the_survey(harness, customer)
        for number in range(40):
            receipt = await harness.event(customer, "ticket.opened", ticket_id=f"T-{number}")
            assert receipt.status == "accepted", receipt
        status = await harness.lifecycles.status(customer)
        assert status.pending.step == "await_survey" and status.facts["open_tickets"] == 40
        assert await runs_of(client, customer) >= 3  # continued-as-new inside the wait
        runs = [e async for e in client.list_workflows(f"WorkflowId = 'lifecycle/{customer}'")]
        # Most recent first: a middle run starts inside the wait and ends continuing-as-new in it.
        middle = sorted(runs, key=lambda e: e.start_time)[1].run_id
        await harness.event(customer, "survey.answered", score=10)
        handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
        result = await handle.result()
        # Open tickets keep a satisfied customer from the referral; nothing was sent twice.
        assert result.outcome == "closed"
        assert harness.steps(customer) == ["summary", "check_in", "survey"]
        await record_history(client, customer, "continued-as-new-inside-a-wait-middle-run", run_id=middle)
        await record_history(client, customer, "continued-as-new-inside-a-wait-last-run")


async def test_a_resent_event_costs_no_history(client, tmp_path):
    harness = Harness(client, waiting_fixture(tmp_path), tmp_path / "state")
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await to_the_survey(harness, customer)
        assert (await harness.event(customer, "ticket.opened", key="t-1", ticket_id="T-1")).status == "accepted"
        await eventually(lambda: settled(client, customer))
        before = await history_length(client, customer)
        for _ in range(5):
            assert (await harness.event(customer, "ticket.opened", key="t-1", ticket_id="T-1")).status == "duplicate"
        assert await history_length(client, customer) == before


async def test_an_event_over_the_size_budget_is_refused_and_the_status_stays_readable(client, tmp_path):
    harness = Harness(client, waiting_fixture(tmp_path), tmp_path / "state")
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await to_the_survey(harness, customer)
        huge = await harness.event(customer, "ticket.opened", ticket_id="x" * 900_000)
        assert (huge.status, huge.code) == ("rejected", "too_large")
        for number in range(30):  # just under the budget, again and again
            assert (await harness.event(customer, "ticket.opened", ticket_id=f"{number}" + "y" * 60_000)).status \
                == "accepted"
        status = await harness.lifecycles.status(customer)
        assert status.facts["open_tickets"] == 30
        assert len(status.model_dump_json()) < 600_000
        assert (await harness.event(customer, "survey.answered", score=3)).status == "accepted"


@pytest.mark.parametrize("events", [10_000])
async def test_ten_thousand_events_to_one_waiting_customer_are_all_answered_and_it_moves_on(client, tmp_path, events):
    harness = Harness(client, waiting_fixture(tmp_path), tmp_path / "state")
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await to_the_survey(harness, customer)
        queue = iter(range(events))
        statuses: list[str] = []

        async def sender() -> None:
            for number in queue:
                receipt = await harness.event(customer, "ticket.opened", key=f"t-{number}", ticket_id=f"T-{number}")
                statuses.append(receipt.status)

        await asyncio.gather(*(sender() for _ in range(8)))
        assert statuses.count("accepted") == events
        assert (await harness.lifecycles.status(customer)).facts["open_tickets"] == events
        assert (await harness.event(customer, "survey.answered", score=10)).status == "accepted"
        handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
        assert (await handle.result()).outcome == "closed"
        assert await runs_of(client, customer) >= 10  # 1,000 updates per run at most


TYPED_WARRANTY = """\
playbook: warranty_follow_up
vars:
  deadline: {type: timestamp}
  grace: {type: duration}
steps:
  - {kind: set, id: set_deadline, var: deadline, value: now + hours(2)}
  - {kind: set, id: set_grace, var: grace, value: hours(1)}
  - {kind: send, id: survey, template: summary}
  - kind: wait_for
    id: await_survey
    events: [survey.answered]
    timeout: 1h
  - kind: if
    id: still_typed
    when: vars.deadline - vars.grace > now && vars.grace == duration('1h')
    then:
      - {kind: wait, id: until_deadline, until: vars.deadline}
"""


async def test_timestamps_and_durations_keep_their_types_across_continue_as_new(client, tmp_path):
    folder = waiting_fixture(tmp_path)
    (folder / "warranty-follow-up.yaml").write_text(TYPED_WARRANTY)
    harness = Harness(client, folder, tmp_path / "state", max_history=60)
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await to_the_survey(harness, customer)
        set_at = (await harness.lifecycles.status(customer)).since
        for number in range(30):  # several continue-as-new inside the wait
            await harness.event(customer, "ticket.opened", ticket_id=f"T-{number}")
        assert await runs_of(client, customer) >= 2
        await harness.event(customer, "survey.answered", score=9)
        # After the JSON of continue-as-new, `vars.deadline` is still a timestamp (the wait
        # reads it) and `vars.grace` a duration (the comparison holds): no incident.
        await eventually(lambda: pending_step(harness, customer, "until_deadline"))
        status = await harness.lifecycles.status(customer)
        assert status.incident is None
        assert abs((status.pending.until - set_at).total_seconds() - 7200) < 60
