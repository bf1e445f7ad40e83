"""Server-rendered pages over the same service calls as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.api.deps import StateDep
from app.services.audits import describe_audits
from app.store import generators as generator_store

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, state: StateDep) -> HTMLResponse:
    with state.db.read() as session:
        generators = generator_store.list_generators(session)
    return TEMPLATES.TemplateResponse(
        request,
        "index.html",
        {"audits": describe_audits(state.db), "generators": generators},
    )
