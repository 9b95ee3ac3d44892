"""The customer-lifecycle workflow on a real Temporal dev server, with real activities.

Durations in the fixture lifecycle are seconds: the time-skipping server is not available
here, and long timelines are covered by the simulator, which runs the same interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.events import INTEGRAL_NUMBERS_ARE_INTS
from engine.loader import load_project
from engine.state import Event
from engine.steps.task import TASK_AT_HAND_OFF
from workflows import CUSTOMER_WORKFLOWS, WORKFLOW_RUNNER
from harness import FIXTURE, HISTORIES, Harness, eventually, long_lifecycle, pending_step, record_history, stage_of
from workflows.client import LifecycleNotFound, PayloadError
from workflows.contract import EVENT_UPDATE, LifecycleResult
from workflows.lifecycle import BASELINE, BASELINE_2, BASELINE_3, EVENTS_BETWEEN_STAGES, STRICT_RULES



async def test_a_lifecycle_runs_through_all_four_stages(harness: Harness, client: Client):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    assert (await harness.start(customer)).status == "accepted"
    await eventually(lambda: stage_of(harness, customer, "set_expectations"))
    delivered = await harness.event(customer, "order.delivered", delivered_at="2026-03-12")
    assert delivered.transition == "delivery_check_in"
    await eventually(lambda: stage_of(harness, customer, "warranty_follow_up"))
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    assert (await harness.event(customer, "survey.answered", score=10)).status == "accepted"
    handle = client.get_workflow_handle(f"lifecycle/{customer}", result_type=LifecycleResult)
    result = await handle.result()
    assert result.outcome == "closed"
    assert harness.steps(customer) == ["summary", "apology", "check_in", "survey", "ask_referral"]
    status = await harness.lifecycles.status(customer)
    assert status.promises["delivery_date"]["state"] == "broken"
    await record_history(client, customer, "four-stages")


def patch_ids(history: WorkflowHistory) -> list[str]:
    """The patch ids a history's markers record, in order."""
    return [json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
            for event in history.events
            if event.HasField("marker_recorded_event_attributes")
            and event.marker_recorded_event_attributes.marker_name == "core_patch"]


async def test_a_new_lifecycle_asks_one_patch_for_every_change_before_the_baseline(harness: Harness, client: Client):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await harness.event(customer, "order.delivered", delivered_at="2026-03-12")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    history = await client.get_workflow_handle(f"lifecycle/{customer}").fetch_history()
    # Every other test here runs with all of them in force, the changes after the first
    # baseline (TASK_AT_HAND_OFF, EVENTS_BETWEEN_STAGES, ...) too: one patch, one marker.
    assert patch_ids(history) == [BASELINE_3]
    # The histories recorded before the baseline ask each change where they always did.
    older = WorkflowHistory.from_json("analytics-records", (HISTORIES / "analytics-records.json").read_text())
    assert BASELINE not in patch_ids(older) and STRICT_RULES in patch_ids(older)
    # One recorded on the first baseline (which replays asking TASK_AT_HAND_OFF at the top of
    # the run: False), two on the second (one with a later change asked on its own), one on the third.
    for name, patches in (("records-ride-with-deliveries", [BASELINE]),
                          ("task-completed-while-its-hand-off-was-in-flight", [BASELINE_2]),
                          ("event-sent-while-the-stage-changes-patch-asked-on-its-own",
                           [BASELINE_2, EVENTS_BETWEEN_STAGES]),
                          ("event-sent-while-the-stage-changes", [BASELINE_3])):
        recorded = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
        assert patch_ids(recorded) == patches, name


async def test_stage_is_visible_to_a_visibility_query(harness: Harness):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)

    async def listed() -> bool:
        found = await harness.lifecycles.list(stage="set_expectations")
        return any(item.customer_id == customer for item in found)

    await eventually(listed)


async def test_duplicate_idempotency_key_is_acted_on_once(harness: Harness):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    first = await harness.event(customer, "ticket.opened", key="t-1", ticket_id="T-1")
    second = await harness.event(customer, "ticket.opened", key="t-1", ticket_id="T-1")
    assert (first.status, second.status) == ("accepted", "duplicate")
    assert (await harness.lifecycles.status(customer)).facts["open_tickets"] == 1


