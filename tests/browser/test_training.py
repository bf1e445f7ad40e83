"""Issue 5: train from the browser, watch progress, loss curves and samples, audit in one click."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_train_then_audit_in_one_click(page: Page, api: httpx.Client) -> None:
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('select[name="dataset"]').select_option("digits")
    form.locator('select[name="architecture"]').select_option("dcgan")
    form.locator('input[name="latent_dim"]').fill("8")
    form.locator('input[name="d_width"]').fill("0.25")
    form.locator('input[name="g_width"]').fill("0.25")
    form.locator('input[name="steps"]').fill("60")
    form.locator('input[name="image_size"]').fill("16")
    form.locator('button[type="submit"]').click()
    page.wait_for_url("**/training/*")
    run_id = int(page.url.rsplit("/", 1)[1])
    page.locator("[data-audit]:not([hidden])").wait_for(timeout=180_000)
    run = api.get(f"/api/training-runs/{run_id}").json()
    assert run["status"] == "done" and run["modes"]["n_modes"] == 10
    assert page.locator("[data-status]").inner_text() == "done"
    lines = page.locator('[data-plot="losses"] .layer.line')
    assert lines.count() >= 2
    page.locator("[data-grid]:not([hidden])").wait_for()
    screenshot(page, "training")
    page.locator("[data-audit]").click()
    page.wait_for_url("**/audits/*")
    audit_id = int(page.url.rsplit("/", 1)[1])
    assert api.get(f"/api/audits/{audit_id}").json()["generator_id"] == run["generator_id"]

    # The same run's discriminator embeds an audit of its generator, in one click too.
    page.goto(f"/training/{run_id}")
    page.locator("[data-audit-discriminator]:not([hidden])").click()
    page.wait_for_url(f"**/audits/{audit_id + 1}")
    audit = api.get(f"/api/audits/{audit_id + 1}").json()
    assert audit["embedder"] == "discriminator"
    assert audit["embedder_options"] == {"weights": run["discriminator"]}


def test_bad_training_request_shows_the_problem(page: Page) -> None:
    page.goto("/training")
    form = page.locator("#train-form")
    form.locator('input[name="steps"]').fill("2000000")  # the API allows at most 10^6
    form.locator('button[type="submit"]').click()
    problem = page.locator("#train-problem:not([hidden])")
    problem.wait_for()
    assert "steps" in problem.inner_text()
