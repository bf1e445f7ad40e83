"""Who judged what on an audit: per-annotator votes, pairwise agreement, and disagreements."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.estimate.agreement import cohen_kappa
from app.store.judgements import of_audit
from app.store.models import Annotator, Judgement


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    shared: int
    agreement: float | None  # observed share of equal labels
    kappa: float | None


def latest_votes(session: Session, audit_id: int) -> dict[int, dict[str, str]]:
    """pair id -> {annotator: latest standing label}, adjudications left out."""
    stmt = (
        select(Judgement.pair_id, Annotator.name, Judgement.label)
        .join(Annotator, Annotator.id == Judgement.annotator_id)
        .where(
            of_audit(audit_id),
            Judgement.deleted_at.is_(None),
            Judgement.adjudicated.is_(False),
        )
        .order_by(Judgement.id)
    )
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    for pair_id, name, label in session.execute(stmt):
        votes[int(pair_id)][str(name)] = str(label)
    return dict(votes)


def pairwise_agreement(votes: dict[int, dict[str, str]]) -> list[PairAgreement]:
    names = sorted({name for by in votes.values() for name in by})
    result = []
    for a, b in combinations(names, 2):
        shared = [(by[a], by[b]) for by in votes.values() if a in by and b in by]
        labels_a = [x for x, _ in shared]
        labels_b = [y for _, y in shared]
        agreement = sum(x == y for x, y in shared) / len(shared) if shared else None
        result.append(PairAgreement(a, b, len(shared), agreement, cohen_kappa(labels_a, labels_b)))
    return result


def disagreements(votes: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    return {pair_id: by for pair_id, by in votes.items() if len(set(by.values())) > 1}
