"""Audits: create, list, get, extend, import labels, samples, pairs, the review queue, the
estimate, the judgements worth a second look, live events."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AfterValidator
from starlette.background import BackgroundTask

from app.api.auth import AdminDep, AnnotatorDep, Principal, require_starter, starter_of
from app.api.deps import MAX_ID, AppState, AuditId, SampleIndex, StateDep
from app.api.events import PairFeed, event_stream, followed_audit
from app.estimate.leverage import SLIP_RATE
from app.schemas import (
    AuditCreate,
    AuditExtend,
    AuditPublic,
    AuditUpdate,
    EstimatePublic,
    LabelImportCreate,
    LabelImportPublic,
    NextPairs,
    PairPage,
    PairPublic,
    SecondLookItem,
    SecondLookPublic,
    plain_annotator_name,
)
from app.services import audits as audit_service
from app.services import label_import as import_service
from app.services.estimates import audit_estimate
from app.services.export import (
    JUDGEMENT_COLUMNS,
    PAIR_COLUMNS,
    ExportOrigin,
    write_judgements,
    write_pairs,
)
from app.services.review import next_pairs_for
from app.services.second_look import second_looks
from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.models import CandidatePair

# The audit's own stopping target (PATCH /api/audits/{id}) unless a call asks for another.
TargetQuery = Annotated[
    float | None,
    Query(gt=0, le=1, description="Relative half-width to aim for; default: the audit's target."),
]

# Who asks: named as a judgement names them (a look names none).
AnnotatorQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=100, description="Who asks; none: only look."),
    AfterValidator(plain_annotator_name),
]

router = APIRouter(prefix="/audits", tags=["audits"])


def pair_public(request: Request, pair: CandidatePair, rank: int | None) -> PairPublic:
    def url(idx: int) -> str:
        return str(request.url_for("get_sample_png", audit_id=pair.audit_id, idx=idx).path)

    return PairPublic(
        id=pair.id,
        audit_id=pair.audit_id,
        i=pair.i,
        j=pair.j,
        distance=pair.distance,
        rank=rank,
        label=pair.label,  # type: ignore[arg-type]
        image_urls=[url(pair.i), url(pair.j)],
        origin=pair.origin,  # type: ignore[arg-type]
    )


def _require_audit_starter(
    state: AppState, principal: Principal, audit_id: int, action: str
) -> None:
    with state.db.read() as session:
        started_by = audit_store.get_audit(session, audit_id).created_by  # NotFound: 404
    require_starter(principal, [started_by], action, f"audit {audit_id}")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=AuditPublic)
def create_audit(state: StateDep, principal: AnnotatorDep, body: AuditCreate) -> AuditPublic:
    """Queue an audit of a generator or of a synthetic known-support source (429 when the
    annotator has BIRTHDAY_MAX_UNFINISHED_JOBS unfinished jobs already)."""
    starter = starter_of(principal, state.settings)
    audit, job = audit_service.create_audit(state.db, state.settings, body, starter)
    state.runner.submit(job.id)
    return audit_service.created_public(state.db, audit, job.id)


@router.get("", response_model=list[AuditPublic])
def list_audits(state: StateDep) -> list[AuditPublic]:
    """All audits, newest first."""
    return audit_service.describe_audits(state.db)


@router.delete("/{audit_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_audit(state: StateDep, _: AdminDep, audit_id: AuditId) -> Response:
    """Delete an audit with its pairs, samples, judgements and jobs (admins only)."""
    job_ids = audit_service.delete_audit(state.db, state.settings, audit_id)
    for job_id in job_ids:
        state.runner.cancel(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{audit_id}", response_model=AuditPublic)
def get_audit(state: StateDep, audit_id: AuditId) -> AuditPublic:
    """One audit with its progress."""
    return audit_service.describe_audit(state.db, audit_id)


@router.patch("/{audit_id}", response_model=AuditPublic)
def update_audit(
    state: StateDep, principal: AnnotatorDep, audit_id: AuditId, body: AuditUpdate
) -> AuditPublic:
    """Aim the audit's stopping rule at another relative half-width (`target`); labels stand,
    and the review queue, the estimate's `stop` and its live stream follow the new target.
    For whoever started the audit and admins (403 for others)."""
    _require_audit_starter(state, principal, audit_id, "retarget")
    audit = audit_service.set_target(state.db, audit_id, body.target)
    state.feed.changed(audit_id)  # pages following the audit get its estimate at the new target
    return audit


@router.post("/{audit_id}/extend", status_code=status.HTTP_202_ACCEPTED, response_model=AuditPublic)
def extend_audit(
    state: StateDep, principal: AnnotatorDep, audit_id: AuditId, body: AuditExtend
) -> AuditPublic:
    """Add n_more samples to a finished or cancelled audit, from the samples it has; earlier
    pairs and labels are kept. For whoever started the audit and admins (403 for others)."""
    _require_audit_starter(state, principal, audit_id, "extend")
    starter = starter_of(principal, state.settings)
    audit, job = audit_service.extend_audit(
        state.db, state.settings, audit_id, body.n_more, starter
    )
    state.runner.submit(job.id)
    return audit_service.created_public(state.db, audit, job.id)


@router.post("/{audit_id}/import-labels", response_model=LabelImportPublic)
def import_labels(
    state: StateDep, _: AdminDep, audit_id: AuditId, body: LabelImportCreate
) -> LabelImportPublic:
    """Copy another audit's judgements onto this audit's pairs with the same (i, j): both must
    sample the same source with the same seed (sample i is then the same image), e.g. this one
    re-mined with more neighbours per sample. Each judgement keeps its annotator; one who
    already judged a pair here keeps their own answer; importing twice copies nothing new."""
    result = import_service.import_labels(state.db, audit_id, body.from_audit)
    state.feed.changed(audit_id)
    return LabelImportPublic(**dataclasses.asdict(result))


@router.get(
    "/{audit_id}/samples/{idx}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_sample_png(state: StateDep, audit_id: AuditId, idx: SampleIndex) -> Response:
    """Sample idx of the pool at full resolution: stored, or drawn again from (source, seed, idx)
    for sources the server can draw from itself (`BIRTHDAY_SAMPLE_IMAGES`). 409 when it cannot
    be drawn as audited (the generator's file changed)."""
    png = await state.samples.png_async(audit_id, idx)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@router.get("/{audit_id}/pairs", response_model=PairPage)
def list_pairs(
    state: StateDep,
    request: Request,
    audit_id: AuditId,
    label: Literal["unlabelled", "duplicate", "distinct", "unsure"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    origin: Literal["candidate", "random"] = "candidate",
) -> PairPage:
    """Pairs ordered by distance, closest first, with cursor pagination: the miner's candidates,
    or (origin=random) the random non-candidate pairs that check what it missed."""
    with state.db.read() as session:
        audit_store.get_audit(session, audit_id)
        ranked, next_cursor = pair_store.list_pairs(session, audit_id, label, limit, cursor, origin)
        items = [pair_public(request, r.pair, r.rank) for r in ranked]
    return PairPage(items=items, next_cursor=next_cursor)


def _csv_download(
    state: AppState, audit_id: int, name: str, write: Callable[[TextIO], object]
) -> FileResponse:
    """Write the CSV to a scratch file in one read transaction, then send it: one consistent
    snapshot, and no database session kept open across the threads that stream a response."""
    with state.db.read() as session:
        audit_store.get_audit(session, audit_id)  # a 404 before any file
    fd, temp_name = tempfile.mkstemp(suffix=".csv", dir=state.settings.scratch_dir)
    path = Path(temp_name)
    try:
        with open(fd, "w", newline="") as handle:
            write(handle)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type="text/csv",
        filename=f"audit-{audit_id}-{name}.csv",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get(
    "/{audit_id}/pairs.csv",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "columns " + ", ".join(PAIR_COLUMNS)}
    },
)
def export_pairs(state: StateDep, audit_id: AuditId, origin: ExportOrigin = "all") -> FileResponse:
    """Every pair as CSV, closest first, ranked within its origin, with its current label:
    the miner's candidates and (origin=all or random) the random pairs that check it."""
    return _csv_download(
        state, audit_id, "pairs", lambda h: write_pairs(state.db, audit_id, h, origin)
    )


