"""The interactive API reference at /docs, from files the app serves itself: FastAPI's default
page loads Swagger UI from a CDN (and ReDoc also Google Fonts), so offline it was a blank page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI = "5.36.0"  # swagger-ui-dist, vendored in static/ with its LICENSE

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def api_docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="birthday: API",
        swagger_js_url=f"/static/swagger-ui-bundle-{SWAGGER_UI}.js",
        swagger_css_url=f"/static/swagger-ui-{SWAGGER_UI}.css",
        swagger_favicon_url="/static/favicon.svg",
    )
