"""Access: tokens (hashed) when auth is on, roles, read-only public access, attribution."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.settings import Settings
from app.store.models import Annotator
from tests.conftest import assert_problem, wait_for_audit

BIRTHDAY = str(Path(sys.executable).parent / "birthday")


def add_annotator(settings: Settings, name: str, role: str) -> str:
    result = subprocess.run(
        [BIRTHDAY, "annotator", "add", name, "--role", role, "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def secured(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings.auth = "on"
    tokens = {
        "root": add_annotator(settings, "root", "admin"),
        "ada": add_annotator(settings, "ada", "annotator"),
    }
    with TestClient(create_app(settings)) as client:
        yield client, tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_required_and_stored_hashed(secured: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = secured
    assert_problem(client.get("/api/audits"), 401)
    assert_problem(client.get("/api/audits", headers=bearer("bd_not-a-token")), 401)
    assert client.get("/api/audits", headers=bearer(tokens["ada"])).status_code == 200
    me = client.get("/api/me", headers=bearer(tokens["ada"])).json()
    assert me == {"name": "ada", "role": "annotator", "authenticated": True, "auth_required": True}
    db = client.app.state.birthday.db  # type: ignore[attr-defined]
    with db.read() as session:
        stored = [a.token_hash for a in session.scalars(select(Annotator))]
    assert all(h and h not in tokens.values() and len(h) == 64 for h in stored)


def test_roles_and_attribution(secured: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = secured
    ada, root = bearer(tokens["ada"]), bearer(tokens["root"])
    upload = client.post(
        "/api/generators",
        data={"name": "g", "format": "samples"},
        files={"file": ("x.npz", b"x")},
        headers=ada,
    )
    assert_problem(upload, 403)
    audit = client.post(
        "/api/audits", json={"synthetic": {"support": 50}, "n": 60}, headers=ada
    ).json()
    wait_for_audit(_authed(client, ada), audit["id"])
    pair = client.get(f"/api/audits/{audit['id']}/next-pair", headers=ada).json()
    # The token says who judged: a name in the body cannot impersonate someone else.
    judged = client.post(
        f"/api/pairs/{pair['id']}/judgements",
        json={"label": "duplicate", "annotator": "root"},
        headers=ada,
    ).json()
    assert judged["annotator"] == "ada"
    judgements = {
        a["name"]: a["judgements"] for a in client.get("/api/annotators", headers=root).json()
    }
    assert judgements == {"ada": 1, "root": 0}
    other = client.post(
        "/api/annotators", json={"name": "bob", "role": "annotator"}, headers=root
    ).json()
    bob = bearer(other["token"])
    assert_problem(client.delete(f"/api/judgements/{judged['id']}", headers=bob), 403)
    assert client.delete(f"/api/judgements/{judged['id']}", headers=ada).status_code == 200
    undone = client.get("/api/annotators", headers=root).json()
    assert {a["name"]: a["judgements"] for a in undone}["ada"] == 0  # undone: no longer standing
    assert_problem(client.delete(f"/api/audits/{audit['id']}", headers=ada), 403)
    # Importing labels writes judgements in other annotators' names: admins only.
    imported = client.post(
        f"/api/audits/{audit['id']}/import-labels", json={"from_audit": 999}, headers=ada
    )
    assert_problem(imported, 403)
    assert_problem(client.post("/api/annotators", json={"name": "eve"}, headers=ada), 403)
    odd = client.post("/api/annotators", json={"name": "eve<script>"}, headers=root)
    assert_problem(odd, 422)
    assert odd.json()["detail"] == (
        "body.name: use letters, digits, spaces and . @ - _ only, with no space at either end"
    )
    assert client.delete(f"/api/audits/{audit['id']}", headers=root).status_code == 204
    assert_problem(client.get(f"/api/audits/{audit['id']}", headers=root), 404)


def test_public_read_allows_reading_only(settings: Settings) -> None:
    settings.auth = "on"
    settings.public_read = True
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/audits").status_code == 200
        assert client.get("/api/me").json()["role"] == "reader"
        assert_problem(client.post("/api/audits", json={"synthetic": {"support": 5}}), 401)
        # File names under models/ and data/datasets/ are for those who may use them.
        (settings.data_dir / "datasets").mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "datasets" / "secret-faces.npz").write_bytes(b"")
        assert_problem(client.get("/api/embedders"), 403)
        assert_problem(client.get("/api/datasets"), 403)
        page = client.get("/training")
        assert page.status_code == 200 and "secret-faces" not in page.text


def test_loopback_needs_no_login(client: TestClient) -> None:
    me = client.get("/api/me").json()
    assert me["authenticated"] is False and me["auth_required"] is False and me["role"] == "admin"
    assert_problem(
        client.post("/api/pairs/1/judgements", json={"label": "duplicate"}), 422
    )  # the local user must still say who they are


def _authed(client: TestClient, headers: dict[str, str]) -> TestClient:
    client.headers.update(headers)
    return client


def test_delete_buttons_show_to_admins_only(
    secured: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = secured
    audit = client.post(
        "/api/audits", json={"synthetic": {"support": 30}, "n": 40}, headers=bearer(tokens["ada"])
    ).json()
    for name, shown in (("root", True), ("ada", False)):
        page = client.get(f"/audits/{audit['id']}", headers=bearer(tokens[name])).text
        assert ("data-delete-audit" in page) is shown, name
    assert (
        client.delete(f"/api/audits/{audit['id']}", headers=bearer(tokens["ada"])).status_code
        == 403
    )


def test_an_admin_revokes_a_token_over_rest_and_manages_them_on_a_page(
    secured: tuple[TestClient, dict[str, str]], settings: Settings
) -> None:
    client, tokens = secured
    ada, root = bearer(tokens["ada"]), bearer(tokens["root"])
    assert_problem(client.delete("/api/annotators/root/token", headers=ada), 403)
    assert_problem(client.delete("/api/annotators/nobody/token", headers=root), 404)
    assert client.delete("/api/annotators/ada/token", headers=root).status_code == 204
    assert_problem(client.get("/api/audits", headers=ada), 401)  # at once
    listed = client.get("/api/annotators", headers=root).json()
    assert {"name": "ada", "role": "annotator", "has_token": False, "judgements": 0} in listed
    again = client.post("/api/annotators", json={"name": "ada"}, headers=root).json()
    assert client.get("/api/audits", headers=bearer(again["token"])).status_code == 200
    # The page: admins only, linked from the navigation for them.
    page = client.get("/annotators", headers=root)
    assert page.status_code == 200 and 'data-revoke="ada"' in page.text
    assert 'href="/annotators"' in page.text
    refused = client.get("/annotators", headers=bearer(again["token"]))
    assert refused.status_code == 403 and "Only admins" in refused.text
    assert 'href="/annotators"' not in client.get("/", headers=bearer(again["token"])).text
    unknown = subprocess.run(
        [BIRTHDAY, "annotator", "revoke", "zed", "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 2 and "annotator 'zed' does not exist" in unknown.stderr


def test_the_cli_refuses_a_name_the_review_page_could_not_send_back(settings: Settings) -> None:
    for name in ("ada ", "a/b"):
        result = subprocess.run(
            [BIRTHDAY, "annotator", "add", name, "--data-dir", str(settings.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and "no space at either end" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
