"""Refuse an oversized request body before it is read: FastAPI reads and parses a body (the
multipart parser spools it whole to a temporary file, JSON is parsed into memory) before the
endpoint or its dependencies, the token check among them, run. Uploads get the upload limit,
every other body a small one (the API's largest JSON, a sweep or the paper protocol, is a few kB),
and the login form must be small and urlencoded: a multipart body would be spooled to disk."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import problem

FORM_OVERHEAD = 1 << 20  # multipart boundaries and the small form fields around the file
BODY_LIMIT = 1 << 20
FORM_LIMIT = 16 << 10  # a token and the page to go back to, percent-encoded
URLENCODED = "application/x-www-form-urlencoded"


class UploadLimit:
    """Pure ASGI. POSTs to `paths` may carry `limit` bytes of file; POSTs to `forms` only a small
    urlencoded form; every other request `body_limit` bytes. A declared Content-Length over the
    cap is refused unread; a body without one (chunked) is cut off when it passes the cap."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        paths: tuple[str, ...],
        *,
        body_limit: int = BODY_LIMIT,
        forms: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limit = limit + FORM_OVERHEAD
        self.paths = paths
        self.body_limit = body_limit
        self.forms = forms

    def cap(self, scope: Scope) -> tuple[int, str]:
        """The largest body this request may carry, and how to say it was too large."""
        if scope["method"] == "POST" and scope["path"] in self.paths:
            limit = self.limit - FORM_OVERHEAD
            return self.limit, f"the file exceeds the upload limit of {limit} bytes"
        if scope["method"] == "POST" and scope["path"] in self.forms:
            return FORM_LIMIT, f"a form here is at most {FORM_LIMIT} bytes"
        return self.body_limit, f"a request body here is at most {self.body_limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["method"] == "POST" and scope["path"] in self.forms:
            kind = headers.get(b"content-type", b"").decode("latin-1").partition(";")[0]
            if kind.strip().lower() != URLENCODED:
                detail = f"this form is sent as {URLENCODED}"
                await problem(415, detail)(scope, receive, send)
                return
        cap, detail = self.cap(scope)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await problem(413, detail)(scope, receive, send)
            return
        seen = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    # A body without a (true) length that grows past the cap: stop reading it.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a cut-off body (a 400, say): the 413 below replaces it
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await problem(413, detail)(scope, receive, send)
