"""Browser tests: Debian's Chromium, driven by Playwright, against a live `birthday serve`.

They skip (not fail) where /usr/bin/chromium or the playwright package is missing. One server runs
for the session on a free loopback port with its own data and models dirs; each test gets a fresh
browser context (so a fresh localStorage) and fails on any uncaught script error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import wait_for, wait_for_audit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the pages in Chromium (skips without it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's home: its data directory is `data/` there (datasets under data/datasets/)."""
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="session")
def server(serve_home: Path) -> Iterator[str]:
    """Base URL of a `birthday serve` subprocess, killed after the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home = serve_home
    port = _free_port()
    env = {**os.environ, "BIRTHDAY_MODELS_DIR": str(home / "models")}
    log = (home / "serve.log").open("w")
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(home / "data"), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"birthday serve exited: {(home / 'serve.log').read_text()}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=60, interval=0.1, what="birthday serve to answer /healthz")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def browser(server: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh context per test; uncaught errors in the page fail the test."""
    context = browser.new_context(base_url=server, viewport=WIDE)
    context.set_default_timeout(15_000)
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], errors


@pytest.fixture
def audit_factory(api: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Create an audit (a synthetic known-support source by default) and wait until it is done."""

    def make(**body: Any) -> dict[str, Any]:
        payload = {"synthetic": {"support": 300}, "n": 400, "neighbours": 3, **body}
        created = api.post("/api/audits", json=payload)
        assert created.status_code == 202, created.text
        audit = wait_for_audit(api, created.json()["id"])
        assert audit["status"] == "done", audit
        return audit

    return make


def settle(page: Page) -> None:
    """Two animation frames: layout and the charts' resize redraw have happened."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def tick_value(text: str) -> float:
    """An axis label of static/charts.js back to its number: 100, 10k, 1M, 1e9."""
    scale = {"k": 1e3, "M": 1e6}
    return float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)


def screenshot(page: Page, name: str) -> None:
    """Save the page at 1280x800 and at 390x844, and check the narrow one does not scroll sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        settle(page)
        page.screenshot(path=SHOTS / f"{name}-{size['width']}x{size['height']}.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {size['width']} px"
    page.set_viewport_size(WIDE)
    settle(page)
