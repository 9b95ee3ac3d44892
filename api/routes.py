"""The /v1 endpoints: events in, one customer's status, listings, the lifecycle's contract."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

from api.auth import require_caller
from api.errors import ApiError, validation_error
from api.events import EventDesk, busy, refused, rejection
from api.limits import ID_CHARACTERS, ID_PATTERN, KEY_PATTERN, parse_json
from api.models import (
    BatchAnswer, BatchResult, CustomerPage, ErrorAnswer, EventAnswer, EventDescription, ListedCustomer,
    PlaybooksAnswer, StageDescription, TransitionDescription,
)
from api.openapi import BATCH_REQUEST, EVENT_REQUEST, request_body
from api.paging import PageTokens
from api.settings import ApiSettings
from api.view import LifecycleView
from engine.events import declared_events, payload_json_schema
from engine.state import EventReceipt, Incident
from workflows.client import LifecycleClient, LifecycleNotFound, TemporalBusy, TemporalRefused, refusal
from workflows.contract import LifecycleStatus

T = TypeVar("T")

_DESCRIPTIONS = {
    400: "The body is not JSON.", 401: "No valid bearer token.", 404: "Not found.",
    408: "The request body did not arrive in time.",
    502: "The API's own Temporal configuration is wrong (namespace, credentials).",
    429: "Too many requests from this caller, or events in flight for one lifecycle; wait `Retry-After` seconds.",
    409: "Conflict.", 410: "The lifecycle has ended.", 413: "The body is too large.",
    422: "A field is invalid; `error.field` names it.", 503: "Temporal is unreachable.",
    504: "The engine did not answer in time; send again with the same idempotency key.",
    500: "A bug: `internal` (the server log has the details), or `engine_error` (the engine failed taking "
         "the event; the customer's timeline records it).",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error codes, all with the error body."""
    return {code: {"model": ErrorAnswer, "description": _DESCRIPTIONS[code]} for code in codes}


@dataclass
class ApiState:
    """What the routes share, kept on `app.state.api`."""

    settings: ApiSettings
    view: LifecycleView
    lifecycles: LifecycleClient
    desk: EventDesk
    pages: PageTokens


def state(request: Request) -> ApiState:
    """FastAPI dependency: the shared state."""
    return request.app.state.api


OPTIONAL_ID = rf"^[{ID_CHARACTERS}]{{0,200}}$"  # an id, or empty for "no filter"

router = APIRouter(prefix="/v1", dependencies=[Depends(require_caller)],
                   responses=errors(401, 408, 413, 429, 500, 502, 503))


async def _json_body(request: Request) -> Any:
    return parse_json(await request.body())


@router.post(
    "/events", status_code=202, response_model=EventAnswer, tags=["events"],
    summary="Send an event about one customer",
    responses={202: {"model": EventAnswer, "description": "Accepted (acted on now), or queued: stored durably and "
                     "applied when a worker takes it."},
               200: {"model": EventAnswer, "description": "Duplicate: this idempotency key was taken before; "
                     "the body is the first answer."}, **errors(400, 404, 409, 410, 422, 504)},
    openapi_extra=request_body(EVENT_REQUEST),
)
async def post_event(
    request: Request,
    api: ApiState = Depends(state),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", pattern=KEY_PATTERN, max_length=200,
                                         description="Alternative to `idempotency_key` in the body."),
) -> JSONResponse:
    """Deliver an event: 202 accepted, 200 duplicate, or an error naming why."""
    status, body = await api.desk.take(await _json_body(request), idempotency_key)
    return JSONResponse(body, status_code=status)


@router.post(
    "/events:batch", response_model=BatchAnswer, tags=["events"], summary="Send up to 500 events",
    responses=errors(400, 422, 504), openapi_extra=request_body(BATCH_REQUEST),
)
async def post_events_batch(request: Request, api: ApiState = Depends(state)) -> BatchAnswer:
    """Deliver many events; each gets the status code and body it would have had alone.

    Events of one customer are taken one after another, in the order given."""
    raw = await _json_body(request)
    if not isinstance(raw, dict) or set(raw) != {"events"} or not isinstance(raw["events"], list):
        raise ApiError(422, "invalid_request", 'the body must be {"events": [...]}', field="events")
    if len(raw["events"]) > api.settings.max_batch:
        raise ApiError(422, "invalid_request", f"at most {api.settings.max_batch} events in one batch",
                       field="events")
    answers = await api.desk.take_all(raw["events"])
    return BatchAnswer(results=[BatchResult(status=status, body=body) for status, body in answers])


@router.get("/customers/{customer_id}", response_model=LifecycleStatus, tags=["customers"],
            summary="One customer's lifecycle", responses=errors(404, 409, 422, 504))
async def get_customer(
    customer_id: str = Path(pattern=ID_PATTERN, max_length=200), api: ApiState = Depends(state),
) -> LifecycleStatus:
    """Stage, facts, promise ledger, what the stage waits for, and recent timeline."""
    return await _ask_lifecycle(api.lifecycles.status(customer_id, api.settings.event_timeout),
                                api.settings.event_timeout + 10)


async def _ask_lifecycle(call: Awaitable[T], timeout: float) -> T:
    """One call to a customer's lifecycle, its failures answered as the API answers them."""
    try:
        return await asyncio.wait_for(call, timeout)
    except LifecycleNotFound as error:
        raise ApiError(404, "customer_not_found", str(error)) from None
    except TemporalRefused as error:
        raise refused(error) from None
    except TemporalBusy as error:
        raise busy(error) from None
    except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
        raise ApiError(504, "temporal_timeout", "the lifecycle did not answer in time") from None
    except TemporalError as error:
        raise ApiError(503, "temporal_unavailable", f"Temporal: {error}") from None


