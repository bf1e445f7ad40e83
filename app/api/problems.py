"""RFC 9457 problem details: one error body for every failure the API reports."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from app.store.db import is_busy
from app.store.errors import Busy, Conflict, Forbidden, NotFound

PROBLEM_JSON = "application/problem+json"
# Seconds a client is told to wait when other writers held the database past its busy timeout.
STORE_BUSY_RETRY_AFTER_S = 2
INTERNAL_DETAIL = "the server failed to answer this request (its log says why)"


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                # our own checks' sentences, without pydantic's "Value error, " before them
                "msg": str(error.get("msg", "")).removeprefix("Value error, "),
                "type": str(error.get("type", "")),
            }
        )
    return cleaned


def _summary(errors: list[dict[str, Any]]) -> str:
    """The first few refused fields in one line, for the detail."""
    return "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])


ErrorPage = Callable[[Request, int, str], Response]
NOT_PAGES = ("/api/", "/static/", "/openapi.json", "/healthz")


def _for_a_person(request: Request) -> bool:
    """A browser asking for a page (not the API, not a file): it gets the HTML error page."""
    path = request.url.path
    return "text/html" in request.headers.get("accept", "") and not path.startswith(NOT_PAGES)


def install_problem_handlers(app: FastAPI, page: ErrorPage | None = None) -> None:
    """Problem details for every failure; with `page`, a browser asking for a page that does
    not exist (no route, or an id that is not a number) gets that HTML page instead."""

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> Response:
        if page is not None and exc.status_code in (404, 405) and _for_a_person(request):
            return page(request, 404, f"There is no page at {request.url.path}.")
        response = problem(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = _jsonable_errors(exc.errors())
        summary = _summary(errors)
        if page is not None and _for_a_person(request):
            where = request.url.path
            return page(request, 404, f"There is no page at {where} ({summary or 'bad address'}).")
        return problem(422, summary or "invalid request", errors=errors)

    @app.exception_handler(NotFound)
    async def on_not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(Conflict)
    async def on_conflict(_: Request, exc: Conflict) -> JSONResponse:
        return problem(exc.status, str(exc))

    @app.exception_handler(Busy)
    async def on_busy(_: Request, exc: Busy) -> JSONResponse:
        response = problem(503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(Forbidden)
    async def on_forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(OverflowError)
    async def on_overflow(_: Request, exc: OverflowError) -> JSONResponse:
        return problem(422, "a number in the request is out of range")

    @app.exception_handler(ValueError)
    async def on_value_error(_: Request, exc: ValueError) -> JSONResponse:
        if isinstance(exc, ValidationError):
            # A model a service builds from the request (not the request's own): its errors as
            # a request's, not pydantic's multi-line dump with links in the detail.
            errors = _jsonable_errors(exc.errors())
            return problem(422, _summary(errors) or "invalid request", errors=errors)
        return problem(422, str(exc))

    @app.exception_handler(DBAPIError)
    async def on_database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if not is_busy(exc):
            raise exc  # a fault, not contention: the 500 below, logged by the server
        # Other writers held the store past its busy timeout: the same request may simply be
        # sent again, so say when rather than fail it.
        response = problem(503, "the store is busy with other writes; try again shortly")
        response.headers["Retry-After"] = str(STORE_BUSY_RETRY_AFTER_S)
        return response

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's outermost middleware calls this, sends the body, then raises the
        # exception again for the server to log: the body names nothing of its internals.
        if page is not None and _for_a_person(request):
            return page(request, 500, f"This page failed to load: {INTERNAL_DETAIL}.")
        return problem(500, INTERNAL_DETAIL)
