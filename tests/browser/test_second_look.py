"""The second-look page: the listed pairs are answered blind, the standing label shows after."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.oracle import identities

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_answer_a_second_look(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(synthetic={"support": 2000}, n=300, seed=3, neighbours=5)
    ids = identities(audit)
    truly: dict[int, str] = {}
    slipped: dict[str, Any] | None = None
    while True:  # ada reviews what the queue hands out until it stops, all right...
        handed = api.get(f"/api/audits/{audit['id']}/next-pair", params={"annotator": "ada"})
        if handed.status_code == 204:
            break
        pair = handed.json()
        truly[pair["id"]] = "duplicate" if ids[pair["i"]] == ids[pair["j"]] else "distinct"
        label = truly[pair["id"]]
        if slipped is None and pair["origin"] == "random" and label == "distinct":
            slipped, label = pair, "duplicate"  # ... but for one slipped key on a random pair
        body = {"label": label, "annotator": "ada"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    assert slipped is not None
    listed = api.get(f"/api/audits/{audit['id']}/second-look").json()["items"]
    first = listed[0]["pair"]
    assert first["id"] == slipped["id"]
    # Where ada's queue ends, the review page points at them.
    page.goto("/")
    page.evaluate("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit['id']}/review")
    page.locator('[data-review][data-state="done"]').wait_for()
    hint = page.locator("[data-second-look-hint]:not([hidden])")
    hint.wait_for()
    fresh = sum(item["looks"] < 2 for item in listed)
    assert hint.inner_text().startswith(f"{fresh} judgement")
    assert hint.locator("a").get_attribute("href") == f"/audits/{audit['id']}/second-look"
    page.evaluate("localStorage.clear()")
    page.goto(f"/audits/{audit['id']}/second-look")
    row = page.locator(f'tr[data-pair="{first["id"]}"]')
    row.wait_for()
    assert page.locator("tr[data-pair]").count() == len(listed)
    assert not row.locator("[data-reveal]").is_visible()  # blind until answered
    # Root-relative, as on every page: an absolute http:// URL breaks behind a TLS proxy.
    assert page.locator("script[src$='second_look.js']").get_attribute("src") == (
        "/static/second_look.js"
    )
    screenshot(page, "second-look")
    # No name yet: the answer waits for one.
    row.locator('button[data-answer="duplicate"]').click()
    assert "name first" in page.locator("[data-problem]").inner_text()
    page.locator("[data-name-input]").fill("bob")
    truth = truly[first["id"]]
    row.locator(f'button[data-answer="{truth}"]').click()
    row.locator("[data-reveal]:not([hidden])").wait_for()
    assert "you answered otherwise" in row.inner_text()
    # The revealed column fits the table's box at 1280 px, and the chosen answer stands out from
    # the faded others by an outline in a colour the surrounding cell does not have.
    wrap = page.locator(".table-wrap:has(table.second-look)")
    assert wrap.evaluate("w => w.scrollWidth - w.clientWidth") <= 0
    chosen = row.locator("button.chosen")
    assert chosen.get_attribute("data-answer") == truth
    look = chosen.evaluate(
        """b => {
          const s = getComputedStyle(b);
          let cell = b.parentElement;
          while (getComputedStyle(cell).backgroundColor === "rgba(0, 0, 0, 0)") cell = cell.parentElement;
          return {style: s.outlineStyle, width: s.outlineWidth, colour: s.outlineColor,
                  around: getComputedStyle(cell).backgroundColor, opacity: s.opacity};
        }"""
    )
    assert look["style"] != "none" and look["width"] != "0px", look
    assert look["colour"] != look["around"], look
    assert look["opacity"] == "1", look
    assert row.locator("[data-looks]").inner_text() == "2"  # ada's and bob's
    # Two annotators now disagree on it: a tie, for adjudication, no longer a duplicate.
    assert first["id"] not in {
        i["pair"]["id"] for i in api.get(f"/api/audits/{audit['id']}/second-look").json()["items"]
    }
    split = api.get(f"/api/audits/{audit['id']}/disagreements").json()
    assert [(d["pair"]["id"], d["votes"]) for d in split] == [
        (first["id"], {"ada": "duplicate", "bob": "distinct"})
    ]
    rows = api.get(f"/api/audits/{audit['id']}/judgements.csv").text.splitlines()
    mine = [r.split(",") for r in rows[1:] if r.split(",")[6] == "bob"]
    assert [(int(r[1]), r[7]) for r in mine] == [(first["id"], truth)]
