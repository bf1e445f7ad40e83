"""Request guards that answer before a body is read: other sites' requests (CSRF, DNS
rebinding), anonymous uploads on a server with tokens, oversized bodies, the login form."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.cross_site import host_allowed, same_origin
from app.api.upload_limit import BODY_LIMIT
from app.main import create_app
from app.settings import LOOPBACK, Settings
from app.store.annotators import create_annotator
from tests.conftest import assert_problem

HERE = "http://127.0.0.1:8000"  # what a browser on this machine calls the default server
EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
MiB = 1 << 20


def loopback(settings: Settings) -> Settings:
    """The default server, answering to no extra host name (the tests allow `testserver`)."""
    settings.allowed_hosts = ""
    assert not settings.auth_required
    return settings


@pytest.fixture
def local(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(loopback(settings)), base_url=HERE) as client:
        yield client


def npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=np.zeros((4, 8, 8, 1), dtype=np.uint8))
    return buffer.getvalue()


def upload(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    form = {"name": "g", "format": "samples"}
    return client.post(
        "/api/generators", data=form, files={"file": ("a.npz", npz())}, headers=headers
    )


def annotators(client: TestClient) -> set[str]:
    return {a["name"] for a in client.get("/api/annotators").json()}


# --- other sites ---------------------------------------------------------------------------


def test_cross_site_posts_are_refused(local: TestClient) -> None:
    before = len(local.get("/api/generators").json())
    # A form post from another site (multipart: no CORS preflight), as the browser marks it.
    refused = assert_problem(upload(local, {"Sec-Fetch-Site": "cross-site"}), 403)
    assert "another site" in refused["detail"]
    # An Origin that is not this server's, with or without Sec-Fetch-Site (older browsers).
    for origin in ("https://evil.example", "null", "http://127.0.0.1:9999", "https://localhost"):
        body = {"name": "eve", "role": "admin"}
        response = local.post("/api/annotators", json=body, headers={"Origin": origin})
        assert "origin" in assert_problem(response, 403)["detail"]
    assert_problem(local.delete("/api/annotators/eve/token", headers=EVIL), 403)
    assert len(local.get("/api/generators").json()) == before
    assert "eve" not in annotators(local)
    # Reading is not changing anything: a cross-site GET is answered (CORS keeps the body from
    # the other page).
    assert local.get("/api/generators", headers=EVIL).status_code == 200


def test_same_origin_and_origin_less_posts_are_accepted(local: TestClient) -> None:
    page = {"Origin": HERE, "Sec-Fetch-Site": "same-origin"}
    assert upload(local, page).status_code == 201
    assert upload(local).status_code == 201  # curl, the CLI, scripts: no Origin
    made = local.post("/api/annotators", json={"name": "ada"}, headers=page)
    assert made.status_code == 201, made.text
    assert local.post("/api/annotators", json={"name": "bob"}).status_code == 201
    assert {"ada", "bob"} <= annotators(local)
    # The address bar, a bookmark: Sec-Fetch-Site none.
    assert local.post("/logout", headers={"Sec-Fetch-Site": "none"}).status_code in (200, 303)


def test_other_sites_are_refused_with_tokens_too(settings: Settings) -> None:
    settings.auth = "on"
    app = create_app(settings)
    with app.state.birthday.db.write() as session:
        token = create_annotator(session, "root", "admin")[1]
    with TestClient(app, base_url="https://birthday.example") as client:
        # The login cookie is SameSite=Strict; a bearer token sent from a page is refused as well.
        auth = {"Authorization": f"Bearer {token}"}
        assert_problem(upload(client, {**auth, **EVIL}), 403)
        # An https page in front of a plain-http server (TLS ended at a proxy) is the same site.
        proxied = TestClient(app, base_url="http://birthday.example")
        assert upload(proxied, {**auth, "Origin": "https://birthday.example"}).status_code == 201


# --- DNS rebinding --------------------------------------------------------------------------


def test_a_server_without_tokens_answers_only_to_names_that_cannot_be_rebound(
    local: TestClient,
) -> None:
    for host in ("attacker.example:8000", "localhost.attacker.example", "127.0.0.1.nip.io:8000"):
        refused = assert_problem(local.get("/api/generators", headers={"Host": host}), 421)
        assert "BIRTHDAY_ALLOWED_HOSTS" in refused["detail"]
        assert_problem(upload(local, {"Host": host}), 421)
        assert_problem(local.get("/", headers={"Host": host}), 421)
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "10.1.2.3:8000"):
        assert local.get("/api/generators", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_and_servers_with_tokens_answer_to_other_names(settings: Settings) -> None:
    loopback(settings).allowed_hosts = "Lab-Box.lan, birthday.internal"
    with TestClient(create_app(settings)) as client:
        for host in ("lab-box.lan:8000", "birthday.internal"):
            assert client.get("/api/generators", headers={"Host": host}).status_code == 200
        assert_problem(client.get("/api/generators", headers={"Host": "evil.lan"}), 421)
    # With tokens, a rebound name gets nowhere without one, and the cookie is not sent to it.
    settings.auth = "on"
    with TestClient(create_app(settings)) as client:
        assert_problem(client.get("/api/generators", headers={"Host": "evil.lan"}), 401)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost.:8000", True),
        ("[::1]", True),
        ("192.168.1.20:8000", True),
        ("[fe80::1]:8000", True),
        ("evil.example", False),
        ("[::1", False),
        ("localhost:99999", False),
        ("localhost:80x", False),
        ("", False),
    ],
)
def test_host_names(host: str, allowed: bool) -> None:
    assert host_allowed(host, frozenset(LOOPBACK)) is allowed


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "same"),
    [
        ("http://127.0.0.1:8000", "http", "127.0.0.1:8000", True),
        ("http://LOCALHOST:8000", "http", "localhost:8000", True),
        ("http://[::1]:8000", "http", "[::1]:8000", True),
        ("https://lab.example", "https", "lab.example:443", True),
        ("https://lab.example", "http", "lab.example", True),  # TLS ended at a proxy
        ("http://lab.example", "https", "lab.example", False),
        ("http://127.0.0.1:8001", "http", "127.0.0.1:8000", False),
        ("http://localhost:8000", "http", "127.0.0.1:8000", False),
        ("null", "http", "127.0.0.1:8000", False),
        ("file://", "http", "127.0.0.1:8000", False),
        ("http://127.0.0.1:8000", "http", "", False),
    ],
)
def test_origins(origin: str, scheme: str, host: str, same: bool) -> None:
    assert same_origin(origin, scheme, host) is same


# --- bodies, before they are read -----------------------------------------------------------


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    pulled: int  # body bytes the server took from the client before answering


def body(prefix: bytes, size: int, chunk: int) -> Iterator[bytes]:
    """`prefix`, then zeros up to `size` bytes, a chunk at a time (made only when read)."""
    if prefix:
        yield prefix
    left = size - len(prefix)
    while left > 0:
        yield b"0" * min(chunk, left)
        left -= chunk


def exchange(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str],
    size: int,
    prefix: bytes = b"",
    chunk: int = 64 << 10,
) -> Exchange:
    """Send `prefix` and zeros up to `size` bytes of body straight to the ASGI app, counting what
    it reads (the test client would read the whole body up front)."""
    pulled = 0
    started: dict[str, Any] = {}
    parts: list[bytes] = []
    pieces = body(prefix, size, chunk)

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.disconnect"}
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": pulled < size}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    # A thread of its own: other tests' fixtures (Playwright's sync API) may hold a running loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()  # type: ignore[arg-type]
    answer = {k.decode(): v.decode() for k, v in started["headers"]}
    return Exchange(started["status"], answer, b"".join(parts), pulled)


def problem_of(answer: Exchange, status: int) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.fixture
def shared(settings: Settings) -> FastAPI:
    settings.auth = "on"
    return create_app(settings)


def test_anonymous_uploads_are_refused_before_the_body_is_read(shared: FastAPI) -> None:
    # A well-formed upload of 32 MB, well within the 2 GB upload limit: only the missing token
    # refuses it.
    form = {"host": "birthday.example", "content-type": "multipart/form-data; boundary=x"}
    start = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.npz"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    for headers in (
        {**form, "content-length": str(32 * MiB)},
        form,  # chunked
        {**form, "authorization": "Bearer bd_not-a-token"},
        {**form, "cookie": "birthday_token=bd_not-a-token"},
    ):
        answer = exchange(shared, "POST", "/api/generators", headers, 32 * MiB, start)
        problem_of(answer, 401)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.pulled == 0


def test_uploads_with_a_token_still_go_through(shared: FastAPI) -> None:
    with shared.state.birthday.db.write() as session:
        root = create_annotator(session, "root", "admin")[1]
        ada = create_annotator(session, "ada", "annotator")[1]
    with TestClient(shared) as client:
        assert upload(client, {"Authorization": f"Bearer {root}"}).status_code == 201
        client.cookies.set("birthday_token", root)
        assert upload(client).status_code == 201
        client.cookies.clear()
        # The role check stays with the route: an annotator's upload is read, then refused.
        assert_problem(upload(client, {"Authorization": f"Bearer {ada}"}), 403)


@pytest.mark.parametrize("auth", ["off", "on"])
def test_oversized_bodies_are_refused_unparsed(settings: Settings, auth: str) -> None:
    settings.auth = auth  # type: ignore[assignment]
    app = create_app(settings)
    json = {"host": "127.0.0.1:8000", "content-type": "application/json"}
    declared = exchange(
        app, "POST", "/api/audits", {**json, "content-length": str(8 * MiB)}, 8 * MiB
    )
    problem_of(declared, 413)
    assert declared.pulled == 0
    # Without a Content-Length (chunked): reading stops at the cap.
    streamed = exchange(app, "POST", "/api/audits", json, 8 * MiB)
    problem_of(streamed, 413)
    assert str(BODY_LIMIT) in streamed.body.decode()
    assert streamed.pulled <= BODY_LIMIT + (64 << 10)
    # Every method and path, not only the API's JSON.
    for method, path in (("PATCH", "/api/audits/1"), ("DELETE", "/api/audits/1"), ("GET", "/")):
        answer = exchange(app, method, path, {**json, "content-length": str(2 * MiB)}, 2 * MiB)
        problem_of(answer, 413)
        assert answer.pulled == 0


def test_bodies_under_the_cap_are_served(local: TestClient) -> None:
    # The largest JSON the API takes (1,000 batch sizes, ~60 kB) is well under the cap.
    batches = [{"size": s, "batches": 999, "with_duplicate": s % 7} for s in range(2, 1002)]
    response = local.post("/api/paper-protocol", json={"batches": batches})
    assert response.status_code == 200, response.text


def test_the_login_form_is_small_and_urlencoded(shared: FastAPI) -> None:
    host = {"host": "birthday.example"}
    multipart = {**host, "content-type": "multipart/form-data; boundary=x"}
    spooled = exchange(shared, "POST", "/login", {**multipart, "content-length": str(MiB)}, MiB)
    problem_of(spooled, 415)
    assert spooled.pulled == 0
    form = {**host, "content-type": "application/x-www-form-urlencoded"}
    big = exchange(shared, "POST", "/login", {**form, "content-length": str(MiB)}, MiB)
    problem_of(big, 413)
    assert big.pulled == 0
    assert exchange(shared, "POST", "/login", form, MiB).status == 413  # chunked
    with TestClient(shared, follow_redirects=False) as client:
        assert client.post("/login", data={"token": "bd_nope"}).status_code == 401
        assert_problem(client.post("/login", files={"token": ("t", b"bd_nope")}), 415)
