"""The browser login of a shared server: pages ask for a token, the cookie it becomes works for the
pages and the API alike, and the login cannot be turned into an open redirect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.annotators import create_annotator

PAGES = ["/", "/generators/new", "/audits/new", "/compare", "/audits/1", "/audits/1/review"]


@pytest.fixture
def shared(settings: Settings) -> Iterator[TestClient]:
    settings.auth = "on"
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def _token(client: TestClient, name: str = "ada") -> str:
    with client.app.state.birthday.db.write() as session:
        _, token = create_annotator(session, name, "annotator")
    return token


@pytest.mark.parametrize("url", PAGES)
def test_pages_send_strangers_to_the_login(shared: TestClient, url: str) -> None:
    response = shared.get(url)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    login = shared.get(response.headers["location"])
    assert login.status_code == 200 and 'name="token"' in login.text


def test_login_keeps_the_query_of_the_page_asked_for(shared: TestClient) -> None:
    response = shared.get("/compare", params={"ids": [1, 2]})
    assert response.headers["location"] == "/login?next=%2Fcompare%3Fids%3D1%26ids%3D2"


def test_fragments_refuse_without_a_login(shared: TestClient) -> None:
    assert shared.get("/audits/1/panel").status_code == 401
    assert shared.get("/audits/1/gallery").status_code == 401


def test_a_token_becomes_a_cookie_for_pages_and_api(shared: TestClient) -> None:
    token = _token(shared)
    wrong = shared.post("/login", data={"token": "bd_wrong", "next": "/compare"})
    assert wrong.status_code == 401 and "not valid" in wrong.text

    response = shared.post("/login", data={"token": token, "next": "/compare"})
    assert response.status_code == 303 and response.headers["location"] == "/compare"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    home = shared.get("/")
    assert home.status_code == 200 and "ada <span" in home.text
    me = shared.get("/api/me").json()
    assert me["name"] == "ada" and me["authenticated"] is True
    created = shared.post("/api/audits", json={"synthetic": {"support": 30}, "n": 20})
    assert created.status_code == 202
    review = shared.get(f"/audits/{created.json()['id']}/review")
    assert 'data-signed-in="ada"' in review.text and "data-change-name" not in review.text

    out = shared.post("/logout")
    assert out.status_code == 303
    assert shared.get("/").status_code == 303
    assert shared.get("/api/me").status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil", ""])
def test_login_never_redirects_off_the_site(shared: TestClient, target: str) -> None:
    token = _token(shared)
    response = shared.post("/login", data={"token": token, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_loopback_needs_no_login(client: TestClient) -> None:
    response = client.get("/login", params={"next": "/compare"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/compare"
    assert client.get("/").status_code == 200
    assert "sign out" not in client.get("/").text
