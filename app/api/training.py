"""Training runs and sweeps: queue, list, get, loss curves, sample grids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.auth import AnnotatorDep, require_starter, starter_of
from app.api.deps import MAX_ID, StateDep
from app.api.events import event_stream, followed_training_run
from app.schemas import (
    AuditPublic,
    DatasetsPublic,
    LossPoint,
    SweepAuditsCreate,
    SweepCreate,
    SweepExtend,
    SweepPublic,
    SweepSupport,
    TrainingRunCreate,
    TrainingRunPublic,
)
from app.services import audits as audit_service
from app.services import sweep_support as support_service
from app.services import sweeps as sweep_service
from app.services import training as training_service
from app.store import training as training_store
from app.store.errors import NotFound

router = APIRouter(tags=["training"])

LevelQuery = Annotated[float, Query(gt=0.5, lt=1, description="Confidence level.")]
EmbedderQuery = Annotated[
    str | None,
    Query(max_length=40, description="Only audits with this embedder (e.g. pixels, clip)."),
]


def _checked(run_id: int) -> int:
    if not 0 <= run_id <= MAX_ID:
        raise NotFound("training run", run_id)
    return run_id


@router.get("/datasets", response_model=DatasetsPublic)
def list_datasets(state: StateDep, _: AnnotatorDep) -> DatasetsPublic:
    """The datasets a training run can name, which read from disk, and the files and folders
    under data/datasets/ they can be pointed at (`dataset_options.path`; for those who may
    start runs: a public reader sees no file names)."""
    return training_service.dataset_choices(state.settings.data_dir)


@router.post(
    "/training-runs", status_code=status.HTTP_202_ACCEPTED, response_model=TrainingRunPublic
)
def create_training_run(
    state: StateDep, principal: AnnotatorDep, body: TrainingRunCreate
) -> TrainingRunPublic:
    """Queue a GAN training run; its generator is registered when it finishes (429 when the
    annotator has BIRTHDAY_MAX_UNFINISHED_JOBS unfinished jobs already)."""
    starter = starter_of(principal, state.settings)
    run, job = training_service.create_run(state.db, state.settings.data_dir, body, starter)
    state.runner.submit(job.id)
    return training_service.run_public(
        run, job.id, state.settings.models_dir, data_dir=state.settings.data_dir
    )


@router.get("/training-runs", response_model=list[TrainingRunPublic])
def list_training_runs(state: StateDep) -> list[TrainingRunPublic]:
    """All training runs, newest first."""
    with state.db.read() as session:
        return [
            training_service.describe_run(
                session, run.id, state.settings.models_dir, data_dir=state.settings.data_dir
            )
            for run in training_store.list_runs(session)
        ]


@router.get("/training-runs/{run_id}", response_model=TrainingRunPublic)
def get_training_run(state: StateDep, run_id: int) -> TrainingRunPublic:
    """One training run with its progress and, when done, its generator and mode metrics."""
    with state.db.read() as session:
        return training_service.describe_run(
            session, _checked(run_id), state.settings.models_dir, data_dir=state.settings.data_dir
        )


@router.get("/training-runs/{run_id}/losses", response_model=list[LossPoint])
def get_training_losses(state: StateDep, run_id: int) -> list[LossPoint]:
    """The loss curves: losses averaged over each logging interval."""
    with state.db.read() as session:
        training_store.get_run(session, _checked(run_id))
        return [
            LossPoint(step=m.step, losses=m.losses) for m in training_store.losses(session, run_id)
        ]


@router.get("/training-runs/{run_id}/samples", response_model=list[int])
def list_training_grids(state: StateDep, run_id: int) -> list[int]:
    """Steps at which a fixed-noise sample grid was saved."""
    with state.db.read() as session:
        training_store.get_run(session, _checked(run_id))
        return training_store.grid_steps(session, run_id)


@router.get(
    "/training-runs/{run_id}/samples/{step}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_training_grid(state: StateDep, run_id: int, step: int) -> Response:
    """The sample grid (images) or scatter plot (2D data) at a step."""
    with state.db.read() as session:
        training_store.get_run(session, _checked(run_id))
        grid = training_store.grid(session, run_id, step) if 0 <= step <= MAX_ID else None
        if grid is None:
            raise NotFound(f"sample grid of run {run_id} at step", step)
        return Response(grid.png, media_type="image/png")


def _existing_run(state: StateDep, run_id: int) -> int:
    """404 before the stream starts: once it has, an error can only end it."""
    with state.db.read() as session:
        training_store.get_run(session, _checked(run_id))
    return run_id


@router.get("/training-runs/{run_id}/events", response_class=EventSourceResponse)
async def training_run_events(
    state: StateDep, run_id: Annotated[int, Depends(_existing_run)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events of this run, for as long as the client listens: `progress` (the first
    event: `step`, `steps` and `status`; then at each logging interval `losses`, the point GET
    /losses would add, null for a non-finite loss, and `grid`, the step of a new sample grid or
    null) and `status` (`status`, `error`) when its job starts or ends."""
    async for event in event_stream(state, [followed_training_run(run_id)], estimates=False):
        yield event


@router.post("/sweeps", status_code=status.HTTP_202_ACCEPTED, response_model=SweepPublic)
def create_sweep(state: StateDep, principal: AnnotatorDep, body: SweepCreate) -> SweepPublic:
    """Queue a grid of training runs (loss x latent size x discriminator width x seed): 422 for
    more runs than BIRTHDAY_MAX_SWEEP_RUNS, or than an annotator may have unfinished; 429 when
    they would take the annotator past BIRTHDAY_MAX_UNFINISHED_JOBS."""
    sweep_id, job_ids = training_service.create_sweep(
        state.db,
        state.settings.data_dir,
        body,
        starter_of(principal, state.settings),
        state.settings.max_sweep_runs,
    )
    for job_id in job_ids:
        state.runner.submit(job_id)
    return get_sweep(state, sweep_id)


