"""Every error as JSON `{"error": {"code", "message", "field"?}}`, FastAPI's own included.

A caller never sees HTML or a stack trace: routing errors (404, 405), request validation
(422) and unexpected exceptions (500) all go through the handlers installed here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 408: "body_timeout", 413: "body_too_large",
    415: "unsupported_media_type", 422: "invalid_request",
}


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code, a message, maybe a field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return error_body(self.code, self.message, self.field, **self.extra)

    def response(self) -> JSONResponse:
        """This error as a response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """`{"error": {...}}`, with `field` only when one field is at fault."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update({key: value for key, value in extra.items() if value is not None})
    return {"error": error}


def validation_error(error: ValidationError | RequestValidationError, prefix: str = "") -> ApiError:
    """The first problem of a pydantic validation as a 422 naming its field."""
    first = error.errors()[0]
    # FastAPI prefixes the location with where the value came from: body, query, path, header.
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    field = ".".join([prefix, *loc] if prefix else loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = "unknown field"
    return ApiError(422, "invalid_request", f"{field}: {message}" if field else message, field=field)


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error.response()


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
    message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
    return JSONResponse(error_body(code, message), status_code=error.status_code,
                        headers=getattr(error, "headers", None))


async def _request_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return validation_error(error).response()


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server logs the traceback; the caller
    # learns only that it was our fault.
    return JSONResponse(error_body("internal", "internal error; the server log has the details"),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to a JSON error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
