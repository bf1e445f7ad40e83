"""A trained generator's long name wraps in the tables that show it: the columns after it (the
home page's links, the compare page's ratio) stay in view at 1280 px, and the compare page's
checkboxes keep their size beside it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from tests.conftest import wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

LONG_NAME = (
    "sgan_nonsaturating mlp on digits, D x0.5 G x1 z2 seed 0 (run 4), "
    "resumed at step 20,000 with the wider discriminator"
)


@pytest.fixture(scope="module")
def long_named(api: httpx.Client) -> list[dict[str, Any]]:
    """Two done audits of a sample archive uploaded under LONG_NAME."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, images=prototypes[rng.integers(0, 20, 60)])
    uploaded = api.post(
        "/api/generators",
        data={"name": LONG_NAME, "format": "samples"},
        files={"file": ("g.npz", buffer.getvalue())},
    )
    assert uploaded.status_code == 201, uploaded.text
    audits = []
    for seed in (0, 1):
        body = {"generator_id": uploaded.json()["id"], "n": 60, "neighbours": 3, "seed": seed}
        created = api.post("/api/audits", json=body)
        assert created.status_code == 202, created.text
        audit = wait_for_audit(api, created.json()["id"])
        assert audit["status"] == "done", audit
        audits.append(audit)
    return audits


def _sideways(wrap: Locator) -> float:
    """How far a table's scroll box scrolls sideways (0 when the table fits)."""
    return float(wrap.evaluate("w => w.scrollWidth - w.clientWidth"))


def _inside(cell: Locator, wrap: Locator) -> bool:
    """The cell lies within the scroll box's visible width, not behind its sideways scroll."""
    box, frame = cell.bounding_box(), wrap.bounding_box()
    assert box is not None and frame is not None
    return bool(
        box["x"] >= frame["x"] - 0.5
        and box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5
    )


def test_home_audit_table_keeps_its_links_in_view(
    page: Page, long_named: list[dict[str, Any]]
) -> None:
    page.goto("/")
    wrap = page.locator(".table-wrap:has(table.audits)")
    assert _sideways(wrap) <= 0
    for audit in long_named:
        row = page.locator(f'tr[data-audit="{audit["id"]}"]')
        assert LONG_NAME in row.inner_text()
        assert _inside(row.locator(f'td.links a[href="/audits/{audit["id"]}"]'), wrap)


def test_compare_keeps_the_ratio_column_in_view(
    page: Page, api: httpx.Client, long_named: list[dict[str, Any]]
) -> None:
    synthetic = api.post("/api/audits", json={"synthetic": {"support": 300}, "n": 200, "seed": 1})
    assert synthetic.status_code == 202, synthetic.text
    ids = [wait_for_audit(api, synthetic.json()["id"])["id"]] + [a["id"] for a in long_named]
    page.goto("/compare?" + "&".join(f"ids={i}" for i in ids))
    wrap = page.locator(".table-wrap:has(table.compare)")
    assert _sideways(wrap) <= 0  # at 1280 px the whole table fits
    for aid in ids:
        assert _inside(page.locator(f'tr[data-compare="{aid}"] [data-ratio]'), wrap)
    # Narrower, the table scrolls sideways, but the ratio column stays at its right edge.
    page.set_viewport_size({"width": 800, "height": 800})
    assert _sideways(wrap) > 0
    for aid in ids:
        assert _inside(page.locator(f'tr[data-compare="{aid}"] [data-ratio]'), wrap)
    # The picker's checkboxes keep their size beside a label that wraps.
    page.set_viewport_size({"width": 1280, "height": 800})
    for audit in long_named:
        box = page.locator(f'.pick-audits input[value="{audit["id"]}"]').bounding_box()
        assert box is not None and box["width"] >= 12, box
