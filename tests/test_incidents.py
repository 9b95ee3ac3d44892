"""A step that fails at run time holds the customer, visibly, on a real dev server: the status,
the outbox and a visibility query show it; a fix on disk, a retry or a skip releases it."""

from __future__ import annotations

import uuid

from engine.state import EventReceipt, Incident
from harness import Harness, break_check_in, eventually, record_history

BROKEN = "Subject: Hello {{ customer.name }}\n\nYou have {{ 10 // facts.open_tickets }} credits.\n"


async def held(harness: Harness, customer: str) -> Incident | None:
    return (await harness.lifecycles.status(customer)).incident


async def test_a_template_that_fails_at_render_time_holds_the_customer_until_the_file_is_fixed(harness):
    template = harness.folder / "templates" / "summary.txt"
    good = template.read_text()
    template.write_text(BROKEN)
    customer = f"c-{uuid.uuid4().hex[:6]}"
    assert (await harness.start(customer)).status == "accepted"

    incident = await eventually(lambda: held(harness, customer))
    assert (incident.kind, incident.step, incident.stage) == ("template", "summary", "set_expectations")
    assert "ZeroDivisionError" in incident.error
    assert harness.steps(customer) == []
    [record] = [entry for entry in harness.outbox() if entry["customer_id"] == customer]
    assert (record["kind"], record["step"], record["role"]) == ("incident", "summary", "operator")
    assert "ZeroDivisionError" in record["guideline"] and f"lifecycle retry {customer}" in record["guideline"]

    async def listed() -> bool:
        query = f"LifecycleIncident = 'template' AND CustomerId = '{customer}'"
        return any([execution async for execution in harness.lifecycles.client.list_workflows(query)])

    await eventually(listed)
    # Events are still taken while the customer is held.
    assert (await harness.event(customer, "ticket.opened", ticket_id="T-1")).status == "accepted"

    template.write_text(good)
    await eventually(lambda: _sent(harness, customer, "summary"), timeout=60)
    status = await harness.lifecycles.status(customer)
    assert status.incident is None
    assert [r.detail["action"] for r in status.recent if r.kind == "resolved"] == ["retry"]
    await record_history(harness.lifecycles.client, customer, "incident-held-then-fixed-on-disk")


async def _sent(harness: Harness, customer: str, step: str) -> bool:
    return any(e["kind"] == "message" and e["step"] == step and e["customer_id"] == customer
               for e in harness.outbox())


async def test_an_operator_retry_runs_the_held_step_again_once_the_data_allows_it(harness):
    (harness.folder / "templates" / "summary.txt").write_text(BROKEN)
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await eventually(lambda: held(harness, customer))
    await harness.event(customer, "ticket.opened", ticket_id="T-1")  # open_tickets: 0 -> 1
    released = await harness.lifecycles.release_incident(customer, "retry", by="ops@example.com")
    assert isinstance(released, Incident) and released.release == "retry"
    await eventually(lambda: _sent(harness, customer, "summary"))
    message = next(e for e in harness.outbox() if e["kind"] == "message" and e["customer_id"] == customer)
    assert "You have 10 credits." in message["body"]
    resolved = [r for r in (await harness.lifecycles.status(customer)).recent if r.kind == "resolved"]
    assert resolved[0].detail["by"] == "ops@example.com"
    await record_history(harness.lifecycles.client, customer, "incident-retried-by-an-operator")


async def test_an_operator_skip_goes_on_after_the_held_step_and_a_second_release_is_refused(harness):
    (harness.folder / "templates" / "summary.txt").write_text(BROKEN)
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    await eventually(lambda: held(harness, customer))
    assert isinstance(await harness.lifecycles.release_incident(customer, "skip"), Incident)

    async def released() -> bool:
        return (await harness.lifecycles.status(customer)).incident is None

    await eventually(released)

    async def not_listed_as_held() -> bool:
        query = f"LifecycleIncident IS NOT NULL AND CustomerId = '{customer}'"
        return not [execution async for execution in harness.lifecycles.client.list_workflows(query)]

    await eventually(not_listed_as_held)
    again = await harness.lifecycles.release_incident(customer, "retry")
    assert isinstance(again, EventReceipt) and (again.status, again.code) == ("rejected", "no_incident")
    # The skipped stage still moves on with its transition; the next stage runs.
    moved = await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    assert moved.transition == "delivery_check_in"


async def test_a_stage_that_does_not_load_is_one_warning_line_in_the_worker_log_not_a_traceback(harness, caplog):
    # Every held customer is looked at again and again (2 s, 5 s, ... then every 15 minutes):
    # the SDK logged each failed load as a warning with a twenty-line traceback.
    break_check_in(harness.folder)
    customer = f"c-{uuid.uuid4().hex[:6]}"
    await harness.start(customer)
    caplog.set_level("DEBUG")
    await harness.event(customer, "order.delivered", delivered_at="2026-03-09")
    incident = await eventually(lambda: held(harness, customer))
    assert incident.kind == "load"
    lines = [record for record in caplog.records if record.levelname in ("WARNING", "ERROR")
             and "delivery_check_in" in record.getMessage()]
    assert lines and all(record.exc_info is None for record in lines)
    assert "stage delivery_check_in does not load, the customer is held: " in lines[0].getMessage()
    assert "delivery-check-in.yaml:" in lines[0].getMessage()
    assert not [record for record in caplog.records if record.levelname == "WARNING" and record.exc_info
                and "StageLoadFailed" in str(record.exc_info[1])]
