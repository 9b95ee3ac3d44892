"""GET /v1/analytics/...: the questions of docs/analytics.md over the analytics store.

Same bearer tokens, rate limit and error bodies as the event API; every answer has its JSON
Schema in the OpenAPI document. The store is `$LIFECYCLE_STATE_DIR/analytics.duckdb`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import require_caller
from api.errors import ApiError

Ratio = float | None


class FunnelRow(BaseModel):
    stage: str
    customers: int
    entries: int
    now_here: int
    lost_from: int
    next_stage: str | None
    conversion: Ratio


class TimeInStageRow(BaseModel):
    stage: str
    left: int
    still_in: int
    p50_days: float | None
    p90_days: float | None
    mean_days: float | None


class PromiseRow(BaseModel):
    about: str | None = None
    made_by: str | None = None
    segment: str | None = None
    made: int
    kept: int
    broken: int
    kept_rate: Ratio


class Recovery(BaseModel):
    broken: int
    with_recovery_task: int
    recovered_in_time: int
    recovery_in_time_rate: Ratio
    customers: int
    answered_after: int
    mean_score_after: float | None
    nps_after: float | None


class NpsRow(BaseModel):
    group: str | None = None
    segment: str | None = None
    cohort: str | None = None
    month: str | None = None
    broken_promise: str | None = None
    answers: int
    promoters: int
    passives: int
    detractors: int
    nps: float


class Referrals(BaseModel):
    requests: int
    customers_asked: int
    referrals_made: int
    customers_referring: int
    referring_after_asked: int
    conversion: Ratio


class TaskRow(BaseModel):
    role: str
    created: int
    done: int
    done_on_time: int
    done_late: int
    cancelled: int
    snoozed: int
    reassigned: int
    overdue: int
    escalated: int
    on_time_rate: Ratio


class MessageRow(BaseModel):
    kind: str
    channel: str
    category: str
    records: int
    customers: int


class OptOutRow(BaseModel):
    month: str
    customers: int
    opt_outs: int


class ConsentChangeRow(BaseModel):
    channel: str
    category: str
    granted: int
    withdrawn: int
    customers: int


class PolicyReasonRow(BaseModel):
    reason: str
    rule: str
    records: int
    customers: int


class Consent(BaseModel):
    """Consent and opt-outs (docs/analytics.md, "Consent and opt-outs")."""

    opt_outs: list[OptOutRow]
    changes: list[ConsentChangeRow]
    suppressed: list[PolicyReasonRow]
    deferred: list[PolicyReasonRow]


class ChannelRow(BaseModel):
    channel: str
    customers: int
    share: Ratio


class Revenue(BaseModel):
    customers: int
    orders: int
    revenue: float
    repeat_customers: int
    lost: int
    revenue_per_customer: float | None
    average_order_value: float | None
    repeat_rate: Ratio
    customer_years: float
    orders_per_customer_year: float
    yearly_churn: float
    expected_years: float
    clv: float


class RankedCustomer(BaseModel):
    customer_id: str
    revenue: float
    orders: int
    open_tickets: int
    broken_promises: int
    latest_score: int | None
    days_since_contact: float | None
    risk: float


class Summary(BaseModel):
    records: int
    customers: int
    first: datetime | None
    last: datetime | None


class Report(BaseModel):
    """Every question at once (what `lifecycle report --json` prints)."""

    summary: Summary
    funnel: list[FunnelRow]
    time_in_stage: list[TimeInStageRow]
    promises_by_kind: list[PromiseRow]
    promises_by_role: list[PromiseRow]
    promises_by_segment: list[PromiseRow]
    recovery: Recovery
    nps: list[NpsRow]
    nps_by_segment: list[NpsRow]
    nps_by_cohort: list[NpsRow]
    nps_by_month: list[NpsRow]
    nps_by_broken_promise: list[NpsRow]
    referrals: Referrals
    task_sla: list[TaskRow]
    messages: list[MessageRow]
    consent_opt_outs: list[OptOutRow]
    consent_changes: list[ConsentChangeRow]
    consent_suppressed: list[PolicyReasonRow]
    consent_deferred: list[PolicyReasonRow]
    channel_preferences: list[ChannelRow]
    revenue: Revenue
    top_value: list[RankedCustomer]
    top_risk: list[RankedCustomer]


def _errors() -> dict[int | str, dict[str, Any]]:
    from api.routes import errors

    return errors(401, 404, 408, 413, 422, 429, 500, 503)


router = APIRouter(prefix="/v1/analytics", tags=["analytics"], dependencies=[Depends(require_caller)],
                   responses=_errors())


_BOUND = "a date (its midnight UTC) or a time with its UTC offset; a time without one is 422"


class Window:
    """The query parameters every question takes."""

    def __init__(self, since: str | None = Query(None, max_length=100, description="Records at or after this time: "
                                                 f"{_BOUND}.", examples=["2026-03-01"]),
                 until: str | None = Query(None, max_length=100, description=f"Records before this time: {_BOUND}.",
                                           examples=["2026-04-01T00:00:00+02:00"]),
                 segment: str | None = Query(None, max_length=200, description="Customers of this segment.")):
        self.since, self.until, self.segment = _bound(since, "since"), _bound(until, "until"), segment


def _bound(text: str | None, name: str) -> datetime | None:
    from analytics.metrics import window_bound

    if text is None:
        return None
    try:
        return window_bound(text)
    except ValueError as error:
        raise ApiError(422, "invalid_request", f"{name}: {error}", field=name) from None


async def _ask(request: Request, window: Window, question: str, *args: Any) -> Any:
    from analytics.metrics import Analyst, Filters
    from analytics.store import StoreBusy, StoreError, open_store

    path = request.app.state.analytics_store

    def run() -> Any:
        with open_store(path, read_only=True) as store:
            analyst = Analyst(store, Filters(since=window.since, until=window.until, segment=window.segment))
            return getattr(analyst, question)(*args)

    import duckdb

    try:
        return await asyncio.to_thread(run)
    except duckdb.Error as error:  # a store written by a newer release, a damaged file: say so, never a 500
        raise ApiError(503, "store_unavailable", f"{path}: {str(error).splitlines()[0]}") from None
    except StoreBusy as error:
        raise ApiError(503, "store_busy", str(error), headers={"Retry-After": "1"}) from None
    except StoreError as error:
        if not path.exists():
            raise ApiError(404, "no_store", "no analytics store yet: records appear as lifecycles run") from None
        raise ApiError(503, "store_unavailable", str(error)) from None


@router.get("/report", response_model=Report, summary="Every question at once")
async def report(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "report")


@router.get("/funnel", response_model=list[FunnelRow], summary="Funnel, conversion and drop-off by stage")
async def funnel(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "funnel")


@router.get("/time-in-stage", response_model=list[TimeInStageRow], summary="Days in each stage: p50, p90, mean")
async def time_in_stage(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "time_in_stage")


@router.get("/promises", response_model=list[PromiseRow], summary="Promises made, kept and broken")
async def promises(request: Request, window: Window = Depends(),
                   by: Literal["about", "made_by", "segment"] = Query("about")) -> Any:
    return await _ask(request, window, "promises", by)


@router.get("/recovery", response_model=Recovery, summary="What followed a broken promise")
async def recovery(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "recovery")


@router.get("/nps", response_model=list[NpsRow], summary="Net Promoter Score, overall or grouped")
async def nps(request: Request, window: Window = Depends(),
              by: Literal["segment", "cohort", "month", "broken_promise"] | None = Query(None)) -> Any:
    return await _ask(request, window, "nps", by)


@router.get("/referrals", response_model=Referrals, summary="Referral requests and referrals made")
async def referrals(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "referrals")


@router.get("/tasks", response_model=list[TaskRow], summary="Task SLA by role")
async def tasks(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "task_sla")


@router.get("/messages", response_model=list[MessageRow], summary="Messages by kind, channel and category")
async def messages(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "messages")


@router.get("/consent", response_model=Consent, summary="Opt-outs, consent changes, suppressed and deferred sends")
async def consent(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "consent")


@router.get("/channels", response_model=list[ChannelRow], summary="Customers by preferred channel")
async def channels(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "channel_preferences")


@router.get("/revenue", response_model=Revenue, summary="Revenue, repeat purchases and the CLV estimate")
async def revenue(request: Request, window: Window = Depends()) -> Any:
    return await _ask(request, window, "revenue")


@router.get("/rank", response_model=list[RankedCustomer], summary="Customers by value or by risk")
async def rank(request: Request, window: Window = Depends(), by: Literal["value", "risk"] = Query("value"),
               top: int = Query(20, ge=1, le=1000)) -> Any:
    return await _ask(request, window, "ranking", by, top)
