"""Acceptance 4: the estimate panel, its figures and the cluster gallery follow labels as they arrive."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.services.estimate_feed import estimate_digest
from app.web.templating import support_size
from tests.browser.conftest import screenshot, tick_value
from tests.conftest import all_pairs

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_panel_follows_labels(
    page: Page, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=2)
    aid = audit["id"]
    panel_requests: list[str] = []
    page.on("request", lambda r: panel_requests.append(r.url) if r.url.endswith("/panel") else None)
    page.goto(f"/audits/{aid}")
    bound = api.get(f"/api/audits/{aid}/estimate").json()["n_eff_low"]
    assert page.inner_text("[data-n-eff]") == f"≥ {support_size(bound)}"
    page.locator('[data-plot="history"] .empty').wait_for()
    page.locator('[data-plot="batch"] svg [data-layer="band"]').wait_for()
    assert page.locator('[data-plot="batch"] [data-layer="s50"]').count() == 0
    # Nothing changes, so nothing is asked for: the page waits on the audit's event stream
    # (it used to fetch the panel every 3 s).
    page.wait_for_timeout(7000)
    assert panel_requests == []

    # Another annotator labels: 6 duplicates among the closest pairs, then 3 distinct.
    pairs = all_pairs(api, aid)
    labels = ["duplicate"] * 6 + ["distinct"] * 3
    for pair, label in zip(pairs, labels, strict=False):
        response = api.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": label, "annotator": "bot"}
        )
        assert response.status_code == 201
    estimate = api.get(f"/api/audits/{aid}/estimate").json()
    # The panel names the estimate it shows: wait for this one, not one on the way to it.
    page.locator(f'#estimate-panel [data-estimate="{estimate_digest(estimate)}"]').wait_for()
    assert page.inner_text("[data-n-eff]") == support_size(estimate["n_eff"])
    assert page.inner_text("[data-n-eff-low]") == support_size(estimate["n_eff_low"])
    assert page.inner_text("[data-n-eff-high]") == support_size(estimate["n_eff_high"])
    assert page.inner_text("[data-labelled-count]") == "9"
    assert 1 <= len(panel_requests) <= 9  # one per estimate event at most, never one per poll

    history = page.locator('[data-plot="history"] svg[data-judgements="9"]')
    history.wait_for()
    assert history.locator('[data-layer="estimate-points"] circle').count() == 9
    s50 = page.locator('[data-plot="batch"] [data-layer="s50"]')
    s50.wait_for()
    assert int(s50.get_attribute("data-x") or 0) == estimate["s50"]
    calibration = page.locator('[data-plot="calibration"] svg')
    # The calibration chart redraws on its own request: wait for it rather than race it.
    from playwright.sync_api import expect

    for label, expected in (("duplicate", 6), ("distinct", 3), ("unsure", 0)):
        expect(calibration.locator(f'[data-layer="{label}"] circle')).to_have_count(expected)
    bins = api.get(f"/api/audits/{aid}/calibration").json()["bins"]
    expect(calibration.locator('[data-layer="histogram"] rect')).to_have_count(len(bins))

    clusters = api.get(f"/api/audits/{aid}/clusters").json()
    gallery = page.locator(f'#gallery [data-clusters="{clusters["clusters_total"]}"]')
    gallery.wait_for()
    assert page.locator("#gallery .cluster").count() == len(clusters["clusters"])
    sizes = [
        int(s or 0)
        for s in page.locator("#gallery .cluster").evaluate_all(
            "items => items.map(i => i.dataset.clusterSize)"
        )
    ]
    assert sizes == [c["size"] for c in clusters["clusters"]]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "estimate")


def test_log_axes_keep_their_labels_apart(page: Page) -> None:
    """An early interval can reach 1e70 (a bound from a handful of labels): its axis labels one
    power of ten per few decades, not seventy on top of each other; a narrow one keeps 1-2-5."""
    page.goto("/")
    ticks = page.evaluate(
        """async () => {
            const { logScale } = await import('/static/charts.js');
            const scale = (d) => logScale(d, [200, 0]);
            return {
                wide: scale([1e-3, 2.6e70]).ticks(5),
                decades: scale([3, 4e4]).ticks(5),
                narrow: scale([1.5, 24]).ticks(5),
            };
        }"""
    )
    wide = ticks["wide"]
    assert 2 <= len(wide) <= 5
    exponents = [round(math.log10(t)) for t in wide]
    assert all(math.isclose(t, 10.0**e) for t, e in zip(wide, exponents, strict=True))
    assert len({b - a for a, b in itertools.pairwise(exponents)}) == 1  # evenly spaced
    assert ticks["decades"] == [10, 100, 1000, 10000]
    assert ticks["narrow"] == [2, 5, 10, 20]


def test_unbounded_upper_ends_run_off_the_history_plot(
    page: Page, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    """Early intervals can reach 1e70: drawn to scale they squash every estimate into one line.
    Upper ends beyond C(n, 2) (under one duplicate pair expected in the pool) run off the top."""
    audit = audit_factory(seed=4)
    aid, n = audit["id"], audit["n"]
    points = [
        {
            "judgements": k,
            "duplicate_pairs": k,
            "n_eff": 1000.0 / k,
            "n_eff_low": 500.0 / k,
            "n_eff_high": 10.0 ** max(4.0, 70.0 - 3 * k),
        }
        for k in range(1, 31)
    ]
    history = {"n": n, "level": 0.95, "judgements": 30, "points": points}
    page.route(f"**/api/audits/{aid}/estimate-history", lambda route: route.fulfill(json=history))
    page.goto(f"/audits/{aid}")
    page.locator('[data-plot="history"] [data-off-top]').wait_for()
    ticks = page.locator('[data-plot="history"] .axis-left text').all_text_contents()
    assert ticks and max(tick_value(t) for t in ticks) <= 1e5  # the bounded ends reach 1e4
    assert "C(n, 2)" in page.inner_text('[data-plot="history"] [data-off-top]')
