"""Server-rendered pages over the same service calls as the API.

Partials (`_estimate.html`, `_clusters.html`) are both included in the audit page and served alone as
the fragments its script swaps in when labels arrive, so there is one template per piece of HTML.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from app.api.deps import MAX_ID, AppState, AuditId, StateDep
from app.api.jobs import job_owners, job_public, workers_public
from app.gan.registry import ARCHITECTURES
from app.schemas import CompareItem, EstimatePublic, JobPublic
from app.services import insights
from app.services.audits import describe_audit, describe_audits
from app.services.compare import compare_items, parse_ids, share_samples
from app.services.estimates import audit_estimate
from app.services.generators import FORMATS, LOADABLE, archive_samples
from app.services.secondary import SecondaryPublic, audit_secondary
from app.store import generators as generator_store
from app.store import training as training_store
from app.store.db import Database
from app.store.errors import NotFound
from app.store.models import Job, TrainingRun
from app.web import access, adjudication, annotators, second_look, training
from app.web.access import ViewerDep, to_login
from app.web.templating import TEMPLATES, error_page, not_found_page

router = APIRouter(include_in_schema=False)
router.include_router(access.router)
router.include_router(adjudication.router)
router.include_router(annotators.router)
router.include_router(second_look.router)
router.include_router(training.router)

RECENT_JOBS = 50


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
    return not_found_page(request, str(exc))


def _fragment_refused() -> Response:
    """A fragment asked for without a login: the page's script keeps what it shows."""
    return Response("log in to see this", status_code=401, media_type="text/plain")


def _recent_jobs(db: Database) -> list[JobPublic]:
    with db.read() as session:
        jobs = session.scalars(select(Job).order_by(Job.id.desc()).limit(RECENT_JOBS))
        return [job_public(job) for job in jobs]


def _estimate_or_none(db: Database, audit_id: int) -> EstimatePublic | None:
    """The estimate, or None while the pool has fewer than 2 samples (nothing to estimate yet)."""
    try:
        return audit_estimate(db, audit_id)
    except ValueError:
        return None


def _secondary_or_none(state: AppState, audit_id: int) -> SecondaryPublic | None:
    """Figures beside N_eff, or None while the pool has fewer than 2 samples."""
    try:
        return audit_secondary(state.db, state.settings.scratch_dir, audit_id)
    except ValueError:
        return None


def _clusters_or_none(
    request: Request, db: Database, audit_id: int
) -> insights.ClustersPublic | None:
    def sample_url(idx: int) -> str:
        return str(request.url_for("get_sample_png", audit_id=audit_id, idx=idx).path)

    try:
        return insights.audit_clusters(db, audit_id, sample_url)
    except ValueError:
        return None


@router.get("/", response_class=HTMLResponse)
def home(request: Request, state: StateDep, viewer: ViewerDep) -> Response:
    if viewer is None:
        return to_login(request)
    jobs = _recent_jobs(state.db)
    with state.db.read() as session:
        owners = job_owners(session, [j.id for j in jobs])
        generators = generator_store.list_generators(session)
        run_ids = [j.training_run_id for j in jobs if j.training_run_id is not None]
        runs = session.scalars(select(TrainingRun).where(TrainingRun.id.in_(run_ids)))
        run_progress = {r.id: {"step": r.step, "steps": r.steps} for r in runs}
    audits = describe_audits(state.db)
    return _page(
        request,
        "index.html",
        {
            "audits": audits,
            # A job that has not finished a step has no progress of its own yet: its row shows its audit's.
            "audit_progress": {a.id: a.progress for a in audits},
            # Likewise a training job's row shows its run's steps.
            "run_progress": run_progress,
            "generators": generators,
            "jobs": jobs,
            "job_owners": owners,
            "workers": workers_public(state.runner),
            "viewer": viewer,
        },
    )


@router.get("/generators/new", response_class=HTMLResponse)
def upload_page(request: Request, viewer: ViewerDep) -> Response:
    if viewer is None:
        return to_login(request)
    architectures = {
        name: {f.name: f.default for f in dataclasses.fields(arch.config_type)}
        for name, arch in ARCHITECTURES.items()
    }
    return _page(
        request,
        "generator_new.html",
        {
            "formats": FORMATS,
            "loadable": LOADABLE,
            "architectures": architectures,
            "viewer": viewer,
        },
    )


