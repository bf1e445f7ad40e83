"""The audit page's figures: what the history plot says about upper ends off its scale, and no
figure asked of an audit that has no pool yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_upper_ends_off_the_scale_are_marked_at_the_top_edge(
    page: Page, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=23)
    aid, n = audit["id"], audit["n"]
    pairs = n * (n - 1) // 2
    # Ten points: the first four reach past C(n, 2) (one with no upper end at all), the rest not.
    highs = [None, 1e40, 1e9, 2.0 * pairs, *[5000.0 - 100 * k for k in range(6)]]
    points = [
        {
            "judgements": k,
            "duplicate_pairs": k,
            "n_eff": 300.0,
            "n_eff_low": 100.0,
            "n_eff_high": high,
        }
        for k, high in enumerate(highs, 1)
    ]
    history = {"n": n, "level": 0.95, "judgements": len(points), "points": points}
    page.route(f"**/api/audits/{aid}/estimate-history", lambda route: route.fulfill(json=history))
    page.goto(f"/audits/{aid}")
    chart = page.locator('[data-plot="history"]')
    note = chart.locator("[data-off-top]")
    note.wait_for()
    text = note.inner_text()
    assert f"C(n, 2) = {pairs:,}" in text and "top edge of the plot" in text
    assert "run off" not in text
    marks = chart.locator('[data-layer="off-top"] .point')
    assert [float(x) for x in marks.evaluate_all("ps => ps.map(p => p.dataset.x)")] == [1, 2, 3, 4]
    # Each mark sits at the top edge of the plot, where the band ends for its point.
    tops = marks.evaluate_all("ps => ps.map(p => p.querySelector('path').getBBox().y)")
    assert all(0 <= top <= 2 for top in tops), tops


def test_an_audit_with_no_pool_asks_for_no_figures(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """A queued audit has no pool to figure (no more than one failed before its first sample):
    the page says so instead of asking the API, whose 422s would be console errors."""
    # The server runs one job at a time: while a large audit runs, the next one waits queued.
    running = api.post("/api/audits", json={"synthetic": {"support": 300}, "n": 1_000_000})
    queued = api.post("/api/audits", json={"synthetic": {"support": 300}, "n": 400})
    assert running.status_code == queued.status_code == 202
    try:
        audit = api.get(f"/api/audits/{queued.json()['id']}").json()
        assert audit["status"] == "queued", audit
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/api/audits/" in r.url else None)
        page.goto(f"/audits/{audit['id']}")
        for figure in ("batch", "history", "calibration"):
            plot = page.locator(f'[data-plot="{figure}"]')
            plot.filter(has_text="the pool has fewer than 2 samples").wait_for()
            figures = ("batch-curve", "calibration", "estimate-history")
            assert not [url for url in asked if any(f"/{name}" in url for name in figures)], asked
    finally:
        for created in (queued, running):
            api.post(f"/api/jobs/{created.json()['job_id']}/cancel")
        for created in (queued, running):
            wait_for_audit(api, created.json()["id"])
    # Once the audit has a pool, its figures come.
    ready = audit_factory(seed=24)
    page.goto(f"/audits/{ready['id']}")
    page.locator('[data-plot="batch"][data-ready]').wait_for()
