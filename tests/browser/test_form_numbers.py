"""Numbers on the new-audit and paper forms: every number the user can write is read as written, a
blank is said on the form (never read as 0), and the API's refusals name the form's own fields."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_the_audit_form_reads_every_finite_number(page: Page, api: httpx.Client) -> None:
    from playwright.sync_api import expect

    page.goto("/audits/new")
    form = page.locator("[data-audit-form]")
    problem = form.locator("[data-problem]")
    form.locator("input[name=source][value=synthetic]").check()
    form.locator("input[name=support]").fill("50")
    form.locator("input[name=n]").fill("60")
    # Free text reaches the script as typed: what Number() cannot read finitely is refused here.
    form.locator("input[name=continuous]").evaluate("input => { input.type = 'text'; }")
    for text in ["", " ", "1,5", "abc", "Infinity", "NaN"]:
        form.locator("input[name=continuous]").fill(text)
        form.locator("button[type=submit]").click()
        expect(problem).to_have_text("continuous must be a number.")
    form.locator("input[name=continuous]").fill("+.25e-1")
    form.locator("input[name=noise]").fill(".5")
    form.locator("input[name=zipf]").fill("1e-3")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/audits/\d+$"))
    audit = wait_for_audit(api, int(page.url.rsplit("/", 1)[1]))
    assert audit["synthetic"]["noise"] == 0.5
    assert audit["synthetic"]["zipf"] == 0.001
    assert audit["synthetic"]["continuous"] == 0.025


def test_the_audit_forms_refusals_name_its_fields(page: Page) -> None:
    """The API says body.synthetic.support and body.target (a fraction); the form says K and %."""
    page.goto("/audits/new")
    form = page.locator("[data-audit-form]")
    form.locator("input[name=source][value=synthetic]").check()
    form.locator("input[name=support]").fill("0")
    form.locator("input[name=n]").fill("1")
    form.locator("input[name=target_pct]").fill("150")
    form.locator("button[type=submit]").click()
    problem = form.locator("[data-problem]")
    problem.filter(has_text="Aim for").wait_for()
    text = problem.inner_text()
    assert "body." not in text
    assert "support K: must be greater than or equal to 1" in text
    assert "Pool size n: must be greater than or equal to 2" in text
    assert "Aim for ±: must be less than or equal to 100%" in text


def test_the_paper_form_says_a_blank_count_and_names_its_fields(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/paper")
    form = page.locator("[data-paper-form]")
    rows = form.locator("[data-row]")
    problem = form.locator("[data-problem]")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/paper-protocol" in r.url else None)
    rows.nth(1).locator("input[name=with_duplicate]").fill("")
    form.locator("button[type=submit]").click()
    problem.filter(has_text="with a duplicate (row 2)").wait_for()
    assert sent == []  # not sent as 0 duplicates
    assert page.locator("[data-paper-result]").is_hidden()
    form.locator("input[name=level]").fill("")
    form.locator("button[type=submit]").click()
    problem.filter(has_text="level must be a number").wait_for()

    rows.nth(1).locator("input[name=with_duplicate]").fill("7")
    rows.nth(0).locator("input[name=size]").fill("1")
    form.locator("input[name=level]").fill("2")
    form.locator("button[type=submit]").click()
    problem.filter(has_text="level:").wait_for()
    text = problem.inner_text()
    assert "body." not in text
    assert "batch size s (row 1): must be greater than or equal to 2" in text
    assert "level: must be less than 1" in text


def test_a_refusal_of_the_whole_request_reads_as_its_sentence(page: Page) -> None:
    """A check of the request as a whole (loc ["body"]) has no field to name: its sentence alone,
    without pydantic's "Value error, " (the form cannot send this one; a script's page might)."""
    page.goto("/")
    text = page.evaluate(
        """async () => {
          const { ApiError, showProblem } = await import("/static/api.js");
          const box = document.createElement("p");
          const msg = "Value error, give exactly one of generator_id or synthetic";
          showProblem(box, new ApiError(422, "body: " + msg, { errors: [{ loc: ["body"], msg }] }));
          return box.textContent;
        }"""
    )
    assert text == "give exactly one of generator_id or synthetic."