async def test_unknown_event_and_bad_payload_are_rejected_and_the_lifecycle_is_unharmed(
        harness: Harness, client: Client):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    with pytest.raises(PayloadError, match="unknown event 'order.teleported'"):
        await harness.event(customer, "order.teleported")
    with pytest.raises(PayloadError, match="delivered_at"):
        await harness.event(customer, "order.delivered", delivered_at="tomorrow-ish")
    # Past the client-side check, the workflow's update validator refuses it before history.
    handle = client.get_workflow_handle(f"lifecycle/{customer}")
    bad = Event(customer_id=customer, name="order.delivered", data={"delivered_at": "nope"})
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("event", bad)
    wrong_stage = await harness.event(customer, "referral.made", referred_name="Bo")
    assert (wrong_stage.status, wrong_stage.code, wrong_stage.stage) == (
        "rejected", "stage_cannot_take", "set_expectations")
    assert "cannot take 'referral.made'" in wrong_stage.reason
    delivered = await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    assert delivered.transition == "delivery_check_in"


async def test_event_for_an_unknown_customer_is_not_found_unless_it_starts_a_lifecycle(harness: Harness):
    with pytest.raises(LifecycleNotFound):
        await harness.event(f"nobody-{uuid.uuid4().hex[:6]}", "ticket.opened", ticket_id="T")


async def test_editing_a_playbook_mid_stage_keeps_the_running_version(harness: Harness):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    pinned = (await harness.lifecycles.status(customer)).version
    # Edit the running stage (drop the referral) and the next one (rename its step).
    warranty = harness.folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("id: to_referral\n        stage: referral_request",
                                                     "id: to_referral\n        stage: closed"))
    referral = harness.folder / "referral-request.yaml"
    referral.write_text(referral.read_text().replace("id: ask_referral", "id: ask_referral_v2"))
    await harness.event(customer, "survey.answered", score=10)
    await eventually(lambda: stage_of(harness, customer, "referral_request"))  # old warranty version ran
    status = await harness.lifecycles.status(customer)
    assert status.version != pinned
    await eventually(lambda: _true("ask_referral_v2" in harness.steps(customer)))  # new version next


async def _true(value: bool) -> bool:
    return value


async def test_long_lifecycles_continue_as_new_and_keep_their_state(client: Client, tmp_path: Path):
    async with long_lifecycle(client, tmp_path) as (harness, customer):
        duplicate = await harness.event(customer, "ticket.opened", key="k0", ticket_id="T0")
        assert duplicate.status == "duplicate"  # idempotency keys survive continue-as-new
        status = await harness.lifecycles.status(customer)
        assert status.facts["open_tickets"] == 4
        runs = [run async for run in client.list_workflows(f"WorkflowId = 'lifecycle/{customer}'")]
        assert len(runs) > 1
        first = min(runs, key=lambda run: run.start_time)
        await record_history(client, customer, "continued-as-new", run_id=first.run_id)
        assert harness.steps(customer) == ["summary", "check_in", "survey"]
        # Each finished run replays as it ran: a run that starts inside a stage loads its
        # playbook (a local activity) before anything else, which once moved a patch marker.
        replayer = Replayer(workflows=CUSTOMER_WORKFLOWS, data_converter=pydantic_data_converter,
                            workflow_runner=WORKFLOW_RUNNER)
        for run in runs:
            if run.status != WorkflowExecutionStatus.RUNNING:
                handle = client.get_workflow_handle(f"lifecycle/{customer}", run_id=run.run_id)
                await replayer.replay_workflow(await handle.fetch_history())


async def test_recorded_histories_replay_deterministically():

    files = sorted(HISTORIES.glob("*.json"))
    assert files, "no recorded histories in tests/histories"
    replayer = Replayer(workflows=CUSTOMER_WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=WORKFLOW_RUNNER)
    for path in files:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await replayer.replay_workflow(history)


def test_the_fixture_lifecycle_loads():
    assert set(load_project(FIXTURE / "lifecycle.yaml").playbooks) == {
        "set_expectations", "delivery_check_in", "warranty_follow_up", "referral_request"}


async def test_event_after_the_lifecycle_ended_is_rejected(harness: Harness, client: Client):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    await eventually(lambda: pending_step(harness, customer, "await_survey"))
    await harness.event(customer, "survey.answered", score=3)  # a detractor: no referral, the end
    await client.get_workflow_handle(f"lifecycle/{customer}").result()
    late = await harness.event(customer, "ticket.opened", ticket_id="T-9")
    assert (late.status, late.reason) == ("rejected", "the lifecycle has ended")


