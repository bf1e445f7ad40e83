"""The upload cap holds for bodies without a Content-Length (chunked): reading stops at the cap."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.api.upload_limit import FORM_OVERHEAD, UploadLimit


def run(middleware: UploadLimit, scope: dict[str, Any], chunks: list[bytes]) -> dict[str, Any]:
    seen: dict[str, Any] = {"read": 0, "disconnected": False, "sent": []}
    queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        seen["sent"].append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen["disconnected"] = True
                return
            seen["read"] += len(message["body"])
            if not message.get("more_body"):
                return

    middleware_call = UploadLimit(app, middleware.limit - FORM_OVERHEAD, middleware.paths)

    async def call() -> None:
        await middleware_call(scope, receive, send)

    # A thread of its own: other tests' fixtures (Playwright's sync API) may hold a running loop here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, call()).result()
    return seen


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/api/generators", "headers": headers}


def test_chunked_body_is_cut_off_at_the_cap() -> None:
    limit = UploadLimit(lambda *_: None, 1000, ("/api/generators",))  # type: ignore[arg-type]
    chunk = b"x" * (256 * 1024)
    seen = run(limit, scope([]), [chunk] * 40)  # 10 MiB, no Content-Length
    assert seen["disconnected"] is True
    assert seen["read"] <= limit.limit


def test_declared_length_over_the_cap_is_refused_unread() -> None:
    limit = UploadLimit(lambda *_: None, 1000, ("/api/generators",))  # type: ignore[arg-type]
    seen = run(limit, scope([(b"content-length", b"99999999")]), [b"x" * 10])
    assert seen["read"] == 0
    assert seen["sent"][0]["status"] == 413


def test_other_paths_pass_through() -> None:
    limit = UploadLimit(lambda *_: None, 10, ("/api/generators",))  # type: ignore[arg-type]
    other = {"type": "http", "method": "POST", "path": "/api/audits", "headers": []}
    seen = run(limit, other, [b"x" * 5000])
    assert seen["read"] == 5000 and not seen["disconnected"]
