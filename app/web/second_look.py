"""The second-look page: the judgements whose slip would move N_eff most, shown blind (images
only) for a fresh answer, the standing label revealed after it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import AuditId, StateDep
from app.estimate.leverage import SLIP_RATE
from app.services.audits import describe_audit
from app.services.second_look import second_looks
from app.store.errors import NotFound
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, not_found_page

router = APIRouter(include_in_schema=False)
SHOWN = 10


@router.get("/audits/{audit_id}/second-look", response_class=HTMLResponse)
def second_look_page(
    request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId
) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        audit = describe_audit(state.db, audit_id)
    except NotFound as exc:
        return not_found_page(request, str(exc))
    try:
        assessment, rows = second_looks(state.db, audit_id, SHOWN)
    except ValueError:  # fewer than 2 samples yet: nothing judged, nothing to doubt
        assessment, rows = None, []
    labelled = assessment is not None and assessment.estimate.labelled_pairs > 0
    context = {
        "audit": audit,
        "estimate": assessment.estimate if assessment is not None and labelled else None,
        "rows": rows,
        "slip_rate": SLIP_RATE,
        "viewer": viewer,
    }
    return TEMPLATES.TemplateResponse(request, "second_look.html", context)