async def test_email_goes_out_over_smtp_and_a_refused_address_is_recorded_not_lost(
        client: Client, tmp_path: Path, smtp_server):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state", channels={"email": "smtp"},
                      smtp={"host": smtp_server.host, "port": smtp_server.port})
    good, bad = f"g-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    smtp_server.refuse(f"{bad}@example.com")
    async with harness.worker:
        await harness.start(good)
        await harness.start(bad)
        await eventually(lambda: _true(len(smtp_server.messages) == 1))
        assert smtp_server.messages[0]["To"] == f"{good}@example.com"
        assert smtp_server.messages[0]["Subject"] == "Hello Ada"

        async def failure_recorded() -> bool:
            status = await harness.lifecycles.status(bad)
            return any(r.kind == "failed" and r.step == "summary" for r in status.recent)

        await eventually(failure_recorded)
        # The lifecycle goes on: the customer can still be moved to the next stage.
        moved = await harness.event(bad, "order.delivered", delivered_at="2026-03-09")
        assert moved.transition == "delivery_check_in"


async def test_a_scaled_clock_compresses_waits_for_demos(client: Client, tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(FIXTURE, folder)
    harness = Harness(client, folder, tmp_path / "state")
    harness.lifecycles.time_scale = 60  # the survey's 30 s timeout passes in half a second
    async with harness.worker:
        customer = f"c-{uuid.uuid4().hex[:6]}"
        await harness.start(customer)
        await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
        # Without the scale this would take more than the 30 s the timeout is worth.
        await eventually(lambda: _true("call_customer" in harness.steps(customer)), timeout=20)
        status = await harness.lifecycles.status(customer)
        timeout = next(r for r in status.recent if r.kind == "timeout")
        surveyed = next(r for r in status.recent if r.step == "survey")
        assert (timeout.at - surveyed.at).total_seconds() >= 30  # in the lifecycle's own time
        await client.get_workflow_handle(f"lifecycle/{customer}").result()
        await record_history(client, customer, "survey-timeout-scaled-clock")


async def test_a_playbook_broken_on_disk_holds_the_next_stage_entry_until_it_is_fixed(harness: Harness):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    check_in = harness.folder / "delivery-check-in.yaml"
    good = check_in.read_text()
    check_in.write_text(good.replace("duration: 2s", "duration: 2 seconds please"))
    moved = await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    assert moved.transition == "delivery_check_in"

    async def held_with_the_reason() -> bool:
        status = await harness.lifecycles.status(customer)
        incident = status.incident
        return incident is not None and incident.kind == "load" and "not a duration" in incident.error \
            and "delivery-check-in.yaml:13:15" in incident.error and status.version == ""

    await eventually(held_with_the_reason)

    async def listed_as_held() -> bool:
        query = f"LifecycleIncident = 'load' AND LifecycleStage = 'delivery_check_in' AND CustomerId = '{customer}'"
        return any([execution async for execution in harness.lifecycles.client.list_workflows(query)])

    await eventually(listed_as_held)
    check_in.write_text(good)
    await eventually(lambda: pending_step(harness, customer, "await_survey"), timeout=60)
    assert harness.steps(customer) == ["summary", "check_in", "survey"]
    status = await harness.lifecycles.status(customer)
    assert status.incident is None
    assert [r.detail["action"] for r in status.recent if r.kind == "resolved"] == ["retry"]


async def test_a_broken_playbook_holds_only_its_own_stage(harness: Harness):
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    warranty = harness.folder / "warranty-follow-up.yaml"
    warranty.write_text(warranty.read_text().replace("kind: wait_for", "kind: wait_four", 1))
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    # delivery_check_in is sound: it runs; warranty_follow_up, entered after it, is held.
    async def held_in_warranty() -> bool:
        status = await harness.lifecycles.status(customer)
        return status.stage == "warranty_follow_up" and status.incident is not None \
            and status.incident.kind == "load" and "warranty-follow-up.yaml" in status.incident.error

    await eventually(held_in_warranty)
    assert harness.steps(customer) == ["summary", "check_in"]


async def test_the_workflow_itself_refuses_a_consent_the_policy_would_misread(harness: Harness, client: Client):
    """The client checks a profile before it sends; an `event` update that skips it meets the same
    check inside: `consent: {sms: "yes"}` would read as no consent and reach the customer elsewhere."""
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    handle = client.get_workflow_handle(f"lifecycle/{customer}")
    misread = Event(customer_id=customer, name="ticket.opened", data={"ticket_id": "T-1"},
                    customer={"consent": {"email": True, "sms": "yes"}})
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(EVENT_UPDATE, misread)
    assert "field 'customer.consent.sms' must be true or false" in str(info.value.cause)
    assert info.value.cause.type == "EventRejected" and info.value.cause.details[0] == "invalid_payload"
    status = await harness.lifecycles.status(customer)
    assert status.customer["consent"] == {"email": True} and status.facts["open_tickets"] == 0
