"""The Jinja2 environment of the pages, with the number formats the dashboard shows."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.services.estimate_feed import estimate_body, estimate_digest

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")


def count(value: float | int | None) -> str:
    """A count or size for people: thousands separated, large values to 3 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if abs(value) >= 1e7:
        return f"{value:.3g}".replace("e+0", "e").replace("e+", "e")
    return f"{round(value):,}"


def prob(value: float | None) -> str:
    """A probability with the precision a glance needs."""
    if value is None:
        return "–"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


TEMPLATES.env.filters["count"] = count
TEMPLATES.env.filters["prob"] = prob
TEMPLATES.env.filters["digest"] = lambda e: estimate_digest(estimate_body(e))


def not_found_page(request: Request, message: str) -> HTMLResponse:
    """The HTML 404 every page shows for an id that does not exist."""
    context = {"status": 404, "message": message, "viewer": None}
    return TEMPLATES.TemplateResponse(request, "error.html", context, status_code=404)
