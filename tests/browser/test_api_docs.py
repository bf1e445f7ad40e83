"""The API reference at /docs works offline: every file it needs comes from the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.browser


def test_the_api_reference_loads_from_the_app_alone(page: Page, server: str) -> None:
    outside: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto("/docs")
    # Swagger UI drew the OpenAPI document's operations, the binding ones among them.
    page.locator(".opblock").first.wait_for()
    paths = [
        p.replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_inner_texts()
    ]
    assert "/api/audits/{audit_id}/next-pair" in paths
    assert not outside, outside
    assert page.request.get("/redoc").status == 404  # it needed a CDN and Google Fonts
