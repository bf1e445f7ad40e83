"""The annotators page (admins): who holds a token, a new token shown once, revocation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import StateDep
from app.store.annotators import judgement_counts, list_annotators
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, error_page

router = APIRouter(include_in_schema=False)


@router.get("/annotators", response_class=HTMLResponse)
def annotators_page(request: Request, state: StateDep, viewer: ViewerDep) -> Response:
    if viewer is None:
        return to_login(request)
    if viewer.role != "admin":
        return error_page(request, 403, "Only admins manage annotators and their tokens.")
    with state.db.read() as session:
        counts = judgement_counts(session)
        annotators = [
            {
                "name": a.name,
                "role": a.role,
                "has_token": a.token_hash is not None,
                "judgements": counts.get(a.id, 0),
            }
            for a in list_annotators(session)
        ]
    context = {
        "annotators": annotators,
        "viewer": viewer,
        "auth_required": state.settings.auth_required,
    }
    return TEMPLATES.TemplateResponse(request, "annotators.html", context)
