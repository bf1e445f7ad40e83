"""The annotators page: an admin makes a token (shown once) and revokes it from the browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_make_a_token_see_it_once_and_revoke_it(page: Page, api: httpx.Client) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/annotators")
    form = page.locator("#annotator-form")
    form.locator("input[name=name]").fill("bea")
    form.locator("select[name=role]").select_option("admin")
    form.locator("button[type=submit]").click()
    shown = form.locator("[data-new-token]")
    shown.wait_for()
    token = shown.locator("[data-token]").inner_text()
    assert token and shown.locator("[data-token-name]").inner_text() == "bea"
    row = page.locator('tr[data-annotator="bea"]')
    assert row.locator("td").nth(1).inner_text() == "admin"
    assert row.locator("[data-judgements]").inner_text() == "0"
    # The API knows bea now, by that token's hash only.
    listed = api.get("/api/annotators").json()
    assert {"name": "bea", "role": "admin", "has_token": True, "judgements": 0} in listed
    # A second token for the same name is refused while the first stands: the API's own reason.
    form.locator("input[name=name]").fill("bea")
    form.locator("button[type=submit]").click()
    form.locator("[data-problem]").filter(has_text="already has a token").wait_for()
    row.locator("[data-revoke]").click()
    row.locator("[data-has-token]", has_text="revoked").wait_for()
    revoked = {"name": "bea", "role": "admin", "has_token": False, "judgements": 0}
    assert revoked in api.get("/api/annotators").json()
