"""How Temporal's answers become receipts and HTTP codes, and the event budgets: pure, no server.

The messages are Temporal server 1.32's own (service/history/workflow/update); the end-to-end
cases that a dev server can produce are in tests/test_api.py and tests/test_cli_operate.py.
"""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.events import REFUSALS, rejection
from engine.events import PayloadError
from engine.limits import EVENT_DATA_BYTES, STRING_BYTES, TooLarge, check_size, is_id, is_key
from engine.state import Event, EventReceipt
from workflows.client import (
    TemporalBusy, TemporalRefused, check_envelope, check_sizes, is_closed, is_missing_workflow, refusal,
    update_failure,
)
from workflows.contract import DUPLICATE, REJECTED


def test_a_key_the_validator_has_seen_is_answered_duplicate_with_the_stage():
    receipt = update_failure(ApplicationError("seen", "delivery_check_in", type=DUPLICATE))
    assert receipt == EventReceipt(status="duplicate", stage="delivery_check_in")
    assert update_failure(ApplicationError("seen", type=DUPLICATE)).status == "duplicate"


def test_a_rejection_keeps_its_code_and_stage():
    receipt = update_failure(ApplicationError("no", "stage_cannot_take", "closed", type=REJECTED))
    assert (receipt.status, receipt.code, receipt.stage, receipt.reason) == ("rejected", "stage_cannot_take",
                                                                            "closed", "no")


@pytest.mark.parametrize("status, message, code", [
    (RPCStatusCode.FAILED_PRECONDITION, "limit on number of total updates has been reached (2000)",
     "update_limit_reached"),
    (RPCStatusCode.FAILED_PRECONDITION,
     "Unable to perform workflow execution update due to unexpected workflow task failure.", "workflow_task_failed"),
    (RPCStatusCode.FAILED_PRECONDITION,
     "Unable to perform workflow execution update due to Workflow Task in failed state.", "workflow_task_failed"),
    (RPCStatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.", "too_large"),
    (RPCStatusCode.RESOURCE_EXHAUSTED, "grpc: received message larger than max (5000000 vs. 4194304)", "too_large"),
    (RPCStatusCode.NOT_FOUND, "Namespace nowhere is not found.", "namespace_not_found"),
    (RPCStatusCode.PERMISSION_DENIED, "Request unauthorized.", "temporal_permission_denied"),
    (RPCStatusCode.INVALID_ARGUMENT, "WorkflowId length exceeds limit.", "temporal_refused"),
])
def test_refusals_that_retrying_will_not_fix_are_4xx_with_a_code(status, message, code):
    error = refusal(RPCError(message, status, b""))
    assert isinstance(error, TemporalRefused) and error.code == code
    assert 400 <= REFUSALS[code] < 600 and (REFUSALS[code] < 500 or code in ("namespace_not_found",
                                                                              "temporal_permission_denied"))
    assert REFUSALS["update_limit_reached"] == 409 and REFUSALS["too_large"] == 413


def test_too_many_updates_in_flight_is_busy_and_unreachable_stays_an_rpc_error():
    busy = refusal(RPCError("limit on number of concurrent in-flight updates has been reached (10)",
                            RPCStatusCode.RESOURCE_EXHAUSTED, b""))
    assert isinstance(busy, TemporalBusy)
    down = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
    assert refusal(down) is down


def test_a_closed_workflow_is_told_from_a_missing_one():
    for message in ("workflow execution already completed", "workflow update was aborted by closing workflow"):
        assert is_closed(RPCError(message, RPCStatusCode.NOT_FOUND, b""))
    missing = RPCError("workflow not found for ID: lifecycle/x", RPCStatusCode.NOT_FOUND, b"")
    assert is_missing_workflow(missing) and not is_closed(missing)
    assert not is_missing_workflow(RPCError("Namespace x is not found.", RPCStatusCode.NOT_FOUND, b""))


@pytest.mark.parametrize("code, status, api_code", [
    ("ended", 410, "lifecycle_ended"), ("stage_cannot_take", 409, "stage_cannot_take_event"),
    ("not_a_start_event", 404, "customer_not_found"), ("invalid_payload", 422, "invalid_payload"),
    ("too_large", 422, "payload_too_large"), ("unknown_task", 422, "unknown_task"), ("", 409, "event_rejected"),
    ("rule_failed", 422, "rule_failed"), ("internal_error", 500, "engine_error"),
])
def test_engine_rejection_codes_map_to_http(code, status, api_code):
    error = rejection(EventReceipt(status="rejected", code=code, reason="why", stage="s"))
    assert (error.status, error.code, error.message) == (status, api_code, "why")


# --- budgets and ids ------------------------------------------------------------------------


def test_a_long_string_is_named_by_its_path():
    with pytest.raises(TooLarge) as caught:
        check_size({"items": [{"note": "x" * (STRING_BYTES + 1)}]}, "data", EVENT_DATA_BYTES)
    assert (caught.value.field, caught.value.limit) == ("items[0].note", STRING_BYTES)
    # Bytes, not characters: 5,000 four-byte characters are 20,000 bytes.
    with pytest.raises(TooLarge):
        check_size({"name": "😀" * 5000}, "customer", 16 * 1024, inner="customer.")
    check_size({"note": "x" * STRING_BYTES}, "data", EVENT_DATA_BYTES)  # exactly at the budget


def test_data_over_its_budget_is_refused_as_a_whole():
    data = {f"f{n}": "x" * 10_000 for n in range(7)}
    with pytest.raises(TooLarge) as caught:
        check_size(data, "data", EVENT_DATA_BYTES)
    assert (caught.value.field, caught.value.limit) == ("data", EVENT_DATA_BYTES)
    assert "65536" in str(caught.value)


def test_events_are_checked_for_ids_keys_and_sizes_before_temporal():
    with pytest.raises(PayloadError) as caught:
        check_envelope(Event(customer_id="a/b", name="order.placed"))
    assert caught.value.field == "customer_id"
    with pytest.raises(PayloadError):
        check_envelope(Event(customer_id="a", name="order.placed", idempotency_key="has space"))
    with pytest.raises(TooLarge) as too_large:
        check_sizes(Event(customer_id="a", name="e", customer={"name": "n" * 20_000}))
    assert too_large.value.field == "customer.name"
    assert is_id("cust-1042@eu:7") and not is_id("") and not is_id("x" * 201) and not is_id("a b")
    assert is_key("oms:delivered:A-1") and not is_key("a\tb") and not is_key("é")