@router.get("/audits/new", response_class=HTMLResponse)
def new_audit_page(
    request: Request, state: StateDep, viewer: ViewerDep, generator_id: int | None = None
) -> Response:
    if viewer is None:
        return to_login(request)
    with state.db.read() as session:
        generators = [g for g in generator_store.list_generators(session) if g.auditable]
    models = state.settings.models_dir
    samples = {g.id: archive_samples(g, models) for g in generators}  # archives' image counts
    context = {
        "generators": generators,
        "selected": generator_id,
        "samples": samples,
        "viewer": viewer,
    }
    return _page(request, "audit_new.html", context)


@router.get("/audits/{audit_id}", response_class=HTMLResponse)
def audit_page(request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        audit = describe_audit(state.db, audit_id)
    except NotFound as exc:
        return _not_found(request, exc)
    context = {
        "audit": audit,
        "audit_id": audit_id,
        "trained_by": _trained_by(state.db, audit.generator_id),
        "estimate": _estimate_or_none(state.db, audit_id),
        "secondary": _secondary_or_none(state, audit_id),
        "clusters": _clusters_or_none(request, state.db, audit_id),
        "viewer": viewer,
    }
    return _page(request, "audit.html", context)


def _trained_by(db: Database, generator_id: int | None) -> dict[str, int | None] | None:
    """The run (and sweep) that trained an audited generator: the page links back to them."""
    if generator_id is None:
        return None
    with db.read() as session:
        run = training_store.run_of_generator(session, generator_id)
        return {"run": run.id, "sweep": run.sweep_id} if run else None


@router.get("/audits/{audit_id}/panel", response_class=HTMLResponse)
def estimate_fragment(
    request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId
) -> Response:
    """The estimate panel alone, for the audit page to swap in as labels arrive."""
    if viewer is None:
        return _fragment_refused()
    try:
        audit = describe_audit(state.db, audit_id)
    except NotFound as exc:
        return _not_found(request, exc)
    estimate = _estimate_or_none(state.db, audit_id)
    context = {
        "audit": audit,
        "estimate": estimate,
        "secondary": _secondary_or_none(state, audit_id),
    }
    return _page(request, "_estimate.html", context)


@router.get("/audits/{audit_id}/gallery", response_class=HTMLResponse)
def clusters_fragment(
    request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId
) -> Response:
    """The duplicate-cluster gallery alone, for the audit page to swap in."""
    if viewer is None:
        return _fragment_refused()
    try:
        describe_audit(state.db, audit_id)
    except NotFound as exc:
        return _not_found(request, exc)
    clusters = _clusters_or_none(request, state.db, audit_id)
    return _page(request, "_clusters.html", {"clusters": clusters, "audit_id": audit_id})


@router.get("/audits/{audit_id}/review", response_class=HTMLResponse)
def review_page(
    request: Request, state: StateDep, viewer: ViewerDep, audit_id: AuditId
) -> Response:
    if viewer is None:
        return to_login(request)
    try:
        audit = describe_audit(state.db, audit_id)
    except NotFound as exc:
        return _not_found(request, exc)
    return _page(request, "review.html", {"audit": audit, "viewer": viewer})


def _point(item: CompareItem) -> dict[str, Any]:
    """What the compare chart draws for an audit."""
    e = item.estimate
    return {
        "id": item.audit.id,
        "n_eff": e.n_eff if e else None,
        "low": e.n_eff_low if e else None,
        "high": e.n_eff_high if e else None,
        "level": e.level if e else None,
        "truth": item.known_n_eff,
        "pairs": e.n * (e.n - 1) // 2 if e else None,  # C(n, 2): beyond it, as good as unbounded
    }


@router.get("/paper", response_class=HTMLResponse)
def paper_page(request: Request, viewer: ViewerDep) -> Response:
    """The paper's protocol from batches the user drew and inspected (POST /api/paper-protocol)."""
    if viewer is None:
        return to_login(request)
    return _page(request, "paper.html", {"viewer": viewer})


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    state: StateDep,
    viewer: ViewerDep,
    ids: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Several audits' estimates side by side; with no `ids`, every finished audit.

    `ids` repeats (what the page's form sends) or lists with commas (`?ids=1,2,3`, what
    people type)."""
    if viewer is None:
        return to_login(request)
    try:
        wanted = parse_ids(ids, MAX_ID)
        audits, items = compare_items(state.db, wanted, skip_unknown=True)
    except ValueError as exc:
        return error_page(request, 422, str(exc))
    known = {a.id for a in audits}
    series = [_point(item) for item in items]
    return _page(
        request,
        "compare.html",
        {
            "audits": audits,
            "rows": items,
            "series": series,
            "chosen": {item.audit.id for item in items},
            # named in the address but not stored (deleted, a typo): said, not silently dropped
            "unknown": [i for i in wanted or [] if i not in known],
            "share": share_samples,
            "viewer": viewer,
        },
    )
