"""The Jinja2 environment of the pages, with the number formats the dashboard shows."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.api.auth import Principal, require_starter, who_may
from app.services.estimate_feed import estimate_body, estimate_digest
from app.store.errors import Forbidden

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")


def count(value: float | int | None) -> str:
    """A count or size for people: thousands separated, large values to 3 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if abs(value) >= 1e7:
        return f"{value:.3g}".replace("e+0", "e").replace("e+", "e")
    return f"{round(value):,}"


def support_size(value: float | None) -> str:
    """N_eff and its bounds: three significant digits below 100 (a collapsed generator's
    1.00 - 1.46 must not read 1 - 1), a count above."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:#.3g}" if abs(value) < 99.95 else count(value)


def expected(value: float | None) -> str:
    """An estimated count (not an integer): a decimal while small, else a count."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) < 100 else count(value)


def prob(value: float | None) -> str:
    """A probability with the precision a glance needs."""
    if value is None:
        return "–"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


def may_change(viewer: Principal | None, *started_by: str | None) -> bool:
    """Whether the viewer may stop or change work started by any of `started_by`: the API's
    rule (require_starter), so a page offers only what the API would do."""
    if viewer is None:
        return False
    try:
        require_starter(viewer, started_by, "change", "it")
    except Forbidden:
        return False
    return True


TEMPLATES.env.globals["may_change"] = may_change
TEMPLATES.env.globals["who_may"] = lambda *started_by: who_may(started_by)
TEMPLATES.env.filters["count"] = count
TEMPLATES.env.filters["prob"] = prob
TEMPLATES.env.filters["expected"] = expected
TEMPLATES.env.filters["support"] = support_size
TEMPLATES.env.filters["digest"] = lambda e: estimate_digest(estimate_body(e))


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """A page's answer to a request it cannot serve: HTML, for a person, with the status."""
    context = {"status": status, "message": message, "viewer": None}
    return TEMPLATES.TemplateResponse(request, "error.html", context, status_code=status)


def not_found_page(request: Request, message: str) -> HTMLResponse:
    """The HTML 404 every page shows for an id that does not exist."""
    return error_page(request, 404, message)