@router.get("/sweeps", response_model=list[SweepPublic])
def list_sweeps(state: StateDep) -> list[SweepPublic]:
    """All sweeps, newest first, each with its results table."""
    with state.db.read() as session:
        ids = training_store.sweep_ids(session)
    return [get_sweep(state, sweep_id) for sweep_id in ids]


@router.get("/sweeps/{sweep_id}", response_model=SweepPublic)
def get_sweep(state: StateDep, sweep_id: int) -> SweepPublic:
    """A sweep's runs with their progress and mode metrics, the metrics summarised per cell over
    seeds (the results table), and the audits of its generators."""
    if not 0 <= sweep_id <= MAX_ID:
        raise NotFound("sweep", sweep_id)
    return sweep_service.describe_sweep(
        state.db, sweep_id, state.settings.models_dir, data_dir=state.settings.data_dir
    )


@router.get(
    "/sweeps/{sweep_id}/runs.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "columns " + ", ".join(sweep_service.RUN_COLUMNS),
        }
    },
)
def export_sweep_runs(state: StateDep, sweep_id: int) -> Response:
    """The sweep's runs as CSV, one row each: grid coordinates, status and mode metrics."""
    body = sweep_service.runs_csv(get_sweep(state, sweep_id))
    disposition = f'attachment; filename="sweep-{sweep_id}-runs.csv"'
    return Response(body, media_type="text/csv", headers={"Content-Disposition": disposition})


@router.get("/sweeps/{sweep_id}/support", response_model=SweepSupport)
def get_sweep_support(
    state: StateDep,
    sweep_id: int,
    level: LevelQuery = 0.95,
    embedder: EmbedderQuery = None,
) -> SweepSupport:
    """The birthday test across the sweep (the paper's second question): each generator's N_eff
    from its newest finished audit, each cell's random-effects mean of log N_eff over its seeds
    (a geometric mean; intervals from Student's t with the between-seed variance), and per loss
    and latent size the exponent b of N_eff ~ d_width^b with its interval, from one
    Poisson-lognormal model of the audits' duplicate counts. A pool with no duplicate enters as
    a count of 0 (a lower bound on its N_eff); runs that cannot enter yet (no audit, review
    unfinished) are listed with the reason."""
    return support_service.sweep_support(
        state.db, get_sweep(state, sweep_id), level=level, embedder=embedder
    )


@router.get(
    "/sweeps/{sweep_id}/support.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "columns " + ", ".join(support_service.SUPPORT_COLUMNS),
        }
    },
)
def export_sweep_support(
    state: StateDep,
    sweep_id: int,
    level: LevelQuery = 0.95,
    embedder: EmbedderQuery = None,
) -> Response:
    """Each run's N_eff and interval as CSV, from the audit the support figure uses."""
    body = support_service.support_csv(get_sweep_support(state, sweep_id, level, embedder))
    disposition = f'attachment; filename="sweep-{sweep_id}-support.csv"'
    return Response(body, media_type="text/csv", headers={"Content-Disposition": disposition})


@router.post(
    "/sweeps/{sweep_id}/extend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=list[AuditPublic],
)
def extend_sweep_pools(
    state: StateDep, principal: AnnotatorDep, sweep_id: int, body: SweepExtend
) -> list[AuditPublic]:
    """Grow the pool of every audit the support figure leaves out for want of a duplicate
    (`waiting_for` 'samples': its N_eff has only a lower bound, the largest of the sweep's, and
    leaving it out biases the figure down), keeping its pairs and labels; 422 if none does.
    For whoever started the sweep and admins (403 for others)."""
    sweep = get_sweep(state, sweep_id)
    require_starter(principal, [sweep.created_by], "extend", f"sweep {sweep_id}")
    support = support_service.sweep_support(state.db, sweep, embedder=body.embedder)
    starter = starter_of(principal, state.settings)
    extended = support_service.extend_empty_pools(
        state.db, state.settings, support, body.n_more, starter
    )
    for _audit, job in extended:
        state.runner.submit(job.id)
    return [audit_service.created_public(state.db, audit, job.id) for audit, job in extended]


@router.post("/sweeps/{sweep_id}/cancel", response_model=SweepPublic)
def cancel_sweep(state: StateDep, principal: AnnotatorDep, sweep_id: int) -> SweepPublic:
    """Stop the sweep's unfinished runs: queued ones at once, running ones at their next step;
    finished runs and their generators stay. For whoever started the sweep and admins (403 for
    others)."""
    sweep = get_sweep(state, sweep_id)
    require_starter(principal, [sweep.created_by], "cancel", f"sweep {sweep_id}")
    for run in sweep.runs:
        if run.status in ("queued", "running") and run.job_id is not None:
            state.runner.request_cancel(run.job_id)
    return get_sweep(state, sweep_id)


@router.post(
    "/sweeps/{sweep_id}/audits",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=list[AuditPublic],
)
def create_sweep_audits(
    state: StateDep, principal: AnnotatorDep, sweep_id: int, body: SweepAuditsCreate
) -> list[AuditPublic]:
    """Queue one audit per finished run that draws images, all with the same settings (the
    paper's RQ2: support size against discriminator width); 422 if no run is ready; 429 when
    they would take the annotator past BIRTHDAY_MAX_UNFINISHED_JOBS."""
    runs = get_sweep(state, sweep_id).runs
    starter = starter_of(principal, state.settings)
    created = sweep_service.audit_sweep(state.db, state.settings, runs, body, starter)
    for _audit, job in created:
        state.runner.submit(job.id)
    return [audit_service.created_public(state.db, audit, job.id) for audit, job in created]
