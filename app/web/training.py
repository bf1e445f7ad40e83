"""Training pages: start a GAN, watch its progress, loss curves and samples, audit it in one click."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ID, StateDep
from app.api.training import get_sweep, get_training_run, list_sweeps, list_training_runs
from app.gan.datasets import TOY_DATASETS
from app.gan.losses import LOSSES, PENALISED
from app.gan.training import LOOP_FIELDS, TRAIN_LOSSES, TrainConfig, loop_defaults
from app.services.training import dataset_choices
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


LOOP_SETTINGS = ("batch_size", "lr", "betas", "d_steps", "gp_weight", "architecture_options")


def loop_settings(config: Mapping[str, Any], losses: Sequence[str] = ()) -> dict[str, Any]:
    """The run's (or a sweep's) optimiser settings and network sizes. A run stored before some
    of them were fields of a request trained with the loop's defaults, which these fill in; a
    sweep that left lr, betas or d_steps to each loss's paper (null in its grid) gets them per
    loss, in `by_loss` (groups of losses with the same loop) when its losses differ."""
    defaults = TrainConfig()
    settings = {name: config.get(name, getattr(defaults, name)) for name in LOOP_SETTINGS}
    loss = str(config.get("loss"))
    if settings["gp_weight"] is None and loss in PENALISED:
        settings["gp_weight"] = LOSSES[loss].gradient_penalty_weight  # the loss's own lambda
    # a grid's lambda is its penalised losses' alone: named when the grid has others too
    penalised = [name for name in losses if name in PENALISED]
    if settings["gp_weight"] is None and penalised:
        weights = {LOSSES[name].gradient_penalty_weight for name in penalised}
        settings["gp_weight"] = weights.pop() if len(weights) == 1 else None
    settings["gp_losses"] = penalised if len(penalised) < len(losses) else []
    settings["by_loss"] = []
    if any(settings[name] is None for name in LOOP_FIELDS):
        groups: dict[tuple[Any, ...], list[str]] = {}
        for name in losses:
            paper = loop_defaults(name)
            loop = tuple(paper[f] if settings[f] is None else settings[f] for f in LOOP_FIELDS)
            groups.setdefault(loop, []).append(name)
        if len(groups) == 1:
            settings.update(zip(LOOP_FIELDS, next(iter(groups)), strict=True))
        else:
            settings["by_loss"] = [
                {"losses": names, **dict(zip(LOOP_FIELDS, loop, strict=True))}
                for loop, names in groups.items()
            ]
    return settings


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
        "loop": loop_settings(run.config),
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
        "loop": loop_settings(sweep.grid, sweep.grid.get("losses", [])),
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
