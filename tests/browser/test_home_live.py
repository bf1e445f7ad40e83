"""Acceptance 1: the home page lists audits and jobs whose progress bars follow a running job live."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_progress_bars_follow_a_running_audit(page: Page, api: httpx.Client) -> None:
    # Small chunks make many progress events; the exact miner keeps each one quick.
    body = {"synthetic": {"support": 5000}, "n": 2400, "chunk_size": 40, "miner": "exact"}
    audit = api.post("/api/audits", json=body).json()
    row = f'tr[data-audit="{audit["id"]}"]'
    page.goto("/")
    page.evaluate("window.notReloaded = true")
    at_load = page.eval_on_selector(f"{row} progress", "bar => bar.value")
    # Two different values strictly between 0 and n, with no reload: pushed by the events stream.
    page.wait_for_function(
        "([row, seen]) => { const v = document.querySelector(row + ' progress').value;"
        " return v > seen && v < 2400; }",
        arg=[row, at_load],
    )
    first = page.eval_on_selector(f"{row} progress", "bar => bar.value")
    page.wait_for_function(
        "([row, first]) => document.querySelector(row + ' progress').value > first",
        arg=[row, first],
    )
    page.locator(f'{row} [data-status]:text-is("running")').wait_for()
    page.locator(f'{row} [data-status]:text-is("done")').wait_for(timeout=120_000)
    assert page.evaluate("window.notReloaded") is True
    done = api.get(f"/api/audits/{audit['id']}").json()
    assert page.eval_on_selector(f"{row} progress", "bar => bar.value") == 2400
    assert page.inner_text(f"{row} [data-done]") == "2,400"
    assert page.inner_text(f"{row} [data-pairs]") == f"{done['progress']['candidate_pairs']:,}"
    job = f'tr[data-job="{audit["job_id"]}"]'
    assert page.inner_text(f"{job} [data-status]") == "done"
    assert page.eval_on_selector(f"{job} progress", "bar => bar.value") == 2400
    screenshot(page, "home")
