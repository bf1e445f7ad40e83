"""Training pages: start a GAN, watch its progress, loss curves and samples, audit it in one click."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ID, StateDep
from app.api.training import get_training_run, list_training_runs
from app.gan.datasets import DATASETS
from app.gan.training import TRAIN_LOSSES
from app.store.errors import NotFound
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, not_found_page

router = APIRouter(include_in_schema=False)


@router.get("/training", response_class=HTMLResponse)
def training_page(request: Request, state: StateDep, viewer: ViewerDep) -> Response:
    if viewer is None:
        return to_login(request)
    context = {
        "runs": list_training_runs(state),
        "datasets": [name for name in DATASETS if name not in ("npz", "folder")],
        "losses": list(TRAIN_LOSSES),
        "viewer": viewer,
    }
    return TEMPLATES.TemplateResponse(request, "training.html", context)


@router.get("/training/{run_id}", response_class=HTMLResponse)
def training_run_page(
    request: Request, state: StateDep, viewer: ViewerDep, run_id: int
) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        if not 0 <= run_id <= MAX_ID:
            raise NotFound("training run", run_id)
        run = get_training_run(state, run_id)
    except NotFound as exc:
        return not_found_page(request, str(exc))
    return TEMPLATES.TemplateResponse(request, "training_run.html", {"run": run, "viewer": viewer})
