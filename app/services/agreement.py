"""Disagreements between annotators: one service call for the API and the adjudication page."""

from __future__ import annotations

from dataclasses import dataclass

from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.agreement import disagreements, latest_votes
from app.store.db import Database
from app.store.models import CandidatePair


@dataclass(frozen=True)
class SplitPair:
    pair: CandidatePair
    rank: int
    votes: dict[str, str]  # annotator -> latest standing label


def split_pairs(db: Database, audit_id: int) -> list[SplitPair]:
    """Pairs whose annotators disagree, closest first: the adjudication queue."""
    with db.read() as session:
        audit_store.get_audit(session, audit_id)
        split = disagreements(latest_votes(session, audit_id))
        pairs = sorted(
            (pair_store.get_pair(session, pair_id) for pair_id in split),
            key=lambda p: (p.distance, p.id),
        )
        return [SplitPair(p, pair_store.rank_of(session, p), split[p.id]) for p in pairs]
