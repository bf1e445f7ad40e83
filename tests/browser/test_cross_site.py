"""Chromium's own headers against the request guards: another site's page cannot post here, and a
server with tokens still takes its login form and its pages' own requests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.server import BIRTHDAY, Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_another_sites_page_cannot_post_here(page: Page, api: httpx.Client, server: str) -> None:
    before = len(api.get("/api/generators").json())
    # A page of another site on this machine (localhost is not 127.0.0.1's site), as a dev
    # server of some other project would serve: Chromium's local-network rules let it through.
    page.goto(server.replace("127.0.0.1", "localhost") + "/healthz")
    # What any page on the web can do: a "simple" multipart post, no CORS preflight.
    script = f"""<script>
      const form = new FormData();
      form.append("name", "evil"); form.append("format", "samples");
      form.append("file", new Blob(["x"]), "a.npz");
      fetch("{server}/api/generators", {{method: "POST", mode: "no-cors", body: form}})
        .catch(() => {{}});
    </script>"""
    with page.expect_response(f"{server}/api/generators") as answer:
        page.set_content(script)
    assert answer.value.status == 403
    assert len(api.get("/api/generators").json()) == before


@pytest.fixture
def shared_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A `birthday serve` on loopback with tokens on, and an admin's token."""
    data = tmp_path / "data"
    server = Server(data, env={"BIRTHDAY_AUTH": "on"})
    command = [BIRTHDAY, "annotator", "add", "root", "--role", "admin", "--data-dir", str(data)]
    token = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    server.start().close()
    try:
        yield server.url, token.stdout.strip()
    finally:
        server.stop()


def test_a_login_and_the_pages_requests_pass(page: Page, shared_server: tuple[str, str]) -> None:
    url, token = shared_server
    page.goto(f"{url}/annotators")
    page.wait_for_url(f"{url}/login?**")
    page.fill("input[name=token]", token)
    page.click("form.login-form button[type=submit]")
    page.wait_for_url(f"{url}/annotators")
    # The page's own state-changing request: same origin, with the login cookie.
    status = page.evaluate(
        """async () => (await fetch("/api/annotators", {method: "POST",
             headers: {"content-type": "application/json"},
             body: JSON.stringify({name: "bea"})})).status"""
    )
    assert status == 201