@router.get(
    "/{audit_id}/judgements.csv",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "columns " + ", ".join(JUDGEMENT_COLUMNS)}
    },
)
def export_judgements(state: StateDep, audit_id: AuditId) -> FileResponse:
    """Every judgement of the audit's pairs as CSV, in the order they were made: annotator,
    label, whether it was an admin's ruling, when, and when it was undone."""
    return _csv_download(
        state, audit_id, "judgements", lambda h: write_judgements(state.db, audit_id, h)
    )


@router.get(
    "/{audit_id}/next-pair",
    response_model=PairPublic,
    responses={204: {"description": "No more labels are needed."}},
)
def next_pair(
    state: StateDep,
    principal: AnnotatorDep,
    request: Request,
    audit_id: AuditId,
    annotator: AnnotatorQuery = None,
    target: TargetQuery = None,
) -> PairPublic | Response:
    """The pair the review design wants this annotator to judge next, leased to them for a
    minute (a call that names no annotator only looks), or 204 when the stopping rule says no
    more labels are needed (or nothing is left to hand out yet).

    `target` overrides the audit's own stopping target for this call."""
    handed = next_pairs_for(state.db, audit_id, principal.name or annotator, 1, target)
    if handed.design_changed:
        state.feed.changed(audit_id)  # pages following the audit get the estimate it moves
    if not handed.pairs:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return pair_public(request, handed.pairs[0].pair, handed.pairs[0].rank)


