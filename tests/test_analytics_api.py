"""GET /v1/analytics/... on a real `lifecycle api` process: the hand-computed fixture's answers,
the event API's auth and error bodies, and a JSON Schema for every answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from temporalio.testing import WorkflowEnvironment

from analytics.store import STORE_FILE, open_store
from analytics.stream import RecordBatch
from harness import FIXTURE
from test_analytics_metrics import C1, C2
from test_api import AUTH, ApiProcess, start_api


@pytest.fixture(scope="module")
def api(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    root = tmp_path_factory.mktemp("analytics-api")
    with open_store(root / "state" / STORE_FILE) as store:
        store.insert([
            RecordBatch(lifecycle="l", customer_id="c1", chain="x", first_seq=0, records=C1,
                        customer={"id": "c1", "segment": "consumer", "preferred_channel": "email"}),
            RecordBatch(lifecycle="l", customer_id="c2", chain="y", first_seq=0, records=C2,
                        customer={"id": "c2", "segment": "enterprise", "preferred_channel": "sms"}),
        ])
    process = start_api(temporal_env, FIXTURE, "analytics-api", root / "api.log", LIFECYCLE_STATE_DIR=str(root / "state"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def empty_api(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    root = tmp_path_factory.mktemp("analytics-api-empty")
    process = start_api(temporal_env, FIXTURE, "analytics-api", root / "api.log", LIFECYCLE_STATE_DIR=str(root / "state"))
    try:
        yield process
    finally:
        process.stop()


def get(api: ApiProcess, path: str, **params) -> httpx.Response:
    return httpx.get(f"{api.url}/v1/analytics/{path}", params=params, headers=AUTH, timeout=30)


def test_the_answers_are_the_hand_computed_ones(api: ApiProcess):
    nps = get(api, "nps", by="segment").json()
    assert [(row["segment"], row["answers"], row["nps"]) for row in nps] == [("consumer", 1, -100.0),
                                                                           ("enterprise", 2, 100.0)]
    assert get(api, "nps", since="2026-03-01T00:00:00Z").json()[0]["nps"] == 0.0
    assert get(api, "revenue").json()["clv"] == 600.0
    risk = get(api, "rank", by="risk", top=1).json()
    assert [(row["customer_id"], row["risk"]) for row in risk] == [("c1", 4.13)]
    assert get(api, "recovery").json()["broken"] == 1
    assert get(api, "consent").json() == {"opt_outs": [], "changes": [], "deferred": [], "suppressed": [
        {"reason": "no channel with consent", "rule": "(none)", "records": 1, "customers": 1}]}
    assert get(api, "consent", segment="consumer").json()["suppressed"] == []
    promises = get(api, "promises", by="made_by", segment="consumer").json()
    assert promises == [{"about": None, "made_by": "sales_rep", "segment": None, "made": 2, "kept": 1,
                         "broken": 1, "kept_rate": 0.5}]


def test_every_answer_matches_its_json_schema(api: ApiProcess):
    document = httpx.get(f"{api.url}/openapi.json", headers=AUTH, timeout=30).json()
    for name in ("report", "funnel", "time-in-stage", "promises", "recovery", "nps", "referrals", "tasks",
                 "messages", "consent", "channels", "revenue", "rank"):
        operation = document["paths"][f"/v1/analytics/{name}"]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        response = get(api, name)
        assert response.status_code == 200, (name, response.text)
        # The answer's schema, with the document's components for its $refs.
        jsonschema.Draft202012Validator({"components": document["components"], **schema}).validate(response.json())


def test_it_takes_the_event_apis_tokens(api: ApiProcess):
    response = httpx.get(f"{api.url}/v1/analytics/nps", timeout=30)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(f"{api.url}/v1/analytics/nps", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401


@pytest.mark.parametrize("path, params, field", [
    ("nps", {"by": "shoe_size"}, "by"),
    ("rank", {"top": "0"}, "top"),
    ("funnel", {"since": "last tuesday"}, "since"),
    ("funnel", {"since": "2026-03-01T09:00:00"}, "since"),  # no UTC offset: never read as UTC
    ("rank", {"until": "2026-03-01 09:00"}, "until"),
])
def test_a_bad_parameter_is_422_naming_it(api: ApiProcess, path: str, params: dict, field: str):
    response = get(api, path, **params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_window_is_a_date_or_a_time_with_its_offset(api: ApiProcess):
    day = get(api, "nps", since="2026-03-01").json()
    assert day == get(api, "nps", since="2026-03-01T00:00:00Z").json()
    assert day == get(api, "nps", since="2026-03-01T01:00:00+01:00").json()
    message = get(api, "nps", since="2026-03-01T00:00:00").json()["error"]["message"]
    assert "since: '2026-03-01T00:00:00' needs its UTC offset" in message


def test_no_store_yet_is_404_with_a_code(empty_api: ApiProcess):
    response = get(empty_api, "funnel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_store"
