"""Ask for the token before an upload is read, not after.

FastAPI reads and parses a request's body before its dependencies run, so on a server with tokens
an anonymous client could make it spool gigabytes of upload to disk only to be told 401. This
middleware runs the same check as every API route (`current_principal`) on the headers alone,
before the body; the route's role check (admins upload) still runs as before.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import current_principal
from app.api.deps import AppState
from app.api.problems import problem


class AuthBeforeBody:
    """Pure ASGI: POSTs to `paths` without a valid token or login cookie get the 401 unread."""

    def __init__(self, app: ASGIApp, state: AppState, paths: tuple[str, ...]) -> None:
        self.app = app
        self.state = state
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.paths
            and self.state.settings.auth_required
        ):
            try:
                # A Request without `receive` cannot touch the body; the token lookup reads the
                # store, so it runs on a worker thread like the routes' own check.
                await run_in_threadpool(current_principal, Request(scope), self.state)
            except HTTPException as refused:
                response = problem(refused.status_code, str(refused.detail))
                response.headers.update(refused.headers or {})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
