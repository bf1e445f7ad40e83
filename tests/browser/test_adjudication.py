"""Issue 6: the adjudication view lists split pairs with each vote and records an admin's ruling."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import all_pairs

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_rule_on_a_disagreement(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=9)
    pair = all_pairs(api, audit["id"])[0]
    for who, label in (("ada", "duplicate"), ("bob", "distinct")):
        body = {"label": label, "annotator": who}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    page.goto(f"/audits/{audit['id']}/disagreements")
    row = page.locator(f'tr[data-pair="{pair["id"]}"]')
    row.wait_for()
    assert "ada: duplicate" in row.inner_text() and "bob: distinct" in row.inner_text()
    # Root-relative, as on every page: an absolute http:// URL breaks behind a TLS proxy.
    assert page.locator("script[src$='adjudicate.js']").get_attribute("src") == (
        "/static/adjudicate.js"
    )
    screenshot(page, "adjudicate")
    row.locator('button[data-rule="duplicate"]').click()
    row.locator(".ruled:not([hidden])").wait_for()
    labels = {p["id"]: p["label"] for p in all_pairs(api, audit["id"])}
    assert labels[pair["id"]] == "duplicate"
