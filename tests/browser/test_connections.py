"""A browser has ~6 connections per host for all its tabs, and an event stream holds one: pages
must not hold streams they do not need, or the next request to the server waits for good."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.services.estimate_feed import estimate_digest
from tests.browser.conftest import WIDE
from tests.conftest import all_pairs

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

# Headless pages are always visible: let the test hide and show them, and count the streams.
EMULATION = """
Object.defineProperty(Document.prototype, "visibilityState", {
  configurable: true, get() { return window.hiddenByTest ? "hidden" : "visible"; } });
Object.defineProperty(Document.prototype, "hidden", {
  configurable: true, get() { return Boolean(window.hiddenByTest); } });
window.streams = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) { super(...args); window.streams.push(this); }
};
"""
OPEN_STREAMS = "() => window.streams.filter((s) => s.readyState !== EventSource.CLOSED).length"


@pytest.fixture
def context(browser: Browser, server: str) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=server, viewport=WIDE)
    context.set_default_timeout(15_000)
    context.add_init_script(EMULATION)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield context
    context.close()
    assert errors == [], errors


def _set_hidden(page: Page, hidden: bool) -> None:
    page.evaluate(
        "(hidden) => { window.hiddenByTest = hidden;"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def _streaming(page: Page) -> None:
    page.wait_for_function("() => window.streams.some((s) => s.readyState === EventSource.OPEN)")


def test_hidden_audit_pages_let_their_connection_go(
    context: BrowserContext, api: httpx.Client, audit_factory: Callable[..., dict[str, Any]]
) -> None:
    audit = audit_factory(seed=5)
    aid = audit["id"]
    tabs = []
    for _ in range(8):  # more tabs than the browser's connections to one host
        tab = context.new_page()
        tab.goto(f"/audits/{aid}")
        _streaming(tab)
        _set_hidden(tab, True)
        tab.wait_for_function(f"() => ({OPEN_STREAMS})() === 0")
        tabs.append(tab)
    # A ninth page and its requests still get through.
    review = context.new_page()
    review.goto(f"/audits/{aid}/review")
    assert review.evaluate("async () => (await fetch('/api/audits')).status") == 200

    # Labels while a page is hidden: shown again, it streams again and catches up.
    for pair in all_pairs(api, aid)[:3]:
        posted = api.post(
            f"/api/pairs/{pair['id']}/judgements", json={"label": "duplicate", "annotator": "bot"}
        )
        assert posted.status_code == 201
    estimate = api.get(f"/api/audits/{aid}/estimate").json()
    shown = tabs[0]
    _set_hidden(shown, False)
    shown.locator(f'#estimate-panel [data-estimate="{estimate_digest(estimate)}"]').wait_for()
    assert shown.evaluate(OPEN_STREAMS) == 1
    assert shown.inner_text("[data-labelled-count]") == "3"


def test_the_home_page_follows_all_running_audits_on_one_stream(
    context: BrowserContext, api: httpx.Client
) -> None:
    # One job at a time on the in-process worker: the first runs, the other two wait for it.
    body = {"synthetic": {"support": 3000}, "n": 1200, "chunk_size": 40, "miner": "exact"}
    audits = [api.post("/api/audits", json=body | {"seed": seed}).json() for seed in range(3)]
    page = context.new_page()
    page.goto("/")
    _streaming(page)
    assert page.evaluate(OPEN_STREAMS) == 1
    _set_hidden(page, True)
    page.wait_for_function(f"() => ({OPEN_STREAMS})() === 0")
    _set_hidden(page, False)
    _streaming(page)
    assert page.evaluate(OPEN_STREAMS) == 1
    for audit in audits:
        row = f'tr[data-audit="{audit["id"]}"]'
        page.locator(f'{row} [data-status]:text-is("done")').wait_for(timeout=120_000)
        assert page.eval_on_selector(f"{row} progress", "bar => bar.value") == 1200
    # All ended: the page lets its connection go, and it never reloaded.
    page.wait_for_function(f"() => ({OPEN_STREAMS})() === 0")
    assert len(page.evaluate("window.streams.map((s) => s.url)")) == 2
