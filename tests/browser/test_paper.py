"""The paper's test page: the user's batch counts in, the API's figures out, as table, text and plot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_the_paper_page_computes_the_protocols_figures(page: Page, api: httpx.Client) -> None:
    from playwright.sync_api import expect

    page.goto("/paper")
    form = page.locator("[data-paper-form]")
    form.locator("[data-add]").click()  # a third size: 600
    rows = form.locator("[data-row]")
    expect(rows).to_have_count(3)
    assert rows.nth(2).locator("input[name=size]").input_value() == "600"
    rows.nth(2).locator("input[name=with_duplicate]").fill("10")
    form.locator("button[type=submit]").click()
    result = page.locator("[data-paper-result]")
    expect(result.locator("tbody[data-shares] tr")).to_have_count(3)
    body = {
        "batches": [
            {"size": 100, "batches": 10, "with_duplicate": 2},
            {"size": 300, "batches": 10, "with_duplicate": 7},
            {"size": 600, "batches": 10, "with_duplicate": 10},
        ],
        "level": 0.95,
    }
    expected = api.post("/api/paper-protocol", json=body).json()
    summary = result.locator("[data-summary]").inner_text()
    assert f"s50 = {expected['s50']}" in summary
    assert f"{expected['paper_support']:,}" in summary
    assert f"{round(expected['n_hat']):,}" in summary
    plot = result.locator('[data-plot="paper"]')
    assert plot.locator('[data-layer="shares"] .point .whisker').count() == 3
    assert plot.locator('[data-layer="uniform"] path').count() == 1
    screenshot(page, "paper-protocol")
    # More batches with a duplicate than batches: the API's problem, next to the form.
    rows.nth(0).locator("input[name=with_duplicate]").fill("11")
    form.locator("button[type=submit]").click()
    form.locator("[data-problem]").filter(has_text="exceeds batches").wait_for()
    # A row goes; the last one stays.
    for _ in range(3):
        rows.nth(0).locator("[data-remove]").click()
    expect(rows).to_have_count(1)
