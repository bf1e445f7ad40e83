"""The audit page's three pool forms (extend, set the target, import labels): a problem shows in
the form it is about, goes as soon as any form is used, and names that form's own fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_a_pool_forms_problem_sits_in_it_and_goes_when_another_form_is_used(
    page: Page, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=21)
    page.goto(f"/audits/{audit['id']}")
    problem = page.locator("[data-pool-actions] [data-problem]")
    imports, aim = page.locator("[data-import]"), page.locator("[data-target]")

    imports.locator("input[name=from_audit]").fill(str(audit["id"]))
    imports.locator("button").click()
    imports.locator("[data-problem]").filter(has_text="cannot import its own labels").wait_for()
    # The browser holds the target form back: no request, and the import's problem goes.
    aim.locator("input[name=target_pct]").fill("0")
    aim.locator("button").click()
    assert aim.locator("input[name=target_pct]:invalid").count() == 1
    assert problem.is_hidden()

    imports.locator("button").click()
    imports.locator("[data-problem]").filter(has_text="cannot import its own labels").wait_for()
    page.locator("[data-extend] input[name=n_more]").fill("5")  # editing another form
    assert problem.is_hidden()


def test_the_pool_forms_say_the_apis_refusals_in_their_own_words(
    page: Page, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """The API refuses body.target (a fraction), body.n_more and body.from_audit; past the
    browser's own checks (taken off here) the forms say what their fields are called."""
    audit = audit_factory(seed=22)
    page.goto(f"/audits/{audit['id']}")
    cases = [
        ("[data-target]", "target_pct", "150", "Aim for ±: must be less than or equal to 100%."),
        ("[data-extend]", "n_more", "0", "Samples to add: must be greater than or equal to 1."),
        ("[data-import]", "from_audit", "0", "From audit #: must be greater than or equal to 1."),
    ]
    for form_selector, name, value, said in cases:
        form = page.locator(form_selector)
        field = form.locator(f"input[name={name}]")
        field.evaluate("input => { input.removeAttribute('min'); input.removeAttribute('max'); }")
        field.fill(value)
        form.locator("button").click()
        form.locator("[data-problem]").filter(has_text=said).wait_for()
        assert "body." not in form.locator("[data-problem]").inner_text()
