"""Agreement between annotators on an audit, its disagreements, and admins' rulings on them."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request, status

from app.api.audits import pair_public
from app.api.auth import AdminDep
from app.api.deps import AuditId, PairId, StateDep
from app.api.judgements import judgement_public
from app.schemas import (
    AdjudicationCreate,
    AgreementPublic,
    AnnotatorPairAgreement,
    Disagreement,
    JudgementPublic,
)
from app.services.agreement import split_pairs
from app.store import audits as audit_store
from app.store.agreement import latest_votes, pairwise_agreement
from app.store.judgements import post_judgement

router = APIRouter(tags=["agreement"])


@router.get("/audits/{audit_id}/agreement", response_model=AgreementPublic)
def get_agreement(state: StateDep, audit_id: AuditId) -> AgreementPublic:
    """Cohen's kappa for every pair of annotators on the pairs they both judged."""
    with state.db.read() as session:
        audit_store.get_audit(session, audit_id)
        votes = latest_votes(session, audit_id)
    counts = Counter(name for by in votes.values() for name in by)
    return AgreementPublic(
        judgements=dict(sorted(counts.items())),
        pairs=[
            AnnotatorPairAgreement(
                a=p.a, b=p.b, shared=p.shared, agreement=p.agreement, kappa=p.kappa
            )
            for p in pairwise_agreement(votes)
        ],
    )


@router.get("/audits/{audit_id}/disagreements", response_model=list[Disagreement])
def list_disagreements(state: StateDep, request: Request, audit_id: AuditId) -> list[Disagreement]:
    """Pairs whose annotators disagree, closest first: the adjudication queue."""
    return [
        Disagreement(pair=pair_public(request, row.pair, row.rank), votes=row.votes)  # type: ignore[arg-type]
        for row in split_pairs(state.db, audit_id)
    ]


@router.post(
    "/pairs/{pair_id}/adjudication",
    status_code=status.HTTP_201_CREATED,
    response_model=JudgementPublic,
)
def adjudicate_pair(
    state: StateDep, principal: AdminDep, pair_id: PairId, body: AdjudicationCreate
) -> JudgementPublic:
    """An admin's ruling: it sets the pair's label over the annotators' votes (undo with DELETE)."""
    with state.db.write() as session:
        view, _ = post_judgement(
            session, pair_id, body.label, principal.name or "admin", None, adjudicated=True
        )
    state.feed.changed(view.audit_id)
    return judgement_public(view)
