"""Copy one audit's judgements onto another audit of the same samples.

Sample i is a pure function of (source, seed, i) (app/sources/base.py), so two audits of one
source and seed show the same images for pair (i, j) whatever their miner found: a judgement
made in one holds in the other. This is how a re-mined audit (more neighbours per sample, after
the random check found duplicates the miner missed) keeps the labels already spent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.store.judgements import of_audit, refresh_pair_label
from app.store.models import CandidatePair, Judgement

__all__ = ["LabelImport", "import_judgements"]

LOOKUP_BATCH = 400  # (i, j) keys per query: well under SQLite's bound-parameter limit

T = TypeVar("T")


def _batches(items: Sequence[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), LOOKUP_BATCH):
        yield list(items[start : start + LOOKUP_BATCH])


@dataclass(frozen=True)
class LabelImport:
    judged_pairs: int  # pairs of the source audit with a standing judgement
    matched_pairs: int  # of which the target audit holds the same (i, j)
    copied: int  # judgements copied
    kept: int  # not copied: the annotator already judged that pair in the target


def _latest_votes(session: Session, audit_id: int) -> dict[tuple[int, int, int, bool], str]:
    """(i, j, annotator id, adjudicated) -> the latest standing label: what the consensus
    counts (an annotator's earlier labels on a pair are superseded by their last)."""
    rows = session.execute(
        select(
            CandidatePair.i,
            CandidatePair.j,
            Judgement.annotator_id,
            Judgement.adjudicated,
            Judgement.label,
        )
        .join(CandidatePair, CandidatePair.id == Judgement.pair_id)
        .where(of_audit(audit_id), Judgement.deleted_at.is_(None))
        .order_by(Judgement.id)
    )
    return {(int(i), int(j), int(who), bool(adj)): str(label) for i, j, who, adj, label in rows}


def _pair_ids(
    session: Session, audit_id: int, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """The target's pair ids of the given (i, j), through its unique (audit, i, j) index."""
    out: dict[tuple[int, int], int] = {}
    for chunk in _batches(keys):
        stmt = select(CandidatePair.id, CandidatePair.i, CandidatePair.j).where(
            CandidatePair.audit_id == audit_id,
            tuple_(CandidatePair.i, CandidatePair.j).in_(chunk),
        )
        out.update({(int(i), int(j)): int(pid) for pid, i, j in session.execute(stmt)})
    return out


def _standing(session: Session, pair_ids: list[int]) -> set[tuple[int, int, bool]]:
    """(pair id, annotator id, adjudicated) of the target's standing judgements on those pairs."""
    out: set[tuple[int, int, bool]] = set()
    for chunk in _batches(pair_ids):
        stmt = select(Judgement.pair_id, Judgement.annotator_id, Judgement.adjudicated).where(
            Judgement.pair_id.in_(chunk), Judgement.deleted_at.is_(None)
        )
        out.update((int(p), int(a), bool(adj)) for p, a, adj in session.execute(stmt))
    return out


def _lock(session: Session, pair_ids: list[int]) -> None:
    """Lock the pairs (SELECT ... FOR UPDATE on PostgreSQL; SQLite's writers take turns anyway)
    in id order, before their votes are read and added to.

    Before the read: a judgement posted meanwhile by another process locks its pair first
    (app/store/judgements.py `lock_pair`), so once these locks are held every vote on the
    pairs is committed and seen, and the annotator's own answer is kept rather than joined
    (or overridden) by a copy. In id order: an insert's foreign-key check share-locks its
    pair, and two imports upgrading such locks to update the labels would deadlock; a
    judgement locks its one pair only, so it cannot close a cycle with an import.
    """
    for chunk in _batches(pair_ids):
        stmt = (
            select(CandidatePair.id)
            .where(CandidatePair.id.in_(chunk))
            .order_by(CandidatePair.id)
            .with_for_update()
        )
        session.execute(stmt).all()


def import_judgements(session: Session, source_id: int, target_id: int) -> LabelImport:
    """Copy every standing judgement (rulings included) of the source audit onto the target's
    pair with the same (i, j), under the same annotator; an annotator who already judged the
    pair in the target keeps their own answer. Idempotent: a second import copies nothing."""
    votes = _latest_votes(session, source_id)
    keys = sorted({(i, j) for i, j, _, _ in votes})
    target = _pair_ids(session, target_id, keys)
    matched = sorted(target.values())
    _lock(session, matched)  # before reading what stands on them: see `_lock`
    standing = _standing(session, matched)
    kept = 0
    copies: list[Judgement] = []
    for (i, j, who, adjudicated), label in votes.items():
        pair_id = target.get((i, j))
        if pair_id is None:
            continue
        if (pair_id, who, adjudicated) in standing:
            kept += 1
            continue
        copies.append(
            Judgement(pair_id=pair_id, annotator_id=who, label=label, adjudicated=adjudicated)
        )
        standing.add((pair_id, who, adjudicated))
    touched = sorted({judgement.pair_id for judgement in copies})
    session.add_all(copies)
    session.flush()
    for pair_id in touched:
        refresh_pair_label(session, pair_id)
    copied = len(copies)
    return LabelImport(judged_pairs=len(keys), matched_pairs=len(target), copied=copied, kept=kept)