class IncidentRelease(BaseModel):
    """Who asks; the caller's name when left out. Unknown fields are refused, as in every body."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field("", max_length=200, description="Recorded on the customer's timeline.")


async def _release(action: str, customer_id: str, request: Request, api: ApiState) -> Incident:
    try:
        raw = await _json_body(request) if await request.body() else {}
        by = IncidentRelease.model_validate(raw).by or request.state.caller
    except ValidationError as error:
        raise validation_error(error) from None
    answer = await _ask_lifecycle(api.lifecycles.release_incident(customer_id, action, by),
                                  api.settings.event_timeout)
    if isinstance(answer, EventReceipt):
        raise rejection(answer)
    return answer


@router.post("/customers/{customer_id}/retry", response_model=Incident, tags=["incidents"],
             summary="Run the held step again", responses=errors(400, 404, 409, 410, 422, 504))
async def retry_incident(request: Request, customer_id: str = Path(pattern=ID_PATTERN, max_length=200),
                         api: ApiState = Depends(state)) -> Incident:
    """The customer is held on an incident: run the held step again (after the data or the playbook
    was fixed). Optional body `{"by": "..."}`. 409 `no_incident` when the customer is not held."""
    return await _release("retry", customer_id, request, api)


@router.post("/customers/{customer_id}/skip", response_model=Incident, tags=["incidents"],
             summary="Go on after the held step", responses=errors(400, 404, 409, 410, 422, 504))
async def skip_incident(request: Request, customer_id: str = Path(pattern=ID_PATTERN, max_length=200),
                        api: ApiState = Depends(state)) -> Incident:
    """The customer is held on an incident: go on after the held step without running it.
    Optional body `{"by": "..."}`. 409 `no_incident` when the customer is not held."""
    return await _release("skip", customer_id, request, api)


@router.get("/customers", response_model=CustomerPage, tags=["customers"],
            summary="Who is in which stage", responses=errors(409, 422, 504))
async def list_customers(
    api: ApiState = Depends(state),
    stage: str | None = Query(None, pattern=OPTIONAL_ID, max_length=200, description="Only this stage."),
    playbook: str | None = Query(None, pattern=OPTIONAL_ID, max_length=200, description="Only this playbook."),
    include_ended: bool = Query(False, description="Also lifecycles that have ended."),
    held: bool = Query(False, description="Only customers held on an incident."),
    page_size: int = Query(100, ge=1, le=1000),
    page_token: str | None = Query(None, max_length=4096, description="`next_page_token` of the previous page."),
) -> CustomerPage:
    """Lifecycles from Temporal's visibility store (eventually consistent: a second or so behind)."""
    stage, playbook = stage or None, playbook or None  # `?stage=` means no filter
    if stage is not None and stage not in api.view.project().lifecycle.stages:
        raise ApiError(422, "invalid_request", f"unknown stage '{stage}'", field="stage")
    scope = f"{stage or ''}|{playbook or ''}|{include_ended}|{held}"
    try:
        found, token = await asyncio.wait_for(api.lifecycles.list_page(
            stage=stage, playbook=playbook, running_only=not include_ended, page_size=page_size,
            page_token=api.pages.open(scope, page_token), held=held), api.settings.event_timeout)
    except (asyncio.TimeoutError, RPCTimeoutOrCancelledError):
        raise ApiError(504, "temporal_timeout", "the visibility store did not answer in time") from None
    except RPCError as error:
        answer = refusal(error)
        if isinstance(answer, TemporalRefused):
            raise refused(answer) from None
        raise ApiError(503, "temporal_unavailable", f"Temporal: {error.message}") from None
    return CustomerPage(
        customers=[ListedCustomer(customer_id=item.customer_id, stage=item.stage, playbook=item.playbook,
                                  status=item.status, started_at=item.started_at, incident=item.incident or None)
                   for item in found],
        next_page_token=api.pages.seal(scope, token),
    )


@router.get("/playbooks", response_model=PlaybooksAnswer, tags=["playbooks"],
            summary="The lifecycle: stages, transitions, events and their JSON Schemas")
async def get_playbooks(api: ApiState = Depends(state)) -> PlaybooksAnswer:
    """What other systems need to know to send events: names, payload schemas, versions."""
    project = api.view.project()
    lifecycle = project.lifecycle
    versions = "".join(f"{stage}={version};" for stage, version in sorted(project.versions.items()))
    return PlaybooksAnswer(
        lifecycle=lifecycle.lifecycle, description=lifecycle.description, initial_stage=lifecycle.initial_stage,
        version=hashlib.sha256(versions.encode()).hexdigest()[:16],
        stages=[StageDescription(name=name, description=spec.description, playbook=spec.playbook,
                                 terminal=spec.terminal, version=project.versions.get(name, ""))
                for name, spec in lifecycle.stages.items()],
        transitions=[TransitionDescription(from_=t.from_, on=t.on, to=t.to, when=t.when)
                     for t in lifecycle.transitions],
        events=[EventDescription(name=name, description=spec.description, starts_lifecycle=spec.starts_lifecycle,
                                 builtin=name not in lifecycle.events,  # task.completed and the contact policy's
                                 updates=sorted(spec.updates), schema_=payload_json_schema(spec))
                for name, spec in declared_events(lifecycle).items()],
    )
