"""Judgements: post one on a pair (idempotent on a client key), undo one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status

from app.api.auth import AnnotatorDep
from app.api.deps import JudgementId, PairId, StateDep
from app.schemas import JudgementCreate, JudgementPublic
from app.store.judgements import JudgementView, delete_judgement, post_judgement

router = APIRouter(tags=["judgements"])


def judgement_public(view: JudgementView) -> JudgementPublic:
    return JudgementPublic(
        id=view.id,
        pair_id=view.pair_id,
        label=view.label,  # type: ignore[arg-type]
        annotator=view.annotator,
    )


@router.post(
    "/pairs/{pair_id}/judgements",
    status_code=status.HTTP_201_CREATED,
    response_model=JudgementPublic,
    responses={200: {"model": JudgementPublic, "description": "Replay of an Idempotency-Key."}},
)
def create_judgement(
    state: StateDep,
    principal: AnnotatorDep,
    response: Response,
    pair_id: PairId,
    body: JudgementCreate,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JudgementPublic:
    """Record a human's label for a pair; a retried request with the same key changes nothing."""
    # With auth on, the token says who judged; the local user names themselves.
    annotator = principal.name or body.annotator
    if annotator is None:
        raise HTTPException(422, "annotator is required")
    with state.db.write() as session:
        view, created = post_judgement(session, pair_id, body.label, annotator, idempotency_key)
    state.feed.changed(view.audit_id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return judgement_public(view)


@router.delete("/judgements/{judgement_id}", response_model=JudgementPublic)
def undo_judgement(
    state: StateDep, principal: AnnotatorDep, judgement_id: JudgementId
) -> JudgementPublic:
    """Undo a judgement; the pair's label falls back to the remaining judgements."""
    only_by = principal.name if principal.role != "admin" else None
    with state.db.write() as session:
        view = delete_judgement(session, judgement_id, only_by=only_by)
    state.feed.changed(view.audit_id)
    return judgement_public(view)
