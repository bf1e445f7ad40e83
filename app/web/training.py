"""Training pages: start a GAN, watch its progress, loss curves and samples, audit it in one click."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ID, StateDep
from app.api.training import get_sweep, get_training_run, list_sweeps, list_training_runs
from app.gan.datasets import TOY_DATASETS
from app.gan.training import TRAIN_LOSSES, loop_defaults
from app.services.training import dataset_choices
from app.services.training_loops import run_loop, sweep_loop
from app.store.errors import NotFound
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, not_found_page

router = APIRouter(include_in_schema=False)

# How the run page names the mode metrics (app/gan/metrics.py); the API keeps the field names,
# which the page shows on hover.
MODE_LABELS = {
    "n_modes": "modes in the data",
    "modes_captured": "modes captured",
    "n_segments": "curve segments",
    "segments_captured": "segments captured",
    "n_samples": "samples classified",
    "high_quality_fraction": "high-quality share (within 3 std of a mode)",
    "confident_fraction": "confident share (each channel's class at p >= 0.9)",
    "confident_modes_captured": "modes captured by confident samples",
    "kl_to_uniform": "KL(mode histogram || uniform), nats",
    "classifier": "digit classifier that counted them",
}


@router.get("/training", response_class=HTMLResponse)
def training_page(request: Request, state: StateDep, viewer: ViewerDep) -> Response:
    if viewer is None:
        return to_login(request)
    context = {
        "runs": list_training_runs(state),
        "sweeps": list_sweeps(state),
        "choices": dataset_choices(state.settings.data_dir, files=viewer.role != "reader"),
        "losses": list(TRAIN_LOSSES),
        # what the forms' blank lr, betas and D steps train with, per loss (their placeholders)
        "paper_loops": {name: loop_defaults(name) for name in TRAIN_LOSSES},
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
    context = {
        "run": run,
        "loop": run_loop(run.config),
        "viewer": viewer,
        "mode_labels": MODE_LABELS,
    }
    return TEMPLATES.TemplateResponse(request, "training_run.html", context)


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, state: StateDep, viewer: ViewerDep, sweep_id: int) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        sweep = get_sweep(state, sweep_id)  # NotFound for any unknown id
    except NotFound as exc:
        return not_found_page(request, str(exc))
    context = {
        "sweep": sweep,
        "loop": sweep_loop(sweep.grid),
        "viewer": viewer,
        "toy": list(TOY_DATASETS),
    }
    return TEMPLATES.TemplateResponse(request, "sweep.html", context)


@router.get("/sweeps/{sweep_id}/cells", response_class=HTMLResponse)
def sweep_cells_fragment(
    request: Request, state: StateDep, viewer: ViewerDep, sweep_id: int
) -> Response:
    """The results table alone: the page swaps it in when a run ends."""
    if viewer is None:
        return to_login(request)
    try:
        sweep = get_sweep(state, sweep_id)  # NotFound for any unknown id
    except NotFound as exc:
        return not_found_page(request, str(exc))
    return TEMPLATES.TemplateResponse(request, "_sweep_cells.html", {"sweep": sweep})
