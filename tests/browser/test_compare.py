"""Acceptance 5: several audits' estimates side by side on one chart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.web.templating import support_size
from tests.browser.conftest import screenshot
from tests.conftest import all_pairs

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def _label_closest(api: httpx.Client, audit_id: int, duplicates: int) -> dict[str, Any]:
    for pair in all_pairs(api, audit_id)[:duplicates]:
        body = {"label": "duplicate", "annotator": "bot"}
        assert api.post(f"/api/pairs/{pair['id']}/judgements", json=body).status_code == 201
    return dict(api.get(f"/api/audits/{audit_id}/estimate").json())


def test_compare_audits(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    wide = audit_factory(seed=4)
    narrow = audit_factory(synthetic={"support": 60}, n=200, seed=5)
    unlabelled = audit_factory(seed=6)
    estimates = {
        wide["id"]: _label_closest(api, wide["id"], 3),
        narrow["id"]: _label_closest(api, narrow["id"], 40),
    }
    ids = [wide["id"], narrow["id"], unlabelled["id"]]
    page.goto("/compare?" + "&".join(f"ids={i}" for i in ids))
    rows = page.locator('[data-plot="compare"] .audit-row')
    rows.first.wait_for()
    assert [int(r or 0) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.audit)")] == ids
    x = {
        aid: float(
            page.locator(f'.audit-row[data-audit="{aid}"] circle.estimate').get_attribute("cx") or 0
        )
        for aid in estimates
    }
    # One log axis: the audit with the larger N_eff sits further right.
    bigger = max(estimates, key=lambda aid: estimates[aid]["n_eff"])
    assert x[bigger] == max(x.values())
    # No duplicate yet: a lower bound with an open end, no point estimate.
    open_row = page.locator(f'.audit-row[data-audit="{unlabelled["id"]}"]')
    assert open_row.locator("circle.estimate").count() == 0
    assert open_row.locator(".arrow").count() == 1
    assert page.locator(".audit-row .truth").count() == 3  # uniform synthetic: N_eff = K
    for aid, estimate in estimates.items():
        cell = page.inner_text(f'tr[data-compare="{aid}"] [data-n-eff]')
        assert cell == support_size(estimate["n_eff"])
    screenshot(page, "compare")

    page.uncheck(f'input[name=ids][value="{unlabelled["id"]}"]')
    page.click(".pick-audits button[type=submit]")
    page.wait_for_url(f"**/compare?ids={wide['id']}&ids={narrow['id']}")
    assert page.locator('[data-plot="compare"] .audit-row').count() == 2


def test_a_collapsed_generator_reads_as_such(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """Every sample alike: N_eff 1 with the exact bound [1, 0.025^(-2/n)], shown to three digits
    in the page's own script (compare tooltip, review counter), not rounded to "1 - 1"."""
    audit = audit_factory(synthetic={"support": 1}, n=20, neighbours=3, seed=8)
    while (handout := api.get(f"/api/audits/{audit['id']}/next-pair")).status_code == 200:
        body = {"label": "duplicate", "annotator": "bot"}
        posted = api.post(f"/api/pairs/{handout.json()['id']}/judgements", json=body)
        assert posted.status_code == 201
    estimate = api.get(f"/api/audits/{audit['id']}/estimate").json()
    assert (estimate["n_eff"], estimate["n_eff_low"]) == (1.0, 1.0)
    assert estimate["n_eff_high"] == pytest.approx(0.025 ** (-2 / 20))  # 1.446
    page.goto(f"/compare?ids={audit['id']}")
    title = page.locator(f'.audit-row[data-audit="{audit["id"]}"] circle.estimate title')
    assert title.text_content() == f"audit {audit['id']}: N_eff 1.00, 95% interval 1.00 – 1.45"
    page.add_init_script("localStorage.setItem('birthday.annotator', 'ada')")
    page.goto(f"/audits/{audit['id']}/review")
    page.wait_for_function("document.querySelector('[data-stop]').textContent.includes('N_eff')")
    assert "(N_eff ≈ 1.00)" in page.inner_text("[data-stop]")


def test_an_upper_end_beyond_the_pools_pairs_is_drawn_open(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """Three labels on a 400-sample pool put the upper end near 1e7 (133 C(n, 2), where the
    floor on E[D] from the three confirmed pairs holds it): beyond C(n, 2) (under one duplicate
    pair expected in the pool) the row ends in an arrow, and the axis keeps to the estimates
    instead of running to 1e7."""
    audit = audit_factory(seed=7)
    estimate = _label_closest(api, audit["id"], 3)
    pairs = audit["n"] * (audit["n"] - 1) // 2
    assert estimate["n_eff_high"] > 100 * pairs
    page.goto(f"/compare?ids={audit['id']}")
    row = page.locator('[data-plot="compare"] .audit-row').first
    row.wait_for()
    assert row.locator(".arrow").count() == 1
    ticks = page.locator('[data-plot="compare"] .axis-bottom text').all_text_contents()
    assert ticks and all("e" not in t for t in ticks)  # no 1e9-scale labels
    title = row.locator("circle.estimate title").text_content() or ""
    assert title.endswith(support_size(estimate["n_eff_high"]))  # told, not drawn
