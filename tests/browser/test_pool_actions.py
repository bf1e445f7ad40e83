"""The audit page's pool actions: import another audit's labels, refuse a bad import with the
API's problem detail, and extend the pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import all_pairs, wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser


def _unit_beside_input(label: Locator) -> bool:
    """The label's "%" sits on its number input's line, not wrapped onto a line of its own."""
    return bool(
        label.evaluate(
            """label => {
              const input = label.querySelector("input").getBoundingClientRect();
              const walker = document.createTreeWalker(label, NodeFilter.SHOW_TEXT);
              let node;
              while ((node = walker.nextNode()) && !node.textContent.includes("%"));
              const range = document.createRange();
              range.selectNodeContents(node);
              const unit = range.getBoundingClientRect();
              const middle = unit.top + unit.height / 2;
              return middle > input.top && middle < input.bottom && unit.left >= input.right;
            }"""
        )
    )


def test_import_labels_then_extend_from_the_audit_page(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    first = audit_factory(seed=11, neighbours=2)
    for pair in all_pairs(api, first["id"])[:5]:
        body = {"label": "duplicate", "annotator": "bot"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    second = audit_factory(seed=11, neighbours=4)
    page.goto(f"/audits/{second['id']}")

    form = page.locator("[data-import]")
    form.locator("input[name=from_audit]").fill(str(second["id"]))
    form.locator("button").click()
    problem = page.locator("[data-pool-actions] [data-problem]")
    problem.filter(has_text="cannot import its own labels").wait_for()

    form.locator("input[name=from_audit]").fill(str(first["id"]))
    form.locator("button").click()
    page.locator("[data-pool-result]").filter(has_text="5 judgements copied").wait_for()
    assert problem.is_hidden()
    page.locator("[data-labelled-count]").filter(has_text="5").wait_for()
    screenshot(page, "audit-pool-actions")

    # The stopping target: the panel follows the new aim, and so does the API.
    aim = page.locator("[data-target]")
    assert aim.locator("input[name=target_pct]").input_value() == "20"
    assert _unit_beside_input(aim.locator("label:has(input[name=target_pct])"))
    aim.locator("input[name=target_pct]").fill("7.5")
    aim.locator("button").click()
    page.locator("[data-pool-result]").filter(has_text="now aims for ±7.5%").wait_for()
    page.locator("#estimate-panel [data-target-pct]").filter(has_text="7.5").wait_for()
    assert api.get(f"/api/audits/{second['id']}").json()["target"] == 0.075
    aim.locator("input[name=target_pct]").fill("0")  # the browser holds it back: no request
    aim.locator("button").click()
    assert aim.locator("input[name=target_pct]:invalid").count() == 1
    assert api.get(f"/api/audits/{second['id']}").json()["target"] == 0.075

    extend = page.locator("[data-extend]")
    more = api.get(f"/api/audits/{second['id']}/estimate").json()["stop"]["samples_to_go"]
    placeholder = extend.locator("input[name=n_more]").get_attribute("placeholder")
    assert placeholder == (f"{more} for the target" if more else "")
    extend.locator("input[name=n_more]").fill("100")
    with page.expect_navigation():
        extend.locator("button").click()
    grown = wait_for_audit(api, second["id"])
    assert grown["status"] == "done" and grown["progress"]["samples_done"] == 500
    page.reload()
    page.locator(".audit-meta [data-done]").filter(has_text="500").wait_for()
    # The review page states the audit's own aim. (Last: its first hand-out stores the review
    # design, which moves the estimate the checks above compare.)
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{second['id']}/review")
    page.locator('[data-stop][data-target="0.075"]', has_text="±7.5%").wait_for()
