"""The second-look page: the listed pairs are answered blind, the standing label shows after."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import all_pairs
from tests.oracle import identities

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_answer_a_second_look(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=21)
    ids = identities(audit)
    for pair in all_pairs(api, audit["id"])[:30]:
        label = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
        body = {"label": label, "annotator": "ada"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    listed = api.get(f"/api/audits/{audit['id']}/second-look").json()["items"]
    assert listed
    first = listed[0]["pair"]
    page.goto(f"/audits/{audit['id']}/second-look")
    row = page.locator(f'tr[data-pair="{first["id"]}"]')
    row.wait_for()
    assert page.locator("tr[data-pair]").count() == len(listed)
    assert not row.locator("[data-reveal]").is_visible()  # blind until answered
    screenshot(page, "second-look")
    # No name yet: the answer waits for one.
    row.locator('button[data-answer="duplicate"]').click()
    assert "name first" in page.locator("[data-problem]").inner_text()
    page.locator("[data-name-input]").fill("bob")
    truth = "duplicate" if ids[first["i"]] == ids[first["j"]] else "distinct"
    row.locator(f'button[data-answer="{truth}"]').click()
    row.locator("[data-reveal]:not([hidden])").wait_for()
    assert "you agree" in row.inner_text() and row.locator("[data-looks]").inner_text() == "2"
    again = api.get(f"/api/audits/{audit['id']}/second-look").json()["items"]
    assert {i["pair"]["id"]: i["looks"] for i in again}.get(first["id"], 2) == 2
    rows = api.get(f"/api/audits/{audit['id']}/judgements.csv").text.splitlines()
    mine = [r.split(",") for r in rows[1:] if r.split(",")[6] == "bob"]
    assert [(int(r[1]), r[7]) for r in mine] == [(first["id"], truth)]
