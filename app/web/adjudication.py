"""The adjudication page: pairs whose annotators disagree, with each vote, for an admin to rule on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import AuditId, StateDep
from app.services.agreement import split_pairs
from app.services.audits import describe_audit
from app.store.errors import NotFound
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, not_found_page

router = APIRouter(include_in_schema=False)


@router.get("/audits/{audit_id}/disagreements", response_class=HTMLResponse)
def adjudication_page(
    request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId
) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        audit = describe_audit(state.db, audit_id)
        rows = split_pairs(state.db, audit_id)
    except NotFound as exc:
        return not_found_page(request, str(exc))
    context = {"audit": audit, "rows": rows, "viewer": viewer}
    return TEMPLATES.TemplateResponse(request, "adjudicate.html", context)