@router.get("/{audit_id}/next-pairs", response_model=NextPairs)
def next_pairs(
    state: StateDep,
    principal: AnnotatorDep,
    request: Request,
    audit_id: AuditId,
    annotator: AnnotatorQuery = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    target: TargetQuery = None,
) -> NextPairs:
    """Up to `limit` pairs in the order the review design wants them (for prefetching), each
    leased to this annotator for a minute (a call that names none only looks); `stop` when no
    more labels are needed."""
    handed = next_pairs_for(state.db, audit_id, principal.name or annotator, limit, target)
    if handed.design_changed:
        state.feed.changed(audit_id)  # pages following the audit get the estimate it moves
    return NextPairs(
        items=[pair_public(request, r.pair, r.rank) for r in handed.pairs], stop=handed.stop
    )


@router.get("/{audit_id}/second-look", response_model=SecondLookPublic)
def second_look(
    state: StateDep,
    request: Request,
    audit_id: AuditId,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    level: Annotated[float, Query(gt=0.5, lt=1)] = 0.95,
) -> SecondLookPublic:
    """The judgements worth a second look: those whose slip would move N_eff most (|change of
    D-hat| if flipped times the chance it is a slip, at least 5% of the interval's half-width
    on E[D]), each with the estimate it would give if flipped. Judge one again
    (`POST /api/pairs/{id}/judgements`, ideally by another annotator, without looking at its
    label first): a second annotator's disagreement leaves the pair tied for adjudication; the
    same annotator's new label replaces their old one."""
    assessment, looks = second_looks(state.db, audit_id, limit, level)
    e = assessment.estimate
    return SecondLookPublic(
        d_hat=e.d_hat if e.labelled_pairs else None,
        n_eff=e.n_eff if e.labelled_pairs else None,
        n_eff_low=e.n_eff_low,
        n_eff_high=e.n_eff_high if e.labelled_pairs else None,
        slip_rate=SLIP_RATE,
        items=[
            SecondLookItem(
                pair=pair_public(request, s.pair, s.rank),
                looks=s.looks,
                prior_of_other_answer=s.flip.other,
                slip_probability=s.flip.slip,
                d_hat_if_flipped=s.flip.d_hat,
                n_eff_if_flipped=s.flip.n_eff,
                n_eff_low_if_flipped=s.flip.n_eff_low,
                n_eff_high_if_flipped=s.flip.n_eff_high,
            )
            for s in looks
        ],
    )


@router.get("/{audit_id}/estimate", response_model=EstimatePublic)
def get_estimate(
    state: StateDep,
    audit_id: AuditId,
    level: Annotated[float, Query(gt=0.5, lt=1)] = 0.95,
    target: TargetQuery = None,
) -> EstimatePublic:
    """Effective support size N_eff = 1/q_hat with its interval.

    N_eff is the inverse Simpson index (the Hill number of order 2): a lower bound on support
    size that equals it for a uniform distribution. D_hat = confirmed + unreviewed + missed
    (`parts`); `stop` applies the stopping rule for the audit's target, or `target` if given."""
    return audit_estimate(state.db, audit_id, level=level, target=target)


def _existing_audit(state: StateDep, audit_id: AuditId) -> int:
    """404 before the stream starts: once it has, an error can only end it."""
    audit_service.describe_audit(state.db, audit_id)
    return audit_id


@router.get("/{audit_id}/events", response_class=EventSourceResponse)
async def audit_events(
    state: StateDep,
    audit_id: Annotated[int, Depends(_existing_audit)],
    request: Request,
    estimates: Annotated[
        bool, Query(description="false: progress and status only (a list of jobs).")
    ] = True,
    pairs: Annotated[
        bool,
        Query(
            description="true: also `pairs` events, each new candidate pair as the miner stores "
            "it (as GET /pairs lists them, rank aside)."
        ),
    ] = False,
    pairs_after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ID,
            description="With pairs=true: send the pairs stored after this pair id first (0: "
            "every pair so far; a reconnecting client gives the last `last_id` it got). "
            "Default: only pairs stored from now on.",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events of this audit, for as long as the client listens: `progress` (the first
    event, with the status) and `status` while its job runs, and `estimate` (the body of GET
    /estimate) whenever the estimate changes: labels from any annotator, an undo, a label
    import, new pairs; its `id` is a digest of its content (the audit page's panel carries the
    digest of the estimate it shows). The estimate is computed once per change for all
    listeners; judgements written by another process (the CLI, another server) show within
    ~10 s. With `pairs=true`, `pairs` events carry the candidate pairs each step of the job
    stores (`items`, in storage order, and `last_id` to resume from)."""
    feed = None
    if pairs:
        after = pairs_after
        if after is None:
            with state.db.read() as session:
                after = pair_store.last_pair_id(session, audit_id)
        feed = PairFeed(after, _pair_fetcher(state, request, audit_id))
    async for event in event_stream(state, [followed_audit(audit_id)], estimates, feed):
        yield event


def _pair_fetcher(
    state: AppState, request: Request, audit_id: int
) -> Callable[[int, int], list[dict[str, Any]]]:
    def fetch(after_id: int, limit: int) -> list[dict[str, Any]]:
        with state.db.read() as session:
            rows = pair_store.candidates_after(session, audit_id, after_id, limit)
            return [
                pair_public(request, row, None).model_dump(mode="json", exclude={"rank"})
                for row in rows
            ]

    return fetch
