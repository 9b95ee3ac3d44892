"""The FastAPI application: routes, auth, limits, error bodies and the OpenAPI document."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from temporalio.client import Client

from api.auth import Callers, require_caller, require_docs_caller
from api.errors import install_error_handlers
from api.events import EventDesk
from api.health import check_ready
from api.idempotency import IdempotencyRecord
from api.limits import BodyLimit, BodyTimeout, BodyTooLarge, too_large, too_slow
from api.models import Health
from api.openapi import install_openapi
from api.paging import PageTokens
from api.ratelimit import CallerRate
from api.routes import ApiState, errors, router
from api.settings import ApiSettings
from api.task_routes import router as task_router
from api.view import LifecycleView
from workflows.client import LifecycleClient

DESCRIPTION = """\
Other systems (order management, help desk, CRM, billing, surveys) move customers through
their lifecycle by sending events. Every call needs `Authorization: Bearer <token>`.
See docs/events.md for the whole contract, including idempotency and the plain-Temporal road.
"""


def create_app(settings: ApiSettings, client: Client, view: LifecycleView | None = None) -> FastAPI:
    """The API on `client` (with the pydantic data converter) for the lifecycle in `settings`."""
    view = view or LifecycleView(settings.lifecycle_file)
    lifecycles = LifecycleClient(client, view.project().lifecycle, settings.task_queue)
    desk = EventDesk(lifecycles, IdempotencyRecord(settings.idempotency_entries), settings.event_timeout,
                     current=lambda: view.project().lifecycle)
    app = FastAPI(title="lifecycle-playbooks API", version="1", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api = ApiState(settings=settings, view=view, lifecycles=lifecycles, desk=desk,
                             pages=PageTokens(settings.tokens))
    app.state.callers = Callers(settings.tokens)
    app.state.rate = CallerRate(*settings.rate) if settings.rate else None
    install_error_handlers(app)

    async def body_too_large(request: Request, error: Exception) -> JSONResponse:
        return too_large(settings.max_body_bytes).response()

    async def body_too_slow(request: Request, error: Exception) -> JSONResponse:
        return too_slow(settings.body_timeout).response()

    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_exception_handler(BodyTimeout, body_too_slow)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
    app.include_router(router)
    app.include_router(task_router)
    from api.analytics import router as analytics_router  # GET /v1/analytics/... (docs/analytics.md)

    app.state.analytics_store = settings.analytics_store
    app.include_router(analytics_router)

    # HEAD too: load balancers and uptime checkers often probe with it.
    @app.api_route("/healthz", methods=["GET", "HEAD"], response_model=Health, tags=["health"],
                   summary="The process is up (no token needed)")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.api_route("/readyz", methods=["GET", "HEAD"], response_model=Health, tags=["health"],
                   dependencies=[Depends(require_caller)], summary="Temporal answers and a worker polls the task queue",
                   responses=errors(401, 500, 502, 503))
    async def readyz() -> Health:
        pollers = await check_ready(client, settings.task_queue)
        return Health(status="ready", task_queue=settings.task_queue, pollers=pollers)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_docs_caller)])
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_docs_caller)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="lifecycle-playbooks API")

    install_openapi(app, view.project, settings.max_batch)
    return app
